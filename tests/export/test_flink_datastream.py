"""Flink export, DataStream job: late rows and duplicates as side outputs, equal to streamlab's run.

``datastream.py`` runs streamlab's per-event rules in one keyed process function. The property test
runs those generated rules in this process (no JVM) against streamlab on hypothesis samples with
disorder, late records, repeats and bad records; the engine test runs the job on Flink's mini-cluster
(in PyFlink's own virtual environment, see test_flink_export.py) once, through ``verify``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings

from streamlab import Pipeline, SessionWindow, SlidingWindow, TumblingWindow, agg
from streamlab.errors import PipelineConfigError
from streamlab.export import to_flink, verify
from streamlab.export.flink_datastream import datastream_compared, datastream_refusal
from streamlab.export.verify import compare, load_module, run_local
from streamlab.testing import ListSource

from ._samples import FIXED_SAMPLE, SCHEMA, samples

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def late_pipeline() -> Pipeline:
    """Dedup before a tumbling window with an offset and lateness, a keyed sliding window after a select,
    session windows with lateness, and a user's events joined with that user's events from 10 s before
    to a minute after (a select of them on the left, so that both sides have columns of the other)."""
    p = Pipeline(ListSource([b"{}"]), name="late_rows")
    events = p.parse(SCHEMA)
    events.window(SessionWindow("30s"), key="user_id", delay="5s", lateness="5s", step_id="visits").agg(
        agg.count(), agg.sum("amount"), agg.mean("amount"), agg.max("amount")
    )
    spend = events.select("user_id", "timestamp", "amount", kind="event_type")
    spend.join_interval(events, "user_id", lower="-10s", upper="1m", delay="10s", step_id="join")
    events.dedup("event_id", ttl="10m").window(
        TumblingWindow("1m", offset="15s"), key="event_type", delay="5s", lateness="10s", step_id="tumbling"
    ).agg(agg.count(), agg.sum("amount"), agg.mean("amount"), agg.count_distinct("user_id"))
    events.select("user_id", "timestamp", spend="amount").key_by("user_id").window(
        SlidingWindow("2m", every="1m"), delay="5s", step_id="sliding"
    ).agg(agg.count(), agg.min("spend"), agg.max("spend"))
    return p


def run_rules(path: Path, lines: list[bytes]) -> dict[str, pd.DataFrame]:
    """The generated module's per-event rules, driven as its keyed process function drives them."""
    module = load_module(path)
    rows: dict[str, list[dict[str, Any]]] = {ref: [] for ref in module.OUTPUTS}

    def emit(ref: str, row: dict[str, Any]) -> None:
        if ref in rows:
            rows[ref].append(row)

    state: dict[str, Any] = {}
    for line in lines:
        row = module.parse_line(line, emit)  # raw_stream reads records as bytes
        if row is not None:
            module.after_parse(row, state, emit)
    module.finish_rows(state, emit)
    for step in module.WINDOWS:
        module.close_windows(step, state, emit, final=True)
    for step in module.SESSIONS:
        module.close_sessions(step, state, emit, final=True)
    return {ref: pd.DataFrame(r) for ref, r in rows.items()}


def test_generated_rules_report_the_fixed_samples_late_rows(tmp_path: Path) -> None:
    """streamlab runs one record per batch: its interval join judges a batch's rows against the watermark
    before the batch, the generated rules each row as it arrives (windows and dedup do not depend on it)."""
    p = late_pipeline()
    files = to_flink(p, tmp_path, source="files")
    local = run_local(p, FIXED_SAMPLE, batch_size=1)
    exported = run_rules(files.directory / "datastream.py", FIXED_SAMPLE)
    equal, diff, counts = compare(p, local, exported, "flink", outputs=datastream_compared(p))
    assert equal, diff
    for ref in ("tumbling.late", "sliding.late", "visits.late", "join.late"):
        assert counts[ref]["flink"] > 0, ref
    assert counts["visits"] == {"streamlab": 6, "flink": 6} and counts["join"] == {"streamlab": 7, "flink": 7}
    assert counts["dedup.duplicates"] == {"streamlab": 1, "flink": 1}


