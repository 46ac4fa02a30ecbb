"""JsonLinesSink to a ``.gz`` path: gzipped, a member per commit, whole after a crash and a resume.

It wrote plain text under the ``.gz`` name, which ``ReplaySource``, ``gzip`` and ``zcat`` then refused.
"""

from __future__ import annotations

import gzip
import json
import os
import zlib
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import JsonLinesSink, ListSource, ManualClock, Pipeline, ReplaySource
from streamlab._gzip import GzipBytes, gzip_end


def lines(path: Path) -> list[str]:
    return gzip.decompress(path.read_bytes()).decode().splitlines()


@pytest.mark.parametrize("name", ["out.jsonl.gz", "OUT.JSONL.GZ"])
def test_a_gz_path_is_written_gzipped_and_replays(tmp_path: Path, name: str) -> None:
    rows = [{"timestamp": f"2024-01-01T00:00:0{i}Z", "n": i, "nested": {"k": [i, None]}} for i in range(5)]
    p = Pipeline(ListSource(rows))
    p.stream.to(JsonLinesSink(tmp_path / name))
    p.run(clock=ManualClock(0))
    assert [int(line.split('"n": ')[1].split(",")[0]) for line in lines(tmp_path / name)] == list(range(5))
    back = Pipeline(ReplaySource(tmp_path / name)).run(clock=ManualClock(0))
    assert back.metrics["events_in"] == 5


def test_each_flush_ends_a_member_so_a_checkpoints_length_leaves_a_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl.gz"
    w = JsonLinesSink(path).open()
    w.write_batch(pd.DataFrame({"x": [1, 2]}))
    w.flush()
    state = w.snapshot()
    w.write_batch(pd.DataFrame({"x": [3]}))  # past the checkpoint, never flushed: a crash here
    w.f.flush()
    assert os.path.getsize(path) > state
    resumed = JsonLinesSink(path).open()
    resumed.restore(state)
    resumed.write_batch(pd.DataFrame({"x": [3, 4]}))
    resumed.close()
    assert lines(path) == ['{"x": 1}', '{"x": 2}', '{"x": 3}', '{"x": 4}']


def test_a_member_cut_short_at_the_end_is_moved_aside_and_the_file_stays_readable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # without the move, lines appended after a partial member could not be read by any reader
    path = tmp_path / "out.jsonl.gz"
    whole = gzip.compress(b'{"x": 1}\n')
    cut = gzip.compress(b'{"x": 2}\n')[:12]
    path.write_bytes(whole + cut)
    with caplog.at_level("WARNING", logger="streamlab"):
        w = JsonLinesSink(path).open()
    w.write_batch(pd.DataFrame({"x": [3]}))
    w.close()
    assert lines(path) == ['{"x": 1}', '{"x": 3}']
    aside = tmp_path / f"out.jsonl.gz.damaged-{len(whole)}"
    assert aside.read_bytes() == cut  # nothing deleted
    assert any("moved to" in r.getMessage() and str(aside) in r.getMessage() for r in caplog.records)


def test_a_gzip_file_written_by_other_hands_without_a_final_line_break_gets_one(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"x": 1}'))
    w = JsonLinesSink(path).open()
    w.write_batch(pd.DataFrame({"x": [2]}))
    w.close()
    assert lines(path) == ['{"x": 1}', '{"x": 2}']


def full_scan(path: Path) -> tuple[int, bool, bool]:
    """The oracle: the file read from its start (what gzip_end did before it looked from the end)."""
    reader = GzipBytes(path)
    damaged = False
    try:
        while reader.read(1 << 16):
            pass
    except OSError:
        damaged = True
    finally:
        reader.close()
    return reader.member_end, reader.member_last in (None, 10), damaged


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(st.binary(max_size=300).map(lambda b: b.replace(b"\0", b"")), min_size=1, max_size=5),
    newline=st.booleans(),
    pad=st.integers(0, 3),
    data=st.data(),
)
def test_the_last_whole_member_found_from_the_end_is_where_reading_from_the_start_stops(
    tmp_path_factory: pytest.TempPathFactory, texts: list[bytes], newline: bool, pad: int, data: st.DataObject
) -> None:
    # members as the sink writes them (each flush's lines), sometimes NUL padding, then a cut anywhere
    members = [gzip.compress(t + (b"\n" if newline else b"")) for t in texts]
    whole = b"".join(members) + b"\0" * pad
    cut = data.draw(st.integers(len(whole) - len(members[-1]) - pad, len(whole)), label="cut")
    path = tmp_path_factory.mktemp("gz") / "out.jsonl.gz"
    path.write_bytes(whole[:cut])
    end, ends_line, error = gzip_end(path)
    expected_end, expected_line, damaged = full_scan(path)
    assert (end, error is not None) == (expected_end, damaged)
    if end:
        assert ends_line == expected_line


def test_opening_a_long_gzip_output_decompresses_its_last_member_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "out.jsonl.gz"
    w = JsonLinesSink(path).open()
    for i in range(200):  # 200 flushes: 200 members
        w.write_batch(pd.DataFrame({"x": [i] * 50}))
        w.flush()
    w.close()
    cut = path.read_bytes() + gzip.compress(b'{"x": -1}\n')[:15]  # and a crash in the next flush
    path.write_bytes(cut)
    read: list[int] = []
    decompressobj = zlib.decompressobj
    monkeypatch.setattr(zlib, "decompressobj", lambda *a, **k: read.append(1) or decompressobj(*a, **k))
    w = JsonLinesSink(path).open()
    w.write_batch(pd.DataFrame({"x": [200]}))
    w.close()
    assert len(read) <= 3  # the cut member, the last whole one (not 200 members)
    values = [json.loads(line)["x"] for line in lines(path)]
    assert values == [i for i in range(200) for _ in range(50)] + [200]
