"""The compiled kernels (numba) against river, and the numpy paths that run without numba.

With numba, the detect step's vectorized detectors run river's recurrences event by event,
compiled: Half-Space Trees, the running-moment scorers and the P² quantile threshold then equal
river bit for bit (the moments included, where the numpy path is within a tolerance). Without
numba (``_common.use_kernels = False`` here) the numpy paths run and keep their own guarantees.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import stats

from streamlab.detectors import (
    Detect,
    FixedThresholdFilter,
    HalfSpaceTreesDetector,
    QuantileThresholdFilter,
    _common,
)
from streamlab.detectors._common import GAUSSIAN_Z_SCALES

from .test_vectorized import (
    RiverHalfSpaceTrees,
    _moments,
    assert_moments_close,
    hst_params,
    run_detect,
    streams,
)

kernels = _common.kernels()
needs_numba = pytest.mark.skipif(kernels is None, reason="numba (the 'fast' extra) is not installed")


@contextmanager
def numpy_paths() -> Iterator[None]:
    """Run the detect step without the compiled kernels, as on a machine without numba."""
    _common.use_kernels = False
    try:
        yield
    finally:
        _common.use_kernels = True


@needs_numba
@settings(max_examples=60)
@given(
    q=st.sampled_from([0.01, 0.25, 0.5, 0.9, 0.99]),
    values=st.lists(
        st.one_of(st.integers(-3, 3).map(float), st.floats(-1e6, 1e6, allow_nan=False)), max_size=120
    ),
    cut=st.integers(0, 120),
)
def test_p2_quantile_equals_rivers_bit_for_bit(q: float, values: list[float], cut: int) -> None:
    """After every update (ties and repeated values included), and across a hand-over to river's object."""
    ref = stats.Quantile(q)
    try:
        state = kernels.p2_from_river(ref)
    except ValueError:  # river 0.22's Quantile is Python: the detect step keeps river's own path there
        pytest.skip("river's Quantile is not its Rust P² (river 0.22, Python 3.10's)")
    for i, x in enumerate(values):
        if i == cut:  # write the state into a fresh river object and carry on from it
            fresh = stats.Quantile(q)
            kernels.p2_into_river(state, fresh)
            state = kernels.p2_from_river(fresh)
            assert fresh.get() == ref.get()
        ref.update(x)
        kernels.p2_update(state, x)
        assert kernels.p2_get(state) == ref.get()


@needs_numba
@settings(max_examples=25, deadline=None)
@given(
    data=streams(max_events=600),
    q=st.sampled_from([0.01, 0.5, 0.9, 0.99]),
    warmup=st.sampled_from([0, 3, 50]),
    params=hst_params,
)
def test_hst_judge_with_the_quantile_in_registers_equals_river(
    data: tuple[Any, int, int], q: float, warmup: int, params: dict[str, int]
) -> None:
    """The Half-Space Trees kernel holds the P² state in locals once it is sorted (``_p2_sorted_update``
    per score, written back after the batch): flags, scores and the threshold's state equal river's
    per-event path, at the fraud pipeline's 0.99 among others, across batches and a restore."""
    frame, batch, restore_at = data
    features = [c for c in frame.columns if c.startswith("f")]

    def step(detector: Any) -> Detect:
        threshold = QuantileThresholdFilter(q=q, warmup=warmup)
        return Detect(detector, features=features, threshold=threshold, learn="unflagged")

    fast = run_detect(step(HalfSpaceTreesDetector(**params)), frame, batch, restore_at)
    ref_op = step(RiverHalfSpaceTrees(**params)).build()
    ref = ref_op.process(frame)["out"]
    assert fast["score"].tolist() == ref["score"].tolist()
    assert fast["is_anomaly"].tolist() == ref["is_anomaly"].tolist()
    whole = step(HalfSpaceTreesDetector(**params)).build()
    whole.process(frame)
    assert whole.threshold.quantile.get() == ref_op.threshold.quantile.get()
    assert whole.threshold.seen == ref_op.threshold.seen


@functools.cache
def _pow_half_loop() -> Any:
    """:func:`pow_half` compiled over an array, 0.5 passed at run time (as the moments kernel does)."""
    import numba

    pow_half = kernels.pow_half

    @numba.njit
    def run(v: Any, half: float, trust: bool, out: Any) -> None:
        for i in range(v.shape[0]):
            out[i] = pow_half(v[i], half, trust)

    return run


