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
        from streamlab.detectors._common import kernels

        k = kernels()
        assert k is not None and k.COMPILED
        from river import stats

        median = stats.Quantile(0.5)
        state = k.p2_from_river(median)
        for x in (3.0, 1.0, 2.0, 5.0, 4.0, 6.0, 0.5):
            k.p2_update(state, x)
            median.update(x)
        assert k.p2_update.signatures, "p2_update was not compiled"
        assert k.p2_get(state) == median.get(), (k.p2_get(state), median.get())
        print("ok", k.p2_get(state))
        """
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("ok ")
