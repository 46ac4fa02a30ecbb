"""``write_replacing``, the one way streamlab writes a file whole or not at all (checkpoints, the
checkpoint key, Kinesis checkpoints, Parquet parts)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from streamlab._files import write_replacing


def test_a_reader_of_the_directory_never_meets_the_file_being_written(tmp_path: Path) -> None:
    """A notebook reading a Parquet sink's directory while the pipeline writes a part: the part being
    written was ``part-N.tmp``, which pyarrow tried to read ("Parquet magic bytes not found")."""
    pq.write_table(pa.table({"x": [1, 2]}), tmp_path / "part-000000.parquet")
    seen: list[list[int]] = []

    def write(f: BinaryIO) -> None:
        f.write(b"PAR1 half a part")  # a reader comes in while the part is half written
        f.flush()
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == [".part-000001.parquet.tmp"]
        seen.append(pd.read_parquet(tmp_path)["x"].tolist())
        f.seek(0)
        f.truncate()
        pq.write_table(pa.table({"x": [3]}), f)

    write_replacing(tmp_path / "part-000001.parquet", write)
    assert seen == [[1, 2]]
    assert pd.read_parquet(tmp_path)["x"].tolist() == [1, 2, 3]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["part-000000.parquet", "part-000001.parquet"]


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), KeyboardInterrupt()])
@pytest.mark.parametrize("private", [False, True])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(
    tmp_path: Path, private: bool, error: BaseException
) -> None:
    target = tmp_path / "state.json"
    target.write_bytes(b"old")

    def write(f: BinaryIO) -> None:
        f.write(b"new, cut sh")
        raise error

    with pytest.raises(type(error)):
        write_replacing(target, write, private=private)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_private_files_are_the_owners_only_and_others_follow_the_umask(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        write_replacing(tmp_path / "key", lambda f: f.write(b"secret"), private=True)
        write_replacing(tmp_path / "part", lambda f: f.write(b"data"))
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "key").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "part").stat().st_mode) == 0o644
    assert (tmp_path / "key").read_bytes() == b"secret" and (tmp_path / "part").read_bytes() == b"data"


def _record_fsyncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What ``os.fsync`` is called on from now on: ``file`` or ``directory``."""
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append("directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def test_the_rename_is_made_durable_before_it_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file and then its directory are fsynced: a power loss after the caller commits offsets cannot
    lose the rename (the file's data was fsynced, the directory entry naming it was not)."""
    synced = _record_fsyncs(monkeypatch)
    write_replacing(tmp_path / "part", lambda f: f.write(b"data"))
    assert synced == ["file", "directory"]


def test_a_json_lines_file_a_run_creates_has_its_name_synced_at_the_first_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The JSON-lines sink fsynced its file at each commit but never the directory that names it: after a
    power loss, a new file could be gone while the source's offsets were committed past its rows."""
    from streamlab.sinks import JsonLinesSink

    synced = _record_fsyncs(monkeypatch)
    writer = JsonLinesSink(tmp_path / "out.jsonl").open()
    writer.write_batch(pd.DataFrame({"x": [1]}))
    writer.flush()
    writer.write_batch(pd.DataFrame({"x": [2]}))
    writer.close()
    assert synced == ["file", "directory", "file"]  # the directory once, after the file's first fsync
    again = JsonLinesSink(tmp_path / "out.jsonl").open()  # the file exists: nothing to sync but the file
    again.close()
    assert synced == ["file", "directory", "file", "file"]
