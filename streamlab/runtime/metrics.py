"""The typed metrics of a run (``RunHandle.metrics``, ``RunResult.metrics``): dicts with known keys.

:class:`RunMetrics` is a ``TypedDict``, so ``metrics["events_in"]`` works as before and type checkers
know every key and its type; the widgets read it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

import pandas as pd

if TYPE_CHECKING:
    from streamlab.runtime._executor import Executor

__all__ = ["RunMetrics", "StepMetrics"]


#: Counts of one step: its ``kind``, rows delivered to it (``in``), and rows out per output name.
#: (``in`` is a keyword: only the functional syntax can name it.)
StepMetrics = TypedDict("StepMetrics", {"kind": str, "in": int, "out": dict[str, int]})


class RunMetrics(TypedDict):
    """What a run has done so far.

    Examples
    --------
    >>> from streamlab import ManualClock, Pipeline
    >>> from streamlab.testing import ListSource
    >>> m: RunMetrics = Pipeline(ListSource([{"x": 1}])).run(clock=ManualClock(0)).metrics
    >>> m["events_in"], m["steps"]["source"]["out"]
    (1, {'out': 1})
    """

    status: str
    events_in: int
    events_out: int
    batches: int
    events_per_s: float
    late: int
    dead_letter: int
    duplicates: int
    watermark: pd.Timestamp | None
    watermarks: dict[str, pd.Timestamp]
    lag: int | None
    partitions: dict[str, list[object]]
    commits: int
    processing_time: pd.Timestamp
    collect_limit: int | None
    collected_dropped: dict[str, int]
    checkpoint_dir: str | None
    steps: dict[str, StepMetrics]


_COUNTED = ("late", "dead_letter", "duplicates")


def _utc(ns: int) -> pd.Timestamp:
    """A watermark as a time: one below the earliest timestamp (an event in the first ``delay`` after
    1677-09-21 minus that delay, a Python int) is the earliest, where pd.Timestamp raised and failed the run."""
    earliest, latest = pd.Timestamp.min.value, pd.Timestamp.max.value
    stamp: pd.Timestamp = pd.Timestamp(min(max(int(ns), earliest), latest), tz="UTC")
    return stamp


def measure(ex: Executor) -> RunMetrics:
    """The metrics of the run of ``ex`` now; the caller holds ``ex.lock``."""
    now = ex.clock.now_ns()
    elapsed = max((now - ex.started_ns) / 1e9, 1e-9) if ex.started_ns else 0.0
    step_in, step_out = ex.router.step_in, ex.router.step_out
    counted = {name: sum(outs.get(name, 0) for outs in step_out.values()) for name in _COUNTED}
    watermarks = {}
    for sid, op in ex.operators.items():
        wm = op.watermark_ns()
        if wm is not None:
            watermarks[sid] = _utc(wm)
    lags = [lag for r in ex.readers.values() if (lag := r.lag()) is not None]
    checkpoint_dir = ex.log.checkpoint_dir
    return {
        "status": ex.status,
        "events_in": ex.events_in,
        "events_out": sum(step_in[s] for s in ex.writers),
        "batches": ex.batches,
        "events_per_s": ex.events_in / elapsed if elapsed else 0.0,
        "late": counted["late"],
        "dead_letter": counted["dead_letter"],
        "duplicates": counted["duplicates"],
        "watermark": min(watermarks.values()) if watermarks else None,
        "watermarks": watermarks,
        "lag": sum(lags) if lags else None,
        "partitions": {sid: list(parts) for sid, parts in ex.assigned.items()},
        "commits": ex.log.commits,
        "processing_time": _utc(now),
        "collect_limit": ex.max_collect_rows,
        "collected_dropped": {r: c.dropped for r, c in ex.router.collect.items() if c.dropped},
        "checkpoint_dir": None if checkpoint_dir is None else str(checkpoint_dir),
        "steps": {
            # the steps the run was built with: a step added to the pipeline after start() is not run
            sid: {"kind": ex.pipeline.steps[sid].kind, "in": step_in[sid], "out": dict(step_out[sid])}
            for sid in step_in
        },
    }
