"""Property: whatever a spec holds, loading it builds a pipeline or raises SpecError, never another
exception (a user mistake is never a traceback)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlab.errors import SpecError
from streamlab.spec import pipeline_from_dict

VALID: dict[str, Any] = {
    "streaming": {
        "name": "fuzz",
        "time": "timestamp",
        "sources": [{"step_id": "events", "kind": "replay", "path": "missing.jsonl", "raw": True}],
        "processing": [
            {
                "step_id": "parse",
                "kind": "parse",
                "input": "events",
                "schema": {
                    "event_id": "string",
                    "amount": {"type": "float64", "path": "p.a"},
                    "timestamp": "timestamp",
                },
                "max_record_bytes": 1000,
                "required": ["event_id"],
            },
            {
                "step_id": "dedup",
                "kind": "dedup",
                "input": "parse",
                "id": "event_id",
                "ttl": "1h",
                "max_ids": 10,
            },
            {"step_id": "big", "kind": "filter", "input": "dedup", "expr": "amount > 1"},
            {"step_id": "plus", "kind": "map", "input": "big", "columns": {"double": "amount * 2"}},
            {
                "step_id": "w",
                "kind": "window",
                "input": "plus",
                "window": {"kind": "sliding", "size": "2m", "every": "1m"},
                "key": ["event_id"],
                "aggregate": [{"kind": "count"}, {"kind": "quantile", "column": "amount", "q": 0.5}],
                "delay": "5s",
            },
            {"step_id": "u", "kind": "union", "input": ["w", "w.late"]},
        ],
        "sinks": [{"step_id": "out", "kind": "list", "input": "u"}],
    }
}

JUNK = st.sampled_from(
    [
        None,
        True,
        False,
        -5,
        0,
        3.5,
        "big",
        "",
        "1m",
        "-1h",
        "on",
        "parse",
        "x.y",
        [],
        ["a", "b"],
        [1],
        {},
        {"a": 1},
        {True: 1},
    ]
)


def paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += paths(v, (*prefix, i))
    return out


ALL_PATHS = paths(VALID)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(ALL_PATHS), JUNK, st.booleans()), min_size=1, max_size=3))
def test_any_mutation_is_a_pipeline_or_a_spec_error(mutations) -> None:
    data: Any = copy.deepcopy(VALID)
    for path, junk, delete in mutations:
        if not path:
            data = junk
            continue
        parent: Any = data
        try:
            for key in path[:-1]:
                parent = parent[key]
            if delete and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = junk
        except (KeyError, IndexError, TypeError):
            continue
    try:
        pipeline_from_dict(data, lazy_sources=True)
    except SpecError as e:
        assert e.problems and all(p.path and p.problem and p.fix for p in e.problems)


def test_the_unmutated_spec_builds() -> None:
    p = pipeline_from_dict(copy.deepcopy(VALID), lazy_sources=True)
    assert list(p.steps) == ["events", "parse", "dedup", "big", "plus", "w", "u", "out"]
