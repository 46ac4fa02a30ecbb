"""The vectorized parse path (arrow over newline-joined records) accepts exactly what the per-record
Python validator accepts, with the same values, whatever the records look like around line breaks."""

from __future__ import annotations

import json

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import ListSink, ListSource, ManualClock, Pipeline

SCHEMA = {"event_id": "string", "event_type": "category", "timestamp": "timestamp", "n": "int64"}
TS = '"timestamp": "2024-01-01T00:00:00Z"'


def good(i: int) -> bytes:
    return json.dumps(
        {"event_id": f"e{i}", "event_type": "click", "timestamp": f"2024-01-01T00:00:{i % 60:02d}Z", "n": i}
    ).encode()


TRICKY = [
    b'{"event_id": "a", ' + TS.encode() + b'}\n{"event_id": "b", ' + TS.encode() + b"}",  # two objects
    b'{"event_id": "a", ' + TS.encode() + b"}\n\n" + b'{"event_id": "b", ' + TS.encode() + b"}",
    b"   ",  # blank records, which a line reader would skip
    b"\n",
    b"\n\n",
    b" \n ",
    b' {"event_id": "lead", ' + TS.encode() + b"}",  # valid JSON with surrounding whitespace
    b'{"event_id": "trail", ' + TS.encode() + b"}\n",
    b'{"event_id": "trail2", ' + TS.encode() + b"} ",
    b'{"event_id": "pretty",\n ' + TS.encode() + b"\n}",
    b'{"event_id": "crlf", ' + TS.encode() + b"}\r\n",
    b'{"event_id": "cr", \r' + TS.encode() + b"}",
    b'{"event_id": "esc\\ny", ' + TS.encode() + b"}",
    b'{"event_id": "tab\ty", ' + TS.encode() + b"}",  # raw control character: invalid JSON
    b"{}",
    b'{"event_id": "dup", "event_id": "dup2", ' + TS.encode() + b"}",
    b'{"event_id": "a"}{"event_id": "b"}',
    b'{"event_id": "big", "n": 9223372036854775808, ' + TS.encode() + b"}",
    b'{"event_id": "float", "n": 1.0, ' + TS.encode() + b"}",
    b'{"event_id": "x", "event_type": 3, ' + TS.encode() + b"}",
    b'{"event_id": "naive", "timestamp": "2024-01-01T00:00:00"}',
    b'{"event_id": "no time", "timestamp": ""}',  # a required field without a value
    b'{"event_id": "nat", "timestamp": "NaT"}',
    b'{"event_id": "nanos", "timestamp": "2024-01-01T00:00:00.123456789Z"}',
    b'{"event_id": "unicode \xc3\xa9", ' + TS.encode() + b"}",
    b"[]",
    b"null",
]


def parse(records: list[bytes], batch_size: int | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = pd.DataFrame({"value": records, "i": range(len(records))})
    p = Pipeline(ListSource(frame, batch_size=batch_size))
    parsed = p.parse(SCHEMA, required=["timestamp"])
    ok, dead = ListSink(), ListSink()
    parsed.to(ok)
    parsed.dead_letter.to(dead)
    p.run(clock=ManualClock(0))
    return ok.frame(), dead.frame()


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from(range(len(TRICKY))), min_size=1, max_size=6),
    st.integers(60, 200),
    st.randoms(use_true_random=False),
    st.booleans(),
)
def test_vector_path_accepts_exactly_what_one_by_one_parsing_accepts(tricky, n_good, rnd, as_text):
    records: list[bytes | str] = [good(i) for i in range(n_good)] + [TRICKY[t] for t in tricky]
    rnd.shuffle(records)
    if as_text:  # records as text (some sources give str): the same decisions
        records = [r.decode("utf-8", "surrogateescape") if i % 2 else r for i, r in enumerate(records)]
    assert_one_batch_decides_as_batches_of_one(records)


def assert_one_batch_decides_as_batches_of_one(records: list[bytes | str]) -> None:
    # one batch: the arrow path sees the odd records among many good ones (chunks > 48 records)
    ok_all, dead_all = parse(records, None)
    # batches of one record: every record is judged on its own by the Python validator
    ok_one, dead_one = parse(records, 1)
    assert len(ok_all) + len(dead_all) == len(records)
    # categories differ between batches (ListSink concatenates them as strings): compare the values
    pd.testing.assert_frame_equal(
        ok_all.astype({"event_type": "str"}).reset_index(drop=True),
        ok_one.astype({"event_type": "str"}).reset_index(drop=True),
    )
    assert rejected(dead_all) == rejected(dead_one)


def rejected(dead: pd.DataFrame) -> list[tuple[int, str]]:
    return [] if dead.empty else list(zip(dead["i"].tolist(), dead["reason"].tolist()))


def epoch_record(i: int, t: str) -> bytes:
    return f'{{"event_id": "t{i}", "event_type": "click", "n": {i}, "timestamp": {t}}}'.encode()


CLEAN_EPOCHS = st.one_of(
    st.integers(-(10**9), 9 * 10**9).map(str),  # seconds
    st.integers(10**11 + 1, 9 * 10**12).map(str),  # milliseconds
    st.floats(-1e9, 9e12, allow_nan=False).map(repr),  # fractional seconds or milliseconds
)
ODD_EPOCHS = st.sampled_from(
    ["0", "-0", "1e3", "1704067200.5", "1704067200123.5", "9223372036", "9223372037", "9223372036854",
     "9223372036855", "-9223372036", "1e400", "true", "null", '"2024-01-01T00:00:00Z"',
     "9223372036854775808", "100000000000", "100000000001", "99999999999.99"]
)  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(["int", "float", "any"]).flatmap(
        lambda kind: st.lists(
            CLEAN_EPOCHS
            if kind == "any"
            else CLEAN_EPOCHS.filter(lambda t: ("." in t or "e" in t) == (kind == "float")),
            min_size=60,  # more than one arrow chunk (48 records)
            max_size=250,
        )
    ),
    st.lists(ODD_EPOCHS, max_size=3),
    st.randoms(use_true_random=False),
)
def test_epoch_timestamps_take_the_vector_path_with_the_same_values(clean, odd, rnd):
    stamps = clean + odd
    rnd.shuffle(stamps)
    assert_one_batch_decides_as_batches_of_one([epoch_record(i, t) for i, t in enumerate(stamps)])


def test_a_batch_of_epoch_timestamps_is_read_by_arrow():
    from streamlab._parse import ParseOperator

    records = [epoch_record(i, str(1_704_067_200_000 + i)) for i in range(500)]
    records += [epoch_record(500 + i, str(1_704_067_200 + i)) for i in range(500)]
    records += [epoch_record(1000 + i, repr(1_704_067_200.25 + i)) for i in range(500)]
    calls = []
    original = ParseOperator._python_rows
    ParseOperator._python_rows = lambda self, *a: calls.append(len(a[0])) or original(self, *a)  # type: ignore[method-assign]
    try:
        ok, dead = parse(records, 500)  # batches of integer ms, integer s and fractional s
    finally:
        ParseOperator._python_rows = original  # type: ignore[method-assign]
    assert dead.empty and len(ok) == 1500 and calls == []
    ts = ok.set_index("event_id")["timestamp"]
    assert ts["t0"] == pd.Timestamp(1_704_067_200_000, unit="ms", tz="UTC")
    assert ts["t500"] == pd.Timestamp(1_704_067_200, unit="s", tz="UTC")
    # a float in seconds is its exact value (a quarter second here), as the record-by-record path reads it
    assert ts["t1000"] == pd.Timestamp("2024-01-01T00:00:00.25Z")
