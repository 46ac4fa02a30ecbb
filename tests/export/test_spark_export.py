"""Spark export: the generated PySpark job, run on Spark in local mode, reproduces streamlab's results.

One SparkSession (one JVM) serves every test of this module; samples are small and in order (Spark's
watermark moves per micro-batch, so late data is compared only as counts, in the report's notes).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import Pipeline, SessionWindow, SlidingWindow, TumblingWindow, agg
from streamlab.errors import PipelineConfigError
from streamlab.export import verify
from streamlab.export.spark import END_OF_INPUT, to_spark
from streamlab.testing import ListSource

from ._samples import BASE_MS, FIXED_SAMPLE, SCHEMA, record

# in event-time order (nothing late for either engine), with a repeat and bad records
IN_ORDER = [
    record(1, BASE_MS + 5_000, "click", "u1", 2.5),
    record(1, BASE_MS + 5_000, "click", "u1", 2.5),  # a repeat (on time: streamlab's watermark is at 5s)
    record(2, BASE_MS + 20_000, "view", "u2", None),
    b"not json",
    record(3, BASE_MS + 50_000, "click", "u3", 1.0),
    record(4, BASE_MS + 70_000, "click", "u1", 4.0),
    b'{"event_id": "x", "event_type": "click", "user_id": "u1"}',
    record(5, BASE_MS + 95_000, "buy", "u1", 10.0),
    record(6, BASE_MS + 200_000, "view", "u3", 0.5),
    b"",
    record(7, BASE_MS + 230_000, "view", "u1", None),
]


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    """One local Spark for the module: local[2], no UI, two shuffle partitions (see spark_session)."""
    from streamlab.export import spark as spark_export

    session = spark_export.spark_session()
    yield session  # kept for the other Spark test modules (the JVM ends with the test run)


def base(name: str) -> tuple[Pipeline, Any]:
    p = Pipeline(ListSource([b"{}"]), name=name)
    return p, p.parse(SCHEMA)


def all_cases() -> Pipeline:
    """Tumbling, sliding and session windows, dedup, an interval join and dead letters in one pipeline:
    one Spark run (one query per output, run together) checks them all."""
    p, events = base("cases")
    uniq = events.dedup("event_id", ttl="10m")
    uniq.window(TumblingWindow("1m"), key="event_type", delay="5s", step_id="tumbling").agg(
        agg.count(), agg.sum("amount"), agg.mean("amount"), agg.max("amount"), agg.first("user_id")
    )
    events.window(SlidingWindow("2m", every="1m"), key="user_id", step_id="sliding").agg(
        agg.count(), agg.min("amount")
    )
    events.window(SessionWindow("30s"), key="user_id", step_id="session").agg(
        agg.count(), agg.sum("amount"), agg.last("event_type")
    )
    clicks = events.filter("event_type == 'click'", step_id="clicks")
    buys = events.filter("event_type == 'buy'", step_id="buys")
    # a missing number is NaN in streamlab (NaN != NaN), so the rows without an amount pass
    events.filter("amount != amount", step_id="no_amount")
    clicks.join_interval(buys, "user_id", lower="0s", upper="2m", step_id="join")
    return p


def test_every_case_on_spark_equals_streamlab(spark: Any, tmp_path: Path) -> None:
    p = all_cases()
    report = verify(p, IN_ORDER, target="spark", workdir=tmp_path)
    assert report.equal, report.diff
    counts = report.counts
    assert counts["tumbling"] == {"streamlab": 5, "spark": 5}
    assert counts["sliding"]["spark"] == counts["sliding"]["streamlab"] > 5
    assert counts["session"]["spark"] == counts["session"]["streamlab"] >= 5
    assert counts["clicks.dead_letter"] == {"streamlab": 0, "spark": 0}
    assert counts["join"]["spark"] == counts["join"]["streamlab"] >= 2
    assert counts["no_amount"] == {"streamlab": 2, "spark": 2}
    assert counts["parse.dead_letter"] == {"streamlab": 3, "spark": 3}
    reasons = sorted(report.exported["parse.dead_letter"]["reason"])
    assert reasons[0] == "empty record" and reasons[1].startswith("invalid JSON")
    assert reasons[2] == "missing required field 'timestamp'"
    # the repeat of e1 is dropped before the tumbling window: its click window counts e1 once
    win = report.exported["tumbling"]
    first_click = win[(win["event_type"] == "click")].sort_values("window_start").iloc[0]
    assert first_click["count"] == 2
    assert "spark: equal" in report._repr_html_()


def test_late_rows_one_record_per_micro_batch(spark: Any, tmp_path: Path) -> None:
    """With one record per micro-batch Spark's watermark moves per event, as streamlab's does: the same
    rows are late (dropped there, reported here), so the windows and the late counts are equal.

    The same window after a dedup (streamlab's rule, which defines no watermark: ``rule_dedups``) has
    its own watermark: its late rows are compared too."""
    p, events = base("late")
    events.window(TumblingWindow("1m"), key="event_type", delay="5s").agg(agg.count(), agg.sum("amount"))
    uniq = events.dedup("event_id", ttl="10m")
    uniq.window(TumblingWindow("1m"), key="event_type", delay="5s", step_id="after_dedup").agg(
        agg.count(), agg.sum("amount")
    )
    sample = [
        record(1, BASE_MS + 5_000, "click", "u1", 2.5),
        record(3, BASE_MS + 70_000, "click", "u3", 1.0),
        record(4, BASE_MS + 30_000, "click", "u4", 4.0),  # late: the watermark is at 1:05
        record(5, BASE_MS + 130_000, "view", "u1", 3.0),
        record(6, BASE_MS + 62_000, "click", "u2", 1.5),  # late: the watermark is at 2:05
        record(7, BASE_MS + 124_000, "view", "u3", 0.5),  # on time: its window ends at 3:00
    ]
    report = verify(p, sample, target="spark", workdir=tmp_path, batch_records=1)
    assert report.equal, report.diff
    assert report.counts["window.late"] == {"streamlab": 2, "spark": 2}
    assert report.counts["window"]["spark"] == report.counts["window"]["streamlab"] == 3
    assert any("micro-batches of 1 records" in n for n in report.notes)
    assert report.counts["after_dedup.late"] == {"streamlab": 2, "spark": 2}
    assert report.counts["after_dedup"]["spark"] == report.counts["after_dedup"]["streamlab"] == 3
    assert not any(n.startswith("after_dedup: runs on the watermark of") for n in report.notes)


def test_spark_refuses_a_second_watermark_downstream(spark: Any, tmp_path: Path) -> None:
    """Why a window after a dedup runs on the dedup's watermark: Spark fails a query that redefines it."""
    from pyspark.errors import StreamingQueryException
    from pyspark.sql import functions as F  # noqa: N812 - PySpark's own convention

    src = tmp_path / "in"
    src.mkdir()
    (src / "a.json").write_text('{"id": "a", "ts": "2024-01-01T00:00:05Z"}\n')
    df = spark.readStream.schema("id STRING, ts TIMESTAMP").json(str(src))
    twice = (
        df.withWatermark("ts", "10 minutes")
        .dropDuplicatesWithinWatermark(["id"])
        .withWatermark("ts", "5 seconds")
        .groupBy(F.window("ts", "1 minute"))
        .count()
    )
    q = twice.writeStream.format("noop").option("checkpointLocation", str(tmp_path / "ckpt"))
    query = q.trigger(availableNow=True).start()
    with pytest.raises(StreamingQueryException, match="Redefining watermark is disallowed"):
        query.awaitTermination(120)


@pytest.mark.timeout(300)
def test_the_jobs_command_line_writes_every_output(spark: Any, tmp_path: Path) -> None:
    """``main(argv)``, as spark-submit runs it: --input, --output, --checkpoint, --available-now."""
    import json

    from pyspark import cloudpickle

    from streamlab.export.verify import load_module, run_local

    p, events = base("cmdline")
    events.window(TumblingWindow("1m"), key="event_type").agg(agg.count())
    module = load_module(to_spark(p, tmp_path / "export").module)
    cloudpickle.register_pickle_by_value(
        module
    )  # spark-submit ships the file; here the executors get it pickled
    data = tmp_path / "in"
    data.mkdir()
    (data / "events.jsonl").write_bytes(b"".join(x + b"\n" for x in [*IN_ORDER, END_OF_INPUT]))
    out, ckpt = tmp_path / "out", tmp_path / "checkpoints"
    try:
        module.main(
            ["--input", str(data), "--output", str(out), "--checkpoint", str(ckpt), "--available-now"]
        )
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    assert module.OUTPUTS == {"parse.dead_letter": "parse_dead_letter", "window": "window"}
    rows = {
        name: [
            json.loads(line)
            for f in sorted((out / name).glob("part-*"))
            for line in f.read_text().splitlines()
        ]
        for name in module.OUTPUTS.values()
    }
    assert sorted(ckpt.iterdir()) == [ckpt / "parse_dead_letter", ckpt / "window"]
    local = run_local(p, list(IN_ORDER))
    assert len(rows["window"]) == len(local["window"]) == 5
    assert sum(r["count"] for r in rows["window"]) == int(local["window"]["count"].sum())
    assert sorted(r["reason"] for r in rows["parse_dead_letter"]) == sorted(
        local["parse.dead_letter"]["reason"]
    )


def test_a_kafka_tombstone_is_a_dead_letter_not_a_failed_query(spark: Any, tmp_path: Path) -> None:
    """Spark's Kafka source gives a record without a value (a tombstone) a null ``value``: the parse's
    ``mapInArrow`` raised TypeError on it (``parse_record``'s len(None)), which ends the streaming query.
    The module's ``build`` on such a value column: streamlab's dead letters, the other records counted."""
    from pyspark import cloudpickle

    from streamlab.export.verify import load_module, run_local

    p, events = base("tombstone")
    events.window(TumblingWindow("1m"), key="event_type").agg(agg.count())
    module = load_module(to_spark(p, tmp_path / "export").module)
    values = [IN_ORDER[0], None, b"", IN_ORDER[2]]
    frame = spark.createDataFrame([(v,) for v in values], "value binary")
    cloudpickle.register_pickle_by_value(module)  # spark-submit ships the file; here it is pickled
    try:
        streams = module.build(frame, "value", False)
        dead = [r.asDict() for r in streams["parse.dead_letter"].collect()]
        windows = [r.asDict() for r in streams["window"].collect()]
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    assert sorted(dead, key=lambda d: d["reason"]) == [
        {"raw": "", "reason": "empty record", "step_id": "parse"},
        {"raw": None, "reason": "null value (tombstone)", "step_id": "parse"},
    ]
    local = run_local(p, values)  # type: ignore[arg-type]
    assert sorted(local["parse.dead_letter"]["reason"]) == sorted(d["reason"] for d in dead)
    assert sum(w["count"] for w in windows) == int(local["window"]["count"].sum()) == 2


# -- generation, refusals and the command line (no Spark needed) -----------------------------------
def test_kafka_side_outputs_over_the_record_limit_are_cut_to_fit(spark: Any, tmp_path: Path) -> None:
    """``--sink kafka``: a dead letter over Kafka's 1 MB record (refused on every retry of its micro-batch) is
    sent cut to fit, saying what was cut; other outputs' messages are their rows' JSON as they were. (The
    Kafka writer itself needs the spark-sql-kafka package, which this machine cannot download.)"""
    import hashlib
    import json

    from pyspark import cloudpickle

    from streamlab.export.verify import load_module

    p, events = base("kafka_fit")
    events.window(TumblingWindow("1m"), key="event_type").agg(agg.count())
    module = load_module(to_spark(p, tmp_path / "export").module)
    assert module.is_side("parse_dead_letter") and not module.is_side("window")
    raw = '{"event_id": "' + "é\t" * 400_000 + '"}'  # 1.2 MB of text; its JSON escapes make it 3.2 MB
    frame = spark.createDataFrame(
        [(raw, "record too large", "parse"), ("not json", "invalid JSON", "parse")],
        "raw string, reason string, step_id string",
    )
    cloudpickle.register_pickle_by_value(module)
    try:
        values = [r["value"] for r in module.kafka_values(frame, "parse_dead_letter").collect()]
        plain = [r["value"] for r in module.kafka_values(frame, "window").collect()]
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    cut, small = (json.loads(v) for v in values)
    assert len(values[0].encode()) <= module.KAFKA_MESSAGE_LIMIT and values[1] == plain[1]
    assert cut["raw_truncated"] is True and (cut["reason"], cut["step_id"]) == ("record too large", "parse")
    assert raw.startswith(cut["raw"]) and cut["raw_sha256"] == hashlib.sha256(raw.encode()).hexdigest()
    assert small == {"raw": "not json", "reason": "invalid JSON", "step_id": "parse"}
    assert json.loads(plain[0])["raw"] == raw


def test_generated_files_lint_name_connectors_and_hold_no_secrets(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    out = to_spark(all_cases(), tmp_path / "spark")
    assert sorted(out.files) == [
        "README.md",
        "cases_spark.py",
        "databricks_job.json",
        "emr_serverless.json",
        "requirements.txt",
    ]
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--config", str(pyproject), str(out.directory)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout
    code = out.read("cases_spark.py")
    import re

    assert not re.search(r"^\s*(import|from) streamlab", code, re.MULTILINE)
    for needle in (
        "withWatermark(",
        "F.window('timestamp', '120000 milliseconds', '60000 milliseconds')",
        "F.session_window('timestamp', '29999999 microseconds')",  # sessions that touch stay apart
        "first_occurrences(frames, state, *DEDUP_RULE)",  # streamlab's dedup rule
        "'inner'",
        "def parse_record(",  # streamlab's parser, copied in
        "Semantics (streamlab -> Spark)",
        "checkpointLocation",
    ):
        assert needle in code, needle
    readme = out.read("README.md")
    assert "spark-submit" in readme and "org.apache.spark:spark-sql-kafka-0-10_2.13:4.3.0" in readme
    assert "generated but not executed here" in readme and "**file source**" in readme
    job = json.loads(out.read("databricks_job.json"))
    assert job["tasks"][0]["spark_python_task"]["python_file"].endswith("cases_spark.py")
    assert "{{secrets/" in json.dumps(job)  # secrets by reference only
    emr = json.loads(out.read("emr_serverless.json"))
    assert (
        emr["mode"] == "STREAMING"
        and "--checkpoint" in emr["jobDriver"]["sparkSubmit"]["entryPointArguments"]
    )
    assert out.read("requirements.txt").splitlines()[0] == "pyspark==4.3.0"
    for text in (code, readme, out.read("databricks_job.json"), out.read("emr_serverless.json")):
        assert "password=" not in text.replace('password="{conn}"', "") and "AKIA" not in text


def test_end_of_input_line_is_not_json_and_moves_no_real_row() -> None:
    assert END_OF_INPUT.startswith(b"\x00")  # never a JSON record


def test_a_marker_that_does_not_end_a_file_is_a_dead_letter_as_in_streamlab() -> None:
    # a Kafka message (or a line inside a file) holding the end-of-input bytes became the END_TIME row
    # that closes every window, so every later row was dropped behind the watermark; one holding TICK
    # vanished. streamlab sends both to dead letter ("invalid JSON"), like any record that is not JSON.
    import pyarrow as pa

    from streamlab.export.spark import TICK

    module = _generated_module()
    fields = (("event_id", "string", ("event_id",)), ("timestamp", "timestamp", ("timestamp",)))
    good = b'{"event_id": "e1", "timestamp": "2024-01-01T00:00:00Z"}'

    def parse(values: list[bytes], split: bool) -> list[dict[str, Any]]:
        batch = pa.RecordBatch.from_pydict({"value": pa.array(values, pa.binary())})
        out = module.parse_batches([batch], "value", split, "parse", fields, ("timestamp",), 1_000_000)
        return [row for b in out for row in b.to_pylist()]

    for marker in (END_OF_INPUT, TICK):
        reason = "invalid JSON: Expecting value: line 1 column 1 (char 0)"
        rows = parse([good, marker, good], split=False)  # three messages
        assert [(r["_ok"], r["_reason"]) for r in rows] == [(True, None), (False, reason), (True, None)]
        rows = parse([b"\n".join([good, marker, good]) + b"\n"], split=True)  # a line inside a file
        assert [(r["_ok"], r["_reason"]) for r in rows] == [(True, None), (False, reason), (True, None)]
    # the line that ends a file is the marker it always was
    rows = parse([good + b"\n" + END_OF_INPUT + b"\n", TICK + b"\n"], split=True)
    assert len(rows) == 2 and rows[1]["_ok"] and rows[1]["_raw"] is None
    assert rows[1]["timestamp"] > rows[0]["timestamp"]


@pytest.mark.parametrize(
    ("build", "step", "words"),
    [
        (lambda e: e.map_one(lambda r: r, step_id="fn_map"), "fn_map", "map steps with functions"),
        (
            lambda e: e.window(TumblingWindow("1m"), key="event_type").agg(agg.count_distinct("user_id")),
            "window",
            "no streaming equivalent",
        ),
        (lambda e: e.filter_many(lambda df: df["amount"] > 0), "filter", "filter_many"),
        (  # the shared checks still run when the pipeline has an interval join
            lambda e: (
                e.join_interval(e, "user_id", lower="0s", upper="1m"),
                e.window(TumblingWindow("1m"), key="event_type", early=True).agg(agg.count()),
            ),
            "window",
            "early results",
        ),
        (  # the message named the join's watermark column as None
            lambda e: (
                e.join_interval(e, "user_id", lower="0s", upper="1m", step_id="pairs")
                .window(TumblingWindow("1m"), key="user_id", step_id="after_join")
                .agg(agg.count())
            ),
            "after_join",
            "comes out of 'pairs'.*cannot follow a window, join or pattern",
        ),
    ],
)
def test_refuses_steps_it_cannot_express(tmp_path: Path, build: Any, step: str, words: str) -> None:
    p, events = base("refused")
    build(events)
    with pytest.raises(PipelineConfigError, match=words) as err:
        to_spark(p, tmp_path)
    assert "Fix:" in str(err.value) and "cannot export to Spark" in str(err.value)
    assert f"step '{step}" in str(err.value)


def test_cli_exports_spark(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from streamlab.export import export_main
    from streamlab.sources import ReplaySource

    data = tmp_path / "events.jsonl"
    data.write_bytes(b"\n".join(x for x in IN_ORDER if x.startswith(b"{")) + b"\n")
    p = Pipeline(ReplaySource(data, raw=True), name="cli")
    events = p.parse(SCHEMA)
    events.window(TumblingWindow("1m"), key="event_type").agg(agg.count())
    spec = tmp_path / "spec.yaml"
    p.to_yaml(str(spec))
    assert export_main(["spark", str(spec), "-o", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "cli_spark.py").exists()
    assert "cli_spark.py" in capsys.readouterr().out
    assert p.to_spark(str(tmp_path / "facade")).module.name == "cli_spark.py"


def test_missing_pyspark_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from streamlab.export import spark as spark_export

    monkeypatch.setitem(sys.modules, "pyspark.sql", None)
    with pytest.raises(ImportError, match=r"pip install 'streamlab\[spark\]'.*openjdk-17"):
        spark_export.spark_session()


def test_a_difference_is_reported_not_hidden() -> None:
    from streamlab.export.spark import compare_spark, compared_streams
    from streamlab.export.verify import run_local

    p, events = base("tamper")
    events.window(TumblingWindow("1m"), key="event_type", delay="5s").agg(agg.count())
    local = run_local(p, list(FIXED_SAMPLE))  # three late rows
    compared = compared_streams(p, ["window", "parse.dead_letter"])
    same = {ref: local[ref].copy() for ref in compared}
    equal, diff, counts, _ = compare_spark(p, local, same, compared, {"window": 3}, batch_records=1)
    assert equal and len(diff) == 0 and counts["window.late"] == {"streamlab": 3, "spark": 3}
    # a count off by one in one window, and a late count that differs: both reported
    tampered = {ref: frame.copy() for ref, frame in same.items()}
    tampered["window"].loc[0, "count"] += 1
    equal, diff, _, _ = compare_spark(p, local, tampered, compared, {"window": 2}, batch_records=1)
    assert not equal
    assert set(diff["output"]) == {"window", "window.late"}
    assert set(diff["side"]) == {"streamlab", "spark", "count"}
    # without one record per batch, late counts are notes, not compared
    equal, _, counts, notes = compare_spark(p, local, same, compared, {"window": 0})
    assert equal and "window.late" not in counts
    assert any("streamlab reported 3 late rows; Spark dropped 0" in n for n in notes)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.binary().filter(lambda b: b"\n" not in b and not b.endswith(b"\r")), max_size=8))
def test_records_written_one_per_line_are_read_back(records: list[bytes]) -> None:
    """The generated job's line splitting (a file of records to records) inverts how verify writes them."""
    module = _generated_module()
    content = b"".join(r + b"\n" for r in records)
    if records and records[0].startswith(b"\xef\xbb\xbf"):  # the file's byte order mark (verify refuses it)
        records = [records[0][3:], *records[1:]]
    assert module.split_lines(content) == records


_MODULE: list[Any] = []


def _generated_module() -> Any:
    if not _MODULE:
        import tempfile

        from streamlab.export.verify import load_module

        out = to_spark(all_cases(), tempfile.mkdtemp(prefix="streamlab-spark-gen-"))
        _MODULE.append(load_module(out.module))
    return _MODULE[0]


def big(row: dict[str, Any]) -> bool:
    return row["amount"] is not None and row["amount"] > 1.0


def test_a_function_named_like_its_step_is_reached_through_user_functions(tmp_path: Path) -> None:
    """build() names DataFrames after steps; a step named like its function must still call the function."""
    import pyarrow as pa

    from streamlab.export.verify import load_module

    p, events = base("fn")
    events.filter_one(big, step_id="big")
    module = load_module(to_spark(p, tmp_path).module)
    assert module.USER_FUNCTIONS["big"]({"amount": 2.0}), "the generated table holds the user's function"
    schema = pa.schema([("amount", pa.float64()), ("timestamp", pa.timestamp("us", tz="UTC"))])
    batch = pa.RecordBatch.from_pylist([{"amount": 2.0}, {"amount": None}, {"amount": 0.5}], schema=schema)
    out = pa.Table.from_batches(
        list(
            module.filter_batches(
                [batch], schema, "filter_one(big)", module.USER_FUNCTIONS["big"], "timestamp"
            )
        )
    ).to_pylist()
    assert [r["amount"] for r in out] == [2.0]
    assert "USER_FUNCTIONS['big']" in Path(module.__file__).read_text()


def test_sessions_with_late_rows_are_compared_but_for_their_keys(spark: Any, tmp_path: Path) -> None:
    """A late row Spark counts can merge only sessions of its own key: the other keys' sessions are
    compared (a session output with late rows was left out whole, reported as ``0 vs 0`` and equal)."""
    p, events = base("sesslate")
    events.window(SessionWindow("30s"), key="user_id", step_id="session").agg(agg.count())
    sample = [
        record(1, BASE_MS + 5_000, "click", "u1", 1.0),
        record(2, BASE_MS + 10_000, "click", "u2", 1.0),
        record(3, BASE_MS + 100_000, "click", "u1", 1.0),
        record(4, BASE_MS + 20_000, "click", "u3", 1.0),  # late: its session [20s, 50s) closed at 100s
        record(5, BASE_MS + 110_000, "click", "u2", 1.0),
    ]
    report = verify(p, sample, target="spark", workdir=tmp_path)
    assert report.equal, report.diff
    assert report.counts["session"] == {"streamlab": 4, "spark": 4}  # u1 and u2: two sessions each
    assert any(n.startswith("session: sessions of 1 key(s) with late rows") for n in report.notes)
    assert report.not_compared == {} and "not compared" not in repr(report)


def test_an_output_left_out_whole_is_reported_as_not_compared() -> None:
    """Sessions without keys and late rows cannot be compared at all: the report says so in its repr, its
    ``not_compared`` and its counts (the rows each side made), where it said ``0 vs 0`` and equal."""
    import pandas as pd

    from streamlab.export._late import leave_out_late_windows
    from streamlab.export.verify import VerificationReport, not_compared

    p, events = base("all")
    events.window(SessionWindow("30s")).agg(agg.count())
    local = {"window": pd.DataFrame({"count": [2, 1]}), "window.late": pd.DataFrame({"user_id": ["u3"]})}
    exported = {"window": pd.DataFrame({"count": [3, 1]})}
    kept, theirs, notes = leave_out_late_windows(p, local, exported, "Spark")
    counts = {"window": {"streamlab": len(kept["window"]), "spark": len(theirs["window"])}}
    skipped = not_compared(notes, local, exported, counts, "spark")
    assert skipped == {"window": "streamlab reported 1 late rows, which Spark may pair or merge"}
    assert counts == {"window": {"streamlab": 2, "spark": 2}}
    report = VerificationReport("spark", True, pd.DataFrame(), counts, notes, not_compared=skipped)
    assert repr(report).startswith(
        "VerificationReport(spark: equal, 1 output not compared; window: not compared"
    )
    assert "not compared: streamlab reported 1 late rows" in report._repr_html_()


@pytest.mark.parametrize("window", [TumblingWindow("1m"), SessionWindow("1m")])
def test_late_windows_of_a_missing_key_are_left_out_without_failing(window: Any) -> None:
    """A late row whose window key is missing (the key None): pandas' ``str`` column keeps it NaN after
    ``astype(str)``, and joining the key texts raised a TypeError out of ``verify``. NaN and None in the
    exported side's frame are the same key. The key columns are streamlab's: ``str`` with NaN on pandas 3,
    objects with None on pandas 2 (whose ``str`` array would hold the text ``'nan'``)."""
    import pandas as pd

    from streamlab._compat import PANDAS_3
    from streamlab.export._late import leave_out_late_windows

    p = Pipeline(ListSource([b"{}"]))
    p.parse().window(window, key="user_id").agg(agg.count())
    t = pd.Timestamp("2024-01-01", tz="UTC")
    text = "str" if PANDAS_3 else object
    local = pd.DataFrame(
        {"user_id": pd.array(["u", None], dtype=text), "window_start": [t, t], "count": [1, 2]}
    )
    assert local["user_id"].isna().tolist() == [False, True]  # a missing key, not the text 'nan' or 'None'
    theirs = pd.DataFrame({"user_id": ["u", None], "window_start": [t, t], "count": [1, 3]})
    late = pd.DataFrame({"user_id": pd.array([None], dtype=text), "window_start": [t]})
    kept, other, notes = leave_out_late_windows(
        p, {"window": local, "window.late": late}, {"window": theirs}, "Spark"
    )
    assert kept["window"]["user_id"].tolist() == ["u"] and other["window"]["user_id"].tolist() == ["u"]
    assert len(notes) == 1


def test_a_window_after_a_dedup_runs_on_the_dedups_watermark_and_says_so(tmp_path: Path) -> None:
    from streamlab.detectors import ZScoreFeature
    from streamlab.export.spark import compare_spark, compared_streams, inherited_watermarks
    from streamlab.export.verify import run_local

    p, events = base("chain")
    uniq = events.dedup("event_id", ttl="1m")
    uniq.window(TumblingWindow("1m"), key="event_type", delay="5s").agg(agg.count())
    # a feature step shares the dedup's query: Spark allows one applyInPandasWithState in it, so the
    # dedup is dropDuplicatesWithinWatermark (not streamlab's rule), with a watermark
    uniq.apply(ZScoreFeature("user_id", "amount"), step_id="z")
    assert inherited_watermarks(p) == {"window": ("dedup", 60_000_000_000, 5_000_000_000)}
    code = to_spark(p, tmp_path).module.read_text()
    assert "# window: runs on the watermark of 'dedup' (60000 milliseconds behind" in code
    assert "takes the rows streamlab reports late" in code  # a ttl longer than the window's delay
    assert "are dropped at 'dedup'" in code  # a ttl shorter than the window's size + delay
    assert "Redefining watermark is disallowed" in code  # the module's docstring says why
    assert code.count(".withWatermark(") == 1
    # with one record per micro-batch, its late count is a note, not compared
    local = run_local(p, list(FIXED_SAMPLE))
    compared = compared_streams(p, ["window", "parse.dead_letter"])
    same = {ref: local[ref].copy() for ref in compared}
    inherited = inherited_watermarks(p)
    equal, _, counts, notes = compare_spark(p, local, same, compared, {"window": 0}, 1, inherited)
    assert equal and "window.late" not in counts
    assert any(n.startswith("window: runs on the watermark of 'dedup'") for n in notes)
    # without the dedup the window defines its own watermark
    q, events = base("own")
    events.window(TumblingWindow("1m"), key="event_type", delay="5s").agg(agg.count())
    assert inherited_watermarks(q) == {}


def test_times_below_the_microsecond_are_compared_as_spark_holds_them_and_named(
    spark: Any, tmp_path: Path
) -> None:
    """Spark's TIMESTAMP is microseconds: a session of an event at ...05.123456789Z once made verify report
    a plain mismatch of its bounds; now they are compared truncated to the microsecond, and said so."""
    p = Pipeline(ListSource([b"{}"]), name="ns")
    p.parse().window(SessionWindow("1m"), key="user_id").agg(agg.count())
    ts = "2024-01-01T00:00:05.123456789Z"
    sample = [b'{"event_id": "1", "user_id": "a", "event_type": "x", "timestamp": "%s"}' % ts.encode()]
    report = verify(p, sample, target="spark", workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    (note,) = [n for n in report.notes if "below the microsecond" in n]
    assert note.startswith("window: window_end and window_start have times with digits below the microsecond")
    assert "Spark's TIMESTAMP" in note and "compared truncated to the microsecond" in note


NULL_STRINGS = [
    b'{"event_id": "%d", "timestamp": "2024-01-01T00:00:%02dZ", "n": %s, "s": %s}' % (i, i, n, s)
    for i, (n, s) in enumerate(
        [
            (b"1", b'"abc"'),
            (b"null", b'"b"'),
            (b"3", b"null"),
            (b"5", b'"xa"'),
            (b"-4", b'"xyz"'),
            (b"3", b"null"),
        ]
    )
]


@pytest.mark.parametrize("after_a_feature", [False, True], ids=["filter", "filter after a feature"])
def test_a_filter_over_a_missing_string_keeps_the_rows_streamlab_keeps(
    spark: Any, tmp_path: Path, after_a_feature: bool
) -> None:
    """A missing string is a missing value of its type: ``s.str.contains('a') or n > 2`` keeps a row whose
    ``s`` is missing and ``n`` is 3. The Spark job dropped it (the expression failed on None: no column
    types were handed to it), and after a feature step the pandas mask read a missing answer as true."""
    from streamlab.detectors import TimeSinceLastFeature

    p = Pipeline(ListSource([b"{}"]), name="nulls")
    events = p.parse({"event_id": "string", "timestamp": "timestamp", "n": "int64", "s": "string"})
    if after_a_feature:  # (a window cannot follow a feature step on Spark: the filter's rows are the output)
        events.apply(TimeSinceLastFeature("event_id")).filter("s.str.contains('a') or n > 2", step_id="kept")
    else:
        kept = events.filter("s.str.contains('a') or n > 2", step_id="kept")
        kept.window(TumblingWindow("1m"), key="event_id").agg(agg.count())
    report = verify(p, NULL_STRINGS, target="spark", workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    out = report.exported["kept" if after_a_feature else "window"]
    assert sorted(out["event_id"].astype(int)) == [0, 2, 3, 5]


def test_an_event_exactly_gap_after_the_last_starts_a_new_session(spark: Any, tmp_path: Path) -> None:
    # streamlab's session is [first, last + gap) (Beam's Sessions too): an event at last + gap opens a new
    # one. Spark merges sessions that touch, so its job joined them (a: 1 session of 3, b: 1 of 2).
    p = Pipeline(ListSource([b"{}"]), name="touching")
    p.parse({"timestamp": "timestamp", "k": "string"}).window(
        SessionWindow("5s"), key="k", step_id="ses"
    ).agg(agg.count())
    at = [("05", "a"), ("10", "a"), ("14.999999", "a"), ("60", "b"), ("65", "b"), ("180", "c")]
    lines = [
        json.dumps(
            {
                "timestamp": (
                    pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(seconds=float(s))
                ).isoformat(),
                "k": k,
            }
        ).encode()
        for s, k in at
    ]
    report = verify(p, lines, target="spark", workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    got = report.exported["ses"].sort_values(["k", "window_start"])
    assert got["count"].tolist() == [1, 2, 1, 1, 1]  # a: [5, 10) and [10, 19.999999); b: two; c: one
    assert got["window_end"].tolist()[1] == "2024-01-01T00:00:19.999999Z"


def test_first_and_last_on_tied_event_times_take_the_earliest_and_latest_arrival(
    spark: Any, tmp_path: Path
) -> None:
    # many events share a second (second-resolution clocks): first is the earliest arrival among the
    # earliest time, last the latest arrival among the latest, in streamlab; the job's min_by/max_by on
    # event time alone took any tied row
    p = Pipeline(ListSource([b"{}"]), name="ties")
    p.parse({"timestamp": "timestamp", "k": "string", "v": "string"}).window(
        TumblingWindow("1m"), key="k", step_id="w"
    ).agg(agg.first("v"), agg.last("v"), agg.count())
    at = [(s, k, f"{k}{i}") for i, (s, k) in enumerate([(5, "a")] * 6 + [(9, "a")] * 6 + [(7, "b")] * 9)]
    at += [(70, "a", "next"), (200, "c", "end")]
    lines = [
        json.dumps(
            {
                "timestamp": (pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(seconds=s)).isoformat(),
                "k": k,
                "v": v,
            }
        ).encode()
        for s, k, v in at
    ]
    report = verify(p, lines, target="spark", workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    got = report.exported["w"].sort_values(["window_start", "k"])
    assert got["first_v"].tolist()[:2] == ["a0", "b12"] and got["last_v"].tolist()[:2] == ["a11", "b20"]
