"""Compiled kernels (numba) for the detectors' sequential recurrences, event by event, in river's arithmetic.

Some of river's updates are recurrences that no vectorized form reproduces bit for bit (Welford's
running moments, the P² quantile's marker adjustments, a window that pivots on the event count);
here they run event by event, compiled, with river's floating-point operations in river's order,
so the results are river's exactly. numba compiles without fast-math: no reassociation and no fused
multiply-add, so every operation rounds as it does in CPython (and in river's Rust for P²).

Load it through :func:`streamlab.detectors._common.kernels`, which returns ``None`` when numba is
not installed (the numpy paths of the banks then run). Without numba the functions here are plain
Python (the pattern step, which has no numpy path, then runs its matcher in
:mod:`streamlab.detectors._pattern_match` uncompiled).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from streamlab._numba import jit
from streamlab.detectors._common import GAUSSIAN_Z_SCALES

_Z_SIGMA, _Z_AFTER = GAUSSIAN_Z_SCALES  # river's z: (x - mean) / (std * _Z_SIGMA) / _Z_AFTER

numba: Any
try:
    import numba
except ImportError:  # pragma: no cover - exercised on installs without the 'fast' extra
    numba = None

#: whether the functions here are compiled (numba is installed)
COMPILED = numba is not None


def _glibc_version() -> tuple[int, int] | None:
    """The C library's (major, minor) when it is glibc, else None (``platform.libc_ver`` reads the
    interpreter's binary: milliseconds)."""
    import platform

    lib, version = platform.libc_ver()
    if lib != "glibc":
        return None
    try:
        major, minor = (int(p) for p in version.split(".")[:2])
    except ValueError:
        return None
    return major, minor


def _libc_pow_within_054_ulp() -> bool:
    """Whether C's ``pow`` here is Arm's (glibc 2.28 and later), documented within 0.54 ulp."""
    version = _glibc_version()
    return version is not None and version >= (2, 28)


_POW_054: list[bool] = []


def pow_within_054_ulp() -> bool:
    """C's ``pow`` is within 0.54 ulp (glibc >= 2.28), so :func:`pow_half` may answer with ``sqrt``.

    Asked on the first kernel call, not at import: ``platform.libc_ver`` reads the interpreter's
    binary (milliseconds), which importing streamlab should not pay.
    """
    if not _POW_054:
        _POW_054.append(_libc_pow_within_054_ulp())
    return _POW_054[0]


__all__ = [
    "COMPILED",
    "distinct_merge_count",
    "erf_c",
    "erf_check_values",
    "erf_many",
    "erf_near_zero",
    "erf_port_agrees",
    "erf_port_matches",
    "hst_score_learn",
    "moments_learn",
    "moments_score_learn",
    "moments_scores",
    "p2_from_river",
    "p2_get",
    "p2_into_river",
    "p2_update",
    "plain",
    "pow_half",
    "pow_within_054_ulp",
    "sort_by_key_time",
    "window_count_merge",
    "window_merge_count",
]

_F = TypeVar("_F", bound=Callable[..., Any])


def _jit(fn: _F) -> _F:
    if numba is None:
        return fn
    # error_model="numpy": a float division by zero gives inf/NaN as in numpy instead of raising
    return jit(fn, error_model="numpy")


def _jit_inline(fn: _F) -> _F:
    """:func:`_jit`, and inlined into its callers by numba itself, so that a caller's loop sees its
    operations (and can run on vectors) whatever LLVM's inliner decides."""
    if numba is None:
        return fn
    return jit(fn, error_model="numpy", inline="always")


def plain(fn: Any) -> Any:
    """The uncompiled Python function behind a kernel (the kernel itself without numba)."""
    return getattr(fn, "py_func", fn)


# --- river's P² quantile (rust_src/quantile.rs), state as 23 floats:
# q, desired marker increments (5), desired marker positions (5), positions (5), heights (5),
# number of heights collected (< 5 until initialised), heights sorted (0/1)
_Q, _DMP, _MP, _POS, _H, _NH, _SORTED = 0, 1, 6, 11, 16, 21, 22
_RUST_LAYOUT = struct.Struct("<21dBB")  # river's serialized RsQuantile (__getstate__)


def p2_from_river(quantile: Any) -> np.ndarray:
    """The state of a river ``stats.Quantile`` as the kernels' array (read from its serialized state).

    Raises ``ValueError`` when river serializes it differently (another river version): callers then
    keep river's own per-event path.
    """
    raw = quantile._quantile.__getstate__()
    if not isinstance(raw, bytes) or len(raw) != _RUST_LAYOUT.size:
        raise ValueError(f"river's Quantile state is not the expected {_RUST_LAYOUT.size} bytes")
    values = _RUST_LAYOUT.unpack(raw)
    return np.array(values, dtype=np.float64)


def p2_into_river(state: np.ndarray, quantile: Any) -> None:
    """Write the kernels' state back into a river ``stats.Quantile`` (the inverse of :func:`p2_from_river`)."""
    floats = [float(v) for v in state[:21]]
    quantile._quantile.__setstate__(_RUST_LAYOUT.pack(*floats, int(state[_NH]), int(state[_SORTED])))
    if state[_NH] > 0:
        quantile._is_updated = True


@_jit
def p2_get(p: np.ndarray) -> float:
    """river's ``Quantile.get()`` (the caller handles "no value yet": river returns None)."""
    if p[_SORTED] != 0.0:
        return float(p[_H + 2])
    n = int(p[_NH])
    if n == 0:
        return 0.0
    tmp = p[_H : _H + n].copy()
    tmp.sort()
    length = float(n)
    index = min(max(length - 1.0, 0.0), length * p[_Q])
    return float(tmp[int(index)])


@_jit
def _cswap(p: np.ndarray, a: int, b: int) -> None:
    if p[_H + b] < p[_H + a]:
        p[_H + a], p[_H + b] = p[_H + b], p[_H + a]


@_jit
def p2_update(p: np.ndarray, x: float) -> None:
    """river's ``Quantile.update(x)``: the P² step with river's operations in river's order."""
    nh = int(p[_NH])
    if nh < 5:
        p[_H + nh] = x
        p[_NH] = nh + 1
        return
    if p[_SORTED] == 0.0:
        # river's sorting network (the same comparisons, so ties resolve the same way)
        _cswap(p, 0, 1)
        _cswap(p, 3, 4)
        _cswap(p, 0, 2)
        _cswap(p, 1, 2)
        _cswap(p, 0, 3)
        _cswap(p, 2, 3)
        _cswap(p, 1, 4)
        _cswap(p, 1, 2)
        _cswap(p, 3, 4)
        p[_SORTED] = 1.0
    hs, ns, ms = _p2_sorted_update(x, *_p2_tuples(p))
    _p2_store(p, hs, ns, ms)


#: five floats: the P² heights, marker positions, desired positions or their increments
_P5 = tuple[float, float, float, float, float]


@_jit
def _p2_tuples(p: np.ndarray) -> tuple[_P5, _P5, _P5, _P5]:
    """The heights, positions, desired positions and desired increments of a P² state, as tuples."""
    return (
        (p[_H], p[_H + 1], p[_H + 2], p[_H + 3], p[_H + 4]),
        (p[_POS], p[_POS + 1], p[_POS + 2], p[_POS + 3], p[_POS + 4]),
        (p[_MP], p[_MP + 1], p[_MP + 2], p[_MP + 3], p[_MP + 4]),
        (p[_DMP], p[_DMP + 1], p[_DMP + 2], p[_DMP + 3], p[_DMP + 4]),
    )


@_jit
def _p2_store(p: np.ndarray, hs: _P5, ns: _P5, ms: _P5) -> None:
    """Write tuples from :func:`_p2_sorted_update` back into the P² state array."""
    for j in range(5):
        p[_H + j] = hs[j]
        p[_POS + j] = ns[j]
        p[_MP + j] = ms[j]


@_jit
def _p2_sorted_update(x: float, hs: _P5, ns: _P5, ms: _P5, dmp: _P5) -> tuple[_P5, _P5, _P5]:
    """river's P² step once its five heights are collected and sorted, on the state as tuples.

    The body of :func:`p2_update` (which calls it); the Half-Space Trees kernel calls it directly
    with the state held in locals across a batch, so it stays in registers instead of going
    through the array at every event. Returns the new heights, positions and desired positions.
    """
    h0, h1, h2, h3, h4 = hs
    n0, n1, n2, n3, n4 = ns
    # river's search: the first i with h[i-1] <= x < h[i] (x >= h[0] here), else the last cell
    k = 4
    if x < h0:
        h0 = x
        k = 1
    elif x < h1:
        k = 1
    elif x < h2:
        k = 2
    elif x < h3:
        k = 3
    elif h4 < x:
        h4 = x
    # positions k..4 move up by one (k >= 1: the first never moves)
    if k <= 1:
        n1 += 1.0
    if k <= 2:
        n2 += 1.0
    if k <= 3:
        n3 += 1.0
    n4 += 1.0
    m0, m1, m2, m3, m4 = ms[0] + dmp[0], ms[1] + dmp[1], ms[2] + dmp[2], ms[3] + dmp[3], ms[4] + dmp[4]
    # the three inner markers in river's order, each seeing its left neighbour already adjusted
    h1, n1 = _p2_adjust(m1, n1, h1, n0, h0, n2, h2)
    h2, n2 = _p2_adjust(m2, n2, h2, n1, h1, n3, h3)
    h3, n3 = _p2_adjust(m3, n3, h3, n2, h2, n4, h4)
    return (h0, h1, h2, h3, h4), (n0, n1, n2, n3, n4), (m0, m1, m2, m3, m4)


