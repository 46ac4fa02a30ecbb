"""ReplaySource's raw JSON lines: split by arrow into a binary column, equal to a plain split."""

from __future__ import annotations

import gzip
import zlib
from unittest.mock import patch

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import ListSink, ManualClock, Pipeline, ReplaySource, TumblingWindow, agg
from streamlab import _lines as lines_module
from streamlab import _parse as parse_module
from streamlab import sources as sources_module
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
    assert reader.lag() == 700 and reader.snapshot()["position"] == 300
    resumed = ReplaySource(path, raw=True, batch_size=300).open(resume=reader.snapshot())
    assert resumed.poll(10)["value"].tolist()[0] == b'{"k":300}' and resumed.lag() == 690
    while reader.poll(10_000) is not None:
        pass
    assert reader.done and reader.lag() == 0 and reader.snapshot()["position"] == 1000
    reader.close()
    resumed.close()


def test_a_streamed_replay_hands_arrow_each_blocks_own_bytes(tmp_path, monkeypatch):
    """Blocks smaller than a batch: every batch reaches arrow as the file's bytes, its lines never cut
    out (only the dead letter's record is), parsed as before."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(b'{"k":%d,"t":"x"}\n' % i for i in range(3000)) + b"bad\n")
    monkeypatch.setattr(sources_module.LineBlocks.__init__, "__kwdefaults__", {"min_read": 4096})
    line_array = parse_module.LineArray
    handed: list = []
    read: list[int] = []
    real_bytes, real_read = line_array.file_bytes, parse_module.ParseOperator._read

    def spy_bytes(self):
        found = real_bytes(self)
        handed.append((self, None if found is None else found[0].address))
        return found

    def spy_read(self, buf, *args):
        read.append(pa.py_buffer(buf).address)
        return real_read(self, buf, *args)

    monkeypatch.setattr(line_array, "file_bytes", spy_bytes)
    monkeypatch.setattr(parse_module.ParseOperator, "_read", spy_read)
    p = Pipeline(ReplaySource(path, raw=True, batch_size=700))
    ok, dead = ListSink(), ListSink()
    parsed = p.parse({"k": "int64", "t": "string"}, time=None)
    parsed.to(ok)
    parsed.dead_letter.to(dead)
    p.run(clock=ManualClock(0), batch_size=700)
    assert ok.frame()["k"].tolist() == list(range(3000)) and dead.frame()["raw"].tolist() == [b"bad"]
    assert len(handed) == 5 and None not in [a for _, a in handed]
    # four clean batches read by arrow from the blocks themselves; the fifth ("bad") record by record
    assert read[:4] == [a for _, a in handed[:4]] and handed[4][1] not in read
    assert all(lines._arr is None for lines, _ in handed)  # the lines were never copied out


def test_a_block_with_other_control_bytes_is_split_and_parsed_as_before(tmp_path):
    """Carriage returns, tabs, NULs: those blocks are cut into lines as before, with the same outcome."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"k":1}\r\n{"k":\t2}\n{"k":3}\n{"k":"\x00"}\n{"k":5}')
    reader = ReplaySource(path, raw=True).open()
    batch = reader.poll(100)
    assert not isinstance(batch["value"].array, sources_module.LineBlocks.take.__globals__["LineArray"])
    assert batch["value"].tolist() == [b'{"k":1}', b'{"k":\t2}', b'{"k":3}', b'{"k":"\x00"}', b'{"k":5}']
    reader.close()


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


