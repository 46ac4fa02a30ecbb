"""``streamlab`` stopped by Ctrl-C (SIGINT) or SIGTERM at any moment: one line on stderr and the shell's
status for the signal (130, 143), never a traceback or a death by the signal; a run stopped by one exits
130 or 143 after its sinks are flushed and committed (``streamlab run s.yaml && next`` stops there).

Each signal is sent by the process to itself at a named point (an import, the parser being built, a
batch of the run), so no test waits for a moment to come."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from streamlab import cli
from streamlab.pipeline import Stream
from streamlab.testing import ListSink

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[1]
SIGNALS = pytest.mark.parametrize(
    ("sig", "said", "status"),
    [(signal.SIGINT, "interrupted", 130), (signal.SIGTERM, "terminated", 143)],
    ids=["sigint", "sigterm"],
)


def _python(code: str, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *argv],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=ROOT,
    )


@SIGNALS
def test_a_signal_while_the_parser_is_built_is_one_line_and_the_signals_status(sig, said, status):
    # build_parser ran outside main's handling (and imported the exporters: two seconds more)
    done = _python(
        f"""
        import os, sys
        from streamlab import cli
        build_parser = cli.build_parser
        def signalled():
            os.kill(os.getpid(), {int(sig)})
            return build_parser()
        cli.build_parser = signalled
        sys.exit(cli.main(["-v", "export", "beam", "spec.yaml", "-o", "out"]))
        """
    )
    assert (done.returncode, done.stderr) == (status, f"streamlab export: {said}\n")


def test_an_interrupt_before_the_command_is_known_names_streamlab(monkeypatch, capsys):
    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    try:
        status = cli.main(["--help"])
    except KeyboardInterrupt:
        pytest.fail("the interrupt escaped streamlab.cli.main")
    assert status == 130
    assert capsys.readouterr().err == "streamlab: interrupted\n"


@SIGNALS
def test_a_run_stopped_by_a_signal_exits_with_its_status_after_flushing(sig, said, status, tmp_path, capsys):
    # it exited 0, as a run that did its work does
    events, out = tmp_path / "e.jsonl", tmp_path / "out.jsonl"
    events.write_text(
        "".join(json.dumps({"timestamp": f"2024-01-01T00:00:{i:02d}Z", "x": i}) + "\n" for i in range(40))
    )
    # the run's first batch sends the signal; the run stops at the next batch boundary
    send = f"__import__('os').kill(__import__('os').getpid(), {int(sig)})"
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "streaming:\n  sources:\n"
        f"    - {{step_id: events, kind: replay, path: {events}, batch_size: 10}}\n"
        "  processing:\n"
        f"    - {{step_id: f, kind: filter, input: events, fn: {{source: \"lambda b: {send} or b['x'] >= 0\"}}}}\n"
        f"  sinks:\n    - {{step_id: out, kind: jsonl, input: f, path: {out}}}\n"
    )
    assert cli.main(["run", str(spec), "--quiet", "--trust"]) == status
    printed = capsys.readouterr()
    run_status = "interrupted" if sig == signal.SIGINT else "stopped"
    assert f"RunResult(status='{run_status}'" in printed.out
    assert printed.err.startswith(f"streamlab run: {said}") and printed.err.count("\n") == 1
    assert 0 < len(out.read_text().splitlines()) < 40  # stopped part way, what it read written


def test_a_run_that_ends_without_a_signal_still_exits_0(tmp_path, capsys):
    events = tmp_path / "e.jsonl"
    events.write_text('{"timestamp": "2024-01-01T00:00:00Z", "x": 1}\n' * 5)
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"streaming:\n  sources:\n    - {{step_id: events, kind: replay, path: {events}}}\n")
    assert cli.main(["run", str(spec), "--quiet", "--max-events", "2"]) == 0
    assert cli.main(["run", str(spec), "--quiet"]) == 0
    assert capsys.readouterr().err == ""


def test_help_does_not_import_the_exporters():
    # `streamlab --help` (and every command's parser) imported streamlab.export: Beam's, Flink's and
    # Spark's generators, river and scipy
    done = _python(
        """
        import contextlib, io, sys
        from streamlab.cli import main
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["--help"]) == 0 and main(["export", "--help"]) == 0
        print(sorted(m for m in sys.modules if m.startswith("streamlab.export")))
        """
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def _spec(tmp_path: Path) -> str:
    events = tmp_path / "e.jsonl"
    events.write_text('{"timestamp": "2024-01-01T00:00:00Z", "x": 1}\n')
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        f"streaming:\n  sources:\n    - {{step_id: events, kind: replay, path: {events}, raw: true}}\n"
        "  processing:\n    - {step_id: parse, kind: parse, input: events}\n"
    )
    return str(spec)


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs a /proc file system")
def test_export_to_a_directory_that_cannot_be_made_says_so_on_stderr(tmp_path, capsys):
    # it said "file not found: /proc/streamlab-out"
    assert cli.main(["export", "beam", _spec(tmp_path), "-o", "/proc/streamlab-out"]) == 2
    printed = capsys.readouterr()
    assert printed.out == ""
    assert printed.err == (
        "streamlab export: -o /proc/streamlab-out: cannot create the output directory: /proc takes no new "
        "directories (No such file or directory). Fix: pass a directory you can write (created if missing)\n"
    )


def test_export_errors_go_to_stderr(tmp_path, capsys):
    # `export` printed its errors to stdout, `run` to stderr
    spec, out = _spec(tmp_path), tmp_path / "o"
    assert cli.main(["export", "lambda", spec, "-o", str(out), "--source", "kafka"]) == 2
    printed = capsys.readouterr()
    assert printed.out == ""
    assert (
        printed.err
        == "streamlab export: --source kafka: the lambda export takes no --source. Fix: leave it out\n"
    )
    # an exporter's refusal (Lambda's handler ends in one window step) too, and leaves no directory made
    assert cli.main(["export", "lambda", spec, "-o", str(out)]) == 2
    printed = capsys.readouterr()
    assert printed.out == "" and "cannot export to AWS Lambda" in printed.err and not out.exists()


@SIGNALS
def test_a_demo_stopped_by_a_signal_exits_with_its_status(sig, said, status, tmp_path, monkeypatch, capsys):
    # it wrote its report and exited 0, as a demo that read the whole dataset does
    build = cli.build_demo_pipeline

    def signalled(db: str, *, speed: float | None = None) -> Any:
        p = build(db, speed=speed)
        events = Stream(p, "clickstream")  # the demo's source
        events.filter_many(lambda b: os.kill(os.getpid(), int(sig)) or b["value"].notna()).to(ListSink())
        return p

    monkeypatch.setattr(cli, "build_demo_pipeline", signalled)
    report = tmp_path / "r.html"
    assert (
        cli.main(["demo", "--quiet", "--db", str(tmp_path / "d.duckdb"), "--report", str(report)]) == status
    )
    assert capsys.readouterr().err.startswith(f"streamlab demo: {said}")
    assert report.exists()  # what was read is reported
