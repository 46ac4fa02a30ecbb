"""ManualClock refuses a start that is not a time (None became NaT and the clock read a time in 1677;
'x' raised pandas' DateParseError; a year outside 1677 to 2262 an OverflowError)."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest

from streamlab import ManualClock
from streamlab.errors import ParameterError


@pytest.mark.parametrize(
    "start", [None, True, "x", "NaT", [1], 10**30, "3000-01-01", "1500-01-01", 1.5, np.float64(3e9)]
)
def test_a_start_that_is_not_a_time_is_refused(start: object) -> None:
    with pytest.raises(ParameterError) as e:
        ManualClock(start)  # type: ignore[arg-type]
    assert e.value.parameter == "start" and "ISO-8601" in e.value.fix


@pytest.mark.parametrize(
    "start",
    [
        0,
        "2024-01-01T00:00:00Z",
        "2024-01-01",
        datetime.datetime(2024, 1, 1),
        pd.Timestamp("2024-01-01", tz="UTC"),
    ],
)
def test_a_time_starts_the_clock(start: object) -> None:
    assert ManualClock(start).now() in (pd.Timestamp(0, tz="UTC"), pd.Timestamp("2024-01-01", tz="UTC"))  # type: ignore[arg-type]