def _pow_half_many(values: Any, trust_sqrt: bool) -> list[float]:
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    out = np.empty_like(v)
    _pow_half_loop()(v, 0.5, trust_sqrt, out)
    return list(out.tolist())


@needs_numba
def test_pow_half_equals_pythons_power_on_rounding_boundaries() -> None:
    """``var ** 0.5`` bit for bit where sqrt and pow disagree: roots just off a midpoint between doubles."""
    import math

    import numpy as np

    rng = np.random.default_rng(3)
    m = rng.uniform(1.0, 2.0, 40_000) * 2.0 ** rng.integers(-200, 200, 40_000).astype(float)
    square = (m + np.spacing(m) / 2) ** 2  # the root of these is within rounding of a midpoint
    values = np.concatenate(
        [
            square,
            np.nextafter(square, 0.0),
            np.nextafter(square, np.inf),
            rng.gamma(2.0, 20.0, 20_000),
            [0.0, 5e-324, 1e-300, 1e300, 4.0, 2.0, 0.25, math.inf, 2.0**-1022],
        ]
    )
    expected = [x**0.5 for x in values.tolist()]
    assert sum(math.sqrt(x) != y for x, y in zip(values.tolist(), expected)) > 10  # the cases exist
    for trust in (kernels.pow_within_054_ulp(), False):
        assert _pow_half_many(values, trust) == expected


@needs_numba
@settings(max_examples=40)
@given(st.lists(st.floats(0.0, 1e308, allow_nan=False), min_size=1, max_size=200))
def test_pow_half_equals_pythons_power(values: list[float]) -> None:
    assert _pow_half_many(values, kernels.pow_within_054_ulp()) == [x**0.5 for x in values]


# glibc 2.36's sysdeps/ieee754/dbl-64/s_erf.c: each coefficient's hex words, from its comments
_GLIBC_ERF_HEX = {
    "_ERX": "3FEB0AC1 60000000",
    "_EFX": "3FC06EBA 8214DB69",
    "_PP0": "3FC06EBA 8214DB68",
    "_PP1": "BFD4CD7D 691CB913",
    "_PP2": "BF9D2A51 DBD7194F",
    "_PP3": "BF77A291 236668E4",
    "_PP4": "BEF8EAD6 120016AC",
    "_QQ1": "3FD97779 CDDADC09",
    "_QQ2": "3FB0A54C 5536CEBA",
    "_QQ3": "3F74D022 C4D36B0F",
    "_QQ4": "3F215DC9 221C1A10",
    "_QQ5": "BED09C43 42A26120",
    "_PA0": "BF6359B8 BEF77538",
    "_PA1": "3FDA8D00 AD92B34D",
    "_PA2": "BFD7D240 FBB8C3F1",
    "_PA3": "3FD45FCA 805120E4",
    "_PA4": "BFBC6398 3D3E28EC",
    "_PA5": "3FA22A36 599795EB",
    "_PA6": "BF61BF38 0A96073F",
    "_QA1": "3FBB3E66 18EEE323",
    "_QA2": "3FE14AF0 92EB6F33",
    "_QA3": "3FB2635C D99FE9A7",
    "_QA4": "3FC02660 E763351F",
    "_QA5": "3F8BEDC2 6B51DD1C",
    "_QA6": "3F888B54 5735151D",
}


def test_erf_coefficients_are_glibcs() -> None:
    import struct

    from streamlab.detectors import _kernels as k

    for name, words in _GLIBC_ERF_HEX.items():
        assert struct.pack(">d", getattr(k, name)).hex().upper() == words.replace(" ", ""), name


def _erf_bits(values: Any, ported: bool) -> list[int]:
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    out = np.empty_like(v)
    kernels.erf_many(v, ported, out)
    return [_bits(x) for x in out.tolist()]


def _bits(x: float) -> int:
    """A double's bits, every NaN as one (C's erf returns the NaN it is given, Python may copy it)."""
    import math
    import struct

    return -1 if math.isnan(x) else int(struct.unpack("<q", struct.pack("<d", x))[0])


needs_erf_port = pytest.mark.skipif(
    kernels is None or not kernels.erf_port_matches(),
    reason="C's erf here is not glibc 2.28-2.42's on x86_64: erf_c keeps the library call",
)


