"""The lines of a file as an arrow binary column, and the way back from those lines to the file's bytes.

A raw replay (``ReplaySource(path, raw=True)``) delivers each line as a value; a parse step then needs the
same bytes newline-joined, which is what the file was. While the source lives, :func:`file_slice` finds
the part of the file behind a run of its lines, so the parse step hands that to arrow's JSON reader
instead of joining the lines again. It answers only for lines cut from a file where no line ends with a
carriage return, so the joined lines and the file's bytes are the same bytes. :func:`line_extremes`
gives bounds on those lines' bytes, measured as their block was split, so the parse step's scans for
control bytes and non-ASCII bytes need not run again over a batch of them.

A replay read block by block (:class:`LineBlocks`) does not even cut the lines out: where a block's only
control bytes are its line breaks, a batch is a :class:`LineArray`, the block's bytes and where its lines
end, which the parse step hands to arrow as they are; the lines are copied out only when something else
reads them (or a record goes to dead letter, cut from the block by itself).
"""

from __future__ import annotations

import logging
import weakref
from collections import deque
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.arrays import ArrowExtensionArray

from streamlab._gzip import is_gzip_name, open_bytes

_log = logging.getLogger("streamlab")

# (address of the data, address of the offsets) of a file's lines -> the file's bytes, its lines, whose
# buffers it keeps alive (so no other array can reuse these addresses while the entry exists), and the
# least and greatest byte of those lines (see :func:`line_extremes`)
_FILES: dict[tuple[int, int], tuple[pa.Buffer, pa.BinaryArray, tuple[int, int]]] = {}
# the splits of blocks come from the C library's allocator, which keeps freed blocks of this size for the
# next ones: arrow's default pool hands them back to the system, and every block of a large file would
# fault in fresh pages (a third of the time of reading a file block by block); the blocks themselves are
# reused by the replay (:class:`_BlockMemory`)
_POOL = pa.system_memory_pool()


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
    if _compression(path):
        f = open_bytes(path)
        parts = []
        try:
            while chunk := f.read(1 << 24):
                parts.append(chunk)
        except OSError as e:  # a truncated or damaged compressed file: the lines before are replayed
            _log.warning(_CUT_SHORT, path, f"{f.produced:,}", e)
        finally:
            f.close()
        file = pa.py_buffer(b"".join(parts))
    else:  # read into arrow's memory pool, which reuses its pages (a bytes object faults in fresh ones)
        with pa.input_stream(str(path)) as f:
            file = f.read_buffer()
    if file.slice(0, min(len(_BOM), file.size)).to_pybytes() == _BOM:
        file = file.slice(
            len(_BOM)
        )  # a byte order mark (Windows tools write one) is not part of the first line
    arr, cr, extremes = _split(file, file.size)
    if cr is None and extremes is not None and owner is not None and len(arr):
        key = _register(file, arr, extremes)
        weakref.finalize(owner, _FILES.pop, key, None)
    return _series(arr)


_CUT_SHORT = (
    "%s cannot be read past %s bytes of its lines (%s): the lines before are replayed, "
    "the rest of the file is not; check how it was copied or compressed"
)
_BOM = b"\xef\xbb\xbf"  # UTF-8's byte order mark, which some tools write at the start of a file


def _compression(path: Path) -> str | None:
    return "gzip" if is_gzip_name(path) else None


def _series(arr: pa.Array | list[bytes] | LineArray) -> pd.Series:
    if isinstance(arr, list):
        return pd.Series(arr, dtype=object)
    if isinstance(arr, LineArray):
        return pd.Series(arr, copy=False)
    return pd.Series(pd.arrays.ArrowExtensionArray(arr))


def _register(file: pa.Buffer, arr: pa.BinaryArray, extremes: tuple[int, int]) -> tuple[int, int]:
    """Let :func:`file_slice` find ``file`` behind ``arr`` (its lines, none ending with ``\\r``), and
    :func:`line_extremes` their least and greatest byte, ``extremes``."""
    key = (arr.buffers()[2].address, arr.buffers()[1].address)
    _FILES[key] = (file, arr, extremes)
    return key