@_jit
def _p2_adjust(
    mp: float, n: float, q: float, nm1: float, qm1: float, np1: float, qp1: float
) -> tuple[float, float]:
    """One inner marker's adjustment in river's P² step: its new height and position.

    ``mp`` is its desired position, ``n``/``q`` its position and height, ``nm1``/``qm1`` and
    ``np1``/``qp1`` its neighbours'. river's parabolic step, else its linear one towards the
    neighbour on the side it moves to, with river's operations in river's order.
    """
    d = mp - n
    if (d >= 1.0 and np1 - n > 1.0) or (d <= -1.0 and nm1 - n < -1.0):
        d = math.copysign(1.0, d)
        outer = d / (np1 - nm1)
        inner_left = (n - nm1 + d) * (qp1 - q) / (np1 - n)
        inner_right = (np1 - n - d) * (q - qm1) / (n - nm1)
        qn = q + outer * (inner_left + inner_right)
        if qm1 < qn and qn < qp1:
            q = qn
        elif d > 0.0:
            q = q + d * (qp1 - q) / (np1 - n)
        else:
            q = q + d * (qm1 - q) / (nm1 - n)
        n = n + d
    return q, n


@_jit
def _p2_classify(p: np.ndarray, score: float, warmup: int, seen: np.ndarray) -> bool:
    """streamlab's quantile threshold on one score: above the quantile of the earlier scores, then learn it."""
    if score != score:  # NaN: never anomalous, not learned
        return False
    flag = False
    if seen[0] >= warmup and p[_NH] > 0:
        flag = score > p2_get(p)
    if score == np.inf or score == -np.inf:  # judged, not learned (as _QuantileOperator.classify_one)
        return flag
    p2_update(p, score)
    seen[0] += 1
    return flag


# --- Half-Space Trees behind river's MinMaxScaler, one event at a time


@_jit
def _hst_walk(
    xs: np.ndarray, feature: np.ndarray, threshold: np.ndarray, height: int, node: np.ndarray
) -> None:
    """Each tree's leaf node (heap order) for the scaled row ``xs``, as river walks: ``x < threshold`` -> left.

    The trees advance level by level, all of them at each level: their walks are independent, so the
    CPU overlaps them instead of waiting on one tree's chain of loads, and the step has no branch to
    mispredict. NaN goes right, as in river.
    """
    n_trees = feature.shape[0]
    for t in range(n_trees):
        node[t] = 0
    for _ in range(height):
        for t in range(n_trees):
            nd = node[t]
            # unsigned indices: numba then skips its negative-index wraparound (~25 % of the walk)
            u = np.uint64(nd)
            node[t] = 2 * nd + 2 - np.int64(xs[np.uint64(feature[t, u])] < threshold[t, u])


@_jit
def _hst_leaf_scores(ref_mass: np.ndarray, s: int, height: int, size_limit: float, table: np.ndarray) -> None:
    """river's ``_walk_score`` down to every leaf of every tree of slot ``s``, into ``table`` (trees x leaves).

    A walk adds ``mass * 2**depth`` at each node, up to and including the first node whose mass is
    below ``size_limit``: an integer, as river's float sum of these integers is exact. Computed
    top-down over the heap: a node's sum is its parent's, plus its own term while the path is alive.
    """
    n_trees, n_nodes = ref_mass.shape[1], ref_mass.shape[2]
    n_inner = 2**height - 1
    acc = np.empty(n_nodes, dtype=np.int64)
    alive = np.empty(n_nodes, dtype=np.int64)
    for t in range(n_trees):
        r = ref_mass[s, t, 0]
        acc[0] = r
        alive[0] = np.int64(not r < size_limit)
        first = 1  # the first node of depth d
        for d in range(1, height + 1):
            for node in range(first, 2 * first + 1):
                parent = (node - 1) >> 1
                r = ref_mass[s, t, node]
                a = alive[parent]
                acc[node] = acc[parent] + a * (np.int64(r) << d)
                alive[node] = a & np.int64(not r < size_limit)
            first = 2 * first + 1
        for leaf in range(n_inner + 1):
            table[t, leaf] = acc[n_inner + leaf]


@_jit
def hst_score_learn(
    rows: np.ndarray,
    slots: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    leaf_counts: np.ndarray,
    ref_mass: np.ndarray,
    counter: np.ndarray,
    first_window: np.ndarray,
    feature: np.ndarray,
    threshold: np.ndarray,
    height: int,
    window_size: int,
    size_limit: float,
    max_score: float,
    p2: np.ndarray,
    warmup: int,
    seen: np.ndarray,
    scores: np.ndarray,
    flags: np.ndarray,
    leaf_table: bool,
) -> None:
    """river's ``MinMaxScaler() | HalfSpaceTrees`` score-then-learn for each row, with the row's slot's model.

    The slot arrays are ``HalfSpaceTreesBank``'s, updated in place. With a P² state ``p2`` (length 23;
    empty for none) each score is judged by the quantile threshold first and flagged rows are not
    learned (``learn="unflagged"``); ``flags`` receives the decisions.

    A tree's score depends on the leaf the row reaches and on the reference masses, which change only
    when a window pivots; with ``leaf_table`` (one model, or few models with many rows each) the
    score of every leaf is tabled at each pivot and an event's score is one lookup per tree; the
    table follows the last slot scored. Otherwise each tree's path is summed per event. Scores are
    sums of integers either way, exact in floating point, so both are river's bit for bit.
    """
    n, nf = rows.shape
    n_trees = feature.shape[0]
    n_inner = 2**height - 1
    n_leaves = n_inner + 1
    judge = p2.shape[0] > 0
    xs = np.empty(nf)
    leaves = np.empty(n_trees, dtype=np.int64)  # leaf nodes, heap order
    table = np.empty((n_trees, n_leaves), dtype=np.int64)
    table_slot = -1
    # the P² state in locals once past its first five scores and sorted (its steady state): kept in
    # registers across the batch rather than loaded and stored through ``p2`` at every event
    steady = judge and p2[_NH] >= 5.0 and p2[_SORTED] != 0.0
    n_seen = seen[0]
    hs, ns, ms, dmp = _p2_tuples(p2) if judge else _P2_NONE
    for i in range(n):
        s = slots[i]
        # an event inside the scaler's range leaves it unchanged: then the learning walk is the
        # scoring walk (same scaled row), so one walk to the leaves serves both
        inside = True
        for j in range(nf):
            x = rows[i, j]
            if x < lo[s, j] or x > hi[s, j]:
                inside = False
        if first_window[s]:
            score = 0.0
            if inside:
                for j in range(nf):
                    d = hi[s, j] - lo[s, j]
                    xs[j] = (rows[i, j] - lo[s, j]) / d if d != 0 else 0.0
                _hst_walk(xs, feature, threshold, height, leaves)
        else:
            for j in range(nf):
                d = hi[s, j] - lo[s, j]
                xs[j] = (rows[i, j] - lo[s, j]) / d if d != 0 else 0.0
            if leaf_table:
                _hst_walk(xs, feature, threshold, height, leaves)
                if s != table_slot:
                    _hst_leaf_scores(ref_mass, s, height, size_limit, table)
                    table_slot = s
                total = 0
                for t in range(n_trees):
                    total += table[t, leaves[t] - n_inner]
                score = 1.0 - float(total) / max_score
            else:
                # each tree's path summed as it is walked (river's _walk_score), down to the leaf
                acc_all = 0.0
                for t in range(n_trees):
                    node = 0
                    depth_pow = 1
                    acc = 0.0
                    stopped = False
                    for _ in range(height):
                        if not stopped:
                            r = ref_mass[s, t, node]
                            acc += r * depth_pow
                            if r < size_limit:
                                stopped = True
                                if not inside:
                                    break
                        if xs[feature[t, node]] < threshold[t, node]:
                            node = 2 * node + 1
                        else:
                            node = 2 * node + 2
                        if not stopped:
                            depth_pow <<= 1
                    if not stopped:
                        acc += ref_mass[s, t, node] * depth_pow
                    acc_all += acc
                    leaves[t] = node
                score = 1.0 - acc_all / max_score
        scores[i] = score
        if steady:
            # _p2_classify on the locals
            flag = False
            if score == score:  # NaN: never anomalous, not learned
                flag = n_seen >= warmup and score > hs[2]
                if score != np.inf and score != -np.inf:  # an infinity is judged, not learned
                    hs, ns, ms = _p2_sorted_update(score, hs, ns, ms, dmp)
                    n_seen += 1
            flags[i] = flag
            if flag:
                continue
        elif judge:
            seen[0] = n_seen
            flag = _p2_classify(p2, score, warmup, seen)
            n_seen = seen[0]
            flags[i] = flag
            if p2[_NH] >= 5.0 and p2[_SORTED] != 0.0:
                steady = True
                hs, ns, ms, dmp = _p2_tuples(p2)
            if flag:
                continue
        if not inside:
            for j in range(nf):
                x = rows[i, j]
                if x < lo[s, j]:
                    lo[s, j] = x
                if x > hi[s, j]:
                    hi[s, j] = x
            for j in range(nf):
                d = hi[s, j] - lo[s, j]
                xs[j] = (rows[i, j] - lo[s, j]) / d if d != 0 else 0.0
            _hst_walk(xs, feature, threshold, height, leaves)
        for t in range(n_trees):
            leaf_counts[s, t, leaves[t] - n_inner] += 1
        c = counter[s] + 1
        if c == window_size:
            # pivot: the finished window's masses become the reference (node = sum of its children)
            for t in range(n_trees):
                for leaf in range(n_leaves):
                    ref_mass[s, t, n_inner + leaf] = leaf_counts[s, t, leaf]
                    leaf_counts[s, t, leaf] = 0
                for node in range(n_inner - 1, -1, -1):
                    ref_mass[s, t, node] = ref_mass[s, t, 2 * node + 1] + ref_mass[s, t, 2 * node + 2]
            first_window[s] = False
            if s == table_slot:
                table_slot = -1
            c = 0
        counter[s] = c
    if steady:
        _p2_store(p2, hs, ns, ms)
    if judge:
        seen[0] = n_seen


