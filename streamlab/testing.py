"""Test harness for your own pipelines: a list source, a list sink and a controllable clock.

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

from streamlab.clock import ManualClock
from streamlab.sinks import ListSink
from streamlab.sources import ListSource

__all__ = ["ListSink", "ListSource", "ManualClock"]
