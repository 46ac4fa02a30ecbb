"""A ``json`` field whose value a window's aggregator cannot take (an object summed, a list counted
distinct) sends its row to the window's dead letters with streamlab's reason, in the exported Beam
pipeline and Lambda handler alike, where the exported code used to fail on it (``float(dict)``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab._detector_record import unfit_reason
from streamlab.export import verify
from streamlab.export.verify import VerificationReport
from streamlab.testing import ListSource

LINES = [
    b'{"timestamp": 1, "v": 1, "s": "a"}',
    b'{"timestamp": 2, "v": {"a": 1}}',
    b'{"timestamp": 3, "v": "x"}',
    b'{"timestamp": 4, "v": "2", "s": [1]}',
]
REASONS = {
    2: "agg.sum('v') needs a number, got dict {'a': 1}",
    3: "agg.sum('v') needs a number, got str 'x'",
    4: "agg.count_distinct('s') needs values it can tell apart (hashable: not a dict or a list), got list [1]",
}


def pipeline() -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="unfit")
    p.parse({"timestamp": "timestamp", "v": "json", "s": "json"}).window(TumblingWindow("1m")).agg(
        agg.sum("v"), agg.count_distinct("s")
    )
    return p


def _reasons(frame: object) -> dict[int, str]:
    import pandas as pd

    assert isinstance(frame, pd.DataFrame)
    seconds = [int(pd.Timestamp(t).timestamp()) for t in frame["timestamp"]]
    return dict(zip(seconds, frame["reason"].tolist()))


def check(report: VerificationReport) -> None:
    assert report.equal, report.diff.to_string()
    assert _reasons(report.local["window.dead_letter"]) == REASONS
    assert _reasons(report.exported["window.dead_letter"]) == REASONS
    assert set(report.exported["window.dead_letter"]["step_id"]) == {"window"}
    assert report.exported["window"]["sum_v"].tolist() == [1.0]


def test_unfit_reason_is_the_runtimes_rule() -> None:
    checks = [("sum", "v", True), ("count_distinct", "s", False)]
    assert unfit_reason({"v": {"a": 1}}, (), checks) == REASONS[2]
    assert unfit_reason({"v": "2", "s": [1]}, (), checks) == REASONS[4]
    assert unfit_reason({"v": None, "s": "a"}, (), checks) is None
    assert unfit_reason({"k": [1]}, ("k",), checks) == "key column 'k' holds list [1], which cannot be a key"


@pytest.mark.slow
def test_unfit_values_on_beam_go_to_the_window_dead_letter(tmp_path: Path) -> None:
    pytest.importorskip("apache_beam")
    check(verify(pipeline(), LINES, "beam", workdir=tmp_path))


@pytest.mark.services
def test_unfit_values_on_lambda_go_to_the_window_dead_letter(tmp_path: Path) -> None:
    pytest.importorskip("moto")
    check(verify(pipeline(), LINES, "lambda", workdir=tmp_path))