#: placeholder P² tuples for a batch without a quantile threshold
_P2_NONE = ((0.0, 0.0, 0.0, 0.0, 0.0),) * 4


# --- running moments: river's GaussianScorer and StandardAbsoluteDeviation

#: 2**-53: ``s + s * _HALF_EPS`` rounds to the next double above ``s`` unless ``s`` is a power of two
_HALF_EPS = 2.0**-53


@_jit
def pow_half(var: float, half: float, trust_sqrt: bool) -> float:
    """C's ``pow(var, 0.5)`` (Python's ``var ** 0.5``), mostly through ``sqrt`` (a few ns instead of ~20).

    ``sqrt`` is correctly rounded; ``pow`` is not, and differs from it for about one value in a
    thousand. When the exact root lies within 0.45 of a unit in the last place (ulp) of ``s =
    sqrt(var)``, every other double is more than 0.55 ulp away from it, so a ``pow`` whose error is
    below 0.55 ulp returns ``s`` too: glibc (2.28 and later) and musl use Arm's pow, whose documented
    worst case is 0.54 ulp (``trust_sqrt`` says the platform's is that one, see
    :func:`pow_within_054_ulp`). The exact residual ``var - s*s`` comes from Dekker's product (no
    fused multiply-add: exact without it); ``(s + s * 2**-53) - s`` is ``ulp(s)``, or 0 when ``s`` is
    a power of two (where the ulp below is half as large: then ``pow`` decides). Outside the normal
    range, where Dekker's split could overflow or lose bits, and for about one value in ten (those
    closer to a rounding boundary), ``pow`` is called. ``half`` must be 0.5, passed at run time: a
    constant exponent would let the compiler turn ``pow`` into ``sqrt``.
    """
    if trust_sqrt and 1e-290 < var < 1e290:
        s = math.sqrt(var)
        c = 134217729.0 * s  # Dekker's split of s into 26-bit halves
        hi = c - (c - s)
        lo = s - hi
        p = s * s
        r = (var - p) - (((hi * hi - p) + 2.0 * hi * lo) + lo * lo)  # var - s*s
        ulp = (s + s * _HALF_EPS) - s
        # |root - s| = |r| / (root + s) <= 0.45 ulp
        if abs(r) <= 0.9 * s * ulp:
            return s
    return float(var**half)


# --- C's erf (river's Gaussian CDF calls math.erf, i.e. the C library's): glibc's own operations for
# |x| < 1.25 where the library is known to be glibc's fdlibm-derived erf, else the library call

# glibc's erf, sysdeps/ieee754/dbl-64/s_erf.c (Sun's fdlibm, with glibc's rearranged polynomial
# evaluation): the same file in every release from 2.28 to 2.42 (earlier ones differ in includes
# only; glibc's development branch took CORE-MATH's correctly rounded erf after 2.42). Its
# coefficients, with its names; tests check each against the hex words in its comments.
_ERX = 8.45062911510467529297e-01
_EFX = 1.28379167095512586316e-01
_PP0 = 1.28379167095512558561e-01
_PP1 = -3.25042107247001499370e-01
_PP2 = -2.84817495755985104766e-02
_PP3 = -5.77027029648944159157e-03
_PP4 = -2.37630166566501626084e-05
_QQ1 = 3.97917223959155352819e-01
_QQ2 = 6.50222499887672944485e-02
_QQ3 = 5.08130628187576562776e-03
_QQ4 = 1.32494738004321644526e-04
_QQ5 = -3.96022827877536812320e-06
_PA0 = -2.36211856075265944077e-03
_PA1 = 4.14856118683748331666e-01
_PA2 = -3.72207876035701323847e-01
_PA3 = 3.18346619901161753674e-01
_PA4 = -1.10894694282396677476e-01
_PA5 = 3.54783043256182359371e-02
_PA6 = -2.16637559486879084300e-03
_QA1 = 1.06420880400844228286e-01
_QA2 = 5.40397917702171048937e-01
_QA3 = 7.18286544141962662868e-02
_QA4 = 1.26171219808761642112e-01
_QA5 = 1.36370839120290507362e-02
_QA6 = 1.19844998467991074170e-02
#: glibc's thresholds are high words (``ix < 0x3feb0000``); each has a zero low word, so comparing
#: |x| with the double is the same test
_ERF_TINY_SUB = 2.0**-1015  # 0x00800000
_ERF_TINY = 2.0**-28  # 0x3e300000
_ERF_SMALL = 0.84375  # 0x3feb0000
_ERF_MID = 1.25  # 0x3ff40000


@_jit_inline
def _erf_small(x: float) -> float:
    """glibc's ``erf(x)`` for |x| < 0.84375, its operations in its order."""
    a = abs(x)
    if a < _ERF_TINY:  # |x| < 2**-28, and below 2**-1015 (scaled to avoid a spurious underflow)
        if a < _ERF_TINY_SUB:
            return 0.0625 * (16.0 * x + (16.0 * _EFX) * x)
        return x + _EFX * x
    # x + x*R(x*x)
    z = x * x
    r1 = _PP0 + z * _PP1
    z2 = z * z
    r2 = _PP2 + z * _PP3
    z4 = z2 * z2
    s1 = 1.0 + z * _QQ1
    s2 = _QQ2 + z * _QQ3
    s3 = _QQ4 + z * _QQ5
    r = r1 + z2 * r2 + z4 * _PP4
    s = s1 + z2 * s2 + z4 * s3
    y = r / s
    return x + x * y


@_jit_inline
def _erf_mid(x: float) -> float:
    """glibc's ``erf(x)`` for 0.84375 <= |x| < 1.25: erx + P1(s)/Q1(s), s = |x| - 1."""
    s = abs(x) - 1.0
    p1 = _PA0 + s * _PA1
    s2 = s * s
    q1 = 1.0 + s * _QA1
    s4 = s2 * s2
    p2 = _PA2 + s * _PA3
    s6 = s4 * s2
    q2 = _QA2 + s * _QA3
    p3 = _PA4 + s * _PA5
    q3 = _QA4 + s * _QA5
    p = p1 + s2 * p2 + s4 * p3 + s6 * _PA6
    q = q1 + s2 * q2 + s4 * q3 + s6 * _QA6
    return _ERX + p / q if x > 0.0 else -_ERX - p / q


@_jit_inline
def erf_near_zero(x: float) -> float:
    """glibc's ``erf(x)`` for |x| < 1.25, its operations in its order; NaN for any other ``x``.

    Both of glibc's rational branches below 1.25 are computed and the one glibc would take is
    selected, so a loop over many ``x`` has no data-dependent branch and can run on vectors (a
    scalar caller branches instead: :func:`erf_c`). numba compiles without fast-math, so nothing is
    contracted to a fused multiply-add: every product and sum rounds as in glibc's x86_64 build
    (SSE2, no FMA). Only valid where :func:`erf_port_matches` says the library is that glibc.
    """
    a = abs(x)
    out = _erf_mid(x) if a < _ERF_MID else math.nan
    return _erf_small(x) if a < _ERF_SMALL else out


@_jit
def erf_c(x: float, ported: bool) -> float:
    """C's ``erf(x)`` (Python's ``math.erf``): glibc's operations when ``ported`` and |x| < 1.25.

    ``ported`` is :func:`erf_port_matches`. Elsewhere (|x| >= 1.25, where glibc calls ``exp``
    twice; infinities, NaN; other C libraries) the library's ``erf`` is called. One event at a
    time (the threshold's loop, where each score waits for the last), so it branches where
    :func:`erf_near_zero` selects.
    """
    if ported:
        a = abs(x)
        if a < _ERF_SMALL:
            return _erf_small(x)
        if a < _ERF_MID:
            return _erf_mid(x)
    return math.erf(x)


