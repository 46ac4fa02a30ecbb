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


@settings(max_examples=60, deadline=None)
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
    # one batch: the arrow path sees the tricky records among many good ones (chunks > 48 records)
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
