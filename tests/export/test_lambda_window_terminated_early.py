"""Lambda export: a tumbling window Lambda ends early (its state over 1 MB) loses no event.

Lambda keeps a tumbling window's state up to 1 MB per shard and ends the window early past that: the
invocation says ``isWindowTerminatedEarly`` and the next one "continues the same window with a fresh
state" (Lambda's tumbling-window event properties). The handler treats it as the window's final
invocation: it writes every open event-time window's partial to WINDOW_TABLE and remembers the dedup
ids, under a writer of its own, so the continuation's partial of the same event-time window is merged
with it, not written over it. And it does not let the state get there: a state nearing the limit is
written out so before it is returned.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.export import to_lambda
from streamlab.export.aws_lambda import kinesis_event
from streamlab.export.verify import load_module
from streamlab.testing import ListSource

from ._lambda_env import handler_env

pytest.importorskip("moto")

pytestmark = pytest.mark.services

SCHEMA = {"event_id": "string", "timestamp": "timestamp", "event_type": "string"}


@pytest.fixture(scope="module")
def aws() -> Iterator[Any]:
    from streamlab.local import LocalAWS

    with LocalAWS() as local:
        yield local


def event(i: int) -> bytes:
    return json.dumps(
        {"event_id": f"e{i}", "timestamp": f"2024-01-01T00:00:{i:02d}Z", "event_type": "a"}
    ).encode()


def invoke(
    module: Any, ids: range, state: Any, *, final: bool = False, early: bool = False
) -> dict[str, Any]:
    e = kinesis_event([(f"{i:05d}", event(i)) for i in ids], state, final)
    e["isWindowTerminatedEarly"] = early
    response = module.handler(e)
    assert response["batchItemFailures"] == []
    return dict(response)


def deploy(aws: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, p: Pipeline) -> tuple[Any, str]:
    """The handler of ``p`` with its Timestream table, WINDOW_TABLE and IDEMPOTENCY_TABLE in moto:
    (the module, the Timestream database)."""
    from streamlab.export.aws_lambda import create_window_table

    tag = uuid.uuid4().hex[:8]
    ts = aws.client("timestream-write")
    ts.create_database(DatabaseName=f"db_{tag}")
    ts.create_table(DatabaseName=f"db_{tag}", TableName="window")
    table = create_window_table(aws.client("dynamodb"), f"windows-{tag}")
    aws.client("dynamodb").create_table(
        TableName=f"ids-{tag}",
        KeySchema=[{"AttributeName": "event_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "event_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    handler_env(
        aws,
        monkeypatch,
        TIMESTREAM_DATABASE=f"db_{tag}",
        TIMESTREAM_TABLE="window",
        WINDOW_TABLE=table,
        IDEMPOTENCY_TABLE=f"ids-{tag}",
    )
    return load_module(to_lambda(p, tmp_path).module), f"db_{tag}"


def written(aws: Any, database: str) -> Any:
    """The window results Timestream keeps (the highest version of each record)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.timestreamwrite.models import timestreamwrite_backends

    from streamlab.export.aws_lambda import _results_from_timestream

    stored = timestreamwrite_backends[DEFAULT_ACCOUNT_ID][aws.region].describe_database(database)
    return _results_from_timestream(list(stored.describe_table("window").records), ("event_type",))


@pytest.mark.parametrize("final", [False, True])
def test_a_window_ended_early_and_its_continuation_write_every_event(
    aws: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, final: bool
) -> None:
    # The handler took isWindowTerminatedEarly for an ordinary invocation: it returned the open windows
    # and dedup ids in a state Lambda does not carry on (when isFinalInvokeForWindow was not set with
    # it), and the continuation wrote its partial under the same writer (shard and Lambda window start),
    # over the earlier one: the events before the end were lost either way.
    p = Pipeline(ListSource([b"{}"]), name="early")
    p.parse(SCHEMA).dedup("event_id", ttl="1h").window(TumblingWindow("1m"), key="event_type").agg(
        agg.count()
    )
    module, database = deploy(aws, monkeypatch, tmp_path, p)

    state = invoke(module, range(0, 10), None)["state"]
    invoke(module, range(10, 20), state, final=final, early=True)  # the window ends early here
    invoke(module, range(15, 30), None, final=True)  # the same Lambda window, a fresh state; 15..19 again
    assert written(aws, database)["count"].tolist() == [
        30
    ]  # every event once: the repeats were dropped by dedup


def test_a_state_nearing_lambdas_limit_is_written_out_instead_of_returned(
    aws: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The handler returned whatever state it held: 1,000 distinct users of 1,000 characters made it over
    # 1 MB, past which Lambda ends the window early. It now writes the open windows (WINDOW_TABLE merges
    # the rest of each later) and the dedup ids (IDEMPOTENCY_TABLE) and returns a small state.
    p = Pipeline(ListSource([b"{}"]), name="full")
    schema = {**SCHEMA, "user_id": "string"}
    p.parse(schema).dedup("event_id", ttl="1h").window(TumblingWindow("1m"), key="event_type").agg(
        agg.count_distinct("user_id"), agg.count()
    )
    module, database = deploy(aws, monkeypatch, tmp_path, p)

    def batch(ids: range) -> list[tuple[str, bytes]]:
        return [
            (
                f"{i:05d}",
                json.dumps(
                    {
                        "event_id": f"e{i}",
                        "timestamp": "2024-01-01T00:00:01Z",
                        "event_type": "a",
                        "user_id": f"{i:04d}" + "u" * 996,
                    }
                ).encode(),
            )
            for i in ids
        ]

    first = module.handler(kinesis_event(batch(range(0, 1000)), None, False))
    assert first["batchItemFailures"] == []
    # it was 1,035,057 bytes: Lambda would have ended the window early
    assert len(json.dumps(first["state"])) < 1_000_000
    assert first["state"]["windows"] == {} and len(json.dumps(first["state"])) < module.STATE_FLUSH_BYTES
    last = module.handler(kinesis_event(batch(range(990, 1010)), first["state"], True))  # 990..999 again
    assert last["batchItemFailures"] == []
    got = written(aws, database)
    assert got[["count_distinct_user_id", "count"]].values.tolist() == [[1010, 1010]]
