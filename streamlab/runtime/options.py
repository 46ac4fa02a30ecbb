"""The options of a run: one frozen :class:`RunOptions`, shared by ``run()``, ``start()`` and the executor."""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from streamlab._time import Duration, parse_duration
from streamlab.clock import Clock

__all__ = ["RunOptions", "takes_run_options"]

_F = TypeVar("_F", bound=Callable[..., Any])


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How a pipeline runs; the keyword arguments of :func:`~streamlab.runtime.run` and ``start``.

    Parameters
    ----------
    clock
        Processing-time clock; a :class:`~streamlab.clock.ManualClock` makes replays instant and exact.
        ``None``: the system clock.
    batch_size
        Largest micro-batch taken from a source at once.
    resume
        A checkpoint (``RunResult.checkpoint``) to continue from.
    checkpoint_dir
        Directory where checkpoints are saved and, on start, resumed from (only by the same pipeline:
        its fingerprint is checked). Without it, a run whose sources commit upstream (Kafka, Pub/Sub,
        Kinesis with ``checkpoint_path``) keeps its checkpoints in a default directory per pipeline
        (``metrics["checkpoint_dir"]``), so nothing acknowledged lives only in open windows.
    commit_every
        Processing time between commit points.
    max_events
        Stop (gracefully, keeping window state in the checkpoint) after this many source events.
    duration
        Stop gracefully after this much processing time (by ``clock``), e.g. ``"30s"``.
    max_collect_rows
        Rows kept per output without a sink (the newest); ``None`` keeps all. Rows dropped are counted in
        ``metrics["collected_dropped"]`` and ``RunResult.dropped``; attach a sink to keep everything.
    idle_wait
        Seconds (of ``clock``) to wait when no source has data and none says when it will.

    Examples
    --------
    >>> RunOptions(batch_size=10, max_collect_rows=None).batch_size
    10
    >>> RunOptions(max_collect_rows=-1)
    Traceback (most recent call last):
    ...
    ValueError: max_collect_rows must be a number of rows >= 0 or None (keep all), got -1
    """

    clock: Clock | None = None
    batch_size: int = 50_000
    resume: Any = None
    checkpoint_dir: str | os.PathLike[str] | None = None
    commit_every: Duration = "5s"
    max_events: int | None = None
    duration: Duration | None = None
    max_collect_rows: int | None = 100_000
    idle_wait: float = 0.01

    def __post_init__(self) -> None:
        n = self.max_collect_rows
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise ValueError(f"max_collect_rows must be a number of rows >= 0 or None (keep all), got {n!r}")

    @classmethod
    def of(cls, options: RunOptions | None = None, **fields: Any) -> RunOptions:
        """``options`` (default: all defaults) with ``fields`` replaced; an unknown name is an error.

        Examples
        --------
        >>> RunOptions.of(RunOptions(batch_size=5), max_events=3)
        RunOptions(clock=None, batch_size=5, resume=None, checkpoint_dir=None, commit_every='5s', max_events=3, duration=None, max_collect_rows=100000, idle_wait=0.01)
        >>> RunOptions.of(batchsize=5)
        Traceback (most recent call last):
        ...
        TypeError: unknown run option 'batchsize'; did you mean 'batch_size'? (options: clock, batch_size, resume, checkpoint_dir, commit_every, max_events, duration, max_collect_rows, idle_wait)
        """
        names = [f.name for f in dataclasses.fields(cls)]
        for name in fields:
            if name not in names:
                import difflib

                close = difflib.get_close_matches(name, names, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise TypeError(f"unknown run option {name!r}{hint} (options: {', '.join(names)})")
        base = options if options is not None else cls()
        return dataclasses.replace(base, **fields) if fields else base

    @property
    def commit_every_ns(self) -> int:
        """``commit_every`` in nanoseconds."""
        return parse_duration(self.commit_every, what="commit_every")

    @property
    def duration_ns(self) -> int | None:
        """``duration`` in nanoseconds, or ``None`` (no deadline)."""
        return None if self.duration is None else parse_duration(self.duration, what="duration")


def takes_run_options(fn: _F) -> _F:
    """Show :class:`RunOptions`' fields as keyword parameters of ``fn``, which takes them as ``**fields``.

    The options are listed once, in :class:`RunOptions`; ``help(run)``, ``inspect.signature`` and
    notebook tooltips still show each one with its default.

    Examples
    --------
    >>> @takes_run_options
    ... def go(pipeline, /, *, quiet=False, **fields):
    ...     return RunOptions.of(**fields)
    >>> inspect.signature(go).parameters["batch_size"].default
    50000
    """
    sig = inspect.signature(fn)
    own = [p for p in sig.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    options = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
        for f in dataclasses.fields(RunOptions)
    ]
    fn.__signature__ = sig.replace(parameters=[*own, *options])  # type: ignore[attr-defined]
    return fn
