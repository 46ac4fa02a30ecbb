"""A KafkaSink's ``key``, ``value`` and ``headers`` columns are checked against the stream's at ``.to()``,
as every other sink's: a missing one is a configuration error naming the step, not a KeyError on the
first batch (no broker is needed: nothing is produced)."""

from __future__ import annotations

import pandas as pd
import pytest
from streamlab.connectors.kafka import KafkaSink

from streamlab import Pipeline
from streamlab.errors import PipelineConfigError
from streamlab.testing import ListSource

SERVERS = "127.0.0.1:1"


def stream_of_known_columns() -> Pipeline:
    return Pipeline(ListSource(pd.DataFrame({"event_type": ["a"], "user": ["u"], "timestamp": [0]})))


@pytest.mark.parametrize(
    ("sink", "message"),
    [
        (KafkaSink("t", bootstrap_servers=SERVERS, key="nope"), r"key='nope'.*\['nope'\]"),
        (KafkaSink("t", bootstrap_servers=SERVERS, key="users"), "did you mean"),
        (KafkaSink("t", bootstrap_servers=SERVERS, value="payload"), r"value='payload'.*\['payload'\]"),
        (KafkaSink("t", bootstrap_servers=SERVERS, headers=["user", "nope"]), r"headers=.*\['nope'\]"),
        (KafkaSink("t", bootstrap_servers=SERVERS, headers={"h": "nope"}), r"\{'h': 'nope'\}"),
    ],
)
def test_columns_the_stream_lacks_are_refused_at_to(sink: KafkaSink, message: str) -> None:
    p = stream_of_known_columns()
    with pytest.raises(PipelineConfigError, match=message) as info:
        p.stream.to(sink, step_id="to_kafka")
    assert "to_kafka" in str(info.value) and "does not have" in str(info.value)


def test_columns_the_stream_has_are_accepted() -> None:
    p = stream_of_known_columns()
    sink = KafkaSink("t", bootstrap_servers=SERVERS, key="user", value="event_type", headers={"k": "user"})
    p.stream.to(sink, step_id="to_kafka")
    assert "to_kafka" in p.steps
