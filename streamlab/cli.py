"""Command line: ``streamlab demo``, ``streamlab run spec.yaml``, ``streamlab export ...``."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pickle
import re
import shutil
import signal
import socket
import sys
import textwrap
import threading
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

DEMO_SCHEMA: dict[str, Any] = {
    "event_id": "string",
    "event_type": "category",
    "user_id": "string",
    "timestamp": "timestamp",
    "amount": {"type": "float64", "path": "properties.amount"},
}


def build_demo_pipeline(db: str, *, speed: float | None = None) -> Any:
    """The demo: bundled clickstream replay → parse (dead letter) → dedup → 1-minute windows → DuckDB.

    Examples
    --------
    >>> p = build_demo_pipeline(":memory:")
    >>> list(p.steps)
    ['clickstream', 'parse', 'dedup', 'window', 'results', 'late', 'dead_letter']
    """
    from streamlab import DuckDBSink, Pipeline, ReplaySource, TumblingWindow, agg
    from streamlab.datasets import dataset_path

    p = Pipeline(name="clickstream-demo")
    events = p.add_source(
        ReplaySource(dataset_path("clickstream"), raw=True, speed=speed), step_id="clickstream"
    )
    parsed = events.parse(DEMO_SCHEMA)
    unique = parsed.dedup("event_id", ttl="1h")
    windows = unique.window(TumblingWindow("1m"), key="event_type", delay="5s").agg(
        agg.count(), agg.sum("amount", name="revenue"), agg.count_distinct("user_id", name="users")
    )
    windows.to(DuckDBSink(db, "window_counts"), step_id="results")
    windows.late.to(DuckDBSink(db, "late_events", key=None), step_id="late")
    parsed.dead_letter.to(DuckDBSink(db, "dead_letters", key=None), step_id="dead_letter")
    return p


_DEMO_TABLES = {"window_counts", "late_events", "dead_letters"}


def _check_demo_paths(db: Path, report: Path) -> None:
    """Refuse, before anything runs, a ``--db`` the demo would destroy and a ``--report`` it cannot write.

    The demo starts each run from a new database file, so an existing ``--db`` must be an earlier demo's:
    a DuckDB file holding only the demo's tables (and the sinks' bookkeeping tables beside them).
    """
    for flag, path, name in (
        ("--db", db, "streamlab-demo.duckdb"),
        ("--report", report, "streamlab-report.html"),
    ):
        _check_writable(flag, path, name, make_parent=flag == "--db")
    if not db.exists() or db.stat().st_size == 0:
        return
    import duckdb

    with db.open("rb") as f:
        magic = f.read(12)[8:]
    if magic != b"DUCK":
        held = "is not a DuckDB database"
    else:
        try:
            with duckdb.connect(str(db), read_only=True) as con:
                tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        except duckdb.Error as e:  # locked by another process, say: the demo could not replace it either
            raise FileExistsError(
                f"--db {db} cannot be opened ({' '.join(str(e).split())}). Fix: close what holds it, or pass "
                "a new path with --db"
            ) from None
        demo = _DEMO_TABLES | {f"{t}_rejected" for t in _DEMO_TABLES}
        other = sorted(t for t in tables if t not in demo and not t.startswith("__streamlab_"))
        if not other:
            return
        held = f"holds tables the demo did not write ({', '.join(other)})"
    raise FileExistsError(
        f"--db {db} {held}; the demo replaces its database file, so it would be deleted. Fix: pass a new "
        "path with --db (an earlier demo's database is replaced without asking)"
    )


def _check_writable(flag: str, path: Path, name: str, *, make_parent: bool) -> None:
    """Refuse an output path the demo could not write (a directory, or a file it cannot make or open),
    by opening it to append (which writes nothing) and removing it again if that made it: a report path
    was only tried once the whole demo had run. The database's sink makes its missing directories
    (``make_parent``), the report does not.

    Examples
    --------
    >>> _check_writable("--report", Path("no-such-dir/r.html"), "streamlab-report.html", make_parent=False)
    Traceback (most recent call last):
    ...
    PermissionError: cannot write --report no-such-dir/r.html: its directory no-such-dir does not exist. Fix: create it, or pass a path in a directory you can write, e.g. --report streamlab-report.html
    """
    fix = f"pass a path in a directory you can write, e.g. {flag} {name}"
    try:
        if path.is_dir():
            raise IsADirectoryError(
                f"{flag} {path} is a directory. Fix: pass a file path, e.g. {flag} {path / name}"
            )
        if not make_parent and not path.parent.is_dir():
            what = "is not a directory" if path.parent.exists() else "does not exist"
            raise PermissionError(
                f"cannot write {flag} {path}: its directory {path.parent} {what}. Fix: create it, or {fix}"
            )
        made = not path.exists()
        if make_parent:
            path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("ab"):
            pass
    except (IsADirectoryError, PermissionError) as e:
        if e.filename is None:  # (one of the two above, already said)
            raise
        raise PermissionError(f"cannot write {flag} {path} ({e.strerror or e}). Fix: {fix}") from None
    except OSError as e:  # a name too long, say, or a file system that makes no files (/proc)
        raise PermissionError(f"cannot write {flag} {path} ({e.strerror or e}). Fix: {fix}") from None
    if made:
        path.unlink(missing_ok=True)


def demo(args: argparse.Namespace) -> int:
    """Run the embedded demo: bundled clickstream → parse → dedup → windows → DuckDB, plus an HTML report.

    Examples
    --------
    >>> import argparse, tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> demo(argparse.Namespace(db=os.path.join(d, 'x.duckdb'), report=os.path.join(d, 'r.html'), speed=None, quiet=True))  # doctest: +ELLIPSIS
    streamlab demo: ...
    0
    """
    from streamlab import ManualClock
    from streamlab._report import write_report

    db = str(Path(args.db))
    _check_demo_paths(Path(db), Path(args.report))
    for suffix in ("", ".wal"):
        Path(db + suffix).unlink(missing_ok=True)
    p = build_demo_pipeline(db, speed=args.speed)
    print(f"streamlab demo: replaying the bundled clickstream dataset into {db}")
    with _signals_received() as seen:
        result = p.run(progress=not args.quiet, clock=None if args.speed else ManualClock(0))
    sinks = {sid: p.steps[sid].sink for sid in ("results", "late", "dead_letter")}
    windows = sinks["results"].read(order_by="window_start, event_type")
    late = sinks["late"].read()
    dead = sinks["dead_letter"].read()
    m = result.metrics
    report = write_report(
        args.report,
        title="streamlab demo: clickstream, 1-minute windows",
        windows=windows,
        key="event_type",
        value="count",
        late=late,
        dead_letter=dead,
        metrics=m,
        notes=[
            "Source: bundled clickstream (50k events with out-of-order, late, duplicate and malformed lines).",
            "Watermark = largest event time − 5 s; a window closes when the watermark passes its end.",
            f"Results are upserted into {db} (tables window_counts, late_events, dead_letters): re-running never doubles rows.",
        ],
    )
    for s in sinks.values():
        s.close()
    print(
        f"read {m['events_in']:,} events: {len(windows):,} window rows, {m['late']:,} late events, "
        f"{m['dead_letter']:,} dead letters, {m['duplicates']:,} duplicates dropped"
    )
    print(f"report: {report.resolve()}")
    # stopped by a signal: the report shows what was read, and the status says the demo did not finish
    return _signal_status("streamlab demo", result.status, seen) or 0


def _signal_status(prog: str, status: str, seen: set[int]) -> int | None:
    """The exit status of a run stopped by Ctrl-C (130) or SIGTERM (143), saying so on stderr; else None.

    Examples
    --------
    >>> _signal_status("streamlab run", "finished", set()) is None
    True
    """
    if status == "interrupted":
        print(f"{prog}: interrupted; the sinks were flushed and committed", file=sys.stderr)
        return INTERRUPTED
    if status == "stopped" and signal.SIGTERM in seen:
        print(f"{prog}: terminated (SIGTERM); the sinks were flushed and committed", file=sys.stderr)
        return TERMINATED
    return None


def run_spec(args: argparse.Namespace) -> int:
    """``streamlab run SPEC``: run a pipeline from its YAML spec until its sources end or a limit.

    ``--max-events`` and ``--duration`` stop gracefully (sinks flushed, offsets committed, open windows
    kept for the next run with the same ``--checkpoint-dir``) and exit 0. Ctrl-C and SIGTERM stop the same
    way and exit 130 and 143 (the shell's statuses for those signals), so that what follows the command
    in a script does not run. The spec is checked as a whole first; a spec holding code needs ``--trust``.

    Examples
    --------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> with open(os.path.join(d, "e.jsonl"), "w") as f:
    ...     _ = f.write('{"timestamp": "2024-01-01T00:00:00Z", "x": 1}\\n' * 3)
    >>> spec = os.path.join(d, "p.yaml")
    >>> with open(spec, "w") as f:
    ...     _ = f.write(
    ...         "streaming:\\n  sources:\\n"
    ...         f"    - {{step_id: events, kind: replay, path: {os.path.join(d, 'e.jsonl')}}}\\n"
    ...     )
    >>> main(["run", spec, "--quiet", "--max-events", "2"])
    RunResult(status='stopped', events_in=2, outputs={events: 2 rows})
    0
    """
    from streamlab import Pipeline

    p = Pipeline.from_yaml(args.spec, trust=args.trust)
    with _signals_received() as seen:
        result = p.run(
            progress=not args.quiet,
            checkpoint_dir=args.checkpoint_dir,
            max_events=args.max_events,
            duration=args.duration,
        )
    print(result)
    # a stop by a signal is not a run that did its work: a script's `streamlab run s.yaml && next` stops too
    stopped = _signal_status("streamlab run", result.status, seen)
    if stopped is not None:
        return stopped
    return 0 if result.status in ("finished", "stopped") else 1


def export(args: argparse.Namespace) -> int:
    """Hand ``streamlab export beam|lambda SPEC -o DIR`` to the exporters.

    Examples
    --------
    >>> export  # doctest: +ELLIPSIS
    <function export at ...>
    """
    from streamlab.export._cli import run_export

    return run_export(args)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``streamlab run: error: ... (see 'streamlab run --help')``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        """Read a value that starts with '-' and a digit as the option's value (``--duration -5m``):
        argparse takes ``-5m`` for an option and says only "expected one argument", so the option's own
        check never gets to say that a duration must be positive."""
        given = list(sys.argv[1:] if args is None else args)
        joined: list[str] = []
        i = 0
        while i < len(given):
            arg = given[i]
            action = self._option_string_actions.get(arg)
            if (
                action is not None
                and action.nargs is None
                and action.option_strings
                and not isinstance(action, argparse._StoreConstAction)
                and i + 1 < len(given)
                and re.match(r"-\.?\d", given[i + 1])
            ):
                joined.append(f"{arg}={given[i + 1]}")
                i += 2
                continue
            joined.append(arg)
            i += 1
        return super().parse_known_args(joined, namespace)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Wraps the description to the terminal; keeps the epilog's examples as written."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32, width=min(110, shutil.get_terminal_size().columns))

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if text.startswith(("example", "'streamlab")) or "\n  " in text:
            return super()._fill_text(text, width, indent)
        return textwrap.fill(text, width, initial_indent=indent, subsequent_indent=indent)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of events, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of events, got {value}")
    return value


def _duration(text: str) -> str:
    """``--duration``: '30s', '5m', ..., or a bare number of seconds (the error for any other text offers
    'a number of seconds', and on a command line every number is text).

    Examples
    --------
    >>> _duration("90"), _duration("1.5"), _duration("5m")
    ('90s', '1500ms', '5m')
    """
    from streamlab._time import format_duration, parse_duration

    value: str | float = text
    with contextlib.suppress(ValueError):
        value = float(text)
    try:
        ns = parse_duration(value, what="--duration")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("--duration: ")) from None
    if ns <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive duration such as 30s or 5m, got {text!r}")
    return format_duration(ns)


def _speed(text: str) -> float:
    """``--speed``: a positive, finite replay speed factor.

    Examples
    --------
    >>> _speed("10"), _speed("0.5")
    (10.0, 0.5)
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number such as 1 (real time) or 10, got {text!r}"
        ) from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(
            f"must be a positive, finite speed such as 1 (real time) or 10 (ten times faster), got {text!r}; "
            "leave --speed out to replay as fast as possible"
        )
    return value


