"""Working ahead: a source's next batch is started in a worker while the previous one goes downstream.

An operator that can (``Operator.works_ahead``, e.g. the parse step: arrow reads JSON without the GIL)
and is its source's only reader starts batch *n + 1* with ``Operator.begin`` in one worker thread owned
by the run while the later steps handle batch *n*. Batches are still delivered in order, and everything
read is delivered before a commit, a flush or a stop, so outputs, checkpoints and committed positions
are the same as without it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor

import pandas as pd

from streamlab.operators import Operator, Outputs
from streamlab.pipeline import Pipeline

_AHEAD_MIN_BATCH = 4096  # below this, handing a batch to another thread costs more than it saves


class Pending:
    """One batch read from a source but not yet delivered, with the work started on it, if any."""

    __slots__ = ("batch", "done")

    def __init__(self, batch: pd.DataFrame) -> None:
        self.batch = batch
        self.done: Callable[[], Outputs] | None = None


class WorkAhead:
    """Which sources work ahead (``targets``: source id -> the step that works ahead), their queues, the pool.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b"{}"]))
    >>> _ = p.parse()
    >>> ahead = WorkAhead.plan(p, ["source"], {"parse": p.steps["parse"].build()}, batch_size=10_000)
    >>> ahead.targets
    {'source': 'parse'}
    >>> ahead.close()
    """

    def __init__(self, targets: dict[str, str], operators: Mapping[str, Operator], name: str) -> None:
        self.targets = targets
        self.operators = operators
        self.pending: dict[str, deque[Pending]] = {sid: deque() for sid in targets}
        self.pool = ThreadPoolExecutor(1, thread_name_prefix=f"streamlab-{name}-parse") if targets else None

    @classmethod
    def plan(
        cls, pipeline: Pipeline, sources: Iterable[str], operators: Mapping[str, Operator], *, batch_size: int
    ) -> WorkAhead:
        """Sources read by one step alone that works ahead, with one input; none for small batches."""
        targets: dict[str, str] = {}
        if batch_size >= _AHEAD_MIN_BATCH:
            consumers = pipeline.consumers()
            for sid in sources:
                readers_of = consumers.get(sid, [])
                if len(readers_of) != 1:
                    continue
                target = readers_of[0][0]
                op = operators.get(target)
                if op is not None and op.works_ahead and len(pipeline.steps[target].inputs) == 1:
                    targets[sid] = target
        return cls(targets, operators, pipeline.name)

    def any_pending(self) -> bool:
        return any(self.pending.values())

    def begin(self, sid: str, entry: Pending) -> None:
        """Start the target step's work on ``entry`` in the worker."""
        entry.done = self.operators[self.targets[sid]].begin(entry.batch, self.pool)

    def close(self) -> None:
        """End the worker (waiting for its current task) and forget what was not delivered."""
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        for queue in self.pending.values():
            queue.clear()