@needs_numba
def test_erf_c_equals_c_erf_on_each_branch() -> None:
    """Bit for bit, glibc's port enabled (where it applies) or not: the check values, and 20,000
    values inside each of glibc's intervals (|x| below 2**-1015, 2**-28, 0.84375, 1.25, 2.857, 6, and
    above), both signs."""
    import itertools
    import math

    import numpy as np

    rng = np.random.default_rng(17)
    bounds = [0.0, 2.0**-1015, 2.0**-28, 0.84375, 1.25, 1 / 0.35, 6.0, 40.0]
    inside = [rng.uniform(lo, hi, 20_000) for lo, hi in itertools.pairwise(bounds)]
    inside[0] = 2.0 ** rng.uniform(-1074.0, -1015.0, 20_000)  # subnormals and the tiniest normals
    inside[1] = 2.0 ** rng.uniform(-1015.0, -28.0, 20_000)
    values = np.concatenate([kernels.erf_check_values(), *inside, *(-v for v in inside)])
    expected = [_bits(math.erf(x)) for x in values.tolist()]
    for ported in {kernels.erf_port_matches(), False}:
        assert _erf_bits(values, ported) == expected


@needs_erf_port
@settings(max_examples=60)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=200))
def test_erf_c_equals_c_erf_on_any_double(values: list[float]) -> None:
    import math

    assert _erf_bits(values, True) == [_bits(math.erf(x)) for x in values]


@needs_erf_port
@settings(max_examples=60)
@given(
    data=st.data(),
    interval=st.sampled_from(
        [(0.0, 2.0**-1015), (2.0**-1015, 2.0**-28), (2.0**-28, 0.84375), (0.84375, 1.25)]
    ),
)
def test_erf_c_equals_c_erf_inside_each_ported_branch(data: Any, interval: tuple[float, float]) -> None:
    import math

    lo, hi = interval
    magnitudes = data.draw(st.lists(st.floats(lo, hi, exclude_max=True), min_size=1, max_size=100))
    values = magnitudes + [-x for x in magnitudes]
    assert _erf_bits(values, True) == [_bits(math.erf(x)) for x in values]


@needs_erf_port
def test_erf_port_check_refuses_a_one_ulp_difference() -> None:
    """The self-check behind ``erf_port_matches`` fails on a library that differs in one value's last
    bit (as a glibc built with fused multiply-adds does on ~4 % of them)."""
    import math

    target = kernels.erf_check_values()[100]

    def off_by_one_ulp(x: float) -> float:
        return math.nextafter(math.erf(x), math.inf) if x == target else math.erf(x)

    assert kernels.erf_port_agrees(math.erf)
    assert not kernels.erf_port_agrees(off_by_one_ulp)


@pytest.mark.parametrize(
    ("machine", "libc", "expected"),
    [
        ("x86_64", ("glibc", "2.36"), True),
        ("x86_64", ("glibc", "2.28"), True),
        ("x86_64", ("glibc", "2.42"), True),
        ("x86_64", ("glibc", "2.27"), False),
        ("x86_64", ("glibc", "2.43"), False),  # CORE-MATH's erf
        ("x86_64", ("", ""), False),  # musl, among others
        ("aarch64", ("glibc", "2.36"), False),  # built with fused multiply-adds
    ],
)
def test_erf_port_only_for_glibcs_fdlibm_erf_on_x86_64(
    monkeypatch: pytest.MonkeyPatch, machine: str, libc: tuple[str, str], expected: bool
) -> None:
    import platform

    from streamlab.detectors import _kernels

    monkeypatch.setattr(platform, "machine", lambda: machine)
    monkeypatch.setattr(platform, "libc_ver", lambda: libc)
    assert _kernels._libc_erf_is_glibc_fdlibm() is expected


