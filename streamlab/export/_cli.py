"""``streamlab export beam|lambda spec.yaml -o DIR``: the command-line face of the exporters."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

__all__ = ["export_main"]


def export_main(argv: Sequence[str] | None = None) -> int:
    """Export a YAML pipeline spec to Beam or Lambda code; returns the exit status.

    Parameters
    ----------
    argv
        Arguments after ``streamlab export``: ``beam|lambda SPEC -o DIR [--sink files|bigquery]``.

    Returns
    -------
    int
        0 on success, 2 when the spec cannot be exported (the message says why).

    Examples
    --------
    >>> export_main(["beam", "missing.yaml", "-o", "out"])
    streamlab export: cannot read missing.yaml: no such file
    2
    """
    parser = argparse.ArgumentParser(prog="streamlab export", description=export_main.__doc__)
    parser.add_argument("target", choices=("beam", "lambda"))
    parser.add_argument("spec", help="pipeline YAML written by Pipeline.to_yaml()")
    parser.add_argument("-o", "--output", required=True, help="directory for the generated files")
    parser.add_argument("--sink", choices=("files", "bigquery"), default="files", help="Beam only")
    parser.add_argument("--source", choices=("pubsub", "file"), default="pubsub", help="Beam only")
    args = parser.parse_args(list(argv) if argv is not None else None)
    from pathlib import Path

    from streamlab.spec import pipeline_from_dict

    spec = Path(args.spec)
    if not spec.exists():
        print(f"streamlab export: cannot read {spec}: no such file", file=sys.stdout)
        return 2
    import yaml

    try:
        pipeline = pipeline_from_dict(yaml.safe_load(spec.read_text()), lazy_sources=True)
        if args.target == "beam":
            from streamlab.export.beam import to_beam

            out = to_beam(pipeline, args.output, runner_source=args.source, sink=args.sink)
        else:
            from streamlab.export.aws_lambda import to_lambda

            out = to_lambda(pipeline, args.output)
    except ValueError as e:  # PipelineConfigError included: it names the step and the fix
        print(f"streamlab export: {e}", file=sys.stdout)
        return 2
    for name in out.files:
        print(out.directory / name)
    return 0
