"""Every built-in aggregator means in exported code what it means in streamlab.

The generated Beam module and Lambda handler aggregate a window with ``_snippets``' combiners (the code
``_plan.aggregator_code`` names): rows added one at a time, the accumulator carried through JSON between
Lambda invocations, partial accumulators merged. The property test runs streamlab's window step and those
combiners on the same records (bad ones included: not JSON, a value of the wrong type, missing values,
-0.0, ties in event time), the rows of each window split at random into invocations, and compares every
aggregator's value in every window.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import Pipeline, TumblingWindow, agg
from streamlab._parse import FieldSpec
from streamlab._record import BadRecordError, read_record
from streamlab.export import _snippets
from streamlab.export._plan import aggregator_code
from streamlab.export.verify import run_local
from streamlab.testing import ListSource

SCHEMA = {"timestamp": "timestamp", "k": "string", "x": "float64", "i": "int64", "s": "string", "b": "bool"}
FIELDS = tuple((f.name, f.type, f.path) for f in (FieldSpec.of(n, s) for n, s in SCHEMA.items()))
AGGREGATORS = (
    agg.count(),
    agg.count("x"),
    agg.sum("x"),
    agg.sum("i"),
    agg.mean("x"),
    agg.min("x"),
    agg.max("i"),
    agg.count_distinct("s"),
    agg.count_distinct("i"),
    agg.quantile("x", 0.5),
    agg.quantile("i", 0.9, relative_accuracy=0.05),
    agg.first("x"),
    agg.last("s"),
    agg.first("b"),
    agg.last("i"),
)
BASE_S = 1_704_067_200
SIZE_S = 10


def _pipeline() -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="aggs")
    p.parse(SCHEMA).window(TumblingWindow(f"{SIZE_S}s"), key="k", step_id="w").agg(*AGGREGATORS)
    return p


_X = st.one_of(
    st.none(), st.floats(-1e6, 1e6), st.sampled_from([0.0, -0.0, 1.5]), st.integers(-100, 100), st.just("x")
)
_I = st.one_of(st.none(), st.integers(-1000, 1000), st.sampled_from([0, 2**40]), st.just(1.5))
_S = st.one_of(st.none(), st.sampled_from(["", "a", "b", "ab"]), st.just(3))
_B = st.one_of(st.none(), st.booleans())


@st.composite
def records(draw: st.DrawFn) -> list[bytes]:
    """Records in event-time order (ties included: first/last take the earliest/latest arrival), each
    field sometimes absent, sometimes of the wrong type (a dead letter), and some records not JSON."""
    n = draw(st.integers(1, 30))
    offsets = sorted(draw(st.lists(st.integers(0, 3 * SIZE_S * 4), min_size=n, max_size=n)))
    out = []
    for off in offsets:
        obj: dict[str, Any] = {"timestamp": BASE_S + off / 4, "k": draw(st.sampled_from(["a", "b"]))}
        for name, values in (("x", _X), ("i", _I), ("s", _S), ("b", _B)):
            if draw(st.integers(0, 5)):
                obj[name] = draw(values)
        out.append(json.dumps(obj).encode())
        if draw(st.integers(0, 9)) == 0:
            out.append(draw(st.sampled_from([b"not json", b"", b"[1]", b'{"k": "a"}'])))
    return out


def _exported(recs: list[bytes], cuts: list[int]) -> dict[tuple[str, int], dict[str, Any]]:
    """Each window's values as the generated code computes them: rows added in arrival order, every
    ``cuts``-th row ending an invocation (the accumulator goes through JSON), the parts merged."""
    namespace = {name: getattr(_snippets, name) for name in dir(_snippets)}
    combine = _snippets.RowCombine(
        [(a.name, eval(aggregator_code(a, "w", "timestamp")[1], namespace)) for a in AGGREGATORS]
    )
    parts: dict[tuple[str, int], list[Any]] = {}
    open_accs: dict[tuple[str, int], Any] = {}
    size_ns = SIZE_S * 10**9
    for n, raw in enumerate(recs):
        try:
            row = read_record(raw, FIELDS, ("timestamp",), 1_000_000)
        except BadRecordError:
            continue
        ts = row["timestamp"]
        for start in _snippets.window_starts(ts, size_ns, size_ns, 0):
            key = (row["k"], start)
            acc = open_accs.get(key, combine.create_accumulator())
            open_accs[key] = combine.add_input(acc, row, ts)
        if n in cuts:  # the end of an invocation: the state goes through JSON
            for key, acc in open_accs.items():
                text = json.dumps(combine.to_json(acc), default=_snippets.json_default)
                parts.setdefault(key, []).append(combine.from_json(json.loads(text)))
            open_accs = {}
    for key, acc in open_accs.items():
        parts.setdefault(key, []).append(acc)
    return {key: combine.extract_output(combine.merge_accumulators(accs)) for key, accs in parts.items()}


def _same(ours: Any, theirs: Any, sum_of_sizes: float) -> bool:
    if ours is None or (isinstance(ours, float) and math.isnan(ours)) or ours is pd.NA:
        return theirs is None or (isinstance(theirs, float) and math.isnan(theirs))
    if isinstance(ours, (bool,)) or isinstance(theirs, bool):
        return type(theirs) is bool and bool(ours) == theirs
    if isinstance(ours, str):
        return ours == theirs
    if isinstance(theirs, (int, float)) and not isinstance(theirs, bool):
        return math.isclose(float(ours), float(theirs), rel_tol=1e-9, abs_tol=1e-9 * sum_of_sizes)
    return bool(ours == theirs)


@settings(max_examples=40, deadline=None)
@given(recs=records(), cuts=st.sets(st.integers(0, 40), max_size=8))
def test_every_aggregator_equals_the_runtime_across_invocations(recs: list[bytes], cuts: set[int]) -> None:
    local = run_local(_pipeline(), recs)["w"]
    theirs = _exported(recs, sorted(cuts))
    rows = local.to_dict("records") if len(local) else []
    ours = {(row["k"], int(pd.Timestamp(row["window_start"]).value)): row for row in rows}
    assert set(ours) == set(theirs)
    scale = 2.0**40 * len(recs) + 1e6 * len(recs)
    for key, values in theirs.items():
        for a in AGGREGATORS:
            assert _same(ours[key][a.name], values[a.name], scale), (
                key,
                a.name,
                ours[key][a.name],
                values[a.name],
            )


@settings(max_examples=200, deadline=None)
@given(
    ts=st.lists(st.integers(-(10**15), 10**15), min_size=1, max_size=20),
    size=st.integers(1, 10**6),
    slide_of_size=st.floats(0.01, 1.0),
    offset=st.integers(-(10**7), 10**7),
    tumbling=st.booleans(),
)
def test_window_assignment_equals_the_runtime(
    ts: list[int], size: int, slide_of_size: float, offset: int, tumbling: bool
) -> None:
    """The generated code's ``window_starts`` gives each event the windows streamlab's window assigns
    (tumbling and sliding, any offset, negative times: floor division)."""
    import numpy as np

    from streamlab import SlidingWindow

    slide = size if tumbling else max(1, int(size * slide_of_size))
    window: Any = (
        TumblingWindow(f"{size}ns", offset=f"{offset}ns")
        if tumbling
        else SlidingWindow(f"{size}ns", f"{slide}ns", offset=f"{offset}ns")
    )
    assert (window.size_ns, window.slide_ns) == (size, slide)
    idx, starts = window.assign(np.array(ts, dtype=np.int64))
    runtime = sorted(zip(idx.tolist(), starts.tolist()))
    exported = sorted(
        (i, s) for i, t in enumerate(ts) for s in _snippets.window_starts(t, size, slide, window.offset_ns)
    )
    assert runtime == exported