def test_a_batch_of_file_lines_carries_its_bytes_and_whether_they_are_ascii(tmp_path):
    """Clean blocks are not split: a batch is the block's bytes, its lines' lengths, and whether all
    bytes are ASCII (which spares the parse step its scans); runs of it stay so."""
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(b'{"k":%d}\n' % i for i in range(1000)) + b'{"k":"\xc3\xa9"}')
    blocks = sources_module.LineBlocks(path, min_read=64)
    first = blocks.take(400).array
    data, starts, lens, ascii = first.file_bytes()
    assert data.to_pybytes() == b"".join(b'{"k":%d}\n' % i for i in range(400)) and ascii
    assert lens.tolist() == [len(b'{"k":%d}' % i) for i in range(400)]
    assert starts.tolist() == [sum(len(b'{"k":%d}\n' % j) for j in range(i)) for i in range(400)]
    part = first[10:13]
    assert part.file_bytes()[0].to_pybytes() == b'{"k":10}\n{"k":11}\n{"k":12}\n'
    assert list(part) == [b'{"k":10}', b'{"k":11}', b'{"k":12}'] and len(first[400:]) == 0
    rest = blocks.take(700).array
    data, starts, lens, ascii = rest.file_bytes()
    assert not ascii and data.to_pybytes().endswith(b'{"k":"\xc3\xa9"}') and lens[-1] == 10
    assert rest.records(np.array([600, 0])) == [b'{"k":"\xc3\xa9"}', b'{"k":400}']
    assert rest[-1:].records(np.array([0])) == [b'{"k":"\xc3\xa9"}'] and len(rest[601:]) == 0
    assert pd.Series(rest).tolist() == [b'{"k":%d}' % i for i in range(400, 1000)] + [b'{"k":"\xc3\xa9"}']
    blocks.close()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            [
                b"\n",
                b"\r",
                b"\t",
                b"\x00",
                b"\x1f",
                b" ",
                b"{}",
                b'{"k":1}',
                b"x" * 9,
                b"\xc3\xa9",
                b"{",
                b"}",
            ]
        ),
        max_size=60,
    ),
    st.integers(0, 7),
    st.sampled_from([1, 3, 8, 1 << 20]),
)
def test_the_word_wise_break_search_finds_every_byte_below_0x20(parts, skip, scan):
    """Eight bytes at a time, with lines shorter than a word, at any alignment, in steps of any size:
    every low byte, in order, and whether all bytes are ASCII and all lines shaped as a JSON object."""
    view = np.frombuffer(b"#" * skip + b"".join(parts), np.uint8)[skip:]
    assert lines_module._low_bytes(view).tolist() == np.flatnonzero(view < 0x20).tolist()
    assert (
        lines_module._low_bytes(view.view(np.int8)).tolist()
        == np.flatnonzero((view < 0x20) | (view >= 0x80)).tolist()
    )
    with patch.object(lines_module, "_SCAN", scan):
        found = lines_module._breaks(view)
    if bool((view[view < 0x20] == 10).all()):
        assert found is not None and found.at.tolist() == np.flatnonzero(view == 10).tolist()
        assert found.ascii == bool((view < 0x80).all())
        lines = bytes(view).split(b"\n")
        if lines[-1] == b"":  # the view ends with its last line's break
            lines.pop()
        assert found.shaped == (bool(lines) and all(ln[:1] == b"{" and ln[-1:] == b"}" for ln in lines))
    else:
        assert found is None


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40), st.integers(0, 255), st.sampled_from([1, 3, 1 << 30]))
def test_the_byte_search_of_the_parse_step_agrees_with_a_comparison(data, value, piece):
    """Only the view's own bytes count (the parse step searches inside a buffer, its ends left out), in
    pieces of any size (a fixed-width string must stay below 2 GiB)."""
    around = bytes([value])
    view = np.frombuffer(around + data + around * 2, np.uint8)[1:-2]
    with patch.object(parse_module, "_FIND_PIECE", piece):
        assert parse_module._holds_byte(view, value) == (value in data)


def test_a_blocks_memory_is_reused_only_once_nothing_refers_to_it(tmp_path):
    """Batches still referred to keep their bytes while later blocks are read; the memory of those
    dropped is read into again (a replay works within a few arrays, not one per block)."""
    path = tmp_path / "events.jsonl"
    want = [b'{"k":%d,"pad":"%s"}' % (i, b"x" * (i % 50)) for i in range(6000)]
    path.write_bytes(b"\n".join(want) + b"\n")
    allocate = pa.allocate_buffer
    with (
        patch.object(pa, "allocate_buffer", wraps=allocate) as fresh,
        patch.dict(lines_module._IDLE, clear=True),
    ):
        blocks = LineBlocks(path, min_read=4096)
        kept = []
        for i in range(0, len(want), 200):
            batch = blocks.take(200)
            if i % 400 == 0:  # every other batch stays
                kept.append((i, batch))
        blocks.close()
    for i, batch in kept:
        assert isinstance(batch.array, lines_module.LineArray)
        assert batch.array.file_bytes()[0].to_pybytes() == b"".join(w + b"\n" for w in want[i : i + 200])
    assert len(kept) <= fresh.call_count < len(kept) + 5  # 30 blocks read


