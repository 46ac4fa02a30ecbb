"""What a run produced (:class:`RunResult`), and the bounded collector of outputs without a sink."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pandas as pd

from streamlab._frames import concat_batches
from streamlab.runtime.metrics import RunMetrics
from streamlab.steps import SinkStep

if TYPE_CHECKING:
    from streamlab.pipeline import Pipeline

__all__ = ["Collector", "RunResult"]


@dataclass
class RunResult:
    """What a run produced: collected outputs (those without a sink), metrics, and the last checkpoint.

    Index it with a stream reference: ``result["window"]``, ``result["parse.dead_letter"]``.

    Examples
    --------
    >>> from streamlab import Pipeline, ManualClock
    >>> from streamlab.testing import ListSource
    >>> result = Pipeline(ListSource([b'{bad'])).parse().run(clock=ManualClock(0))
    >>> result.status, result['parse.dead_letter']['reason'].str[:12].tolist()
    ('finished', ['invalid JSON'])
    """

    outputs: dict[str, pd.DataFrame]
    metrics: RunMetrics
    checkpoint: Any
    status: str
    pipeline: Pipeline | None = field(default=None, repr=False, compare=False)
    # the input the run read, with arrival times, for to_test() (see streamlab._to_test)
    tape: Any = field(default=None, repr=False, compare=False)

    def to_test(self, path: str | os.PathLike[str], **options: Any) -> Any:
        """Write a broker-free pytest module replaying a sample of this run's input.

        The sample covers every output (several windows and keys, late events, dead letters,
        duplicates); ``options``: ``keys`` (default 3) and ``max_rows`` (default 1,000). Returns what was
        written (``path``, ``inputs``, ``expected``, ``spec``, and ``exact``: the windows whose results
        are the run's). See ``streamlab._to_test``.

        Examples
        --------
        >>> import os, tempfile
        >>> from streamlab import ManualClock, Pipeline, TumblingWindow, agg
        >>> from streamlab.testing import ListSource
        >>> p = Pipeline(ListSource([{"k": "a", "timestamp": i} for i in range(5)]))
        >>> _ = p.window(TumblingWindow("2s"), key="k").agg(agg.count())
        >>> written = p.run(clock=ManualClock(0)).to_test(os.path.join(tempfile.mkdtemp(), "test_p.py"))
        >>> written.coverage
        {'window': 3}
        """
        from streamlab._to_test import write_test

        return write_test(self.pipeline, self.tape, path, **options)

    def __getitem__(self, ref: str) -> pd.DataFrame:
        if ref not in self.outputs:
            from streamlab.errors import suggest

            raise KeyError(
                f"no collected output {ref!r}; {suggest(ref, self.outputs, what='collected outputs')} "
                "(outputs with a sink are in the sink)"
            )
        return self.outputs[ref]

    @property
    def events_in(self) -> int:
        """Events the sources delivered (``metrics["events_in"]``), as the repr shows them.

        Examples
        --------
        >>> from streamlab import ManualClock, Pipeline
        >>> from streamlab.testing import ListSource
        >>> Pipeline(ListSource([{"x": 1}, {"x": 2}])).run(clock=ManualClock(0)).events_in
        2
        """
        return int(self.metrics.get("events_in", 0))

    @property
    def dropped(self) -> dict[str, int]:
        """Rows dropped per collected output, beyond ``metrics["collect_limit"]`` (the oldest go first)."""
        return dict(self.metrics.get("collected_dropped", {}))

    def __repr__(self) -> str:
        outs = ", ".join(
            f"{k}: {len(v)} rows" + (f" ({self.dropped[k]} dropped)" if self.dropped.get(k) else "")
            for k, v in self.outputs.items()
        )
        return f"RunResult(status={self.status!r}, events_in={self.metrics.get('events_in')}, outputs={{{outs}}})"

    def _repr_html_(self) -> str:
        from streamlab._display import run_html

        p = self.pipeline
        sinks = (
            {} if p is None else {s: repr(st.sink) for s, st in p.steps.items() if isinstance(st, SinkStep)}
        )
        name = "" if p is None else p.name
        return run_html(name, self.metrics, {k: len(v) for k, v in self.outputs.items()}, sinks)


@dataclass
class Collector:
    """The newest ``max_rows`` rows of one output without a sink (``None``: all); counts what it drops.

    ``columns``: the output's columns when known at construction; an output that received no rows is
    an empty frame with them (so ``result["window"]["count"].sum()`` is 0, not a KeyError).

    Examples
    --------
    >>> c = Collector(3)
    >>> c.add(pd.DataFrame({"x": [1, 2]})); c.add(pd.DataFrame({"x": [3, 4]}))
    >>> c.frame()["x"].tolist(), c.dropped
    ([2, 3, 4], 1)
    >>> list(Collector(None, columns=("k", "count")).frame().columns)
    ['k', 'count']
    """

    max_rows: int | None
    frames: list[pd.DataFrame] = field(default_factory=list)
    rows: int = 0
    dropped: int = 0
    columns: tuple[str, ...] | None = None

    def add(self, frame: pd.DataFrame) -> None:
        self.frames.append(frame)
        self.rows += len(frame)
        if self.max_rows is not None and self.rows > self.max_rows:
            excess = self.rows - self.max_rows  # the oldest rows go first
            while excess:
                first = self.frames[0]
                if len(first) <= excess:
                    self.frames.pop(0)
                    cut = len(first)
                else:
                    self.frames[0] = first.iloc[excess:].reset_index(drop=True)
                    cut = excess
                excess -= cut
                self.rows -= cut
                self.dropped += cut

    def frame(self) -> pd.DataFrame:
        if not self.frames:
            empty: pd.DataFrame = pd.DataFrame(columns=list(self.columns or ()))
            return empty
        out: pd.DataFrame = concat_batches(self.frames)
        self.frames = [out]
        return out
