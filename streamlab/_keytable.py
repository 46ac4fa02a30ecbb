"""Vectorized key and slot tables of the window steps: no Python work per key on the hot path.

:class:`KeyIndex` gives dense integer ids to key values through a persistent hash table (pandas'
factorizer, which appends the values it has not seen and numbers them in order); ids are given out and
taken back in bulk, and the table is rebuilt from the live keys once released keys outnumber them, so
memory follows the keys that open windows still refer to. :class:`SlotTable` keeps, per open window, its
key ids sorted with their slots: lookups are one ``searchsorted`` per window present in a batch, and a
window closes by dropping its two arrays.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas._libs import hashtable as _hashtable  # type: ignore[attr-defined]  # private: not in pandas-stubs

from streamlab._compat import factorize, inferred_kind, object_index
from streamlab._detector_record import unkeyable
from streamlab._intcols import inferred_series
from streamlab._serde_values import is_utf8_text

_EMPTY = np.zeros(0, dtype=np.int64)
_NO_ENTRY = 2**62

#: whether :func:`string_kernels` may give the compiled kernels (tests turn it off to compare the paths)
use_string_kernels = True
_string_kernels: ModuleType | None = None  # the module once imported
_no_string_kernels = False  # numba cannot be imported here


def string_kernels(load: bool = True) -> ModuleType | None:
    """:mod:`streamlab._string_kernels` (compiled) when numba is installed and :data:`use_string_kernels`.

    Imported on the first call with ``load`` (without it: only if imported already), so importing
    streamlab (or keying a window by a few strings) does not import numba. The kernels give the numpy
    paths' results exactly.

    Examples
    --------
    >>> k = string_kernels()
    >>> k is None or callable(k.batch_codes)
    True
    """
    global _string_kernels, _no_string_kernels
    if not use_string_kernels or _no_string_kernels:
        return None
    if _string_kernels is None:
        if not load:
            return None
        try:
            from streamlab import _string_kernels as kernels
        except ImportError:  # no numba (the ``fast`` extra), or one that cannot load here
            _no_string_kernels = True
            return None
        try:
            kernels.self_check()
        except Exception as e:  # numba there but broken here: the exact numpy path runs instead
            _no_string_kernels = True
            warnings.warn(
                f"streamlab: numba is installed but its compiled key kernels fail here ({e!r}); "
                "string keys are numbered by the numpy path (same results, slower). Reinstall numba "
                "and llvmlite for this numpy (pip install -U numba) to get them back.",
                RuntimeWarning,
                stacklevel=2,
            )
            return None
        _string_kernels = kernels
    return _string_kernels


def grown(arr: np.ndarray, n: int, fill: Any) -> np.ndarray:
    """``arr`` with room for at least ``n`` items (doubling), new items set to ``fill``."""
    if n <= len(arr):
        return arr
    out = np.full(max(n, 2 * len(arr), 64), fill, dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


def _sorted_distinct(ids: np.ndarray, bound: int) -> np.ndarray:
    """``np.unique(ids)`` for ids below ``bound``: by flags over ``0 .. bound`` where the ids are many
    (a pass over ``bound`` bytes instead of a sort), else by the sort.

    Examples
    --------
    >>> _sorted_distinct(np.array([5, 1, 5, 3]), 8).tolist()
    [1, 3, 5]
    """
    if 32 * len(ids) < bound:
        out: np.ndarray = np.unique(ids)
        return out
    flags = np.zeros(bound, dtype=bool)
    flags[ids] = True
    return np.flatnonzero(flags)


def _distinct(ids: np.ndarray) -> bool:
    """Whether ``ids`` are strictly increasing (so distinct), as slots of one window list their keys."""
    return len(ids) < 2 or bool((ids[1:] > ids[:-1]).all())


def unhashable_rows(col: pd.Series) -> np.ndarray | None:
    """Which values of ``col`` cannot be a key (a dict, a list: Python cannot hash them), or None when
    all can (any column that is not of Python objects).

    Examples
    --------
    >>> unhashable_rows(pd.Series(["a", {"b": 1}, [1], None], dtype=object)).tolist()
    [False, True, True, False]
    >>> unhashable_rows(pd.Series([1, 2])) is None
    True
    """
    if col.dtype != object:
        return None
    values = col.tolist()
    if not unkeyable(tuple(values)):  # the usual batch: one hash of every value, in C
        return None
    return np.fromiter((unkeyable(v) for v in values), dtype=bool, count=len(values))


def object_array(values: Any) -> np.ndarray:
    """A 1-d object array of ``values`` (tuples stay elements instead of becoming a second axis)."""
    if isinstance(values, np.ndarray) and values.dtype == object:
        return values
    if isinstance(values, pd.MultiIndex):
        return np.asarray(values.values, dtype=object)
    if isinstance(values, (pd.Index, pd.api.extensions.ExtensionArray, pd.Series, np.ndarray)):
        return np.asarray(values, dtype=object)
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


# -- string keys as bytes: hashed, compared and stored without Python objects ------------------------
_HASH_SEED = 0x5EED_0F_6B_E7
_MULT_BITS = 16
_MULT_SPAN = 1 << _MULT_BITS  # byte positions with a multiplier of their own
_MULT = np.zeros(0, dtype=np.uint64)  # a random odd multiplier per byte position (grown in blocks of 256)
_HIGH = np.zeros(0, dtype=np.uint64)  # a random even mask per further _MULT_SPAN bytes (the first: 0)
_HASH_CHUNK = 1 << 22  # bytes hashed at once (bounds the temporaries)
_HUGE_PIECE = 1 << 20  # bytes of a key over _HASH_CHUNK summed at once (temporaries of 6 x 8 bytes a byte)


def _random_blocks(table: np.ndarray, n: int, stream: tuple[int, ...], low_bit: int) -> np.ndarray:
    """``table`` grown to ``n`` entries in blocks of 256 random uint64 with their lowest bit
    ``low_bit``; block ``j`` drawn from the seed ``(_HASH_SEED, *stream, j)``, so it never changes."""
    if len(table) >= n:
        return table
    blocks = [table]
    for j in range(len(table) // 256, -(-n // 256)):
        rng = np.random.default_rng([_HASH_SEED, *stream, j])
        blocks.append(rng.integers(0, 2**63, 256, dtype=np.uint64) * np.uint64(2) + np.uint64(low_bit))
    return np.concatenate(blocks)


def _multipliers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The multipliers of byte positions ``0 .. n - 1``: position ``j`` is multiplied by
    ``mult[j % _MULT_SPAN] ^ high[j // _MULT_SPAN]`` (odd), where ``high[0]`` is 0.

    A string's first 64 KiB each have a multiplier of their own; beyond, the table repeats with a mask
    per 64 KiB, so a huge key (a 10 MB text) costs a few entries more, not a table of 8 bytes per byte
    (80 MB kept for the process, a second to draw).
    """
    global _MULT, _HIGH
    _MULT = _random_blocks(_MULT, min(n, _MULT_SPAN), (), 1)
    if not len(_HIGH) or len(_HIGH) * _MULT_SPAN < n:
        high = _random_blocks(_HIGH, max(1, -(-n // _MULT_SPAN)), (1,), 0)
        high[0] = 0  # the first 64 KiB: the multipliers as they are
        _HIGH = high
    return _MULT, _HIGH


def _multipliers_at(pos: np.ndarray, mult: np.ndarray, high: np.ndarray, wide: bool) -> np.ndarray:
    """The multipliers (:func:`_multipliers`) of byte positions ``pos``; ``wide``: some position may be
    past the first 64 KiB."""
    at: np.ndarray
    if not wide:
        at = mult[pos]
        return at
    at = mult[pos & (_MULT_SPAN - 1)]
    at ^= high[pos >> _MULT_BITS]
    return at


def _huge_sum(data: np.ndarray, lo: int, hi: int, mult: np.ndarray, high: np.ndarray) -> np.uint64:
    """The sum :func:`string_hashes` mixes for one string ``data[lo:hi]`` longer than ``_HASH_CHUNK``,
    ``_HUGE_PIECE`` bytes at a time: temporaries of a piece, not of the string (a 20 MB key took 800 MB).
    The sum wraps at 2**64 in any order, so it equals the whole string's."""
    total = np.zeros(1, dtype=np.uint64)  # an array: its additions wrap silently (a scalar's warn)
    for start in range(lo, hi, _HUGE_PIECE):
        stop = min(start + _HUGE_PIECE, hi)
        c = data[start:stop].astype(np.uint64)
        c += np.uint64(1)
        c *= _multipliers_at(np.arange(start - lo, stop - lo, dtype=np.int64), mult, high, True)
        total += c.sum(dtype=np.uint64)
    result: np.uint64 = total[0]
    return result


def _segment_index(offsets: np.ndarray) -> np.ndarray:
    """Each byte's position within its segment, for segments ``offsets[i]:offsets[i + 1]`` covering 0..end."""
    lens = np.diff(offsets)
    pos: np.ndarray = np.arange(int(offsets[-1]) - int(offsets[0]), dtype=np.int64)
    pos -= np.repeat(offsets[:-1] - offsets[0], lens)
    return pos


def string_hashes(data: np.ndarray, offsets: np.ndarray, kernels: ModuleType | None = None) -> np.ndarray:
    """A 64-bit hash of each byte string ``data[offsets[i]:offsets[i + 1]]`` (vectorized, no Python per key).

    A sum of the bytes times a fixed random odd multiplier per position, mixed with the length. Equal
    strings hash alike; different strings may too (rarely): callers compare the bytes. ``kernels``
    (:func:`string_kernels`) computes the same in one compiled pass.

    Examples
    --------
    >>> import numpy as np
    >>> data = np.frombuffer(b"abcab", dtype=np.uint8)
    >>> h = string_hashes(data, np.array([0, 2, 3, 5]))
    >>> bool(h[0] == h[2]), bool(h[0] == h[1])
    (True, False)
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    n = len(offsets) - 1
    out = np.zeros(max(n, 0), dtype=np.uint64)
    if n <= 0:
        return out
    lens = np.diff(offsets)
    longest = int(lens.max())
    mult, high = _multipliers(longest + 1)
    if kernels is not None:
        hashed: np.ndarray = kernels.hashes(data, offsets, mult, high)
        return hashed
    # strings in chunks of about _HASH_CHUNK bytes
    cuts = (
        np.searchsorted(offsets, np.arange(int(offsets[0]), int(offsets[-1]), _HASH_CHUNK), side="right") - 1
    )
    huge = np.flatnonzero(lens > _HASH_CHUNK).tolist()  # each alone in its chunk, summed piece by piece
    bounds = sorted(set(np.clip(cuts, 0, n).tolist()) | {0, n} | set(huge) | {i + 1 for i in huge})
    for a, b in itertools.pairwise(bounds):
        off = offsets[a : b + 1]
        lo, hi = int(off[0]), int(off[-1])
        if b == a + 1 and hi - lo > _HASH_CHUNK:
            out[a] = _huge_sum(data, lo, hi, mult, high)
            continue
        c = data[lo:hi].astype(np.uint64)
        c += np.uint64(1)
        c *= _multipliers_at(_segment_index(off), mult, high, longest >= _MULT_SPAN)
        cum = np.zeros(hi - lo + 1, dtype=np.uint64)
        np.cumsum(c, out=cum[1:])
        rel = off - lo
        out[a:b] = cum[rel[1:]] - cum[rel[:-1]]
    out ^= lens.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    out ^= out >> np.uint64(31)
    out *= np.uint64(0xBF58476D1CE4E5B9)
    out ^= out >> np.uint64(29)
    return out


def _gather(
    data: np.ndarray, starts: np.ndarray, lens: np.ndarray, kernels: ModuleType | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The byte strings ``data[starts[i]:starts[i] + lens[i]]`` packed together, and their offsets."""
    if kernels is not None:
        packed: tuple[np.ndarray, np.ndarray] = kernels.gather(
            data, np.asarray(starts, dtype=np.int64), np.asarray(lens, dtype=np.int64)
        )
        return packed
    offsets = np.zeros(len(lens) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    total = int(offsets[-1])
    if total == 0:
        return np.zeros(0, dtype=np.uint8), offsets
    huge = lens > _HASH_CHUNK
    if not huge.any():
        src = np.repeat(starts - offsets[:-1], lens)
        src += np.arange(total, dtype=np.int64)
        return data[src], offsets
    # a huge string is copied as a slice: an index per byte would be 8 bytes a byte
    out = np.empty(total, dtype=np.uint8)
    for i in np.flatnonzero(huge).tolist():
        out[offsets[i] : offsets[i + 1]] = data[starts[i] : starts[i] + lens[i]]
    rest = np.flatnonzero(~huge)
    if len(rest):
        rest_bytes, rest_offsets = _gather(data, starts[rest], lens[rest])
        dst = np.repeat(offsets[rest] - rest_offsets[:-1], lens[rest])
        dst += np.arange(len(rest_bytes), dtype=np.int64)
        out[dst] = rest_bytes
    return out, offsets


def _equal(
    data_a: np.ndarray,
    starts_a: np.ndarray,
    lens_a: np.ndarray,
    data_b: np.ndarray,
    starts_b: np.ndarray,
    lens_b: np.ndarray,
    kernels: ModuleType | None = None,
) -> np.ndarray:
    """Whether each byte string of ``a`` equals the one of ``b`` beside it."""
    if kernels is not None:
        equal: np.ndarray = kernels.equal(data_a, starts_a, lens_a, data_b, starts_b, lens_b)
        return equal
    same: np.ndarray = lens_a == lens_b
    idx = np.flatnonzero(same)
    if len(idx) == 0:
        return same
    a, offsets = _gather(data_a, starts_a[idx], lens_a[idx])
    b, _ = _gather(data_b, starts_b[idx], lens_b[idx])
    wrong = np.flatnonzero(a != b)
    if len(wrong):
        same[idx[np.searchsorted(offsets, wrong, side="right") - 1]] = False
    return same


def _arrow_bytes(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The bytes of an arrow string or large string array (no copy), its offsets (int64, one more than
    the strings) and which strings are missing."""
    n = len(arr)
    bufs = arr.buffers()
    width = np.int64 if pa.types.is_large_string(arr.type) else np.int32
    offsets = np.frombuffer(bufs[1], dtype=width)[arr.offset : arr.offset + n + 1].astype(np.int64)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, dtype=np.uint8)
    null = np.zeros(n, dtype=bool) if arr.null_count == 0 else arr.is_null().to_numpy(zero_copy_only=False)
    return data, offsets, null


class StringKeys:
    """String keys as UTF-8 bytes (``data[starts[i]:starts[i] + lens[i]]``), ``null`` where a key is missing.

    What :meth:`KeyIndex.local_keys` gives for a column of arrow strings, in place of an object array:
    it indexes like one (``keys[positions]``), and ``tolist()`` / ``numpy.asarray`` give the values.

    Examples
    --------
    >>> keys = StringKeys.from_objects(["a", None, "bc"])
    >>> keys[[2, 0]].tolist(), len(keys)
    (['bc', 'a'], 3)
    """

    def __init__(
        self,
        data: np.ndarray,
        starts: np.ndarray,
        lens: np.ndarray,
        null: np.ndarray,
        hashes: np.ndarray | None = None,
    ) -> None:
        self.data, self.starts, self.lens, self.null = data, starts, lens, null
        self._hashes = hashes

    @classmethod
    def from_arrow(cls, arr: pa.Array, kernels: ModuleType | None = None) -> StringKeys:
        """The keys of an arrow string or large string array (no copy of the bytes)."""
        data, offsets, null = _arrow_bytes(arr)
        keys = cls(data, offsets[:-1], np.diff(offsets), null)
        keys._hashes = string_hashes(data, offsets, kernels)
        return keys

    @classmethod
    def from_objects(cls, values: Any) -> StringKeys:
        """The keys of Python strings (``None`` or NaN for missing ones)."""
        arr = pa.array(values, type=pa.large_string(), from_pandas=True)
        return cls.from_arrow(arr)

    @property
    def hashes(self) -> np.ndarray:
        """:func:`string_hashes` of the keys."""
        if self._hashes is None:
            data, offsets = _gather(self.data, self.starts, self.lens)
            self._hashes = string_hashes(data, offsets)
        return self._hashes

    def __len__(self) -> int:
        return len(self.lens)

    def __getitem__(self, idx: Any) -> Any:
        if isinstance(idx, (int, np.integer)):  # one key, as an object array gives it
            return None if self.null[idx] else self.key(int(idx)).decode()
        return StringKeys(self.data, self.starts[idx], self.lens[idx], self.null[idx], self.hashes[idx])

    def to_arrow(self, kernels: ModuleType | None = None) -> pa.Array:
        """The keys as an arrow large string array (``kernels``: :func:`string_kernels` gathers them)."""
        data, offsets = _gather(self.data, self.starts, np.where(self.null, 0, self.lens), kernels)
        arr = pa.LargeStringArray.from_buffers(len(self), pa.py_buffer(offsets), pa.py_buffer(data))
        if self.null.any():
            arr = pc.if_else(pa.array(~self.null), arr, pa.scalar(None, pa.large_string()))
        return arr

    def tolist(self) -> list[Any]:
        """The keys as Python strings (``None`` for missing ones)."""
        out: list[Any] = self.to_arrow().to_pylist()
        return out

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return object_array(self.tolist())

    def key(self, i: int) -> bytes:
        """The bytes of key ``i``."""
        s = int(self.starts[i])
        return self.data[s : s + int(self.lens[i])].tobytes()


Keys: TypeAlias = (
    np.ndarray | StringKeys
)  # the distinct keys of a batch: an object array, or strings as bytes


def _is_str(values: np.ndarray) -> np.ndarray | None:
    """Which of ``values`` (an object array) are strings; None when none are."""
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind == "string":
        return ~np.asarray(pd.isna(values), dtype=bool)
    if kind not in ("mixed", "mixed-integer"):
        return None
    mask = np.fromiter((isinstance(v, str) for v in values.tolist()), dtype=bool, count=len(values))
    return mask if mask.any() else None


def _with_utf8(values: np.ndarray, strs: np.ndarray) -> np.ndarray:
    """``strs`` without the strings of ``values`` that UTF-8 cannot encode (lone surrogates).

    Examples
    --------
    >>> _with_utf8(np.array(["a", "\\ud800", 1], dtype=object), np.array([True, True, False])).tolist()
    [True, False, False]
    """
    out = strs.copy()
    for i in np.flatnonzero(strs).tolist():
        out[i] = is_utf8_text(values[i])
    return out


_STR_DTYPE = pd.Series(["a"], dtype=object).infer_objects().dtype  # the dtype a column of str is given
_ARROW_STR = isinstance(_STR_DTYPE, pd.StringDtype) and _STR_DTYPE.storage == "pyarrow"


def arrow_strings(col: pd.Series) -> pa.Array | None:
    """The arrow array of a column of arrow-backed strings (chunks combined), else None."""
    arr = col.array
    if not isinstance(arr, pd.arrays.ArrowExtensionArray):
        return None
    chunked = arr.__arrow_array__()
    if not (pa.types.is_string(chunked.type) or pa.types.is_large_string(chunked.type)):
        return None
    return chunked.chunk(0) if chunked.num_chunks == 1 else chunked.combine_chunks()


def string_codes(strings: pa.Array, kernels: ModuleType | None = None) -> tuple[np.ndarray, StringKeys]:
    """Batch-local codes of arrow strings in order of first sight, and the distinct keys (missing ones:
    the key ``None``).

    Arrow's dictionary encoding groups the rows in C (exact, one pass over the bytes); only the batch's
    distinct values are hashed afterwards, where the persistent table looks them up. (Grouping the rows
    by their own 64-bit hashes instead was measured slower at every key count: 4x on 8 keys, about
    equal on 200 k distinct keys per 2 M events.) ``kernels`` (:func:`string_kernels`) does both in one
    compiled pass, with the same codes and hashes: 2.7 against 9.6 ms a batch of 100 k rows with 95 k
    distinct keys, where arrow's table and the hashes' temporaries outgrow the caches.

    Examples
    --------
    >>> import pyarrow as pa
    >>> codes, keys = string_codes(pa.array(["b", None, "a", "b"]))
    >>> codes.tolist(), keys.tolist()
    ([0, 1, 2, 0], ['b', None, 'a'])
    """
    if kernels is not None and len(strings):
        data, offsets, null = _arrow_bytes(strings)
        mult, high = _multipliers(int(np.diff(offsets).max()) + 1)
        codes, first, hashes = kernels.batch_codes(data, offsets, null, mult, high)
        return codes, StringKeys(
            data, offsets[first], offsets[first + 1] - offsets[first], null[first], hashes
        )
    enc = pc.dictionary_encode(strings, null_encoding="encode")
    local = np.asarray(enc.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return local, StringKeys.from_arrow(enc.dictionary)


class TypedKey(tuple):  # type: ignore[type-arg]
    """A key kept apart from the equal values of other types: ``(type, value)``.

    Python holds ``True == 1 == 1.0`` (one dict key); a window keyed by a ``json`` field holding
    ``true``, ``1`` and ``1.0`` has three keys, as in the exported code (Beam groups by the encoded
    key). Bools are tagged in every column, floats in object columns (a float64 field's keys are all
    floats); :func:`untyped_keys` gives the values back.

    Examples
    --------
    >>> len({TypedKey((bool, True)), 1, TypedKey((float, 1.0))})
    3
    """

    __slots__ = ()


def _typed(value: Any, floats: bool) -> Any:
    if isinstance(value, (bool, np.bool_)):
        return TypedKey((bool, bool(value)))
    if floats and isinstance(value, (float, np.floating)) and value == value:
        return TypedKey((float, float(value)))
    return value


def typed_keys(values: np.ndarray, floats: bool) -> np.ndarray:
    """``values`` (an object array of keys) with bools, and floats when ``floats``, as :class:`TypedKey`."""
    out = values
    for i, v in enumerate(values.tolist()):
        t = _typed(v, floats)
        if t is not v:
            if out is values:
                out = values.copy()
            out[i] = t
    return out


def untyped_keys(values: np.ndarray) -> np.ndarray:
    """The key values of ``values`` (an object array), each :class:`TypedKey` as its value.

    Examples
    --------
    >>> untyped_keys(np.array([TypedKey((bool, True)), 1], dtype=object)).tolist()
    [True, 1]
    """
    tagged = [i for i, v in enumerate(values.tolist()) if type(v) is TypedKey]
    if not tagged:
        return values
    out = values.copy()
    for i in tagged:
        out[i] = values[i][1]
    return out


_MIXED = ("mixed", "mixed-integer", "mixed-integer-float")


def _tags(col: pd.Series, every_float: bool = False) -> str | None:
    """Which values of a key column :func:`typed_keys` must tag: ``"rows"`` when an object column mixes
    types (tagged before hashing, which would merge ``true``, ``1`` and ``1.0``), ``"keys"`` when all
    are bools or (in an object column, or any with ``every_float``) floats (its distinct keys tagged
    after hashing), else None: an int64, float64, string or categorical column, whose keys need no tag
    (no work per row)."""
    if col.dtype == object:
        inferred = inferred_kind(col)
        if inferred in _MIXED:
            return "rows"
        return "keys" if inferred in ("boolean", "floating") else None
    if pd.api.types.is_bool_dtype(col.dtype) or (every_float and col.dtype.kind == "f"):
        return "keys"
    return None


def _object_codes(col: pd.Series, every_float: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Codes and distinct keys of a key column: bools (and, in an object column or with
    ``every_float``, floats) as :class:`TypedKey`, so ``true``, ``1`` and ``1.0`` of a ``json`` field
    are three keys; missing values (NaN, None) are the key ``None``."""
    tags = _tags(col, every_float)
    if tags == "rows":
        col = pd.Series(typed_keys(col.to_numpy(), floats=True), dtype=object)
    codes, uniq = factorize(col, use_na_sentinel=False)
    values = object_array(uniq)
    if object_index(uniq).hasnans:  # writes into uniq's buffer at most: a fresh Index nobody else holds
        values = values.copy()
        values[pd.isna(values)] = None
    if tags == "keys":
        values = typed_keys(values, floats=True)  # (a few keys: no tag per row)
    return codes.astype(np.int64, copy=False), values


def typed_key_column(col: pd.Series, every_float: bool = False) -> pd.Series:
    """A key column as the window steps tell its keys apart (:func:`_object_codes`), for the steps that
    hash the keys themselves (keyed features and rules, ``detect``, ``Pattern``, joins): bools and an
    object column's floats (any column's with ``every_float``: a float64 column joined with a ``json``
    one) as :class:`TypedKey`, missing keys as None; ``col`` itself when nothing needs a tag.

    Examples
    --------
    >>> typed_key_column(pd.Series([True, 1, 1.0, "1"], dtype=object)).nunique()
    4
    >>> col = pd.Series([1, 2, 1])
    >>> typed_key_column(col) is col
    True
    """
    if _tags(col, every_float) is None:
        return col
    codes, values = _object_codes(col, every_float)
    return pd.Series(values[codes], index=col.index, dtype=object)


def _int_dtype(dtype: Any) -> Any:
    """``dtype`` when it is an integer dtype a key column keeps (numpy's ``int32``, ``uint64``, ...,
    pandas' ``UInt64``, arrow's), else None.

    Examples
    --------
    >>> str(_int_dtype(np.dtype("uint64"))), str(_int_dtype(pd.UInt8Dtype())), _int_dtype(np.dtype(bool))
    ('uint64', 'UInt8', None)
    """
    if pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        return dtype
    return None


def _common_int_dtype(a: Any, b: Any) -> Any:
    """The integer dtype that holds every value of key columns of dtypes ``a`` and ``b`` (nullable if
    either is), or None when none does (``int64`` and ``uint64``: only float64, which rounds) or either
    is None.

    Examples
    --------
    >>> str(_common_int_dtype(np.dtype("uint8"), np.dtype("int32")))
    'int32'
    >>> str(_common_int_dtype(np.dtype("uint32"), pd.Int32Dtype()))
    'Int64'
    >>> _common_int_dtype(np.dtype("int64"), np.dtype("uint64")) is None
    True
    """
    if a is None or b is None:
        return None
    if a == b:
        return a
    common = np.promote_types(getattr(a, "numpy_dtype", a), getattr(b, "numpy_dtype", b))
    if common.kind not in "iu":
        return None
    if isinstance(a, pd.api.extensions.ExtensionDtype) or isinstance(b, pd.api.extensions.ExtensionDtype):
        return pd.api.types.pandas_dtype(f"{'U' if common.kind == 'u' else ''}Int{8 * common.itemsize}")
    return common


def _typed_key_column(values: np.ndarray, dtype: Any) -> pd.Series:
    """The key column of ``values`` (an object array of keys): of ``dtype`` when it is an integer dtype
    that holds them all (the key column's own, so a uint64 key column stays uint64 in every output
    batch, whatever keys a batch holds), else the dtype pandas infers (:func:`inferred_series`)."""
    inferred = inferred_series(values)
    if dtype is None or inferred.dtype == dtype:
        return inferred
    if inferred.dtype.kind not in "iu" and inferred_kind(inferred) not in ("integer", "empty"):
        return inferred  # floats, text: not this column's keys
    try:  # from the Python ints: a value the dtype cannot hold raises, where astype would wrap it
        typed: pd.Series = pd.Series(values, dtype=dtype)
    except (OverflowError, TypeError, ValueError):  # a missing key in a numpy column's keys, say
        return inferred
    return typed


class KeyIndex:
    """Dense integer ids for key values (tuples for several key columns), with reuse of freed ids.

    Missing keys (NaN, None, ``pd.NA``) are all the key ``None``. ``refs[id]`` counts the open state
    that refers to a key; :meth:`release` forgets keys whose count drops to zero.

    String keys are kept as UTF-8 bytes in a pool, found through a hash table of their 64-bit
    :func:`string_hashes` and compared byte for byte, so a batch of arrow strings is numbered without
    a Python object per key; two strings with the same hash get their own ids (the second through a
    small dict). Other keys (numbers, tuples, ...) go through a hash table of Python objects.

    Examples
    --------
    >>> import numpy as np
    >>> index = KeyIndex(1)
    >>> ids = index.ids_for(np.array(["a", "b", "a", None], dtype=object))
    >>> ids.tolist(), index.lookup(np.array(["b", "z", float("nan")], dtype=object)).tolist()
    ([0, 1, 0, 2], [1, -1, 2])
    """

    _REBUILD_MIN = 1 << 16  # released keys kept in the hash tables before a rebuild is worth it
    _REBUILD_FACTOR = 4  # ... and per live key
    # keys held from which the string work runs compiled (:func:`string_kernels`): with fewer, numpy
    # and arrow are about as fast
    COMPILED_MIN_KEYS = 1 << 14
    # string keys numbered (a batch's distinct ones, summed over batches) before this index loads the
    # kernels, where no other has: loading them costs 0.3-0.5 s once a process (numba's import and its
    # cached code), which the numpy path spends in extra work over about as many keys (~0.1 us a key),
    # so a run pays at most about twice the better choice, as in the ski-rental rule; a short run never
    # loads them
    LOAD_KERNELS_AFTER = 3_000_000
    _numbered = 0

    def __init__(self, n_columns: int) -> None:
        self.n_columns = n_columns
        self._objects = np.empty(0, dtype=object)  # id -> key value (keys that are not strings)
        self.entry_of = _EMPTY.copy()  # id -> entry in the object hash table (-1: the id is free)
        self.refs = _EMPTY.copy()
        self.free = _EMPTY.copy()  # stack of free ids below n_ids
        self.n_free = 0
        self.n_ids = 0  # ids ever given out since the last rebuild (the high-water mark)
        self.none_id = -1
        self.is_str = np.zeros(0, dtype=bool)  # id -> whether its key is a string (in the pool)
        self.s_start = _EMPTY.copy()  # id -> its string's bytes in the pool
        self.s_len = _EMPTY.copy()
        self.pool = np.zeros(0, dtype=np.uint8)
        self.pool_size = 0
        # the integer dtype of each key column (None: not an integer column, or columns of dtypes no
        # integer dtype holds), given back to the keys by key_columns; None before the first batch
        self.key_dtypes: tuple[Any, ...] | None = None
        self._new_tables()

    def _new_tables(self) -> None:
        # bare hash tables, not pandas' Factorizer: that copies every value it ever numbered on each call
        self._table = _hashtable.PyObjectHashTable(1024)
        # every key the table numbered, in entry order: pandas 2's table keeps no reference to its keys
        # (pandas 3's does), so a key released from _objects and freed left a dangling pointer in it,
        # which a later lookup or the table's growth read (a segmentation fault)
        self._table_keys: list[Any] = []  # the ObjectVectors of its numbering calls
        self._count = 0  # entries numbered so far
        self._entry_id = _EMPTY.copy()  # entry -> id (-1: released)
        self._dead = 0
        # string hash -> entry: the compiled table where the string kernels are loaded (the same entries)
        kernels = string_kernels(load=False)
        self._s_table = kernels.HashLabels(1024) if kernels else _hashtable.Int64HashTable(1024)
        self._s_count = 0
        self._s_entry_id = _EMPTY.copy()
        self._s_entry = _EMPTY.copy()  # id -> its entry in the string table (-1: in _side)
        self._s_hash = np.zeros(0, dtype=np.int64)  # id -> its string's hash
        self._side: dict[bytes, int] = {}  # strings whose hash another live string's entry holds
        self._side_hashes: dict[int, int] = {}  # their hashes, with counts
        self._pool_dead = 0  # bytes of released strings still in the pool
        self._stamp = _EMPTY.copy()  # scratch, per entry of the string table

    # -- pickling: the hash tables are rebuilt from the live keys ------------------------------------
    _TRANSIENT = (
        "_table",
        "_table_keys",
        "_count",
        "_entry_id",
        "_dead",
        "_s_table",
        "_s_count",
        "_s_entry_id",
        "_s_entry",
        "_s_hash",
        "_side",
        "_side_hashes",
        "_pool_dead",
        "_stamp",
    )

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in self._TRANSIENT}

    def __setstate__(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if "values" in state:  # written before string keys had a pool: every key a Python object
            objects = state.pop("values")
            n = len(objects)
            state.update(
                _objects=objects,
                is_str=np.zeros(n, dtype=bool),
                s_start=np.zeros(n, dtype=np.int64),
                s_len=np.zeros(n, dtype=np.int64),
                pool=np.zeros(0, dtype=np.uint8),
                pool_size=0,
            )
            self.__dict__.update(state)
            live = np.flatnonzero(self.entry_of[: self.n_ids] >= 0)
            strs = [i for i in live.tolist() if isinstance(objects[i], str)]
            if strs:
                ids = np.asarray(strs, dtype=np.int64)
                self._new_tables()
                self._pool_put(ids, StringKeys.from_objects(objects[ids]))
                self._objects[ids] = None
                self.entry_of[ids] = _NO_ENTRY
        else:
            self.__dict__.update(state)
        if "key_dtypes" not in state:  # written before key columns kept their dtype: keys as inferred
            self.key_dtypes = (None,) * self.n_columns
        self._rebuild()

    def __deepcopy__(self, memo: dict[int, Any]) -> KeyIndex:
        # keys are hashable, so immutable: copying the arrays (not each key) is a deep copy. The hash
        # tables are left out: a copy is mostly a step's snapshot at a commit, kept or pickled and never
        # used (rebuilding them there cost 0.5 s a commit with a million keys); a copy builds them
        # when it is first used (``_ready``, where the numbering methods start)
        new = KeyIndex.__new__(KeyIndex)
        new.__dict__.update(
            {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in self.__getstate__().items()}
        )
        return new

    def _ready(self) -> None:
        """Build the hash tables of a copy (see ``__deepcopy__``) that has none yet."""
        if "_table" not in self.__dict__:
            self._rebuild()

    def __getattr__(self, name: str) -> Any:
        # only for attributes not set: a copy's hash tables, read before any numbering method built them
        if name in KeyIndex._TRANSIENT and "entry_of" in self.__dict__:
            self._rebuild()
            return self.__dict__[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def _rebuild(self) -> None:
        """Fresh hash tables holding only the live keys (their ids do not change); the pool compacted."""
        self._new_tables()
        n = self.n_ids
        live = np.flatnonzero(self.entry_of[:n] >= 0)
        strs = live[self.is_str[live]]
        live = live[~self.is_str[live]]
        if self.none_id >= 0:
            live = live[live != self.none_id]
        entries = self._number(self._objects[live])
        self._entry_id = np.full(self._count, -1, dtype=np.int64)
        self._entry_id[entries] = live
        self.entry_of[live] = entries
        # strings: the pool packed, then the first of each hash holds its entry, the others go aside
        kernels = self._kernels()
        data, offsets = _gather(self.pool, self.s_start[strs], self.s_len[strs], kernels)
        self.pool = grown(data, 2 * len(data), 0)
        self.pool_size = len(data)
        self.s_start[strs] = offsets[:-1]
        self._s_entry = np.full(n, -1, dtype=np.int64)
        self._s_hash = np.zeros(n, dtype=np.int64)
        if len(strs) == 0:
            return
        h = string_hashes(data, offsets, kernels).view(np.int64)
        self._s_hash[strs] = h
        codes, uniq = pd.factorize(h)
        first = np.empty(len(uniq), dtype=np.int64)
        first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)
        entries = self._s_table.get_labels(uniq, _hashtable.Int64Vector(), 0, -1).astype(np.int64)
        self._s_count = len(uniq)
        self._s_entry_id = np.full(self._s_count, -1, dtype=np.int64)
        self._s_entry_id[entries] = strs[first]
        self._s_entry[strs[first]] = entries
        if len(uniq) < len(strs):
            aside = np.ones(len(strs), dtype=bool)
            aside[first] = False
            for i in strs[aside].tolist():
                self._put_aside(i)

    def __len__(self) -> int:
        """The number of keys that have an id."""
        return self.n_ids - self.n_free

    def _kernels(self) -> ModuleType | None:
        """The compiled string kernels, once this index holds many keys (``COMPILED_MIN_KEYS``) and they
        are loaded or worth loading (``LOAD_KERNELS_AFTER``)."""
        if len(self) < self.COMPILED_MIN_KEYS:
            return None
        return string_kernels(load=self._numbered >= self.LOAD_KERNELS_AFTER)

    @property
    def values(self) -> np.ndarray:
        """Id -> key value, for every id below ``n_ids`` (``None`` for free ids); for inspection and tests."""
        return self.key_values(np.arange(self.n_ids, dtype=np.int64))

    def key_values(self, ids: np.ndarray) -> np.ndarray:
        """The key value of each of ``ids`` (an object array)."""
        ids = np.asarray(ids, dtype=np.int64)
        out: np.ndarray = self._objects[ids]
        s = self.is_str[ids] if len(ids) else np.zeros(0, dtype=bool)
        if s.any():
            out[s] = self._pool_keys(ids[s]).tolist()
        return out

    def live_values(self) -> list[Any]:
        """The keys that have an id (for inspection and tests)."""
        keys: list[Any] = self.key_values(np.flatnonzero(self.entry_of[: self.n_ids] >= 0)).tolist()
        return keys

    # -- the string pool -------------------------------------------------------------------------------
    def _pool_keys(self, ids: np.ndarray) -> StringKeys:
        return StringKeys(
            self.pool,
            self.s_start[ids],
            self.s_len[ids],
            np.zeros(len(ids), dtype=bool),
            self._s_hash[ids] if len(self._s_hash) >= self.n_ids else None,
        )

    def _pool_put(self, ids: np.ndarray, keys: StringKeys) -> None:
        data, offsets = _gather(keys.data, keys.starts, keys.lens, self._kernels())
        end = self.pool_size + len(data)
        self.pool = grown(self.pool, end, 0)
        self.pool[self.pool_size : end] = data
        self.s_start[ids] = offsets[:-1] + self.pool_size
        self.s_len[ids] = keys.lens
        self.pool_size = end
        self.is_str[ids] = True
        self.entry_of[ids] = _NO_ENTRY  # live, but in no entry of the object table
        if len(self._s_hash) >= self.n_ids:
            self._s_hash[ids] = keys.hashes.view(np.int64)

    def _pool_bytes(self, i: int) -> bytes:
        s = int(self.s_start[i])
        return self.pool[s : s + int(self.s_len[i])].tobytes()

    def _put_aside(self, i: int) -> None:
        h = int(self._s_hash[i])
        self._side[self._pool_bytes(i)] = i
        self._side_hashes[h] = self._side_hashes.get(h, 0) + 1
        self._s_entry[i] = -1

    # -- lookups -------------------------------------------------------------------------------------
    def _entries(self, values: np.ndarray) -> npt.NDArray[np.int64]:
        entries = self._number(values)
        self._entry_id = grown(self._entry_id, self._count, -1)
        return entries

    def _number(self, values: np.ndarray) -> npt.NDArray[np.int64]:
        """The hash table entry of each of ``values``, numbering new ones; -1 for missing values."""
        new = _hashtable.ObjectVector()
        entries: npt.NDArray[np.int64] = self._table.get_labels(values, new, self._count, -1).astype(np.int64)
        if len(new):
            self._table_keys.append(new)
            self._count += len(new)
        return entries

    def _ids_of(self, entries: np.ndarray) -> np.ndarray:
        ids = np.full(len(entries), -1, dtype=np.int64)
        found = entries >= 0
        ids[found] = self._entry_id[entries[found]]
        return ids

    def _none(self, create: bool) -> int:
        if self.none_id < 0 and create:
            self.none_id = int(self._take(1)[0])
            self._objects[self.none_id] = None
            self.entry_of[self.none_id] = _NO_ENTRY  # live, but in no table entry
        return self.none_id

    def lookup(self, values: np.ndarray | StringKeys) -> np.ndarray:
        """The id of each key in ``values`` (an object array), ``-1`` for keys without one."""
        return self._ids(values, distinct=False, create=False)

    def ids_for(self, values: np.ndarray | StringKeys, distinct: bool = False) -> np.ndarray:
        """The id of each key in ``values`` (an object array), given out now to keys without one.

        ``distinct``: the caller knows the values are distinct keys (a batch's own uniques).
        """
        return self._ids(values, distinct, create=True)

    def _ids(self, values: np.ndarray | StringKeys, distinct: bool, create: bool) -> np.ndarray:
        if len(values) == 0:
            return _EMPTY.copy()
        self._ready()
        if isinstance(values, StringKeys):
            return self._str_ids(values, distinct, create)
        strs = _is_str(values)
        if strs is None:
            return self._object_ids(values, distinct, create)
        ids = np.full(len(values), -1, dtype=np.int64)
        try:
            keys = StringKeys.from_objects(values[strs])
        except UnicodeEncodeError:
            # a lone surrogate (an escaped "\ud800" read from JSON) has no UTF-8 bytes: such a key is
            # kept as a Python object, in the object table (it equals no string of the pool)
            strs = _with_utf8(values, strs)
            keys = StringKeys.from_objects(values[strs])
        if len(keys):
            ids[strs] = self._str_ids(keys, distinct, create)
        if not strs.all():
            ids[~strs] = self._object_ids(values[~strs], distinct, create)
        return ids

    def _object_ids(self, values: np.ndarray, distinct: bool, create: bool) -> np.ndarray:
        if not create:
            entries = self._table.lookup(values).astype(np.int64)  # adds nothing to the table
            ids = self._ids_of(entries)
            ids[np.asarray(pd.isna(values), dtype=bool)] = self.none_id
            return ids
        entries = self._entries(values)
        ids = self._ids_of(entries)
        na = entries < 0
        if na.any():
            ids[na] = self._none(True)
        missing = np.flatnonzero(ids < 0)
        if len(missing):
            e = entries[missing]
            if distinct or len(e) < 2 or bool((e[1:] > e[:-1]).all()):
                new_entries, first, inverse = e, missing, None
            else:
                new_entries, at, inverse = np.unique(e, return_index=True, return_inverse=True)
                first = missing[at]
            new_ids = self._take(len(new_entries))
            self._entry_id[new_entries] = new_ids
            self.entry_of[new_ids] = new_entries
            self._objects[new_ids] = values[first]
            ids[missing] = new_ids if inverse is None else new_ids[inverse]
        return ids

    def _str_ids(self, keys: StringKeys, distinct: bool, create: bool) -> np.ndarray:
        """Ids of string keys: one hash table lookup per distinct hash, the bytes compared vectorized."""
        self._numbered += len(keys)
        ids = np.full(len(keys), -1, dtype=np.int64)
        rows: np.ndarray | None = None
        if keys.null.any():
            ids[keys.null] = self._none(create)
            rows = np.flatnonzero(~keys.null)
            keys = keys[rows]
            if len(rows) == 0:
                return ids
        h = keys.hashes.view(np.int64)
        codes: np.ndarray | None = None
        odd = _EMPTY  # rows whose hash their group's first row has, but not their bytes
        if distinct:  # distinct strings: the hashes mostly are too (checked below where it matters)
            reps, uniq = keys, h
        else:
            codes, uniq = pd.factorize(h)
            first = np.empty(len(uniq), dtype=np.int64)
            first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)
            if len(uniq) < len(keys):
                rep_rows = first[codes]
                ok = _equal(
                    keys.data,
                    keys.starts,
                    keys.lens,
                    keys.data,
                    keys.starts[rep_rows],
                    keys.lens[rep_rows],
                    self._kernels(),
                )
                odd = np.flatnonzero(~ok)
            reps = keys[first]
        if create:
            entries = self._s_table.get_labels(uniq, _hashtable.Int64Vector(), self._s_count, -1)
            entries = entries.astype(np.int64)
            self._s_count = max(self._s_count, int(entries.max()) + 1)
            self._s_entry_id = grown(self._s_entry_id, self._s_count, -1)
        else:
            entries = self._s_table.lookup(uniq).astype(np.int64)
        rid = np.full(len(uniq), -1, dtype=np.int64)
        known = np.flatnonzero(entries >= 0)
        rid[known] = self._s_entry_id[entries[known]]
        slow = np.zeros(len(uniq), dtype=bool)
        found = np.flatnonzero(rid >= 0)
        if len(found):
            fi = rid[found]
            same = _equal(
                reps.data,
                reps.starts[found],
                reps.lens[found],
                self.pool,
                self.s_start[fi],
                self.s_len[fi],
                self._kernels(),
            )
            slow[found[~same]] = True  # the entry is another string's
        if self._side:
            slow |= np.isin(uniq, np.fromiter(self._side_hashes, dtype=np.int64)) & (rid < 0)
        rid[slow] = -1
        new = np.flatnonzero((rid < 0) & ~slow)
        if create and len(new):
            e = entries[new]
            if len(new) > 1:  # two new strings with one hash: the first takes the entry, the other goes aside
                self._stamp = grown(self._stamp, self._s_count, 0)
                order = np.arange(len(new), dtype=np.int64)
                self._stamp[e[::-1]] = order[::-1]
                again = self._stamp[e] != order
                if again.any():
                    slow[new[again]] = True
                    new, e = new[~again], e[~again]
            nid = self._take(len(new))
            self._pool_put(nid, reps[new])
            self._s_entry_id[e] = nid
            self._s_entry[nid] = e
            rid[new] = nid
        for g in np.flatnonzero(slow).tolist():
            rid[g] = self._str_id_slow(reps.key(g), int(uniq[g]), create)
        got = rid if codes is None else rid[codes]
        for r in odd.tolist():
            got[r] = self._str_id_slow(keys.key(r), int(h[r]), create)
        if rows is None:
            return got
        ids[rows] = got
        return ids

    def _str_id_slow(self, key: bytes, h: int, create: bool) -> int:
        """The id of one string whose hash another string has (rare): through its entry, or ``_side``."""
        hv = np.array([h], dtype=np.int64)
        e = int(self._s_table.lookup(hv)[0])
        holder = int(self._s_entry_id[e]) if e >= 0 else -1
        if holder >= 0 and self._pool_bytes(holder) == key:
            return holder
        if key in self._side:
            return self._side[key]
        if not create:
            return -1
        if e < 0:
            e = int(self._s_table.get_labels(hv, _hashtable.Int64Vector(), self._s_count, -1)[0])
            self._s_count = max(self._s_count, e + 1)
            self._s_entry_id = grown(self._s_entry_id, self._s_count, -1)
        i = self._take(1)
        arr = np.frombuffer(key, dtype=np.uint8)
        keys = StringKeys(
            arr,
            np.zeros(1, dtype=np.int64),
            np.array([len(key)]),
            np.zeros(1, dtype=bool),
            hv.view(np.uint64),
        )
        self._pool_put(i, keys)
        j = int(i[0])
        if holder < 0:
            self._s_entry_id[e] = j
            self._s_entry[j] = e
        else:
            self._put_aside(j)
        return j

    def id_of(self, value: Any) -> int:
        """The id of key ``value``, given out now if it has none."""
        return int(self.ids_for(object_array([value]))[0])

    def _take(self, n: int) -> np.ndarray:
        """``n`` unused ids: freed ones first, then new ones."""
        reuse = min(n, self.n_free)
        got = self.free[self.n_free - reuse : self.n_free].copy()
        self.n_free -= reuse
        if reuse < n:
            fresh = np.arange(self.n_ids, self.n_ids + n - reuse, dtype=np.int64)
            self.n_ids += n - reuse
            self._objects = grown(self._objects, self.n_ids, None)
            self.entry_of = grown(self.entry_of, self.n_ids, -1)
            self.refs = grown(self.refs, self.n_ids, 0)
            self.is_str = grown(self.is_str, self.n_ids, False)
            self.s_start = grown(self.s_start, self.n_ids, 0)
            self.s_len = grown(self.s_len, self.n_ids, 0)
            self._s_entry = grown(self._s_entry, self.n_ids, -1)
            self._s_hash = grown(self._s_hash, self.n_ids, 0)
            got = np.concatenate([got, fresh])
        return got

    def hold(self, ids: np.ndarray) -> None:
        """One reference more for each of ``ids`` (repeats count)."""
        if _distinct(ids):
            self.refs[ids] += 1
        elif len(ids):
            np.add.at(self.refs, ids, 1)  # repeats counted without sorting

    def release(self, ids: np.ndarray) -> None:
        """One reference less for each of ``ids`` (repeats count); forget keys left without any."""
        if len(ids) == 0:
            return
        if _distinct(ids):
            self.refs[ids] -= 1
            gone = ids[self.refs[ids] == 0]
        else:
            np.subtract.at(self.refs, ids, 1)
            gone = _sorted_distinct(ids[self.refs[ids] == 0], self.n_ids)
        if len(gone) == 0:
            return
        self._ready()  # before anything below changes
        if self.none_id >= 0 and bool((gone == self.none_id).any()):
            self.none_id = -1
        s = self.is_str[gone]
        strs = gone[s]
        if len(strs):
            entries = self._s_entry[strs]
            held = entries >= 0
            self._s_entry_id[entries[held]] = -1
            for i in strs[~held].tolist():  # strings aside (their hash was taken): rare
                del self._side[self._pool_bytes(i)]
                hv = int(self._s_hash[i])
                self._side_hashes[hv] -= 1
                if not self._side_hashes[hv]:
                    del self._side_hashes[hv]
            self._s_entry[strs] = -1
            self._pool_dead += int(self.s_len[strs].sum())
            self.is_str[strs] = False
        real = gone[~s & (self.entry_of[gone] != _NO_ENTRY)]  # the None key has no hash table entry
        self._entry_id[self.entry_of[real]] = -1
        self._dead += len(real) + len(strs)
        self.entry_of[gone] = -1
        self._objects[gone] = None
        self.free = grown(self.free, self.n_free + len(gone), 0)
        self.free[self.n_free : self.n_free + len(gone)] = gone
        self.n_free += len(gone)
        # amortized: a rebuild costs O(live keys)
        limit = max(self._REBUILD_MIN, self._REBUILD_FACTOR * len(self))
        if self._dead > limit or self._pool_dead > 16 * limit:
            self._rebuild()

    # -- batches -------------------------------------------------------------------------------------
    def local_keys(self, frame: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, Keys]:
        """Batch-local key codes (``0 <= code``) of every row, and the key value of each code.

        No ids are given out: a caller maps to ids only the keys it keeps state for. A categorical
        column's codes are used as they are; a column of arrow strings gives its keys as
        :class:`StringKeys`. Missing keys (NaN, None) are the key ``None``.
        """
        if not columns:
            return np.zeros(len(frame), dtype=np.int64), object_array([()])
        if len(frame):
            self._note_dtypes([frame[c].dtype for c in columns])
        if len(columns) == 1:
            col = frame[columns[0]]
            if isinstance(col.dtype, pd.CategoricalDtype):
                # int64: the codes are int8 for a few categories, and callers compute with them
                # (code * span + time in sessions), which overflowed int8 or wrapped round silently
                local = np.asarray(col.array.codes).astype(np.int64)
                values = object_array(col.array.categories)
                if len(local) and int(local.min()) < 0:  # missing keys: code -1 becomes the key None
                    local += 1
                    values = np.concatenate([object_array([None]), values])
                return local, values
            strings = arrow_strings(col)
            if strings is not None:  # hashed as bytes: no Python string per key
                return string_codes(strings, self._kernels())
            return _object_codes(col)
        return _tuple_keys(frame, columns)

    def _note_dtypes(self, dtypes: list[Any]) -> None:
        """Remember the key columns' integer dtypes (:attr:`key_dtypes`), each the common one of every
        batch's column so far."""
        ints = [_int_dtype(d) for d in dtypes]
        if self.key_dtypes is None:
            self.key_dtypes = tuple(ints)
        elif tuple(ints) != self.key_dtypes:  # a new tuple: a snapshot (a deepcopy) shares the old one
            self.key_dtypes = tuple(_common_int_dtype(a, b) for a, b in zip(self.key_dtypes, ints))

    def local_codes(
        self, frame: pd.DataFrame, columns: list[str]
    ) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
        """Batch-local key codes of every row, and a function from local codes to ids.

        Aggregating on local codes and mapping only the groups found to ids avoids a per-row lookup.
        """
        local, values = self.local_keys(frame, columns)
        return local, lambda u: self.ids_for(values[u], distinct=True)

    def key_columns(self, ids: np.ndarray, columns: list[str]) -> dict[str, Any]:
        """The key columns of a result frame, one row per id in ``ids``: an integer key column of the
        input keeps its dtype (:attr:`key_dtypes`), whatever keys the frame holds.

        Examples
        --------
        >>> index = KeyIndex(1)
        >>> local, values = index.local_keys(pd.DataFrame({"k": np.array([2**63 + 1, 1], dtype="uint64")}), ["k"])
        >>> ids = index.ids_for(values, distinct=True)
        >>> col = index.key_columns(ids[1:], ["k"])["k"]
        >>> str(col.dtype), col.tolist()
        ('uint64', [1])
        """
        dtypes = self.key_dtypes or (None,) * len(columns)
        if len(columns) == 1:
            if len(ids) and _ARROW_STR:
                s = self.is_str[ids]
                if s.any() and (s.all() or bool((s | (ids == self.none_id)).all())):
                    keys = StringKeys(self.pool, self.s_start[ids], np.where(s, self.s_len[ids], 0), ~s)
                    return {
                        columns[0]: pd.Series(
                            pd.array(keys.to_arrow(self._kernels()), dtype=_STR_DTYPE), copy=False
                        )
                    }
            # an integer key column's own dtype, else the dtype pandas infers from the values (str,
            # int64, ...), as from a list of them, but integers with a missing key as Int64: float64
            # would round them beyond 2**53
            return {columns[0]: _typed_key_column(untyped_keys(self.key_values(ids)), dtypes[0])}
        rows = self.key_values(ids).tolist()
        return {
            c: _typed_key_column(untyped_keys(object_array([v[j] for v in rows])), dtypes[j])
            for j, c in enumerate(columns)
        }


def _tuple_keys(frame: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Batch-local codes of several key columns, and each code's key as a tuple.

    Column by column, so each keeps its values as they are: a MultiIndex would turn integers with a
    missing value into floats (rounding them beyond 2**53) and missing values into NaN.
    """
    combined, first_values = _object_codes(frame[columns[0]])
    parts = [(combined, first_values)]
    for name in columns[1:]:
        codes, values = _object_codes(frame[name])
        parts.append((codes, values))
        # renumbered at each step, so the product stays below the number of rows squared
        combined, _ = pd.factorize(combined * len(values) + codes, sort=False)
        combined = combined.astype(np.int64, copy=False)
    n = int(combined.max()) + 1 if len(combined) else 0
    first = np.full(n, len(combined), dtype=np.int64)
    np.minimum.at(first, combined, np.arange(len(combined), dtype=np.int64))
    return combined, object_array(list(zip(*(values[codes[first]].tolist() for codes, values in parts))))


def _unique_codes(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(codes, return_index=True, return_inverse=True)``, by one unstable argsort where the
    codes are distinct (a window step's cells are): numpy's quicksort of int64 (SIMD where the CPU has
    it) took 3 ms where ``unique``'s stable sort and bookkeeping took 15-19 ms for 90 k codes.

    Examples
    --------
    >>> [a.tolist() for a in _unique_codes(np.array([7, 3, 9]))]
    [[3, 7, 9], [1, 0, 2], [1, 0, 2]]
    >>> [a.tolist() for a in _unique_codes(np.array([7, 3, 7]))]
    [[3, 7], [1, 0], [1, 0, 1]]
    """
    order = np.argsort(codes)
    ordered = codes[order]
    if len(ordered) > 1 and bool((ordered[1:] == ordered[:-1]).any()):  # repeats: the general path
        uniq, first, inv = np.unique(codes, return_index=True, return_inverse=True)
        return uniq, first, inv.reshape(-1)
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    return ordered, order, inv


class SlotTable:
    """Open (window start, key id) pairs and their slot numbers in the aggregator stores.

    Every open pair is one code, ``window number << 32 | key id``, in one sorted array beside its slot,
    so a batch finds or creates all its pairs with a few vector operations however many windows it
    touches (a replay at full speed touches hundreds per batch); a window's pairs are contiguous, in key
    order. ``by_window`` maps each open window's start to its window number; a slot's window start and
    key id are in ``start`` and ``key``.

    Examples
    --------
    >>> import numpy as np
    >>> table = SlotTable()
    >>> slots, new = table.slots_for(np.array([0, 0, 60]), np.array([3, 1, 3]))
    >>> slots.tolist(), new.tolist()
    ([1, 0, 2], [0, 1, 2])
    >>> table.slots_for(np.array([0]), np.array([1]))[0].tolist()
    [0]
    >>> table.pop_windows([0]).tolist(), len(table), table.window_slots(60).tolist()
    ([0, 1], 1, [2])
    """

    KEY_BITS = 32

    def __init__(self) -> None:
        self.by_window: dict[int, int] = {}  # open window start -> window number
        self.next_window = 0
        self.codes = _EMPTY.copy()  # sorted: window number << KEY_BITS | key id
        self.code_slots = _EMPTY.copy()  # the slot of each code
        self.start = _EMPTY.copy()
        self.key = _EMPTY.copy()
        self.free = _EMPTY.copy()  # stack of free slots below size
        self.n_free = 0
        self.size = 0  # slots ever used (the stores hold this many)

    def __len__(self) -> int:
        """The number of open (window, key) slots."""
        return self.size - self.n_free

    def _range(self, number: Any) -> tuple[Any, Any]:
        lo = np.searchsorted(self.codes, np.left_shift(number, self.KEY_BITS))
        hi = np.searchsorted(self.codes, np.left_shift(np.add(number, 1), self.KEY_BITS))
        return lo, hi

    def window_slots(self, start: int) -> np.ndarray:
        """The slots of the open window starting at ``start`` (in key id order)."""
        number = self.by_window.get(start)
        if number is None:
            return _EMPTY
        lo, hi = self._range(number)
        return self.code_slots[int(lo) : int(hi)]

    def _numbers(self, starts: np.ndarray) -> np.ndarray:
        """Window number of each start, opening the windows not open yet (in start order)."""
        if bool((starts[1:] >= starts[:-1]).all()):  # sorted, as a window step's cells come: runs, no sort
            cut = np.flatnonzero(starts[1:] != starts[:-1]) + 1
            uniq = starts[np.concatenate([[0], cut])]
            runs = np.diff(np.concatenate([[0], cut, [len(starts)]]))
            inv = None
        else:
            uniq, inv = np.unique(starts, return_inverse=True)
        numbers = np.empty(len(uniq), dtype=np.int64)
        for i, s in enumerate(uniq.tolist()):  # per window, not per row
            n = self.by_window.get(s)
            if n is None:
                n = self.by_window[s] = self.next_window
                self.next_window += 1
            numbers[i] = n
        return np.repeat(numbers, runs) if inv is None else numbers[inv.reshape(-1)]

    def slots_for(self, starts: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Slot for each (start, key) pair, creating missing ones; also returns the new slots."""
        if len(starts) == 0:
            return np.empty(0, dtype=np.int64), _EMPTY.copy()
        keys = np.asarray(keys, dtype=np.int64)
        if int(keys.max()) >> self.KEY_BITS or int(keys.min()) < 0:
            raise OverflowError(f"SlotTable: key ids must fit in {self.KEY_BITS} bits")
        starts = np.asarray(starts, dtype=np.int64)
        codes = (self._numbers(starts) << self.KEY_BITS) | keys
        n = len(self.codes)
        pos = np.searchsorted(self.codes, codes)
        if n:
            at = np.minimum(pos, n - 1)
            hit = (pos < n) & (self.codes[at] == codes)
            slot = np.where(hit, self.code_slots[at], -1)
        else:
            slot = np.full(len(codes), -1, dtype=np.int64)
        miss = np.flatnonzero(slot < 0)
        if len(miss) == 0:
            return slot, _EMPTY.copy()
        new_codes, first, inv = _unique_codes(codes[miss])
        new = self._take(len(new_codes))
        self.start[new] = starts[miss[first]]
        self.key[new] = new_codes & ((1 << self.KEY_BITS) - 1)
        slot[miss] = new[inv.reshape(-1)]
        at = np.searchsorted(self.codes, new_codes)
        self.codes = np.insert(self.codes, at, new_codes)
        self.code_slots = np.insert(self.code_slots, at, new)
        return slot, new

    def _take(self, n: int) -> np.ndarray:
        reuse = min(n, self.n_free)
        got = self.free[self.n_free - reuse : self.n_free].copy()
        self.n_free -= reuse
        if reuse < n:
            fresh = np.arange(self.size, self.size + n - reuse, dtype=np.int64)
            self.size += n - reuse
            self.start = grown(self.start, self.size, 0)
            self.key = grown(self.key, self.size, 0)
            got = np.concatenate([got, fresh])
        return got

    def pop_windows(self, starts: list[int]) -> np.ndarray:
        """Close windows ``starts``: their slots are free again (returned, in window then key order)."""
        if not starts:
            return _EMPTY.copy()
        numbers = np.array([self.by_window.pop(s) for s in starts], dtype=np.int64)
        lo, hi = self._range(numbers)
        slots = np.concatenate([self.code_slots[a:b] for a, b in zip(lo.tolist(), hi.tolist())])
        inside = np.zeros(len(self.codes) + 1, dtype=np.int64)  # the closed windows' ranges, disjoint
        np.add.at(inside, lo, 1)
        np.add.at(inside, hi, -1)
        keep = np.cumsum(inside[:-1]) == 0
        self.codes, self.code_slots = self.codes[keep], self.code_slots[keep]
        self.free = grown(self.free, self.n_free + len(slots), 0)
        self.free[self.n_free : self.n_free + len(slots)] = slots
        self.n_free += len(slots)
        return slots
