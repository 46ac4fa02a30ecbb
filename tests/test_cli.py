"""The command line: ``streamlab demo`` and ``streamlab run spec.yaml``."""

from __future__ import annotations

import json

import duckdb
import pytest

from streamlab.cli import main


def test_demo_writes_tables_and_report(tmp_path, capsys):
    db, report = tmp_path / "demo.duckdb", tmp_path / "report.html"
    assert main(["demo", "--db", str(db), "--report", str(report), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "late events" in out and "dead letters" in out
    con = duckdb.connect(str(db))
    n_windows = con.execute("select count(*) from window_counts").fetchall()[0][0]
    n_dead = con.execute("select count(*) from dead_letters").fetchall()[0][0]
    reasons = {r[0].split(":")[0] for r in con.execute("select reason from dead_letters").fetchall()}
    con.close()
    assert n_windows > 100 and n_dead > 50
    assert "invalid JSON" in reasons
    html = report.read_text()
    assert "plotly" in html and "late events per window" in html
    # a second run upserts: the same rows, not twice as many
    assert main(["demo", "--db", str(db), "--report", str(report), "--quiet"]) == 0
    con = duckdb.connect(str(db))
    assert con.execute("select count(*) from window_counts").fetchall()[0][0] == n_windows
    con.close()


def _user_database(path):
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE orders AS SELECT 1 AS id")
    con.close()


@pytest.mark.parametrize(
    "existing, said",
    [
        (lambda p: p.write_text("id,amount\n1,2.5\n"), "is not a DuckDB database"),
        (_user_database, "holds tables the demo did not write (orders)"),
    ],
)
def test_demo_refuses_to_delete_a_file_it_did_not_write(tmp_path, capsys, existing, said):
    # the demo deleted whatever --db named before it ran: a CSV or a DuckDB file of the user's was gone
    db = tmp_path / "mine.db"
    existing(db)
    before = db.read_bytes()
    assert main(["demo", "--db", str(db), "--report", str(tmp_path / "r.html"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert said in err and "Fix: pass a new path with --db" in err and "Traceback" not in err
    assert db.read_bytes() == before and not (tmp_path / "r.html").exists()


def test_demo_refuses_a_directory_as_report_before_running(tmp_path, capsys):
    # it ran the whole replay into the database, then failed with a bare "[Errno 21] Is a directory"
    db = tmp_path / "demo.duckdb"
    assert main(["demo", "--db", str(db), "--report", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"--report {tmp_path} is a directory. Fix: pass a file path" in err
    assert not db.exists()


@pytest.mark.parametrize(
    "report, said",
    [
        (lambda d: d / "missing" / "r.html", "its directory {parent} does not exist"),
        (lambda d: d / "file.txt" / "r.html", "its directory {parent} is not a directory"),
        (lambda d: d / ("r" * 300 + ".html"), "cannot write --report {report} (File name too long)"),
    ],
)
def test_demo_refuses_a_report_path_it_cannot_write_before_running(tmp_path, capsys, report, said):
    # it replayed every event into the database, then failed with "file not found: /proc/r.html"
    (tmp_path / "file.txt").write_text("x")
    db, path = tmp_path / "demo.duckdb", report(tmp_path)
    assert main(["demo", "--db", str(db), "--report", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert said.format(parent=path.parent, report=path) in err and "Fix:" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]  # no database, no report


def test_demo_refuses_a_database_path_it_cannot_write_before_running(tmp_path, capsys):
    (tmp_path / "file.txt").write_text("x")
    db, report = tmp_path / "file.txt" / "demo.duckdb", tmp_path / "r.html"
    assert main(["demo", "--db", str(db), "--report", str(report), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"cannot write --db {db}" in err and err.count("\n") == 1, err
    assert not report.exists()


def test_run_spec(tmp_path, capsys):
    events = tmp_path / "events.jsonl"
    events.write_text(
        "\n".join(
            json.dumps(
                {
                    "event_id": str(i),
                    "event_type": "ab"[i % 2],
                    "user_id": "u",
                    "properties": {},
                    "timestamp": f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}Z",
                }
            )
            for i in range(300)
        )
        + "\nbroken\n"
    )
    db = tmp_path / "out.duckdb"
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"""
streaming:
  name: spec-demo
  sources:
    - {{step_id: events, kind: replay, path: {events}, raw: true}}
  processing:
    - {{step_id: parse, kind: parse, input: events}}
    - step_id: counts
      kind: window
      input: parse
      window: {{kind: tumbling, size: 1m}}
      key: [event_type]
      aggregate: [{{kind: count}}]
  sinks:
    - {{step_id: out, kind: duckdb, input: counts, path: {db}, table: counts}}
""")
    assert main(["run", str(spec), "--quiet"]) == 0
    assert "parse.dead_letter: 1 rows" in capsys.readouterr().out
    con = duckdb.connect(str(db))
    assert con.execute("select sum(count) from counts").fetchall()[0][0] == 300
    con.close()


def test_run_spec_rejects_a_bad_duration_before_running(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("streaming:\n  sources: []\n")
    assert main(["run", str(spec), "--quiet", "--duration", "soon"]) == 2
    err = capsys.readouterr().err
    assert "--duration" in err and "soon" in err


@pytest.mark.parametrize("given, read", [("90", "90s"), ("0.5", "500ms"), ("5m", "5m")])
def test_run_duration_takes_a_bare_number_of_seconds_as_its_error_offers(given, read):
    # '--duration 90' was refused with "write it like ... or a number of seconds"
    from streamlab.cli import build_parser

    args = build_parser().parse_args(["run", "spec.yaml", "--duration", given])
    assert args.duration == read


def test_help_names_every_export_target(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "Apache Beam, AWS Lambda, Flink or Spark" in out and "Beam, Lambda, Flink or Spark code" in out


# -- user mistakes: one line, a path in the spec, a fix, exit status 2 -------------------------------

EVENTS = "".join(
    json.dumps({"event_id": str(i), "event_type": "ab"[i % 2], "timestamp": f"2024-01-01T00:00:{i:02d}Z"})
    + "\n"
    for i in range(20)
)


def write_spec(tmp_path, processing: str, sinks: str = "[]") -> str:
    events = tmp_path / "events.jsonl"
    events.write_text(EVENTS)
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "streaming:\n  sources:\n"
        f"    - {{step_id: events, kind: replay, path: {events}, raw: true}}\n"
        f"  processing:\n{processing}\n  sinks: {sinks}\n"
    )
    return str(spec)


PARSE = "    - {step_id: parse, kind: parse, input: events, schema: {event_id: string, event_type: string, timestamp: timestamp}}\n"


def one_line_error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return captured.err.strip()


def test_a_spec_path_that_does_not_exist(capsys):
    err = one_line_error(capsys, ["run", "/nonexistent/spec.yaml"])
    assert err.count("\n") == 0 and "/nonexistent/spec.yaml" in err and "no such file" in err


@pytest.mark.parametrize("streaming", ["  name: x\n", "  name: x\n  sources: []\n"])
def test_a_spec_without_sources_is_a_spec_error(tmp_path, capsys, streaming):
    # it was exit status 1 with the Python API's message ("add a source, e.g. Pipeline(ListSource([...]))")
    spec = tmp_path / "spec.yaml"
    spec.write_text("streaming:\n" + streaming)
    err = one_line_error(capsys, ["run", str(spec)])
    assert err.count("\n") == 0 and str(spec) in err and "streaming.sources: the spec has no sources" in err
    assert "Fix: add a source under 'streaming:'" in err and "ListSource" not in err


def test_a_missing_kind_names_the_entry(tmp_path, capsys):
    spec = write_spec(tmp_path, "    - {step_id: parse, input: events}")
    err = one_line_error(capsys, ["run", spec])
    assert "streaming.processing[0] (step 'parse')" in err and "missing 'kind'" in err and "kind: " in err


def test_on_is_read_as_a_key_and_a_boolean_key_is_explained(tmp_path):
    from streamlab.errors import SpecError
    from streamlab.spec import pipeline_from_dict

    users = tmp_path / "users.csv"
    users.write_text("event_type,label\na,A\nb,B\n")
    spec = write_spec(
        tmp_path,
        PARSE + f"    - {{step_id: e, kind: enrich, input: parse, table: {users}, on: [event_type]}}",
    )
    assert main(["run", spec, "--quiet"]) == 0
    # a spec read elsewhere with YAML 1.1 has the key True: said so, with the fix
    data = {
        "streaming": {
            "sources": [],
            "processing": [{"step_id": "e", "kind": "enrich", "input": "x", True: ["k"], "table": "t.csv"}],
        }
    }
    with pytest.raises(
        SpecError,
        match=r"processing\[0\] \(step 'e'\)\.True: a key was read by YAML as the boolean true.*quote the key",
    ):
        pipeline_from_dict(data)


def test_every_problem_is_reported_at_once_with_its_path(tmp_path, capsys):
    spec = write_spec(
        tmp_path,
        "    - {step_id: parse, kind: parse, input: events, schema: [a, b], max_record_bytes: big}\n"
        "    - {step_id: dedup, kind: dedup, input: parse, ttl: -1h}\n"
        "    - {step_id: w, kind: window, input: dedup, window: {kind: tumbling, size: 1m}}\n"
        "    - {step_id: w2, kind: window, input: dedp, window: {kind: tumbling, size: soon}, aggregate: [{kind: summ, column: x}]}",
    )
    err = one_line_error(capsys, ["run", spec])
    lines = err.splitlines()
    assert "7 problems" in lines[0]
    expected = [
        ("processing[0] (step 'parse').schema:", "field needs a type"),
        ("processing[0] (step 'parse').max_record_bytes:", "'big'"),
        ("processing[1] (step 'dedup').ttl:", "negative"),
        ("processing[2] (step 'w').aggregate:", "no aggregators"),
        ("processing[3] (step 'w2').input:", "did you mean 'dedup'"),
        ("processing[3] (step 'w2').window.size:", "duration"),
        ("processing[3] (step 'w2').aggregate[0].kind:", "did you mean 'sum'"),
    ]
    for (path, text), line in zip(expected, lines[1:]):
        assert path in line and text in line and "Fix: " in line


def test_a_binary_file(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_bytes(bytes(range(256)) * 4)
    err = one_line_error(capsys, ["run", str(spec)])
    assert "binary" in err and str(spec) in err


def test_a_yaml_syntax_error_names_the_line(tmp_path, capsys):
    spec = tmp_path / "spec.yaml"
    spec.write_text("streaming:\n  sources: [\n")
    err = one_line_error(capsys, ["run", str(spec)])
    assert str(spec) in err and "line" in err and "not valid YAML" in err


def test_a_corrupt_checkpoint_names_its_path(tmp_path, capsys):
    spec = write_spec(
        tmp_path,
        PARSE
        + "    - {step_id: w, kind: window, input: parse, window: {kind: tumbling, size: 1m}, aggregate: [{kind: count}]}",
    )
    ckpt = tmp_path / "ckpt"
    assert main(["run", spec, "--quiet", "--checkpoint-dir", str(ckpt), "--max-events", "5"]) == 0
    capsys.readouterr()
    files = [f for f in ckpt.rglob("*") if f.is_file()]
    assert files
    for f in files:
        f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2])
    err = one_line_error(capsys, ["run", spec, "--quiet", "--checkpoint-dir", str(ckpt)])
    assert err.count("\n") == 0 and str(ckpt) in err and "checkpoint" in err
    assert err.count("Fix:") == 1, err


def test_a_checkpoint_error_gives_one_fix(tmp_path, capsys):
    # the CLI added its own "Fix: ... restore it from a backup" after the checkpoint's "Fix: delete it"
    spec = write_spec(tmp_path, PARSE)
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "checkpoint.slcp").write_bytes(b"garbage")
    err = one_line_error(capsys, ["run", spec, "--quiet", "--checkpoint-dir", str(ckpt)])
    assert err.count("Fix:") == 1 and err.count("\n") == 0, err
    assert str(ckpt / "checkpoint.slcp") in err and "not a streamlab checkpoint" in err
    assert "Fix: delete it, or pass a new checkpoint_dir (--checkpoint-dir), to start fresh" in err


def test_negative_max_events_is_refused(tmp_path, capsys):
    spec = write_spec(tmp_path, PARSE)
    err = one_line_error(capsys, ["run", spec, "--max-events", "-5"])
    assert err.count("\n") == 0 and "--max-events" in err and "-5" in err


def test_a_window_without_agg_is_refused_in_python_too():
    from streamlab import ListSource, Pipeline, PipelineConfigError, TumblingWindow

    p = Pipeline(ListSource([{"timestamp": 0}]))
    p.window(TumblingWindow("1m"))  # forgot .agg(...)
    with pytest.raises(
        PipelineConfigError, match=r"step 'window' \(window\).*no aggregators.*\.agg\(agg\.count\(\)\)"
    ):
        p.run()


def test_verbose_shows_the_traceback(capsys):
    assert main(["run", "/nonexistent/spec.yaml", "--verbose"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_untrusted_code_needs_trust_on_the_command_line(tmp_path, capsys):
    spec = write_spec(
        tmp_path,
        "    - {step_id: f, kind: filter, input: events, fn: {source: \"lambda b: b['value'].notna()\"}}",
    )
    err = one_line_error(capsys, ["run", spec, "--quiet"])
    assert "fn.source" in err and "--trust" in err
    assert main(["run", spec, "--quiet", "--trust"]) == 0
    capsys.readouterr()
    err = one_line_error(capsys, ["export", "beam", spec, "-o", str(tmp_path / "out")])
    assert "fn.source" in err


# -- the command line's conventions ------------------------------------------------------------------


def test_version_and_help_on_bare_streamlab(capsys):
    import streamlab

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"streamlab {streamlab.__version__}"
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "usage: streamlab" in out and "examples:" in out and "export" in out


def test_subcommand_help_is_formatted_with_defaults(capsys):
    assert main(["export", "--help"]) == 0
    out = capsys.readouterr().out
    assert "----------" not in out and ">>>" not in out and "examples:" in out
    assert "(default: files)" in out and "(default: pubsub)" in out
    assert main(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "Pipeline.to_yaml" in out.split("positional arguments:")[1].split("options:")[0]
    assert "--trust" in out and "examples:" in out
    assert main(["demo", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "(default: streamlab-demo.duckdb)" in out and "(default: streamlab-report.html)" in out


def test_unknown_subcommand_is_one_line(capsys):
    assert main(["rnu"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "rnu" in err and "--help" in err


def test_an_all_digit_kafka_topic_in_yaml_says_to_quote_it(tmp_path, capsys):
    """YAML reads ``topics: [2024]`` as a number: the error names the step and says to quote it."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "streaming:\n  sources:\n"
        "    - {step_id: clicks, kind: kafka, topics: [2024], bootstrap_servers: '127.0.0.1:1', group_id: g}\n"
        "  processing:\n    - {step_id: parse, kind: parse, input: clicks}\n"
    )
    err = one_line_error(capsys, ["run", str(spec)])
    assert "'clicks'" in err and "2024 is a number" in err and "topics: ['2024']" in err


def _spec(tmp_path):
    return write_spec(tmp_path, PARSE)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["export", "beam", "SPEC", "-o", "AFILE"],
            "argument -o/--output: AFILE: is a file, not a directory",
        ),
        (
            ["run", "SPEC", "--checkpoint-dir", "AFILE"],
            "argument --checkpoint-dir: AFILE: is a file, not a directory",
        ),
    ],
)
def test_a_directory_argument_naming_a_file_is_a_usage_error(tmp_path, capsys, args, said):
    # these failed with a raw FileExistsError (exit 1)
    spec, afile = _spec(tmp_path), tmp_path / "afile"
    afile.write_text("")
    argv = [str(spec) if a == "SPEC" else str(afile) if a == "AFILE" else a for a in args]
    assert main(argv) == 2
    assert said.replace("AFILE", str(afile)) in capsys.readouterr().err


@pytest.mark.parametrize(
    ("target", "flags", "said"),
    [
        (
            "flink",
            ["--source", "pubsub"],
            "--source pubsub: the flink export cannot read it. Fix: use --source kafka",
        ),
        (
            "beam",
            ["--source", "kinesis"],
            "--source kinesis: the beam export cannot read it. Fix: use --source pubsub or --source file",
        ),
        (
            "beam",
            ["--sink", "jdbc"],
            "--sink jdbc: the beam export cannot write it. Fix: use --sink files or --sink bigquery",
        ),
        (
            "lambda",
            ["--source", "kafka"],
            "--source kafka: the lambda export takes no --source. Fix: leave it out",
        ),
        ("spark", ["--sink", "kafka"], "the generated job takes --sink when it runs"),
    ],
)
def test_an_export_source_or_sink_that_does_not_fit_says_so_in_command_line_terms(
    tmp_path, capsys, target, flags, said
):
    # the fixes named the Python API's runner_source='file' and source='files', which the command line refuses
    assert main(["export", target, str(_spec(tmp_path)), "-o", str(tmp_path / "out"), *flags]) == 2
    assert said in capsys.readouterr().err


def test_export_flink_takes_files_as_file(tmp_path, capsys):
    assert (
        main(["export", "flink", str(_spec(tmp_path)), "-o", str(tmp_path / "out"), "--source", "files"]) == 0
    )


def test_a_sink_whose_destination_is_a_directory_is_a_users_mistake_naming_the_step(tmp_path, capsys):
    """A directory where a file goes is the user's to fix (2), and is found when the spec is read, at the
    sink's path in the spec (it was found when the sink opened: "failed opening: IsADirectoryError")."""
    (tmp_path / "adir").mkdir()
    sinks = f"[{{step_id: out, input: parse, kind: jsonl, path: {tmp_path / 'adir'}}}]"
    err = one_line_error(capsys, ["run", write_spec(tmp_path, PARSE, sinks), "--quiet"])
    assert "streaming.sinks[0] (step 'out').path: " in err and "is a directory" in err, err


@pytest.mark.parametrize("given", [["--duration", "-5m"], ["--duration=-5m"], ["--duration", "-0.5"]])
def test_a_negative_duration_says_it_must_be_positive(tmp_path, capsys, given):
    # '--duration -5m' got argparse's "expected one argument": -5m was taken for an option
    spec = write_spec(tmp_path, PARSE)
    err = one_line_error(capsys, ["run", spec, *given])
    assert err.count("\n") == 0 and "expected one argument" not in err
    assert "--duration: must be a positive duration such as 30s or 5m, got '-" in err


@pytest.mark.parametrize("given", ["-1", "0", "nan", "inf", "fast"])
def test_demo_speed_that_is_no_positive_number_is_a_usage_error(tmp_path, capsys, given):
    # '--speed -1' ran the demo into a ReplaySource ValueError ("run again with --verbose")
    err = one_line_error(capsys, ["demo", "--quiet", "--db", str(tmp_path / "d.duckdb"), "--speed", given])
    assert err.startswith("streamlab demo: error: argument --speed:") and "--verbose" not in err
    assert not (tmp_path / "d.duckdb").exists()


def test_a_checkpoint_dir_that_cannot_be_made_names_itself_and_the_fix(tmp_path, capsys):
    # a PermissionError/NotADirectoryError from the run's lock came out raw, and as "cannot resume ... to
    # start fresh, move it away" only because its path held the word "checkpoint"
    spec = write_spec(tmp_path, PARSE)
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    err = one_line_error(capsys, ["run", spec, "--quiet", "--checkpoint-dir", str(blocker / "ckpt")])
    assert err.count("\n") == 0 and err.count("Fix:") == 1, err
    assert f"checkpoint {blocker / 'ckpt'}: it cannot be used (NotADirectoryError" in err
    assert "pass a checkpoint_dir (--checkpoint-dir) that this user can create and write" in err


def test_a_sink_error_under_a_path_named_checkpoints_is_no_checkpoint_error(tmp_path, capsys):
    blocker = tmp_path / "checkpoints-report"
    blocker.write_text("a file, not a directory")
    sinks = f"[{{step_id: out, input: parse, kind: jsonl, path: {blocker / 'out.jsonl'}}}]"
    spec = write_spec(tmp_path, PARSE, sinks)
    err = one_line_error(capsys, ["run", spec, "--quiet", "--checkpoint-dir", str(tmp_path / "ckpt")])
    assert "cannot resume" not in err and "move it away" not in err, err
    assert "streaming.sinks[0] (step 'out').path: " in err and "checkpoints-report" in err, err
