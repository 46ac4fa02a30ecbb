"""What an exported job reads when the pipeline replays a file read whole or a DataFrame, and how to
write that input from the replayed data (:func:`write_job_input`).

An exported job reads raw records, one a message or one a line of its ``--input`` files: what a
pipeline's ``parse`` reads from its column (``value_column``), not the replayed file itself. Given the
replayed CSV or Parquet file, it would read each of the file's lines as a JSON record and send it to
dead letter. Every exporter's README or module docstring says so with :func:`replay_input_note`.

The examples below share one pipeline, :func:`_example_pipeline`: a DataFrame replay parsing its
column ``payload``.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from streamlab._record import is_null_value
from streamlab.errors import PipelineConfigError
from streamlab.pipeline import Pipeline
from streamlab.steps import ParseStep, SourceStep

if TYPE_CHECKING:
    from streamlab.sources import ReplaySource

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
    (``what``: ``"the file 'x.csv'"``, ``"a DataFrame"``), the column the parse reads, and what the job
    makes of the replayed data given as it is (``given_whole``)."""

    step_id: str
    what: str
    column: str
    given_whole: str


def _example_pipeline(payloads: tuple[str, ...] = ('{"n": 1}',)) -> Pipeline:
    """The examples' pipeline: a DataFrame replay of ``payloads`` (column ``payload``, times ``ts``)
    parsed into ``n``."""
    from streamlab import ReplaySource

    rows = pd.DataFrame({"ts": range(1, len(payloads) + 1), "payload": list(payloads)})
    p = Pipeline(ReplaySource(rows, time="ts"))
    p.parse({"n": "int64"}, value_column="payload", time=None)
    return p


def _given_whole(path: str | None) -> str:
    """What a job given the replayed data as it is reads: a file's lines, each a record."""
    from streamlab.sources import _JSON_LINES

    if path is None:
        return (
            "a DataFrame is no input a job reads; written to a CSV or Parquet file it would read each of "
            "the file's lines as a record and send it to dead letter"
        )
    if path.lower().endswith(_JSON_LINES):
        return (
            "given the replayed JSON file itself, it reads each of its lines as a record: a whole row, not "
            "the column's text"
        )
    return (
        "given the replayed file itself, it reads each of the file's lines as a record and sends it to "
        "dead letter"
    )


def replay_input(p: Pipeline) -> ReplayInput | None:
    """The pipeline's replay of a file read whole (CSV, Parquet, a JSON file) or of a DataFrame, or None
    (a raw JSON-lines replay, ``raw=True``, is read as the job reads its input; other sources deliver
    records as the deployed source does).

    Examples
    --------
    >>> found = replay_input(_example_pipeline())
    >>> found.step_id, found.what, found.column
    ('source', 'a DataFrame', 'payload')
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
        path = None if path is None else os.fspath(path)
        what = "a DataFrame" if path is None else f"the file {path!r}"
        return ReplayInput(sid, what, column, _given_whole(path))
    return None


def replay_input_note(p: Pipeline, run: str) -> str | None:
    """What the job reads when the pipeline replays a file read whole or a DataFrame, and how to write it
    (``run``: how the target is given the records, e.g. "give that file to ``--input``"); None otherwise.

    Examples
    --------
    >>> note = replay_input_note(_example_pipeline(), "give that file to --input")
    >>> print(note)  # doctest: +NORMALIZE_WHITESPACE
    Input: the pipeline replays a DataFrame (step 'source') and parses its column 'payload'. The job
    reads raw records, one JSON record a message or a line of its input files, as the deployed source
    delivers them: the column's texts, not the replayed rows (a DataFrame is no input a job reads;
    written to a CSV or Parquet file it would read each of the file's lines as a record and send it to
    dead letter). Write them from the replayed data with
    streamlab.export.write_job_input(pipeline, 'events.jsonl') (one text a line; from a spec:
    streamlab export ... --write-input events.jsonl), and give that file to --input.
    """
    found = replay_input(p)
    if found is None:
        return None
    return (
        f"Input: the pipeline replays {found.what} (step {found.step_id!r}) and parses its column "
        f"{found.column!r}. The job reads raw records, one JSON record a message or a line of its input "
        f"files, as the deployed source delivers them: the column's texts, not the replayed rows "
        f"({found.given_whole}). Write them from the replayed data with "
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
    file: this file is what to give the job's ``--input`` to get streamlab's results. A CSV replay's
    malformed records (those its ``dead_letter`` sink receives) are written too, each as its bytes in
    the file, where the replay passes it: the job sees every record the replay read, and sends these to
    its parse's dead letter (a record that is no JSON object), as streamlab sent them to the replay's.

    Parameters
    ----------
    pipeline
        A pipeline whose source is such a replay (``ReplaySource`` built with its data).
    path
        The file to write (JSON lines: each text's UTF-8 bytes, or a bytes value as it is).
    input_format
        ``"lines"`` (one record a line), or ``"base64"`` (one record's bytes in base64 a line, for records
        holding line breaks: the Beam and Flink jobs read it with ``--input_format base64``). A missing
        value is written as an empty line (a record without bytes, as lines hold no null), which the job
        sends to dead letter as ``empty record``; streamlab's reason for the missing value is ``null value
        (tombstone)``, as every job's is for a record that arrives without a value from Kafka, Kinesis or
        Pub/Sub (``verify`` gives both an empty record and says so).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    ValueError
        A record holds a line break and ``input_format`` is ``"lines"``, a value is no text or bytes, or a
        malformed CSV record is a JSON object (the job would read it as a good record).

    Examples
    --------
    >>> import tempfile
    >>> p = _example_pipeline(('{"n": 1}', '{"n": 2}'))
    >>> out = write_job_input(p, Path(tempfile.mkdtemp()) / "events.jsonl")
    >>> out.read_text()
    '{"n": 1}\\n{"n": 2}\\n'
    """
    if input_format not in ("lines", "base64"):
        raise ValueError(f"write_job_input: input_format={input_format!r}. Fix: use 'lines' or 'base64'")
    found, source = _replay_of(pipeline)
    frame = source.frame
    if found.column not in frame.columns:
        raise PipelineConfigError(
            found.step_id,
            "write_job_input",
            f"the replayed rows have no column {found.column!r} (their columns: {list(frame.columns)})",
            "name the column of raw records with parse(..., value_column='...')",
        )
    records = _job_records(source, found.column)
    if input_format == "lines" and needed_format([r for r, _ in records]) != "lines":
        where = next((w for r, w in records if b"\n" in r or r.endswith(b"\r")), records[0][1])
        raise ValueError(
            f"write_job_input: {where} holds a line break (or starts the file with a byte order mark), "
            "which a file of lines would split or lose. Fix: write_job_input(..., input_format='base64') "
            "and run the job with --input_format base64 (Beam, Flink)"
        )
    return write_records(Path(path), [r for r, _ in records], input_format)