def test_generated_rules_dead_letter_a_record_without_a_value(tmp_path: Path) -> None:
    """datastream.py's parse on a record without a value (a tombstone) raised TypeError (``parse_record``'s
    len(None)), failing the job on every restart; now it is streamlab's dead letter, and the rest is
    streamlab's results."""
    p = late_pipeline()
    files = to_flink(p, tmp_path, source="files")
    lines = [*FIXED_SAMPLE[:3], None, b"", *FIXED_SAMPLE[3:]]
    local = run_local(p, lines, batch_size=1)  # type: ignore[arg-type]
    exported = run_rules(files.directory / "datastream.py", lines)  # type: ignore[arg-type]
    equal, diff, _ = compare(p, local, exported, "flink", outputs=datastream_compared(p))
    assert equal, diff
    dead = exported["parse.dead_letter"]
    tombstone = dead[dead["reason"] == "null value (tombstone)"]
    assert len(tombstone) == 1 and tombstone["raw"].isna().all() and len(exported["tumbling"])


@settings(max_examples=25, deadline=None)
@given(samples())
def test_generated_rules_equal_streamlab(
    tmp_path_factory: pytest.TempPathFactory, lines: list[bytes]
) -> None:
    p = late_pipeline()
    files = to_flink(p, tmp_path_factory.mktemp("ds"), source="files")
    local = run_local(p, lines, batch_size=1)
    exported = run_rules(files.directory / "datastream.py", lines)
    equal, diff, counts = compare(p, local, exported, "flink", outputs=datastream_compared(p))
    assert equal, diff
    outputs = ("tumbling", "sliding", "visits", "join")
    assert set(counts) >= {*outputs, *(o + ".late" for o in outputs), "dedup.duplicates"}


def test_datastream_job_on_the_flink_engine_equals_streamlab(flink_python: str, tmp_path: Path) -> None:
    p = late_pipeline()
    report = verify(p, FIXED_SAMPLE, target="flink", workdir=tmp_path, flink_python=flink_python)
    assert report.equal, report.diff
    assert report.notes[0].startswith("Flink ran datastream.py")
    # the sample's late rows, repeat and bad records reach their own outputs, equal to streamlab's
    for ref in ("tumbling.late", "sliding.late", "visits.late", "join.late"):
        assert report.counts[ref]["flink"] == report.counts[ref]["streamlab"] > 0, ref
    assert report.counts["visits"]["flink"] == 6 and report.counts["join"]["flink"] == 7
    assert any("one record per batch" in n for n in report.notes)
    assert report.counts["dedup.duplicates"] == {"streamlab": 1, "flink": 1}
    assert report.counts["parse.dead_letter"] == {"streamlab": 2, "flink": 2}
    assert report.counts["tumbling"]["flink"] == len(report.local["tumbling"]) > 0
    late = report.exported["tumbling.late"]
    assert {"window_start", "window_end", "watermark"} <= set(late.columns)
    # a difference is reported, not hidden
    tampered = {**report.exported, "tumbling.late": late.iloc[1:]}
    equal, diff, _ = compare(p, report.local, tampered, "flink", outputs=datastream_compared(p))
    assert not equal and set(diff["output"]) == {"tumbling.late"} and set(diff["side"]) == {"streamlab"}


