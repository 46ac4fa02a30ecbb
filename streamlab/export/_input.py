"""What an exported job reads when the pipeline replays a file read whole or a DataFrame, and how to
write that input from the replayed data (:func:`write_job_input`).

An exported job reads raw records, one a message or one a line of its ``--input`` files: what a
pipeline's ``parse`` reads from its column (``value_column``), not the replayed file itself. Given the
replayed CSV or Parquet file, it would read each of the file's lines as a JSON record and send it to
dead letter. Every exporter's README or module docstring says so with :func:`replay_input_note`.
"""

from __future__ import annotations

import base64
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from streamlab.errors import PipelineConfigError
from streamlab.pipeline import Pipeline
from streamlab.steps import ParseStep, SourceStep

__all__ = [
    "ReplayInput",
    "needed_format",
    "replay_input",
    "replay_input_block",
    "replay_input_note",
    "write_job_input",
    "write_records",
]


@dataclass(frozen=True)
class ReplayInput:
    """A replay whose rows an exported job does not read as they are: the source step, what it replays
    (``what``: ``"the CSV file 'x.csv'"``, ``"a DataFrame"``) and the column the parse reads."""

    step_id: str
    what: str
    column: str


def replay_input(p: Pipeline) -> ReplayInput | None:
    """The pipeline's replay of a file read whole (CSV, Parquet, a JSON file) or of a DataFrame, or None
    (a raw JSON-lines replay, ``raw=True``, is read as the job reads its input; other sources deliver
    records as the deployed source does).

    Examples
    --------
    >>> import pandas as pd
    >>> from streamlab import ReplaySource
    >>> p = Pipeline(ReplaySource(pd.DataFrame({"ts": [1], "payload": ['{"n": 1}']}), time="ts"))
    >>> _ = p.parse({"n": "int64"}, value_column="payload", time=None)
    >>> replay_input(p)
    ReplayInput(step_id='source', what='a DataFrame', column='payload')
    """
    from streamlab.sources import ReplaySource
    from streamlab.spec import _PlaceholderSource

    for sid, step in p.steps.items():
        if not isinstance(step, SourceStep):
            continue
        source = step.source
        if isinstance(source, ReplaySource):
            if source.raw:
                continue
            path = source.path
        elif isinstance(source, _PlaceholderSource) and source.spec().get("kind") == "replay":
            if source.spec().get("raw"):
                continue
            path = source.spec().get("path")
        else:
            continue
        column = next(
            (s.value_column for s in p.steps.values() if isinstance(s, ParseStep) and s.inputs[0] == sid),
            "value",
        )
        return ReplayInput(sid, "a DataFrame" if path is None else f"the file {os.fspath(path)!r}", column)
    return None


def replay_input_note(p: Pipeline, run: str) -> str | None:
    """What the job reads when the pipeline replays a file read whole or a DataFrame, and how to write it
    (``run``: how the target is given the records, e.g. "give that file to ``--input``"); None otherwise.

    Examples
    --------
    >>> import pandas as pd
    >>> from streamlab import ReplaySource
    >>> p = Pipeline(ReplaySource(pd.DataFrame({"ts": [1], "payload": ['{"n": 1}']}), time="ts"))
    >>> _ = p.parse({"n": "int64"}, value_column="payload", time=None)
    >>> print(replay_input_note(p, "give that file to --input"))  # doctest: +NORMALIZE_WHITESPACE
    Input: the pipeline replays a DataFrame (step 'source') and parses its column 'payload'. The job
    reads raw records, one JSON record a message or a line of its input files, as the deployed source
    delivers them: the column's texts, not the replayed rows (given the replayed CSV or Parquet file
    itself, it reads each of the file's lines as a record and sends it to dead letter). Write them from
    the replayed data with streamlab.export.write_job_input(pipeline, 'events.jsonl') (one text a
    line; from a spec: streamlab export ... --write-input events.jsonl), and give that file to --input.
    """
    found = replay_input(p)
    if found is None:
        return None
    return (
        f"Input: the pipeline replays {found.what} (step {found.step_id!r}) and parses its column "
        f"{found.column!r}. The job reads raw records, one JSON record a message or a line of its input "
        "files, as the deployed source delivers them: the column's texts, not the replayed rows (given "
        "the replayed CSV or Parquet file itself, it reads each of the file's lines as a record and sends "
        "it to dead letter). Write them from the replayed data with "
        f"streamlab.export.write_job_input(pipeline, 'events.jsonl') (one text a line; from a spec: "
        f"streamlab export ... --write-input events.jsonl), and {run}."
    )


def replay_input_block(p: Pipeline, run: str, width: int = 104) -> str:
    """:func:`replay_input_note` wrapped to ``width`` columns and followed by a blank line, or ``""``."""
    import textwrap

    note = replay_input_note(p, run)
    return "" if note is None else textwrap.fill(note, width, break_on_hyphens=False) + "\n\n"


