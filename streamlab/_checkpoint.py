"""Checkpoint files: a pipeline fingerprint, a readable header, and a signed payload.

A checkpoint file is ``checkpoint.slcp`` in the checkpoint directory::

    STREAMLAB-CHECKPOINT 2\\n
    {"pipeline": ..., "fingerprint": ..., "steps": {...}, "commit": ..., "payload_sha256": ..., "hmac": ...}\\n
    <payload: the state snapshot, pickled>

The header is JSON, read before anything else: a checkpoint of another pipeline is refused by its
fingerprint (the steps and parameters that shape state, and the sources) with a message naming where it
came from. The payload is only unpickled after its HMAC-SHA256 checks out with this user's key
(``STREAMLAB_CHECKPOINT_KEY``, else a random key kept in ``~/.config/streamlab/checkpoint.key``), so a
crafted file cannot run code on resume; a truncated or altered file raises :class:`CheckpointError`
naming its path.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import pickle
import secrets
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamlab._files import write_replacing
from streamlab.errors import _PicklableError
from streamlab.steps import OperatorStep, SinkStep, SourceStep

if TYPE_CHECKING:
    from streamlab.pipeline import Pipeline

__all__ = [
    "CHECKPOINT_FILE",
    "CheckpointError",
    "CheckpointSaveError",
    "checkpoint_key",
    "default_checkpoint_dir",
    "earlier_fingerprints",
    "load_checkpoint",
    "pipeline_fingerprint",
    "save_checkpoint",
]

CHECKPOINT_FILE = "checkpoint.slcp"
_LEGACY_FILE = "checkpoint.pkl"
_MAGIC = b"STREAMLAB-CHECKPOINT 2\n"
# source settings that do not change which events a position means: pace, when to stop, waits, batch and
# flow-control sizes, client tuning (words in the spec's keys)
_NOT_IDENTITY = (
    "speed",
    "batch_size",
    "stop_at_end",
    "timeout",
    "retries",
    "backoff",
    "poll",
    "max_",
    "interval",
    "refresh",
    "records_per_call",
    "config",
    "flow_control",
)

# what a checkpoint written before batch sizes left the identity held (SyntheticSource's spec wrote its
# batch_size): such a checkpoint resumes too (see earlier_fingerprints)
_EARLIER_NOT_IDENTITY = tuple(word for word in _NOT_IDENTITY if word != "batch_size")


class CheckpointError(_PicklableError, ValueError):
    """A checkpoint cannot be resumed: corrupt, unsigned, or written by another pipeline.

    Examples
    --------
    >>> str(CheckpointError("/tmp/cp/checkpoint.slcp", "it is empty", "delete it to start fresh"))
    'checkpoint /tmp/cp/checkpoint.slcp: it is empty. Fix: delete it to start fresh'
    """

    def __init__(self, path: str | os.PathLike[str], problem: str, fix: str) -> None:
        self.path, self.problem, self.fix = os.fspath(path), problem, fix
        super().__init__(f"checkpoint {self.path}: {problem}. Fix: {fix}")


class CheckpointSaveError(_PicklableError, OSError):
    """A checkpoint could not be written (the disk is full, the directory is not writable): the run
    fails, and the checkpoint saved before it is left as it was, so a run after the cause is fixed
    resumes from there. An ``OSError``, as the failure it wraps (its ``__cause__``).

    Examples
    --------
    >>> e = CheckpointSaveError("/tmp/cp/checkpoint.slcp", "the disk is full", "free some space")
    >>> isinstance(e, OSError), str(e)
    (True, 'checkpoint /tmp/cp/checkpoint.slcp: the disk is full. Fix: free some space')
    """

    def __init__(self, path: str | os.PathLike[str], problem: str, fix: str) -> None:
        self.path, self.problem, self.fix = os.fspath(path), problem, fix
        super().__init__(f"checkpoint {self.path}: {problem}. Fix: {fix}")


def _stable(value: Any) -> Any:
    """A JSON stand-in for a value with no JSON form: its type, never its address."""
    if callable(value):
        return f"{getattr(value, '__module__', '')}:{getattr(value, '__qualname__', type(value).__name__)}"
    return type(value).__qualname__


def _source_identity(step: SourceStep, not_identity: tuple[str, ...] = _NOT_IDENTITY) -> dict[str, Any]:
    source = step.source
    try:
        spec = source.spec()
    except Exception:  # in-memory sources have no spec: their type stands for them
        return {"type": type(source).__qualname__}
    return {k: v for k, v in spec.items() if not any(word in k for word in not_identity)}


def _step_identity(step: Any, not_identity: tuple[str, ...] = _NOT_IDENTITY) -> dict[str, Any]:
    if isinstance(step, SourceStep):
        return {"kind": "source", "source": _source_identity(step, not_identity)}
    if isinstance(step, OperatorStep):
        return {"kind": step.kind, "inputs": list(step.inputs), "config": type(step.config).__qualname__}
    try:
        params = step.params()
    except Exception:  # an in-memory table, say: the step's type and inputs stand for it
        params = {"type": type(step).__qualname__}
    return {"kind": step.kind, "inputs": list(step.inputs), "params": params}


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=_stable, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def pipeline_fingerprint(pipeline: Pipeline) -> tuple[str, dict[str, str]]:
    """The pipeline's fingerprint and one per step (sinks excluded: they hold no state).

    Two pipelines have the same fingerprint when their sources and every step that shapes state have
    the same ids, kinds, inputs and parameters; adding or changing a sink keeps it.

    Examples
    --------
    >>> from streamlab import Pipeline, TumblingWindow, agg
    >>> from streamlab.testing import ListSource
    >>> a, b = Pipeline(ListSource([])), Pipeline(ListSource([]))
    >>> _ = a.window(TumblingWindow("1m")).agg(agg.count())
    >>> _ = b.window(TumblingWindow("5m")).agg(agg.count())
    >>> pipeline_fingerprint(a)[0] == pipeline_fingerprint(b)[0]
    False
    """
    return _fingerprint(pipeline, _NOT_IDENTITY)


def _fingerprint(pipeline: Pipeline, not_identity: tuple[str, ...]) -> tuple[str, dict[str, str]]:
    steps = {
        sid: _digest(_step_identity(step, not_identity))
        for sid, step in pipeline.steps.items()
        if not isinstance(step, SinkStep)
    }
    return _digest(steps), steps


def earlier_fingerprints(pipeline: Pipeline) -> frozenset[str]:
    """Fingerprints an earlier streamlab gave ``pipeline`` where :func:`pipeline_fingerprint` now gives
    another, so its checkpoints still resume: a source's batch size was part of its identity (a
    SyntheticSource's checkpoint) until positions were known to mean the same whatever the batches.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.datasets import SyntheticSource
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(SyntheticSource("iot", n=10, batch_size=5))
    >>> len(earlier_fingerprints(p)), pipeline_fingerprint(p)[0] in earlier_fingerprints(p)
    (1, False)
    >>> earlier_fingerprints(Pipeline(ListSource([])))  # no source spec held a batch size
    frozenset()
    """
    return frozenset({_fingerprint(pipeline, _EARLIER_NOT_IDENTITY)[0]} - {pipeline_fingerprint(pipeline)[0]})


def cache_dir() -> Path:
    """Where streamlab keeps what it builds once and reuses (PyFlink's environment, a Python uv
    installed, Spark's logging configuration): ``$STREAMLAB_CACHE``, else ``~/.cache/streamlab``.

    Examples
    --------
    >>> cache_dir().name in ("streamlab", os.path.basename(os.environ.get("STREAMLAB_CACHE", "")))
    True
    """
    return Path(os.environ.get("STREAMLAB_CACHE", Path.home() / ".cache" / "streamlab"))


def _config_dir() -> Path:
    if os.environ.get("STREAMLAB_CONFIG_DIR"):
        return Path(os.environ["STREAMLAB_CONFIG_DIR"])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "streamlab"


def default_checkpoint_dir(pipeline: Pipeline, fingerprint: str) -> Path:
    """Where a run keeps its checkpoints when none is given but its sources commit upstream.

    ``STREAMLAB_STATE_DIR``, else ``$XDG_STATE_HOME/streamlab/checkpoints`` (``~/.local/state/...``),
    one directory per pipeline name and fingerprint.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([]), name="demo")
    >>> default_checkpoint_dir(p, "0123456789abcdef0123").name
    'demo-0123456789abcdef'
    """
    if os.environ.get("STREAMLAB_STATE_DIR"):
        base = Path(os.environ["STREAMLAB_STATE_DIR"])
    else:
        state = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
        base = Path(state) / "streamlab" / "checkpoints"
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in pipeline.name) or "pipeline"
    return base / f"{safe}-{fingerprint[:16]}"


def checkpoint_key() -> bytes:
    """The key that signs checkpoints: ``STREAMLAB_CHECKPOINT_KEY``, else this user's key file.

    The key file (``~/.config/streamlab/checkpoint.key``, or under ``STREAMLAB_CONFIG_DIR``) is created
    with 32 random bytes, readable by its owner only, the first time a checkpoint is written. It is
    written whole under another name and renamed, by one process at a time, so runs starting together
    get one key and a kill never leaves it empty (an empty one, left by an older streamlab, is replaced).

    Examples
    --------
    >>> import os
    >>> from unittest import mock
    >>> with mock.patch.dict(os.environ, {"STREAMLAB_CHECKPOINT_KEY": "shared secret"}):
    ...     checkpoint_key()
    b'shared secret'
    """
    env = os.environ.get("STREAMLAB_CHECKPOINT_KEY")
    if env:
        return env.encode()
    path = _config_dir() / "checkpoint.key"
    key = _read_key(path)
    if key:
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    with _key_lock(path.parent):
        key = _read_key(path)  # another run made it while this one waited
        if key:
            return key
        key = secrets.token_hex(32).encode()
        write_replacing(path, lambda f: f.write(key), private=True)
    return key


def _read_key(path: Path) -> bytes:
    """The key in ``path``; empty when there is none."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


