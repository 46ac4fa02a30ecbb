"""Compiled kernels (numba) for string keys held as bytes: one pass per batch instead of a dozen.

The key table (:mod:`streamlab._keytable`) numbers string keys without a Python object per key, with
vectorized numpy: that is a dozen passes over temporaries the size of the bytes (a cumulative sum for
the hashes, ``repeat`` and ``arange`` to gather, a comparison array), and arrow's dictionary encoding
before it. With a million keys those passes are most of a window step's time. The kernels here do the
same work in one pass each, with the same results (the same codes in the same order, the same hashes),
so either path may run at any batch.

Importing this module imports numba (the ``fast`` extra): the key table imports it through
:func:`streamlab._keytable.string_kernels`, and only once it holds many string keys, so a pipeline
with a few keys never imports numba.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from streamlab._numba import jit

_GOLDEN = 0x9E3779B97F4A7C15
_MIX = 0xBF58476D1CE4E5B9
_SPAN_BITS = 16  # streamlab._keytable._MULT_BITS
_SPAN = 1 << _SPAN_BITS


def _hash_at(data: np.ndarray, lo: int, hi: int, mult: np.ndarray, high: np.ndarray) -> Any:
    """:func:`streamlab._keytable.string_hashes` of the bytes ``data[lo:hi]`` (wrapping uint64), with
    the multipliers of ``streamlab._keytable._multipliers`` (``mult`` for the first 64 KiB)."""
    h = np.uint64(0)
    for j in range(min(hi - lo, _SPAN)):
        h += (np.uint64(data[lo + j]) + np.uint64(1)) * mult[j]
    for j in range(_SPAN, hi - lo):  # a key longer than 64 KiB
        h += (np.uint64(data[lo + j]) + np.uint64(1)) * (mult[j & (_SPAN - 1)] ^ high[j >> _SPAN_BITS])
    h ^= np.uint64(hi - lo) * np.uint64(_GOLDEN)
    h ^= h >> np.uint64(31)
    h *= np.uint64(_MIX)
    h ^= h >> np.uint64(29)
    return h


def _same_bytes(data_a: np.ndarray, a: int, data_b: np.ndarray, b: int, n: int) -> bool:
    for j in range(n):  # noqa: SIM110 - a loop numba compiles (it has no generator for all())
        if data_a[a + j] != data_b[b + j]:
            return False
    return True


def _batch_codes(
    data: np.ndarray, offsets: np.ndarray, null: np.ndarray, mult: np.ndarray, high: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Codes of the strings ``data[offsets[i]:offsets[i + 1]]`` in order of first sight (a missing one,
    ``null[i]``, is one more key), each distinct key's first row, and its hash.

    What ``pyarrow.compute.dictionary_encode(..., null_encoding="encode")`` and
    ``string_hashes`` of the dictionary give, in one pass: an open-addressing table local to the batch
    (sized for the keys found, not the rows: at most half full), the bytes compared where two hashes
    agree.
    """
    n = len(offsets) - 1
    cap = 1024
    mask = np.uint64(cap - 1)
    table = np.full(cap, -1, np.int64)
    codes = np.empty(n, np.int64)
    first = np.empty(n, np.int64)
    hashes = np.empty(n, np.uint64)
    n_keys = 0
    null_code = -1
    for i in range(n):
        if null[i]:
            if null_code < 0:
                null_code = n_keys
                first[n_keys] = i
                hashes[n_keys] = _hash_at(data, 0, 0, mult, high)  # as arrow's dictionary gives it: empty
                n_keys += 1
            codes[i] = null_code
            continue
        lo = offsets[i]
        size = offsets[i + 1] - lo
        h = _hash_at(data, lo, lo + size, mult, high)
        s = h & mask
        while True:
            c = table[s]
            if c < 0:
                table[s] = n_keys
                first[n_keys] = i
                hashes[n_keys] = h
                codes[i] = n_keys
                n_keys += 1
                if 2 * n_keys > cap:
                    cap *= 2
                    mask = np.uint64(cap - 1)
                    table = _regrown(hashes, n_keys, cap, null_code)
                break
            if hashes[c] == h:
                f = offsets[first[c]]
                if offsets[first[c] + 1] - f == size and _same_bytes(data, f, data, lo, size):
                    codes[i] = c
                    break
            s = (s + np.uint64(1)) & mask
    return codes, first[:n_keys].copy(), hashes[:n_keys].copy()


