"""A Lambda window keyed by an int64 (or bool) column verifies equal: Timestream holds the key as a
dimension, text by design, and ``verify`` reads it back as the key column's type."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.export import verify
from streamlab.export.aws_lambda import _results_from_timestream
from streamlab.testing import ListSource

BIG = 2**62 + 3


def test_dimensions_read_back_as_the_key_types() -> None:
    dims = [{"Name": "n", "Value": str(BIG)}, {"Name": "b", "Value": "True"}, {"Name": "s", "Value": "7"}]
    rec = {"Dimensions": dims, "Time": "0", "MeasureName": "window", "MeasureValues": []}
    got = _results_from_timestream([rec], ("n", "b", "s"), {"n": "int64", "b": "bool", "s": "string"})
    assert got[["n", "b", "s"]].to_dict("records") == [{"n": BIG, "b": True, "s": "7"}]


@pytest.mark.services
def test_an_int_keyed_window_on_lambda_verifies_equal(tmp_path: Path) -> None:
    pytest.importorskip("moto")
    lines = [b'{"timestamp": 1, "n": 7}', b'{"timestamp": 2, "n": 7}', b'{"timestamp": 3, "n": %d}' % BIG]
    p = Pipeline(ListSource([b"{}"]), name="intkey")
    p.parse({"timestamp": "timestamp", "n": "int64"}).window(TumblingWindow("1m"), key="n").agg(agg.count())
    report = verify(p, lines, "lambda", workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    assert sorted(report.exported["window"]["n"].tolist()) == [7, BIG]


def json_keyed() -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="jsonkey")
    p.parse({"timestamp": "timestamp", "tag": "json"}).window(TumblingWindow("1m"), key="tag").agg(
        agg.count()
    )
    return p


# 1 and "1" print alike (str): as dimensions they were one key, two writes of one Timestream record
TAGS = ["1", '"1"', "1.0", "true", '"true"', '"x"', "null", '{"a": 1}', "[1]", "1", '"1"']


@pytest.mark.services
def test_json_keys_that_print_alike_stay_apart_on_lambda(tmp_path: Path) -> None:
    """A ``json`` key's dimension is its JSON text, read back with ``json.loads``: verify reports equal
    (it raised AssertionError: "Timestream would reject a write of {'tag': '1'}")."""
    pytest.importorskip("moto")
    lines = [b'{"timestamp": %d, "tag": %s}' % (i + 1, t.encode()) for i, t in enumerate(TAGS)]
    report = verify(json_keyed(), lines, "lambda", workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    got = report.exported["window"]
    counted = dict(zip(map(repr, got["tag"]), got["count"], strict=True))
    assert counted == {"1": 2, "'1'": 2, "1.0": 1, "True": 1, "'true'": 1, "'x'": 1, "None": 1}
    assert not any("collide" in n for n in report.notes)


def test_json_key_dimensions_are_json_text(tmp_path: Path) -> None:
    from streamlab.export import to_lambda
    from streamlab.export.verify import load_module

    module = load_module(to_lambda(json_keyed(), tmp_path).module)
    window = {"window_start": 0, "window_end": 60_000_000_000, "count": 1}
    texts = [
        module.timestream_record({"tag": tag, **window})["Dimensions"][1]["Value"]
        for tag in (1, "1", 1.0, True)
    ]
    assert texts == ["1", '"1"', "1.0", "true"]
    dims = [{"Name": "tag", "Value": t} for t in texts]
    recs = [{"Dimensions": [d], "Time": "0", "MeasureName": "window", "MeasureValues": []} for d in dims]
    got = _results_from_timestream(recs, ("tag",), {"tag": "json"})["tag"].tolist()
    assert list(map(repr, got)) == ["1", "'1'", "1.0", "True"]


def test_writes_timestream_would_reject_are_reported_not_raised() -> None:
    """Given a list, the emulation keeps the first of two writes of one record and version (Timestream
    rejects the second) and says why, so that ``verify`` reports a difference instead of raising."""

    def rec(count: str) -> dict:
        dims = [{"Name": "tag", "Value": "1"}]
        values = [{"Name": "count", "Value": count, "Type": "BIGINT"}]
        return {"Dimensions": dims, "Time": "0", "MeasureName": "window", "MeasureValues": values}

    rejected: list[str] = []
    got = _results_from_timestream([rec("1"), rec("2")], ("tag",), {"tag": "string"}, rejected)
    assert got["count"].tolist() == [1]
    assert len(rejected) == 1 and rejected[0].startswith("Timestream would reject a write of {'tag': '1'}")


def deduped() -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="jsonids")
    events = p.parse({"timestamp": "timestamp", "tag": "json", "k": "string"}).dedup("tag")
    events.window(TumblingWindow("1m"), key="k").agg(agg.count())
    return p


@pytest.mark.services
def test_dedup_tells_json_ids_apart_on_lambda(tmp_path: Path) -> None:
    """``true``, ``1`` and ``1.0`` are three ids, as streamlab's dedup has them (the handler dropped the
    second and third as repeats of the first), also across invocations (Lambda's JSON state)."""
    pytest.importorskip("moto")
    tags = ["1", "1.0", "true", '"1"', "1", "true"]
    lines = [b'{"timestamp": %d, "tag": %s, "k": "a"}' % (i + 1, t.encode()) for i, t in enumerate(tags)]
    report = verify(deduped(), lines, "lambda", workdir=tmp_path, lambda_batch_size=2)
    assert report.equal, report.diff.to_string()
    assert report.exported["window"]["count"].tolist() == [4]


def test_typed_dedup_ids_survive_lambdas_json_state(tmp_path: Path) -> None:
    import json

    from streamlab.export import to_lambda
    from streamlab.export.verify import load_module

    module = load_module(to_lambda(deduped(), tmp_path).module)
    rule = module.load_dedup(None)
    ids = [module.typed_id(module.dedup_key(v)) for v in (1, 1.0, True, "1")]
    assert [rule.is_duplicate(i, 0) for i in ids] == [False] * 4
    again = module.load_dedup(json.loads(json.dumps(module.dump_dedup(rule))))
    assert [again.is_duplicate(i, 0) for i in ids] == [True] * 4
    assert again.is_duplicate(module.typed_id(module.dedup_key(0.5)), 0) is False


def test_dedup_tells_json_ids_apart_on_beam(tmp_path: Path) -> None:
    """The Beam export's dedup too: it kept ``1``, ``1.0`` and ``true`` as one id (a window after it
    counted 2 where streamlab counts 4)."""
    pytest.importorskip("apache_beam")
    tags = ["1", "1.0", "true", '"1"', "1", "true"]
    lines = [b'{"timestamp": %d, "tag": %s, "k": "a"}' % (i + 1, t.encode()) for i, t in enumerate(tags)]
    report = verify(deduped(), lines, "beam", workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    assert report.exported["window"]["count"].tolist() == [4]


def test_json_measures_read_back_as_json() -> None:
    values = [
        {"Name": "first_tag", "Value": "1", "Type": "VARCHAR"},
        {"Name": "s", "Value": "1", "Type": "VARCHAR"},
    ]
    rec = {"Dimensions": [], "Time": "0", "MeasureName": "window", "MeasureValues": values}
    got = _results_from_timestream([rec], (), {}, None, {"first_tag": "json", "s": "string"})
    assert got[["first_tag", "s"]].to_dict("records") == [{"first_tag": 1, "s": "1"}]


FIRST_LAST_TAGS = ["1", "1.0", '"1"', "null", "true", '{"a": [1, "2"]}', "9007199254740992"]


@pytest.mark.services
def test_first_and_last_of_a_json_field_on_lambda_are_json_values(tmp_path: Path) -> None:
    """A json measure is written as its JSON text and read back with ``json.loads``: it was ``str(value)``
    read back as text (``'1'`` where streamlab gives ``1``)."""
    pytest.importorskip("moto")
    p = Pipeline(ListSource([b"{}"]), name="firstlast")
    ev = p.parse({"timestamp": "timestamp", "tag": "json", "k": "string"})
    ev.window(TumblingWindow("1m"), key="k").agg(agg.first("tag"), agg.last("tag"))
    lines = [
        b'{"timestamp": %d, "k": "a", "tag": %s}' % (i + 1, t.encode()) for i, t in enumerate(FIRST_LAST_TAGS)
    ]
    lines += [b'{"timestamp": 8, "k": "b", "tag": {"a": [1, "2"]}}']
    report = verify(p, lines, "lambda", workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    got = report.exported["window"].sort_values("k")
    assert got["first_tag"].tolist() == [1, {"a": [1, "2"]}]
    assert got["last_tag"].tolist() == [9007199254740992, {"a": [1, "2"]}]


@pytest.mark.parametrize("key", ['{"a": 1}', "[1, 2]"])
def test_a_feature_keyed_by_an_object_sends_the_row_to_dead_letter_on_lambda(key: str) -> None:
    # the handler indexed its keyed state by the dict and raised "unhashable type": a poison batch that
    # Lambda retries for ever; streamlab sends such a row to the feature's dead letter
    from streamlab.detectors import TimeSinceLastFeature

    pytest.importorskip("moto")
    p = Pipeline(ListSource([b"{}"]), name="objkey")
    s = p.parse({"event_id": "string", "timestamp": "timestamp", "k": "json"})
    s = s.apply(TimeSinceLastFeature(key="k"))
    s.window(TumblingWindow("30s")).agg(agg.count())
    lines = [
        b'{"event_id": "e1", "timestamp": "2024-01-01T00:00:03Z", "k": ' + key.encode() + b"}",
        b'{"event_id": "e2", "timestamp": "2024-01-01T00:00:04Z", "k": "x"}',
    ]
    report = verify(p, lines, "lambda")
    assert report.equal, report
    assert report.counts["time_since_last_feature.dead_letter"] == {"streamlab": 1, "lambda": 1}


def json_velocity() -> Pipeline:
    from streamlab.detectors import VelocityFeature

    p = Pipeline(ListSource([b"{}"]), name="jsonvelocity")
    p.parse({"timestamp": "timestamp", "tag": "json"}).apply(
        VelocityFeature("tag", window="1h"), step_id="velocity"
    ).window(TumblingWindow("1h"), key="tag").agg(agg.count(), agg.max("count_1h"))
    return p


@pytest.mark.services
@pytest.mark.parametrize("batch_size", [4, 100])
def test_a_json_keyed_feature_keeps_true_one_and_one_point_zero_apart_on_lambda(
    batch_size: int, tmp_path: Path
) -> None:
    """The handler's per-key DynamoDB state of a feature keyed by a json field: true, 1 and 1.0 are three
    keys within an invocation too (its in-memory machines were keyed by Python's equality, so 1 went on
    with true's state and was saved in true's item), and verify reports equal."""
    pytest.importorskip("moto")
    # in batches of 4 the second invocation starts with 1, after one that started with true
    tags = ["true", "1", "1.0", '"1"', "1", "true", "1.0", "true", "1.0", "1"]
    lines = [b'{"timestamp": %d, "tag": %s}' % (i + 1, t.encode()) for i, t in enumerate(tags)]
    report = verify(json_velocity(), lines, "lambda", workdir=tmp_path, lambda_batch_size=batch_size)
    assert report.equal, report.diff.to_string()
    got = report.exported["window"]
    counted = dict(zip(map(repr, got["tag"]), got["max_count_1h"], strict=True))
    assert counted == {"True": 3, "1": 3, "1.0": 3, "'1'": 1}


def float_keyed(kind: str) -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="floatkey")
    p.parse({"event_id": "string", "timestamp": "timestamp", "k": kind}).window(
        TumblingWindow("10s"), key="k"
    ).agg(agg.count())
    return p


@pytest.mark.services
@pytest.mark.parametrize(
    ("kind", "values", "expected"),
    [
        # +/-infinity of a json key were both the dimension "null" (streamlab's encoding of infinities):
        # one Timestream record written twice, and read back as the key None
        ("json", ["1e400", "-1e400", "-1e400"], {float("inf"): 1, float("-inf"): 2}),
        # 0.0 and -0.0 are one key in streamlab; the handler keyed them "0.0" and "-0.0", two windows
        ("float64", ["0.0", "-0.0", "-0.0"], {0.0: 3}),
        ("json", ["0.0", "-0.0", '"0.0"'], {0.0: 2, "0.0": 1}),
    ],
)
def test_float_keys_are_keyed_by_value_on_lambda(
    kind: str, values: list[str], expected: dict[float, int], tmp_path: Path
) -> None:
    lines = [
        b'{"event_id": "e%d", "timestamp": "2024-01-01T00:00:0%dZ", "k": %s}' % (i, i + 1, v.encode())
        for i, v in enumerate(values)
    ]
    report = verify(float_keyed(kind), lines, "lambda", workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    got = report.exported["window"]
    assert dict(zip(got["k"], got["count"], strict=True)) == expected
    assert not any("collide" in n for n in report.notes), report.notes


def test_float_key_dimensions_are_key_texts(tmp_path: Path) -> None:
    from streamlab.export import to_lambda
    from streamlab.export.verify import load_module

    window = {"window_start": 0, "window_end": 10_000_000_000, "count": 1}
    texts = {}
    for kind in ("json", "float64"):
        module = load_module(to_lambda(float_keyed(kind), tmp_path / kind).module)
        texts[kind] = [
            module.timestream_record({"k": k, **window})["Dimensions"][1]["Value"]
            for k in (float("inf"), float("-inf"), -0.0, 0.0)
        ]
    # a float64 key's dimension is its key text (84b2bc4: a whole number as its integer, in every batch)
    assert texts == {
        "json": ["Infinity", "-Infinity", "0.0", "0.0"],
        "float64": ["inf", "-inf", "0", "0"],
    }