def test_a_finished_replay_gives_its_block_memory_back_without_the_garbage_collector(tmp_path):
    """Once a run over a raw replay is dropped, every block's memory waits for the next replay: nothing
    of the run (its input tape's batches, the reader's last block) is kept in a reference cycle that
    only the garbage collector would free; a second replay then reads into that memory, not fresh."""
    import gc

    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(b'{"k":%d,"pad":"%s"}\n' % (i, b"x" * (i % 50)) for i in range(20_000)))

    def replay() -> list[int]:
        p = Pipeline(ReplaySource(path, raw=True, batch_size=5_000))
        sink = ListSink()
        p.parse({"k": "int64"}, time=None).to(sink)
        p.run(clock=ManualClock(0), batch_size=5_000)
        return sink.frame()["k"].tolist()

    allocate = pa.allocate_buffer
    gc.disable()
    try:
        with (
            patch.dict(lines_module._IDLE, clear=True),
            patch.object(lines_module, "_KEEP_IDLE", 1 << 30),
        ):
            assert replay() == list(range(20_000))
            assert lines_module._IDLE, "no block memory came back once the run was dropped"
            with patch.object(pa, "allocate_buffer", wraps=allocate) as fresh:
                assert replay() == list(range(20_000))
            assert fresh.call_count == 0  # every block of the second replay reused the first's memory
    finally:
        gc.enable()


@pytest.mark.parametrize("raw", [True, False])
@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_a_byte_order_mark_at_the_start_of_a_file_is_not_part_of_its_first_record(tmp_path, raw, suffix):
    # a file written with UTF-8's byte order mark (as Windows tools write it) lost its first record to
    # the dead letters ("invalid JSON: Expecting value"), or failed to load at all without raw=True
    text = '{"event_id": "1", "timestamp": "2024-01-01T00:00:01Z"}\n{"event_id": "2", "timestamp": "2024-01-01T00:00:02Z"}\n'
    data = text.encode("utf-8-sig")
    path = tmp_path / f"bom{suffix}"
    path.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    p = Pipeline(ReplaySource(path, raw=raw, speed=None))
    events = p.parse({"event_id": "string", "timestamp": "timestamp"}) if raw else p.stream
    ok, dead = ListSink(), ListSink()
    events.to(ok)
    if raw:
        events.dead_letter.to(dead)
    p.run(clock=ManualClock(0))
    assert ok.frame()["event_id"].astype(str).tolist() == ["1", "2"] and dead.frame().empty
    if raw:
        assert file_lines(path).tolist() == [line.encode() for line in text.splitlines()]
        blocks = LineBlocks(path, min_read=8)
        assert blocks.take(5).tolist() == [line.encode() for line in text.splitlines()]


@pytest.mark.parametrize(
    ("name", "data", "where", "then_raw"),
    [
        (
            "events.jsonl",
            b'{"timestamp": "2024-01-01T00:00:00Z"}\n{"timestamp": "2024-01-01T00:00:01Z"\n',
            "line 2",
            True,
        ),
        ("events.jsonl.gz", b'{"timestamp": "2024-01-01T00:00:00Z"}\n\n[1, 2]\n', "line 3", True),
        ("events.jsonl", b'{"timestamp": "2024-01-01T00:00:00Z"}\n{"timestamp": "\xff"}\n', "line 2", True),
        ("events.jsonl", b'{"timestamp": "2024-01-01T00:00:00Z"}\n{"timestamp": "noon"}\n', "record 2", True),
        ("events.csv", b"timestamp,v\n2024-01-01T00:00:00Z,1\n2024-01-01T00:00:01Z,2,3\n", None, False),
    ],
)
def test_a_file_that_cannot_be_loaded_whole_names_its_bad_record_and_the_raw_replay(
    tmp_path, name, data, where, then_raw
):
    # one bad line used to fail a (non-raw) replay with pandas' bare error ("Expected object or value"),
    # saying neither where nor what to do; raw=True with parse sends bad records to dead letter
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    with pytest.raises(ValueError, match="cannot be read as a table") as caught:
        ReplaySource(path, speed=None)
    message = str(caught.value)
    assert str(path) in message
    assert where is None or f"{where} of" in message
    assert ("raw=True" in message) is then_raw
    if then_raw:  # the way out it names works: every record reaches an output
        p = Pipeline(ReplaySource(path, raw=True, speed=None))
        events = p.parse({"timestamp": "timestamp"})
        ok, dead = ListSink(), ListSink()
        events.to(ok)
        events.dead_letter.to(dead)
        p.run(clock=ManualClock(0))
        assert len(ok.frame()) + len(dead.frame()) == len(data.splitlines())  # an empty line too
        assert len(ok.frame()) == 1


