"""ReplaySource's raw JSON lines: split by arrow into a binary column, equal to a plain split."""

from __future__ import annotations

import gzip

import pandas as pd
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import ListSink, ManualClock, Pipeline, ReplaySource
from streamlab import _lines as lines_module
from streamlab._lines import LineBlocks, file_lines

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
    assert file_lines(path).dtype == pd.ArrowDtype(pa.binary())


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


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.sampled_from(PIECES), max_size=30),
    st.booleans(),
    st.integers(1, 9),
    st.lists(st.integers(1, 6), min_size=1, max_size=8),
    st.integers(0, 12),
)
def test_lines_read_block_by_block_equal_a_plain_split(tmp_path_factory, parts, gz, min_read, takes, start):
    """Blocks of any size, batches of any size, any resume position: the same lines, and the count left."""
    data = b"".join(parts)
    path = tmp_path_factory.mktemp("blocks") / ("x.jsonl.gz" if gz else "x.jsonl")
    path.write_bytes(gzip.compress(data) if gz else data)
    want = split_reference(data)
    start = min(start, len(want))
    blocks = LineBlocks(path, start, min_read=min_read)
    assert blocks.taken == start and blocks.left() == len(want) - start
    got: list[bytes] = []
    for i in range(len(want) + 1):
        limit = takes[i % len(takes)]
        lines = blocks.take(limit).tolist()
        assert len(lines) == min(limit, len(want) - start - len(got))
        got += lines
        assert blocks.left() == len(want) - start - len(got)
        assert blocks.done == (len(got) == len(want) - start)
    assert got == want[start:]
    blocks.close()


def test_a_raw_replay_reads_its_file_as_it_goes_and_reports_its_position(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(b'{"k":%d}\n' % i for i in range(1000)))
    reader = ReplaySource(path, raw=True, batch_size=300).open()
    assert reader.lag() == 1000  # counted apart, for progress bars
    first = reader.poll(10_000)
    assert first["value"].tolist()[:2] == [b'{"k":0}', b'{"k":1}'] and len(first) == 300
    assert first["value"].dtype == pd.ArrowDtype(pa.binary())
    assert reader.lag() == 700 and reader.snapshot() == {"position": 300}
    resumed = ReplaySource(path, raw=True, batch_size=300).open(resume=reader.snapshot())
    assert resumed.poll(10)["value"].tolist()[0] == b'{"k":300}' and resumed.lag() == 690
    while reader.poll(10_000) is not None:
        pass
    assert reader.done and reader.lag() == 0 and reader.snapshot() == {"position": 1000}
    reader.close()
    resumed.close()


def test_a_streamed_replay_hands_arrow_each_blocks_own_bytes(tmp_path, monkeypatch):
    """Blocks smaller than a batch: every batch still reaches arrow as the file's bytes, parsed as before."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(b'{"k":%d,"t":"x"}\n' % i for i in range(3000)) + b"bad\n")
    monkeypatch.setattr(LineBlocks.__init__, "__kwdefaults__", {"min_read": 4096})
    slices: list[bool] = []
    real = lines_module.file_slice

    def spy(arr):
        found = real(arr)
        slices.append(found is not None)
        return found

    monkeypatch.setattr("streamlab._parse.file_slice", spy)
    p = Pipeline(ReplaySource(path, raw=True, batch_size=700))
    ok, dead = ListSink(), ListSink()
    parsed = p.parse({"k": "int64", "t": "string"}, time=None)
    parsed.to(ok)
    parsed.dead_letter.to(dead)
    p.run(clock=ManualClock(0), batch_size=700)
    assert ok.frame()["k"].tolist() == list(range(3000)) and dead.frame()["raw"].tolist() == [b"bad"]
    assert len(slices) == 5 and all(slices)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.one_of(st.sampled_from([*PIECES, b"\t", b"\x00", b"~", b"\x7f", b"\x80"]), st.binary()),
        max_size=20,
    )
)
def test_the_split_measures_the_least_and_greatest_byte_of_its_lines(parts):
    """The bounds a block's split keeps (which spare the parse step its scans) are its lines' exact ones."""
    data = b"".join(parts)
    lines, cr, extremes = lines_module._split(pa.py_buffer(data), len(data))
    want = split_reference(data)
    assert (lines.tolist() if isinstance(lines, list) else lines.to_pylist()) == want
    body = b"".join(want)
    if cr is not None:  # lines that lost a "\r" are never registered: no bounds needed
        assert extremes is None and any(ln.endswith(b"\r") for ln in data.split(b"\n"))
    else:
        assert extremes == ((min(body), max(body)) if body else lines_module._NO_BYTES)


def test_a_batch_of_file_lines_carries_bounds_on_its_bytes(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(b'{"k":%d}\n' % i for i in range(1000)) + b'{"k":"\xc3\xa9"}\n')
    blocks = LineBlocks(path, min_read=64)
    first = pa.array(blocks.take(400), pa.binary())
    least, greatest = lines_module.line_extremes(first)
    assert least <= min(b"".join(first.to_pylist())) and greatest >= max(b"".join(first.to_pylist()))
    rest = pa.array(blocks.take(700), pa.binary())
    assert lines_module.line_extremes(rest) == (ord('"'), 0xC3)
    assert lines_module.line_extremes(pa.array([b'{"k":1}'])) is None
    blocks.close()
