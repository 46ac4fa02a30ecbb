"""A dead letter for a row without a readable event time says which event times are read: at a window, a
feature, a detector with ``key_ttl`` and a pattern, in the same words.

The reason said "missing or unreadable event time in column 'seen'" and left the user to find out that
ISO 8601 text and epoch numbers (seconds, milliseconds above 1e11) are what is read. It now says so, in
streamlab and, word for word, in every exported program: ``verify`` compares the reasons. Features,
detectors and patterns said "event time 'seen' is missing or unreadable" (the detector "... (needed for
key_ttl)"), in streamlab and in the exported programs, with nothing of the formats; they use the same
rule now (``streamlab._record.unreadable_time_reason``, which exported programs carry verbatim).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from streamlab import ManualClock, Pipeline, TumblingWindow, agg
from streamlab.detectors import GaussianScorerDetector, PatternStep, VelocityFeature
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


WANT_TTL = (
    "missing or unreadable event time in column 'seen' "
    "(needed for key_ttl; expected ISO 8601 text, or epoch seconds as a number, milliseconds above 1e11)"
)
FIELDS = {"event_id": "string", "user": "string", "timestamp": "timestamp", "seen": "timestamp"}
ROW_SAMPLE = [
    json.dumps(
        {"event_id": f"e{i}", "user": "u", "timestamp": f"2024-01-01T00:00:0{i}Z", "amount": i, **seen}
    ).encode()
    for i, seen in enumerate(
        [
            {"seen": "2024-01-01T00:00:00Z"},
            {"seen": None},
            {},
            {"seen": "01/02/2024"},
            {"seen": 1704067204},
            {"seen": 1704067205000},
        ]
    )
]


def _row_pipeline(*kinds: str) -> Pipeline:
    """A feature, a detector and a pattern (each of ``kinds``, its step id the kind) on the parsed rows."""
    p = Pipeline(ListSource(ROW_SAMPLE), name="seen_" + "_".join(kinds))
    parsed = p.parse({**FIELDS, "amount": "float64"})
    for kind in kinds:
        if kind == "feature":
            parsed.apply(VelocityFeature("user", window="10m", value="amount", time="seen"), step_id=kind)
        elif kind == "detector":
            parsed.detect(
                GaussianScorerDetector(grace_period=2),
                features=["amount"],
                key="user",
                time="seen",
                step_id=kind,
            )
        else:
            steps = [PatternStep("a", "amount >= 0"), PatternStep("b", "amount >= 0")]
            parsed.pattern("user", steps, within="1m", time="seen", name="two", step_id=kind)
    return p


@pytest.mark.parametrize(("kind", "want"), [("feature", WANT), ("detector", WANT_TTL), ("pattern", WANT)])
def test_features_detectors_and_patterns_name_the_event_times_they_read(kind: str, want: str) -> None:
    dead = _row_pipeline(kind).run(clock=ManualClock(0))[f"{kind}.dead_letter"]
    assert dead["reason"].tolist() == [want] * 2 and "\n" not in want


@pytest.mark.parametrize(
    ("target", "options"), [("beam", {}), ("spark", {}), ("flink", {"flink_job": "datastream"})]
)
def test_their_exports_give_the_same_reason(target: str, options: dict[str, Any], request: Any) -> None:
    """One program per target holds the three steps (a JVM's start is most of a Spark or Flink run)."""
    if target == "flink":
        options = {**options, "flink_python": request.getfixturevalue("flink_python")}
    report = verify(_row_pipeline("feature", "detector", "pattern"), ROW_SAMPLE, target, **options)
    assert report.equal, report.diff.head(20).to_string()
    for kind, want in (("feature", WANT), ("detector", WANT_TTL), ("pattern", WANT)):
        assert report.exported[f"{kind}.dead_letter"]["reason"].tolist() == [want] * 2, kind
