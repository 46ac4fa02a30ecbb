"""ReplaySource's raw JSON lines: split by arrow into a binary column, equal to a plain split."""

from __future__ import annotations

import gzip

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import ListSink, ManualClock, Pipeline, ReplaySource
from streamlab._lines import file_lines

PIECES = [b"\n", b"\r", b"\r\n", b"{", b"}", b"a", b"\r\r\n", b"\n\n", b"\xff", b'{"k":1}']


def split_reference(data: bytes) -> list[bytes]:
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=30), st.booleans())
def test_lines_equal_a_plain_split(tmp_path_factory, parts, gz):
    data = b"".join(parts)
    path = tmp_path_factory.mktemp("lines") / ("x.jsonl.gz" if gz else "x.jsonl")
    path.write_bytes(gzip.compress(data) if gz else data)
    assert file_lines(path).tolist() == split_reference(data)
    assert file_lines(path).dtype == pd.ArrowDtype(__import__("pyarrow").binary())


def test_raw_replay_of_a_file_parses_and_dead_letters_as_before(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        b'{"event_type":"a","timestamp":"2024-01-01T00:00:01Z"}\r\n'
        b"not json\n"
        b"\n"
        b'{"event_type":"b","timestamp":"2024-01-01T00:00:02Z"}'
    )
    p = Pipeline(ReplaySource(path, raw=True))
    ok, dead = ListSink(), ListSink()
    parsed = p.parse({"event_type": "string", "timestamp": "timestamp"})
    parsed.to(ok)
    parsed.dead_letter.to(dead)
    p.run(clock=ManualClock(0))
    assert ok.frame()["event_type"].tolist() == ["a", "b"]
    assert dead.frame()["raw"].tolist() == [b"not json", b""]