_EPILOG = """examples:
  streamlab demo                              replay the bundled clickstream, write DuckDB + an HTML report
  streamlab run spec.yaml --max-events 10000  run a spec saved with Pipeline.to_yaml('spec.yaml')
  streamlab run spec.yaml --checkpoint-dir ckpt --duration 5m
  streamlab export beam spec.yaml -o build/beam

'streamlab COMMAND --help' describes each command. Add --verbose to see a traceback on errors."""

_RUN_EPILOG = """examples:
  streamlab run spec.yaml
  streamlab run spec.yaml --max-events 10000 --quiet
  streamlab run spec.yaml --checkpoint-dir ckpt --duration 5m   # stop after 5 minutes; run again to resume

Ctrl-C and SIGTERM stop at the next batch, flush the sinks and commit, then exit 130 and 143 (0 for a run
that finished or reached --max-events or --duration).
A spec with code in it (a function's source, SQL other than a read-only SELECT) runs only with --trust."""


# `streamlab export`'s arguments live here, not in streamlab.export: every command builds the whole parser,
# and importing the exporters (Beam's, Flink's, Spark's generators) took seconds before `--help` printed
EXPORT_DESCRIPTION = "Export a pipeline spec (written by Pipeline.to_yaml()) to Apache Beam, AWS Lambda, Apache Flink (SQL or PyFlink) or PySpark code."
EXPORT_EPILOG = """examples:
  streamlab export beam spec.yaml -o build/beam
  streamlab export beam spec.yaml -o build/beam --source file --sink bigquery
  streamlab export lambda spec.yaml -o build/lambda
  streamlab export spark spec.yaml -o build/spark
  streamlab export flink spec.yaml -o build/flink --source kafka --sink files
  streamlab export beam spec.yaml -o build/beam --write-input build/events.jsonl   # a replay's records
"""