@contextlib.contextmanager
def _key_lock(directory: Path) -> Iterator[None]:
    """Hold ``checkpoint.key.lock`` in ``directory`` (``flock``): one process at a time makes the key."""
    with open(directory / "checkpoint.key.lock", "a") as f:
        try:
            import fcntl
        except ImportError:  # (no flock on this platform: two first runs at once may make two keys)
            yield
            return
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)  # released when the file closes
        yield


def _sign(key: bytes, header: dict[str, Any], payload: bytes) -> str:
    text = json.dumps(header, sort_keys=True).encode()
    return hmac.new(key, text + b"\n" + payload, hashlib.sha256).hexdigest()


def save_checkpoint(directory: Path, snapshot: dict[str, Any], header: dict[str, Any]) -> Path:
    """Write ``snapshot`` atomically (temporary file, fsync, rename) with a signed header.

    Examples
    --------
    >>> import os, tempfile
    >>> from pathlib import Path
    >>> from unittest import mock
    >>> d = Path(tempfile.mkdtemp())
    >>> with mock.patch.dict(os.environ, {"STREAMLAB_CHECKPOINT_KEY": "k"}):
    ...     print(save_checkpoint(d, {"x": 1}, {"pipeline": "p", "fingerprint": "f", "steps": {}}).name)
    ...     print(load_checkpoint(d, "f", {})["x"])
    checkpoint.slcp
    1
    """
    directory.mkdir(parents=True, exist_ok=True)
    payload = pickle.dumps(snapshot, protocol=pickle.HIGHEST_PROTOCOL)
    head = {**header, "payload_sha256": hashlib.sha256(payload).hexdigest()}
    head["hmac"] = _sign(checkpoint_key(), head, payload)
    target = directory / CHECKPOINT_FILE
    try:
        write_replacing(
            target, lambda f: f.write(_MAGIC + json.dumps(head, sort_keys=True).encode() + b"\n" + payload)
        )
    except OSError as e:
        # not a checkpoint that cannot be resumed: the one saved before is whole, and the run's
        # sources were not committed past it (a disk full once read as "start fresh" on the command line)
        raise CheckpointSaveError(
            target,
            f"it could not be saved ({type(e).__name__}: {e}); the checkpoint saved before it, if any, is "
            "left as it was, and nothing was committed upstream past it",
            "make room on that disk (or make the directory writable), then run again with the same "
            "checkpoint_dir (--checkpoint-dir): the run resumes from the last checkpoint saved",
        ) from e
    return target


