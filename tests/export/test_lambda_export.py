"""Lambda export: the handler, driven like a Kinesis event-source mapping against moto, matches streamlab."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings

from streamlab import Pipeline, SessionWindow, SlidingWindow, TumblingWindow, agg
from streamlab.errors import PipelineConfigError
from streamlab.export import to_lambda, verify
from streamlab.export.aws_lambda import kinesis_event
from streamlab.export.verify import load_module
from streamlab.testing import ListSource

from ._lambda_env import dedup_handler_env, handler_env
from ._samples import BASE_MS, FIXED_SAMPLE, SCHEMA, record, samples
from ._tf import block, parse

pytest.importorskip("moto")


def dedup_counts(name: str = "kinesis_counts") -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name=name)
    events = p.parse(SCHEMA).dedup("event_id", ttl="10m")
    events.window(TumblingWindow("1m"), key="event_type", delay="5s").agg(
        agg.count(), agg.sum("amount"), agg.mean("amount"), agg.last("user_id")
    )
    return p


@pytest.mark.services
def test_fixed_sample_batches_retries_and_poison_record(tmp_path: Path) -> None:
    report = verify(dedup_counts(), FIXED_SAMPLE, "lambda", workdir=tmp_path, lambda_batch_size=3)
    assert report.equal, report.diff
    assert report.counts["window"] == {"streamlab": 5, "lambda": 5}
    assert report.counts["window.late"] == {"streamlab": 2, "lambda": 2}
    assert report.counts["parse.dead_letter"] == {"streamlab": 2, "lambda": 2}
    dead = report.exported["parse.dead_letter"]
    assert set(dead["raw"]) == {"not json", '{"event_id": "x", "event_type": "click", "user_id": "u1"}'}
    assert dead["sequenceNumber"].str.len().eq(20).all()


@pytest.mark.services
@pytest.mark.slow
@settings(max_examples=4, deadline=None)
@given(sample=samples())
def test_round_trip_lambda_equals_streamlab_and_beam(
    sample: list[bytes], tmp_path_factory: pytest.TempPathFactory
) -> None:
    p = Pipeline(ListSource([b"{}"]), name="lambda_matrix")
    p.parse(SCHEMA).dedup("event_id", ttl="1m").window(
        TumblingWindow("30s"), key=["event_type", "user_id"], delay="2s", lateness="10s"
    ).agg(
        agg.count(), agg.min("amount"), agg.max("amount"), agg.count_distinct("event_id"), agg.first("amount")
    )
    report = verify(p, sample, "lambda", workdir=tmp_path_factory.mktemp("lambda"), lambda_batch_size=4)
    assert report.equal, report.diff.to_string()
    beam = verify(p, sample, "beam", workdir=tmp_path_factory.mktemp("beam"))
    assert beam.equal, beam.diff.to_string()  # local == Beam == Lambda on the same records


def test_poison_record_without_a_queue_is_reported_not_acknowledged(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("DEAD_LETTER_QUEUE_URL", raising=False)
    module = load_module(to_lambda(dedup_counts(), tmp_path).module)
    batch = [
        ("001", record(1, BASE_MS + 1_000, "click", "u1", 1.0)),
        ("002", b"{broken"),
        ("003", record(2, BASE_MS + 2_000, "click", "u2", 2.0)),
    ]
    response = module.handler(kinesis_event(batch, None, False))
    # a naive handler would return [] here and the broken record (and what follows) would be gone
    assert response["batchItemFailures"] == [{"itemIdentifier": "002"}]
    windows = response["state"]["windows"]
    assert len(windows) == 1 and next(iter(windows.values()))[0] == 1  # only record 001 is in the state
    json.dumps(response)  # Lambda needs a JSON response


@pytest.mark.services
def test_a_record_without_data_is_a_dead_letter_not_a_failed_batch(tmp_path: Path, monkeypatch) -> None:
    """A Kinesis record whose data is null or absent (an event of a record without a value) and an empty
    one, in a batch with good records: the handler raised TypeError (base64 of None, then parse_record's
    len(None)), failing the whole batch, which Lambda redelivers forever. Now it is the parse step's dead
    letter with streamlab's reason and no raw value, and the other records are processed."""
    import uuid

    from streamlab.local import LocalAWS

    from ._lambda_env import handler_env

    module = load_module(to_lambda(dedup_counts(), tmp_path).module)
    batch = [
        ("001", record(1, BASE_MS + 1_000, "click", "u1", 1.0)),
        ("002", b""),
        ("003", b""),
        ("004", b""),
        ("005", record(2, BASE_MS + 2_000, "click", "u2", 2.0)),
    ]
    event = kinesis_event(batch, None, False)
    event["Records"][1]["kinesis"]["data"] = None
    del event["Records"][2]["kinesis"]["data"]
    with LocalAWS() as aws:
        handler_env(aws, monkeypatch)
        sqs = aws.client("sqs")
        queue = sqs.create_queue(QueueName=f"dead-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", queue)
        response = module.handler(event)
        got = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    assert response["batchItemFailures"] == []
    windows = response["state"]["windows"]
    assert len(windows) == 1 and next(iter(windows.values()))[0] == 2  # records 001 and 005
    dead = sorted((json.loads(m["Body"]) for m in got), key=lambda d: d["sequenceNumber"])
    assert [(d["sequenceNumber"], d["raw"], d["reason"], d["step_id"]) for d in dead] == [
        ("002", None, "null value (tombstone)", "parse"),
        ("003", None, "null value (tombstone)", "parse"),
        ("004", "", "empty record", "parse"),
    ]


