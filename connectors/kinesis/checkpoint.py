"""Per-shard checkpoints in a local JSON file, written atomically on each commit."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

from streamlab._checkpoint import CheckpointError
from streamlab._files import write_replacing
from streamlab.errors import ParameterError

SHARD_END = "SHARD_END"


def load_checkpoint(path: str | os.PathLike[str], stream: str) -> dict[str, str]:
    """Read a checkpoint file written by :class:`KinesisSource`; a missing file means no checkpoint.

    Parameters
    ----------
    path
        The JSON file.
    stream
        Stream the checkpoint must belong to.

    Returns
    -------
    dict
        ``{shard_id: sequence number or "SHARD_END"}``.

    Examples
    --------
    >>> load_checkpoint("/nonexistent/checkpoint.json", "clicks")
    {}
    """
    p = Path(path)
    if not p.exists():
        return {}
    try:
        data = json.loads(p.read_bytes())
    except ValueError as e:  # (UnicodeDecodeError and JSONDecodeError are ValueErrors)
        data, why = None, f"{type(e).__name__}: {e}"
    else:
        why = "it holds no stream and shards"
    shards = data.get("shards", {}) if isinstance(data, dict) else None
    if not isinstance(shards, dict) or not all(isinstance(v, str) for v in shards.values()):
        # a bare JSONDecodeError said neither which file nor what to do (truncated by a full disk, say)
        raise CheckpointError(
            p,
            f"it is not a Kinesis checkpoint that KinesisSource({stream!r}) can resume ({why}; it should "
            'be {"stream": ..., "shards": {shard id: sequence number}})',
            "restore it from a backup, or delete it to read each shard from start= again (TRIM_HORIZON: "
            "every record the stream still holds)",
        )
    if data.get("stream") != stream:
        raise ParameterError(
            "KinesisSource",
            "checkpoint_path",
            f"checkpoint file {str(p)!r} belongs to stream {data.get('stream')!r}, not {stream!r}",
            "use a separate checkpoint_path per stream",
        )
    return {str(k): v for k, v in shards.items()}


def write_checkpoint(path: Path, stream: str, shards: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"stream": stream, "shards": dict(shards)}).encode()
    write_replacing(path, lambda f: f.write(text), private=True)  # a crash leaves the old or the new one
