"""Files written whole or not at all: a temporary file beside the target, fsynced, renamed over it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["sync_directory", "write_replacing"]


def write_replacing(target: Path, write: Callable[[BinaryIO], object], *, private: bool = False) -> None:
    """Write ``target`` whole or not at all: a crash leaves the old file or the new one, never half.

    ``write`` fills a temporary file in ``target``'s directory, which is flushed, fsynced and renamed
    over ``target`` (``os.replace``: atomic on one file system); then the directory is fsynced, so
    the rename itself is on disk before the caller goes on (commits a source's offsets). On any failure (a full disk, an
    interrupt) the temporary file is removed, since on a full disk it holds the room the next attempt
    needs, and the error is raised as it was.

    Parameters
    ----------
    target
        The file to write; its directory must exist.
    write
        Called with the temporary file, open for writing bytes.
    private
        Make the temporary file readable by its owner only, under a name no other writer uses
        (``tempfile.mkstemp``); otherwise it is ``.<target>.tmp``, made with the process's umask.
        Either name starts with a dot, which readers of a directory of files skip (pyarrow's datasets,
        Spark, shell globs), so a reader never meets a file being written.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> target = Path(tempfile.mkdtemp()) / "state.json"
    >>> write_replacing(target, lambda f: f.write(b'{"offset": 42}'))
    >>> target.read_text()
    '{"offset": 42}'
    >>> sorted(p.name for p in target.parent.iterdir())  # no temporary file left
    ['state.json']
    """
    if private:
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")  # 0o600
        tmp = Path(name)
    else:
        tmp = target.with_name(f".{target.name}.tmp")
    try:
        with os.fdopen(fd, "wb") if private else open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    sync_directory(target.parent)


def sync_directory(directory: Path) -> None:
    """fsync ``directory``, so that a file made or renamed in it outlives a power loss (the caller
    commits offsets next: without it, the new name could be lost while the source's commit is kept).

    Examples
    --------
    >>> import tempfile
    >>> sync_directory(Path(tempfile.mkdtemp()))
    """
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # (Windows cannot open a directory: its renames are durable by themselves)
        return
    try:
        os.fsync(fd)
    except OSError:  # (some file systems refuse fsync on a directory: nothing more to do there)
        pass
    finally:
        os.close(fd)