def test_handler_decodes_base64_and_keeps_state_across_invocations(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("DEAD_LETTER_QUEUE_URL", "unused")
    module = load_module(to_lambda(dedup_counts(), tmp_path).module)
    first = module.handler(kinesis_event([("1", record(1, BASE_MS, "view", "u1", 2.0))], None, False))
    again = module.handler(
        kinesis_event([("2", record(1, BASE_MS, "view", "u1", 2.0))], first["state"], False)
    )
    assert again["state"]["counts"] == {"dedup.duplicates": 1}  # the repeat did not count twice
    assert again["batchItemFailures"] == []
    assert (
        base64.b64decode(kinesis_event([("1", b"x")], None, False)["Records"][0]["kinesis"]["data"]) == b"x"
    )


@pytest.mark.parametrize(
    ("window", "message"),
    [
        (SessionWindow("5m"), "session windows do not map to Lambda's tumbling-window state"),
        (SlidingWindow("5m", every="1m"), "sliding windows do not map"),
    ],
)
def test_unsupported_windows_fail_export_naming_the_step(tmp_path: Path, window, message: str) -> None:
    p = Pipeline(ListSource([b"{}"]), name="nope")
    p.parse(SCHEMA).window(window, key="user_id", step_id="per_user").agg(agg.count())
    with pytest.raises(
        PipelineConfigError, match=rf"step 'per_user' \(window\): cannot export to AWS Lambda: {message}"
    ):
        to_lambda(p, tmp_path)


def test_joins_and_branches_fail_export(tmp_path: Path) -> None:
    p = Pipeline(ListSource([b"{}"]), name="joined")
    a = p.parse(SCHEMA)
    a.join_interval(a, on="user_id", lower="-1m", upper="1m", step_id="self_join")
    with pytest.raises(PipelineConfigError, match="step 'self_join' .*interval joins"):
        to_lambda(p, tmp_path)
    q = Pipeline(ListSource([b"{}"]), name="branches")
    e = q.parse(SCHEMA)
    e.window(TumblingWindow("1m")).agg(agg.count())
    e.window(TumblingWindow("5m")).agg(agg.count())
    with pytest.raises(PipelineConfigError, match="step 'parse' .*feeds 2 steps"):
        to_lambda(q, tmp_path)


def test_terraform_event_source_mapping_and_least_privilege(tmp_path: Path) -> None:
    tf = parse(to_lambda(dedup_counts(), tmp_path).read("main.tf"))
    res = tf["resource"]
    esm = res[("aws_lambda_event_source_mapping", "events")]
    assert esm["function_response_types"] == ["ReportBatchItemFailures"]
    assert esm["bisect_batch_on_function_error"] is True
    for setting in ("batch_size", "maximum_batching_window_in_seconds", "maximum_retry_attempts"):
        assert esm[setting] == f"${{var.{setting}}}"
    assert esm["tumbling_window_in_seconds"] == "${var.tumbling_window_in_seconds}"
    assert int(tf["variable"]["tumbling_window_in_seconds"]["default"]) >= 65  # window + delay fit in it
    on_failure = block(block(esm, "destination_config"), "on_failure")
    assert on_failure["destination_arn"] == "${aws_sqs_queue.on_failure.arn}"
    assert ("aws_kinesis_stream", "events") in res and ("aws_timestreamwrite_table", "results") in res
    statements = tf["data"][("aws_iam_policy_document", "handler")]["statement"]
    for st in statements:
        assert all(not a.endswith(":*") and a != "*" for a in st["actions"])
        if st["resources"] == ["*"]:
            assert st["actions"] in (["kinesis:ListStreams"], ["timestream:DescribeEndpoints"])
    fn = res[("aws_lambda_function", "handler")]
    env = block(fn, "environment")["variables"]
    assert set(env) == {
        "TIMESTREAM_DATABASE",
        "TIMESTREAM_TABLE",
        "DEAD_LETTER_QUEUE_URL",
        "DEAD_LETTER_BUCKET",
        "IDEMPOTENCY_TABLE",
        "WINDOW_TABLE",
    }
    # oversized dead letters: a private bucket, written (only) by the handler, expiring with the queue
    assert env["DEAD_LETTER_BUCKET"] == "${aws_s3_bucket.dead_letters.id}"
    assert ("aws_s3_bucket", "dead_letters") in res
    assert res[("aws_s3_bucket_public_access_block", "dead_letters")]["block_public_policy"] is True
    rule = block(res[("aws_s3_bucket_lifecycle_configuration", "dead_letters")], "rule")
    retention = int(res[("aws_sqs_queue", "dead_letter")]["message_retention_seconds"])
    assert int(block(rule, "expiration")["days"]) * 86_400 == retention
    by_sid = {st["sid"]: st for st in statements}
    assert by_sid["OversizedSideOutputs"]["actions"] == ["s3:PutObject"]
    assert by_sid["OversizedSideOutputs"]["resources"] == ["${aws_s3_bucket.dead_letters.arn}/*"]
    assert by_sid["DeadLetterLimit"]["actions"] == ["sqs:GetQueueAttributes"]
    assert by_sid["DeadLetterLimit"]["resources"] == ["${aws_sqs_queue.dead_letter.arn}"]
    windows = res[("aws_dynamodb_table", "windows")]
    assert (windows["hash_key"], windows["range_key"]) == ("slot", "part")
    assert block(windows, "ttl")["attribute_name"] == "expires_at"
    ids = res[("aws_dynamodb_table", "idempotency")]
    assert ids["hash_key"] == "event_id" and block(ids, "ttl")["attribute_name"] == "expires_at"
    no_dedup = Pipeline(ListSource([b"{}"]), name="plain")
    no_dedup.parse(SCHEMA).window(TumblingWindow("1m")).agg(agg.count())
    plain = parse(to_lambda(no_dedup, tmp_path / "plain").read("main.tf"))
    assert ("aws_dynamodb_table", "idempotency") not in plain["resource"]


@pytest.mark.services
def test_idempotency_table_carries_ids_across_lambda_windows(tmp_path: Path, monkeypatch) -> None:
    from streamlab.local import LocalAWS

    with LocalAWS() as aws:
        dynamodb = dedup_handler_env(aws, monkeypatch, "event-ids", "ids")
        module = load_module(to_lambda(dedup_counts(), tmp_path).module)
        first = record(1, BASE_MS + 1_000, "click", "u1", 1.0)
        end = module.handler(kinesis_event([("1", first)], None, True))  # window 1 ends
        assert end["state"]["windows"] == {}
        item = dynamodb.get_item(TableName="event-ids", Key={"event_id": {"S": '["e1"]'}})["Item"]
        assert int(item["first_seen_ns"]["N"]) == (BASE_MS + 1_000) * 1_000_000
        assert int(item["expires_at"]["N"]) == (BASE_MS + 1_000) // 1_000 + 600
        module._remembered.clear()  # a fresh container for the next Lambda window
        again = module.handler(kinesis_event([("2", first)], None, False))  # redelivered in window 2
        assert again["state"]["counts"] == {"dedup.duplicates": 1} and again["state"]["windows"] == {}


def _invoke(module, records, state, *, final: bool, lambda_window: str, shard: str) -> dict:
    event = kinesis_event(records, state, final)
    event["window"] = {"start": lambda_window, "end": lambda_window}
    event["shardId"] = shard
    return module.handler(event)


@pytest.mark.services
def test_a_window_split_across_invocations_lambda_windows_and_shards_is_written_once(
    tmp_path: Path, monkeypatch
) -> None:
    """One event-time window gets events from two Lambda windows of one shard and from a second shard;
    one invocation is retried. Timestream's record with the highest version holds every event, once."""
    from streamlab.export.aws_lambda import _results_from_timestream, create_window_table
    from streamlab.local import LocalAWS

    p = Pipeline(ListSource([b"{}"]), name="split")
    p.parse(SCHEMA).window(TumblingWindow("1m"), key="event_type", delay="5s").agg(
        agg.count(), agg.sum("amount"), agg.mean("amount"), agg.last("user_id")
    )
    events = [record(i, BASE_MS + 1_000 * i, "click", f"u{i}", float(i)) for i in range(1, 6)]
    closer = record(9, BASE_MS + 300_000, "view", "u9", None)  # moves the watermark past the window
    with LocalAWS() as aws:
        ts = aws.client("timestream-write")
        ts.create_database(DatabaseName="split")
        ts.create_table(DatabaseName="split", TableName="window")
        table = create_window_table(aws.client("dynamodb"), "split-windows")
        handler_env(
            aws, monkeypatch, TIMESTREAM_DATABASE="split", TIMESTREAM_TABLE="window", WINDOW_TABLE=table
        )
        module = load_module(to_lambda(p, tmp_path).module)
        a, b = "shardId-000000000000", "shardId-000000000001"
        l1, l2 = "2024-01-01T00:00:00Z", "2024-01-01T00:15:00Z"
        one = _invoke(
            module, [("1", events[0]), ("2", events[1])], None, final=False, lambda_window=l1, shard=a
        )
        _invoke(module, [], one["state"], final=True, lambda_window=l1, shard=a)  # writes the open window
        second = [("3", events[2]), ("4", closer)]
        _invoke(module, second, None, final=False, lambda_window=l2, shard=a)  # closes it by watermark
        _invoke(module, second, None, final=False, lambda_window=l2, shard=a)  # the same batch, retried
        other = _invoke(
            module, [("5", events[3]), ("6", events[4])], None, final=False, lambda_window=l1, shard=b
        )
        _invoke(module, [], other["state"], final=True, lambda_window=l1, shard=b)
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.timestreamwrite.models import timestreamwrite_backends

        stored = timestreamwrite_backends[DEFAULT_ACCOUNT_ID][aws.region].describe_database("split")
        written = list(stored.describe_table("window").records)
    assert len(written) >= 4  # the window was written by four invocations, with rising versions
    got = _results_from_timestream(written, ("event_type",)).set_index("event_type")
    local = Pipeline(ListSource([*events, closer]), name="split")
    local.parse(SCHEMA).window(TumblingWindow("1m"), key="event_type", delay="5s").agg(
        agg.count(), agg.sum("amount"), agg.mean("amount"), agg.last("user_id")
    )
    expected = local.run()["window"].set_index("event_type")
    click = got.loc["click"]
    assert click["count"] == expected.loc["click", "count"] == 5
    assert click["sum_amount"] == expected.loc["click", "sum_amount"] == 15.0
    assert click["mean_amount"] == expected.loc["click", "mean_amount"]
    assert click["last_user_id"] == expected.loc["click", "last_user_id"] == "u5"


def test_timestream_emulation_rejects_two_values_under_one_version() -> None:
    from streamlab.export.aws_lambda import _results_from_timestream

    def rec(count: str, version: int) -> dict:
        return {
            "Dimensions": [{"Name": "event_type", "Value": "click"}],
            "MeasureName": "window",
            "MeasureValues": [{"Name": "count", "Value": count, "Type": "BIGINT"}],
            "Time": "1000",
            "Version": version,
        }

    assert _results_from_timestream([rec("2", 2), rec("1", 1)], ("event_type",))["count"].tolist() == [2]
    with pytest.raises(AssertionError, match="would reject"):
        _results_from_timestream([rec("2", 1), rec("3", 1)], ("event_type",))


def every_aggregator(name: str = "every_aggregator") -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name=name)
    p.parse(SCHEMA).window(TumblingWindow("1m"), key="event_type", delay="5s").agg(
        agg.count(),
        agg.count("amount"),
        agg.sum("amount"),
        agg.mean("amount"),
        agg.min("amount"),
        agg.max("amount"),
        agg.count_distinct("user_id"),
        agg.quantile("amount", 0.5),
        agg.first("amount"),
        agg.last("user_id"),
    )
    return p