def _mismatch(path: Path, head: dict[str, Any], steps: dict[str, str]) -> CheckpointError:
    theirs: dict[str, str] = head.get("steps") or {}
    changed = sorted(s for s in set(theirs) & set(steps) if theirs[s] != steps[s])
    only_theirs = sorted(set(theirs) - set(steps))
    only_ours = sorted(set(steps) - set(theirs))
    parts = []
    if changed:
        parts.append(f"steps with other parameters or sources: {changed}")
    if only_theirs:
        parts.append(f"steps only in the checkpoint: {only_theirs}")
    if only_ours:
        parts.append(f"steps only in this pipeline: {only_ours}")
    written = head.get("written_by") or "an unknown run"
    return CheckpointError(
        path,
        f"it was written by pipeline {head.get('pipeline')!r} ({written}), whose steps differ from this "
        f"pipeline's ({'; '.join(parts) or 'different fingerprint'})",
        "pass a new checkpoint_dir (--checkpoint-dir) to start fresh, or delete this file; resume it only "
        "with the pipeline that wrote it",
    )


LOCK_FILE = "run.lock"


class DirectoryLock:
    """An exclusive lock on a checkpoint directory for one run (``flock`` on ``run.lock`` in it), so that
    two runs cannot write one directory's checkpoints and sinks at once (a notebook's ``p.start()`` cell
    run again while the first run goes on). The operating system releases it when the process ends.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> first = DirectoryLock(d, "pipeline 'a'")
    >>> try:
    ...     DirectoryLock(d, "pipeline 'a'")
    ... except CheckpointError as e:
    ...     print(e.problem.split(", pid")[0])
    another run is using it (pipeline 'a'
    >>> first.release()
    >>> DirectoryLock(d, "pipeline 'a'").release()
    """

    def __init__(self, directory: Path, holder: str) -> None:
        path = directory / LOCK_FILE
        try:
            directory.mkdir(parents=True, exist_ok=True)
            self.file: Any = open(path, "a+")  # noqa: SIM115 - held for the run, closed by release()
        except OSError as e:  # a file where the directory should be, no write permission, a read-only disk
            raise CheckpointError(
                directory,
                f"it cannot be used ({type(e).__name__}: {e.strerror or e})",
                "pass a checkpoint_dir (--checkpoint-dir) that this user can create and write",
            ) from e
        try:
            import fcntl
        except ImportError:  # (no flock on this platform: runs are not kept apart)
            return
        try:
            fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.file.seek(0)
            who = self.file.read().strip() or "another process"
            self.file.close()
            self.file = None
            raise CheckpointError(
                directory,
                f"another run is using it ({who})",
                "stop that run first (handle.stop()), or give this one another checkpoint_dir",
            ) from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(f"{holder}, pid {os.getpid()}")
        self.file.flush()

    def release(self) -> None:
        """Let another run use the directory."""
        if self.file is not None:
            self.file.close()
            self.file = None


