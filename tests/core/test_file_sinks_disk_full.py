"""A JSON-lines or Parquet sink whose disk fills: the run fails once, with one line from ``streamlab run``
(the close tried the same write again, failed again and logged a second traceback), leaves no
temporary part behind, and a run after room is made completes as an uninterrupted one."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import streamlab.sinks as sinks_module
from streamlab.cli import main


class _FullRaw(io.RawIOBase):
    """A file on a full disk: nothing can be written."""

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return 0

    def seek(self, offset: int, whence: int = 0) -> int:
        return 0

    def write(self, data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _spec(tmp: Path, kind: str, n: int = 50) -> tuple[str, Path]:
    events = tmp / "events.jsonl"
    events.write_text("".join(f'{{"timestamp": "2024-01-01T00:00:{i:02d}Z", "x": {i}}}\n' for i in range(n)))
    out = tmp / ("out.jsonl" if kind == "jsonl" else "out")
    spec = tmp / "spec.yaml"
    spec.write_text(
        "streaming:\n  sources:\n"
        f"    - {{step_id: events, kind: replay, path: '{events}', batch_size: 10}}\n"
        "  sinks:\n"
        f"    - {{step_id: out, kind: {kind}, path: '{out}', input: events}}\n"
    )
    return str(spec), out


def _fill_the_disk(monkeypatch: pytest.MonkeyPatch, kind: str, out: Path) -> None:
    if kind == "jsonl":
        real_open = open

        def full_open(path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            if Path(path) == out:
                return io.TextIOWrapper(io.BufferedWriter(_FullRaw()), encoding="utf-8")
            return real_open(path, mode, *args, **kwargs)

        monkeypatch.setattr(sinks_module, "open", full_open, raising=False)
    else:
        import pyarrow.parquet as pq

        def full_write_table(table: Any, where: Any, **kwargs: Any) -> None:
            where.write(b"PAR1 half a part")  # what landed before the disk was full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(where.name))

        monkeypatch.setattr(pq, "write_table", full_write_table)


def _xs(kind: str, out: Path) -> list[int]:
    if kind == "jsonl":
        return [json.loads(line)["x"] for line in out.read_text().splitlines()]
    return pd.read_parquet(out)["x"].tolist()


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_a_file_sink_on_a_full_disk_fails_the_run_once_and_a_rerun_completes_it(
    kind: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    spec, out = _spec(tmp_path, kind)
    ckpt = tmp_path / "ckpt"
    with monkeypatch.context() as m, caplog.at_level(logging.WARNING, logger="streamlab"):
        _fill_the_disk(m, kind, out)
        assert main(["run", spec, "--quiet", "--checkpoint-dir", str(ckpt)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "failed flushing at a commit" in err and "No space left on device" in err, err
    # the close did not write the same rows again, fail again and log it with a traceback
    assert [r.getMessage() for r in caplog.records if "failed closing" in r.getMessage()] == []
    assert not list(tmp_path.rglob("*.tmp"))  # no part cut short left on the full disk

    assert main(["run", spec, "--quiet", "--checkpoint-dir", str(ckpt)]) == 0  # room again
    assert _xs(kind, out) == list(range(50))