def _replay_of(pipeline: Pipeline) -> tuple[ReplayInput, ReplaySource]:
    """The pipeline's replay (:func:`replay_input`) and its source, built with its data."""
    from streamlab.sources import ReplaySource

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
    return found, source


def _job_records(source: ReplaySource, column: str) -> list[tuple[bytes, str]]:
    """Each record the job reads, in the replay's order, with where it comes from (for errors): the
    column's values, and a CSV file's malformed records where the replay passes them (before the good
    row they precede, as its ``dead_letter`` receives them)."""
    records = [
        (_record_bytes(v, i, column), f"row {i} of column {column!r}")
        for i, v in enumerate(source.frame[column].tolist())
    ]
    csv = source.malformed_records
    if csv is None:
        return records
    bad = [
        (_malformed_bytes(raw, int(line), reason), f"the malformed record at line {int(line)}")
        for raw, line, reason in zip(csv.bad["raw"], csv.bad["line"], csv.bad["reason"])
    ]
    merged, b = [], 0
    for k, record in enumerate(records):
        while b < len(bad) and csv.before[b] <= k:  # ``before`` grows: the records are in file order
            merged.append(bad[b])
            b += 1
        merged.append(record)
    return merged + bad[b:]


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


def _malformed_bytes(raw: bytes, line: int, reason: str) -> bytes:
    """A CSV replay's malformed record as the job reads it: its bytes, which must not be a JSON object
    (the job would read it as a good record where streamlab's replay sent it to dead letter)."""
    try:
        parsed = json.loads(raw)
    except ValueError:  # UnicodeDecodeError too
        return raw
    if isinstance(parsed, dict):
        raise ValueError(
            f"write_job_input: line {line} of the CSV file is malformed ({reason}) and streamlab's replay "
            "sends it to its dead_letter, but its bytes are a JSON object, which the job would read as a "
            "record. Fix: correct or remove that line of the file"
        )
    return raw


def _record_bytes(value: Any, row: int, column: str) -> bytes:
    """One record's bytes: a text's UTF-8, bytes as they are, a missing value as none."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if is_null_value(value):
        return b""
    raise ValueError(
        f"write_job_input: row {row} of column {column!r} holds {type(value).__name__} {value!r:.80}, not "
        "a record's text or bytes. Fix: parse a column of JSON texts (the records as the deployed source "
        "delivers them)"
    )
