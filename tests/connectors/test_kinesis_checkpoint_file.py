"""A ``KinesisSource(checkpoint_path=...)`` file that is truncated or damaged is refused naming the file and
the fix, on the command line too (it was a bare ``JSONDecodeError`` or ``AttributeError``)."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from streamlab.connectors.kinesis import load_checkpoint
from streamlab.connectors.kinesis.checkpoint import write_checkpoint

from streamlab._checkpoint import CheckpointError
from streamlab.cli import main


def _written(tmp_path: Path) -> Path:
    path = tmp_path / "clicks.json"
    write_checkpoint(path, "clicks", {"shardId-000000000000": "4960", "shardId-000000000001": "SHARD_END"})
    return path


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[: len(b) // 2],  # truncated (a copy onto a full disk)
        lambda b: b"",  # empty
        lambda b: b"\xff" + b[1:],  # not UTF-8
        lambda b: b"[1, 2]",  # JSON, not a checkpoint
        lambda b: json.dumps({"stream": "clicks", "shards": ["shardId-000000000000"]}).encode(),
        lambda b: json.dumps({"stream": "clicks", "shards": {"shardId-000000000000": None}}).encode(),
    ],
    ids=["truncated", "empty", "not-utf8", "a-list", "shards-a-list", "no-sequence-number"],
)
def test_a_damaged_checkpoint_file_is_refused_naming_it_and_the_fix(
    tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    path = _written(tmp_path)
    assert load_checkpoint(path, "clicks") == {
        "shardId-000000000000": "4960",
        "shardId-000000000001": "SHARD_END",
    }
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointError, match="it is not a Kinesis checkpoint") as info:
        load_checkpoint(path, "clicks")
    assert info.value.path == str(path)
    assert "delete it to read each shard from start=" in info.value.fix


def test_the_command_line_names_a_damaged_checkpoint_file_and_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: ``streamlab run: JSONDecodeError: Unterminated string ...`` and exit 1, no file named. With
    no --checkpoint-dir too: the run keeps its checkpoints in the default directory (empty here)."""
    monkeypatch.setenv("STREAMLAB_STATE_DIR", str(tmp_path / "state"))
    path = _written(tmp_path)
    path.write_bytes(path.read_bytes()[:20])
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "streaming:\n  sources:\n"
        "    - {step_id: clicks, kind: kinesis, stream: clicks, region: us-east-1, "
        f"endpoint_url: 'http://127.0.0.1:9', checkpoint_path: '{path}', timeout: 1}}\n"
    )
    assert main(["run", str(spec), "--quiet", "--max-events", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"cannot resume from the checkpoint {path}: it is not a Kinesis checkpoint" in err, err
    assert err.count("Fix:") == 1 and "delete it to read each shard from start=" in err, err


def test_a_checkpoint_write_that_fails_leaves_the_last_one_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A disk full while committing: the old checkpoint stays, and no ``*.tmp`` is left behind (each
    failed commit left one under a new name before)."""
    import streamlab._files as files_module

    path = _written(tmp_path)
    before = path.read_bytes()

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(
        files_module.os, "fsync", full
    )  # (a full disk shows at fsync with delayed allocation)
    for _ in range(3):
        with pytest.raises(OSError, match="No space left on device"):
            write_checkpoint(path, "clicks", {"shardId-000000000000": "5000"})
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    assert path.read_bytes() == before
