"""Beam export: the generated module reproduces streamlab's results on the DirectRunner."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings

from streamlab import Pipeline, SessionWindow, SlidingWindow, TumblingWindow, agg
from streamlab.errors import PipelineConfigError
from streamlab.export import to_beam, verify
from streamlab.export.verify import load_module, run_local
from streamlab.testing import ListSource

from ._samples import BASE_MS, FIXED_SAMPLE, SCHEMA, iso, record, samples

pytest.importorskip("apache_beam")


def counts_pipeline(**window: object) -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="counts")
    events = p.parse(SCHEMA)
    events.window(TumblingWindow("1m"), key="event_type", **window).agg(agg.count())  # type: ignore[arg-type]
    return p


def test_fixed_sample_with_dedup_late_and_dead_letters(tmp_path: Path) -> None:
    p = Pipeline(ListSource([b"{}"]), name="fixed")
    events = p.parse(SCHEMA).dedup("event_id", ttl="10m")
    events.window(TumblingWindow("1m"), key="event_type", delay="5s").agg(
        agg.count(), agg.sum("amount"), agg.first("user_id"), agg.last("user_id")
    )
    report = verify(p, FIXED_SAMPLE, workdir=tmp_path)
    assert report.equal, report.diff
    assert report.counts["window"] == {"streamlab": 5, "beam": 5}
    assert report.counts["window.late"] == {"streamlab": 2, "beam": 2}
    assert report.counts["parse.dead_letter"] == {"streamlab": 2, "beam": 2}
    assert report.counts["dedup.duplicates"] == {"streamlab": 1, "beam": 1}
    reasons = sorted(report.exported["parse.dead_letter"]["reason"])
    assert reasons[0].startswith("invalid JSON") and reasons[1] == "missing required field 'timestamp'"
    assert "equal" in repr(report) and "beam: equal" in report._repr_html_()


def test_a_difference_is_reported_not_hidden(tmp_path: Path) -> None:
    p = counts_pipeline()
    report = verify(p, FIXED_SAMPLE, workdir=tmp_path)
    assert report.equal
    # tamper with the generated module: count twice
    module = Path(report.files.module)
    module.write_text(module.read_text().replace("return acc + (1 if", "return acc + (2 if"))
    from streamlab.export.verify import compare, run_beam

    exported = run_beam(load_module(module), [bytes(x) for x in FIXED_SAMPLE])
    equal, diff, _ = compare(p, report.local, exported, "beam")
    assert not equal
    assert set(diff["side"]) == {"streamlab", "beam"} and set(diff["output"]) == {"window"}


def test_a_record_without_a_value_is_a_dead_letter_not_a_failed_bundle(tmp_path: Path) -> None:
    """A record without a value (a Kafka tombstone as ``ReadFromKafka`` hands it to ``build``), an empty one
    and a bytearray through the module's DoFns on the DirectRunner: the ParseRecords DoFn raised TypeError
    on None, which fails its bundle on every retry; now it is streamlab's dead letter, and the other
    records are counted."""
    from streamlab.export.verify import compare, run_beam

    p = counts_pipeline()
    lines = [
        record(1, BASE_MS + 1_000, "click", "u1", 1.0),
        None,
        b"",
        bytearray(record(2, BASE_MS + 2_000, "view", "u2", 2.0)),
        record(3, BASE_MS + 3_000, "click", "u1", 1.0),
    ]
    exported = run_beam(load_module(to_beam(p, tmp_path).module), lines)  # type: ignore[arg-type]
    dead = exported["parse.dead_letter"].sort_values("reason")
    assert dead["reason"].tolist() == ["empty record", "null value (tombstone)"]
    assert dead["raw"].tolist()[0] == "" and dead["raw"].isna().tolist() == [False, True]  # no value: null
    assert sorted(exported["window"]["count"].tolist()) == [1, 2]
    equal, diff, _ = compare(p, run_local(p, lines), exported, "beam")  # type: ignore[arg-type]
    assert equal, diff


def _seed_counts(path: Path) -> dict[tuple[str, int], int]:
    """The hand-written reference: ReadFromText -> ParseWithDeadLetter -> FixedWindows(60) -> sum of 1s."""
    import apache_beam as beam
    from apache_beam import pvalue
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.transforms import window

    class ParseWithDeadLetter(beam.DoFn):
        def process(self, line: str):  # type: ignore[no-untyped-def]
            try:
                event = json.loads(line)
                ts = pd.Timestamp(event["timestamp"]).timestamp()
                yield window.TimestampedValue(event, ts)
            except (ValueError, KeyError, TypeError) as e:
                yield pvalue.TaggedOutput("dead_letter", {"raw": line, "reason": str(e)})

    out_file = path / "seed"

    class Format(beam.DoFn):
        def process(self, kv, w=beam.DoFn.WindowParam):  # type: ignore[no-untyped-def]
            yield json.dumps([kv[0], int(w.start.micros // 1_000_000), kv[1]])

    with beam.Pipeline(options=PipelineOptions(["--runner=DirectRunner"])) as pipe:
        parsed = (
            pipe
            | beam.io.ReadFromText(str(path / "input.jsonl"))
            | beam.ParDo(ParseWithDeadLetter()).with_outputs("dead_letter", main="events")
        )
        (
            parsed.events
            | beam.WindowInto(window.FixedWindows(60))
            | beam.Map(lambda e: (e["event_type"], 1))
            | beam.CombinePerKey(sum)
            | beam.ParDo(Format())
            | beam.io.WriteToText(str(out_file))
        )
    rows = [json.loads(line) for f in path.glob("seed*") for line in f.read_text().splitlines()]
    return {(k, start): n for k, start, n in rows}


def test_export_equals_hand_written_seed_pipeline_and_streamlab(tmp_path: Path) -> None:
    lines = [record(i, BASE_MS + i * 7_000, ("click", "view")[i % 2], "u1", 1.0) for i in range(30)]
    lines.insert(4, b"not json")
    (tmp_path / "input.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    seed = _seed_counts(tmp_path)

    p = counts_pipeline()
    files = to_beam(p, tmp_path / "export", runner_source="file")
    module = load_module(files.module)
    module.run(
        [
            "--input",
            str(tmp_path / "input.jsonl"),
            "--output",
            str(tmp_path / "out"),
            "--runner",
            "DirectRunner",
        ]
    )
    rows = [json.loads(x) for f in (tmp_path / "out").glob("window-*") for x in f.read_text().splitlines()]
    exported = {(r["event_type"], int(pd.Timestamp(r["window_start"]).timestamp())): r["count"] for r in rows}
    dead = [
        json.loads(x)
        for f in (tmp_path / "out").glob("parse_dead_letter-*")
        for x in f.read_text().splitlines()
    ]

    local = run_local(p, lines)["window"]
    streamlab_counts = {
        (k, int(s.timestamp())): int(n) for k, s, n in local[["event_type", "window_start", "count"]].values
    }
    assert exported == seed == streamlab_counts
    assert sum(seed.values()) == 30
    assert [d["raw"] for d in dead] == ["not json"]


MATRIX = {
    "tumbling-numeric": lambda s: s.window(TumblingWindow("1m"), key="event_type", delay="10s").agg(
        agg.count(), agg.sum("amount"), agg.mean("amount"), agg.min("amount"), agg.max("amount")
    ),
    "tumbling-lateness-first-last-quantile": lambda s: s.window(
        TumblingWindow("30s", offset="10s"), key=["event_type", "user_id"], lateness="20s"
    ).agg(agg.first("amount"), agg.last("user_id"), agg.quantile("amount", 0.5), agg.count("amount")),
    "sliding-distinct": lambda s: s.window(
        SlidingWindow("2m", every="30s"), key="event_type", delay="5s"
    ).agg(agg.count(), agg.count_distinct("user_id")),
    "dedup-global-window": lambda s: (
        s.dedup("event_id", ttl="2m")
        .window(TumblingWindow("1m"), delay="3s")
        .agg(agg.count(), agg.sum("amount"))
    ),
    "session-in-order": lambda s: s.window(SessionWindow("45s"), key="user_id", delay="1h").agg(
        agg.count(), agg.max("amount")
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(MATRIX))
@settings(max_examples=3, deadline=None)
@given(sample=samples())
def test_round_trip_matrix(name: str, sample: list[bytes], tmp_path_factory: pytest.TempPathFactory) -> None:
    p = Pipeline(ListSource([b"{}"]), name=name.replace("-", "_"))
    MATRIX[name](p.parse(SCHEMA))
    report = verify(p, sample, workdir=tmp_path_factory.mktemp("beam"))
    assert report.equal, report.diff.to_string()
    assert report.counts[p.steps["parse"].step_id + ".dead_letter"]["streamlab"] == sum(
        1 for line in sample if not line.startswith(b'{"event_id": "e')
    )


def test_unsupported_steps_fail_export_naming_the_step(tmp_path: Path) -> None:
    p = Pipeline(ListSource([b"{}"]), name="joins")
    a = p.parse(SCHEMA)
    a.join_interval(a.filter("amount > 1"), on="user_id", lower="-1m", upper="1m", step_id="match")
    with pytest.raises(
        PipelineConfigError, match=r"step 'match' \(interval_join\): cannot export to Apache Beam"
    ):
        to_beam(p, tmp_path)
    q = Pipeline(ListSource([b"{}"]), name="enriched")
    q.parse(SCHEMA).enrich(pd.DataFrame({"user_id": ["u1"], "tier": ["gold"]}), on="user_id", step_id="tiers")
    with pytest.raises(PipelineConfigError, match="step 'tiers' .*enrich joins with a table held in memory"):
        to_beam(q, tmp_path)
    with pytest.raises(PipelineConfigError, match="sink='files' or 'bigquery'"):
        to_beam(counts_pipeline(), tmp_path, sink="kafka")


def test_replay_stream_follows_streamlabs_watermark(tmp_path: Path) -> None:
    from apache_beam.testing.test_stream import ElementEvent, WatermarkEvent

    module = load_module(to_beam(counts_pipeline(delay="5s"), tmp_path).module)
    lines = [record(1, BASE_MS + 10_000, "a", "u", None), b"bad", record(2, BASE_MS + 4_000, "a", "u", None)]
    events = module.replay_stream(lines)._events
    kinds = [type(e).__name__ for e in events]
    # the watermark reaches max - delay before the record behind it; records ahead of it share a batch
    assert kinds == ["ElementEvent", "WatermarkEvent", "ElementEvent", "WatermarkEvent", "WatermarkEvent"]
    assert [v.value for v in events[0].timestamped_values] == [lines[0], b"bad"]
    assert (
        isinstance(events[1], WatermarkEvent) and events[1].new_watermark.micros == (BASE_MS + 5_000) * 1_000
    )
    assert isinstance(events[2], ElementEvent) and events[2].timestamped_values[0].value == lines[2]
    # past the last record before +inf, so what row steps hold back is released into windows still open
    assert events[3].new_watermark.micros == (BASE_MS + 10_001) * 1_000
    in_order = [record(i, BASE_MS + i * 1_000, "a", "u", None) for i in range(50)]
    events = module.replay_stream(in_order)._events
    assert [type(e).__name__ for e in events] == ["ElementEvent"] + ["WatermarkEvent"] * 3
    assert iso(BASE_MS) == "2024-01-01T00:00:00.000Z"


def test_verify_runs_the_program_as_deployed_on_bytes(tmp_path: Path) -> None:
    """verify() runs the module's command line: the sample is a file read as bytes (a line that is not
    UTF-8 and a CRLF line included), and the rows come back through the module's own files sink, late
    rows of a window written after its on-time files (they once overwrote them)."""
    p = Pipeline(ListSource([b"{}"]), name="deployed")
    p.parse(SCHEMA).dedup("event_id", ttl="10m").window(
        TumblingWindow("1m"), key="event_type", delay="5s"
    ).agg(agg.count())
    sample = [*FIXED_SAMPLE[:3], b"\xff\xfe not utf-8", FIXED_SAMPLE[3] + b"\r", *FIXED_SAMPLE[4:]]
    report = verify(p, sample, workdir=tmp_path)
    assert report.equal, report.diff
    assert "--replay" in " ".join(report.notes)
    # a record ends in "\r", which a line-per-record file would lose: the sample went in base64, one record
    # a line, and the program read back each record's own bytes
    assert "--input_format base64" in " ".join(report.notes)
    written = (tmp_path / "verify-input.jsonl").read_bytes().splitlines()
    assert [base64.b64decode(line) for line in written] == sample
    reasons = list(report.exported["parse.dead_letter"]["reason"])
    assert any(r.startswith("invalid UTF-8") for r in reasons)
    assert report.counts["window.late"]["beam"] > 0
    late_files = [f.name for f in (tmp_path / "verify-output" / "window_late").iterdir() if f.is_file()]
    assert late_files and all("-pane" in name for name in late_files)


@pytest.mark.slow
def test_verify_handles_ten_thousand_records_within_a_minute(tmp_path: Path) -> None:
    """Measured in CPU seconds of this process and the Beam child: the machine's other load does not
    count (on a shared CI machine the wall time can be several times longer)."""
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
    report = verify(p, lines, workdir=tmp_path)
    spent = cpu() - started
    assert report.equal, report.diff
    assert report.counts["window.late"]["beam"] > 0 and report.counts["dedup.duplicates"]["beam"] > 0
    assert spent < 60, f"verify took {spent:.0f} CPU seconds for {len(lines)} records"


def test_times_below_the_microsecond_are_compared_as_beam_writes_them_and_named(tmp_path: Path) -> None:
    """Beam holds and writes times to the microsecond (as streamlab's JSON sinks write them): a session
    of an event at ...05.123456789Z once made verify report a plain mismatch of its bounds; now they are
    compared truncated to the microsecond and the notes say which output and columns, and why."""
    p = Pipeline(ListSource([b"{}"]), name="ns")
    p.parse().window(SessionWindow("1m"), key="user_id").agg(agg.count())
    ts = "2024-01-01T00:00:05.123456789Z"
    sample = [json.dumps({"event_id": "1", "user_id": "a", "event_type": "x", "timestamp": ts}).encode()]
    report = verify(p, sample, workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    assert report.exported["window"]["window_start"].tolist() == ["2024-01-01T00:00:05.123456Z"]
    (note,) = [n for n in report.notes if n.startswith("window: ")]
    assert "window_end and window_start have times with digits below the microsecond" in note
    assert "e.g. window_end 2024-01-01T00:01:05.123456789Z" in note and "compared truncated" in note


@pytest.mark.parametrize(
    ("window", "words"),
    [
        (TumblingWindow("1500ns"), "size='1500ns' is not a whole number of microseconds"),
        (SlidingWindow("2s", every="1s", offset="1ns"), "offset='1ns'"),
        (SessionWindow("1000500ns"), "gap='1000500ns'"),
    ],
)
def test_windows_beam_cannot_hold_to_the_microsecond_are_refused(
    window: object, words: str, tmp_path: Path
) -> None:
    p = Pipeline(ListSource([b"{}"]), name="fine")
    p.parse(SCHEMA).window(window, key="event_type", step_id="w").agg(agg.count())  # type: ignore[arg-type]
    with pytest.raises(PipelineConfigError, match="step 'w'") as e:
        to_beam(p, tmp_path)
    assert words in str(e.value) and "Beam's windows and element timestamps are microseconds" in str(e.value)
