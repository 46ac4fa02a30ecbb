"""Event times from epoch numbers, datetimes and ISO text are exact to the nanosecond (issue #16's bug:
an int64 epoch-ms 1700000525610 became 1700000525609999872 ns through float64)."""

from __future__ import annotations

import json
from fractions import Fraction

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from streamlab import ManualClock, Pipeline, SessionWindow, TumblingWindow, agg
from streamlab._record import epoch_to_ns
from streamlab._time import NAT_NS, to_utc_ns
from streamlab.testing import ListSource

SECONDS = st.integers(-(9 * 10**9), 9 * 10**9)  # int64 nanoseconds hold about ±292 years
MILLIS = st.integers(10**11 + 1, 9 * 10**12)


@given(st.lists(SECONDS, max_size=30), st.lists(MILLIS, max_size=30))
def test_integer_epoch_seconds_and_milliseconds_are_exact(seconds: list[int], millis: list[int]) -> None:
    values = seconds + millis
    want = [v * 10**9 for v in seconds] + [v * 10**6 for v in millis]
    assert to_utc_ns(pd.Series(values, dtype="int64")).tolist() == want
    # nullable ints, and whole numbers pandas keeps as float64 because of a null, give the same
    with_null = pd.Series([*values, None], dtype="Int64")
    assert to_utc_ns(with_null).tolist() == [*want, NAT_NS]
    as_float = pd.Series([*values, None], dtype="float64")
    exact = [w for v, w in zip(values, want) if abs(v) < 2**53]
    got = to_utc_ns(as_float).tolist()
    assert [g for v, g in zip(values, got) if abs(v) < 2**53] == exact and got[-1] == NAT_NS


def test_epochs_beyond_int64_nanoseconds_are_missing_not_wrapped() -> None:
    huge = pd.Series([10**10, -(10**10), 10**13, 2**63 - 1], dtype="int64")  # seconds, seconds, ms, ms
    assert to_utc_ns(huge).tolist() == [NAT_NS] * 4
    assert to_utc_ns(pd.Series([1e300, float("inf")])).tolist() == [NAT_NS, NAT_NS]


@given(st.lists(st.integers(-(2 * 10**18), 2 * 10**18), max_size=30))
def test_datetimes_and_iso_text_are_exact(ns: list[int]) -> None:
    stamps = pd.Series(pd.to_datetime(ns, unit="ns", utc=True))
    assert to_utc_ns(stamps).tolist() == ns
    text = pd.Series([t.isoformat() for t in stamps])  # nanosecond ISO-8601 text
    assert to_utc_ns(text).tolist() == ns


def test_session_windows_over_epoch_millisecond_ints_start_at_the_input_times() -> None:
    times = [1700000525610, 1700000525611, 1700000535999, 1700000599001]
    frame = pd.DataFrame({"user": ["u"] * 4, "timestamp": times})
    p = Pipeline(ListSource(frame), name="exact")
    p.window(SessionWindow("5s"), key="user").agg(agg.count())
    out = p.run(clock=ManualClock(0))["window"].sort_values("window_start")
    starts = [t.value // 10**6 for t in out["window_start"]]
    assert starts == [1700000525610, 1700000535999, 1700000599001]
    assert all(t.value % 10**6 == 0 for t in out["window_start"])  # whole milliseconds, not 128 ns off


FLOAT_EPOCHS = st.one_of(
    st.floats(-(9 * 10**9), 9 * 10**9, allow_nan=False),  # seconds
    st.floats(10**11 + 1, 9 * 10**12),  # milliseconds
    st.integers(0, 2**43).map(lambda k: k / 1024),  # binary fractions of a second: ties of the nanosecond
)


def exact_ns(f: float) -> int:
    """The float's exact value in nanoseconds, rounded half to even (``Fraction`` arithmetic)."""
    return round(Fraction(f) * (10**6 if abs(f) > 1e11 else 10**9))


@given(st.lists(FLOAT_EPOCHS, min_size=1, max_size=40))
def test_float_epochs_are_their_exact_values_to_the_nanosecond(floats: list[float]) -> None:
    """Every path that reads an epoch float: the column conversion, the per-record parse (which the
    exported programs carry) and the vectorized parse of a batch of JSON records."""
    want = [exact_ns(f) for f in floats]
    assert to_utc_ns(pd.Series(floats, dtype="float64")).tolist() == want
    assert [epoch_to_ns(f) for f in floats] == want
    lines = [json.dumps({"i": i, "timestamp": f}).encode() for i, f in enumerate(floats)]
    for batch_size in (None, 1):  # the arrow path sees a whole batch; batches of one take the checked path
        p = Pipeline(ListSource(lines, batch_size=batch_size))
        parsed = p.parse({"i": "int64", "timestamp": "timestamp"})
        out = p.run(clock=ManualClock(0)).outputs[parsed.ref].sort_values("i")
        assert out["timestamp"].array.asi8.tolist() == want


def test_a_binary_fraction_of_a_second_is_the_instant_its_iso_text_names() -> None:
    """1704067223.25 s and 00:00:23.25Z are one instant: one 250 ms window counts both (the product of
    doubles made the float 128 ns early, into the window before)."""
    lines = [b'{"timestamp": 1704067223.25}', b'{"timestamp": "2024-01-01T00:00:23.25Z"}'] * 30
    p = Pipeline(ListSource(lines))
    p.parse({"timestamp": "timestamp"}).window(TumblingWindow("250ms")).agg(agg.count())
    out = p.run(clock=ManualClock(0)).outputs["window"]
    assert out["window_start"].tolist() == [pd.Timestamp("2024-01-01T00:00:23.25Z")]
    assert out["count"].tolist() == [60]


@given(
    st.lists(
        st.one_of(
            SECONDS, MILLIS, st.floats(-(9 * 10**9), 9 * 10**9), st.integers(10**13, 10**30), st.booleans()
        ),
        min_size=1,
        max_size=10,
    ),
    st.lists(st.sampled_from(["2024-01-01T00:00:00Z", "not a time", None]), min_size=1, max_size=3),
)
def test_epoch_numbers_beside_text_in_one_column_are_read_as_alone(numbers, texts) -> None:
    # records from several producers: numbers next to ISO text made an object column, where every
    # number was a missing time (dead letters), though alone in a column each one was read
    def alone(v):
        if isinstance(v, bool):
            return NAT_NS
        ns = epoch_to_ns(v)
        return ns if NAT_NS < ns < 2**63 else NAT_NS

    column = pd.Series([*numbers, *texts], dtype=object)
    text_ns = [1704067200000000000 if t == "2024-01-01T00:00:00Z" else NAT_NS for t in texts]
    assert to_utc_ns(column).tolist() == [alone(v) for v in numbers] + text_ns