_NO_BYTES = (0xFF, 0x00)  # the extremes of lines without a byte


def _extremes(arr: pa.BinaryArray) -> tuple[int, int]:
    """The least and greatest byte of the lines of ``arr`` (their line breaks are not in them), in one
    pass of arrow's ``min_max`` over their bytes."""
    offsets = np.frombuffer(arr.buffers()[1], np.int32, 2, arr.offset * 4)
    first = int(offsets[0])
    last = int(np.frombuffer(arr.buffers()[1], np.int32, 1, (arr.offset + len(arr)) * 4)[0])
    if last == first or arr.buffers()[2] is None:
        return _NO_BYTES
    body = pa.Array.from_buffers(
        pa.uint8(), last - first, [None, arr.buffers()[2].slice(first, last - first)]
    )
    least, greatest = pc.min_max(body).values()
    return int(least.as_py()), int(greatest.as_py())


def _split(
    data: pa.Buffer, size: int
) -> tuple[pa.BinaryArray | list[bytes], np.ndarray | None, tuple[int, int] | None]:
    """The lines of ``data[:size]`` (split at ``\\n``, one trailing ``\\r`` removed, no final empty line),
    which of them lost a ``\\r`` (None when none did), and the least and greatest byte of the lines as
    split (None for a list of bytes)."""
    if size >= 2**31:  # beyond a binary array's 32-bit offsets: a list of bytes
        lines = data.slice(0, size).to_pybytes().split(b"\n")
        if lines[-1] == b"":
            lines.pop()
        cr = np.array([ln.endswith(b"\r") for ln in lines], dtype=bool)
        return [ln[:-1] if c else ln for ln, c in zip(lines, cr.tolist())], cr if cr.any() else None, None
    if not size:
        return pa.array([], pa.binary()), None, _NO_BYTES
    whole = pa.Array.from_buffers(pa.binary(), 1, [None, pa.py_buffer(np.array([0, size], np.int32)), data])
    arr = pc.split_pattern(whole, b"\n", memory_pool=_POOL).flatten()
    if np.frombuffer(data, np.uint8, 1, size - 1)[0] == 10:  # a final break ends the last line
        arr = arr.slice(0, len(arr) - 1)
    extremes = _extremes(arr)
    if extremes[0] >= 0x20:  # no control byte, so no "\r" to look for at the lines' ends
        return arr, None, extremes
    cr = _ends_with_carriage_return(arr)
    if cr.any():
        return _drop_carriage_returns(arr), cr, None
    return arr, None, extremes


_SCAN = 1 << 20  # bytes per step of the break search (fewer steps: less Python per block; measured best)


class Breaks(NamedTuple):
    """What the break search (:func:`_breaks`) learned about a block of lines."""

    at: np.ndarray  # where the line breaks are
    ascii: bool  # whether every byte is below 0x80
    shaped: bool  # whether every line starts with "{" and ends with "}" (a JSON object's shape)


def _breaks(view: np.ndarray) -> Breaks | None:
    """Where the line breaks of ``view`` are, whether all its bytes are ASCII and all its lines shaped
    as a JSON object, or None when it holds another byte below 0x20 (a carriage return, a tab, a NUL:
    then the lines are split and checked as :func:`file_lines` does).

    One pass a cache-sized step at a time: the bytes are compared as signed, so one comparison finds
    both the bytes below 0x20 and those from 0x80 (negative); only a step holding the latter is looked
    at again. Each line's first and last byte, beside the breaks, are read while the step is in the
    cache (the parse step's own gathers over a whole batch miss it once a line).

    Examples
    --------
    >>> found = _breaks(np.frombuffer(b'{"a":1}\\n{}\\n{"b":"\\xc3\\xa9"}', np.uint8))
    >>> found.at.tolist(), found.ascii, found.shaped
    ([7, 10], False, True)
    >>> _breaks(np.frombuffer(b'{}\\n\\n{}\\n', np.uint8)).shaped
    False
    """
    found = []
    size = len(view)
    ascii = True
    shaped = bool(size) and int(view[0]) == 0x7B and (int(view[-1]) in (10, 0x7D))
    for lo in range(0, size, _SCAN):
        step = view[lo : lo + _SCAN]
        low = _low_bytes(step.view(np.int8) if ascii else step)
        if not bool((step[low] == 10).all()):  # checked while the step is still in the cache
            if not ascii:
                return None
            ascii = False  # a byte from 0x80, or a control byte (then None below)
            low = _low_bytes(step)
            if not bool((step[low] == 10).all()):
                return None
        at = low + lo
        if shaped and len(at):
            following = at + 1
            if int(following[-1]) == size:  # the last break ends the view: no line follows it here
                following = following[:-1]
            shaped = (
                int(at[0]) > 0
                and bool((view[at - 1] == 0x7D).all())
                and bool((view[following] == 0x7B).all())
            )
        found.append(at)
    at = np.concatenate(found) if found else np.zeros(0, np.int64)
    return Breaks(at, ascii, shaped)


