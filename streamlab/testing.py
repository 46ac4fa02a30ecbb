"""Test harness for your own pipelines: a list source, a list sink, a controllable clock, bounded waits.

Examples
--------
>>> from streamlab import Pipeline
>>> from streamlab.testing import ListSink, ListSource, ManualClock
>>> sink = ListSink()
>>> p = Pipeline(ListSource([{"x": 1}, {"x": 5}]))
>>> _ = p.filter("x > 2").to(sink)
>>> _ = p.run(clock=ManualClock(0))
>>> sink.rows()
[{'x': 5}]
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd

from streamlab._polling import wait_for
from streamlab.clock import Clock, ManualClock
from streamlab.io import Source, SourceReader, default_clock
from streamlab.local.server import find_free_port, port_is_open, wait_for_port
from streamlab.sinks import ListSink
from streamlab.sources import ListSource, _FrameReader

__all__ = [
    "ArrivalSource",
    "ListSink",
    "ListSource",
    "ManualClock",
    "assert_outputs_equal",
    "find_free_port",
    "port_is_open",
    "run_sample",
    "wait_for",
    "wait_for_port",
]


class _ArrivalReader(_FrameReader):
    def __init__(self, source: ArrivalSource, clock: Clock, position: int) -> None:
        super().__init__(source.frame, source.arrival_ns, 1.0, clock, position, None)
        self._partitions = source.partitions

    def partitions(self) -> list[Any] | None:
        return None if self._partitions is None else list(self._partitions)


class ArrivalSource(Source):
    """Rows released at the processing times they originally arrived at (a recorded run, on a clock).

    Parameters
    ----------
    events
        The rows, in arrival order.
    arrival_ns
        Each row's arrival time (int ns, non-decreasing); rows with equal times arrive in one batch.
    partitions
        The partitions the original reader was assigned (they hold the watermark back until heard from).

    Examples
    --------
    >>> clock = ManualClock(100)
    >>> reader = ArrivalSource(pd.DataFrame({"x": [1, 2, 3]}), [100, 100, 5_000]).open(clock=clock)
    >>> reader.poll(10)["x"].tolist(), reader.poll(10)
    ([1, 2], None)
    >>> clock.sleep(1e-5); reader.poll(10)["x"].tolist()
    [3]
    """

    def __init__(self, events: pd.DataFrame, arrival_ns: Any, *, partitions: list[Any] | None = None) -> None:
        self.frame = events.reset_index(drop=True)
        self.arrival_ns = np.asarray(arrival_ns, dtype=np.int64)
        if len(self.arrival_ns) != len(self.frame) or bool((np.diff(self.arrival_ns) < 0).any()):
            raise ValueError(
                "ArrivalSource: give one non-decreasing arrival time per row "
                f"({len(self.arrival_ns)} times for {len(self.frame)} rows)"
            )
        self.partitions = (
            None if partitions is None else [tuple(p) if isinstance(p, list) else p for p in partitions]
        )
        self.columns = tuple(self.frame.columns) if len(self.frame.columns) else None

    def open(self, resume: Any = None, clock: Clock | None = None) -> SourceReader:
        return _ArrivalReader(self, default_clock(clock), resume["position"] if resume else 0)

    def __repr__(self) -> str:
        return f"ArrivalSource({len(self.frame)} events)"


def _sample_pipeline(spec: dict[str, Any], inputs: dict[str, dict[str, Any]]) -> tuple[Any, ManualClock]:
    """The spec's pipeline with each source reading its sampled rows, and a clock at the first arrival."""
    import dataclasses

    from streamlab._to_test import decode_frame
    from streamlab.spec import pipeline_from_dict
    from streamlab.steps import SourceStep

    pipeline = pipeline_from_dict(copy.deepcopy(spec), lazy_sources=True)
    first = []
    for sid, data in inputs.items():
        frame = data["frame"] if "frame" in data else decode_frame(data)
        arrival = np.asarray(data["arrival_ns"], dtype=np.int64)
        if len(arrival):
            first.append(int(arrival[0]))
        source = ArrivalSource(frame, arrival, partitions=data.get("partitions"))
        step = pipeline.steps[sid]
        assert isinstance(step, SourceStep)
        pipeline.steps[sid] = dataclasses.replace(step, source=source)
    return pipeline, ManualClock(min(first) if first else 0)


def run_sample(spec: dict[str, Any], inputs: dict[str, dict[str, Any]]) -> dict[str, pd.DataFrame]:
    """Run a pipeline spec on recorded rows (see ``RunResult.to_test``) and return its non-empty outputs.

    Examples
    --------
    >>> from streamlab import Pipeline, agg, TumblingWindow
    >>> from streamlab._to_test import encode_frame, sample_spec
    >>> p = Pipeline(ListSource([{"k": "a", "timestamp": 0}]))
    >>> _ = p.window(TumblingWindow("1m"), key="k").agg(agg.count())
    >>> rows = pd.DataFrame({"k": ["a", "a"], "timestamp": pd.to_datetime([0, 1], utc=True)})
    >>> out = run_sample(sample_spec(p), {"source": encode_frame(rows, np.array([0, 0]))})
    >>> out["window"]["count"].tolist()
    [2]
    """
    pipeline, clock = _sample_pipeline(spec, inputs)
    result = pipeline.run(clock=clock)
    return {ref: frame for ref, frame in result.outputs.items() if len(frame)}


def assert_outputs_equal(actual: dict[str, pd.DataFrame], expected: dict[str, Any]) -> None:
    """Assert two runs' outputs hold the same rows per output (order aside; floats to 1e-9).

    ``expected`` values may be DataFrames or ``encode_frame`` literals.

    Examples
    --------
    >>> a = {"window": pd.DataFrame({"n": [1, 2]})}
    >>> assert_outputs_equal(a, {"window": pd.DataFrame({"n": [2, 1]})})
    >>> assert_outputs_equal(a, {"window": pd.DataFrame({"n": [2, 2]})})
    Traceback (most recent call last):
    AssertionError: output 'window': 1 expected rows missing, 1 unexpected; missing e.g. [(2,)], unexpected e.g. [(1,)]
    """
    from streamlab._to_test import canonical_rows, decode_frame

    exp = {r: (f if isinstance(f, pd.DataFrame) else decode_frame(f)) for r, f in expected.items()}
    refs = sorted({r for r, f in actual.items() if len(f)} | {r for r, f in exp.items() if len(f)})
    for ref in refs:
        got = actual.get(ref, pd.DataFrame())
        want = exp.get(ref, pd.DataFrame())
        if len(got) and len(want) and set(got.columns) != set(want.columns):
            raise AssertionError(
                f"output {ref!r}: columns differ: expected {sorted(want.columns)}, got {sorted(got.columns)}"
            )
        g, w = canonical_rows(got), canonical_rows(want)
        if g != w:
            gs, ws = list(g), list(w)
            for row in g:
                if row in ws:
                    ws.remove(row)
                    gs.remove(row)
            raise AssertionError(
                f"output {ref!r}: {len(ws)} expected rows missing, {len(gs)} unexpected; "
                f"missing e.g. {ws[:3]}, unexpected e.g. {gs[:3]}"
            )