def erf_check_values() -> np.ndarray:
    """The values :func:`erf_port_matches` checks: each branch's bounds and their neighbours, ±0,
    subnormals, infinities, NaN, and 20,000 fixed values spread over |x| < 1.3."""
    edges = np.array([0.0, 5e-324, 2.0**-1074 * 3, 2.0**-1022, _ERF_TINY_SUB, _ERF_TINY, 1e-9, 0.5])
    edges = np.concatenate([edges, [_ERF_SMALL, 1.0, _ERF_MID, 1 / 0.35, 6.0, 28.0, 1e300]])
    near = np.concatenate([edges, np.nextafter(edges, 0.0), np.nextafter(edges, np.inf)])
    rng = np.random.default_rng(20261203)
    spread = np.concatenate(
        [
            rng.uniform(0.0, 1.3, 16_000),
            2.0 ** rng.uniform(-1074.0, 0.0, 2_000),  # every scale down to the subnormals
            rng.uniform(_ERF_SMALL - 1e-3, _ERF_SMALL + 1e-3, 1_000),
            rng.uniform(_ERF_MID - 1e-3, _ERF_MID, 1_000),
        ]
    )
    positive = np.concatenate([near, spread, [math.inf]])
    return np.concatenate([positive, -positive, [math.nan]])


@_jit
def erf_many(values: np.ndarray, ported: bool, out: np.ndarray) -> None:
    """:func:`erf_c` over an array (the self-check's and the tests' loop)."""
    for i in range(values.shape[0]):
        out[i] = erf_c(values[i], ported)


def _libc_erf_is_glibc_fdlibm() -> bool:
    """Whether C's ``erf`` here is glibc's fdlibm-derived one as built for x86_64 (2.28 to 2.42).

    x86_64 only: its baseline has no FMA, so glibc's erf rounds each product and sum (checked on
    Debian's 2.36 build: SSE2 scalar code, no multiarch variant of ``erf``); on other architectures
    the compiler may fuse them.
    """
    import platform

    if platform.machine() not in ("x86_64", "AMD64"):
        return False
    version = _glibc_version()
    return version is not None and (2, 28) <= version <= (2, 42)


_ERF_PORT: list[bool] = []


def erf_port_matches() -> bool:
    """:func:`erf_c` may use :func:`erf_near_zero`: the C library's ``erf`` is glibc's (2.28 to 2.42,
    x86_64), and the compiled port equals ``math.erf`` bit for bit on :func:`erf_check_values`.

    Asked on the first kernel call, not at import (``platform.libc_ver`` reads the interpreter's
    binary). A glibc built otherwise (fused multiply-adds, another erf) fails the check and keeps
    the library call.
    """
    if not _ERF_PORT:
        _ERF_PORT.append(_libc_erf_is_glibc_fdlibm() and erf_port_agrees(math.erf))
    return _ERF_PORT[0]


def erf_port_agrees(reference: Callable[[float], float]) -> bool:
    """Whether the compiled :func:`erf_c` (the port enabled) equals ``reference`` bit for bit on
    :func:`erf_check_values` (NaN for NaN)."""
    values = erf_check_values()
    out = np.empty_like(values)
    erf_many(values, True, out)
    expected = np.array([reference(v) for v in values.tolist()])
    same = (out.view(np.int64) == expected.view(np.int64)) | (np.isnan(out) & np.isnan(expected))
    return bool(same.all())


@_jit
def moments_score_learn(
    values: np.ndarray,
    slots: np.ndarray,
    state: np.ndarray,
    gaussian: bool,
    grace_period: int,
    half: float,
    trust_sqrt: bool,
    ported: bool,
    p2: np.ndarray,
    warmup: int,
    seen: np.ndarray,
    scores: np.ndarray,
    flags: np.ndarray,
) -> None:
    """river's Welford update and score per event (``state`` rows: n, mean, S), as ``hst_score_learn``.

    river takes the standard deviation as ``var ** 0.5`` (C's ``pow``): :func:`pow_half` with
    ``half`` = 0.5 and ``trust_sqrt`` = :func:`pow_within_054_ulp`; its Gaussian CDF with C's ``erf``:
    :func:`erf_c` with ``ported`` = :func:`erf_port_matches`.
    """
    judge = p2.shape[0] > 0
    cur = -1  # the slot whose state is in n, mean, m2 (written back when the slot changes)
    n = mean = m2 = 0.0
    for i in range(values.shape[0]):
        s = slots[i]
        if s != cur:
            if cur >= 0:
                state[cur, 0] = n
                state[cur, 1] = mean
                state[cur, 2] = m2
            cur = s
            n = state[s, 0]
            mean = state[s, 1]
            m2 = state[s, 2]
        x = values[i]
        if n < grace_period:
            score = 0.0
        else:
            var = m2 / (n - 1.0) if n > 1.0 else 0.0
            std = pow_half(var, half, trust_sqrt)
            if gaussian:
                if std == 0.0:
                    cdf = 0.0  # river's ZeroDivisionError branch
                else:
                    cdf = 0.5 * (1.0 + erf_c((x - mean) / (std * _Z_SIGMA) / _Z_AFTER, ported))
                score = 2.0 * abs(cdf - 0.5)
            else:
                score = abs((x - mean) / (std + 1e-10))
        scores[i] = score
        if judge:
            flag = _p2_classify(p2, score, warmup, seen)
            flags[i] = flag
            if flag:
                continue
        n1 = n + 1.0
        new_mean = mean + (1.0 / n1) * (x - mean)
        m2 = m2 + 1.0 * (x - mean) * (x - new_mean)
        n = n1
        mean = new_mean
    if cur >= 0:
        state[cur, 0] = n
        state[cur, 1] = mean
        state[cur, 2] = m2


@_jit
def moments_learn(
    values: np.ndarray,
    slots: np.ndarray,
    state: np.ndarray,
    n_b: np.ndarray,
    mean_b: np.ndarray,
    m2_b: np.ndarray,
) -> None:
    """river's Welford update per event (``state`` rows: n, mean, S), recording each event's state before it.

    The sequential half of :func:`moments_score_learn` without a threshold: the scores depend on
    the recorded states only, so :func:`moments_scores` computes them afterwards in a loop whose
    iterations are independent (pipelined by the CPU rather than waiting on the recurrence).
    """
    cur = -1
    n = mean = m2 = 0.0
    for i in range(values.shape[0]):
        s = slots[i]
        if s != cur:
            if cur >= 0:
                state[cur, 0] = n
                state[cur, 1] = mean
                state[cur, 2] = m2
            cur = s
            n = state[s, 0]
            mean = state[s, 1]
            m2 = state[s, 2]
        x = values[i]
        n_b[i] = n
        mean_b[i] = mean
        m2_b[i] = m2
        n1 = n + 1.0
        new_mean = mean + (1.0 / n1) * (x - mean)
        m2 = m2 + 1.0 * (x - mean) * (x - new_mean)
        n = n1
        mean = new_mean
    if cur >= 0:
        state[cur, 0] = n
        state[cur, 1] = mean
        state[cur, 2] = m2


@_jit
def moments_scores(
    values: np.ndarray,
    n_b: np.ndarray,
    mean_b: np.ndarray,
    m2_b: np.ndarray,
    gaussian: bool,
    grace_period: int,
    half: float,
    trust_sqrt: bool,
    ported: bool,
    scores: np.ndarray,
) -> None:
    """The scores of :func:`moments_score_learn` from each event's state before it (:func:`moments_learn`).

    The same operations as there, in the same order; ``std`` is :func:`pow_half` of the variance
    (``var ** 0.5``), its ``sqrt`` shortcut first for every event, ``pow`` only where it must decide;
    likewise ``erf`` is :func:`erf_near_zero` for every event when ``ported``, C's ``erf`` only where
    |z| >= 1.25.
    """
    m = values.shape[0]
    std = np.empty(m)
    # the variance and its sqrt shortcut, branch free (select, not jump)
    for i in range(m):
        n = n_b[i]
        var = m2_b[i] / (n - 1.0) if n > 1.0 else 0.0
        s = math.sqrt(var)
        c = 134217729.0 * s
        hi = c - (c - s)
        lo = s - hi
        p = s * s
        r = (var - p) - (((hi * hi - p) + 2.0 * hi * lo) + lo * lo)
        ulp = (s + s * _HALF_EPS) - s
        good = trust_sqrt & (var > 1e-290) & (var < 1e290) & (abs(r) <= 0.9 * s * ulp)
        std[i] = s if good else -1.0
    for i in range(m):
        if std[i] < 0.0:  # pow_half's fallback: C's pow decides
            n = n_b[i]
            var = m2_b[i] / (n - 1.0) if n > 1.0 else 0.0
            std[i] = float(var**half)
    if gaussian and ported:
        # branch free (select, not jump): erf_near_zero's NaN beyond |z| < 1.25 leaves a NaN score
        for i in range(m):
            sd = std[i]
            cdf = 0.5 * (1.0 + erf_near_zero((values[i] - mean_b[i]) / (sd * _Z_SIGMA) / _Z_AFTER))
            cdf = 0.0 if sd == 0.0 else cdf  # river's ZeroDivisionError branch
            score = 2.0 * abs(cdf - 0.5)
            scores[i] = 0.0 if n_b[i] < grace_period else score
        for i in range(m):
            if scores[i] != scores[i]:  # |z| >= 1.25 (glibc's erf calls exp there): C's erf decides
                cdf = 0.5 * (1.0 + math.erf((values[i] - mean_b[i]) / (std[i] * _Z_SIGMA) / _Z_AFTER))
                scores[i] = 2.0 * abs(cdf - 0.5)
        return
    for i in range(m):
        if n_b[i] < grace_period:
            scores[i] = 0.0
            continue
        sd = std[i]
        if gaussian:
            if sd == 0.0:
                cdf = 0.0  # river's ZeroDivisionError branch
            else:
                cdf = 0.5 * (1.0 + math.erf((values[i] - mean_b[i]) / (sd * _Z_SIGMA) / _Z_AFTER))
            scores[i] = 2.0 * abs(cdf - 0.5)
        else:
            scores[i] = abs((values[i] - mean_b[i]) / (sd + 1e-10))


