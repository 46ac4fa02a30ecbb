"""numba's compiler for streamlab's kernels, with its disk cache where one can be written.

``cache=True`` saves compiled machine code beside the module (or in the user's cache directory), so
later processes load it instead of compiling again; where neither can be written (a package installed
read-only and a read-only home, as in AWS Lambda or a locked-down container), numba refuses to compile
at all ("cannot cache function ...: no locator available"). The kernels then compile in memory only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

_F = TypeVar("_F", bound=Callable[..., Any])


def jit(fn: _F, **options: Any) -> _F:
    """``numba.njit(cache=True, nogil=True, **options)(fn)``, or the same without ``cache`` where no
    cache directory can be written.

    Parameters
    ----------
    fn
        The Python function to compile (on its first call, as numba does).
    **options
        More of ``numba.njit``'s options (``error_model``, ``inline``, ``boundscheck``).

    Examples
    --------
    >>> import importlib.util
    >>> if importlib.util.find_spec("numba"):
    ...     twice = jit(lambda x: 2 * x)
    ...     print(twice(21))
    ... else:
    ...     print(42)
    42
    """
    import numba

    try:
        return cast(_F, numba.njit(cache=True, nogil=True, **options)(fn))
    except RuntimeError as e:
        if "cannot cache" not in str(e):
            raise
        return cast(_F, numba.njit(nogil=True, **options)(fn))
