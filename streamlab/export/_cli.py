"""``streamlab export beam|lambda|spark spec.yaml -o DIR``: the command-line face of the exporters."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

__all__ = ["add_export_arguments", "export_main", "run_export"]

EXPORT_DESCRIPTION = (
    "Export a pipeline spec (written by Pipeline.to_yaml()) to Apache Beam, AWS Lambda or PySpark code."
)
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
        print(f"streamlab export: {unfit}", file=sys.stdout)
        return 2
    data, origin = load_spec(args.spec)
    pipeline = pipeline_from_dict(data, lazy_sources=True, trust=args.trust, origin=origin)
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
        print(f"streamlab export: {e}", file=sys.stdout)
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
        print(f"streamlab export: --write-input {args.write_input}: {e}", file=sys.stdout)
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
    >>> export_main(["beam", "missing.yaml", "-o", "out"])
    streamlab export: missing.yaml: no such file. Fix: check the path; Pipeline.to_yaml('spec.yaml') writes one
    2
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
        print(f"streamlab export: {e}", file=sys.stdout)
        return 2
