"""profile(): schema inference against the generators, exact late-fraction prediction, suggestions."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from streamlab.datasets import (
    dataset_path,
    generate_clickstream,
    generate_iot,
    generate_transactions,
    to_json_lines,
)

from streamlab import Pipeline, TumblingWindow, agg, profile
from streamlab.clock import ManualClock
from streamlab.profiling import predict_late_fraction
from streamlab.sources import ReplaySource
from streamlab.testing import ListSource

CLICK_SCHEMA = {
    "event_id": "string",
    "event_type": "category",
    "user_id": "string",
    "timestamp": "timestamp",
    "is_duplicate": "bool",
    "is_late": "bool",
    "is_burst": "bool",
    "amount": {"type": "float64", "path": "properties.amount"},
    "country": {"type": "category", "path": "properties.country"},
    "currency": {"type": "category", "path": "properties.currency"},
    "device": {"type": "category", "path": "properties.device"},
    "page": {"type": "string", "path": "properties.page"},
    "product_id": {"type": "string", "path": "properties.product_id"},
}


def _types(schema: dict) -> dict:
    return {k: (v if isinstance(v, str) else v["type"]) for k, v in schema.items()}


def test_inferred_types_equal_the_generators_schema_for_every_field() -> None:
    prof = profile(to_json_lines(generate_clickstream(3000, seed=3)), n=3000)
    assert prof.schema == CLICK_SCHEMA
    for gen in (generate_transactions, generate_iot):
        frame = gen(3000, seed=4)
        prof = profile(to_json_lines(frame), n=3000)
        expected = {}
        for c in frame.columns:
            s = frame[c]
            if isinstance(s.dtype, pd.DatetimeTZDtype):
                expected[c] = "timestamp"
            elif pd.api.types.is_bool_dtype(s.dtype):
                expected[c] = "bool"
            elif pd.api.types.is_integer_dtype(s.dtype):
                expected[c] = "int64"
            elif pd.api.types.is_float_dtype(s.dtype):
                expected[c] = "float64"
            else:
                expected[c] = "text"
        got = {k: ("text" if t in ("string", "category") else t) for k, t in _types(prof.schema).items()}
        assert got == expected, gen.__name__
        assert prof.malformed_rate == 0


def test_malformed_records_are_counted_with_the_parse_steps_reasons() -> None:
    lines = to_json_lines(generate_clickstream(2000, seed=1), malformed_share=0.05, seed=1)
    prof = profile(lines, n=len(lines))
    result = Pipeline(ListSource(lines)).parse(prof.schema, time="timestamp").run(clock=ManualClock(0))
    assert prof.malformed_rate == len(result["parse.dead_letter"]) / len(lines)
    assert prof.malformed_reasons.sum() == len(result["parse.dead_letter"])
    assert "invalid JSON" in prof.malformed_reasons.index


def oversized_sample() -> list[bytes]:
    """Nine good records and one of 1.1 MB, over the parse step's default max_record_bytes."""
    good = [b'{"id": "%d", "timestamp": "2024-01-01T00:00:%02dZ", "pad": "b"}' % (i, i) for i in range(9)]
    return [*good, b'{"id": "x", "timestamp": "2024-01-01T00:00:09Z", "pad": "' + b"a" * 1_100_000 + b'"}']


def test_an_oversized_record_is_malformed_as_the_suggested_parse_step_dead_letters_it() -> None:
    """profile parsed with max_record_bytes 1 << 30: it said 0 malformed, the parse step dead-lettered one."""
    prof = profile(oversized_sample())
    assert prof.malformed_rate == 0.1 and list(prof.malformed_reasons.index) == ["record is"]
    dead = prof.pipeline().run(clock=ManualClock(0))["parse.dead_letter"]
    assert len(dead) == 1 and dead["reason"].str.startswith("record is").all()


def test_max_record_bytes_is_the_profiles_and_its_pipelines() -> None:
    prof = profile(oversized_sample(), max_record_bytes=2_000_000)
    assert prof.malformed_rate == 0
    p = prof.pipeline()
    assert p.steps["parse"].max_record_bytes == 2_000_000
    assert len(p.run(clock=ManualClock(0))["parse.dead_letter"]) == 0


def test_on_app_logs_the_profiles_malformed_count_is_its_pipelines_dead_letters() -> None:
    """The profile said 573 of 20,000: it left out the 27 records over 1 MB the pipeline dead-letters."""
    prof = profile(ReplaySource(dataset_path("app_logs"), raw=True, speed=None), n=100_000)
    dead = prof.pipeline().run(clock=ManualClock(0))["parse.dead_letter"]
    assert round(prof.malformed_rate * prof.n) == prof.malformed_reasons.sum() == len(dead) == 600


