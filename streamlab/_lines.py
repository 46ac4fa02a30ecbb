"""The lines of a file as an arrow binary column, and the way back from those lines to the file's bytes.

A raw replay (``ReplaySource(path, raw=True)``) delivers each line as a value; a parse step then needs the
same bytes newline-joined, which is what the file was. While the source lives, :func:`file_slice` finds
the part of the file behind a run of its lines, so the parse step hands that to arrow's JSON reader
instead of joining the lines again. It answers only for lines cut from a file where no line ends with a
carriage return, so the joined lines and the file's bytes are the same bytes.
"""

from __future__ import annotations

import weakref
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# (address of the data, address of the offsets) of a file's lines -> the file's bytes, its lines, whose
# buffers it keeps alive (so no other array can reuse these addresses while the entry exists)
_FILES: dict[tuple[int, int], tuple[pa.Buffer, pa.BinaryArray]] = {}


def file_lines(path: Path, owner: object | None = None) -> pd.Series:
    """The lines of a file as an arrow-backed binary column, without per-line Python.

    Lines are split at ``\\n``, one trailing ``\\r`` removed, no final empty line. Arrow's
    ``split_pattern`` kernel cuts the bytes in one pass; numpy then drops a ``\\r`` before a break where
    the file has any. With an ``owner``, :func:`file_slice` knows these lines for as long as it lives.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "x.jsonl"
    >>> _ = path.write_bytes(b'{"a":1}\\r\\n\\n{"a":2}')
    >>> file_lines(path).tolist()
    [b'{"a":1}', b'', b'{"a":2}']
    """
    # read into arrow's memory pool, which reuses its pages (a Python bytes object faults in fresh ones)
    with pa.input_stream(str(path), compression="gzip" if path.suffix == ".gz" else None) as f:
        file = f.read_buffer()
    if file.size >= 2**31:  # beyond a binary array's 32-bit offsets: a list of bytes
        lines = file.to_pybytes().split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        return pd.Series([ln[:-1] if ln.endswith(b"\r") else ln for ln in lines], dtype=object)
    whole = pa.Array.from_buffers(
        pa.binary(), 1, [None, pa.py_buffer(np.array([0, file.size], np.int32)), file]
    )
    arr = pc.split_pattern(whole, b"\n").flatten() if file.size else pa.array([], pa.binary())
    if (
        file.size and np.frombuffer(file, np.uint8)[-1] == 10
    ):  # a final break ends the last line, no empty one
        arr = arr.slice(0, len(arr) - 1)
    if _ends_with_carriage_return(arr).any():
        arr = _drop_carriage_returns(arr)
    elif owner is not None and len(arr):
        key = (arr.buffers()[2].address, arr.buffers()[1].address)
        _FILES[key] = (file, arr)
        weakref.finalize(owner, _FILES.pop, key, None)
    return pd.Series(pd.arrays.ArrowExtensionArray(arr))


def file_slice(arr: pa.BinaryArray) -> pa.Buffer | None:
    """The file's bytes behind ``arr``, a run of lines from :func:`file_lines`: the lines, each followed
    by its ``\\n`` (the last one may have none); None when ``arr`` is not such a run.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "x.jsonl"
    >>> _ = path.write_bytes(b'{"a":1}\\n{"a":22}\\n{"a":3}\\n')
    >>> owner = type("Owner", (), {})()
    >>> lines = pa.array(file_lines(path, owner), pa.binary())
    >>> file_slice(lines.slice(1, 2)).to_pybytes()
    b'{"a":22}\\n{"a":3}\\n'
    >>> file_slice(pa.array([b'{"a":1}'])) is None
    True
    """
    if len(arr) == 0:
        return None
    buffers = arr.buffers()
    found = _FILES.get((buffers[2].address, buffers[1].address))
    if found is None:
        return None
    file, lines = found
    offsets = np.frombuffer(buffers[1], np.int32)
    first = arr.offset - lines.offset  # the index of arr's first line among the file's lines
    if first < 0 or first + len(arr) > len(lines):
        return None
    base = int(offsets[lines.offset])
    start = int(offsets[arr.offset]) - base + first  # every earlier line is followed by one "\n"
    stop = int(offsets[arr.offset + len(arr)]) - base + first + len(arr)
    return file.slice(start, min(stop, file.size) - start)


def _ends_with_carriage_return(arr: pa.BinaryArray) -> np.ndarray:
    """Which lines of ``arr`` end with ``\\r`` (a bool each)."""
    offsets = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset : arr.offset + len(arr) + 1]
    data = arr.buffers()[2]
    if not len(arr) or data is None or offsets[-1] == offsets[0]:  # no lines, or only empty ones
        return np.zeros(len(arr), dtype=bool)
    body = np.frombuffer(data, np.uint8)
    ends: np.ndarray = (offsets[1:] > offsets[:-1]) & (body[np.maximum(offsets[1:] - 1, 0)] == 13)
    return ends


def _drop_carriage_returns(arr: pa.BinaryArray) -> pa.BinaryArray:
    """``arr`` with one ``\\r`` removed from the end of every line that has one."""
    n = len(arr)
    offsets = np.frombuffer(arr.buffers()[1], np.int32)[arr.offset : arr.offset + n + 1]
    body = np.frombuffer(arr.buffers()[2], np.uint8)
    cr = _ends_with_carriage_return(arr)
    keep = np.ones(int(offsets[-1]), dtype=bool)
    keep[offsets[1:][cr] - 1] = False
    keep[: offsets[0]] = False
    new_offsets = (offsets - offsets[0] - np.concatenate([[0], np.cumsum(cr)])).astype(np.int32)
    return pa.Array.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(new_offsets), pa.py_buffer(body[: offsets[-1]][keep])]
    )
