"""Kernels compile where numba cannot write its disk cache (a read-only install and home: AWS Lambda,
locked-down containers), where ``njit(cache=True)`` refuses to compile at all."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_the_kernels_compile_in_memory_where_no_cache_directory_can_be_written() -> None:
    program = textwrap.dedent(
        """
        import numba
        from numba.core import caching

        caching.CacheImpl._locator_classes = []  # as where no directory can be written
        try:
            numba.njit(cache=True)(lambda x: x)
        except RuntimeError as e:
            assert "cannot cache" in str(e), e
        else:
            raise AssertionError("numba cached without a locator")
        import numpy as np

        from streamlab.detectors._common import kernels

        k = kernels()
        assert k is not None and k.COMPILED
        # a kernel on plain arrays, so the check holds on every river (river 0.22's Quantile, Python
        # 3.10's, serializes another layout than the P² kernels read)
        values = np.array([3.0, 1.0, 2.0, 5.0, 4.0, 6.0, 0.5, 2.5])
        slots = np.array([0, 1, 0, 1, 0, 1, 0, 1], dtype=np.int64)

        def learn(fn):
            state = np.zeros((2, 3))
            before = [np.empty(len(values)) for _ in range(3)]
            fn(values, slots, state, *before)
            return state, before

        state, before = learn(k.moments_learn)
        assert k.moments_learn.signatures, "moments_learn was not compiled"
        py_state, py_before = learn(k.plain(k.moments_learn))
        assert state.tobytes() == py_state.tobytes(), (state, py_state)
        assert all(a.tobytes() == b.tobytes() for a, b in zip(before, py_before))
        assert state[:, :2].tolist() == [[4.0, 2.375], [4.0, 3.625]], state
        print("ok", state[0, 1])
        """
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok ")
