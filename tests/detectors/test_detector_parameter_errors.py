"""Detector parameters that cannot work are refused when the detector is built, with ParameterError
naming the parameter and a fix: a Half-Space Trees forest too large for memory (height=10**6 built
fine and exhausted memory on the first event), an infinite RBF gamma, a huge n_components."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from streamlab.detectors import GaussianScorerDetector, HalfSpaceTreesDetector, OneClassSVMDetector
from streamlab.errors import ParameterError

CASES: dict[str, tuple[Callable[[], Any], str]] = {
    "hst height huge": (lambda: HalfSpaceTreesDetector(height=10**6), "height"),
    "hst height 40": (lambda: HalfSpaceTreesDetector(height=40), "height"),
    "hst trees huge": (lambda: HalfSpaceTreesDetector(n_trees=10**9), "n_trees"),
    "hst trees zero": (lambda: HalfSpaceTreesDetector(n_trees=0), "n_trees"),
    "svm components huge": (lambda: OneClassSVMDetector(n_components=10**9), "n_components"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_parameter_that_cannot_work_is_refused_when_built(name: str) -> None:
    build, parameter = CASES[name]
    with pytest.raises(ParameterError) as e:
        build()
    assert e.value.parameter == parameter and e.value.fix


def test_an_infinite_gamma_is_refused() -> None:
    with pytest.raises(ValueError, match="gamma must be a positive number"):
        OneClassSVMDetector(gamma=float("inf"))


def test_river_sized_forests_still_build() -> None:
    assert HalfSpaceTreesDetector(n_trees=25, height=15).vectorized(("a",)) is not None
    assert HalfSpaceTreesDetector(n_trees=1, height=21) is not None


def test_a_gaussian_window_of_one_value_is_refused() -> None:
    # one value has no spread: every event scored 1.0 (anomalous), silently
    with pytest.raises(ParameterError) as e:
        GaussianScorerDetector(window_size=1)
    assert e.value.parameter == "window_size" and "integer >= 2" in e.value.problem
    assert GaussianScorerDetector(window_size=2) is not None
