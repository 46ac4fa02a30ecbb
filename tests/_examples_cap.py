"""A cap on every hypothesis property's examples, also on those a test sets itself (``@settings``).

``STREAMLAB_HYPOTHESIS_MAX_EXAMPLES=N`` sets it (tests/conftest.py). The Python 3.10 / pandas 2 run of
tests/test_packaging.py uses it: it repeats the tests that found pandas 2 differences on fewer draws of the
same fixed sequence (the full counts run in the main suite), so that CI stays within its time bound.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hypothesis import settings


def cap_examples(tests: Iterable[Any], cap: int) -> int:
    """Lower to ``cap`` the examples of each hypothesis test function in ``tests`` that asks for more;
    returns how many were lowered. Hypothesis reads a test's settings when it runs, from the attribute
    its ``@given`` wrapper keeps them in."""
    lowered = 0
    for fn in tests:
        own = getattr(fn, "_hypothesis_internal_use_settings", None)
        if own is not None and getattr(fn, "is_hypothesis_test", False) and own.max_examples > cap:
            fn._hypothesis_internal_use_settings = settings(own, max_examples=cap)
            lowered += 1
    return lowered