@pytest.mark.services
def test_every_aggregator_as_deployed_on_the_fixed_sample(tmp_path: Path) -> None:
    """Every built-in aggregator through the handler as deployed (batches of 2: a window's accumulators
    cross invocations); tests/export/test_agg_parity.py compares them row by row under hypothesis."""
    report = verify(every_aggregator(), FIXED_SAMPLE, "lambda", workdir=tmp_path, lambda_batch_size=2)
    assert report.equal, report.diff
    assert report.counts["window"] == {"streamlab": 5, "lambda": 5}


@pytest.mark.services
@pytest.mark.slow
def test_verify_handles_ten_thousand_records_within_a_minute(tmp_path: Path) -> None:
    """As the Beam test: CPU seconds of this process (moto's server is a thread of it) for 10,000 records
    with repeats and late rows, in invocations of verify's default batch size."""
    import random
    import resource

    rng = random.Random(7)
    lines = []
    for i in range(10_000):
        t = BASE_MS + i * 300 + rng.randint(-3_000, 3_000)  # disorder beyond the delay: late rows
        lines.append(record(i, t, rng.choice(("click", "view", "buy")), "u1", 1.0))
        if rng.random() < 0.01:
            lines.append(lines[-1])
    p = Pipeline(ListSource([b"{}"]), name="ten_thousand")
    p.parse(SCHEMA).dedup("event_id", ttl="10m").window(
        TumblingWindow("1m"), key="event_type", delay="2s"
    ).agg(agg.count())

    def cpu() -> float:
        own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime

    started = cpu()
    report = verify(p, lines, "lambda", workdir=tmp_path)
    spent = cpu() - started
    assert report.equal, report.diff
    assert report.counts["window.late"]["lambda"] > 0
    assert spent < 60, f"verify(target='lambda') took {spent:.0f} CPU seconds for {len(lines)} records"