def load_checkpoint(
    directory: Path, fingerprint: str, steps: dict[str, str], earlier: Collection[str] = ()
) -> dict[str, Any] | None:
    """Read the checkpoint in ``directory`` (``None`` when there is none), refusing another pipeline's.

    Raises :class:`CheckpointError` naming the file when it is corrupt, not signed with this user's key,
    a pickle from an older streamlab, or written by a pipeline with another fingerprint than
    ``fingerprint`` and the ``earlier`` ones (:func:`earlier_fingerprints`) of this pipeline.
    """
    legacy = directory / _LEGACY_FILE
    path = directory / CHECKPOINT_FILE
    if not path.exists():
        if legacy.exists():
            raise CheckpointError(
                legacy,
                "it is a plain pickle from an older streamlab; it is not loaded, because a crafted pickle "
                "runs code when loaded",
                "start fresh: delete it, or pass a new checkpoint_dir (--checkpoint-dir)",
            )
        return None
    fresh = "delete it, or pass a new checkpoint_dir (--checkpoint-dir), to start fresh"
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(path, f"cannot be read ({e.strerror})", fresh) from None
    if not data.startswith(_MAGIC):
        raise CheckpointError(path, "it is not a streamlab checkpoint (its first line is wrong)", fresh)
    line_end = data.find(b"\n", len(_MAGIC))
    try:
        head = json.loads(data[len(_MAGIC) : line_end]) if line_end > 0 else None
    except ValueError:
        head = None
    if not isinstance(head, dict) or not isinstance(head.get("hmac"), str):
        raise CheckpointError(path, "it is corrupt (its header cannot be read)", fresh)
    payload = data[line_end + 1 :]
    if hashlib.sha256(payload).hexdigest() != head.get("payload_sha256"):
        raise CheckpointError(
            path, "it is corrupt (truncated or altered: its payload fails its checksum)", fresh
        )
    written = head.get("fingerprint")
    if written != fingerprint and not (isinstance(written, str) and written in earlier):
        raise _mismatch(path, head, steps)
    signature = head.pop("hmac")
    if not hmac.compare_digest(signature, _sign(checkpoint_key(), head, payload)):
        raise CheckpointError(
            path,
            "it is not signed with this user's checkpoint key (written on another machine or by another "
            "user, or altered); it is not loaded, because its payload could run code",
            "set STREAMLAB_CHECKPOINT_KEY to the key of the machine that wrote it, or " + fresh,
        )
    try:
        snapshot = pickle.loads(payload)
    except Exception as e:
        raise CheckpointError(path, f"it is corrupt ({type(e).__name__}: {e})", fresh) from None
    if not isinstance(snapshot, dict):
        raise CheckpointError(path, "it is corrupt (the payload is not a state snapshot)", fresh)
    return snapshot
