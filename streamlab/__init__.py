"""streamlab: prototype real-time analytics in notebooks, prove them on data, export them to Beam or Lambda.

A pipeline is an inert graph of frozen steps built with a fluent API; the in-process runtime moves events
through it as columnar micro-batches (pandas/numpy/arrow) on event time with watermarks, late and
dead-letter outputs. Optional clients (Kafka, Pub/Sub, AWS, Beam) load only when used.

Examples
--------
>>> import streamlab
>>> streamlab.TumblingWindow("1m")
TumblingWindow('1m')
"""

from typing import TYPE_CHECKING, Any

from streamlab import agg
from streamlab.aggregators import Aggregator
from streamlab.clock import Clock, ManualClock, SystemClock
from streamlab.errors import PipelineConfigError, SinkFailedError, StepFailedError
from streamlab.io import Sink, SinkWriter, Source, SourceReader
from streamlab.operators import Operator
from streamlab.pipeline import Pipeline, Stream
from streamlab.profiling import Profile, profile
from streamlab.sinks import DuckDBSink, DuckDBTable, JsonLinesSink, ListSink, ParquetSink
from streamlab.sources import ListSource, ReplaySource
from streamlab.windows import SessionWindow, SlidingWindow, TumblingWindow

if TYPE_CHECKING:
    from streamlab.runtime import RunHandle, RunResult

__version__ = "0.1.0"

__all__ = [
    "Aggregator",
    "Clock",
    "DuckDBSink",
    "DuckDBTable",
    "JsonLinesSink",
    "ListSink",
    "ListSource",
    "ManualClock",
    "Operator",
    "ParquetSink",
    "Pipeline",
    "PipelineConfigError",
    "Profile",
    "ReplaySource",
    "RunHandle",
    "RunResult",
    "SessionWindow",
    "Sink",
    "SinkFailedError",
    "SinkWriter",
    "SlidingWindow",
    "Source",
    "SourceReader",
    "StepFailedError",
    "Stream",
    "SystemClock",
    "TumblingWindow",
    "__version__",
    "agg",
    "profile",
]


def __getattr__(name: str) -> Any:
    # the runtime loads on first use: the model (pipeline, steps, spec) does not import it
    if name in ("RunHandle", "RunResult"):
        import streamlab.runtime

        return getattr(streamlab.runtime, name)
    raise AttributeError(f"module 'streamlab' has no attribute {name!r}")
