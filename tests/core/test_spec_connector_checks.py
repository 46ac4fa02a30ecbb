"""A connector's constructor that refuses a parameter raises ParameterError, which a spec reports at the
parameter's path with the error's own fix, not as "ValueError: ..." with the generic "check this entry's
parameters" fix. No server is needed: the constructors check their parameters before connecting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streamlab.errors import SpecError
from streamlab.spec import pipeline_from_dict


@pytest.mark.parametrize(
    ("kind", "params", "where", "fix"),
    [
        ("pagerduty", {"routing_key": ""}, ".routing_key", "Integration Key"),
        (
            "redis_stream",
            {"url": "redis://localhost:1", "stream": "s", "maxlen": 0},
            ".maxlen",
            "maxlen: 10000",
        ),
        ("redis_metrics", {"url": "redis://localhost:1", "ttl": -1}, ".ttl", "ttl: 3600"),
        ("webhook", {"url": "ftp://example.com"}, ".url", "https://"),
        ("pubsub", {"topic": ""}, ".topic", "projects/PROJECT/topics/NAME"),
        ("eventhub", {}, ".connection_string", "connection_string_env: VAR"),
    ],
)
def test_a_connector_check_is_reported_at_its_parameter_with_its_fix(
    tmp_path: Path, kind: str, params: dict[str, Any], where: str, fix: str
) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text('{"timestamp": 0}\n')
    data = {
        "streaming": {
            "sources": [{"step_id": "e", "kind": "replay", "path": str(events), "raw": True}],
            "sinks": [{"step_id": "o", "kind": kind, "input": "e", **params}],
        }
    }
    with pytest.raises(SpecError) as e:
        pipeline_from_dict(data)
    [problem] = e.value.problems
    assert problem.path == f"streaming.sinks[0] (step 'o'){where}"
    assert not problem.problem.startswith("ValueError") and fix in problem.fix
    assert "to_yaml() output" not in problem.fix