def write_job_input(pipeline: Pipeline, path: str | os.PathLike[str], *, input_format: str = "lines") -> Path:
    """Write the records an exported job reads from the pipeline's replayed data: the texts of the column
    its parse reads (``value_column``), one a line, in the replay's order.

    A pipeline that replays a CSV, Parquet or JSON file read whole, or a DataFrame, and parses a column
    of its rows, exports a job that reads those texts (what the deployed source delivers), not the
    file: this file is what to give the job's ``--input`` to get streamlab's results.

    Parameters
    ----------
    pipeline
        A pipeline whose source is such a replay (``ReplaySource`` built with its data).
    path
        The file to write (JSON lines: each text's UTF-8 bytes, or a bytes value as it is).
    input_format
        ``"lines"`` (one record a line), or ``"base64"`` (one record's bytes in base64 a line, for records
        holding line breaks: the Beam and Flink jobs read it with ``--input_format base64``). A missing
        value is written as an empty line (a record without bytes).

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> import tempfile
    >>> import pandas as pd
    >>> from streamlab import ReplaySource
    >>> rows = pd.DataFrame({"ts": [1, 2], "payload": ['{"n": 1}', '{"n": 2}']})
    >>> p = Pipeline(ReplaySource(rows, time="ts"))
    >>> _ = p.parse({"n": "int64"}, value_column="payload", time=None)
    >>> out = write_job_input(p, Path(tempfile.mkdtemp()) / "events.jsonl")
    >>> out.read_text()
    '{"n": 1}\\n{"n": 2}\\n'
    """
    from streamlab.sources import ReplaySource

    if input_format not in ("lines", "base64"):
        raise ValueError(f"write_job_input: input_format={input_format!r}. Fix: use 'lines' or 'base64'")
    found = replay_input(pipeline)
    source = None if found is None else getattr(pipeline.steps[found.step_id], "source", None)
    if found is None or not isinstance(source, ReplaySource):
        raise PipelineConfigError(
            "pipeline",
            "write_job_input",
            "the pipeline's source is not a replay of a file read whole or of a DataFrame, built with its "
            "data (a raw JSON-lines replay is already the job's input; a spec built without its file has "
            "no rows to write)",
            "give the pipeline that replays the data (ReplaySource(path_or_frame)), or give the job the "
            "raw JSON-lines file itself",
        )
    frame = source.frame
    if found.column not in frame.columns:
        raise PipelineConfigError(
            found.step_id,
            "write_job_input",
            f"the replayed rows have no column {found.column!r} (their columns: {list(frame.columns)})",
            "name the column of raw records with parse(..., value_column='...')",
        )
    records = [_record_bytes(v, i, found.column) for i, v in enumerate(frame[found.column].tolist())]
    if input_format == "lines" and needed_format(records) != "lines":
        row = next((i for i, r in enumerate(records) if b"\n" in r or r.endswith(b"\r")), 0)
        raise ValueError(
            f"write_job_input: row {row} of column {found.column!r} holds a line break (or starts the "
            "file with a byte order mark), which a file of lines would split or lose. Fix: "
            "write_job_input(..., input_format='base64') and run the job with --input_format base64 "
            "(Beam, Flink)"
        )
    return write_records(Path(path), records, input_format)


def needed_format(records: list[bytes]) -> str:
    """``"lines"`` when a file of lines holds ``records`` as they are, else ``"base64"``
    (``streamlab.export.verify.input_format``'s rule)."""
    from streamlab.export.verify import input_format

    return input_format(records)


def write_records(path: Path, records: list[bytes], input_format: str) -> Path:
    """Write raw records to ``path`` as an exported job's ``--input`` reads them: one a line, or (for
    ``"base64"``) one record's bytes in base64 a line.

    Examples
    --------
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "in.jsonl"
    >>> write_records(path, [b"a", b"b\\n"], "base64").read_bytes()
    b'YQ==\\nYgo=\\n'
    """
    if input_format == "base64":  # a line break inside a record would split it in two: one record per line
        path.write_bytes(b"".join(base64.b64encode(r) + b"\n" for r in records))
    else:
        path.write_bytes(b"".join(r + b"\n" for r in records))
    return path


def _record_bytes(value: Any, row: int, column: str) -> bytes:
    """One record's bytes: a text's UTF-8, bytes as they are, a missing value as none."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return b""
    raise ValueError(
        f"write_job_input: row {row} of column {column!r} holds {type(value).__name__} {value!r:.80}, not "
        "a record's text or bytes. Fix: parse a column of JSON texts (the records as the deployed source "
        "delivers them)"
    )
