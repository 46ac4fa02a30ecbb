"""A pattern step's condition may name a column that is no identifier in backticks (`` `unit price` > 3``),
as filters and rules do: ``PatternStep("a", "`unit price` > 3")`` was refused as invalid syntax although
the pattern engine evaluates such a condition. The exported Beam and Spark jobs give streamlab's matches
(run through ``verify``, as deployed), and so does Flink, whose DataStream job runs such a pattern, naming why it has no MATCH_RECOGNIZE form."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamlab import Pipeline
from streamlab.detectors import Pattern, PatternStep
from streamlab.export import verify
from streamlab.export.flink_pattern import pattern_refusal
from streamlab.export.verify import run_local
from streamlab.testing import ListSource

SCHEMA = {
    "event_id": "string",
    "user_id": "string",
    "timestamp": "timestamp",
    "unit price": {"type": "float64", "path": "unit price"},
    "event type": {"type": "string", "path": "event type"},
}


def quoted() -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="quoted")
    p.parse(SCHEMA).pattern(
        "user_id",
        [PatternStep("big", "`unit price` > 3", times=2), PatternStep("buy", "`event type` == 'buy'")],
        within="1m",
        delay="5s",
        step_id="spree",
    )
    return p


def lines() -> list[bytes]:
    return [
        json.dumps(
            {
                "event_id": f"e{i}",
                "user_id": f"u{i % 3}",
                "timestamp": 1_700_000_000_000 + i * 2000,
                **({"unit price": (i * 7) % 10 * 1.0} if i % 5 else {}),
                "event type": "buy" if i % 4 == 0 else "view",
            }
        ).encode()
        for i in range(60)
    ]


def test_a_backtick_quoted_column_is_accepted_and_matched_in_streamlab() -> None:
    assert PatternStep("a", "`unit price` > 3").where == "`unit price` > 3"
    out = run_local(quoted(), lines())["spree"]
    assert out["event_ids"].tolist()[:2] == [["e1", "e4", "e16"], ["e2", "e8", "e20"]]
    assert len(out) == 6


@pytest.mark.parametrize(
    "where, words",
    [("`unit price > 3", "backtick-quoted name is not closed"), ("`unit price` >", "not a valid expression")],
)
def test_a_broken_condition_is_still_refused_naming_the_step(where: str, words: str) -> None:
    with pytest.raises(ValueError, match=rf"PatternStep\('a'\): where=.*{words}"):
        PatternStep("a", where)


def test_flink_runs_it_in_the_datastream_job_naming_why() -> None:
    cfg = Pattern(key="k", within="1m", steps=[("a", "`unit price` > 3"), ("b", "`event type` == 'buy'")])
    assert "step 'a': only conditions of the form column == literal" in (pattern_refusal(cfg) or "")


@pytest.mark.parametrize("target", ["beam", "spark", "flink"])
def test_backtick_quoted_pattern_exports_equal(target: str, tmp_path: Path) -> None:
    report = verify(quoted(), lines(), target, workdir=tmp_path)
    assert report.equal, report.diff.head(20).to_string()
    assert report.counts["spree"] == {"streamlab": 6, target: 6}


def test_an_equality_on_a_backtick_quoted_column_translates_to_match_recognize() -> None:
    # `event type` == 'buy' IS of the form column == literal: it was refused "only conditions of the
    # form column == literal translate" for its backticks, and the Flink export fell back to DataStream
    cfg = Pattern(
        key="k", within="1m", steps=[("v", "`event type` == 'view'"), ("b", "`event type` == 'buy'")]
    )
    assert pattern_refusal(cfg) is None


def test_a_backtick_equality_pattern_runs_as_flink_sql_equal_to_streamlab(tmp_path: Path) -> None:
    p = Pipeline(ListSource([b"{}"]), name="quoted_sql")
    p.parse(SCHEMA).pattern(
        "user_id",
        [
            PatternStep("views", "`event type` == 'view'", times=2),
            PatternStep("buy", "`event type` == 'buy'"),
        ],
        within="1m",
        step_id="spree",
    )
    files = p.to_flink(str(tmp_path / "export"))
    assert "`event type` = 'view'" in files.read("main.py")
    report = verify(p, lines(), "flink", workdir=tmp_path / "verify", flink_job="sql")
    assert report.equal, report.diff.head(20).to_string()
    assert report.counts["spree"]["streamlab"] > 0