@pytest.mark.parametrize(("window", "words"), [("500us", "size='500us'"), ("1s", None)])
def test_lambda_refuses_windows_finer_than_timestreams_milliseconds(
    window: str, words: str | None, tmp_path: Path
) -> None:
    # two windows within one millisecond were written to the same Timestream time: one was lost
    from streamlab import PipelineConfigError, TumblingWindow, agg
    from streamlab.export import to_lambda

    p = Pipeline(ListSource([b"{}"]), name="fine")
    p.parse({"event_id": "string", "timestamp": "timestamp"}).window(TumblingWindow(window), step_id="w").agg(
        agg.count()
    )
    if words is None:
        to_lambda(p, tmp_path)
        return
    with pytest.raises(PipelineConfigError, match="step 'w'") as e:
        to_lambda(p, tmp_path)
    assert words in str(e.value) and "Timestream keeps times in milliseconds" in str(e.value)


@pytest.mark.services
def test_first_and_last_of_a_time_are_times_compared_at_the_millisecond(tmp_path: Path) -> None:
    """``first``/``last`` of a timestamp read back as times (they were VARCHAR text, always different);
    they are TIMESTAMP measures in epoch milliseconds (as TimestreamSink writes them), so verify compares
    them there and says so in a note; a late row keeps the handler's microseconds (a row at
    ``...01.123456789Z`` was a difference); the notes are about this pipeline: no dedup, no keys."""
    p = Pipeline(ListSource([b"{}"]), name="first_time")
    p.parse({"event_id": "string", "timestamp": "timestamp"}).window(TumblingWindow("10s")).agg(
        agg.count(), agg.first("timestamp", name="first_ts"), agg.last("timestamp", name="last_ts")
    )
    lines = [
        b'{"event_id": "e1", "timestamp": "2024-01-01T00:00:03.000001999Z"}',
        b'{"event_id": "e2", "timestamp": "2024-01-01T00:00:30Z"}',
        b'{"event_id": "e3", "timestamp": "2024-01-01T00:00:01.123456789Z"}',  # late
    ]
    report = verify(p, lines, "lambda", workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    got = report.exported["window"].sort_values("window_start")
    assert got["first_ts"].tolist() == [
        pd.Timestamp("2024-01-01T00:00:03Z"),  # .000001999: below the millisecond, floored
        pd.Timestamp("2024-01-01T00:00:30Z"),
    ]
    assert report.counts["window.late"] == {"streamlab": 1, "lambda": 1}
    finer = [n for n in report.notes if "digits below the microsecond" in n]
    assert [n.split(":")[0] for n in finer] == ["window.late"], report.notes
    assert not any("dedup" in n or "duplicates" in n or "text by design" in n for n in report.notes), (
        report.notes
    )
    assert any("first_ts, last_ts (times)" in n for n in report.notes), report.notes


@pytest.mark.services
def test_notes_name_the_dedup_and_the_keys_verified(tmp_path: Path) -> None:
    report = verify(dedup_counts("noted"), FIXED_SAMPLE, "lambda", workdir=tmp_path)
    assert any(n.startswith("dedup: the handler keeps the first id") for n in report.notes), report.notes
    assert any(n.startswith("window: the keys event_type are Timestream dimensions") for n in report.notes)


@pytest.mark.parametrize(
    ("key", "named"), [("pipeline", "the dimension naming the pipeline"), ("window_end", "the measure")]
)
def test_a_key_named_like_a_dimension_or_measure_is_refused(key: str, named: str, tmp_path: Path) -> None:
    """The handler wrote two dimensions named ``pipeline`` (the pipeline's, the key's): Timestream needs
    distinct names in a record."""
    p = Pipeline(ListSource([b"{}"]), name="named")
    p.parse({"event_id": "string", "timestamp": "timestamp", key: "string"}).window(
        TumblingWindow("10s"), key=key, step_id="w"
    ).agg(agg.count())
    with pytest.raises(PipelineConfigError, match="step 'w'") as e:
        to_lambda(p, tmp_path)
    assert f"the window key column {key!r} would be a Timestream dimension named like {named}" in str(e.value)
    assert f".select(..., {key}_key={key!r})" in str(e.value)
