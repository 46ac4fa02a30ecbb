"""A dead letter of a record that arrived without a value (a Kafka tombstone) and one of an empty record
both carried the reason ``empty record`` and nothing else saying which it was: only the Kafka value (null
against empty) told them apart, which tools that read a null value as empty, or as a deletion, lose.
``KafkaDeadLetterSink`` now writes the tombstone's dead letter with a null value and the header
``raw_null: true``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from streamlab.connectors.kafka import (
    KafkaDeadLetterSink,
    KafkaSource,
    LocalKafkaBroker,
    create_topic,
)

from streamlab import Pipeline
from streamlab.testing import ListSink

FAST_GROUP = {"session.timeout.ms": 2000, "heartbeat.interval.ms": 500}
BROKERS = "127.0.0.1:9092"


class _Lines:
    """A client's ``logger``: its lines kept here, not written to stderr."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, level: int, fmt: str, *args: Any) -> None:
        self.lines.append(str(args[-1]) if args else fmt)


# ---------------------------------------------------------------------------------------------------
# 1. a tombstone's dead letter against an empty record's


def test_a_tombstone_and_an_empty_record_stay_apart_in_the_dead_letter_topic(
    kafka_broker: LocalKafkaBroker, unique_name: str
) -> None:
    from confluent_kafka import Producer

    boot = kafka_broker.bootstrap_servers
    events, dlq = f"events-{unique_name}", f"dlq-{unique_name}"
    create_topic(boot, events, partitions=1)
    create_topic(boot, dlq, partitions=1)
    producer = Producer({"bootstrap.servers": boot, "logger": _Lines()})
    for key, value in [
        (b"tomb", None),
        (b"empty", b""),
        (b"bad", b"{oops"),
        (b"good", b'{"n": 1}'),
    ]:
        producer.produce(events, key=key, value=value)
    assert producer.flush(15) == 0

    pipeline = Pipeline(
        KafkaSource(
            events, bootstrap_servers=boot, group_id=unique_name, stop_at_end=True, config=FAST_GROUP
        ),
        name="dead_letters",
    )
    pipeline.parse({"n": "int64"}, time=None).dead_letter.to(
        KafkaDeadLetterSink(dlq, bootstrap_servers=boot), step_id="dlq"
    )
    assert pipeline.run(progress=False, duration="30s").status == "finished"

    # read back with the project's own reader
    back = Pipeline(
        KafkaSource(
            dlq, bootstrap_servers=boot, group_id=f"r-{unique_name}", stop_at_end=True, config=FAST_GROUP
        ),
        name="read_back",
    )
    got = ListSink()
    back.to(got)
    assert back.run(progress=False, duration="30s").status == "finished"
    letters = {dict(h)["key"]: (v, dict(h)) for v, h in zip(got.frame()["value"], got.frame()["headers"])}
    assert sorted(letters) == [b"bad", b"empty", b"tomb"]

    tomb_value, tomb = letters[b"tomb"]
    empty_value, empty = letters[b"empty"]
    assert tomb["reason"] == empty["reason"] == b"empty record"  # the parse step's reason is one for both
    assert tomb_value is None and tomb["raw_null"] == b"true"  # what arrived: no value at all
    assert empty_value == b"" and "raw_null" not in empty  # what arrived: an empty value
    bad_value, bad = letters[b"bad"]
    assert bad_value == b"{oops" and "raw_null" not in bad


def test_the_marker_is_written_for_a_missing_raw_of_any_kind_and_after_the_other_headers() -> None:
    dlq = KafkaDeadLetterSink("dlq", bootstrap_servers=BROKERS)
    raw = pd.Series([None, float("nan"), pd.NA, b"", ""], dtype=object)
    values, keys, headers = dlq.encode(pd.DataFrame({"raw": raw}))
    assert values == [None, None, None, b"", b""] and keys == [None] * 5
    assert headers == [[("raw_null", b"true")]] * 3 + [None, None]
    _, _, headers = dlq.encode(pd.DataFrame({"raw": [None], "reason": ["empty record"], "key": [None]}))
    # another column's missing value is a null header, not an empty one
    assert headers == [[("reason", b"empty record"), ("key", None), ("raw_null", b"true")]]
