"""The newest rows of a stream that a sink or a step reads, kept for late subscribers (live views made
mid-run).

A background run (:meth:`Pipeline.start`) keeps one :class:`Tail` per stream that a sink or a step
reads (a source's raw records only when a sink reads them: ``Router.keep_tails``), so a chart made after
the run produced rows replays them (``RunHandle.subscribe(replay=True)``), as the collector does for
outputs that nothing reads. ``run()`` keeps none: its results are unchanged.
"""

from __future__ import annotations

from collections import deque

import pandas as pd

from streamlab._frames import concat_batches

__all__ = ["REPLAY_ROWS", "Tail"]

#: rows of each read stream that a background run keeps for late subscribers (a live chart
#: holds about as many: ``WindowChart`` buffers 10 000 rows by default)
REPLAY_ROWS = 10_000


class Tail:
    """At least the newest ``max_rows`` rows of a stream (fewer than ``2 * max_rows`` held), as its batches.

    :meth:`add` runs in the pipeline thread for every batch and does O(1) work: it keeps a reference to
    the batch (pandas copy-on-write: the run cannot change a frame it emitted) and drops the oldest
    batches that are no longer needed. A batch larger than ``max_rows`` is cut to its newest rows and
    copied, so memory is bounded by rows (a slice would keep the whole batch alive). :meth:`frame` does
    the concatenation, in the reader's thread.

    Examples
    --------
    >>> tail = Tail(3)
    >>> tail.add(pd.DataFrame({"x": [1, 2]})); tail.add(pd.DataFrame({"x": [3, 4]}))
    >>> tail.frame()["x"].tolist()
    [2, 3, 4]
    >>> tail.add(pd.DataFrame({"x": range(5, 100)}))
    >>> tail.frame()["x"].tolist(), tail.rows
    ([97, 98, 99], 3)
    """

    def __init__(self, max_rows: int) -> None:
        if max_rows < 1:
            raise ValueError(f"Tail(max_rows={max_rows}): must be at least 1")
        self.max_rows = max_rows
        self.frames: deque[pd.DataFrame] = deque()
        self.rows = 0

    def add(self, frame: pd.DataFrame) -> None:
        """Keep ``frame`` (its newest ``max_rows`` rows) and drop the batches older rows now cover."""
        n = len(frame)
        if n > self.max_rows:
            frame = frame.iloc[n - self.max_rows :].copy()
            n = self.max_rows
        self.frames.append(frame)
        self.rows += n
        while self.rows - len(self.frames[0]) >= self.max_rows:
            self.rows -= len(self.frames.popleft())

    def frame(self) -> pd.DataFrame:
        """The newest ``max_rows`` rows, oldest first, as one frame (empty when nothing came)."""
        if not self.frames:
            return pd.DataFrame()
        out = concat_batches(list(self.frames))
        if len(out) > self.max_rows:
            out = out.iloc[len(out) - self.max_rows :].reset_index(drop=True)
        self.frames = deque([out])  # later calls do not concatenate again
        self.rows = len(out)
        return out