def directory(text: str) -> str:
    """An argparse type: a directory, created if missing, so not the path of an existing file.

    Examples
    --------
    >>> import tempfile
    >>> f = tempfile.NamedTemporaryFile()
    >>> directory(f.name)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: ...: is a file, not a directory; pass a directory (created if missing)
    """
    if os.path.exists(text) and not os.path.isdir(text):
        raise argparse.ArgumentTypeError(
            f"{text}: is a file, not a directory; pass a directory (created if missing)"
        )
    return text


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments of ``streamlab export`` (shared by ``streamlab export`` and :func:`export_main`).

    Examples
    --------
    >>> p = argparse.ArgumentParser()
    >>> add_export_arguments(p)
    >>> p.parse_args(["beam", "spec.yaml", "-o", "out"]).sink
    'files'
    """
    parser.add_argument(
        "target",
        choices=("beam", "lambda", "flink", "spark"),
        help="what to generate: an Apache Beam module, an AWS Lambda handler, a Flink SQL/PyFlink job or a PySpark job",
    )
    parser.add_argument("spec", help="pipeline YAML written by Pipeline.to_yaml()")
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="DIR",
        type=directory,
        help="directory for the generated files (created if missing)",
    )
    parser.add_argument(
        "--sink",
        choices=("files", "bigquery", "kafka", "jdbc"),
        default="files",
        help="where outputs go (default: %(default)s); Beam: files|bigquery, Flink: files|kafka|jdbc",
    )
    parser.add_argument(
        "--source",
        choices=("pubsub", "file", "files", "kafka", "kinesis", "eventhubs"),
        default=None,
        help="what the job reads (default: pubsub); Flink: kafka (default), kinesis, eventhubs or file",
    )
    parser.add_argument(
        "--write-input",
        default=None,
        metavar="FILE",
        help="when the spec replays a CSV, Parquet or JSON file read whole, also write the records the job "
        "reads (the texts of the column its parse reads, one a line) to FILE, for the job's --input",
    )
    parser.add_argument(
        "--trust",
        action="store_true",
        help="allow code in the spec (function source, stdlib functions, SQL or expressions that do more than read and compute); only for specs you wrote or reviewed",
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``streamlab`` argument parser (every command, with help texts, defaults and examples).

    Examples
    --------
    >>> build_parser().parse_args(["run", "spec.yaml", "--max-events", "5"]).max_events
    5
    """
    from streamlab import __version__

    common = _Parser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="show the full traceback of an error")
    parser = _Parser(
        prog="streamlab",
        description="Prototype streaming pipelines on event time, run them from YAML specs, export them "
        "to Apache Beam, AWS Lambda, Flink or Spark.",
        epilog=_EPILOG,
        formatter_class=_Formatter,
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"streamlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    d = sub.add_parser(
        "demo",
        help="run the embedded demo pipeline and write an HTML report",
        description="Replay the bundled clickstream dataset through parse → dedup → 1-minute windows into "
        "DuckDB, and write an HTML report. Needs no server.",
        epilog="example:\n  streamlab demo --db /tmp/demo.duckdb --report /tmp/report.html",
        formatter_class=_Formatter,
        parents=[common],
    )
    d.add_argument(
        "--db",
        default="streamlab-demo.duckdb",
        metavar="PATH",
        help="DuckDB file for the results (default: %(default)s)",
    )
    d.add_argument(
        "--report",
        default="streamlab-report.html",
        metavar="PATH",
        help="HTML report to write (default: %(default)s)",
    )
    d.add_argument(
        "--speed",
        type=_speed,
        default=None,
        help="replay speed, 1 = real time (default: as fast as possible)",
    )
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    r = sub.add_parser(
        "run",
        help="run a pipeline from its YAML spec",
        description="Run a pipeline from its YAML spec until its sources end, a limit is reached, Ctrl-C or "
        "SIGTERM; each stop flushes the sinks and commits.",
        epilog=_RUN_EPILOG,
        formatter_class=_Formatter,
        parents=[common],
    )
    r.add_argument("spec", help="pipeline spec (YAML) written by Pipeline.to_yaml('spec.yaml')")
    r.add_argument(
        "--checkpoint-dir",
        default=None,
        metavar="DIR",
        type=directory,
        help="keep state and positions here between runs (default: none)",
    )
    r.add_argument(
        "--max-events",
        type=_positive_int,
        default=None,
        metavar="N",
        help="stop after reading N events (default: no limit)",
    )
    r.add_argument(
        "--duration",
        type=_duration,
        default=None,
        metavar="TIME",
        help="stop after this long, e.g. 30s or 5m (default: no limit)",
    )
    r.add_argument(
        "--trust",
        action="store_true",
        help="allow code in the spec (function source, stdlib functions, SQL or expressions that do more than read and compute); only for specs you wrote or reviewed",
    )
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    e = sub.add_parser(
        "export",
        help="export a spec to Beam, Lambda, Flink or Spark code",
        description=EXPORT_DESCRIPTION,
        epilog=EXPORT_EPILOG,
        formatter_class=_Formatter,
        parents=[common],
    )
    add_export_arguments(e)
    b = sub.add_parser(
        "bench",
        help="run a benchmark of the source tree's benchmarks/ (nexmark)",
        description="Run a benchmark from a source checkout's benchmarks/ folder. nexmark: Nexmark q0-q8, "
        "q11 and q12 through streamlab, per core, beside Flink's published figures and Beam's Python queries.",
        epilog="example:\n  streamlab bench nexmark --queries q5,q7,q11 --events 1000000 --cores 1\n"
        "  streamlab bench nexmark --help   (the benchmark's own options)",
        formatter_class=_Formatter,
        parents=[common],
    )
    b.add_argument("suite", choices=["nexmark"], help="the benchmark")
    b.add_argument("options", nargs=argparse.REMAINDER, help="the benchmark's options")
    return parser