def test_epoch_formats_are_recognised() -> None:
    base = 1_704_067_200
    for scale, fmt, typ in (
        (1, "epoch_s", "timestamp"),
        (1000, "epoch_ms", "timestamp"),
        (10**6, "epoch_us", "int64"),
    ):
        rows = [json.dumps({"id": str(i), "event_time": (base + i) * scale}).encode() for i in range(50)]
        prof = profile(rows)
        assert (prof.time_field, prof.time_format, prof.schema["event_time"]) == ("event_time", fmt, typ)
        p = prof.pipeline(TumblingWindow("10s"))
        out = p.run(clock=ManualClock(0))["window"]
        assert out["count"].sum() == 50 and out["window_start"].min() == pd.Timestamp(base * 10**9, tz="UTC")


def _partitioned(draw_ts: list[int], parts: list[int]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(np.asarray(draw_ts, dtype=np.int64) * 1_000_000_000, utc=True),
            "partition": parts,
            "k": "a",
        }
    )


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 600), st.integers(0, 2)), min_size=1, max_size=120),
    st.integers(0, 90),
    st.sampled_from(["10s", "1m"]),
)
def test_prediction_equals_the_window_steps_late_output_on_the_sample(events, delay_s, size) -> None:
    frame = _partitioned([t for t, _ in events], [p for _, p in events])
    p = Pipeline(ListSource(frame, batch_size=7))
    p.window(TumblingWindow(size), key="k", delay=f"{delay_s}s", watermark_by="partition").agg(agg.count())
    result = p.run(clock=ManualClock(0))
    late = result["window.late"] if "window.late" in result.outputs else pd.DataFrame()
    ts = frame["timestamp"].array.asi8
    predicted = predict_late_fraction(ts, frame[["partition"]], f"{delay_s}s", window=TumblingWindow(size))
    assert predicted == len(late) / len(frame)


def test_suggestions_and_display() -> None:
    frame = generate_clickstream(4000, seed=2, disorder="3s", late_share=0.0, duplicate_share=0.02)
    prof = profile(frame, n=4000, window=TumblingWindow("1m"))
    assert prof.time_field == "timestamp" and prof.id_field == "event_id"
    assert 0.015 < prof.duplicate_rate < 0.025
    assert prof.suggestion["ttl"] is not None
    assert prof.suggestion["delay"] in ("3s", "5s")  # covers the 3 s disorder
    assert prof.predicted_late_fraction == prof.predict(prof.suggestion["delay"])
    assert list(prof.late_table.columns) == ["delay", "predicted late", "added latency"]
    assert prof.late_table["predicted late"].is_monotonic_decreasing
    html = prof._repr_html_()
    assert "Suggested settings" in html and "Schema" in html
    assert len(prof.figure().data) == 1
    assert json.dumps(prof.to_dict())


def test_pipeline_from_a_profile_runs_with_the_suggested_settings() -> None:
    lines = to_json_lines(generate_clickstream(3000, seed=5))
    prof = profile(lines, n=3000)
    p = prof.pipeline(TumblingWindow("1m"))
    step = p.steps["window"]
    assert step.keys == ("event_type",)
    assert step.delay_ns == int(pd.Timedelta(prof.suggestion["delay"]).value)
    assert "dedup" in p.steps
    result = p.run(clock=ManualClock(0))
    assert (
        result["window"]["count"].sum() + len(result["window.late"])
        == result.metrics["steps"]["window"]["in"]
    )


def test_a_recording_is_profiled_with_its_original_arrival_times(tmp_path) -> None:
    from streamlab.recording import record, replay_recording

    lines = to_json_lines(generate_clickstream(500, seed=8))
    frame = pd.DataFrame({"value": lines, "partition": [i % 2 for i in range(len(lines))]})
    clock = ManualClock("2024-01-01T00:00:00Z")
    record(ListSource(frame, batch_size=50), tmp_path, clock=clock)
    prof = profile(replay_recording(tmp_path, speed=None), n=500)
    assert prof.partition_columns == ("partition",)
    assert prof.schema == CLICK_SCHEMA
    assert "_arrival_time" not in prof.schema and "_arrival_seq" not in prof.schema