def test_generated_file_lints_and_names_its_outputs(tmp_path: Path) -> None:
    out = to_flink(late_pipeline(), tmp_path, source="kafka", sink="kafka")
    text = out.read("datastream.py")
    assert "\nimport streamlab" not in text and "\nfrom streamlab" not in text
    assert "class Steps(KeyedProcessFunction)" in text and "get_side_output" in text
    assert "'tumbling.late': 'tumbling_late'" in text and "'dedup.duplicates': 'dedup_duplicates'" in text
    lint = [
        sys.executable,
        "-m",
        "ruff",
        "check",
        "--config",
        str(PYPROJECT),
        str(out.directory / "datastream.py"),
    ]
    result = subprocess.run(lint, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout
    assert "datastream.py" in out.read("README.md")


def test_steps_it_cannot_run_are_named_and_the_sql_job_remains(tmp_path: Path) -> None:
    p = Pipeline(ListSource([b"{}"]), name="partitions")
    events = p.parse(SCHEMA)
    events.window(SessionWindow("30s"), key="user_id", step_id="visits").agg(agg.count())
    events.window(TumblingWindow("1m"), key="user_id", watermark_by="event_type", step_id="per_type").agg(
        agg.count()
    )
    why = "step 'per_type': early results and per-partition watermarks are not translated"
    assert datastream_refusal(p) == why
    out = to_flink(p, tmp_path / "out", source="files")
    assert "datastream.py" not in out.files and "main.py" in out.files
    assert why in out.read("README.md")
    with pytest.raises(PipelineConfigError, match=f"no datastream.py: {why}"):
        verify(p, FIXED_SAMPLE, target="flink", workdir=tmp_path / "v", flink_job="datastream")


def test_kafka_rows_over_the_record_limit_are_cut_to_fit(tmp_path: Path) -> None:
    """``--sink kafka``: every output's JSON goes through ``fit_kafka_value`` before Kafka's sink (a record
    over 1 MB would fail the job on every restart); the connector itself cannot be downloaded here."""
    import hashlib
    import json

    out = to_flink(late_pipeline(), tmp_path, source="kafka", sink="kafka")
    assert "stream.map(fit_kafka_value, output_type=Types.STRING()).sink_to(target)" in out.read(
        "datastream.py"
    )
    module = load_module(out.directory / "datastream.py")
    raw = '{"event_id": "' + "é\t" * 300_000
    value = json.dumps(module.raw_dead_letter_row(raw, "invalid JSON", "parse"))
    cut = json.loads(module.fit_kafka_value(value))
    assert len(module.fit_kafka_value(value).encode()) <= module.KAFKA_MESSAGE_LIMIT
    assert cut["raw_truncated"] is True and raw.startswith(cut["raw"]) and cut["reason"] == "invalid JSON"
    assert cut["raw_sha256"] == hashlib.sha256(raw.encode()).hexdigest()
    small = json.dumps({"count": 3, "user_id": "u1"})
    assert module.fit_kafka_value(small) is small


JSON_KEYS = {"event_id": "string", "timestamp": "timestamp", "tag": "json", "v": "json"}
# tags: an object and an array (no key: to the windows' dead letters), 1, 1.0, true and "1" (four keys,
# Python holds the first three equal), twice each; "q" in v is no number for agg.sum('v')
TAGS = ['"x"', '{"a": 1}', "[1, 2]", "1", "1.0", "true", '"1"', "null", "1", "1.0", "true", '"1"']


def json_keyed() -> Pipeline:
    """Tumbling, sliding and session windows and a dedup keyed by a ``json`` field."""
    p = Pipeline(ListSource([b"{}"]), name="json_keys")
    events = p.parse(JSON_KEYS)
    events.window(TumblingWindow("1m"), key="tag", step_id="tumbling").agg(agg.count(), agg.sum("v"))
    events.window(SlidingWindow("2m", every="1m"), key="tag", step_id="sliding").agg(agg.count())
    events.window(SessionWindow("1m"), key="tag", step_id="visits").agg(agg.count(), agg.count_distinct("v"))
    events.dedup("tag", step_id="dedup")
    return p


def json_key_lines() -> list[bytes]:
    values = ['"q"', *map(str, range(1, len(TAGS)))]
    return [
        f'{{"event_id": "e{i}", "timestamp": "2024-01-01T00:00:{i:02d}Z", "tag": {tag}, "v": {v}}}'.encode()
        for i, (tag, v) in enumerate(zip(TAGS, values, strict=True))
    ]


def test_generated_rules_set_aside_unfit_keys_and_tell_json_keys_apart(tmp_path: Path) -> None:
    """A dict or a list as a window's key goes to its dead letters with streamlab's reason (the job used
    to fail: unhashable type), and ``true``, ``1``, ``1.0`` and ``"1"`` are four window keys and four
    dedup ids (the job merged the first three)."""
    p = json_keyed()
    to_flink(p, tmp_path, source="files")
    local = run_local(p, json_key_lines(), batch_size=1)
    exported = run_rules(tmp_path / "datastream.py", json_key_lines())
    equal, diff, counts = compare(p, local, exported, "flink", outputs=datastream_compared(p))
    assert equal, diff
    for step in ("tumbling", "sliding", "visits"):
        reasons = sorted(exported[f"{step}.dead_letter"]["reason"])
        assert reasons[-2:] == [
            "key column 'tag' holds dict {'a': 1}, which cannot be a key",
            "key column 'tag' holds list [1, 2], which cannot be a key",
        ], step
    assert "agg.sum('v') needs a number, got str 'q'" in set(exported["tumbling.dead_letter"]["reason"])
    counted = dict(zip(map(repr, exported["tumbling"]["tag"]), exported["tumbling"]["count"], strict=True))
    assert counted == {"'1'": 2, "1": 2, "1.0": 2, "True": 2, "None": 1}  # "x": its v is no number
    assert counts["visits"] == {"streamlab": 6, "flink": 6}  # "x" too: count_distinct takes "q"
    assert sorted(map(repr, exported["dedup.duplicates"]["tag"])) == sorted(map(repr, ["1", 1, 1.0, True]))


def test_json_keyed_windows_on_the_flink_engine_equal_streamlab(flink_python: str, tmp_path: Path) -> None:
    report = verify(
        json_keyed(), json_key_lines(), target="flink", workdir=tmp_path, flink_python=flink_python
    )
    assert report.equal, report.diff
    assert report.counts["tumbling"] == {"streamlab": 5, "flink": 5}
    assert report.counts["visits.dead_letter"] == {"streamlab": 2, "flink": 2}
    assert report.counts["dedup.duplicates"] == {"streamlab": 4, "flink": 4}


NULL_TEXT = {"event_id": "string", "timestamp": "timestamp", "n": "int64", "s": "string"}
# (n, s) of rows 0 to 6: rows 2 and 5 have no s and n = 3, row 6 neither
NULL_TEXT_ROWS = (
    ("1", '"abc"'),
    ("null", '"b"'),
    ("3", "null"),
    ("5", '"xa"'),
    ("-4", '"xyz"'),
    ("3", "null"),
    ("null", "null"),
)


def null_text() -> Pipeline:
    """Filters and ``with_columns`` calling ``.str`` methods on a string column with missing values; a
    window keyed by ``event_id`` after each shows which rows passed, with what."""
    p = Pipeline(ListSource([b"{}"]), name="null_text")
    events = p.parse(NULL_TEXT)
    for sid, expr in (("either", "s.str.contains('a') or n > 2"), ("without", "not s.str.contains('a')")):
        events.filter(expr, step_id=sid).window(TumblingWindow("1m"), key="event_id", step_id=sid + "_w").agg(
            agg.count()
        )
    measured = events.with_columns(t="s.str.len()", u="s.str.upper().str.len() + n", step_id="measured")
    measured.filter("t.isna() or t < 3", step_id="short").window(
        TumblingWindow("1m"), key="event_id", step_id="lengths"
    ).agg(agg.count(), agg.max("t"), agg.max("u"))
    return p


def null_text_lines() -> list[bytes]:
    return [
        f'{{"event_id": "{i}", "timestamp": "2024-01-01T00:00:{i:02d}Z", "n": {n}, "s": {s}}}'.encode()
        for i, (n, s) in enumerate(NULL_TEXT_ROWS)
    ]


def kept(frames: dict[str, pd.DataFrame], ref: str) -> list[int]:
    return sorted(frames[ref]["event_id"].astype(int)) if len(frames.get(ref, [])) else []


def test_generated_rules_under_pyflinks_pandas_keep_rows_without_a_string(
    flink_python: str, tmp_path: Path
) -> None:
    """PyFlink's workers run pandas < 2.3, which holds a missing string as an object whose ``.str``
    methods answer NaN: ``s.str.contains('a') or n > 2`` dropped rows 2 and 5, and ``not
    s.str.contains('a')`` sent rows 2, 5 and 6 to the dead letters (TypeError), where streamlab (pandas 3's
    string dtype: a test of a missing string is False) keeps them. The generated rules, run by PyFlink's
    Python without the JVM, equal streamlab's run."""
    import json

    p = null_text()
    to_flink(p, tmp_path, source="files")
    script = (
        "import importlib.util, json, sys\n"
        "spec = importlib.util.spec_from_file_location('job', sys.argv[1])\n"
        "job = importlib.util.module_from_spec(spec)\n"
        "spec.loader.exec_module(job)\n"
        "import pandas\n"
        "rows = {ref: [] for ref in job.OUTPUTS}\n"
        "emit = lambda ref, row: rows[ref].append(row) if ref in rows else None\n"
        "state = {}\n"
        "for line in sys.stdin:\n"
        "    row = job.parse_line(line.rstrip('\\n'), emit)\n"
        "    if row is not None:\n"
        "        job.after_parse(row, state, emit)\n"
        "for step in job.WINDOWS:\n"
        "    job.close_windows(step, state, emit, final=True)\n"
        "print(json.dumps([pandas.__version__, rows], default=job.json_default))\n"
    )
    lines = null_text_lines()
    done = subprocess.run(
        [flink_python, "-c", script, str(tmp_path / "datastream.py")],
        input="\n".join(line.decode() for line in lines),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    version, rows = json.loads(done.stdout)
    assert int(version.split(".")[0]) < 3  # the pandas the engine runs, not this process's
    exported = {ref: pd.DataFrame(r) for ref, r in rows.items()}
    local = run_local(p, lines, batch_size=1)
    equal, diff, _ = compare(p, local, exported, "flink", outputs=datastream_compared(p))
    assert equal, diff
    assert kept(exported, "either_w") == [0, 2, 3, 5] and kept(exported, "without_w") == [1, 2, 4, 5, 6]
    assert kept(exported, "lengths") == [1, 2, 3, 5, 6]
    assert not rows["measured.dead_letter"] and not rows["without.dead_letter"]


def test_missing_strings_on_the_flink_engine_equal_streamlab(flink_python: str, tmp_path: Path) -> None:
    report = verify(
        null_text(), null_text_lines(), target="flink", workdir=tmp_path, flink_python=flink_python
    )
    assert report.equal, report.diff
    assert kept(report.exported, "either_w") == [0, 2, 3, 5]
    assert kept(report.exported, "without_w") == [1, 2, 4, 5, 6]
    assert kept(report.exported, "lengths") == [1, 2, 3, 5, 6]


def zero_keyed() -> Pipeline:
    """A window keyed by a float64 column, whose string field must be valid UTF-8."""
    p = Pipeline(ListSource([b"{}"]), name="zero_keys")
    p.parse({"event_id": "string", "timestamp": "timestamp", "k": "float64", "s": "string"}).window(
        TumblingWindow("10s"), key="k"
    ).agg(agg.count(), agg.first("timestamp", name="first_ts"))
    return p


ZERO_KEY_LINES = [
    b'{"event_id": "e1", "timestamp": "2024-01-01T00:00:01.000000100Z", "k": 0.0, "s": "a"}',
    b'{"event_id": "e2", "timestamp": "2024-01-01T00:00:02Z", "k": -0.0, "s": "b"}',
    b'{"event_id": "e3", "timestamp": "2024-01-01T00:00:03Z", "k": 1.5, "s": "\xff"}',  # invalid UTF-8
    b'{"event_id": "e4", "timestamp": "2024-01-01T00:00:04Z", "k": 1.5, "s": "\xed\xa0\x80"}',  # surrogate
    b'{"event_id": "e5", "timestamp": "2024-01-01T00:00:30Z", "k": 2.0, "s": "c"}',
    b'{"event_id": "e6", "timestamp": "2024-01-01T00:00:05.123456789Z", "k": -0.0, "s": "d"}',  # late
]


def test_generated_rules_key_minus_zero_as_zero(tmp_path: Path) -> None:
    """0.0 and -0.0 are one key in streamlab (keys are values): the job's ``group_key`` held them as the
    texts "0.0" and "-0.0", two windows."""
    p = zero_keyed()
    to_flink(p, tmp_path, source="files")
    exported = run_rules(tmp_path / "datastream.py", ZERO_KEY_LINES)
    assert sorted(zip(exported["window"]["k"], exported["window"]["count"])) == [(0.0, 2), (2.0, 1)]
    assert len(exported["parse.dead_letter"]) == 2
    local = run_local(p, ZERO_KEY_LINES, batch_size=1)
    equal, diff, _ = compare(p, local, exported, "flink", outputs=datastream_compared(p), time_unit_ns=1_000)
    assert equal, diff


def test_bytes_zero_keys_and_finer_times_on_the_flink_engine_equal_streamlab(
    flink_python: str, tmp_path: Path
) -> None:
    """The job reads records as bytes, so invalid UTF-8 goes to ``parse.dead_letter`` as in streamlab (a
    text reader replaced it with U+FFFD and the records were counted); -0.0 is 0.0's key; times with
    digits below the microsecond are compared at it, with a note."""
    report = verify(zero_keyed(), ZERO_KEY_LINES, target="flink", workdir=tmp_path, flink_python=flink_python)
    assert report.equal, report.diff
    assert report.counts["parse.dead_letter"] == {"streamlab": 2, "flink": 2}
    reasons = report.exported["parse.dead_letter"]["reason"].tolist()
    assert all(r.startswith("invalid UTF-8") for r in reasons), reasons
    assert report.counts["window"] == {"streamlab": 2, "flink": 2}
    assert report.counts["window.late"] == {"streamlab": 1, "flink": 1}
    finer = [n for n in report.notes if "digits below the microsecond" in n]
    assert [n.split(":")[0] for n in finer] == ["window", "window.late"], report.notes


def test_a_flink_2_job_reads_kinesis_through_the_kinesis_table(flink_python: str, tmp_path: Path) -> None:
    # datastream.py for Flink 2 read Kinesis with the FlinkKinesisConsumer, which Flink 2 removed with
    # SourceFunction (no Flink 2 connector jar has it). Run as deployed, it now declares the 'kinesis'
    # table job.sql uses and gets as far as looking up its connector, the jar this machine cannot fetch.
    import os

    p = Pipeline(ListSource([b"{}"]), name="kinesis_reader")
    p.parse(SCHEMA).filter("event_type == 'click'").window(TumblingWindow("1m")).agg(agg.count())
    out = to_flink(p, tmp_path / "job", source="kinesis")
    env = {**os.environ, "KINESIS_STREAM_ARN": "arn:aws:kinesis:us-east-1:000000000000:stream/s"}
    env["AWS_REGION"] = "us-east-1"
    cmd = [flink_python, "datastream.py", "--source", "kinesis", "--output", str(tmp_path / "out")]
    done = subprocess.run(cmd, cwd=out.directory, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "Could not find any factory for identifier 'kinesis'" in done.stderr, done.stderr[-3000:]
    assert "'stream.arn'='arn:aws:kinesis:us-east-1:000000000000:stream/s'" in done.stderr
