"""A checkpoint that cannot be written (the disk is full) and a checkpoint key made by two runs at once:
the run fails saying so, the last checkpoint stays whole, and the next run resumes it."""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

import streamlab._checkpoint as checkpoint_module
import streamlab._files as files_module
from streamlab import JsonLinesSink, ManualClock, Pipeline, ReplaySource
from streamlab._checkpoint import CHECKPOINT_FILE, CheckpointSaveError, checkpoint_key
from streamlab.cli import main


def _events(path: Path, n: int) -> Path:
    path.write_text("".join(f'{{"timestamp": "2024-01-01T00:00:{i:02d}Z", "x": {i}}}\n' for i in range(n)))
    return path


def _spec(tmp: Path, events: Path, out: Path) -> str:
    spec = tmp / "spec.yaml"
    spec.write_text(
        "streaming:\n  sources:\n"
        f"    - {{step_id: events, kind: replay, path: '{events}', batch_size: 10}}\n"
        "  sinks:\n"
        f"    - {{step_id: out, kind: jsonl, path: '{out}', input: events}}\n"
    )
    return str(spec)


class _FullDisk:
    """A checkpoint's temporary file on a full disk: half of a write lands, then ENOSPC."""

    def __init__(self, f: Any, path: str) -> None:
        self.f, self.path = f, path

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()

    def write(self, data: bytes) -> int:
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self.path)


def _fill_the_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    real_open = open

    def full_open(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        f = real_open(path, mode, *args, **kwargs)
        return _FullDisk(f, str(path)) if "w" in mode and str(path).endswith(".tmp") else f

    monkeypatch.setattr(files_module, "open", full_open, raising=False)


def test_a_disk_full_while_saving_a_checkpoint_is_not_called_a_checkpoint_to_start_fresh_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``streamlab run`` read any error mentioning a checkpoint as one it could not resume: a disk full
    at the end of a run said "cannot resume from the checkpoint ... to start fresh, move it away" and
    exited 2 (a usage mistake), and the half-written temporary file stayed on the full disk."""
    events = _events(tmp_path / "events.jsonl", 50)
    out, ckpt = tmp_path / "out.jsonl", tmp_path / "ckpt"
    spec = _spec(tmp_path, events, out)
    assert main(["run", spec, "--quiet", "--checkpoint-dir", str(ckpt), "--max-events", "20"]) == 0
    saved = (ckpt / CHECKPOINT_FILE).read_bytes()
    capsys.readouterr()

    with monkeypatch.context() as m:
        _fill_the_disk(m)
        assert main(["run", spec, "--quiet", "--checkpoint-dir", str(ckpt)]) == 1  # a failure, not a mistake
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"cannot save a checkpoint to {ckpt / CHECKPOINT_FILE}" in err, err
    assert "No space left on device" in err and "the last checkpoint saved" in err, err
    assert "cannot resume" not in err and "start fresh" not in err, err
    assert (ckpt / CHECKPOINT_FILE).read_bytes() == saved  # the last checkpoint is whole
    assert sorted(p.name for p in ckpt.iterdir() if p.name.endswith(".tmp")) == []

    assert main(["run", spec, "--quiet", "--checkpoint-dir", str(ckpt)]) == 0  # room again: it resumes
    assert [json.loads(line)["x"] for line in out.read_text().splitlines()] == list(range(50))


def test_a_failed_save_raises_an_os_error_naming_the_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = _events(tmp_path / "events.jsonl", 30)
    p = Pipeline(ReplaySource(events, batch_size=10, speed=None), name="full")
    p.stream.to(JsonLinesSink(tmp_path / "out.jsonl"))
    _fill_the_disk(monkeypatch)
    with pytest.raises(CheckpointSaveError, match="could not be saved") as info:
        p.run(checkpoint_dir=tmp_path / "ckpt", clock=ManualClock(0))
    assert isinstance(info.value, OSError)  # what it was before: `except OSError` still catches it
    assert isinstance(info.value.__cause__, OSError) and info.value.__cause__.errno == errno.ENOSPC
    assert info.value.path == str(tmp_path / "ckpt" / CHECKPOINT_FILE)


def test_two_runs_making_the_checkpoint_key_at_once_get_the_same_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first run made the key file, then wrote the key: a second run reading it in between (or any
    run after a kill -9 there) signed with an empty key, and later refused its own checkpoint as "not
    signed with this user's checkpoint key" (or, after the kill, every checkpoint was signed with it)."""
    monkeypatch.delenv("STREAMLAB_CHECKPOINT_KEY", raising=False)
    monkeypatch.setenv("STREAMLAB_CONFIG_DIR", str(tmp_path / "config"))
    inside, go, second_went = threading.Event(), threading.Event(), threading.Event()
    real_fdopen = os.fdopen
    real_lock = getattr(checkpoint_module, "_key_lock", None)

    def held_fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        if threading.current_thread().name == "first":  # between making the file and writing the key
            inside.set()
            assert go.wait(10)
        return real_fdopen(fd, *args, **kwargs)

    def seen_lock(directory: Path) -> Any:
        if threading.current_thread().name == "second":
            second_went.set()  # it waits for the first from here
        assert real_lock is not None
        return real_lock(directory)

    monkeypatch.setattr(checkpoint_module.os, "fdopen", held_fdopen)
    monkeypatch.setattr(checkpoint_module, "_key_lock", seen_lock, raising=False)
    keys: dict[str, bytes] = {}

    def make(name: str) -> None:
        keys[name] = checkpoint_key()
        second_went.set()

    first = threading.Thread(target=make, args=("first",), name="first")
    second = threading.Thread(target=make, args=("second",), name="second")
    first.start()
    try:
        assert inside.wait(10)
        second.start()
        assert second_went.wait(10)  # it read the key file, and returned or waits
    finally:
        go.set()
        first.join(10)
        second.join(10)
    assert keys["first"] == keys["second"] == checkpoint_key()
    assert len(keys["first"]) == 64


def test_a_key_file_left_empty_by_a_kill_is_not_an_empty_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty key file (a streamlab before this fix killed between making it and writing the key) made
    every checkpoint signed with the empty key, which anyone can forge."""
    monkeypatch.delenv("STREAMLAB_CHECKPOINT_KEY", raising=False)
    monkeypatch.setenv("STREAMLAB_CONFIG_DIR", str(tmp_path))
    (tmp_path / "checkpoint.key").write_bytes(b"")
    key = checkpoint_key()
    assert len(key) == 64 and checkpoint_key() == key
    assert (tmp_path / "checkpoint.key").read_bytes() == key
    assert (tmp_path / "checkpoint.key").stat().st_mode & 0o077 == 0
