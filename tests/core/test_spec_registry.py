"""Source and sink kinds of the YAML spec: users' registrations next to the built-in kinds.

The registries are module state filled on first use, so each check runs in a fresh interpreter where
nothing has loaded them yet.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

# Registers a source and a sink kind before anything has read a spec, then loads a spec that uses the
# built-in ``replay``, ``synthetic`` (datasets) and ``kafka`` (connectors) sources and the built-in
# ``list`` sink next to the user's kinds; then replaces ``replay`` and loads the spec again.
_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from streamlab import spec
    from streamlab.testing import ListSink, ListSource

    spec.register_source("mine", lambda rows: ListSource(rows))
    spec.register_sink("my_sink", lambda: ListSink())
    data = {"streaming": {
        "sources": [
            {"step_id": "r", "kind": "replay", "path": sys.argv[1]},
            {"step_id": "g", "kind": "synthetic", "generator": "iot", "n": 3},
            {"step_id": "k", "kind": "kafka", "topics": ["t"], "bootstrap_servers": "localhost:1", "group_id": "g"},
            {"step_id": "m", "kind": "mine", "rows": [{"x": 1}]},
        ],
        "sinks": [
            {"step_id": "out", "kind": "list", "input": "r"},
            {"step_id": "mine_out", "kind": "my_sink", "input": "m"},
        ],
    }}
    p = spec.pipeline_from_dict(data)
    first = {sid: type(step.source if hasattr(step, "source") else step.sink).__name__
             for sid, step in p.steps.items()}

    class Replaced(ListSource):
        pass

    spec.register_source("replay", lambda path: Replaced([{"path": path}]))
    p = spec.pipeline_from_dict(data)
    print(json.dumps({"first": first, "replaced": type(p.steps["r"].source).__name__}))
    """
)


def test_register_source_before_the_first_spec_keeps_every_built_in_kind(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text('{"x": 1}\n')
    run = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(events)], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["first"] == {
        "r": "ReplaySource",
        "g": "SyntheticSource",
        "k": "KafkaSource",
        "m": "ListSource",
        "out": "ListSink",
        "mine_out": "ListSink",
    }
    # a user's kind of a built-in name wins over the built-in one
    assert got["replaced"] == "Replaced"


def test_a_users_factory_gets_a_dead_letter_mapping_without_a_kind_as_written(monkeypatch: Any) -> None:
    # A user's sink and source kinds may read their own ``dead_letter`` settings; only a mapping with a
    # ``kind`` (a sink's spec, as ``to_yaml`` nests it) is turned into that sink. Session 20's reader
    # refused the plain mapping ("expected a sink's spec with its kind, got kind None").
    from streamlab import spec
    from streamlab.sinks import JsonLinesSink
    from streamlab.testing import ListSink, ListSource

    seen: dict[str, Any] = {}

    def my_sink(dead_letter: Any = None) -> ListSink:
        seen["sink"] = dead_letter
        return ListSink()

    def my_source(rows: list[dict[str, Any]], dead_letter: Any = None) -> ListSource:
        seen["source"] = dead_letter
        return ListSource(rows)

    monkeypatch.setitem(spec._SINKS, "plain_dead_letter_sink", my_sink)
    monkeypatch.setitem(spec._SOURCES, "plain_dead_letter_source", my_source)
    data = {
        "streaming": {
            "sources": [
                {
                    "step_id": "s",
                    "kind": "plain_dead_letter_source",
                    "rows": [{"x": 1}],
                    "dead_letter": {"path": "bad.jsonl", "retries": 3},
                }
            ],
            "sinks": [
                {
                    "step_id": "out",
                    "kind": "plain_dead_letter_sink",
                    "input": "s",
                    "dead_letter": {"topic": "dlq"},
                },
                {
                    "step_id": "out2",
                    "kind": "plain_dead_letter_sink",
                    "input": "s",
                    "dead_letter": {"kind": "jsonl", "path": "dead.jsonl"},
                },
            ],
        }
    }
    spec.pipeline_from_dict(data)
    assert seen["source"] == {"path": "bad.jsonl", "retries": 3}
    # the last sink built had a mapping with a kind: it got that sink
    assert (
        isinstance(seen["sink"], JsonLinesSink) and seen["sink"].spec() == JsonLinesSink("dead.jsonl").spec()
    )
    data["streaming"]["sinks"] = data["streaming"]["sinks"][:1]
    spec.pipeline_from_dict(data)
    assert seen["sink"] == {"topic": "dlq"}