@pytest.mark.parametrize("name", ["events.jsonl", "events.jsonl.gz"])
def test_the_line_an_error_names_is_the_line_its_reason_is_about(tmp_path, name) -> None:
    """The message named the first bad line (2) beside pandas' error, which was about another line (3),
    the UTF-8 error at a byte position of the whole file."""
    data = b'{"timestamp": "2024-01-01T00:00:00Z"}\nnot json\n{"timestamp": "2024-01-01T00:00:00Z", "v": "\xe9"}\n'
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    with pytest.raises(
        ValueError, match=r"line 2 of .* \(ValueError: invalid JSON: Expecting value at column 1\)"
    ):
        ReplaySource(path, speed=None)
    data = data.replace(b"not json\n", b"")
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    with pytest.raises(
        ValueError, match=r"line 2 of .* \(ValueError: invalid UTF-8: byte 0xe9 at byte 45 of the line"
    ):
        ReplaySource(path, speed=None)


def test_app_logs_unreadable_as_a_table_names_line_77_and_its_own_problem() -> None:
    from streamlab.datasets import dataset_path

    with pytest.raises(
        ValueError, match=r"line 77 of .*\(ValueError: invalid JSON: Extra data at column 5\)"
    ) as e:
        ReplaySource(dataset_path("app_logs"), speed=None)
    assert "position" not in str(e.value)  # pandas' byte position was in line 94


def readable_prefix(data: bytes) -> bytes:
    """Every byte zlib can decompress from a gzip file's ``data`` (cut short or damaged), byte by byte."""
    inflate, out = zlib.decompressobj(31), []
    for i in range(len(data)):
        try:
            out.append(inflate.decompress(data[i : i + 1]))
        except zlib.error:
            break
    return b"".join(out)


def cut_or_damage(data: bytes, at: float, damage: bool) -> bytes:
    i = int(len(data) * at)
    return data[:i] + bytes([data[i] ^ 0x55]) + data[i + 1 :] if damage else data[:i]


GZ_LINES = b"".join(b'{"event_id": "%d", "timestamp": "2024-01-01T00:00:00Z"}\n' % i for i in range(3000))


@settings(max_examples=60, deadline=None)
@given(
    st.floats(0.0, 0.999),
    st.booleans(),
    st.sampled_from([1, 7, 4096, 1 << 20]),
    st.sampled_from([1, 3, 500, 10_000]),
    st.integers(0, 3000),
)
def test_a_cut_or_damaged_gzip_file_gives_every_readable_line_in_blocks(
    tmp_path_factory, at, damage, min_read, take, start
):
    """LineBlocks over a truncated or damaged gzip file give exactly the lines before the damage (the last
    one cut short), whatever the block and batch sizes and the resume position; ``left`` agrees.

    Arrow's gzip stream raised when it met the damage and lost every byte it had decompressed in that
    read: a truncated file lost its last block of lines (all of them, for a file smaller than a block)."""
    data = cut_or_damage(gzip.compress(GZ_LINES), at, damage)
    path = tmp_path_factory.mktemp("cut") / "x.jsonl.gz"
    path.write_bytes(data)
    want = split_reference(readable_prefix(data))
    start = min(start, len(want))
    blocks = LineBlocks(path, start, min_read=min_read)
    assert blocks.left() == len(want) - start
    got: list[bytes] = []
    while not blocks.done:
        got += blocks.take(take).tolist()
    assert got == want[start:]
    blocks.close()


@pytest.mark.parametrize("speed", [None, 1e9])
@pytest.mark.parametrize("damage", [False, True])
def test_a_raw_replay_of_a_cut_gzip_file_loses_no_readable_line(tmp_path, speed, damage, caplog):
    """Through the pipeline, unpaced (read block by block) and paced (read whole): every complete line
    before the damage is an event, the line it cut is a dead letter, and a warning names the file."""
    data = cut_or_damage(gzip.compress(GZ_LINES), 0.5, damage)
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data)
    readable = split_reference(readable_prefix(data))
    p = Pipeline(ReplaySource(path, raw=True, speed=speed))
    events = p.parse({"event_id": "string", "timestamp": "timestamp"})
    ok, dead = ListSink(), ListSink()
    events.to(ok)
    events.dead_letter.to(dead)
    with caplog.at_level("WARNING", logger="streamlab"):
        p.run(clock=ManualClock(0))
    if damage:  # the bytes inflated from the damage to where zlib notices are no lines of the file
        assert len(ok.frame()) + len(dead.frame()) == len(readable)
        intact = next(i for i, line in enumerate(readable) if line != split_reference(GZ_LINES)[i])
        assert ok.frame()["event_id"].tolist()[:intact] == [str(i) for i in range(intact)]
    else:
        assert ok.frame()["event_id"].tolist() == [str(i) for i in range(len(readable) - 1)]
        assert dead.frame()["raw"].tolist() == readable[-1:]
    assert any("cut.jsonl.gz cannot be read past" in r.getMessage() for r in caplog.records)


