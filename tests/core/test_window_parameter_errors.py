"""Windows refuse a size, every, gap or offset that is not a positive duration with ParameterError
naming the parameter and a fix (a ValueError, as before), not parse_duration's bare ValueError or, for
a bool, TypeError."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import SessionWindow, SlidingWindow, TumblingWindow
from streamlab.errors import ParameterError

CASES: dict[str, tuple[Callable[[], Any], str]] = {
    "tumbling size bool": (lambda: TumblingWindow(True), "size"),  # type: ignore[arg-type]
    "tumbling size text": (lambda: TumblingWindow("abc"), "size"),
    "tumbling size zero": (lambda: TumblingWindow(0), "size"),
    "tumbling size too long": (lambda: TumblingWindow("99999999999d"), "size"),
    "tumbling offset text": (lambda: TumblingWindow("1m", offset="x"), "offset"),
    "sliding every None": (lambda: SlidingWindow("1m", every=None), "every"),  # type: ignore[arg-type]
    "sliding every above size": (lambda: SlidingWindow("1m", every="5m"), "every"),
    "session gap list": (lambda: SessionWindow([1]), "gap"),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_window_duration_that_cannot_work_is_a_parameter_error(name: str) -> None:
    build, parameter = CASES[name]
    with pytest.raises(ParameterError) as e:
        build()
    assert e.value.parameter == parameter and e.value.fix


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.text(max_size=6),
        st.integers(min_value=-(10**25), max_value=10**25),
        st.floats(allow_nan=True, allow_infinity=True),
        st.lists(st.integers(), max_size=1),
    )
)
def test_any_size_builds_a_window_or_raises_a_parameter_error(size: object) -> None:
    for make in (TumblingWindow, SessionWindow, lambda s: SlidingWindow(s, every=s)):
        try:
            make(size)  # type: ignore[operator]
        except ParameterError as e:
            assert e.fix


def test_an_unknown_column_of_a_frame_with_number_names_is_reported() -> None:
    # the suggestion code lowered each known name: a frame's int column names raised AttributeError
    import numpy as np
    import pandas as pd

    from streamlab import Pipeline, agg
    from streamlab.errors import PipelineConfigError
    from streamlab.sources import ReplaySource

    p = Pipeline(ReplaySource(pd.DataFrame(np.zeros((2, 2)))), name="numbers")
    with pytest.raises(PipelineConfigError, match="unknown column 'a'"):
        p.window(TumblingWindow("1m"), key="a").agg(agg.count())