def _low_bytes(view: np.ndarray) -> np.ndarray:
    """The positions of the bytes of ``view`` below 0x20, in order (``np.flatnonzero(view < 0x20)``); of
    a signed view (int8), also those from 0x80.

    Found eight bytes at a time: numpy lists the nonzero 64-bit words of the comparison (an eighth of
    the elements ``flatnonzero`` would walk, which is most of its time), and a word with one such byte
    (any line of 8 bytes or more) gives its place by its exponent; words with several are listed byte
    by byte.

    Examples
    --------
    >>> _low_bytes(np.frombuffer(b'{"a":1}\\n{}\\n\\n\\r{"bb":22}\\n', np.uint8)).tolist()
    [7, 10, 11, 12, 22]
    """
    low = view < 0x20
    whole = len(low) - len(low) % 8
    words = low[:whole].view("<u8")  # little-endian: byte k of a word is 1 << 8k
    at = np.flatnonzero(words != 0)
    hits = words[at]
    alone = (hits & (hits - np.uint64(1))) == 0
    # 1 << 8k as a double is exact: its exponent is 8k + 1
    pos = at * 8 + ((np.frexp(hits.astype(np.float64))[1] - 1) >> 3)
    tail = np.flatnonzero(low[whole:]) + whole
    if bool(alone.all()):
        return np.concatenate([pos, tail]) if len(tail) else pos
    several = (at[~alone] * 8)[:, None] + np.arange(8)
    more = several[low[several]]
    return np.sort(np.concatenate([pos[alone], more, tail]))