# --- features


#: how many events ahead :func:`ratio_to_median` reads the state of (2 to 8 measured alike)
_AHEAD = 4


@_jit
def ratio_to_median(
    rows: np.ndarray,
    values: np.ndarray,
    ring: np.ndarray,
    ordered: np.ndarray,
    length: np.ndarray,
    head: np.ndarray,
    alive: np.ndarray,
    tick: np.ndarray,
    base: int,
    out: np.ndarray,
) -> float:
    """``value / median`` of the row's (key's) last ``history`` values, then the value joins them.

    Row ``r`` keeps its values in arrival order in the ring ``ring[r]`` (oldest at ``head[r]``) and
    sorted in ``ordered[r, :length[r]]`` (one spare slot: the new value is inserted before the
    oldest is removed, as the per-event list does: inserted after equal values, the oldest removed
    at the first equal one). Each event's row is marked used: its recency ``tick`` is ``base`` + the
    event's position (the last event wins), and a dead (forgotten) row comes back alive with fresh
    state. Events with ``rows[i] < 0`` get NaN; every ``out[i]`` is written.

    Each event first reads the state of the event ``_AHEAD`` events later (where its median and its
    new value go), which the loop does not wait for: those reads from memory overlap with this
    event's insertion, whose end a branch mispredicts (cancelling the reads that come after it). The
    sum of those values is returned, so that the compiler keeps the reads; it means nothing.
    """
    history = ring.shape[1]
    one = np.uint64(1)
    n = rows.shape[0]
    ahead = 0.0
    for i in range(n):
        if i + _AHEAD < n:
            r = rows[i + _AHEAD]
            if r >= 0:
                m = length[r]
                q = head[r] + m
                ahead += ordered[r, m >> 1] + ordered[r, m] + ring[r, q - history if q >= history else q]
        r = rows[i]
        if r < 0:
            out[i] = np.nan
            continue
        tick[r] = base + i
        if not alive[r]:
            alive[r] = True
            ring[r, :] = 0.0
            ordered[r, :] = 0.0
            length[r] = 0
            head[r] = 0
        v = values[i]
        m = length[r]
        row = ordered[r]
        res = np.nan
        if m > 0:
            h = np.uint64(m // 2)  # (unsigned positions: numba leaves out its negative-index check)
            med = row[h] if m % 2 else 0.5 * (row[h - one] + row[h])
            if med != 0:
                res = v / med
        out[i] = res
        if m == history:
            # full: the oldest value leaves as the new one enters, in one move of the values between
            # them (the sorted values are those of inserting after equal values, bisect.insort, then
            # removing the first value equal to the oldest, bisect.bisect_left)
            old = ring[r, head[r]]
            ring[r, head[r]] = v
            head[r] = head[r] + 1 if head[r] + 1 < history else 0  # (a division costs more)
            if v != old:
                # the first value equal to the oldest (bisect.bisect_left), by halving steps whose
                # count depends on m only and which choose by arithmetic: no branch to mispredict
                gone, span = 0, m
                while span > 1:
                    half = span >> 1
                    gone += half * (row[gone + half] < old)
                    span -= half
                gone += row[gone] < old
                # then the values between it and v's place (after the values equal to v,
                # bisect.insort) move one step towards it, and v takes the freed place
                k = gone
                if v > old:
                    while k + 1 < m and row[k + 1] <= v:
                        row[k] = row[k + 1]
                        k += 1
                else:
                    while k > 0 and row[k - 1] > v:
                        row[k] = row[k - 1]
                        k -= 1
                row[k] = v
            continue
        # not full: insert after equal values (bisect.insort); nothing leaves
        end = np.uint64(m)
        while end > 0:
            x = row[end - one]
            if x <= v:
                break
            row[end] = x
            end -= one
        row[end] = v
        q = head[r] + m  # (head[r] + m) % history, without a division
        ring[r, q - history if q >= history else q] = v
        length[r] = m + 1
    return ahead


@_jit
def merge_order(
    s_key: np.ndarray,
    s_time: np.ndarray,
    b_key: np.ndarray,
    b_time: np.ndarray,
    order: np.ndarray,
    out: np.ndarray,
) -> None:
    """The stable sort by (key, time) of retained entries followed by a batch's, by merging.

    The retained entries are sorted already and ``order`` sorts the batch (stably); ``out``
    receives, in merged order, ``i`` for retained entry ``i`` and ``len(s_key) + r`` for batch row
    ``r``: on equal (key, time) retained entries first, then the batch's in ``order``, as a stable
    sort of the concatenation would give.
    """
    m0 = s_key.shape[0]
    n = order.shape[0]
    i = 0
    j = 0
    for w in range(m0 + n):
        take_s = j >= n
        if not take_s and i < m0:
            r = order[j]
            take_s = s_key[i] < b_key[r] or (s_key[i] == b_key[r] and s_time[i] <= b_time[r])
        if take_s:
            out[w] = i
            i += 1
        else:
            out[w] = m0 + order[j]
            j += 1


@_jit
def _count_block(
    time: np.ndarray,
    val: np.ndarray,
    arrival: np.ndarray,
    a: int,
    b: int,
    window: int,
    in_order: bool,
    block: int,
    count: np.ndarray,
    owner: np.ndarray,
    stamp: np.ndarray,
    out: np.ndarray,
) -> None:
    """:func:`distinct_count` for one key's entries ``a .. b`` (``block`` identifies them in ``owner``).

    In arrival order (``in_order``): one sliding pass, counting values in and out of the window;
    otherwise each event scans its window for entries that arrived no later than itself.
    """
    if in_order:
        lo = a
        distinct = 0
        for p in range(a, b):
            v = val[p]
            if v >= 0:
                if owner[v] != block:
                    owner[v] = block
                    count[v] = 0
                count[v] += 1
                if count[v] == 1:
                    distinct += 1
            horizon = time[p] - window
            while time[lo] <= horizon:
                w = val[lo]
                if w >= 0:
                    count[w] -= 1
                    if count[w] == 0:
                        distinct -= 1
                lo += 1
            if arrival[p] >= 0:
                out[arrival[p]] = distinct
    else:
        for p in range(a, b):
            i = arrival[p]
            if i < 0:
                continue
            t = time[p]
            q = p
            while q > a and time[q - 1] > t - window:
                q -= 1
            total = 0
            while q < b and time[q] <= t:
                v = val[q]
                if v >= 0 and arrival[q] <= i and stamp[v] != i:
                    stamp[v] = i
                    total += 1
                q += 1
            out[i] = total


@_jit
def distinct_count(
    s_key: np.ndarray,
    s_time: np.ndarray,
    s_val: np.ndarray,
    s_arrival: np.ndarray,
    window: int,
    n_values: int,
    out: np.ndarray,
) -> None:
    """Distinct values among the key's entries that arrived no later than event ``i``, in ``(t - window, t]``.

    Entries (retained ones with arrival -1, then the batch's events with arrival = their row) come
    sorted by key, then time, then arrival (retained first); ``s_val`` holds value codes (-1: missing,
    never counted); ``out[i]`` receives event ``i``'s count. A key whose batch events arrive in time
    order (the usual case) takes one sliding pass: an entry's sorted position then tells which
    entries arrived before it. Any other key: each event scans its window for entries that arrived
    no later than itself.
    """
    m = s_key.shape[0]
    n_v = max(n_values, 1)
    count = np.zeros(n_v, dtype=np.int64)  # the sliding pass: entries per value inside the window
    owner = np.full(n_v, -1, dtype=np.int64)  # the key block whose pass ``count[v]`` belongs to
    stamp = np.full(n_v, -1, dtype=np.int64)  # the scan: the event that last counted ``v``
    a = 0
    while a < m:
        b = a + 1
        while b < m and s_key[b] == s_key[a]:
            b += 1
        in_order = True
        last = -1
        for p in range(a, b):
            r = s_arrival[p]
            if r >= 0:
                if r < last:
                    in_order = False
                    break
                last = r
        _count_block(s_time, s_val, s_arrival, a, b, window, in_order, a, count, owner, stamp, out)
        a = b


@_jit
def _popcount(x: np.uint64) -> int:
    """The number of bits set in ``x`` (SWAR: no branch)."""
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return int((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


#: :func:`distinct_merge_count` counts a column of at most this many values from each value's newest time
_FEW_VALUES = 16
#: before any time
_NEVER = -(2**63)


@_jit_inline
def _values_after(newest: np.ndarray, n_values: int, lo_t: int) -> int:
    """The values ``0 .. n_values - 1`` whose newest time (``newest``) is after ``lo_t``."""
    total = 0
    for u in range(n_values):
        total += newest[u] > lo_t
    return total


@_jit
def distinct_merge_count(
    s_key: np.ndarray,
    s_time: np.ndarray,
    s_val: np.ndarray,
    b_key: np.ndarray,
    b_time: np.ndarray,
    b_val: np.ndarray,
    order: np.ndarray,
    window: int,
    n_values: int,
    horizon: int,
    out: np.ndarray,
    new_key: np.ndarray,
    new_time: np.ndarray,
    new_val: np.ndarray,
) -> int:
    """A batch's distinct counts against the retained entries, and the new state, in one pass key by key.

    Only the keys with batch rows are merged (into a scratch block: retained entries first on equal
    times, then the batch's in ``order``) and counted; the other keys' retained entries are copied
    as they are when newer than ``horizon``. A column of at most :data:`_FEW_VALUES` values (the
    usual case: countries, channels) is counted from each value's newest time among the entries up
    to a batch row: the row counts the values whose newest time is in ``(t - window, t]``; when the
    key's batch rows arrive in time order and are at least as new as its retained entries, in place,
    as the entries are stored (no scratch block). Otherwise a block whose batch rows arrive in time
    order, with at most 64 entries and value codes below 64, gives each batch row the bits set in
    the OR of ``1 << value`` over the entries before it with a time in ``(t - window, t]``: no
    branch depends on the data. Other blocks take :func:`distinct_count`'s passes. The counts and
    the new state (``new_*``: counted entries newer than ``horizon``, in merged order) are those of
    the numpy path (the stable merge of :func:`merge_order`, :func:`distinct_count` over it, then
    the filter); returns the number of entries kept.
    """
    m0 = s_key.shape[0]
    n = order.shape[0]
    n_v = max(n_values, 1)
    count = np.zeros(n_v, dtype=np.int64)  # the sliding pass: entries per value inside the window
    owner = np.full(n_v, -1, dtype=np.int64)  # the key block whose pass ``count[v]`` belongs to
    stamp = np.full(n_v, -1, dtype=np.int64)  # the scan: the event that last counted ``v``
    bt, bk = _sorted_batch(order, b_time, b_key)
    newest = np.empty(128, dtype=np.int64)
    cap = 64
    m_time = np.empty(cap, dtype=np.int64)
    m_val = np.empty(cap, dtype=np.int64)
    m_arr = np.empty(cap, dtype=np.int64)
    i = 0
    j = 0
    kept = 0
    block = 0
    while j < n:
        kb = bk[j]
        while i < m0 and s_key[i] < kb:
            t = s_time[i]
            new_key[kept] = s_key[i]
            new_time[kept] = t
            new_val[kept] = s_val[i]
            kept += (t > horizon) & (s_val[i] >= 0)
            i += 1
        i0 = i
        kept0 = kept
        if n_values <= _FEW_VALUES:
            # a column of few values: the key's retained entries stored, and each value's newest time
            # among them noted (missing values land in slot 127), as the merge begins in the usual case
            newest[:n_values] = _NEVER
            while i < m0 and s_key[i] == kb:
                t = s_time[i]
                v = s_val[i]
                newest[v & 127] = t
                new_key[kept] = kb
                new_time[kept] = t
                new_val[kept] = v
                kept += (t > horizon) & (v >= 0)
                i += 1
            i1 = i
        else:
            i = i1 = _run_end(s_key, i, kb)
        j0 = j
        j1 = j
        few = n_values <= _FEW_VALUES and (i1 == i0 or s_time[i1 - 1] <= bt[j0])
        if few:
            # the usual case, counted in place: the key's batch rows at least as new as its retained
            # entries (merged: those, then these), and in arrival order along time (else the merge
            # below counts and stores the key again); a batch row counts the values whose newest time
            # among the entries up to it is in its window
            last = np.int64(-1)
            while j < n and bk[j] == kb:  # the key's batch rows (their run found as they are counted)
                c = j
                j += 1
                r = order[c]
                few &= r > last
                last = r
                t = bt[c]
                v = b_val[r]
                newest[v & 127] = t
                out[r] = _values_after(newest, n_values, t - window)
                new_key[kept] = kb
                new_time[kept] = t
                new_val[kept] = v
                kept += (t > horizon) & (v >= 0)
            j1 = j
            if few:
                block += 1
                continue
        else:
            j = j1 = _run_end(bk, j, kb)
        kept = kept0  # (the merge below stores the key's entries)
        size = (i1 - i0) + (j1 - j0)
        if size > cap:
            while cap < size:
                cap *= 2
            m_time = np.empty(cap, dtype=np.int64)
            m_val = np.empty(cap, dtype=np.int64)
            m_arr = np.empty(cap, dtype=np.int64)
        in_order = True
        if i1 == i0 or s_time[i1 - 1] <= bt[j0]:
            # the usual case: the key's batch rows are all at least as new as its retained entries
            ns = i1 - i0
            for p in range(ns):
                m_time[p] = s_time[i0 + p]
                m_val[p] = s_val[i0 + p]
                m_arr[p] = -1
            last = np.int64(-1)
            for q in range(j1 - j0):
                r = order[j0 + q]
                m_time[ns + q] = bt[j0 + q]
                m_val[ns + q] = b_val[r]
                m_arr[ns + q] = r
                in_order &= r > last
                last = r
        else:
            a = i0
            c = j0
            last = np.int64(-1)
            for p in range(size):
                if c >= j1 or (a < i1 and s_time[a] <= bt[c]):
                    m_time[p] = s_time[a]
                    m_val[p] = s_val[a]
                    m_arr[p] = -1
                    a += 1
                else:
                    r = order[c]
                    m_time[p] = bt[c]
                    m_val[p] = b_val[r]
                    m_arr[p] = r
                    in_order &= r > last
                    last = r
                    c += 1
        if in_order and n_values <= _FEW_VALUES:
            # each value's newest time so far (missing values land in slot 127): a batch row counts the
            # values whose newest time among the entries up to it is in its window
            newest[:n_values] = _NEVER
            for p in range(size):
                v = m_val[p]
                newest[v & 127] = m_time[p]
                e = m_arr[p]
                if e < 0:
                    continue
                out[e] = _values_after(newest, n_values, m_time[p] - window)
        elif in_order and size <= 64 and n_values <= 64:
            for p in range(size):
                e = m_arr[p]
                if e < 0:
                    continue
                lo_t = m_time[p] - window
                seen = np.uint64(0)
                for q in range(p + 1):
                    v = m_val[q]
                    hit = (m_time[q] > lo_t) & (v >= 0)
                    seen |= np.uint64(hit) << np.uint64(v & 63)
                out[e] = _popcount(seen)
        else:
            _count_block(m_time, m_val, m_arr, 0, size, window, in_order, block, count, owner, stamp, out)
        block += 1
        for p in range(size):
            t = m_time[p]
            new_key[kept] = kb
            new_time[kept] = t
            new_val[kept] = m_val[p]
            kept += (t > horizon) & (m_val[p] >= 0)
    while i < m0:
        t = s_time[i]
        new_key[kept] = s_key[i]
        new_time[kept] = t
        new_val[kept] = s_val[i]
        kept += (t > horizon) & (s_val[i] >= 0)
        i += 1
    return kept


@_jit
def sort_by_key_time(b_key: np.ndarray, b_time: np.ndarray, n_keys: int, order: np.ndarray) -> bool:
    """The stable sort of a batch by (key, time) into ``order``.

    Keys are codes in ``[0, n_keys)``. One counting sort by key (stable, so each key's rows stay in
    arrival order); when some time goes back, each key's run is then sorted by time with a stable
    insertion sort (a batch is nearly in time order, so runs need few moves). Returns False when
    that would move rows more than ``4 * len + 1024`` places in all (``order`` then holds garbage and
    the caller sorts another way).
    """
    n = b_key.shape[0]
    in_order = True
    for i in range(1, n):
        if b_time[i] < b_time[i - 1]:
            in_order = False
            break
    start = np.zeros(n_keys + 1, dtype=np.int64)
    for i in range(n):
        start[b_key[i] + 1] += 1
    for c in range(n_keys):
        start[c + 1] += start[c]
    fill = start[:n_keys].copy()
    for i in range(n):
        c = b_key[i]
        order[fill[c]] = i
        fill[c] += 1
    if in_order:
        return True
    budget = 4 * n + 1024
    for c in range(n_keys):
        lo = start[c]
        hi = start[c + 1]
        for j in range(lo + 1, hi):
            row = order[j]
            t = b_time[row]
            p = j
            while p > lo and b_time[order[p - 1]] > t:
                order[p] = order[p - 1]
                p -= 1
            budget -= j - p
            if budget < 0:
                return False
            order[p] = row
    return True


@_jit
def window_merge_count(
    s_key: np.ndarray,
    s_time: np.ndarray,
    s_val: np.ndarray,
    b_key: np.ndarray,
    b_time: np.ndarray,
    b_val: np.ndarray,
    order: np.ndarray,
    window: int,
    horizon: int,
    counts: np.ndarray,
    sums: np.ndarray,
    new_key: np.ndarray,
    new_time: np.ndarray,
    new_val: np.ndarray,
    wide: int,
) -> tuple[int, int]:
    """Window counts and sums of a batch against retained entries, merging both into the new state.

    The retained entries ``s_*`` are sorted by (key, time); ``order`` sorts the batch stably by
    (key, time). Walking the merge (on equal key and time retained entries first, then batch rows
    in ``order``), batch row ``r`` at merged position ``p`` gets ``p - lo + 1`` where ``lo`` is the
    key's first entry after ``t - window``, and the sum of the values from ``lo`` to ``p``, added one
    by one in time order from 0.0 (as the exported code and the numpy path add them: a difference of
    running sums would cancel, so an event alone in its window would not sum to its own value); a
    window of more than ``wide`` entries takes the difference of the key's own running sums (from 0.0
    at its first entry), so a dense key costs no more than a pass. Key by key: the keys without batch
    rows are copied; a key with batch rows is merged into a small scratch block and its rows counted
    and summed there. Entries newer than ``horizon`` go to
    ``new_*`` in merged order. A key whose batch rows are not in arrival order along the merge (an
    event older than one that arrived before it) is recomputed (:func:`_recount_block`): each of its
    batch rows counts the key's entries in ``(t - window, t]`` that arrived no later than it
    (retained entries, and batch rows up to it), summing their values in time order. Returns the
    number of entries kept and of keys recomputed.
    """
    m0 = s_key.shape[0]
    n = order.shape[0]
    bt, bk = _sorted_batch(order, b_time, b_key)
    cap = 64
    m_time = np.empty(cap, dtype=np.int64)
    m_val = np.empty(cap, dtype=np.float64)
    m_row = np.empty(cap, dtype=np.int64)  # the batch row at each block position (-1: retained)
    m_sum = np.empty(cap + 1, dtype=np.float64)  # the key's running sum before each block position
    i = 0
    j = 0
    kept = 0
    n_bad = 0
    while j < n:
        kb = bk[j]
        while i < m0 and s_key[i] < kb:
            t = s_time[i]
            v = s_val[i]
            new_key[kept] = s_key[i]
            new_time[kept] = t
            new_val[kept] = v
            kept += t > horizon
            i += 1
        i0 = i
        i = i1 = _run_end(s_key, i, kb)
        j0 = j
        j = j1 = _run_end(bk, j, kb)
        size = (i1 - i0) + (j1 - j0)
        if size > cap:
            while cap < size:
                cap *= 2
            m_time = np.empty(cap, dtype=np.int64)
            m_val = np.empty(cap, dtype=np.float64)
            m_row = np.empty(cap, dtype=np.int64)
            m_sum = np.empty(cap + 1, dtype=np.float64)
        a = i0
        c = j0
        disordered = False
        last_row = np.int64(-1)
        for p in range(size):
            if c >= j1 or (a < i1 and s_time[a] <= bt[c]):
                t = s_time[a]
                v = s_val[a]
                r = np.int64(-1)
                a += 1
            else:
                r = order[c]
                t = bt[c]
                v = b_val[r]
                disordered |= r < last_row
                last_row = r
                c += 1
            m_time[p] = t
            m_val[p] = v
            m_row[p] = r
            new_key[kept] = kb
            new_time[kept] = t
            new_val[kept] = v
            kept += t > horizon
        summed = False  # whether m_sum holds the block's running sums (a wide window needs them)
        lo = 0
        for p in range(size):
            r = m_row[p]
            if r < 0:
                continue
            lo_t = m_time[p] - window
            while m_time[lo] <= lo_t:
                lo += 1
            counts[r] = p - lo + 1
            if p - lo < wide:
                total = 0.0
                for q in range(lo, p + 1):
                    total += m_val[q]
                sums[r] = total
            else:
                if not summed:
                    acc = 0.0
                    for q in range(size):
                        m_sum[q] = acc
                        acc += m_val[q]
                    m_sum[size] = acc
                    summed = True
                sums[r] = m_sum[p + 1] - m_sum[lo]
        if disordered:
            _recount_block(m_time, m_val, m_row, 0, size, window, counts, sums)
            n_bad += 1
    while i < m0:
        t = s_time[i]
        new_key[kept] = s_key[i]
        new_time[kept] = t
        new_val[kept] = s_val[i]
        kept += t > horizon
        i += 1
    return kept, n_bad


@_jit
def _sorted_batch(order: np.ndarray, b_time: np.ndarray, b_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The batch's times and keys in ``order`` (gathered once, then read in sequence)."""
    n = order.shape[0]
    bt = np.empty(n, dtype=np.int64)
    bk = np.empty(n, dtype=np.int64)
    for j in range(n):
        r = order[j]
        bt[j] = b_time[r]
        bk[j] = b_key[r]
    return bt, bk


@_jit
def _run_end(keys: np.ndarray, start: int, key: int) -> int:
    """The end of the run of ``key`` that starts at ``start`` in the sorted ``keys``."""
    end = start
    while end < keys.shape[0] and keys[end] == key:
        end += 1
    return end


@_jit
def window_count_merge(
    s_key: np.ndarray,
    s_time: np.ndarray,
    b_key: np.ndarray,
    b_time: np.ndarray,
    order: np.ndarray,
    window: int,
    horizon: int,
    counts: np.ndarray,
    new_key: np.ndarray,
    new_time: np.ndarray,
) -> tuple[int, int]:
    """:func:`window_merge_count` without sums (``window > 0``): the same counts and the same new state.

    The batch's keys and times are gathered in ``order`` once; then key by key, a batch row's count
    is the key's retained entries in ``(t - window, t]`` plus its batch rows in that range up to the
    row (on equal times retained entries come first, then batch rows in arrival order, as along the
    merge), each from a pointer that only moves forward: no merged arrays are written to count. The
    key's entries newer than ``horizon`` go to ``new_*`` in merged order, stored unconditionally
    and kept by advancing the end (no branch to mispredict). When the key's batch rows are all at
    least as new as its retained entries (the usual case) the merge is the retained entries (stored
    as the key's run is found), then the batch rows (stored as they are counted), and the first
    retained entry in the first row's window is found from the newest back (the window holds a few
    of the entries kept for the lateness). The key's runs are found as they are stored and counted,
    and the pointer to the first batch row in a row's window takes its usual step of at most one
    without a branch (a mispredicted loop exit per row cost more than the rest of the row's work).
    A key whose batch rows are not in arrival order along the merge is recounted as there
    (:func:`_recount_key`). Returns the number of entries kept and of keys recounted.
    """
    m0 = s_key.shape[0]
    n = order.shape[0]
    bt, bk = _sorted_batch(order, b_time, b_key)
    i = 0
    j = 0
    kept = 0
    n_bad = 0
    while j < n:
        kb = bk[j]
        # keys without batch rows: their retained entries newer than the horizon, as they are
        while i < m0 and s_key[i] < kb:
            t = s_time[i]
            new_key[kept] = s_key[i]
            new_time[kept] = t
            kept += t > horizon
            i += 1
        # the key's retained entries, stored as the merge begins when every one is no later than its
        # first batch row (the usual case; else the merge below stores them again from ``kept0``)
        i0 = i
        kept0 = kept
        while i < m0 and s_key[i] == kb:
            t = s_time[i]
            new_key[kept] = kb
            new_time[kept] = t
            kept += t > horizon
            i += 1
        i1 = i
        j0 = j
        s_lo = i0
        s_hi = i0
        usual = i1 == i0 or s_time[i1 - 1] <= bt[j0]
        if usual:
            # all retained entries count up to the first batch row, the window (a few of the newest)
            # is found from the newest back, and the batch rows are stored as they are counted
            s_hi = s_lo = i1
            lo_t0 = bt[j0] - window
            while s_lo > i0 and s_time[s_lo - 1] > lo_t0:
                s_lo -= 1
        else:
            kept = kept0
        b_lo = j0
        last_row = np.int64(-1)
        disordered = False
        while j < n and bk[j] == kb:  # the key's batch rows (their run found as they are counted)
            jj = j
            j += 1
            r = order[jj]
            t = bt[jj]
            disordered |= r < last_row
            last_row = r
            lo_t = t - window
            while s_hi < i1 and s_time[s_hi] <= t:
                s_hi += 1
            while s_lo < s_hi and s_time[s_lo] <= lo_t:
                s_lo += 1
            b_lo += bt[b_lo] <= lo_t  # (most rows move it by at most one: no branch for that)
            while bt[b_lo] <= lo_t:
                b_lo += 1
            counts[r] = (s_hi - s_lo) + (jj - b_lo + 1)
            if usual:
                new_key[kept] = kb
                new_time[kept] = t
                kept += t > horizon
        j1 = j
        if not usual:
            a = i0
            c = j0
            while a < i1 or c < j1:
                if c >= j1 or (a < i1 and s_time[a] <= bt[c]):
                    t = s_time[a]
                    a += 1
                else:
                    t = bt[c]
                    c += 1
                new_key[kept] = kb
                new_time[kept] = t
                kept += t > horizon
        if disordered:
            _recount_key(s_time, bt, order, i0, i1, j0, j1, window, counts)
            n_bad += 1
    while i < m0:
        t = s_time[i]
        new_key[kept] = s_key[i]
        new_time[kept] = t
        kept += t > horizon
        i += 1
    return kept, n_bad


@_jit
def _recount_key(
    s_time: np.ndarray,
    bt: np.ndarray,
    order: np.ndarray,
    i0: int,
    i1: int,
    j0: int,
    j1: int,
    window: int,
    counts: np.ndarray,
) -> None:
    """:func:`_recount_block`'s counts (no sums) for one key: its retained entries ``i0 .. i1`` merged
    with its batch rows ``order[j0 .. j1]`` (times ``bt[j0 .. j1]``; on equal times retained first);
    each batch row counts the entries in ``(t - window, t]`` that arrived no later than it."""
    size = (i1 - i0) + (j1 - j0)
    m_time = np.empty(size, dtype=np.int64)
    m_row = np.empty(size, dtype=np.int64)
    a = i0
    c = j0
    for p in range(size):
        if c >= j1 or (a < i1 and s_time[a] <= bt[c]):
            m_time[p] = s_time[a]
            m_row[p] = -1
            a += 1
        else:
            m_time[p] = bt[c]
            m_row[p] = order[c]
            c += 1
    for p in range(size):
        r = m_row[p]
        if r < 0:
            continue
        t = m_time[p]
        lo_t = t - window
        lo = 0
        hi = size
        while lo < hi:  # the first entry after t - window
            mid = (lo + hi) // 2
            if m_time[mid] <= lo_t:
                lo = mid + 1
            else:
                hi = mid
        count = 0
        q = lo
        while q < size and m_time[q] <= t:
            if m_row[q] <= r:
                count += 1
            q += 1
        counts[r] = count


@_jit
def _recount_block(
    m_time: np.ndarray,
    m_val: np.ndarray,
    m_row: np.ndarray,
    start: int,
    end: int,
    window: int,
    counts: np.ndarray,
    sums: np.ndarray,
) -> None:
    """One key's merged entries ``start .. end`` (sorted by time): each batch row's count and sum of the
    entries in ``(t - window, t]`` that arrived no later than it, adding values in time order."""
    for p in range(start, end):
        r = m_row[p]
        if r < 0:
            continue
        t = m_time[p]
        lo_t = t - window
        a = start
        b = end
        while a < b:  # the first entry after t - window
            mid = (a + b) // 2
            if m_time[mid] <= lo_t:
                a = mid + 1
            else:
                b = mid
        count = 0
        total = 0.0
        q = a
        while q < end and m_time[q] <= t:
            if m_row[q] <= r:
                count += 1
                total += m_val[q]
            q += 1
        counts[r] = count
        sums[r] = total


#: 1 / n for small counts n (a division each is the z-score's costliest step; the same doubles)
_RECIPROCALS = 1.0 / np.maximum(np.arange(1024, dtype=np.float64), 1.0)
#: events of the z-score's sequential pass whose divisions then run together, on vectors
_CHUNK = 256


@_jit
def zscore(
    rows: np.ndarray,
    values: np.ndarray,
    state: np.ndarray,
    alive: np.ndarray,
    tick: np.ndarray,
    base: int,
    out: np.ndarray,
) -> None:
    """z-score against the row's (key's) earlier values, then river's ``stats.Var`` update (ddof 1).

    ``state`` rows: n, mean, S (river's ``Var``). NaN until two values or while the std is 0.
    Rows are marked used as in :func:`ratio_to_median`; events with ``rows[i] < 0`` get NaN, and
    every ``out[i]`` is written. The update runs event by event (``1 / n`` read from a table below
    1024: the same double); each chunk's z-scores, which no later event needs, are then divided
    together, on vectors.
    """
    n_events = rows.shape[0]
    diff = np.empty(_CHUNK)
    var_sum = np.empty(_CHUNK)
    count = np.empty(_CHUNK)
    for chunk in range(0, n_events, _CHUNK):
        stop = min(chunk + _CHUNK, n_events)
        # (the chunk's events as views indexed from 0: numba then knows no index is negative and
        # leaves out its wraparound check on every access, which costs more than the loop's work)
        rows_c, values_c, out_c = rows[chunk:stop], values[chunk:stop], out[chunk:stop]
        for j in range(stop - chunk):
            i = chunk + j
            r = rows_c[j]
            if r < 0:
                count[j] = 0.0  # (gives NaN below)
                diff[j] = 0.0
                var_sum[j] = 0.0
                continue
            tick[r] = base + i
            if not alive[r]:
                alive[r] = True
                state[r, 0] = 0.0
                state[r, 1] = 0.0
                state[r, 2] = 0.0
            x = values_c[j]
            n = state[r, 0]
            mean = state[r, 1]
            m2 = state[r, 2]
            diff[j] = x - mean
            var_sum[j] = m2
            count[j] = n
            n = n + 1.0
            inv = _RECIPROCALS[int(n)] if n < 1024.0 else 1.0 / n
            new_mean = mean + inv * (x - mean)
            state[r, 0] = n
            state[r, 1] = new_mean
            state[r, 2] = m2 + 1.0 * (x - mean) * (x - new_mean)
        for j in range(stop - chunk):
            n = count[j]
            std = math.sqrt(var_sum[j] / (n - 1.0))
            z = diff[j] / std
            out_c[j] = z if n >= 2.0 and std > 0 else np.nan


@_jit
def time_since_last(
    rows: np.ndarray,
    times: np.ndarray,
    last: np.ndarray,
    missing: int,
    alive: np.ndarray,
    tick: np.ndarray,
    base: int,
    out: np.ndarray,
) -> None:
    """Seconds since the row's (key's) latest earlier event time (``missing``: none yet, NaN).

    Rows are marked used as in :func:`ratio_to_median`; events with ``rows[i] < 0`` get NaN, and
    every ``out[i]`` is written. The differences are divided by 1e9 in a second pass, on vectors.
    """
    n_events = rows.shape[0]
    for i in range(n_events):
        r = rows[i]
        if r < 0:
            out[i] = np.nan
            continue
        tick[r] = base + i
        if not alive[r]:
            alive[r] = True
            last[r] = missing
        t = times[i]
        p = last[r]
        if p != missing:
            out[i] = t - p  # in seconds below: (t - p) / 1e9
            if t > p:
                last[r] = t
        else:
            out[i] = np.nan
            last[r] = t
    for i in range(n_events):
        out[i] = out[i] / 1e9


# --- integer keys to rows: an open-addressing hash table (linear probing)

#: Fibonacci hashing's multiplier (2**64 / golden ratio): consecutive keys spread over the table
_FIB = np.uint64(0x9E3779B97F4A7C15)


@_jit
def key_rows(
    keys: np.ndarray,
    ok: np.ndarray,
    start: int,
    table: np.ndarray,
    n_rows: int,
    rows: np.ndarray,
    new_keys: np.ndarray,
    n_new: int,
) -> tuple[int, int]:
    """Each event's row: the row of its key in the table, or the next new row (the key is added).

    ``table`` has a power-of-two number of entries ``(key, row)`` (row -1: empty; one cache line
    per probe); ``n_rows`` rows existed before the batch, ``n_new`` keys of it were added already
    (listed in ``new_keys``, in order of first appearance). Events where ``ok`` is False get row -1.
    Stops before adding a key that would fill the table beyond half; returns where it stopped (the
    caller grows the table and calls again from there) and the number of new keys.
    """
    size = table.shape[0]
    mask = size - 1
    bits = 0
    while (1 << bits) < size:
        bits += 1
    shift = np.uint64(64 - bits)
    limit = size // 2
    umask = np.uint64(mask)
    # (views indexed from 0, and unsigned slots: numba then leaves out its check for negative
    # indices on every access)
    keys, ok, rows = keys[start:], ok[start:], rows[start:]
    for i in range(keys.shape[0]):
        if not ok[i]:
            rows[i] = -1
            continue
        k = keys[i]
        h = (np.uint64(k) * _FIB) >> shift
        while True:
            r = table[h, 1]
            if r < 0:
                if n_rows + n_new >= limit:
                    return start + i, n_new
                r = n_rows + n_new
                table[h, 0] = k
                table[h, 1] = r
                new_keys[n_new] = k
                n_new += 1
                break
            if table[h, 0] == k:
                break
            h = (h + np.uint64(1)) & umask
        rows[i] = r
    return start + keys.shape[0], n_new


@_jit
def dense_rows(
    keys: np.ndarray,
    ok: np.ndarray,
    start: int,
    low: int,
    dense: np.ndarray,
    n_rows: int,
    rows: np.ndarray,
    new_keys: np.ndarray,
    n_new: int,
) -> tuple[int, int]:
    """:func:`key_rows` for keys in ``low .. low + len(dense) - 1``, through a map of them:
    ``dense[key - low]`` is the key's row (-1: none yet; a new key gets the next new row).

    Stops at a key outside the map; returns where it stopped and the number of new keys.
    """
    span = np.uint64(dense.shape[0])
    base = np.uint64(low)
    keys, ok, rows = keys[start:], ok[start:], rows[start:]  # (see key_rows)
    for i in range(keys.shape[0]):
        if not ok[i]:
            rows[i] = -1
            continue
        k = keys[i]
        d = np.uint64(k) - base  # (wraps around: a key below low is far beyond the span)
        if d >= span:
            return start + i, n_new
        r = int(dense[d])
        if r < 0:
            r = n_rows + n_new
            dense[d] = r
            new_keys[n_new] = k
            n_new += 1
        rows[i] = r
    return start + keys.shape[0], n_new
