"""Poll a condition until it holds, within a deadline: the project's replacement for ``time.sleep``."""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["wait_for"]


def wait_for(
    condition: Callable[[], bool],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "condition",
) -> None:
    """Poll ``condition`` until it returns True, or raise :class:`TimeoutError` after ``timeout`` seconds.

    This is the project's replacement for ``time.sleep`` in tests and start-up code: it waits only as
    long as needed and fails loudly with ``what`` in the message.

    Parameters
    ----------
    condition
        Callable returning True once the awaited state is reached.
    timeout
        Deadline in seconds (monotonic time).
    interval
        Pause between polls in seconds; grows up to 10x while waiting so long waits stay cheap.
    what
        Description for the error message.

    Examples
    --------
    >>> box = [0]
    >>> def ready():
    ...     box[0] += 1
    ...     return box[0] >= 3
    >>> wait_for(ready, timeout=5)
    >>> box[0]
    3
    """
    deadline = time.monotonic() + timeout
    pause = interval
    while True:
        if condition():
            return
        now = time.monotonic()
        if now >= deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(min(pause, max(deadline - now, 0.001)))
        pause = min(pause * 1.5, interval * 10)
