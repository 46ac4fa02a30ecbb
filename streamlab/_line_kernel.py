"""The break search of a block of lines (:func:`streamlab._lines._breaks`), compiled with numba.

One pass over the block eight bytes at a time: a word's bytes below 0x20 are found with one add and
two masks (a byte ``b < 0x80`` gives ``(b & 0x7F) + 0x60 >= 0x80`` exactly when ``b >= 0x20``; no
carry crosses bytes), and only a word holding some is looked at again, to check that they are all
line breaks and to list where they are (the lowest set bit's place by a de Bruijn multiply). The
OR of all words tells whether every byte is ASCII. The numpy search makes several passes over the
block and lists every word with a break through ``flatnonzero``; this one reads each byte once,
which leaves a raw replay's main thread more of its time for the parse (arrow's reader runs beside
it on the other core).

Loaded through :func:`line_breaks`, which returns ``None`` without numba (the ``fast`` extra) and on
big-endian machines (the word arithmetic takes a word's first byte as its low one): the numpy search
then runs, with the same results (a property test compares them).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from streamlab._numba import jit

# the place of a word's lowest set bit from the top six bits of (that bit * _DE_BRUIJN), as a byte
# index (the bit is always a byte's top bit, so the place divided by 8 is the byte)
_DE_BRUIJN = 0x03F79D71B4CB0A89
_BYTE_OF_BIT = np.zeros(64, dtype=np.int64)
for _bit in range(64):
    _BYTE_OF_BIT[(((1 << _bit) * _DE_BRUIJN) & 0xFFFFFFFFFFFFFFFF) >> 58] = _bit >> 3

_compiled: list[Any] = []  # the compiled search once built, or None when numba is missing


def _scan(view: np.ndarray, words: np.ndarray, out: np.ndarray, byte_of_bit: np.ndarray) -> tuple[int, bool]:
    """Where the line breaks of ``view`` are (written to ``out``), and whether all bytes are ASCII.

    ``words`` is ``view``'s whole 64-bit words (little-endian). Returns (count, ascii); the count is
    -1 when a byte below 0x20 is not a line break, -2 when ``out`` is too short.
    """
    high = np.uint64(0x8080808080808080)
    low7 = np.uint64(0x7F7F7F7F7F7F7F7F)
    to_space = np.uint64(0x6060606060606060)
    breaks = np.uint64(0x0A0A0A0A0A0A0A0A)
    de_bruijn = np.uint64(_DE_BRUIJN)
    top6 = np.uint64(58)
    one = np.uint64(1)
    seen = np.uint64(0)
    n = 0
    cap = out.size
    for i in range(words.size):
        w = words[i]
        seen |= w
        below = ~(((w & low7) + to_space) | w) & high  # ASCII bytes below 0x20
        if below != 0:
            x = w ^ breaks
            if ~(((x & low7) + low7) | x | low7) != below:  # the zero bytes of x: the line breaks
                return -1, False
            base = i * 8
            while below != 0:
                if n == cap:
                    return -2, False
                bit = below & (~below + one)
                out[n] = base + byte_of_bit[(bit * de_bruijn) >> top6]
                n += 1
                below ^= bit
    for p in range(words.size * 8, view.size):
        b = view[p]
        seen |= np.uint64(b)
        if b < 0x20:
            if b != 10:
                return -1, False
            if n == cap:
                return -2, False
            out[n] = p
            n += 1
    return n, (seen & high) == 0


def _shaped(view: np.ndarray, at: np.ndarray) -> bool:
    """Whether every line of ``view`` (broken at ``at``) starts with ``{`` and ends with ``}``."""
    size = view.size
    if size == 0 or view[0] != 0x7B or (view[size - 1] != 10 and view[size - 1] != 0x7D):
        return False
    if at.size and at[0] == 0:
        return False
    for p in at:  # noqa: SIM110 - numba compiles the loop, not all() of a generator
        if view[p - 1] != 0x7D or (p + 1 < size and view[p + 1] != 0x7B):
            return False
    return True


def line_breaks() -> Callable[[np.ndarray], tuple[np.ndarray, bool, bool] | None] | None:
    """The compiled break search, or None when numba is not installed.

    The function returned takes a block's bytes (a contiguous ``uint8`` array) and gives where its
    line breaks are, whether all its bytes are ASCII and whether all its lines are shaped as a JSON
    object, or None when the block holds another byte below 0x20 (as :func:`streamlab._lines._breaks`).
    Compiled on first use (and cached on disk by numba), so importing streamlab does not import numba.

    Examples
    --------
    >>> search = line_breaks()
    >>> found = search(np.frombuffer(b'{"a":1}\\n{}\\n{"b":"\\xc3\\xa9"}', np.uint8)) if search else None
    >>> search is None or (found[0].tolist(), found[1], found[2]) == ([7, 10], False, True)
    True
    >>> search is None or search(np.frombuffer(b'{"a":1}\\r\\n', np.uint8)) is None
    True
    """
    if not _compiled:
        if sys.byteorder != "little":  # pragma: no cover - a word's first byte is its low byte here
            _compiled.append(None)
            return None
        try:
            import numba  # noqa: F401
        except ImportError:  # pragma: no cover - exercised on installs without the 'fast' extra
            _compiled.append(None)
        else:
            _compiled.append((jit(_scan, boundscheck=False), jit(_shaped, boundscheck=False)))
    kernels = _compiled[0]
    if kernels is None:
        return None
    scan, shaped = kernels

    def search(view: np.ndarray) -> tuple[np.ndarray, bool, bool] | None:
        words = view[: len(view) // 8 * 8].view(np.uint64)
        cap = len(view) // 32 + 16  # lines of 32 bytes on average; a second pass when they are shorter
        while True:
            out = np.empty(cap, dtype=np.int64)
            n, ascii = scan(view, words, out, _BYTE_OF_BIT)
            if n == -1:
                return None
            if n >= 0:
                at = out[:n]
                return at, bool(ascii), bool(shaped(view, at))
            cap = len(view) + 1

    return search
