"""The Flink export refuses an ADWIN that the river its job runs cannot run: ``max_buckets=1`` divides
by zero in river 0.23 (``FLINK_RIVER_VERSION``) after 11 values, which stopped the deployed job, where
the river streamlab runs on (0.26) takes it. Refused before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamlab import Pipeline
from streamlab.detectors import DriftDetector
from streamlab.errors import PipelineConfigError
from streamlab.export.flink import FLINK_RIVER_VERSION, to_flink
from streamlab.testing import ListSource


def drifting(params: dict[str, object]) -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="drift")
    p.parse({"amount": "float64", "timestamp": "timestamp"}).apply(
        DriftDetector("amount", method="adwin", params=params), step_id="drift"
    )
    return p


def test_adwin_with_one_bucket_is_refused_naming_the_step_and_the_fix(tmp_path: Path) -> None:
    try:
        p = drifting({"max_buckets": 1})
    except ValueError as e:  # the local river divides by zero too (Python 3.10's 0.22): refused earlier
        assert "max_buckets=1" in str(e)
        return
    with pytest.raises(
        PipelineConfigError, match=r"step 'drift'.*max_buckets=1 divides by zero in river"
    ) as e:
        to_flink(p, str(tmp_path / "out"))
    assert FLINK_RIVER_VERSION in str(e.value) and "'max_buckets': 2" in str(e.value)
    assert not (tmp_path / "out").exists()


def test_adwin_with_two_buckets_exports(tmp_path: Path) -> None:
    out = to_flink(drifting({"max_buckets": 2}), str(tmp_path / "out"))
    assert "max_buckets" in out.read("datastream.py") or "max_buckets" in out.read("main.py")
