"""Malformed input never crashes a pipeline and never vanishes: it lands in dead letter with a reason."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamlab import ListSink, ListSource, ManualClock, Pipeline, TumblingWindow, agg

SCHEMA = {
    "event_id": "string",
    "event_type": "category",
    "timestamp": "timestamp",
    "amount": {"type": "float64", "path": "properties.amount"},
}


def good(i: int) -> bytes:
    return json.dumps(
        {
            "event_id": f"e{i}",
            "event_type": "click",
            "user_id": "u1",
            "timestamp": f"2024-01-01T00:00:{i % 60:02d}Z",
            "properties": {"amount": i},
        }
    ).encode()


BAD = {
    b"{not json": "invalid JSON",
    b'{"event_id": "x", "timestamp": "yesterday"}': "expected an ISO-8601 timestamp",
    b'{"event_id": "x"}': "missing required field 'timestamp'",
    b'{"event_id": "x", "timestamp": ""}': "missing required field 'timestamp'",
    b'{"event_id": 5, "timestamp": "2024-01-01T00:00:00Z"}': "field 'event_id': expected string, got int",
    b'{"event_id": "x", "timestamp": "2024-01-01T00:00:00Z", "properties": {"amount": "lots"}}': "field 'amount': expected float64",
    b'{"event_id": "x", "timestamp": "2024-01-01T00:00:00Z", "properties": 7}': "expected an object",
    b"[1, 2, 3]": "expected a JSON object, got list",
    b"\xff\xfe garbage": "invalid UTF-8",
    b'{"event_id": "caf\xe9", "timestamp": "2024-01-01T00:00:00Z"}': "invalid UTF-8",
    b'{"event_id": "x", "timestamp": "2024-01-01T00:00:00Z", "note": "\xe9"}': "invalid UTF-8",
    b"": "empty record",
    b'{"event_id": "x", "timestamp": 9223372036855}': "expected an ISO-8601 timestamp",
    # the reason says why a number or a valid ISO text is no time here
    b'{"event_id": "x", "timestamp": 1700000000123456}': "read as epoch seconds, up to 9,223,372,036, or milliseconds",
    b'{"event_id": "x", "timestamp": "9999-12-31T00:00:00Z"}': "out of the range 64-bit nanoseconds hold",
    b'{"event_id": "x", "timestamp": "now"}': "a relative time is not an event time",
    b'{"event_id": "x", "timestamp": "2024-01-01T00:00:00Z", "properties": {"amount": NaN}}': "invalid JSON",
    b'{"event_id": "a"}\n{"event_id": "b"}': "invalid JSON",
    b'{"event_id": "x", "timestamp": "2024-01-01T00:00:00Z", "pad": "'
    + b"x" * 3000
    + b'"}': "max_record_bytes",
}


def run_parse(records, batch_size=None):
    p = Pipeline(ListSource(records, batch_size=batch_size))
    parsed = p.parse(SCHEMA, max_record_bytes=2000)
    ok, dead = ListSink(), ListSink()
    parsed.to(ok)
    parsed.dead_letter.to(dead)
    p.run(clock=ManualClock(0))
    return ok.frame(), dead.frame()


def test_every_kind_of_bad_record_lands_in_dead_letter_with_its_reason():
    records = [good(0), *BAD, good(1)]
    ok, dead = run_parse(records)
    assert ok["event_id"].tolist() == ["e0", "e1"]
    assert len(dead) == len(BAD)
    for raw, reason in zip(dead["raw"], dead["reason"]):
        assert BAD[raw] in reason, (raw, reason)
    assert set(dead["step_id"]) == {"parse"}


def test_typed_columns():
    ok, _ = run_parse([good(3)])
    assert str(ok["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert isinstance(ok["event_type"].dtype, pd.CategoricalDtype)
    assert ok["amount"].tolist() == [3.0]


def test_epoch_and_offset_timestamps_take_the_checked_path_and_agree():
    recs = [
        b'{"event_id": "a", "timestamp": 1704067200}',
        b'{"event_id": "b", "timestamp": "2024-01-01T02:00:00+02:00"}',
    ]
    ok, dead = run_parse(recs)
    assert dead.empty
    assert ok["timestamp"].tolist() == [pd.Timestamp("2024-01-01T00:00:00Z")] * 2


@given(
    st.lists(st.one_of(st.integers(0, 500).map(good), st.sampled_from(sorted(BAD))), min_size=1, max_size=80),
    st.sampled_from([1, 3, 17, None]),
)
def test_batching_never_changes_what_is_accepted(records, batch_size):
    ok_a, dead_a = run_parse(records, batch_size=None)
    ok_b, dead_b = run_parse(records, batch_size=batch_size)
    assert ok_a.equals(ok_b) or (ok_a.empty and ok_b.empty)
    assert len(ok_a) + len(dead_a) == len(records)
    assert (dead_a.empty and dead_b.empty) or dead_a[["raw", "reason"]].equals(dead_b[["raw", "reason"]])


def test_pipeline_keeps_running_after_bad_input_and_metadata_travels_to_dead_letter():
    records = [good(i) if i % 10 else b"oops" for i in range(200)]
    frame = pd.DataFrame({"value": records, "offset": np.arange(200)})
    p = Pipeline(ListSource(frame, batch_size=32))
    parsed = p.parse(SCHEMA)
    counts = parsed.window(TumblingWindow("1m"), key="event_type").agg(agg.count())
    sink = ListSink()
    counts.to(sink)
    result = p.run(clock=ManualClock(0))
    assert sink.frame()["count"].sum() == 180
    dl = result["parse.dead_letter"]
    assert dl["offset"].tolist() == list(range(0, 200, 10))
    assert result.metrics["dead_letter"] == 20


def test_text_records_of_any_pandas_string_dtype_parse_alike():
    recs = [good(i).decode() for i in range(100)] + ["{bad", None]
    results = []
    for dtype in ("str", object, "string[pyarrow]"):
        ok, dead = run_parse(pd.DataFrame({"value": pd.Series(recs, dtype=dtype)}))
        results.append((ok["event_id"].tolist(), dead["reason"].tolist()))
    assert results[0] == results[1] == results[2]
    assert len(results[0][0]) == 100 and results[0][1][1] == "null value (tombstone)"


def test_a_missing_value_and_an_empty_record_have_their_own_reasons():
    # both were "empty record": a Kafka tombstone (no value) read in a dead letter as an empty value
    column = pd.Series([None, b"", float("nan"), "", pd.NA, good(0)], dtype=object)
    ok, dead = run_parse(pd.DataFrame({"value": column}))
    assert ok["event_id"].tolist() == ["e0"]
    assert dead["reason"].tolist() == ["null value (tombstone)", "empty record"] * 2 + [
        "null value (tombstone)"
    ]


def test_the_exported_parser_reads_every_raw_value_as_the_runtime_does():
    # exported jobs call streamlab._record.parse_record, which took len(None): a tombstone was a TypeError
    # that failed the Beam bundle, the Lambda batch or the Spark query on every retry
    from streamlab._record import BadRecordError, parse_record

    fields = (("event_id", "string", ("event_id",)), ("timestamp", "timestamp", ("timestamp",)))
    raws = [None, float("nan"), pd.NA, b"", 5, bytearray(good(1)), memoryview(good(2))]
    exported = []
    for raw in raws:
        try:
            exported.append(parse_record(raw, fields, ("timestamp",), 2000)["event_id"])
        except BadRecordError as e:
            exported.append(str(e))
    ok, dead = run_parse(pd.DataFrame({"value": pd.Series(raws, dtype=object)}))
    assert exported == [*dead["reason"].tolist(), *ok["event_id"].tolist()]
    assert exported[:5] == ["null value (tombstone)"] * 3 + ["empty record", "expected bytes or str, got int"]
    assert dead["raw"].tolist()[:1] == [None]  # what arrived: no value (the exported dead letters' raw too)


@pytest.mark.parametrize("batch_size", [None, 1, 3])
def test_raw_records_with_none_and_other_values_among_them_reach_ok_or_dead_letter(batch_size):
    # a list of raw records with a None (a Kafka tombstone) or an int among them made ListSource raise
    # pandas' bare "TypeError: 'NoneType' object is not iterable" before anything ran
    good = b'{"id": "a", "timestamp": "2024-01-01T00:00:00Z"}'
    records = [good, None, bytearray(good), memoryview(good), 5, "", '{"id": "b", "timestamp": "x"}']
    p = Pipeline(ListSource(records, batch_size=batch_size))
    events = p.parse({"id": "string", "timestamp": "timestamp"})
    ok, dead = ListSink(), ListSink()
    events.to(ok)
    events.dead_letter.to(dead)
    p.run(clock=ManualClock(0))
    assert ok.frame()["id"].tolist() == ["a", "a", "a"]
    assert len(dead.frame()) == 4 and dead.frame()["reason"].str.len().gt(0).all()


def test_a_list_mixing_events_and_raw_records_is_refused_naming_the_odd_one():
    with pytest.raises(
        ValueError, match=r"ListSource: event 1 is NoneType 'None', among events \(dicts\).*Fix:"
    ):
        ListSource([{"id": "a"}, None])