def bench(args: argparse.Namespace) -> int:
    """``streamlab bench SUITE ...``: run a benchmark script of the source tree with its own options."""
    root = Path(__file__).resolve().parents[1] / "benchmarks"
    if not (root / args.suite).is_dir():
        raise FileNotFoundError(
            f"streamlab bench needs a source checkout: {root / args.suite} is missing "
            "(the benchmarks are not part of the installed package)"
        )
    sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(f"{args.suite}.bench")
        return int(module.main(list(args.options)))
    finally:
        sys.path.remove(str(root))


def _user_error(exc: BaseException) -> bool:
    """Whether an exception is a mistake the user can fix (exit 2) rather than a failure (exit 1); a
    sink's failure is judged by the sink's own error (a directory where its file goes, say)."""
    from streamlab.errors import PipelineConfigError, SinkFailedError, SpecError

    if isinstance(exc, SinkFailedError) and exc.__cause__ is not None:
        exc = exc.__cause__
    return isinstance(
        exc,
        (
            SpecError,
            PipelineConfigError,
            FileNotFoundError,
            FileExistsError,
            PermissionError,
            IsADirectoryError,
            ImportError,
        ),
    )


def _checkpoint_error(exc: BaseException, args: argparse.Namespace) -> bool:
    """Whether the run could not resume from its checkpoint directory (exit 2, with a fix)."""
    from streamlab._checkpoint import CheckpointError, CheckpointSaveError

    if isinstance(exc, CheckpointError):  # (also a source's own, or one in the default directory)
        return True
    if getattr(args, "checkpoint_dir", None) is None or isinstance(exc, CheckpointSaveError):
        return False  # (a save that failed, a disk full say, is the run failing, not the checkpoint)
    # (by type, not by text: a sink's file under a path named "checkpoints" that cannot be written is no
    # checkpoint to move away)
    return isinstance(exc, (pickle.UnpicklingError, EOFError))


