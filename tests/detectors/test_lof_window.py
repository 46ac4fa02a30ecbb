"""LocalOutlierFactorDetector's window on every river: river 0.23+ takes it as an engine, river 0.22 (the
newest for Python 3.10) has none, where streamlab's WindowedLocalOutlierFactor computes the same scores."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from river import anomaly

from streamlab._detector_record import Model, WindowedLocalOutlierFactor
from streamlab.detectors import LocalOutlierFactorDetector

from .test_detect import run

_ENGINE = "engine" in inspect.signature(anomaly.LocalOutlierFactor).parameters

# small values, often equal: ties between neighbours, samples equal to the scored one, missing features
samples = st.lists(
    st.fixed_dictionaries(
        {"a": st.sampled_from([0.0, 0.5, 1.0, 2.0, -3.25])},
        optional={"b": st.floats(-5, 5, allow_nan=False).map(lambda v: round(v, 1))},
    ),
    min_size=1,
    max_size=80,
)


@pytest.mark.skipif(
    not _ENGINE, reason="the reference, river's LocalOutlierFactor(engine=...), is river 0.23+"
)
@settings(max_examples=150, deadline=None)
@given(samples, st.integers(1, 5), st.integers(2, 30))
# on Python >= 3.12 (compensated float sum()) a `+=` loop of reachability distances scored the 5th 1 ulp off
@example([{"a": 0.0}, {"a": 0.0}, {"a": 0.0, "b": 4.2}, {"a": 0.5}, {"a": 0.0, "b": 1.0}], 3, 4)
def test_windowed_lof_scores_as_rivers_lof_on_a_lazy_search_window(
    xs: list[dict[str, float]], k: int, window: int
) -> None:
    from river import neighbors

    river_lof = anomaly.LocalOutlierFactor(n_neighbors=k, engine=neighbors.LazySearch(window_size=window))
    assert run(WindowedLocalOutlierFactor(k, window), xs) == run(river_lof, xs)


@settings(max_examples=100, deadline=None)
@given(samples, samples, st.integers(1, 4), st.integers(5, 20))
def test_a_sample_outside_the_window_counts_for_nothing(
    old: list[dict[str, float]], recent: list[dict[str, float]], k: int, window: int
) -> None:
    """After ``window`` more samples the old ones are forgotten: scores as if only the last were learned."""
    recent = (recent * window)[:window]
    slid, fresh = WindowedLocalOutlierFactor(k, window), WindowedLocalOutlierFactor(k, window)
    for x in old + recent:
        slid.learn_one(x)
    for x in recent:
        fresh.learn_one(x)
    probe = {"a": 0.5, "b": 1.0}
    assert slid.score_one(probe) == fresh.score_one(probe)


class _River022LocalOutlierFactor:
    """river 0.22's signature: no engine (it keeps every sample it learned)."""

    def __init__(self, n_neighbors: int = 10, distance_func: Any = None) -> None:
        raise AssertionError("river 0.22's LocalOutlierFactor has no window: it must not be used")


def test_the_detector_and_the_exported_model_work_on_a_river_without_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``LocalOutlierFactorDetector(...)`` raised TypeError (``engine``) on river 0.22, and so did the
    per-record model that exported jobs carry."""
    xs = [{"x": v} for v in [0.5, 0.45, 0.43, 0.44, 0.445, 0.45, 0.0, 0.46, 0.5, 3.0]]
    expected = run(WindowedLocalOutlierFactor(3, 6), xs)
    monkeypatch.setattr(anomaly, "LocalOutlierFactor", _River022LocalOutlierFactor)
    assert run(LocalOutlierFactorDetector(n_neighbors=3, window_size=6), xs) == expected
    model = Model({"kind": "local_outlier_factor", "n_neighbors": 3, "window_size": 6})
    assert run(model, xs) == expected
    assert expected[6] > 5  # 0.0 beside the values near 0.45
