"""A connector setting over a documented limit of its service is refused when the sink or source is built,
naming the limit: ``TimestreamSink`` took a ``measure_name`` or a measure column over 256 bytes and more than
128 dimensions (Timestream's quotas page: measure name length 256 bytes, dimensions per table 128), and
every write then failed; ``PubSubSink`` took more than 100 attributes, an attribute name over 256 bytes
and a constant attribute value over 1,024 bytes (Pub/Sub's quotas page, resource limits), and every
publish was then refused."""

from __future__ import annotations

import pytest
import streamlab.connectors as c
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab.errors import ParameterError


def test_a_timestream_measure_name_over_256_bytes_is_refused_with_the_limit():
    with pytest.raises(ParameterError) as e:
        c.TimestreamSink("db", "t", dimensions=["host"], measures=["cpu"], measure_name="m" * 257)
    assert e.value.owner == "TimestreamSink" and e.value.parameter == "measure_name"
    assert "measure_name is 257 bytes long for table db.t" in e.value.problem
    assert "at most 256 bytes" in e.value.problem and e.value.fix.startswith("use a name of at most 256")


def test_a_timestream_measure_column_over_256_bytes_is_refused_naming_the_column():
    long = "é" * 129  # 258 bytes in UTF-8, 129 characters
    with pytest.raises(ParameterError) as e:
        c.TimestreamSink("db", "t", dimensions=[], measures=["cpu", long])
    assert e.value.parameter == "measures" and "is 258 bytes long" in e.value.problem
    assert "rename the column" in e.value.fix


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 300))
def test_timestream_measure_names_are_taken_exactly_up_to_256_bytes(size):
    make = lambda: c.TimestreamSink("db", "t", dimensions=[], measures=["x"], measure_name="n" * size)
    if size <= 256:
        assert make().measure_name == "n" * size
    else:
        with pytest.raises(ParameterError, match="at most 256 bytes"):
            make()


def test_more_than_128_timestream_dimensions_are_refused_and_128_taken():
    names = [f"d{i}" for i in range(129)]
    with pytest.raises(ParameterError) as e:
        c.TimestreamSink("db", "t", dimensions=names, measures=["cpu"])
    assert e.value.parameter == "dimensions"
    assert "129 dimensions for table db.t; a Timestream table takes at most 128" in e.value.problem
    assert "write the others as measures" in e.value.fix
    assert len(c.TimestreamSink("db", "t", dimensions=names[:128], measures=["cpu"]).dimensions) == 128


def test_more_than_100_pubsub_attributes_are_refused_and_100_taken():
    columns = [f"a{i}" for i in range(101)]
    with pytest.raises(ParameterError) as e:
        c.PubSubSink("alerts", project="demo", attributes=columns)
    assert e.value.owner == "PubSubSink" and e.value.parameter == "attributes"
    assert "101 attributes for topic 'alerts'; Pub/Sub takes at most 100 per message" in e.value.problem
    assert "message body" in e.value.fix
    assert len(c.PubSubSink("alerts", project="demo", attributes=columns[:100]).attribute_columns) == 100


@pytest.mark.parametrize("as_constant", [False, True])
def test_a_pubsub_attribute_name_over_256_bytes_is_refused(as_constant):
    name = "k" * 257
    attributes = {name: "v"} if as_constant else [name]
    with pytest.raises(ParameterError) as e:
        c.PubSubSink("alerts", project="demo", attributes=attributes)
    assert "is 257 bytes long for topic 'alerts'; Pub/Sub takes attribute names of at most 256" in (
        e.value.problem
    )
    assert c.PubSubSink("alerts", project="demo", attributes=["k" * 256]).attribute_columns == ("k" * 256,)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 1100), st.sampled_from(["v", "é"]))
def test_a_constant_pubsub_attribute_is_taken_exactly_up_to_1024_bytes(count, char):
    value = char * count
    make = lambda: c.PubSubSink("alerts", project="demo", attributes={"source": value})
    if len(value.encode()) <= 1024:
        assert make().static_attributes == {"source": value}
    else:
        with pytest.raises(ParameterError, match="attribute values of at most 1024 bytes") as e:
            make()
        assert f"constant attribute 'source' is {len(value.encode())} bytes long" in e.value.problem