class LineArray(ArrowExtensionArray):
    """Lines of a file as a ``binary[pyarrow]`` column, kept as the file's bytes until something reads them.

    The parse step reads :meth:`file_bytes` (the lines, each followed by its ``\\n``, where they start and
    their lengths)
    and hands those bytes to arrow; any other use of the column (``tolist()``, ``iloc``, a sink) cuts
    the lines out once, as :func:`file_lines` would, and from then on it is an ordinary arrow column.
    Only lines without a byte below 0x20 are kept this way (so none ends with a carriage return).

    Examples
    --------
    >>> lines = LineArray.of_block(pa.py_buffer(b'{"a":1}\\n\\n{"a":22}'), np.array([0, 8, 9, 18]))
    >>> len(lines), lines.records(np.array([2, 1]))
    (3, [b'{"a":22}', b''])
    >>> pd.Series(lines).tolist()
    [b'{"a":1}', b'', b'{"a":22}']
    """

    _block: pa.Buffer | None = (
        None  # the lines' bytes, each line followed by its "\\n" (the last may lack it)
    )
    _stops: np.ndarray | None = None  # where each line starts in _block, and (last) the end of the lines
    _ascii = False  # whether every byte of the lines is below 0x80
    _shaped = False  # whether every line is known to start with "{" and end with "}"
    _arr: pa.ChunkedArray | None = None
    # pandas' own attributes of an ArrowExtensionArray (set, not declared, by pandas)
    _dtype: pd.ArrowDtype
    _cache: dict[str, Any]
    _readonly: bool

    @classmethod
    def of_block(
        cls, block: pa.Buffer, stops: np.ndarray, ascii: bool | None = None, shaped: bool = False
    ) -> LineArray:
        """The lines of ``block``: line ``i`` is ``block[stops[i] : stops[i + 1] - 1]`` (``stops[-1]``
        is ``block.size + 1`` when the last line has no ``\\n``); no byte of a line is below 0x20.
        ``ascii`` says whether every byte is below 0x80 (measured when not given); ``shaped``, that
        every line is known to start with ``{`` and end with ``}`` (see :attr:`shaped`)."""
        obj = cls.__new__(cls)
        obj._block, obj._stops, obj._shaped = block, stops, shaped
        if ascii is None:
            body = pa.Array.from_buffers(pa.uint8(), block.size, [None, block])
            ascii = not block.size or int(pc.max(body).as_py()) < 0x80
        obj._ascii = ascii
        obj._dtype = pd.ArrowDtype(pa.binary())
        obj._cache = {}
        return obj

    @property
    def _pa_array(self) -> pa.ChunkedArray:
        if self._arr is None:
            assert self._block is not None and self._stops is not None
            lines = _split(self._block, self._block.size)[0]
            self._arr = pa.chunked_array([lines], pa.binary())
        return self._arr

    @_pa_array.setter
    def _pa_array(self, values: pa.ChunkedArray) -> None:
        self._arr, self._block, self._stops = values, None, None

    def file_bytes(self) -> tuple[pa.Buffer, np.ndarray, np.ndarray, bool] | None:
        """The lines' bytes (each line followed by its ``\\n``, the last may lack it), where each line
        starts in them, their lengths, and whether all bytes are ASCII; None once the column was changed
        in place."""
        if self._block is None or self._stops is None:
            return None
        return self._block, self._stops[:-1], np.diff(self._stops) - 1, self._ascii

    @property
    def shaped(self) -> bool:
        """Whether every line is known to start with ``{`` and end with ``}``, as found with the line
        breaks (:func:`_breaks`); False means not known, and the parse step looks."""
        return self._shaped and self._block is not None

    def records(self, where: np.ndarray) -> list[bytes]:
        """The lines at positions ``where``, as bytes (cut from the file's bytes, the rest left there)."""
        if self._block is None or self._stops is None:
            return [bytes(r) for r in self._pa_array.take(pa.array(where)).to_pylist()]
        data = memoryview(self._block)
        return [
            bytes(data[self._stops[i] : self._stops[i + 1] - 1])
            for i in np.asarray(where, dtype=np.int64).tolist()
        ]

    def texts(self, where: np.ndarray) -> list[str] | None:
        """The lines at positions ``where`` as text when every byte is ASCII (the block decoded once,
        each line a slice of it); None otherwise, or once the column was changed in place."""
        if self._block is None or self._stops is None or not self._ascii:
            return None
        text = str(self._block, "ascii")  # decoded from arrow's buffer itself: no bytes copy first
        stops = self._stops.tolist()
        return [text[stops[i] : stops[i + 1] - 1] for i in np.asarray(where, dtype=np.int64).tolist()]

    def __getitem__(self, item: Any) -> Any:
        # a run of lines (pandas' ``iloc[a:b]``, a batch cut in two) stays the file's bytes
        if isinstance(item, slice) and item.step in (None, 1) and self._block is not None:
            assert self._stops is not None
            start, stop, _ = item.indices(len(self))
            stops = self._stops[start : max(start, stop) + 1]
            lo, hi = (min(int(s), self._block.size) for s in (stops[0], stops[-1]))
            block = self._block.slice(lo, max(hi - lo, 0))
            return LineArray.of_block(block, stops - lo, self._ascii, self._shaped)
        return super().__getitem__(item)

    def __len__(self) -> int:
        return len(self._stops) - 1 if self._stops is not None else len(self._pa_array)

    def isna(self) -> np.ndarray:
        return np.zeros(len(self), dtype=bool) if self._stops is not None else super().isna()

    @property
    def nbytes(self) -> int:
        if self._block is not None and self._stops is not None:
            return int(self._block.size + self._stops.nbytes)
        return int(self._pa_array.nbytes)

    def copy(self) -> LineArray:
        if self._block is None or self._stops is None:
            return super().copy()
        return self._twin()

    def view(self, dtype: Any = None) -> Any:
        if dtype is not None or self._block is None or self._stops is None:
            return super().view(dtype)
        return self._twin()

    def _twin(self) -> LineArray:
        """Another array over the same bytes (pandas' shallow copies), still not cut into lines."""
        assert self._block is not None and self._stops is not None
        twin = LineArray.__new__(LineArray)
        twin._block, twin._stops, twin._ascii, twin._arr = self._block, self._stops, self._ascii, self._arr
        twin._shaped = self._shaped
        twin._dtype, twin._cache = self._dtype, {}
        twin._readonly = getattr(self, "_readonly", False)
        return twin

    def __reduce__(self) -> tuple[type, tuple[pa.ChunkedArray]]:
        return ArrowExtensionArray, (self._pa_array,)


