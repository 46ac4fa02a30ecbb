"""The columns a KinesisSink (``partition_key``), a TimestreamSink (``dimensions``, ``measures``,
``time``), a PubSubSink (``ordering_key``, attribute columns) and a BigQuerySink (``insert_id``) read are checked against the stream's at
``.to()``, as the Kafka, Redis and alert sinks' are: before, a missing one was accepted and failed with a
KeyError on the first batch, mid-run (no service is needed: nothing is written)."""

from __future__ import annotations

import pandas as pd
import pytest
from streamlab.connectors import BigQuerySink, KinesisSink, PubSubSink, TimestreamSink

from streamlab import Pipeline
from streamlab.errors import PipelineConfigError
from streamlab.io import Sink
from streamlab.testing import ListSource


def stream_of_known_columns() -> Pipeline:
    frame = pd.DataFrame({"event_type": ["a"], "user": ["u"], "value": [1.0], "timestamp": [0]})
    return Pipeline(ListSource(frame))


@pytest.mark.parametrize(
    ("sink", "missing"),
    [
        (KinesisSink("s", partition_key="users"), "['users']"),
        (TimestreamSink("d", "t", dimensions=["host"], measures=["value"]), "['host']"),
        (TimestreamSink("d", "t", dimensions=["user"], measures=["values"]), "['values']"),
        (TimestreamSink("d", "t", dimensions=["user"], measures=["value"], time="ts"), "['ts']"),
        (PubSubSink("t", project="p", ordering_key="users"), "['users']"),
        (PubSubSink("t", project="p", attributes=["event_type", "kind"]), "['kind']"),
        (BigQuerySink("d.t", project="p", insert_id="event_id"), "['event_id']"),
    ],
)
def test_columns_the_stream_lacks_are_refused_at_to(sink: Sink, missing: str) -> None:
    p = stream_of_known_columns()
    with pytest.raises(PipelineConfigError) as info:
        p.stream.to(sink, step_id="out")
    assert info.value.step_id == "out", info.value
    assert f"names column(s) {missing} that the stream does not have" in info.value.problem, info.value


@pytest.mark.parametrize(
    "sink",
    [
        KinesisSink("s", partition_key="user"),
        TimestreamSink("d", "t", dimensions=["user", "event_type"], measures=["value"]),
        PubSubSink("t", project="p", ordering_key="user", attributes=["event_type"]),
        PubSubSink("t", project="p", attributes={"source": "web"}),
        BigQuerySink("d.t", project="p", insert_id="user"),
    ],
)
def test_columns_the_stream_has_are_accepted(sink: Sink) -> None:
    p = stream_of_known_columns()
    p.stream.to(sink, step_id="out")
    assert "out" in p.steps
