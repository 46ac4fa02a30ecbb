"""Flink export: the generated PyFlink job runs on Flink's local mini-cluster and equals streamlab's run.

PyFlink (``apache-flink``) pins apache-beam, pandas and pyarrow versions that conflict with this
environment, so it runs in its own virtual environment: ``scripts/test.sh`` starts building it in the
background (``python -m streamlab.export.flink --prepare``: 150 s cold here, 300 s under load) and the ``flink_python``
fixture waits for it on a file lock, or builds it itself under ``$STREAMLAB_CACHE``. It never skips:
when PyFlink cannot be installed the tests fail and say why. The JVM starts once per job; every
engine case (tumbling, sliding and session windows, dedup, an interval join, dead letters) runs in
one job.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import Pipeline, SessionWindow, SlidingWindow, TumblingWindow, agg
from streamlab.errors import PipelineConfigError
from streamlab.export import export_main, to_flink, verify
from streamlab.export.flink import flink_notes
from streamlab.export.verify import compare
from streamlab.sources import ReplaySource
from streamlab.testing import ListSource

from ._samples import BAD_RECORDS, BASE_MS, FIXED_SAMPLE, KEYS, SCHEMA, USERS, record

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def every_case() -> Pipeline:
    """Tumbling (after dedup), sliding and session windows, an interval join, dead letters and a keyed,
    offset window with lateness after a select."""
    p = Pipeline(ListSource([b"{}"]), name="every_case")
    events = p.parse(SCHEMA)
    unique = events.dedup("event_id", ttl="10m")
    unique.window(TumblingWindow("1m"), key="event_type", delay="5s", step_id="tumbling").agg(
        agg.count(), agg.sum("amount"), agg.mean("amount"), agg.max("amount"), agg.count_distinct("user_id")
    )
    events.window(SlidingWindow("2m", every="1m"), key="event_type", delay="5s", step_id="sliding").agg(
        agg.count(), agg.min("amount")
    )
    events.window(SessionWindow("30s"), key="user_id", delay="5s", step_id="session").agg(
        agg.count(), agg.sum("amount")
    )
    events.join_interval(events, on="user_id", lower="-20s", upper="20s", delay="5s", step_id="join")
    # key_by, an offset and allowed lateness (folded into Flink's watermark delay)
    by_user = events.select("user_id", "timestamp", spend="amount").key_by("user_id")
    by_user.window(TumblingWindow("1m", offset="15s"), delay="5s", lateness="10s", step_id="offset").agg(
        agg.count(), agg.mean("spend")
    )
    # a pattern step, as MATCH_RECOGNIZE: two clicks, then a buy, within a minute
    events.pattern(
        "user_id",
        [("clicks", "event_type == 'click'", 2), ("buy", "event_type == 'buy'")],
        within="1m",
        delay="5s",
        step_id="pattern",
    )
    return p


def late_case() -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="late")
    events = p.parse(SCHEMA)
    events.dedup("event_id", ttl="10m").window(
        TumblingWindow("1m"), key="event_type", delay="5s", step_id="tumbling"
    ).agg(agg.count(), agg.sum("amount"))
    events.window(SessionWindow("30s"), key="user_id", delay="5s", step_id="session").agg(agg.count())
    return p


def late_free_sample(seed: int = 7, n: int = 40) -> list[bytes]:
    """Disorder within the 5 s delay, repeats right after their first copy, bad records: nothing late."""
    rng = random.Random(seed)
    times = sorted(rng.randrange(0, 360_000) for _ in range(n))
    events = [
        (t, record(i, BASE_MS + t, rng.choice(KEYS), rng.choice(USERS), rng.choice([None, 1.5, 2.0, 4.25])))
        for i, t in enumerate(times)
    ]
    for j in range(len(events) - 1):  # swap neighbours less than 4 s apart
        if events[j + 1][0] - events[j][0] < 4_000 and rng.random() < 0.5:
            events[j], events[j + 1] = events[j + 1], events[j]
    lines = [e for _, e in events]
    for j in (3, 17, 30):
        lines.insert(j + 1, lines[j])
    for j, bad in zip((5, 12, 25, 33), BAD_RECORDS):
        lines.insert(j, bad)
    # the pattern's time bound at its edge: a match spanning exactly 1m, and one 1 ms too long
    edge = [(400_000, "click"), (410_000, "click"), (460_000, "buy")]
    too_long = [(520_000, "click"), (525_000, "click"), (580_001, "buy")]
    for i, (t, key) in enumerate([*edge, *too_long]):
        lines.append(record(1000 + i, BASE_MS + t, key, "u9", 1.0))
    return lines


def test_generated_job_on_the_flink_engine_equals_streamlab(flink_python: str, tmp_path: Path) -> None:
    """main.py through verify(), job.sql through run_sql.py (the SQL client's path) and a sample with
    late rows through verify(), as three jobs at once (the JVM's start dominates each)."""
    p = every_case()
    lines = late_free_sample()
    sql_dir, sql_out = tmp_path / "sql", tmp_path / "sql-out"
    # job.sql as written for Flink 1.18, whose SESSION table function does not run on streams
    sql_files = to_flink(p, sql_dir, source="files", flink_version="1.18")
    assert (
        "GROUP BY `user_id`, SESSION(`timestamp`, INTERVAL '0 00:00:29.999' DAY TO SECOND(3))"
        in sql_files.read("job.sql")
    )
    assert sql_files.read("requirements.txt") == "apache-flink==1.18.*\n"
    sample = tmp_path / "sample.jsonl"
    sample.write_bytes(b"".join(x + b"\n" for x in lines))
    env = {**os.environ, "INPUT_PATH": str(sample), "OUTPUT_PATH": str(sql_out)}
    cmd = [flink_python, "run_sql.py", "job.sql", "--parallelism", "1"]
    sql_job = subprocess.Popen(
        cmd, cwd=sql_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    # a third job at the same time: a sample with late rows, through verify() of the SQL job (its
    # datastream.py would report the late rows; test_flink_datastream.py runs that)
    pool = ThreadPoolExecutor(1)
    with_late = pool.submit(
        verify,
        late_case(),
        FIXED_SAMPLE,
        target="flink",
        workdir=tmp_path / "late",
        flink_python=flink_python,
        flink_job="sql",
    )
    try:
        report = verify(
            p, lines, target="flink", workdir=tmp_path / "main", flink_python=flink_python, flink_job="sql"
        )
        sql_log, _ = sql_job.communicate(timeout=600)
        late_report = with_late.result(timeout=600)
    finally:
        sql_job.kill()
        pool.shutdown(wait=True)
    # the sample is free of late rows in streamlab's run, so every output must be equal
    assert all(len(f) == 0 for ref, f in report.local.items() if ref.endswith(".late"))
    assert report.equal, report.diff
    for ref in ("tumbling", "sliding", "session", "join", "offset", "parse.dead_letter", "pattern"):
        counts = report.counts[ref]
        assert counts["streamlab"] == counts["flink"] > 0, (ref, counts)
    # MATCH_RECOGNIZE took the events streamlab's rule takes; at the time bound's edge, one match
    by_u9 = report.exported["pattern"].query("user_id == 'u9'")
    assert by_u9["event_ids"].tolist() == [["e1000", "e1001", "e1002"]]
    # dedup ran: three repeats, and the tumbling counts are of unique ids
    assert report.local["dedup.duplicates"].shape[0] == 3
    assert report.exported["tumbling"]["count"].sum() == 46
    assert report.counts["parse.dead_letter"] == {"streamlab": 4, "flink": 4}
    reasons = sorted(report.exported["parse.dead_letter"]["reason"])
    assert reasons == sorted(report.local["parse.dead_letter"]["reason"])
    assert any(r.startswith("invalid JSON") for r in reasons) and "empty record" in reasons
    assert "flink: equal" in report._repr_html_()
    # a difference is reported, not hidden: tamper with the engine's rows
    tampered = dict(report.exported)
    tampered["tumbling"] = report.exported["tumbling"].assign(count=lambda f: f["count"] + 1)
    equal, diff, _ = compare(p, report.local, tampered, "flink")
    assert not equal and set(diff["output"]) == {"tumbling"} and set(diff["side"]) == {"streamlab", "flink"}
    # job.sql, as the SQL client runs it: the same rows, except that its dead letters have a coarse reason
    assert sql_job.returncode == 0, sql_log[-3000:]
    from streamlab.export.flink import read_outputs

    by_sql = read_outputs(sql_out, {ref: ref.replace(".", "_") for ref in report.exported})
    equal, diff, counts = compare(
        p, report.local, {**by_sql, "parse.dead_letter": report.exported["parse.dead_letter"]}, "flink"
    )
    assert equal, diff
    assert len(by_sql["parse.dead_letter"]) == 4 and sql_files.files["run_sql.py"].exists()
    # with late rows: windows without late rows in streamlab are equal; the others are named and left out
    assert late_report.equal, late_report.diff
    assert late_report.counts["tumbling"] == {"streamlab": 3, "flink": 3}
    assert len(late_report.local["tumbling"]) == 3  # of 5 windows: the 2 with late rows are left out
    assert any(n.startswith("tumbling: 2 window(s) with late rows") for n in late_report.notes)
    # sessions: only those of the keys with late rows are left out, the others compared
    assert any(n.startswith("session: sessions of") for n in late_report.notes)
    assert "session" not in late_report.not_compared and late_report.counts["session"]["flink"] > 0


def test_kafka_dead_letters_over_the_record_limit_are_cut_to_fit(tmp_path: Path) -> None:
    """``--sink kafka``: a dead letter over Kafka's 1 MB record (which would fail the job on every restart)
    keeps the start of its raw record, and its reason says what was cut. (The job's Kafka connector cannot be
    downloaded here: the parse function of main.py is run as the job's Parse runs it.)"""
    import hashlib
    import json

    from streamlab.export.verify import load_module

    out = to_flink(every_case(), tmp_path, source="kafka", sink="kafka")
    assert 'build(env, t_env, raw_stream(env, args), KAFKA_MESSAGE_LIMIT if args.sink == "kafka"' in out.read(
        "main.py"
    )
    main = load_module(tmp_path / "main.py")
    line = '{"event_id": "' + "é\t" * 300_000  # not JSON: 0.9 MB of text, 2.4 MB once escaped in JSON
    limit = main.KAFKA_MESSAGE_LIMIT
    _, (raw, reason, step) = main.parse_line(line, limit)
    assert len(json.dumps({"raw": raw, "reason": reason, "step_id": step}).encode()) <= limit
    assert line.startswith(raw) and len(raw) > 100_000 and step == main.PARSE_STEP
    digest = hashlib.sha256(line.encode()).hexdigest()
    assert (
        reason.startswith("invalid JSON")
        and f"raw truncated: {len(line.encode())} bytes, sha256 {digest}" in reason
    )
    assert main.parse_line(line)[1][0] == line  # no limit (files, JDBC): the whole record
    assert main.parse_line("not json", limit)[1][:2] == ("not json", main.parse_line("not json")[1][1])


def test_generated_files(tmp_path: Path) -> None:
    out = to_flink(every_case(), tmp_path, source="kafka", sink="jdbc")
    assert sorted(out.files) == [
        "README.md",
        "datastream.py",  # its late rows and duplicates, and streamlab's own pattern
        "job.sql",
        "main.py",
        "main.tf",
        "requirements.txt",
        "run_sql.py",
    ]
    sql = out.read("job.sql")
    # 5 s delay, 10 s lateness, and 1 ms: Flink fires at end - 1 ms, streamlab at the end
    assert "WATERMARK FOR `timestamp` AS `timestamp` - INTERVAL '0 00:00:15.001' DAY TO SECOND(3)" in sql
    assert "TABLE(TUMBLE(TABLE `dedup`, DESCRIPTOR(`timestamp`), INTERVAL '1' MINUTE))" in sql
    assert (
        "TABLE(HOP(TABLE `parse`, DESCRIPTOR(`timestamp`), INTERVAL '1' MINUTE, INTERVAL '2' MINUTE))" in sql
    )
    assert (
        "SESSION(TABLE `parse` PARTITION BY `user_id`, DESCRIPTOR(`timestamp`), INTERVAL '0 00:00:29.999' DAY TO SECOND(3))"
        in sql
    )
    assert "ROW_NUMBER() OVER (PARTITION BY `event_id` ORDER BY `__proc` ASC)" in sql
    assert (
        "R.`timestamp` BETWEEN L.`timestamp` + INTERVAL '-20' SECOND AND L.`timestamp` + INTERVAL '20' SECOND"
        in sql
    )
    assert "'password' = '${JDBC_PASSWORD}'" in sql and "'connector' = 'kafka'" in sql
    main = out.read("main.py")
    # the project's own lint rules, applied to the generated module
    lint = [
        sys.executable,
        "-m",
        "ruff",
        "check",
        "--config",
        str(PYPROJECT),
        str(out.module),
        str(out.directory / "run_sql.py"),
    ]
    result = subprocess.run(lint, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout
    assert "\nimport streamlab" not in main and "\nfrom streamlab" not in main and "def read_record(" in main
    assert "What differs from streamlab's per-event semantics" in main
    readme = out.read("README.md")
    assert "flink run -py main.py" in readme and "sql-client.sh -f" in readme
    assert "Verified here on files only" in readme and "flink-sql-connector-kafka" in readme
    assert "flink-connector-jdbc" in readme
    tf = out.read("main.tf")
    # a job for Flink 2.3 (its connector jars are 2.x builds): the service's newest 2.x runtime, whose
    # PyFlink requirements.txt pins (test_flink_runtime.py)
    assert 'resource "aws_kinesisanalyticsv2_application" "job"' in tf and '"FLINK-2_2"' in tf
    assert out.read("requirements.txt").endswith("\napache-flink==2.2.*\n")


def big(row: dict[str, object]) -> bool:
    """A filter in Python: neither Flink job carries user functions."""
    return bool(row["amount"])


@pytest.mark.parametrize(
    ("build", "step", "words"),
    [
        (lambda s: s.filter_one(big, step_id="filter"), "filter", "Python code.*nor can the DataStream job"),
        (lambda s: s.window(TumblingWindow("1m"), early=True).agg(agg.count()), "window", "early results"),
    ],
)
def test_steps_flink_cannot_run_are_refused_by_name(build, step: str, words: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    p = Pipeline(ListSource([b"{}"]), name="refused")
    build(p.parse(SCHEMA))
    with pytest.raises(PipelineConfigError, match=f"step '{step}'.*cannot export to Flink SQL.*{words}"):
        to_flink(p, tmp_path)


def test_pubsub_is_refused_with_the_alternative(tmp_path: Path) -> None:
    p = Pipeline(ListSource([b"{}"]), name="x")
    p.parse(SCHEMA).window(TumblingWindow("1m")).agg(agg.count())
    with pytest.raises(PipelineConfigError, match="bridge Pub/Sub to Kafka"):
        to_flink(p, tmp_path, source="pubsub")


def test_cli_exports_flink(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(record(1, BASE_MS, "click", "u1", 1.0) + b"\n")
    p = Pipeline(ReplaySource(str(events), raw=True), name="cli")
    p.parse(SCHEMA).window(TumblingWindow("1m"), key="event_type").agg(agg.count())
    spec = tmp_path / "spec.yaml"
    p.to_yaml(str(spec))
    assert export_main(["flink", str(spec), "-o", str(tmp_path / "out"), "--source", "kinesis"]) == 0
    assert "main.py" in capsys.readouterr().out
    assert "'connector' = 'kinesis'" in (tmp_path / "out" / "job.sql").read_text()


def test_late_rows_are_named_in_the_notes() -> None:
    p = every_case()
    local = {"tumbling.late": pd.DataFrame({"x": [1, 2]}), "sliding.late": pd.DataFrame()}
    notes = flink_notes(p, local)
    assert any("tumbling.late: 2" in n and "without late data" in n for n in notes)
    assert notes[0].startswith("Flink ran main.py")


def _interval_ns(literal: str) -> int:
    """The duration a Flink interval literal written by the exporter stands for (the oracle). Flink's
    day precision is two digits by default and three at most (``DAY(3)``): longer is a product."""
    import re

    m = re.fullmatch(r"\((.*) \+ INTERVAL '(-?)999' DAY\(3\) \* (\d+)\)", literal)
    if m:
        whole = 999 * int(m.group(3)) * 86_400 * 10**9
        return _interval_ns(m.group(1)) + (-whole if m.group(2) else whole)
    m = re.fullmatch(
        r"INTERVAL '(-?)(\d+) (\d\d):(\d\d):(\d\d)\.(\d{3})' (DAY|DAY\(3\)) TO SECOND\(3\)", literal
    )
    if m:
        d, h, mi, s, ms = (int(x) for x in m.groups()[1:6])
        assert d < (100 if m.group(7) == "DAY" else 1000), literal
        ns = ((((d * 24 + h) * 60 + mi) * 60 + s) * 1000 + ms) * 1_000_000
        return -ns if m.group(1) else ns
    m = re.fullmatch(r"INTERVAL '(-?\d+)' (DAY|HOUR|MINUTE|SECOND|DAY\(3\))", literal)
    assert m, literal
    unit = {"DAY": 86_400, "HOUR": 3_600, "MINUTE": 60, "SECOND": 1, "DAY(3)": 86_400}[m.group(2)]
    assert abs(int(m.group(1))) < (1000 if m.group(2) == "DAY(3)" else 100), literal
    return int(m.group(1)) * unit * 1_000_000_000


@settings(max_examples=200, deadline=None)
@given(st.integers(-(10**11), 10**11))
def test_interval_literals_stand_for_the_duration(ms: int) -> None:
    from streamlab.export.flink import _interval

    assert _interval_ns(_interval(ms * 1_000_000)) == ms * 1_000_000


def test_an_environment_that_cannot_be_installed_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamlab.export import flink

    monkeypatch.setenv("STREAMLAB_CACHE", str(tmp_path))
    monkeypatch.delenv("STREAMLAB_FLINK_PYTHON", raising=False)
    monkeypatch.setattr(flink, "FLINK_VERSION", "0.0.0.dev0-not-released")
    with pytest.raises(
        RuntimeError, match=r"(?s)cannot install PyFlink 0\.0\.0\.dev0-not-released.*STREAMLAB_FLINK_PYTHON"
    ):
        flink.ensure_flink_python(timeout=300)
    assert not (flink.flink_env_dir() / "ready").exists()
    assert flink.flink_env_dir().name.startswith("pyflink-0.0.0.dev0-not-released-")


def test_waiting_for_another_install_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fcntl

    from streamlab.export import flink

    monkeypatch.setenv("STREAMLAB_CACHE", str(tmp_path))
    monkeypatch.delenv("STREAMLAB_FLINK_PYTHON", raising=False)
    home = flink.flink_env_dir()
    home.mkdir(parents=True)
    with open(home / "lock", "w") as held:  # as scripts/test.sh's background build holds it
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(
            RuntimeError, match=r"another process has been installing PyFlink .* build/pyflink-env\.log"
        ):
            flink.ensure_flink_python(timeout=1)


def test_terraform_is_valid_hcl_for_managed_flink(tmp_path: Path) -> None:
    from ._tf import block, parse

    out = to_flink(every_case(), tmp_path, source="eventhubs", sink="kafka")
    tf = parse(out.read("main.tf"))
    app = tf["resource"][("aws_kinesisanalyticsv2_application", "job")]
    assert app["runtime_environment"] == "FLINK-2_2"
    config = block(app, "application_configuration")
    groups = block(config, "environment_properties")["property_group"]
    options = {g["property_group_id"]: g["property_map"] for g in groups}
    assert options["kinesis.analytics.flink.run.options"]["python"] == "main.py"
    assert options["streamlab.job"]["source"] == "eventhubs" and options["streamlab.job"]["sink"] == "kafka"
    assert {"code_bucket", "service_role_arn", "secret_arn"} <= set(tf["variable"])
    # secrets only by reference: the generated files name environment variables, never values
    assert "${EVENTHUBS_CONNECTION_STRING}" in out.read("job.sql")
    assert 'os.environ["EVENTHUBS_CONNECTION_STRING"]' in out.read("main.py")


def test_main_dead_letters_a_record_without_a_value(tmp_path: Path) -> None:
    """A record without a value (a tombstone) reaching main.py's Parse: ``parse_line`` raised TypeError
    (``read_record``'s len(None)), failing the job on every restart from its checkpoint. (The job's
    connectors cannot be downloaded here: the parse function is run as the job's Parse runs it.)"""
    from streamlab.export.verify import load_module

    to_flink(every_case(), tmp_path, source="kafka", sink="kafka")
    main = load_module(tmp_path / "main.py")
    for limit in (None, main.KAFKA_MESSAGE_LIMIT):
        assert main.parse_line(None, limit) == (None, (None, "null value (tombstone)", main.PARSE_STEP))
        assert main.parse_line(b"", limit) == (None, ("", "empty record", main.PARSE_STEP))
    good = record(1, BASE_MS, "click", "u1", 1.0)
    assert main.parse_line(bytearray(good))[1] is None and main.parse_line(memoryview(good))[1] is None


def test_main_parses_records_as_bytes_so_invalid_utf8_is_a_dead_letter(tmp_path: Path) -> None:
    """``raw_stream`` reads bytes (files cut by ``read_split``, Kafka with ``ByteArraySchema``,
    Kinesis on Flink 2 as the raw format's BYTES): a text reader replaced invalid UTF-8 with U+FFFD, and the record was counted."""
    from streamlab.export.verify import load_module

    out = to_flink(every_case(), tmp_path, source="kafka", sink="files")
    text = out.read("main.py")
    assert "read_split(splits[i], input_format)" in text and "SimpleStringSchema" not in text
    assert text.count("ByteArraySchema()") == 1  # Kafka / Event Hubs
    assert "(`data` BYTES)" in text and '"format": "raw"' in text  # Kinesis on Flink 2: the raw format
    main = load_module(tmp_path / "main.py")
    line = b'{"event_id": "e1", "timestamp": "2024-01-01T00:00:01Z", "event_type": "\xff"}'
    _, (raw, reason, step) = main.parse_line(line)
    assert reason.startswith("invalid UTF-8") and raw == line.decode("utf-8", "replace")
    assert step == main.PARSE_STEP
    assert main.parse_line(line.replace(b"\xff", b"a"))[1] is None


def test_an_event_exactly_gap_after_the_last_starts_a_new_session(flink_python: str, tmp_path: Path) -> None:
    # streamlab's session is [first, last + gap) (Beam's Sessions too): an event at last + gap opens a new
    # one. Flink merges session windows that touch, so job.sql joined them (a: 1 session of 3, b: 1 of 2).
    p = Pipeline(ListSource([b"{}"]), name="touching")
    p.parse({"timestamp": "timestamp", "k": "string"}).window(
        SessionWindow("5s"), key="k", step_id="ses"
    ).agg(agg.count())
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    at = [(5, "a"), (10, "a"), (14.999, "a"), (60, "b"), (65, "b"), (180, "c")]
    lines = [
        f'{{"timestamp": "{(t0 + pd.Timedelta(seconds=s)).isoformat()}", "k": "{k}"}}'.encode() for s, k in at
    ]
    report = verify(p, lines, target="flink", workdir=tmp_path, flink_job="sql")
    assert report.equal, report.diff.to_string()
    assert sorted(report.exported["ses"]["count"].tolist()) == [1, 1, 1, 1, 2]
    legacy = to_flink(p, tmp_path / "legacy", source="files", flink_version="1.18").read("job.sql")
    assert "SESSION(`timestamp`, INTERVAL '0 00:00:04.999' DAY TO SECOND(3))" in legacy
    assert "+ INTERVAL '0 00:00:00.001' DAY TO SECOND(3) AS window_end" in legacy