class LineBlocks:
    """The lines of a file (as :func:`file_lines` cuts them), read a block at a time as they are taken.

    A block whose only control bytes are its line breaks (the common case) is not split: its lines are
    taken as a :class:`LineArray` over the block's bytes, which a parse step hands to arrow as they are.
    Any other block is split by arrow and registered for :func:`file_slice` while its lines are recent,
    so a parse step still hands arrow the file's own bytes (when no line ends with a carriage return).
    Memory stays at a few blocks whatever the file's size.
    ``position`` skips that many lines first (a resumed replay). ``min_read`` is the fewest bytes read
    at once.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "x.jsonl"
    >>> _ = path.write_bytes(b'{"a":1}\\r\\n\\n{"a":2}\\n{"a":3}')
    >>> blocks = LineBlocks(path, min_read=4)
    >>> blocks.take(2).tolist(), blocks.left(), blocks.take(5).tolist(), blocks.done
    ([b'{"a":1}', b''], 2, [b'{"a":2}', b'{"a":3}'], True)
    """

    _KEEP = 4  # blocks known to file_slice at once: the one read, and those the runtime may still parse

    def __init__(self, path: Path, position: int = 0, *, min_read: int = 1 << 20) -> None:
        self.path = path
        self.min_read = min_read
        self._file = open_bytes(path)
        self._block = pa.py_buffer(b"")  # bytes from the first line not taken to the end of what was read
        self._lines: pa.BinaryArray | list[bytes] | None = None  # the complete lines at the block's start
        self._cr: np.ndarray | None = None  # lines (of _lines) that lost a "\\r", when any did
        # instead of _lines, for a block without control bytes but its line breaks: where each complete
        # line starts in the block, then the end of the last (see LineArray.of_block)
        self._stops: np.ndarray | None = None
        self._ascii = self._shaped = False  # of the block's lines, when _stops (see _breaks)
        self._split_end = 0  # bytes of the block covered by _lines, with their line breaks
        self._first = 0  # lines of _lines taken already
        self._eof = False
        self._read_bytes = 0  # of the file (uncompressed)
        # the file's size when its end was read without a final line break (see ReplaySource.open)
        self.open_end: int | None = None
        self._mean = 256.0  # bytes per line so far, to size reads
        self._probed = False  # whether a first small read measured the lines (so the next is sized right)
        self._keys: deque[tuple[int, int]] = deque()
        self.taken = 0
        self._left: int | None = None  # lines not taken, once counted
        self._finalizer = weakref.finalize(self, _forget, self._keys)
        self._memory = _BlockMemory()
        try:
            head = self._file.read(len(_BOM))  # a byte order mark is not part of the first line: skipped
        except OSError as e:  # a compressed file damaged from its start
            _log.warning(_CUT_SHORT, self.path, 0, e)
            head, self._eof = b"", True
        self._read_bytes = len(head)
        if head != _BOM:
            self._block = pa.py_buffer(head)
        while self.taken < position and not self.done:
            self.take(position - self.taken)

    @property
    def done(self) -> bool:
        """Whether every line was taken."""
        return self._all_split() and self._pending() == 0

    def _all_split(self) -> bool:
        return self._eof and self._split_end == self._block.size

    def _pending(self) -> int:
        if self._stops is not None:
            return len(self._stops) - 1 - self._first
        return 0 if self._lines is None else len(self._lines) - self._first

    def take(self, limit: int) -> pd.Series:
        """The next ``limit`` lines (fewer at the end), as :func:`file_lines` gives them."""
        while self._pending() < limit and not self._all_split():
            # the first read is small: it learns the lines' length, so the first batch's block is not
            # sized by a guess (a block too large is split and copied twice, before any parsing starts)
            self._read(limit - self._pending() if self._probed else 0)
            self._probed = True
        n = min(limit, self._pending())
        out: pa.Array | list[bytes] | LineArray
        if self._stops is not None:
            stops = self._stops[self._first : self._first + n + 1]
            start = min(int(stops[0]), self._split_end)
            stop = min(int(stops[-1]), self._split_end)
            block = self._block.slice(start, stop - start)
            out = LineArray.of_block(block, stops - start, self._ascii, self._shaped)
        else:
            assert self._lines is not None or n == 0
            out = self._lines[self._first : self._first + n] if self._lines is not None else []
        self._first += n
        self.taken += n
        if self._left is not None:
            self._left -= n
        if not self._pending() and self._split_end == self._block.size and not self._eof:
            self._read(0)  # learn now whether the file ends here, so ``done`` is exact
        return _series(out)

    def _offset(self, line: int) -> int:
        """Where line ``line`` of _lines starts in the block."""
        if self._stops is not None:
            return min(int(self._stops[line]), self._split_end)
        if self._lines is None or line == 0:
            return 0
        if isinstance(self._lines, list):
            return (
                sum(map(len, self._lines[:line]))
                + line
                + int(self._cr[:line].sum() if self._cr is not None else 0)
            )
        offsets = np.frombuffer(self._lines.buffers()[1], np.int32, 2, self._lines.offset * 4)
        at = np.frombuffer(self._lines.buffers()[1], np.int32, 1, (self._lines.offset + line) * 4)
        cr = int(self._cr[:line].sum()) if self._cr is not None else 0
        return int(at[0]) - int(offsets[0]) + line + cr

    def _read(self, lines: int) -> None:
        """Read on (about enough bytes for ``lines`` more lines) and split the complete lines read."""
        rest = self._block.slice(self._offset(self._first))
        want = max(self.min_read, int(lines * self._mean * 1.02) + 1) if lines else self.min_read
        want = max(min(want, (1 << 30) - rest.size), self.min_read)
        block = self._memory.allocate(rest.size + want)
        view = np.frombuffer(block, np.uint8)
        view[: rest.size] = np.frombuffer(rest, np.uint8)
        got = 0
        while got < want:  # a compressed stream may give less than asked before its end
            try:
                k = self._file.readinto(memoryview(block)[rest.size + got :])
            except OSError as e:  # a truncated or corrupt compressed file: replay what could be read
                _log.warning(
                    _CUT_SHORT,
                    self.path,
                    f"{self._read_bytes + got:,}",
                    e,
                )
                k = 0
            if not k:
                self._eof = True
                break
            got += k
        self._read_bytes += got
        size = rest.size + got
        self._block = block.slice(0, size)
        if self._eof and size and view[size - 1] != 10 and _compression(self.path) is None:
            self.open_end = self._read_bytes  # the last line has no break: a writer may be writing it
        self._split(size if self._eof else _after_last_break(view[:size]))

    def _split(self, end: int) -> None:
        self._stops = None
        if end:
            found = _breaks(np.frombuffer(self._block, np.uint8, end))
            if found is not None:  # no control byte but the line breaks: the lines need not be cut out
                breaks, self._ascii, self._shaped = found
                last = bool(len(breaks)) and int(breaks[-1]) + 1 == end  # whether the last line has its break
                stops = np.empty(len(breaks) + (1 if last else 2), dtype=np.int64)
                stops[0] = 0
                stops[1 : len(breaks) + 1] = breaks + 1
                if not last:  # the file's last line, without a break
                    stops[-1] = end + 1
                self._stops, self._lines, self._cr, self._split_end, self._first = stops, None, None, end, 0
                self._mean = end / (len(stops) - 1)
                return
        lines, cr, extremes = _split(self._block, end) if end else (pa.array([], pa.binary()), None, None)
        self._lines, self._cr, self._split_end, self._first = lines, cr, end, 0
        if len(lines):
            self._mean = end / len(lines)
        if cr is None and extremes is not None and not isinstance(lines, list) and len(lines):
            self._keys.append(_register(self._block.slice(0, end), lines, extremes))
            while len(self._keys) > self._KEEP:
                _FILES.pop(self._keys.popleft(), None)

    def left(self) -> int:
        """Lines not taken yet (counted once, reading the rest of the file apart)."""
        if self._left is None:
            tail = np.frombuffer(self._block, np.uint8)[self._split_end :]
            count = self._pending() + int(np.count_nonzero(tail == 10))
            last = int(tail[-1]) if len(tail) else 10
            if not self._eof:
                f = open_bytes(self.path)
                try:
                    skip = self._read_bytes
                    while chunk := f.read(1 << 22):
                        chunk, skip = chunk[skip:], max(skip - len(chunk), 0)
                        if chunk:
                            count += chunk.count(b"\n")
                            last = chunk[-1]
                except OSError:  # a truncated or damaged compressed file: its lines up to there
                    pass
                finally:
                    f.close()
            self._left = count + (last != 10)
        return self._left

    def close(self) -> None:
        """Close the file and forget the blocks (the last one's memory goes back for the next replay)."""
        self._file.close()
        self._finalizer()
        self._block, self._stops, self._lines, self._cr = pa.py_buffer(b""), None, None, None
        self._split_end = self._first = 0
        self._memory.close()