def describe_error(exc: BaseException, args: argparse.Namespace) -> str:
    """The message the CLI prints for an error: one line (a spec's problems one per line), no traceback.

    Examples
    --------
    >>> import argparse
    >>> describe_error(ValueError("boom"), argparse.Namespace(command="run"))
    'streamlab run: ValueError: boom (run again with --verbose for the traceback)'
    """
    from streamlab._checkpoint import CheckpointError, CheckpointSaveError
    from streamlab.errors import SpecError

    prog = f"streamlab {args.command}"
    if isinstance(exc, SpecError):
        return f"{prog}: {exc}"
    if isinstance(exc, CheckpointSaveError):  # it says what failed and that the last checkpoint is kept
        problem = " ".join(exc.problem.split())
        return f"{prog}: cannot save a checkpoint to {exc.path}: {problem}. Fix: {exc.fix}"
    if isinstance(exc, CheckpointError):  # it says what is wrong with which file, and its own fix
        problem = " ".join(exc.problem.split())
        return f"{prog}: cannot resume from the checkpoint {exc.path}: {problem}. Fix: {exc.fix}"
    text = " ".join(str(exc).split()) or type(exc).__name__
    notes = [str(n) for n in getattr(exc, "__notes__", ()) or ()]
    if notes:  # the step a source's error came from (the runtime's note)
        text = f"{text} ({'; '.join(notes)})"
    if _checkpoint_error(exc, args):
        return (
            f"{prog}: cannot resume from the checkpoint in {args.checkpoint_dir}: {type(exc).__name__}: {text}. "
            f"Fix: if that directory belongs to this pipeline, restore it from a backup; to start fresh, move "
            f"it away or pass another --checkpoint-dir"
        )
    if isinstance(exc, FileNotFoundError) and exc.filename:
        return (
            f"{prog}: file not found: {exc.filename}. Fix: check the path in the spec or on the command line"
        )
    if _user_error(exc):
        return f"{prog}: {text}"
    return f"{prog}: {type(exc).__name__}: {text} (run again with --verbose for the traceback)"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``streamlab`` command; returns the exit status.

    0: done; 1: the pipeline failed; 2: a usage or spec mistake (one line on stderr, or one line per
    problem of a spec; ``--verbose`` adds the traceback); 130: interrupted (Ctrl-C, SIGINT); 143: stopped
    by SIGTERM. A run stopped by either signal first flushes its sinks and commits, then exits 130 or 143,
    so ``streamlab run spec.yaml && next_step`` does not go on after a stop; a signal at any other moment
    of ``main`` (while the parser is built, say) prints ``streamlab COMMAND: interrupted`` (or
    ``terminated``) and exits the same way, without a traceback. (Before ``main``, while the console
    script imports the package, Python's own handling applies.)

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> main(['demo', '--quiet', '--db', os.path.join(d, 'x.duckdb'), '--report', os.path.join(d, 'r.html')])  # doctest: +ELLIPSIS
    streamlab demo: ...
    0
    """
    given = list(sys.argv[1:] if argv is None else argv)
    try:
        with _sigterm_raises():
            return _main(given)
    except KeyboardInterrupt:
        print(f"{_prog(given)}: interrupted", file=sys.stderr)
        return INTERRUPTED
    except Terminated:
        print(f"{_prog(given)}: terminated", file=sys.stderr)
        return TERMINATED


def _main(argv: list[str]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # --help, --version and usage errors (already printed)
        return stop.code if isinstance(stop.code, int) else 2
    if args.command is None:
        parser.print_help()
        return 0
    handler = {"demo": demo, "run": run_spec, "export": export, "bench": bench}[args.command]
    try:
        return int(handler(args))
    except Exception as exc:
        if args.verbose:
            traceback.print_exc()
        print(describe_error(exc, args), file=sys.stderr)
        return 2 if _user_error(exc) or _checkpoint_error(exc, args) else 1


#: the exit statuses of a stop by a signal: 128 + its number, as a shell reports a command it killed
INTERRUPTED, TERMINATED = 128 + signal.SIGINT, 128 + signal.SIGTERM


class Terminated(BaseException):
    """SIGTERM arrived where no run was there to stop gracefully (a ``BaseException``, as
    ``KeyboardInterrupt`` is, so that no ``except Exception`` takes it for an error to report)."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise Terminated


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While the command runs, SIGTERM raises :class:`Terminated` (a run installs its own handler, which
    stops it gracefully, and puts this one back); Python's default would end the process at once, with
    no message."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _prog(argv: Sequence[str]) -> str:
    """``streamlab COMMAND`` for the command ``argv`` names, before (or without) parsing it.

    Examples
    --------
    >>> _prog(["-v", "run", "spec.yaml"]), _prog(["--help"])
    ('streamlab run', 'streamlab')
    """
    command = next((a for a in argv if not a.startswith("-")), None)
    return f"streamlab {command}" if command in _COMMANDS else "streamlab"


_COMMANDS = ("demo", "run", "export", "bench")


@contextlib.contextmanager
def _signals_received() -> Iterator[set[int]]:
    """The numbers of the signals this process receives meanwhile, whoever handles them: a run stopped by
    SIGTERM ends with the status of one stopped by ``--max-events`` ('stopped'), so the exit status
    learns of the SIGTERM here (from Python's wake-up file descriptor, which every signal handled in
    Python writes its number to). The set is filled when the block ends.

    Examples
    --------
    >>> import os, signal
    >>> previous = signal.signal(signal.SIGUSR1, lambda signum, frame: None)
    >>> with _signals_received() as seen:
    ...     os.kill(os.getpid(), signal.SIGUSR1)
    >>> seen == {signal.SIGUSR1}
    True
    >>> _ = signal.signal(signal.SIGUSR1, previous)
    """
    seen: set[int] = set()
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return
    read, write = socket.socketpair()
    read.setblocking(False)
    write.setblocking(False)
    previous = signal.set_wakeup_fd(write.fileno(), warn_on_full_buffer=False)
    try:
        yield seen
    finally:
        signal.set_wakeup_fd(previous)
        with contextlib.suppress(BlockingIOError):
            while data := read.recv(256):
                seen.update(data)
        read.close()
        write.close()


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