@needs_numba
def test_moments_scores_equal_c_erf_on_every_branch() -> None:
    """The scoring pass's erf on vectors (``ported``) and with the library's erf give river's formula's
    bits, for standardized values in each of erf's branches, a zero deviation and the grace period."""
    import math

    import numpy as np

    rng = np.random.default_rng(5)
    m = 60_000
    z = np.concatenate(
        [
            rng.uniform(-8.0, 8.0, m // 2),
            rng.uniform(-1.3, 1.3, m // 4),
            np.sign(rng.uniform(-1, 1, m // 4)) * 2.0 ** rng.uniform(-1074.0, -20.0, m // 4),
        ]
    )
    n_b = rng.integers(0, 50, m).astype(np.float64)
    m2_b = rng.gamma(2.0, 30.0, m) * np.maximum(n_b - 1.0, 0.0)
    m2_b[::97] = 0.0  # a zero variance: river's ZeroDivisionError branch
    mean_b = rng.normal(0.0, 10.0, m)
    var = np.where(n_b > 1.0, m2_b / np.where(n_b > 1.0, n_b - 1.0, 1.0), 0.0)
    values = mean_b + z * np.sqrt(2.0) * np.sqrt(var)
    expected = []
    for x, n, mean, s2 in zip(values.tolist(), n_b.tolist(), mean_b.tolist(), m2_b.tolist()):
        if n < 3:
            expected.append(0.0)
            continue
        sd = (s2 / (n - 1.0) if n > 1.0 else 0.0) ** 0.5
        a, b = GAUSSIAN_Z_SCALES  # the installed river's z: river 0.22 divides by sd * sqrt(2) at once
        cdf = 0.0 if sd == 0.0 else 0.5 * (1.0 + math.erf((x - mean) / (sd * a) / b))
        expected.append(2.0 * abs(cdf - 0.5))
    for ported in {kernels.erf_port_matches(), False}:
        scores = np.empty(m)
        kernels.moments_scores(
            values, n_b, mean_b, m2_b, True, 3, 0.5, kernels.pow_within_054_ulp(), ported, scores
        )
        assert [_bits(s) for s in scores.tolist()] == [_bits(s) for s in expected]


@needs_numba
@settings(max_examples=30)
@given(
    data=streams(), kind=st.sampled_from(["gaussian", "sad"]), grace=st.integers(0, 5), keyed=st.booleans()
)
def test_compiled_running_moments_are_bit_identical_to_river(
    data: tuple[Any, int, int], kind: str, grace: int, keyed: bool
) -> None:
    frame, batch, restore_at = data
    kw: dict[str, Any] = {"features": ["f0"]}
    if keyed:
        kw |= {"key": "user_id", "max_keys": 3, "key_ttl": "1h"}
    fast = run_detect(Detect(_moments(kind, grace, False), **kw), frame, batch, restore_at)
    ref = Detect(_moments(kind, grace, True), **kw).build().process(frame)["out"]
    assert fast["score"].tolist() == ref["score"].tolist()


@needs_numba
@settings(max_examples=25)
@given(data=streams(), kind=st.sampled_from(["gaussian", "sad"]), keyed=st.booleans())
def test_compiled_moments_with_quantile_threshold_learn_unflagged(
    data: tuple[Any, int, int], kind: str, keyed: bool
) -> None:
    frame, batch, restore_at = data
    kw: dict[str, Any] = {
        "features": ["f0"],
        "threshold": QuantileThresholdFilter(q=0.7, warmup=4),
        "learn": "unflagged",
    }
    if keyed:
        kw |= {"key": "user_id", "max_keys": 3}
    fast = run_detect(Detect(_moments(kind, 2, False), **kw), frame, batch, restore_at)
    ref = Detect(_moments(kind, 2, True), **kw).build().process(frame)["out"]
    assert fast["score"].tolist() == ref["score"].tolist()
    assert fast["is_anomaly"].tolist() == ref["is_anomaly"].tolist()


@settings(max_examples=15)
@given(data=streams(), params=hst_params, keyed=st.booleans(), quantile=st.booleans())
def test_numpy_paths_without_numba_still_equal_river(
    data: tuple[Any, int, int], params: dict[str, int], keyed: bool, quantile: bool
) -> None:
    """Half-Space Trees bit for bit and the moments within their tolerance, learn="unflagged" included."""
    frame, batch, restore_at = data
    features = [c for c in frame.columns if c.startswith("f")]
    threshold: Any = QuantileThresholdFilter(q=0.8, warmup=5) if quantile else FixedThresholdFilter(0.6)
    kw: dict[str, Any] = {"features": features, "threshold": threshold, "learn": "unflagged"}
    if keyed:
        kw |= {"key": "user_id", "max_keys": 3}
    with numpy_paths():
        fast = run_detect(Detect(HalfSpaceTreesDetector(**params), **kw), frame, batch, restore_at)
        moments = run_detect(
            Detect(_moments("gaussian", 2, False), features=["f0"]), frame, batch, restore_at
        )
    ref = Detect(RiverHalfSpaceTrees(**params), **kw).build().process(frame)["out"]
    assert fast["score"].tolist() == ref["score"].tolist()
    assert fast["is_anomaly"].tolist() == ref["is_anomaly"].tolist()
    ref_moments = Detect(_moments("gaussian", 2, True), features=["f0"]).build().process(frame)["out"]
    assert_moments_close(moments["score"].to_numpy(), ref_moments["score"].to_numpy())


def test_kernels_module_loads_only_when_asked() -> None:
    """Importing streamlab.detectors does not import numba (an optional dependency)."""
    import subprocess
    import sys

    code = "import sys, streamlab.detectors; print('numba' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    with numpy_paths():
        assert _common.kernels() is None
    assert (_common.kernels() is None) == (kernels is None)


@needs_numba
@settings(max_examples=25)
@given(
    data=streams(),
    kind=st.sampled_from(["gaussian", "sad"]),
    dtype=st.sampled_from(["int64", "int32", "uint16"]),
    offset=st.sampled_from([0, 7, -(2**40)]),
    ttl=st.sampled_from([None, "1h"]),
    max_keys=st.integers(1, 6),
)
def test_compiled_moments_with_integer_keys_equal_river(
    data: tuple[Any, int, int], kind: str, dtype: str, offset: int, ttl: str | None, max_keys: int
) -> None:
    """Integer keys take the compiled hash table (``_factorize``) and, without a TTL, the recency
    pass without a sort: scores, evictions and the output frame equal river's per-event path."""
    frame, batch, restore_at = data
    frame = frame.copy()
    frame["user_id"] = frame["user_id"].astype("int64")
    if dtype == "int64":
        frame["user_id"] += offset
    frame["user_id"] = frame["user_id"].astype(dtype)
    kw: dict[str, Any] = {"features": ["f0"], "key": "user_id", "max_keys": max_keys, "key_ttl": ttl}
    fast = run_detect(Detect(_moments(kind, 2, False), **kw), frame, batch, restore_at)
    ref = Detect(_moments(kind, 2, True), **kw).build().process(frame)["out"]
    assert fast["score"].tolist() == ref["score"].tolist()
    assert fast.drop(columns=["score"]).equals(ref.drop(columns=["score"]))


@needs_numba
@settings(max_examples=40)
@given(
    keys=st.lists(st.integers(-(2**63), 2**63 - 1) | st.integers(-5, 5), max_size=300),
    dtype=st.sampled_from(["int64", "int8", "uint32", "uint64"]),
    expected=st.integers(0, 400),
)
def test_factorize_of_integer_keys_equals_pandas(keys: list[int], dtype: str, expected: int) -> None:
    import numpy as np
    import pandas as pd

    from streamlab.detectors._detect import _factorize

    info = np.iinfo(dtype)
    column = pd.Series([min(max(k, int(info.min)), int(info.max)) for k in keys], dtype=dtype)
    codes, uniques = _factorize(column, expected)
    want_codes, want_uniques = pd.factorize(column)
    assert codes.tolist() == want_codes.tolist()
    assert np.asarray(uniques).tolist() == np.asarray(want_uniques).tolist()
    assert np.asarray(uniques).dtype == np.asarray(want_uniques).dtype


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 20)), max_size=80),
    budgetless=st.booleans(),
)
def test_sort_by_key_time_is_the_stable_sort_by_key_then_time(
    rows: list[tuple[int, int]], budgetless: bool
) -> None:
    """The counting sort (+ insertion sort of each key's run) equals numpy's stable lexsort, compiled
    or not, in order or not."""
    import numpy as np

    from streamlab.detectors._windowcount import plain_kernel, sort_by_key_time

    key = np.array([r[0] for r in rows], dtype=np.int64)
    time = np.array([r[1] for r in rows], dtype=np.int64)
    if budgetless:
        time = np.sort(time)
    expected = np.lexsort((time, key)).tolist()  # lexsort is stable
    runs = [plain_kernel("sort_by_key_time")] + ([kernels.sort_by_key_time] if kernels is not None else [])
    for run in runs:
        order = np.empty(len(rows), dtype=np.int64)
        if run(key, time, int(key.max()) + 1 if len(rows) else 0, order):
            assert order.tolist() == expected
    if kernels is not None:
        assert sort_by_key_time(kernels, key, time).tolist() == expected


def test_sort_by_key_time_declines_a_batch_far_from_time_order() -> None:
    """A batch in reverse time order exceeds the move budget: the kernel declines, the wrapper sorts."""
    import numpy as np

    from streamlab.detectors._windowcount import plain_kernel, sort_by_key_time

    n = 3000
    rev_key, rev_time = np.zeros(n, dtype=np.int64), np.arange(n, dtype=np.int64)[::-1].copy()
    assert not plain_kernel("sort_by_key_time")(rev_key, rev_time, 1, np.empty(n, dtype=np.int64))
    if kernels is not None:
        assert sort_by_key_time(kernels, rev_key, rev_time).tolist() == list(range(n))[::-1]