def _regrown(hashes: np.ndarray, n_keys: int, cap: int, null_code: int) -> np.ndarray:
    """A table of ``cap`` slots holding codes ``0 .. n_keys - 1`` at their hashes' places, but for the
    missing key's (never looked up: its hash is the empty string's, which it must not answer for)."""
    mask = np.uint64(cap - 1)
    table = np.full(cap, -1, np.int64)
    for c in range(n_keys):
        if c == null_code:
            continue
        s = hashes[c] & mask
        while table[s] >= 0:
            s = (s + np.uint64(1)) & mask
        table[s] = c
    return table


def _hashes(data: np.ndarray, offsets: np.ndarray, mult: np.ndarray, high: np.ndarray) -> np.ndarray:
    """``string_hashes(data, offsets)``."""
    n = len(offsets) - 1
    out = np.empty(n, np.uint64)
    for i in range(n):
        out[i] = _hash_at(data, offsets[i], offsets[i + 1], mult, high)
    return out


def _gather(data: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The byte strings ``data[starts[i]:starts[i] + lens[i]]`` packed together, and their offsets."""
    n = len(lens)
    offsets = np.empty(n + 1, np.int64)
    offsets[0] = 0
    for i in range(n):
        offsets[i + 1] = offsets[i] + lens[i]
    out = np.empty(offsets[n], np.uint8)
    for i in range(n):
        s = starts[i]
        o = offsets[i]
        for j in range(lens[i]):
            out[o + j] = data[s + j]
    return out, offsets


def _equal(
    data_a: np.ndarray,
    starts_a: np.ndarray,
    lens_a: np.ndarray,
    data_b: np.ndarray,
    starts_b: np.ndarray,
    lens_b: np.ndarray,
) -> np.ndarray:
    """Whether each byte string of ``a`` equals the one of ``b`` beside it."""
    n = len(lens_a)
    out = np.empty(n, np.bool_)
    for i in range(n):
        out[i] = lens_a[i] == lens_b[i] and _same_bytes(data_a, starts_a[i], data_b, starts_b[i], lens_a[i])
    return out


_hash_at = jit(_hash_at, inline="always")
_same_bytes = jit(_same_bytes, inline="always")
_regrown = jit(_regrown)
batch_codes = jit(_batch_codes)
hashes = jit(_hashes)
gather = jit(_gather)
equal = jit(_equal)


def _labels(slots: np.ndarray, values: np.ndarray, count_prior: int, create: bool) -> tuple[np.ndarray, int]:
    """The label of each of ``values`` in the open-addressing table ``slots`` (``[value, label]`` rows,
    label -1 where empty), new values labelled ``count_prior``, ``count_prior + 1``, ... in order of
    first sight when ``create`` (else -1). Returns the labels and how many were added."""
    mask = np.uint64(len(slots) - 1)
    out = np.empty(len(values), np.int64)
    nxt = count_prior
    for i in range(len(values)):
        v = values[i]
        s = (np.uint64(v) * np.uint64(_GOLDEN)) >> np.uint64(20) & mask
        while True:
            label = slots[s, 1]
            if label < 0:
                if create:
                    slots[s, 0] = v
                    slots[s, 1] = nxt
                    out[i] = nxt
                    nxt += 1
                else:
                    out[i] = -1
                break
            if slots[s, 0] == v:
                out[i] = label
                break
            s = (s + np.uint64(1)) & mask
    return out, nxt - count_prior


def _rehash(slots: np.ndarray, into: np.ndarray) -> None:
    """Every filled row of ``slots`` into the empty table ``into`` (its labels kept)."""
    mask = np.uint64(len(into) - 1)
    for r in range(len(slots)):
        if slots[r, 1] >= 0:
            v = slots[r, 0]
            s = (np.uint64(v) * np.uint64(_GOLDEN)) >> np.uint64(20) & mask
            while into[s, 1] >= 0:
                s = (s + np.uint64(1)) & mask
            into[s, 0] = v
            into[s, 1] = slots[r, 1]


labels = jit(_labels)
rehash = jit(_rehash)


class HashLabels:
    """int64 values and their labels in one compiled open-addressing table: what the key table asks of
    pandas' ``Int64HashTable`` (``get_labels`` and ``lookup``, with the same labels), in about half
    the time with a million entries (one cache line a lookup: a value and its label side by side).

    Examples
    --------
    >>> table = HashLabels(4)
    >>> table.get_labels(np.array([7, -1, 7]), None, 10, -1).tolist()
    [10, 11, 10]
    >>> table.lookup(np.array([-1, 3])).tolist()
    [11, -1]
    """

    def __init__(self, size_hint: int) -> None:
        self.slots = self._empty(2 * max(size_hint, 8))
        self.n = 0

    @staticmethod
    def _empty(at_least: int) -> np.ndarray:
        cap = 1 << (at_least - 1).bit_length()
        slots = np.empty((cap, 2), dtype=np.int64)
        slots[:, 1] = -1
        return slots

    def get_labels(self, values: np.ndarray, uniques: Any, count_prior: int, na_sentinel: int) -> np.ndarray:
        """Labels of ``values``, new ones numbered from ``count_prior`` (pandas' signature: ``uniques``
        and ``na_sentinel`` are not used, int64 has no missing value)."""
        if 10 * (self.n + len(values)) > 7 * len(self.slots):  # at most 70 % full: short probe runs
            grown = self._empty(2 * (self.n + len(values)))
            rehash(self.slots, grown)
            self.slots = grown
        out, added = labels(self.slots, np.asarray(values, dtype=np.int64), count_prior, True)
        self.n += added
        result: np.ndarray = out
        return result

    def lookup(self, values: np.ndarray) -> np.ndarray:
        """Labels of ``values``, -1 for values not in the table."""
        out, _ = labels(self.slots, np.asarray(values, dtype=np.int64), 0, False)
        result: np.ndarray = out
        return result


def self_check() -> None:
    """Run every kernel once on small inputs and check the results: where numba imports but cannot
    compile or run them (a broken llvmlite, an unsupported numpy), this raises here, when the key table
    loads the kernels, instead of in a pipeline's batch; the numpy path then runs (see
    :func:`streamlab._keytable.string_kernels`).

    Examples
    --------
    >>> self_check()
    """
    data = np.frombuffer(b"abab", dtype=np.uint8)  # read-only, as arrow's buffers come
    offsets = np.array([0, 2, 2, 4, 4], dtype=np.int64)
    null = np.array([False, True, False, False])
    mult = np.arange(1, 9, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    high = np.zeros(1, dtype=np.uint64)
    codes, first, hashed = batch_codes(data, offsets, null, mult, high)
    ok = codes.tolist() == [0, 1, 0, 2] and first.tolist() == [0, 1, 3]
    ok &= hashes(data, offsets, mult, high)[0] == hashed[0]
    packed, packed_offsets = gather(data, offsets[:-1], np.diff(offsets))
    ok &= packed.tobytes() == b"abab" and packed_offsets.tolist() == offsets.tolist()
    ok &= equal(data, offsets[:-1], np.diff(offsets), packed, offsets[:-1], np.diff(offsets)).all()
    table = HashLabels(1)
    ok &= table.get_labels(np.array([5, -5, 5]), None, 0, -1).tolist() == [0, 1, 0]
    if not ok:
        raise RuntimeError("streamlab's compiled string kernels gave wrong results on this machine")
