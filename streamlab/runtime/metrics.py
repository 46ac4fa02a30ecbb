"""The typed metrics of a run (``RunHandle.metrics``, ``RunResult.metrics``): dicts with known keys.

:class:`RunMetrics` is a ``TypedDict``, so ``metrics["events_in"]`` works as before and type checkers
know every key and its type; the widgets read it.
"""

from __future__ import annotations

from typing import TypedDict

import pandas as pd

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