_ROUND = 1 << 20  # block memory comes in whole MiB, so a block a little larger than the last still fits
_KEEP_IDLE = 64 << 20  # bytes of block memory a closed replay leaves for the next one
_IDLE: dict[int, np.ndarray] = {}  # that memory (id -> array), taken by the next replay's blocks


class _BlockMemory:
    """The memory of one replay's blocks, used again as soon as nothing refers to a block any more.

    Fresh memory is expensive here: the kernel faults in and zeroes every page, and the C allocator
    gives blocks of this size back to the system too often to avoid it (20–25 thousand page faults and
    50–90 ms of system time for a 147 MB file in the pipeline; 6–10 thousand and 40–50 ms reused). A block is
    lent as a view of a larger array; when the view dies (the batches cut from the block, arrow's read of
    it and the cut-out lines all gone) its array comes back, so a replay works within a few arrays. Once
    the replay is closed, what comes back waits for the next replay, up to :data:`_KEEP_IDLE` bytes.

    Examples
    --------
    >>> memory = _BlockMemory()
    >>> block = memory.allocate(1000)
    >>> address = block.address
    >>> del block  # nothing refers to it any more: its memory is reused
    >>> memory.allocate(5000).address == address
    True
    """

    _SPARE = 3  # arrays kept aside while the replay is open

    def __init__(self) -> None:
        self._spare: dict[int, np.ndarray] = {}
        self.closed = False

    def allocate(self, size: int) -> pa.Buffer:
        """A buffer of ``size`` bytes, not initialised."""
        memory = _pop_fitting(self._spare, size)
        if memory is None:
            memory = _pop_fitting(_IDLE, size)
        if memory is None:  # from the C allocator: numpy's own asks for huge pages, whose faults compact
            whole = pa.allocate_buffer(-(-max(size, 1) // _ROUND) * _ROUND, memory_pool=_POOL)
            memory = np.frombuffer(whole, np.uint8)
        lent = memory[:size]
        weakref.finalize(lent, self._give_back, memory).atexit = False
        return pa.py_buffer(lent)

    def _give_back(self, memory: np.ndarray) -> None:
        # may run in any thread (where the last reference died): dict operations only, no lock to wait on
        if not self.closed and len(self._spare) < self._SPARE:
            self._spare[id(memory)] = memory
        else:
            _keep_idle(memory)

    def close(self) -> None:
        """Leave the spare arrays (and those still lent, as they come back) to the next replay."""
        self.closed = True
        for key in list(self._spare):
            memory = self._spare.pop(key, None)
            if memory is not None:
                _keep_idle(memory)


def _pop_fitting(arrays: dict[int, np.ndarray], size: int) -> np.ndarray | None:
    """Take the smallest array of at least ``size`` bytes out of ``arrays`` (None if none is there)."""
    fitting = sorted((len(memory), key) for key, memory in list(arrays.items()) if len(memory) >= size)
    for _, key in fitting:
        taken = arrays.pop(key, None)  # another thread may have taken it meanwhile
        if taken is not None:
            return taken
    return None


def _keep_idle(memory: np.ndarray) -> None:
    if sum(len(m) for m in list(_IDLE.values())) + len(memory) <= _KEEP_IDLE:
        _IDLE[id(memory)] = memory


_BACK = 1 << 16  # bytes looked at per step when searching a block backwards for its last line break


def _after_last_break(view: np.ndarray) -> int:
    """The position after the last ``\\n`` of ``view`` (0 if none), looking from the end a step at a time."""
    hi = len(view)
    while hi > 0:
        lo = max(0, hi - _BACK)
        breaks = np.flatnonzero(view[lo:hi] == 10)
        if len(breaks):
            return lo + int(breaks[-1]) + 1
        hi = lo
    return 0


def _forget(keys: deque[tuple[int, int]]) -> None:
    while keys:
        _FILES.pop(keys.popleft(), None)


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
    found = _lookup(arr)
    if found is None:
        return None
    file, lines, _ = found
    buffers = arr.buffers()
    offsets = np.frombuffer(buffers[1], np.int32)
    first = arr.offset - lines.offset  # the index of arr's first line among the file's lines
    base = int(offsets[lines.offset])
    start = int(offsets[arr.offset]) - base + first  # every earlier line is followed by one "\n"
    stop = int(offsets[arr.offset + len(arr)]) - base + first + len(arr)
    return file.slice(start, min(stop, file.size) - start)


def _lookup(arr: pa.BinaryArray) -> tuple[pa.Buffer, pa.BinaryArray, tuple[int, int]] | None:
    """The entry of :data:`_FILES` whose lines hold ``arr`` (a non-empty run of them), or None."""
    if len(arr) == 0:
        return None
    buffers = arr.buffers()
    found = _FILES.get((buffers[2].address, buffers[1].address))
    if found is None:
        return None
    first = arr.offset - found[1].offset  # the index of arr's first line among the file's lines
    if first < 0 or first + len(arr) > len(found[1]):
        return None
    return found


def line_extremes(arr: pa.BinaryArray) -> tuple[int, int] | None:
    """Bounds on the bytes of ``arr``, a run of lines from :func:`file_lines` (as :func:`file_slice`
    takes them): no byte of its lines is below the first or above the second; None when ``arr`` is not
    such a run. They are the extremes of the block of lines ``arr`` was cut from, measured as it was
    split, so a batch of its lines needs no scan to learn it holds no control byte, or only ASCII.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "x.jsonl"
    >>> _ = path.write_bytes(b'{"a":1}\\n{"a":"z"}\\n')
    >>> owner = type("Owner", (), {})()
    >>> lines = pa.array(file_lines(path, owner), pa.binary())
    >>> [chr(b) for b in line_extremes(lines.slice(0, 1))]
    ['"', '}']
    >>> line_extremes(pa.array([b'{"a":1}'])) is None
    True
    """
    found = _lookup(arr)
    return None if found is None else found[2]


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
