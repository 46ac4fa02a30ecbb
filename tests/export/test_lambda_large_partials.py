"""Lambda export: a window's partial aggregate over DynamoDB's 400 KB item limit does not stop the shard.

With WINDOW_TABLE the handler stores each writer's partial aggregate of a window in DynamoDB. A partial
over 400 KB (a count_distinct of many values) failed PutItem ("Item size has exceeded the maximum allowed
size") on every retry of the batch; it is now stored in pieces, checked by a digest when read.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.export import to_lambda, verify
from streamlab.export.aws_lambda import kinesis_event
from streamlab.export.verify import load_module
from streamlab.testing import ListSource

from ._lambda_env import handler_env

pytest.importorskip("moto")

pytestmark = pytest.mark.services

SCHEMA = {"event_id": "string", "timestamp": "timestamp", "event_type": "string", "user_id": "string"}


def event(i: int, user: str, second: int = 1) -> bytes:
    stamp = f"2024-01-01T00:00:{second:02d}Z"
    return json.dumps({"event_id": f"e{i}", "timestamp": stamp, "event_type": "a", "user_id": user}).encode()


def distinct_users() -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="large")
    p.parse(SCHEMA).window(TumblingWindow("10s"), key="event_type").agg(
        agg.count_distinct("user_id"), agg.count()
    )
    return p


def test_a_partial_over_the_item_limit_is_stored_and_merged(tmp_path: Path) -> None:
    # 500 distinct ids of 1,000 characters: the window's partial is about 500 KB of JSON
    lines = [event(i, f"{i:04d}" + "u" * 996) for i in range(500)] + [event(500, "0001" + "u" * 996, 2)]
    report = verify(distinct_users(), lines, "lambda", workdir=tmp_path, lambda_batch_size=200)
    assert report.equal, report.diff.to_string()
    [row] = report.exported["window"].to_dict("records")
    assert (row["count_distinct_user_id"], row["count"]) == (500, 501)


def test_two_shards_large_partials_of_one_window_merge(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.timestreamwrite.models import timestreamwrite_backends

    from streamlab.export.aws_lambda import _results_from_timestream, create_window_table
    from streamlab.local import LocalAWS

    tag = uuid.uuid4().hex[:8]
    with LocalAWS() as aws:
        ts = aws.client("timestream-write")
        ts.create_database(DatabaseName=f"large_{tag}")
        ts.create_table(DatabaseName=f"large_{tag}", TableName="window")
        table = create_window_table(aws.client("dynamodb"), f"large-{tag}")
        handler_env(
            aws,
            monkeypatch,
            TIMESTREAM_DATABASE=f"large_{tag}",
            TIMESTREAM_TABLE="window",
            WINDOW_TABLE=table,
        )
        module = load_module(to_lambda(distinct_users(), tmp_path).module)

        def final_invocation(shard: str, users: range) -> dict[str, Any]:
            batch = [(f"{i:05d}", event(i, f"{i:04d}" + "u" * 996)) for i in users]
            e = kinesis_event(batch, None, True)
            e["shardId"] = shard
            return module.handler(e)

        # the users 300..449 are seen by both shards: 750 distinct, in partials of about 450 KB each
        assert final_invocation("shardId-000000000000", range(0, 450))["batchItemFailures"] == []
        assert final_invocation("shardId-000000000001", range(300, 750))["batchItemFailures"] == []
        stored = timestreamwrite_backends[DEFAULT_ACCOUNT_ID][aws.region].describe_database(f"large_{tag}")
        got = _results_from_timestream(list(stored.describe_table("window").records), ("event_type",))
        items = aws.client("dynamodb").scan(TableName=table)["Items"]
    assert got["count_distinct_user_id"].tolist() == [750] and got["count"].tolist() == [900]
    assert max(len(i["acc"]["S"]) for i in items if "acc" in i) <= module.PART_MAX_CHARS


def test_a_writers_partial_being_rewritten_is_left_out_until_its_own_merge(tmp_path: Path) -> None:
    module = load_module(to_lambda(distinct_users(), tmp_path).module)
    whole = json.dumps({"n": "x" * 10})
    half = len(whole) // 2
    digest = hashlib.sha256(whole.encode()).hexdigest()

    def head(writer: str, piece: str) -> dict[str, Any]:
        part = {"S": writer}
        return {
            "slot": {"S": "w"},
            "part": part,
            "acc": {"S": piece},
            "pieces": {"N": "2"},
            "digest": {"S": digest},
        }

    items = [
        head("a", whole[:half]),
        {"slot": {"S": "w"}, "part": {"S": "a#1"}, "acc": {"S": whole[half:]}},
        head("b", whole[:half]),
        {"slot": {"S": "w"}, "part": {"S": "b#1"}, "acc": {"S": "torn"}},  # b's retry is rewriting it
        {"slot": {"S": "w"}, "part": {"S": "old"}, "acc": {"S": "[1]"}},  # an item an earlier export wrote
    ]
    assert module.read_partials(items) == [whole, "[1]"]
