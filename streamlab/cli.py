"""Command line: ``streamlab demo``, ``streamlab run spec.yaml``, ``streamlab export ...``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

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
    for suffix in ("", ".wal"):
        Path(db + suffix).unlink(missing_ok=True)
    p = build_demo_pipeline(db, speed=args.speed)
    print(f"streamlab demo: replaying the bundled clickstream dataset into {db}")
    result = p.run(progress=not args.quiet, clock=None if args.speed else ManualClock(0))
    sinks = {sid: p.steps[sid].sink for sid in ("results", "late", "dead_letter")}  # type: ignore[attr-defined]
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
    kept for the next run with the same ``--checkpoint-dir``); so do Ctrl-C and SIGTERM.

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
    from streamlab._time import parse_duration

    if args.duration is not None:
        try:
            parse_duration(args.duration, what="--duration")
        except ValueError as e:
            print(f"streamlab run: {e}", file=sys.stderr)
            return 2
    p = Pipeline.from_yaml(args.spec)
    result = p.run(
        progress=not args.quiet,
        checkpoint_dir=args.checkpoint_dir,
        max_events=args.max_events,
        duration=args.duration,
    )
    print(result)
    return 0 if result.status in ("finished", "stopped", "interrupted") else 1


def export(args: argparse.Namespace, rest: list[str]) -> int:
    """Hand ``streamlab export beam|lambda SPEC -o DIR`` to the exporters.

    Examples
    --------
    >>> export  # doctest: +ELLIPSIS
    <function export at ...>
    """
    try:
        from streamlab.export import export_main  # type: ignore[import-not-found]
    except ImportError as e:
        print(f"streamlab export is not available: {e}", file=sys.stderr)
        return 2
    return int(export_main(rest))


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``streamlab`` command.

    Examples
    --------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> main(['demo', '--quiet', '--db', os.path.join(d, 'x.duckdb'), '--report', os.path.join(d, 'r.html')])  # doctest: +ELLIPSIS
    streamlab demo: ...
    0
    """
    parser = argparse.ArgumentParser(prog="streamlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="run the embedded demo pipeline and write an HTML report")
    d.add_argument("--db", default="streamlab-demo.duckdb", help="DuckDB file for the results")
    d.add_argument("--report", default="streamlab-report.html", help="HTML report to write")
    d.add_argument(
        "--speed", type=float, default=None, help="replay speed (1 = real time); default: as fast as possible"
    )
    d.add_argument("--quiet", action="store_true", help="no progress bar")
    r = sub.add_parser("run", help="run a pipeline from its YAML spec")
    r.add_argument("spec")
    r.add_argument("--checkpoint-dir", default=None, help="keep state and positions here between runs")
    r.add_argument("--max-events", type=int, default=None, help="stop after reading this many events")
    r.add_argument("--duration", default=None, help="stop after this much time, e.g. 30s or 5m")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    sub.add_parser(
        "export",
        help="export a spec to Beam or Lambda code (streamlab export beam|lambda SPEC -o DIR)",
        add_help=False,
    )
    args, rest = parser.parse_known_args(argv)
    if args.command == "demo":
        return demo(args)
    if args.command == "run":
        return run_spec(args)
    return export(args, rest)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
