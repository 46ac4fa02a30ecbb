"""Command line: ``streamlab demo``, ``streamlab run spec.yaml``, ``streamlab export ...``."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import pickle
import re
import shutil
import sys
import textwrap
import traceback
from collections.abc import Sequence
from pathlib import Path
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
    return 0


def run_spec(args: argparse.Namespace) -> int:
    """``streamlab run SPEC``: run a pipeline from its YAML spec until its sources end or a limit.

    ``--max-events`` and ``--duration`` stop gracefully (sinks flushed, offsets committed, open windows
    kept for the next run with the same ``--checkpoint-dir``); so do Ctrl-C and SIGTERM. The spec is
    checked as a whole first; a spec holding code needs ``--trust``.

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
    result = p.run(
        progress=not args.quiet,
        checkpoint_dir=args.checkpoint_dir,
        max_events=args.max_events,
        duration=args.duration,
    )
    print(result)
    return 0 if result.status in ("finished", "stopped", "interrupted") else 1


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

A spec with code in it (a function's source, SQL other than a read-only SELECT) runs only with --trust."""


def build_parser() -> argparse.ArgumentParser:
    """The ``streamlab`` argument parser (every command, with help texts, defaults and examples).

    Examples
    --------
    >>> build_parser().parse_args(["run", "spec.yaml", "--max-events", "5"]).max_events
    5
    """
    from streamlab import __version__
    from streamlab.export._cli import EXPORT_DESCRIPTION, EXPORT_EPILOG, add_export_arguments, directory

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
    problem of a spec; ``--verbose`` adds the traceback); 130: interrupted.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> main(['demo', '--quiet', '--db', os.path.join(d, 'x.duckdb'), '--report', os.path.join(d, 'r.html')])  # doctest: +ELLIPSIS
    streamlab demo: ...
    0
    """
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
    except KeyboardInterrupt:
        print(f"streamlab {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.verbose:
            traceback.print_exc()
        print(describe_error(exc, args), file=sys.stderr)
        return 2 if _user_error(exc) or _checkpoint_error(exc, args) else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
