"""A hand-written rule whose condition cannot take a row (a text compared with a number, in a ``json``
field that holds what each record sent) sets that row aside with the reason, in streamlab and in the
exported Beam pipeline and Lambda handler alike; the rows around it are alerted as before."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.detectors import ThresholdRule
from streamlab.export import verify
from streamlab.export.verify import VerificationReport
from streamlab.testing import ListSource

SCHEMA = {"event_id": "string", "amount": "json", "timestamp": "timestamp"}
AMOUNTS = [5, 250.5, "7", None, "x", 1, 10**400, 150, {"v": 1}, 0.5, True, 300]


def rules_pipeline(window: bool = False) -> Pipeline:
    """The two rules; with ``window``, alerts counted per minute (a Lambda handler ends in a window)."""
    p = Pipeline(ListSource([b"{}"]), name="rules")
    ruled = (
        p.parse(SCHEMA)
        .apply(ThresholdRule("big", expr="amount > 100"), step_id="big")
        .apply(ThresholdRule("tiny", column="amount", op="<", value=2), step_id="tiny")
    )
    if window:
        ruled.window(TumblingWindow("1m"), delay="2s").agg(agg.count(), agg.sum("is_alert"))
    return p


def sample() -> list[bytes]:
    return [
        json.dumps({"event_id": f"e{i}", "amount": a, "timestamp": f"2024-03-01T00:00:{i:02d}Z"}).encode()
        for i, a in enumerate(AMOUNTS)
    ]


def check_dead_letters(report: VerificationReport) -> None:
    assert report.equal, report.diff.head(20).to_string()
    dead = report.local["big.dead_letter"]
    assert sorted(dead["event_id"]) == ["e2", "e4", "e8"]  # "7", "x" and an object do not compare with 100
    assert dead.set_index("event_id")["reason"].to_dict() == {
        "e2": "rule 'big' cannot evaluate 'amount > 100' on amount='7'",
        "e4": "rule 'big' cannot evaluate 'amount > 100' on amount='x'",
        "e8": "rule 'big' cannot evaluate 'amount > 100' on amount={'v': 1}",
    }


def check(report: VerificationReport) -> None:
    check_dead_letters(report)
    out = report.local["tiny"].set_index("event_id")
    assert len(out) == len(AMOUNTS) - 3
    assert out.loc["e1", "rule"] == "big" and out.loc["e6", "rule"] == "big"  # 10**400 > 100
    assert out.loc["e9", "rule"] == "tiny" and not out.loc["e3", "is_alert"]


@pytest.mark.slow
def test_rule_dead_letters_on_beam_equal_streamlab(tmp_path: Path) -> None:
    pytest.importorskip("apache_beam")
    check(verify(rules_pipeline(), sample(), "beam", workdir=tmp_path))


@pytest.mark.services
def test_rule_dead_letters_on_lambda_equal_streamlab(tmp_path: Path) -> None:
    pytest.importorskip("moto")
    report = verify(rules_pipeline(window=True), sample(), "lambda", workdir=tmp_path, lambda_batch_size=4)
    check_dead_letters(report)
    [window] = report.local["window"].to_dict("records")
    assert (window["count"], window["sum_is_alert"]) == (
        len(AMOUNTS) - 3,
        7,
    )  # 250.5, 10**400, 150, 300 big; 1, 0.5, True tiny
