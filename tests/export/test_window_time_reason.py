"""A window's dead letter for a row without a readable event time says which event times are read.

The reason said "missing or unreadable event time in column 'seen'" and left the user to find out that
ISO 8601 text and epoch numbers (seconds, milliseconds above 1e11) are what is read. It now says so, in
streamlab and, word for word, in every exported program: ``verify`` compares the reasons.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from streamlab import ManualClock, Pipeline, TumblingWindow, agg
from streamlab.export import verify
from streamlab.testing import ListSource

WANT = (
    "missing or unreadable event time in column 'seen' "
    "(expected ISO 8601 text, or epoch seconds as a number, milliseconds above 1e11)"
)
SAMPLE = [
    json.dumps({"event_id": f"e{i}", "user": "u", "timestamp": f"2024-01-01T00:00:0{i}Z", **seen}).encode()
    for i, seen in enumerate(
        [
            {"seen": "2024-01-01T00:00:00Z"},
            {"seen": None},
            {},
            {"seen": 1704067203},
            {"seen": 1704067204000},
        ]
    )
]


def _pipeline() -> Pipeline:
    p = Pipeline(ListSource(SAMPLE), name="seen")
    fields = {"event_id": "string", "user": "string", "timestamp": "timestamp", "seen": "timestamp"}
    p.parse(fields).window(TumblingWindow("1m"), key="user", time="seen").agg(agg.count())
    return p


def test_streamlab_names_the_event_times_it_reads() -> None:
    out = _pipeline().run(clock=ManualClock(0))
    dead = out["window.dead_letter"]
    assert dead["reason"].tolist() == [WANT, WANT] and out["window"]["count"].tolist() == [3]
    assert "\n" not in WANT


@pytest.mark.parametrize(
    ("target", "options"),
    [("beam", {}), ("lambda", {}), ("spark", {}), ("flink", {"flink_job": "datastream"})],
)
def test_every_export_gives_the_same_reason(target: str, options: dict[str, Any], request: Any) -> None:
    if target == "flink":
        options = {**options, "flink_python": request.getfixturevalue("flink_python")}
    report = verify(_pipeline(), SAMPLE, target, **options)
    assert report.equal, report.diff.head(20).to_string()
    assert report.local["window.dead_letter"]["reason"].tolist() == [WANT, WANT]
