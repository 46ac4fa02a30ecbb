"""``streamlab export beam|lambda|spark spec.yaml -o DIR``: the command-line face of the exporters."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from streamlab.cli import EXPORT_DESCRIPTION, EXPORT_EPILOG, add_export_arguments

__all__ = ["add_export_arguments", "export_main", "run_export"]

#: what each target's export reads and writes, as the command line names them
_SOURCES = {"beam": ("pubsub", "file"), "flink": ("kafka", "kinesis", "eventhubs", "file")}
_SINKS = {"beam": ("files", "bigquery"), "flink": ("files", "kafka", "jdbc")}


def _unfit_choice(args: argparse.Namespace) -> str | None:
    """Why ``--source`` or ``--sink`` does not fit ``target`` (with the fix, in command-line terms), or None."""
    sources, sinks = _SOURCES.get(args.target), _SINKS.get(args.target)
    if args.source is not None and (sources is None or args.source not in sources):
        if sources is None:
            return f"--source {args.source}: the {args.target} export takes no --source. Fix: leave it out"
        extra = " (bridge Pub/Sub to Kafka), or export beam for Dataflow" if args.target == "flink" else ""
        return (
            f"--source {args.source}: the {args.target} export cannot read it. "
            f"Fix: use --source {' or --source '.join(sources)}{extra}"
        )
    if args.sink != "files" and (sinks is None or args.sink not in sinks):
        if sinks is None:
            later = " (the generated job takes --sink when it runs)" if args.target == "spark" else ""
            return f"--sink {args.sink}: the {args.target} export takes no --sink{later}. Fix: leave it out"
        return f"--sink {args.sink}: the {args.target} export cannot write it. Fix: use --sink {' or --sink '.join(sinks)}"
    return None


def _make_output_directory(path: str) -> str | None:
    """Make ``-o DIR`` (and its missing parents), or say why it cannot be made, with the fix: the
    exporters' own attempt surfaced as "file not found: DIR" for a directory that could not be created
    (under /proc, say).

    Examples
    --------
    >>> import tempfile
    >>> _make_output_directory(tempfile.mkdtemp() + "/a/b") is None
    True
    >>> print(_make_output_directory("/proc/streamlab-out"))
    -o /proc/streamlab-out: cannot create the output directory: /proc takes no new directories (No such file or directory). Fix: pass a directory you can write (created if missing)
    """
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        where = os.path.abspath(e.filename if isinstance(e.filename, str) else path)
        parent = os.path.dirname(where)
        why = e.strerror or type(e).__name__
        if isinstance(e, FileNotFoundError) and os.path.isdir(parent):  # a file system that makes none
            why = f"{parent} takes no new directories ({why})"
        elif where != os.path.abspath(path):
            why = f"{where}: {why}"
        return (
            f"-o {path}: cannot create the output directory: {why}. "
            "Fix: pass a directory you can write (created if missing)"
        )
    return None


def run_export(args: argparse.Namespace) -> int:
    """Export with parsed arguments; returns the exit status (2 when the spec cannot be exported).

    Errors from reading or checking the spec propagate as :class:`~streamlab.errors.SpecError` for the
    caller to report; an exporter's own refusal (an unsupported step) is printed here.

    Examples
    --------
    >>> run_export  # doctest: +ELLIPSIS
    <function run_export at ...>
    """
    from streamlab.spec import load_spec, pipeline_from_dict

    if args.source == "files":  # the spelling of the Python API's Flink source: the same as "file"
        args.source = "file"
    unfit = _unfit_choice(args)
    if unfit is not None:
        print(f"streamlab export: {unfit}", file=sys.stderr)
        return 2
    data, origin = load_spec(args.spec)
    pipeline = pipeline_from_dict(data, lazy_sources=True, trust=args.trust, origin=origin)
    made = not os.path.exists(args.output)
    unmade = _make_output_directory(args.output)
    if unmade is not None:
        print(f"streamlab export: {unmade}", file=sys.stderr)
        return 2
    try:
        if args.target == "beam":
            from streamlab.export.beam import to_beam

            out = to_beam(pipeline, args.output, runner_source=args.source or "pubsub", sink=args.sink)
        elif args.target == "flink":
            from streamlab.export.flink import to_flink

            source = {"file": "files", None: "kafka"}.get(args.source, args.source)
            out = to_flink(pipeline, args.output, source=source, sink=args.sink)
        elif args.target == "spark":
            from streamlab.export.spark import to_spark

            out = to_spark(pipeline, args.output)
        else:
            from streamlab.export.aws_lambda import to_lambda

            out = to_lambda(pipeline, args.output)
    except ValueError as e:  # PipelineConfigError included: it names the step and the fix
        if made:  # (the exporter refused before writing: leave no empty directory behind)
            with contextlib.suppress(OSError):
                os.rmdir(args.output)
        print(f"streamlab export: {e}", file=sys.stderr)
        return 2
    for name in out.files:
        print(out.directory / name)
    from streamlab.export._input import replay_input_note, write_job_input

    note = replay_input_note(pipeline, "give that file to the job's --input")
    if args.write_input is None:
        if note is not None:
            print(note)
        return 0
    try:  # the spec with its data this time: the rows to write
        written = write_job_input(pipeline_from_dict(data, trust=args.trust, origin=origin), args.write_input)
    except (ValueError, FileNotFoundError) as e:
        print(f"streamlab export: --write-input {args.write_input}: {e}", file=sys.stderr)
        return 2
    print(f"{written}: the records the job reads (give it to --input)")
    return 0


def export_main(argv: Sequence[str] | None = None) -> int:
    """Export a YAML pipeline spec to Beam or Lambda code; returns the exit status.

    Parameters
    ----------
    argv
        Arguments after ``streamlab export``: ``beam|lambda|spark SPEC -o DIR [--sink files|bigquery]``.

    Returns
    -------
    int
        0 on success, 2 when the spec cannot be read or exported (the message says why).

    Examples
    --------
    >>> import contextlib, io
    >>> err = io.StringIO()
    >>> with contextlib.redirect_stderr(err):
    ...     export_main(["beam", "missing.yaml", "-o", "out"])
    2
    >>> print(err.getvalue().strip())
    streamlab export: missing.yaml: no such file. Fix: check the path; Pipeline.to_yaml('spec.yaml') writes one
    """
    from streamlab.errors import SpecError

    parser = argparse.ArgumentParser(
        prog="streamlab export",
        description=EXPORT_DESCRIPTION,
        epilog=EXPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_export_arguments(parser)
    args = parser.parse_args(list(argv) if argv is not None else None)
    try:
        return run_export(args)
    except SpecError as e:
        print(f"streamlab export: {e}", file=sys.stderr)
        return 2