def test_gzip_members_one_after_another_are_one_file(tmp_path):
    # as gzip and zcat read them (`cat a.gz b.gz > c.gz`), with NUL padding between members
    path = tmp_path / "joined.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a":1}\n{"a":2}\n') + b"\0" * 5 + gzip.compress(b'{"a":3}\n'))
    assert LineBlocks(path, min_read=1).take(10).tolist() == [b'{"a":1}', b'{"a":2}', b'{"a":3}']
    assert file_lines(path).tolist() == [b'{"a":1}', b'{"a":2}', b'{"a":3}']


@pytest.mark.parametrize("raw", [True, False])
def test_a_truncated_gzip_file_is_named_and_its_readable_lines_replayed(tmp_path, raw, caplog):
    # pyarrow's "Truncated compressed stream" (raw) and gzip's EOFError (not raw) escaped without the file
    data = gzip.compress(
        "".join(
            f'{{"event_id": "{i}", "timestamp": "2024-01-01T00:00:00Z"}}\n' for i in range(60_000)
        ).encode()
    )
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: int(len(data) * 0.7)])
    if not raw:
        with pytest.raises(
            ValueError, match=r"line \d+ of .*cut.jsonl.gz cannot be read as a table \(EOFError"
        ):
            ReplaySource(path, speed=None)
        return
    p = Pipeline(ReplaySource(path, raw=True, speed=None))
    events = p.parse({"event_id": "string", "timestamp": "timestamp"})
    ok = ListSink()
    events.to(ok)
    with caplog.at_level("WARNING", logger="streamlab"):
        result = p.run(clock=ManualClock(0))
    assert result.status == "finished" and len(ok.frame()) > 0
    assert any("cut.jsonl.gz cannot be read past" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("data", [b"not parquet", b"PAR1"])
def test_a_file_that_is_not_parquet_says_so_with_its_path(tmp_path, data):
    # it raised pyarrow's bare ArrowInvalid ("Parquet magic bytes not found in footer"), naming no source
    path = tmp_path / "events.parquet"
    path.write_bytes(data)
    with pytest.raises(
        ValueError, match=r"ReplaySource: .*events.parquet cannot be read as Parquet \(Arrow"
    ) as e:
        ReplaySource(path, speed=None)
    assert "check that it is a complete Parquet file" in str(e.value)


@pytest.mark.parametrize(
    "times",
    [
        ["1704067200", "1704067201", "1704067261"],  # epoch seconds
        ["1704067200000", "1704067201500", "1704067261000"],  # epoch milliseconds
        ["1704067200.25", "1704067201.5", "1704067261.75"],
        ['"2024-01-01T00:00:00Z"', "1704067201", "1704067261000"],  # several producers
    ],
)
def test_a_json_lines_replay_reads_epoch_event_times_as_parse_does(tmp_path, times):
    # ReplaySource('events.jsonl') refused a file of epoch numbers at construction ("event time
    # 'timestamp' is np.int64(1704067200), not an ISO 8601 time"); a CSV file of them and a raw replay
    # through parse read them
    path = tmp_path / "events.jsonl"
    path.write_text("".join(f'{{"timestamp": {t}, "k": "a"}}\n' for t in times))
    counts = []
    for raw in (False, True):
        p = Pipeline(ReplaySource(path, raw=raw, speed=None))
        stream = p.parse({"timestamp": "timestamp", "k": "string"}) if raw else p.stream
        out = ListSink()
        stream.window(TumblingWindow("1m"), key="k").agg(agg.count()).to(out)
        p.run(clock=ManualClock(0))
        counts.append(out.frame()[["window_start", "count"]].to_dict("records"))
    assert counts[0] == counts[1] and [c["count"] for c in counts[0]] == [2, 1]
