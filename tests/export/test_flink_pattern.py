"""Flink export of pattern steps: MATCH_RECOGNIZE for the subset that maps exactly, refusals naming the rest.

The engine check is in test_flink_export.py (``every_case`` holds a pattern step: its matches on Flink
equal streamlab's, at the time bound's edge too); these tests cover the translation and the refusals.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streamlab import Pipeline
from streamlab.detectors import Pattern, PatternStep
from streamlab.export import to_flink
from streamlab.export.flink_pattern import match_recognize, pattern_refusal
from streamlab.testing import ListSource

from ._samples import SCHEMA


def test_a_translatable_pattern_becomes_match_recognize_in_both_jobs(tmp_path: Path) -> None:
    p = Pipeline(ListSource([b"{}"]), name="takeover")
    p.parse(SCHEMA).pattern(
        "user_id",
        [("views", "event_type == 'view'", 3), ("buy", "'buy' == event_type")],
        within="10m",
        delay="5s",
        step_id="funnel",
    )
    out = to_flink(p, tmp_path, source="files")
    sql = out.read("job.sql")
    assert "MATCH_RECOGNIZE (" in sql and "PARTITION BY `user_id`" in sql
    # three views (one variable each, a gap before each next one), then the buy; within + 1 ms
    assert (
        "PATTERN (S0_1 G1*? S0_2 G2*? S0_3 G3*? S1_1) WITHIN INTERVAL '0 00:10:00.001' DAY TO SECOND(3)"
        in sql
    )
    assert "G3 AS NOT (G3.`event_type` = 'buy')" in sql and "AFTER MATCH SKIP PAST LAST ROW" in sql
    assert "COALESCE(JSON_STRING(`event_ids`)" in sql  # the matched ids, a JSON array in each output line
    assert "MATCH_RECOGNIZE" in out.read("main.py") and "datastream.py" not in out.files


@pytest.mark.parametrize(
    ("steps", "words"),
    [
        ([("a", "amount > 100"), ("b", "event_type == 'buy'")], "step 'a': only conditions of the form"),
        ([("a", "event_type == 'view'"), ("b", "user_id == 'u1'")], "test different columns"),
        ([("a", "event_type == 'view'"), ("b", "event_type == 'view'")], "same value"),
        (
            [
                PatternStep("a", "event_type == 'pay'"),
                PatternStep("b", "event_type == 'refund'", differs_from={"user_id": "a"}),
            ],
            "step 'b': differs_from",
        ),
    ],
)
def test_patterns_without_an_exact_form_go_to_the_datastream_job_naming_why(
    steps: list[object], words: str, tmp_path: Path
) -> None:
    p = Pipeline(ListSource([b"{}"]), name="refused")
    p.parse(SCHEMA).pattern("user_id", steps, within="1m", step_id="fraud")
    assert words in (pattern_refusal(p.steps["fraud"].config) or "")  # type: ignore[attr-defined]
    out = to_flink(p, tmp_path)  # the DataStream job runs streamlab's own pattern instead, and says why
    assert sorted(out.files) == ["README.md", "datastream.py", "main.tf", "requirements.txt"]
    readme = " ".join(out.read("README.md").split())
    assert re.search(f"step `fraud` .*no exact MATCH_RECOGNIZE form.*{words}", readme), readme[:800]
    assert "'fraud': {'kind': 'pattern'" in out.read("datastream.py")


def test_literals_are_quoted_for_sql() -> None:
    pattern = Pattern(key="k", within="1m", steps=[("a", 'kind == "it\'s"'), ("b", "kind == 2")])
    sql = match_recognize(pattern, "`src`", "INTERVAL '1' MINUTE")
    assert "S0_1.`kind` = 'it''s'" in sql and "S1_1.`kind` = 2" in sql
    assert "WHERE `kind` IN ('it''s', 2)" in sql
