"""The progress bar of ``run()``: shown where a person watches, with a total when the input is known."""

from __future__ import annotations

import sys
from typing import Any

from streamlab.runtime._executor import Executor
from streamlab.steps import SourceStep

__all__ = ["Executor", "progress_bar"]  # Executor: tests reach it here, next to _known_total


def progress_bar(ex: Executor, progress: bool | None) -> Any:
    """A tqdm bar for the run of ``ex`` (opened), or ``None``.

    ``progress=None`` shows it in a terminal or a notebook for runs that last longer than 2 s.
    """
    if not (progress or (progress is None and _interactive())):
        return None
    from tqdm.auto import tqdm

    total = _known_total(ex, ex.limit)
    delay = 0.0 if progress else 2.0
    return tqdm(desc=ex.pipeline.name, total=total, unit=" events", unit_scale=True, leave=True, delay=delay)


def _interactive() -> bool:
    """Whether a person is likely watching: an IPython kernel (a notebook) or a terminal on stderr."""
    shell = sys.modules.get("IPython")
    if shell is not None and "ipykernel" in sys.modules:
        ip = shell.get_ipython()
        if ip is not None and getattr(ip, "kernel", None) is not None:
            return True
    return bool(sys.stderr is not None and sys.stderr.isatty())


def _known_total(ex: Executor, max_events: int | None = None) -> int | None:
    """Events the run will read when every source is a replay of a DataFrame or file, else ``None``.

    Examples
    --------
    >>> from streamlab import ManualClock, Pipeline
    >>> from streamlab.testing import ListSource
    >>> ex = Executor(Pipeline(ListSource([{"x": 1}] * 5)), clock=ManualClock(0))
    >>> ex.open(); _known_total(ex), _known_total(ex, max_events=3)
    (5, 3)
    >>> ex.close()
    """
    from streamlab.sources import ListSource, ReplaySource

    left = 0
    for sid, step in ex.pipeline.steps.items():
        if isinstance(step, SourceStep):
            if not isinstance(step.source, (ListSource, ReplaySource)):
                return None
            lag = ex.readers[sid].lag()
            if lag is None:
                return None
            left += lag
    return left if max_events is None else min(left, max_events)