_KINDS = {
    "int64": st.integers(-(10**12), 10**12),
    "float64": st.floats(-1e6, 1e6, allow_nan=False).filter(lambda v: v != int(v)),
    "bool": st.booleans(),
    "string": st.text("abcdefghij", min_size=1, max_size=12),
}


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.sampled_from(sorted(_KINDS)), min_size=1, max_size=4),
    st.lists(st.sampled_from(sorted(_KINDS)), max_size=2),
    st.data(),
)
def test_the_inferred_schema_parses_every_record_it_was_inferred_from(top, nested, data) -> None:
    n = 30
    t0 = pd.Timestamp("2024-01-01T00:00:00Z")
    records = []
    for i in range(n):
        rec = {f"f{j}": data.draw(_KINDS[k]) for j, k in enumerate(top)}
        if nested:
            rec["inner"] = {f"g{j}": data.draw(_KINDS[k]) for j, k in enumerate(nested)}
        rec["timestamp"] = (t0 + pd.Timedelta(seconds=i)).isoformat()
        records.append(json.dumps(rec).encode())
    prof = profile(records, n=n)
    assert prof.malformed_rate == 0
    types = _types(prof.schema)
    for j, k in enumerate(top):
        assert types[f"f{j}"] in ((k,) if k != "string" else ("string", "category"))
    for j, k in enumerate(nested):
        assert prof.schema[f"g{j}"]["path"] == f"inner.g{j}"
        assert types[f"g{j}"] in ((k,) if k != "string" else ("string", "category"))
    parsed = Pipeline(ListSource(records)).parse(prof.schema, time="timestamp").run(clock=ManualClock(0))
    assert len(parsed["parse"]) == n and "parse.dead_letter" not in {
        r for r, f in parsed.outputs.items() if len(f)
    }


def test_without_a_window_only_events_behind_the_watermark_are_predicted_late() -> None:
    # with delay 0 every event that set a new largest time used to count as late (1.0 for a stream
    # in order): without a window an event is late only when strictly behind the watermark
    s = 1_000_000_000
    ts = np.array([10, 20, 5, 30], dtype=np.int64) * s
    assert predict_late_fraction(ts, None, 0) == 0.25
    assert predict_late_fraction(np.arange(100, dtype=np.int64) * s, None, 0) == 0.0
    prof = profile(ListSource([{"timestamp": pd.Timestamp(i, unit="s", tz="UTC")} for i in range(50)]))
    assert prof.predict(0) == 0.0 and prof.late_table["predicted late"].max() == 0.0


@pytest.mark.parametrize("call", ["function", "profile"])
def test_a_negative_delay_or_lateness_is_refused_as_a_window_step_refuses_it(call) -> None:
    ts = np.array([10, 20, 5], dtype=np.int64) * 1_000_000_000
    prof = profile(ListSource([{"timestamp": pd.Timestamp(i, unit="s", tz="UTC")} for i in range(5)]))
    for delay, lateness in (("-1s", 0), (0, "-1s")):
        with pytest.raises(ValueError, match="must not be negative"):
            if call == "function":
                predict_late_fraction(ts, None, delay, lateness=lateness)
            else:
                prof.predict(delay, lateness=lateness)


@pytest.mark.parametrize(
    "sample",
    [
        [b"not json"],
        [b"{}"],
        [b"1", b"2"],
        [b"[1,2]"],
        pd.DataFrame({"a": [1, 2]}),
        [b'{"event_id": "a"}', b'{"event_id": "a"}'],
        [{"event_id": "a"}, {"event_id": "a"}],
    ],
    ids=[
        "malformed",
        "empty object",
        "scalars",
        "array",
        "frame without times",
        "repeated id",
        "repeated row",
    ],
)
def test_a_sample_without_event_times_is_profiled_and_says_so(sample) -> None:
    # these failed inside numpy (IndexError: index 0 is out of bounds) while suggesting delays; with a
    # repeated id, in pandas (ValueError: Grouper and axis must be same length) while suggesting a ttl
    prof = profile(sample)
    assert prof.time_field is None and prof.late_table["delay"].tolist() == ["0s"]
    assert "event time" in prof._repr_html_()
    for ask in (lambda: prof.predict("1s"), prof.pipeline):
        with pytest.raises(ValueError, match="found no event-time field: pass profile"):
            ask()


def test_a_time_field_that_holds_no_times_is_refused_with_the_fields_that_do() -> None:
    rows = [{"kind": "a", "timestamp": pd.Timestamp(i, unit="s", tz="UTC")} for i in range(5)]
    with pytest.raises(ValueError, match=r"time='kind'.*holds no times.*\['timestamp'\]"):
        profile(ListSource(rows), time="kind")


def test_an_id_field_the_events_lack_or_a_negative_timeout_is_refused() -> None:
    # id_field='evnt_id' profiled a duplicate rate of 0 and suggested dedup('evnt_id'), which the
    # pipeline then refused; timeout='-1s' left a live source's sample empty ("is it empty?")
    rows = [{"event_id": "a", "timestamp": pd.Timestamp(i, unit="s", tz="UTC")} for i in (0, 1, 1)]
    with pytest.raises(
        ValueError, match=r"id_field='evnt_id'\): no such field.*did you mean id_field='event_id'"
    ):
        profile(ListSource(rows), id_field="evnt_id")
    with pytest.raises(ValueError, match=r"timeout='-1s'\): a wait cannot be negative"):
        profile(ListSource(rows), timeout="-1s")
    assert profile(ListSource(rows), id_field="event_id").duplicate_rate == pytest.approx(2 / 3)


def test_a_profiles_schema_reads_keys_that_contain_a_dot() -> None:
    # tester4 #29: the inferred path "p.a.b" of the key "a.b" in "p" (and, before, the name "user.id")
    # read nested keys that the records do not have, so the values parsed as missing
    lines = [
        json.dumps({"user.id": f"u{i}", "p": {"a.b": i}, "timestamp": f"2024-01-01T00:00:0{i}Z"}).encode()
        for i in range(8)
    ]
    schema = profile(ListSource(lines)).schema
    assert schema["a.b"] == {"type": "int64", "path": ["p", "a.b"]}
    p = Pipeline(ListSource(lines))
    parsed = p.parse(schema)
    rows = p.run()[parsed.ref]
    assert rows["user.id"].tolist() == [f"u{i}" for i in range(8)] and rows["a.b"].tolist() == list(range(8))


_HOSTILE = [
    b'{"timestamp": "2024-01-01T00:00:00Z", "event_id": "x", "n": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    b'{"timestamp": "2024-01-01T00:00:00Z", "event_id": "x", "n": '
    + b'{"a": ' * 5_000
    + b"1"
    + b"}" * 5_000
    + b"}",
    b'{"timestamp": "2024-01-01T00:00:00Z", "event_id": "x", "n": 1' + b"0" * 400 + b"}",
    b'{"timestamp": "2024-01-01T00:00:00Z", "event_id": "x", "n": 1e400}',
    b'{"timestamp": "2024-01-01T00:00:00Z", "event_id": "x", "n": NaN}',
    b'{"timestamp": "2024-01-01T00:00:00Z", "event_id": "\\ud800"}',
    b'{"timestamp": "2024-01-01T00:00:00Z", "event_id": "\xff"}',
    b"[" * 10_000,
    b"[1]",
    b"\x00",
]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(_HOSTILE), min_size=1, max_size=6))
def test_hostile_records_are_profiled_as_malformed_never_raising(hostile: list[bytes]) -> None:
    # a record nested deeper than Python's stack raised RecursionError out of profile(), and a field
    # with a 400-digit integer OverflowError (the epoch-time check turned it into a float)
    good = [
        json.dumps({"timestamp": f"2024-01-01T00:00:{i % 60:02d}Z", "event_id": f"e{i}", "n": i}).encode()
        for i in range(60)
    ]
    lines = good[:30] + hostile + good[30:]
    prof = profile(lines, n=len(lines))
    result = Pipeline(ListSource(lines)).parse(prof.schema, time="timestamp").run(clock=ManualClock(0))
    dead = result.outputs.get("parse.dead_letter", pd.DataFrame())
    assert prof.malformed_rate == len(dead) / len(lines)
    assert len(result["parse"]) + len(dead) == len(lines)


def test_a_frame_column_whose_name_holds_dots_is_one_key() -> None:
    """A column "a." of an already-parsed source was the path a -> "" (refused now that a path's keys
    must not be empty), and "user.id" the path user -> id: a column is one key, dots and all."""
    frame = pd.DataFrame({"timestamp": pd.to_datetime(["2024-01-01"], utc=True), "a.": [1], "user.id": ["x"]})
    fields = {f.name: f for f in profile(ListSource(frame)).fields}
    assert fields["a."].field_spec().path == ("a.",) and fields["user.id"].field_spec().path == ("user.id",)


def test_a_profile_of_another_value_column_suggests_a_pipeline_that_parses_it() -> None:
    """The suggested parse step read ``value``, not the column the profile read (a KeyError at run)."""
    lines = to_json_lines(generate_clickstream(500, seed=3))
    frame = pd.DataFrame({"payload": [ln.encode() if isinstance(ln, str) else ln for ln in lines]})
    prof = profile(ListSource(frame), n=500, value_column="payload")
    p = prof.pipeline(TumblingWindow("1m"))
    assert p.steps["parse"].value_column == "payload"
    result = p.run(clock=ManualClock(0))
    assert len(result["parse.dead_letter"]) == round(prof.malformed_rate * prof.n)
    assert (
        result["window"]["count"].sum() + len(result["window.late"])
        == result.metrics["steps"]["window"]["in"]
        > 0
    )
