"""Run an exported pipeline on a sample and compare it with streamlab's own run of the same sample.

Beam: the generated module runs as deployed, by its command line in a child process
(``--input FILE --replay --sink files``): it reads the sample file as bytes, replays it with a
watermark that trails each window step's streamlab watermark (its ``replay_stream`` TestStream; which
rows are late is streamlab's rule, applied by the module) on Beam's Python ``DirectRunner`` in streaming mode (chosen explicitly: the default Prism
runner downloads a binary), and writes through its own files sink, which is read back. A child
process also keeps Beam's interactive mode (which fails with pandas 3) out of notebooks.
Lambda: the generated handler is invoked in this process with Kinesis events cut from the sample, as
the event-source mapping would (batches, the retry of a failed batch, partial-batch retries from the
reported sequence number), against moto for Timestream and SQS.
Spark: the generated job runs on Spark in local mode (``streamlab.export.spark.run_spark``) with a file
source and ``availableNow``; see ``streamlab.export.spark`` for what is compared.
"""

from __future__ import annotations

import dataclasses
import html
import importlib.util
import json
import math
import os
import shutil
import sys
import tempfile
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from streamlab._dead_letter import PARSE_DEAD_LETTER_COLUMNS
from streamlab._intcols import frame_of_rows
from streamlab._record import NULL_VALUE_REASON, is_null_value
from streamlab._serde_values import _plain
from streamlab._time import to_utc_ns
from streamlab.clock import ManualClock
from streamlab.errors import PipelineConfigError
from streamlab.export import _plan
from streamlab.pipeline import Pipeline
from streamlab.serde import dump_json, rows_to_json
from streamlab.sources import ListSource
from streamlab.steps import (
    DedupStep,
    IntervalJoinStep,
    OperatorStep,
    ParseStep,
    SinkStep,
    SourceStep,
    Step,
    WindowStep,
)

__all__ = ["VerificationReport", "verify"]


@dataclass
class VerificationReport:
    """Outcome of :func:`verify`: whether the export reproduced streamlab's results, and where not.

    Parameters
    ----------
    target
        ``"beam"``, ``"lambda"``, ``"flink"`` or ``"spark"``.
    equal
        True when every compared output has the same rows (outputs in ``not_compared`` were not).
    diff
        Rows present on one side only: ``output``, ``side`` (``"streamlab"`` or the target) and the
        row's compared columns.
    counts
        Rows per output: ``{"window": {"streamlab": 4, "beam": 4}, ...}``; of an output in
        ``not_compared``, the rows each side produced.
    notes
        What was not compared and why.
    files
        The export that was verified (deleted after ``verify`` returns unless it was given a ``workdir``).
    local, exported
        Every output of streamlab's run and of the export's run, by stream reference.
    not_compared
        Outputs left out of the comparison as a whole, with why: ``equal`` says nothing of them.

    Examples
    --------
    >>> r = VerificationReport("beam", True, pd.DataFrame(), {"window": {"streamlab": 2, "beam": 2}})
    >>> r
    VerificationReport(beam: equal; window: 2 vs 2)
    >>> counts = {"window": {"streamlab": 277, "spark": 280}}
    >>> VerificationReport("spark", True, pd.DataFrame(), counts, not_compared={"window": "2 late rows"})
    VerificationReport(spark: equal, 1 output not compared; window: not compared (277 vs 280: 2 late rows))
    """

    target: str
    equal: bool
    diff: pd.DataFrame
    counts: dict[str, dict[str, int]]
    notes: list[str] = field(default_factory=list)
    files: Any = None
    local: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    exported: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    not_compared: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.equal

    def _count(self, ref: str, v: dict[str, int]) -> str:
        both = f"{v['streamlab']} vs {v[self.target]}"
        return f"not compared ({both}: {self.not_compared[ref]})" if ref in self.not_compared else both

    def __repr__(self) -> str:
        parts = "; ".join(f"{k}: {self._count(k, v)}" for k, v in self.counts.items())
        state = "equal" if self.equal else f"{len(self.diff)} differing rows"
        if self.not_compared:
            state += (
                f", {len(self.not_compared)} output{'s' if len(self.not_compared) > 1 else ''} not compared"
            )
        return f"VerificationReport({self.target}: {state}; {parts})"

    def _repr_html_(self) -> str:
        color = "#1a7f37" if self.equal else "#cf222e"
        rows = "".join(
            f"<tr><td>{html.escape(k)}</td><td>{v['streamlab']}</td><td>{v[self.target]}</td>"
            f"<td>{'not compared: ' + html.escape(self.not_compared[k]) if k in self.not_compared else ''}</td></tr>"
            for k, v in self.counts.items()
        )
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        diff = self.diff.head(20).to_html(index=False) if len(self.diff) else ""
        verdict = "equal" if self.equal else "DIFFERENT"
        if self.not_compared:
            verdict += f" ({len(self.not_compared)} not compared)"
        return (
            f"<div><b style='color:{color}'>{self.target}: {verdict}</b>"
            f"<table><tr><th>output</th><th>streamlab</th><th>{self.target}</th></tr>{rows}</table>"
            f"{'<ul>' + notes + '</ul>' if notes else ''}{diff}</div>"
        )


# -- the sample ------------------------------------------------------------------------------------
def parse_columns(pipeline: Pipeline) -> tuple[str, ...]:
    """The columns of source rows that the pipeline's parse steps read raw records from (``value_column``):
    what an exported job is given, one record each, is the texts of that column.

    Examples
    --------
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{"ts": 1, "payload": "{}"}]))
    >>> _ = p.parse(value_column="payload")
    >>> parse_columns(p)
    ('payload',)
    """
    sources = {sid for sid, s in pipeline.steps.items() if isinstance(s, SourceStep)}
    found = [
        s.value_column
        for s in pipeline.steps.values()
        if isinstance(s, ParseStep) and s.inputs and s.inputs[0] in sources
    ]
    return tuple(dict.fromkeys(found)) or ("value",)


def sample_lines(sample: pd.DataFrame | Sequence[bytes | str | None], column: str = "value") -> list[bytes]:
    """Raw records of a sample: a list of bytes/str, a frame with the parsed column (``column``, the
    parse's ``value_column``: a replayed frame's rows give its texts) or a ``value`` column, or event rows.

    A missing value (None, NaN: a record that arrived without one, a Kafka tombstone) is an empty record,
    as ``write_job_input`` writes it: an exported job's input file holds no null (:func:`null_value_note`).

    Examples
    --------
    >>> sample_lines(pd.DataFrame({"event_type": ["a"], "n": [1]}))
    [b'{"event_type": "a", "n": 1}']
    >>> sample_lines(pd.DataFrame({"ts": [1, 2], "payload": ['{"n": 1}', None]}), "payload")
    [b'{"n": 1}', b'']
    """
    return [_sample_line(v) for v in _sample_values(sample, column)]


def _sample_values(sample: pd.DataFrame | Sequence[bytes | str | None], column: str) -> list[Any]:
    if isinstance(sample, pd.DataFrame):
        if column in sample.columns:
            return list(sample[column].tolist())
        if "value" in sample.columns:
            return list(sample["value"].tolist())
        return list(rows_to_json(sample, compact=False))
    return list(sample)


def _sample_line(value: Any) -> bytes:
    if is_null_value(value):
        return b""
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def null_value_note(sample: pd.DataFrame | Sequence[bytes | str | None], column: str = "value") -> str | None:
    """What ``verify`` says of the sample's records without a value (:func:`sample_lines`), or None.

    Examples
    --------
    >>> print(null_value_note([b"{}", None]))  # doctest: +NORMALIZE_WHITESPACE
    1 record of the sample has no value (None or NaN: a tombstone): an exported job's input file holds no
    null, so streamlab and the export were both given an empty record for it, which both dead-letter as
    'empty record' (a record that arrives without a value, from Kafka, Kinesis or Pub/Sub, is dead-lettered
    as 'null value (tombstone)' by streamlab and by every export alike)
    """
    n = sum(map(is_null_value, _sample_values(sample, column)))
    if not n:
        return None
    what = "1 record of the sample has" if n == 1 else f"{n} records of the sample have"
    return (
        f"{what} no value (None or NaN: a tombstone): an exported job's input file holds no null, so "
        f"streamlab and the export were both given an empty record for {'it' if n == 1 else 'each'}, which "
        f"both dead-letter as 'empty record' (a record that arrives without a value, from Kafka, Kinesis or "
        f"Pub/Sub, is dead-lettered as {NULL_VALUE_REASON!r} by streamlab and by every export alike)"
    )


def local_pipeline(pipeline: Pipeline, lines: list[bytes]) -> Pipeline:
    """A copy of the pipeline reading ``lines``, its sinks replaced by in-memory ones (``ListSink``).

    The source gives each line in the column the parse reads (``value_column``, ``value`` by default),
    as the exported jobs are given them: a parse of a replayed frame's ``payload`` column read a
    ``value`` column here, and streamlab's run failed with ``KeyError: the input has no column
    'payload'`` before anything was compared.
    """
    from streamlab.sinks import ListSink

    columns = parse_columns(pipeline)
    if columns == ("value",):
        source = ListSource(lines)
    else:
        source = ListSource(pd.DataFrame({c: pd.Series(lines, dtype=object) for c in columns}))
    copy = Pipeline(name=pipeline.name, time=pipeline.time)
    steps: dict[str, Step] = {}
    for sid, step in pipeline.steps.items():
        if isinstance(step, SinkStep):
            step = dataclasses.replace(step, sink=ListSink())
        if isinstance(step, SourceStep):
            step = dataclasses.replace(step, source=source)
        steps[sid] = step
    copy.steps = steps
    copy._columns = dict(pipeline._columns)
    copy._keys = dict(pipeline._keys)
    return copy


def run_local(pipeline: Pipeline, lines: list[bytes], batch_size: int = 50_000) -> dict[str, pd.DataFrame]:
    """streamlab's own outputs on the sample (every output, as the runtime collects them)."""
    local = local_pipeline(pipeline, lines)
    result = local.run(clock=ManualClock(0), batch_size=batch_size)
    outputs = dict(result.outputs)
    for step in local.steps.values():  # what the sinks got, also for streams other steps read too
        if isinstance(step, SinkStep) and step.inputs[0] not in outputs:
            outputs[step.inputs[0]] = step.sink.frame()  # type: ignore[attr-defined]
    return outputs


# -- Beam ------------------------------------------------------------------------------------------
_LOCK = threading.Lock()


class _Collect:
    """A DoFn body that appends rows as JSON lines to one file per output (DoFns are pickled)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __call__(self, row: Any) -> None:
        line = dump_json(row, compact=False)
        with _LOCK, open(self.path, "a") as f:
            f.write(line + "\n")


def rows_frame(rows: Sequence[Any]) -> pd.DataFrame:
    """Rows an export wrote (decoded JSON) as a frame whose integers keep every digit.

    pandas reads a column of ints and missing values as float64, which rounds an int beyond 2**53
    (4611686018427387907 became 4.611686018427388e+18) and so could report matching outputs as
    different or hide a real difference. Such a column becomes pandas' nullable ``Int64``, as the
    runtime holds an ``int64`` field with missing values (object, exact, beyond int64's range);
    a column of ints beside floats keeps each value's type (pandas would make ``1`` the float ``1.0``);
    every other column is read as pandas reads it.

    Examples
    --------
    >>> rows_frame([{"n": 4611686018427387907}, {"n": None}, {}])["n"].tolist()
    [4611686018427387907, <NA>, <NA>]
    >>> rows_frame([{"x": 1.5}, {"x": None}])["x"].dtype
    dtype('float64')
    >>> rows_frame([{"w": 1}, {"w": 2.5}, {}])["w"].tolist()
    [1, 2.5, None]

    Rows that are not records (a source's raw lines, bytes written as base64 text) are one ``value``
    column (pandas read each string as a row of characters):

    >>> rows_frame(["eyJ9", "e30="]).to_dict("list")
    {'value': ['eyJ9', 'e30=']}
    """
    rows = [r if isinstance(r, dict) else {"value": r} for r in rows]
    frame = frame_of_rows(rows)
    for c in frame.columns:
        if frame[c].dtype.kind != "f":
            continue
        values = [r.get(c) for r in rows]
        present = [v for v in values if v is not None]
        if any(type(v) is int for v in present) and not all(type(v) is int for v in present):
            # ints beside floats (a json field's first/last or key): each value of its own type, as
            # streamlab holds such a column (streamlab._intcols.inferred_series), not 1 as 1.0
            frame[c] = pd.Series(values, index=frame.index, dtype=object)
            continue
        if not present or not all(type(v) is int for v in present):
            continue
        if all(-(2**63) <= v < 2**63 for v in present):
            frame[c] = pd.array(values, dtype="Int64")
        else:
            frame[c] = pd.Series(values, index=frame.index, dtype=object)
    return frame


def load_module(path: str | Path) -> Any:
    """Import a generated module from its file under a unique name (so Beam can pickle its classes)."""
    name = f"streamlab_exported_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_BEAM_MISSING = "verifying a Beam export needs apache-beam: pip install 'streamlab[beam]'"


def _require_beam() -> None:
    """Raise the ImportError naming the ``beam`` extra if apache-beam is not installed: checked before any
    work, as the exported program, run in a child process, would only fail there."""
    if importlib.util.find_spec("apache_beam") is None:
        raise ImportError(f"{_BEAM_MISSING} (No module named 'apache_beam')")


def run_beam(module: Any, lines: list[bytes]) -> dict[str, pd.DataFrame]:
    """Run a generated Beam module on ``lines`` with the streaming DirectRunner; outputs by reference."""
    try:
        import apache_beam as beam
        from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
    except ImportError as e:
        raise ImportError(f"{_BEAM_MISSING} ({e})") from e
    with tempfile.TemporaryDirectory(prefix="streamlab-beam-") as tmp:
        # the Python DirectRunner, explicitly: Beam's default (Prism) downloads a binary at run time
        options = PipelineOptions(["--runner=DirectRunner", "--direct_num_workers=1"])
        options.view_as(StandardOptions).streaming = True
        paths: dict[str, str] = {}
        with beam.Pipeline(options=options) as p:
            raw = p | "replay" >> module.replay_stream(lines)
            streams = module.build(raw)
            for i, (ref, pcoll) in enumerate(streams.items()):
                paths[ref] = os.path.join(tmp, f"{i}.jsonl")
                _ = pcoll | f"collect {ref}" >> beam.Map(_Collect(paths[ref]))
        out = {}
        for ref, path in paths.items():
            if os.path.exists(path):
                with open(path) as f:
                    out[ref] = rows_frame([json.loads(line) for line in f])
            else:
                out[ref] = pd.DataFrame()
        return out


def fresh_dir(path: Path) -> Path:
    """``path`` as an empty directory: what an earlier run left there (a verification in the same
    ``workdir``) is removed, so a run reads back only its own outputs."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


BEAM_STALL = "raise update.exception\nTypeError: exceptions must derive from BaseException"
"""How the DirectRunner ends a stalled pipeline: its stall is an exc_info tuple, which ``raise`` refuses."""


def beam_failure(stderr: str) -> str:
    """The error of a failed Beam program from its stderr: the end of it, and the real error where the
    DirectRunner hides it (a pipeline stall surfaces as a TypeError about ``BaseException``).

    Examples
    --------
    >>> beam_failure("...\\n    raise update.exception\\nTypeError: exceptions must derive from BaseException\\n")[:62]
    "Beam's DirectRunner stopped: 'Monitor task detected a pipeline"
    """
    tail = stderr[-3000:]
    if BEAM_STALL not in "\n".join(x.strip() for x in stderr.splitlines()[-4:]):
        return tail
    return (
        "Beam's DirectRunner stopped: 'Monitor task detected a pipeline stall' (work was left that the "
        "watermark never released, e.g. a watermark hold of a window that never fires; Beam reports it as "
        f"'TypeError: exceptions must derive from BaseException'):\n{tail}"
    )


def input_format(lines: list[bytes]) -> str:
    """How a sample's records are handed to a Beam program's ``--input``: ``"lines"``, one per line, as
    a user's file holds them; ``"base64"`` (one record's bytes in base64 per line) when a record holds a
    line feed or ends in a carriage return, which a file of lines would split or cut (``read_lines``
    takes LF and CRLF as the end of a line), or when the first record starts with a UTF-8 byte order
    mark, which a file of lines would lose (``read_lines`` skips one that starts a file, as streamlab's
    replay does).

    Examples
    --------
    >>> input_format([b'{"a": 1}', b"not json"]), input_format([b'{"a":\\n 1}']), input_format([b"x\\r"])
    ('lines', 'base64', 'base64')
    >>> input_format([b'\\xef\\xbb\\xbf{"a": 1}']), input_format([b"{}", b'\\xef\\xbb\\xbf{"a": 1}'])
    ('base64', 'lines')
    """
    if lines and lines[0].startswith(b"\xef\xbb\xbf"):
        return "base64"
    return "base64" if any(b"\n" in line or line.endswith(b"\r") for line in lines) else "lines"


def run_beam_program(
    module_path: str | Path, lines: list[bytes], workdir: str | Path, *, timeout_s: float = 600.0
) -> dict[str, pd.DataFrame]:
    """Run the generated module as deployed: its command line, in a child process, on a file of ``lines``.

    The module reads the file as bytes and replays it as a stream, late rows as in streamlab
    (``--input FILE --replay``; with ``--input_format base64`` when a record holds a line break:
    :func:`input_format`), runs on the streaming DirectRunner and writes every output through its
    own files sink; the rows are read back from those files, by stream reference
    (:func:`beam_program_outputs`). The child runs in ``workdir`` and is handed absolute paths only (a
    relative ``workdir`` is the caller's); it is stopped after ``timeout_s`` seconds with a TimeoutError
    saying so.
    """
    from streamlab.export._input import write_records

    work = Path(workdir).resolve()  # the child's cwd is work: a path relative to ours would miss
    framing = input_format(lines)
    sample = write_records(work / "verify-input.jsonl", lines, framing)
    return beam_program_outputs(module_path, sample, work, input_format=framing, timeout_s=timeout_s)


def caller_path_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``environ`` (this process's by default) whose ``PYTHONPATH`` leads with this process's
    Python path, so that an exported program run as a child process imports the user's own modules (a
    function from ``features.py`` beside the notebook) as the caller does: a child gets neither the
    caller's ``sys.path`` nor its working directory (it runs in the export's). Only entries that exist
    are passed, the current directory (``""``) as its absolute path, and not the interpreter's own
    directories (the standard library, site-packages), which the child's Python has itself.

    Examples
    --------
    >>> import os, tempfile
    >>> mine = tempfile.mkdtemp()
    >>> sys.path.insert(0, mine)
    >>> paths = caller_path_env({"PYTHONPATH": "/opt/extra"})["PYTHONPATH"].split(os.pathsep)
    >>> sys.path.remove(mine)
    >>> str(Path(mine).resolve()) in paths, paths[-1]
    (True, '/opt/extra')
    """
    import site
    import sysconfig

    env = dict(os.environ if environ is None else environ)
    own = {sysconfig.get_path(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    own |= set(site.getsitepackages()) | {site.getusersitepackages()}
    own_dirs = [Path(d).resolve() for d in own if d and Path(d).is_dir()]
    entries: list[str] = []
    for entry in sys.path:
        path = Path(entry or ".").resolve()
        if not path.exists() or any(path == d or d in path.parents for d in own_dirs):
            continue
        if str(path) not in entries:
            entries.append(str(path))
    entries += [e for e in env.get("PYTHONPATH", "").split(os.pathsep) if e and e not in entries]
    if entries:
        env["PYTHONPATH"] = os.pathsep.join(entries)
    return env


def beam_program_outputs(
    module_path: str | Path,
    input_path: str | Path,
    workdir: str | Path,
    *,
    input_format: str = "lines",
    timeout_s: float = 600.0,
) -> dict[str, pd.DataFrame]:
    """Run the generated Beam module by its command line on the file ``input_path`` (``--input FILE
    --replay``, and ``--input_format`` unless ``"lines"``), in a child process in ``workdir``, writing
    through its files sink (into ``workdir/verify-output``, emptied first); its outputs by reference."""
    import subprocess

    work = Path(workdir).resolve()
    module_path = Path(module_path).resolve()
    out_dir = fresh_dir(work / "verify-output")  # never an earlier run's files
    cmd = [sys.executable, str(module_path), "--input", str(Path(input_path).resolve()), "--replay"]
    cmd += ["--sink", "files"]
    if input_format != "lines":
        cmd += ["--input_format", input_format]
    cmd += ["--output", str(out_dir), "--runner", "DirectRunner", "--direct_num_workers", "1"]
    cmd += ["--file_window_s", str(10**10), "--file_shards", "1"]  # one file per output and pane
    try:
        done = subprocess.run(
            cmd, capture_output=True, text=True, cwd=work, timeout=timeout_s, env=caller_path_env()
        )
    except subprocess.TimeoutExpired:
        raise TimeoutError(
            f"verify(target='beam'): the exported Beam program did not finish in {timeout_s:g} s and was "
            f"stopped ({' '.join(cmd)}). Fix: verify a smaller sample, or allow it longer with "
            "verify(..., timeout_s=...)"
        ) from None
    if done.returncode != 0:
        raise RuntimeError(
            f"the exported Beam program failed ({' '.join(cmd)}):\n{beam_failure(done.stderr)}"
        )
    module_text = Path(module_path).read_text()
    outputs = _plan.const_value(module_text, "OUTPUTS")
    frames: dict[str, pd.DataFrame] = {}
    for ref, name in outputs.items():
        rows = []
        written = sorted((out_dir / name).glob("*")) if (out_dir / name).is_dir() else []
        for path in (p for p in written if p.is_file() and not p.name.startswith(".")):
            rows += [json.loads(x) for x in path.read_text().splitlines() if x]
        frames[ref] = rows_frame(rows)
    return frames


# -- comparison ------------------------------------------------------------------------------------
def not_compared(
    notes: list[str],
    local: dict[str, Any],
    exported: dict[str, Any],
    counts: dict[str, dict[str, int]],
    target: str,
) -> dict[str, str]:
    """Outputs the notes say were not compared at all (``"<ref>: not compared: <why>"``), with why; their
    ``counts`` become the rows each side produced (a left-out output was counted as 0 vs 0).

    Examples
    --------
    >>> counts = {"window": {"streamlab": 0, "spark": 0}}
    >>> local, exported = {"window": pd.DataFrame({"n": [1, 2]})}, {"window": pd.DataFrame({"n": [1]})}
    >>> not_compared(["window: not compared: 2 late rows", "other"], local, exported, counts, "spark")
    {'window': '2 late rows'}
    >>> counts
    {'window': {'streamlab': 2, 'spark': 1}}
    """
    out: dict[str, str] = {}
    for note in notes:
        ref, sep, why = note.partition(": not compared: ")
        if not sep or " " in ref:
            continue
        out[ref] = why
        produced = [local.get(ref), exported.get(ref)]
        counts[ref] = {
            "streamlab": 0 if produced[0] is None else len(produced[0]),
            target: 0 if produced[1] is None else len(produced[1]),
        }
    return out


def _norm_value(v: Any) -> Any:
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (bytes, bytearray)):
        return bytes(v).decode("utf-8", "replace")
    if isinstance(v, (pd.Timestamp, np.datetime64)):
        return int(
            pd.Timestamp(v).tz_localize("UTC").value
            if pd.Timestamp(v).tzinfo is None
            else pd.Timestamp(v).value
        )
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if not math.isfinite(f):  # every sink writes NaN and the infinities as null (streamlab.serde)
            return None
        return float(f"{f:.9g}") + 0.0  # -0.0 is 0.0 (one value, one key: streamlab groups them as one)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, (dict, list)):  # NaN and the infinities inside are null too, as every sink writes them
        # keys in their order, as the sinks write them: with sorted keys, an export that reordered an
        # object's keys (Spark's json fields) was reported equal
        try:
            return json.dumps(v, allow_nan=False)
        except ValueError:
            return json.dumps(_plain(v), allow_nan=False)
    return v


def _normalise(frame: pd.DataFrame, columns: list[str], times: set[str], unit_ns: int = 1) -> pd.DataFrame:
    if frame is None or len(frame) == 0:
        return pd.DataFrame(columns=columns)
    data: dict[str, list[Any]] = {}
    for c in columns:
        if c not in frame.columns:
            data[c] = [None] * len(frame)
            continue
        col = frame[c]
        if c in times:
            ns = to_utc_ns(col)  # times truncated toward the past to unit_ns, as the JSON encoding does
            data[c] = [
                None if x == np.iinfo(np.int64).min else int(x) // unit_ns * unit_ns for x in ns.tolist()
            ]
        else:
            data[c] = [_norm_value(v) for v in col.tolist()]
    return pd.DataFrame(data, columns=columns, dtype=object)  # ints beyond 2**53 stay exact


def _multiset_diff(name: str, left: pd.DataFrame, right: pd.DataFrame, target: str) -> pd.DataFrame:
    cols = list(left.columns)

    def key(df: pd.DataFrame) -> pd.Series:
        return (
            df.astype(object)
            .where(pd.notna(df), None)
            .apply(lambda r: json.dumps(list(r), default=str), axis=1)
        )

    lk = key(left).tolist() if len(left) else []
    rk = key(right).tolist() if len(right) else []
    from collections import Counter

    cl, cr = Counter(lk), Counter(rk)
    rows = []
    for k, n in (cl - cr).items():
        rows += [{"output": name, "side": "streamlab", **dict(zip(cols, json.loads(k)))}] * n
    for k, n in (cr - cl).items():
        rows += [{"output": name, "side": target, **dict(zip(cols, json.loads(k)))}] * n
    return pd.DataFrame(rows)


def compared_outputs(pipeline: Pipeline, target: str) -> dict[str, tuple[list[str], set[str]]]:
    """Which outputs to compare, on which columns (and which of them are times).

    For Beam and Lambda every output the program writes: a filter's, map's or select's rows where
    nothing reads them, and their dead letters, as the window steps' and the detectors' outputs (a
    pipeline of row steps alone was reported equal with none of its rows compared).

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b"{}"]))
    >>> _ = p.parse().with_columns(n="user_id + '!'", step_id="named")
    >>> sorted(compared_outputs(p, "beam"))
    ['named', 'named.dead_letter', 'parse.dead_letter']
    """
    out: dict[str, tuple[list[str], set[str]]] = {}
    after = _after_row_steps(pipeline)
    kinds = _plan.column_types(pipeline)
    for ref in _plan.sink_outputs(pipeline):
        step = pipeline.steps[ref.split(".")[0]]
        if isinstance(step, ParseStep) or (
            isinstance(step, WindowStep) and ref != f"{step.step_id}.dead_letter"
        ):
            continue  # their own columns below
        if isinstance(step, DedupStep) and ref != step.step_id:
            continue  # repeats: Beam's on their own columns below; the Lambda handler drops them
        if target not in ("beam", "lambda") and step.step_id not in after:
            continue  # Flink SQL: the outputs of row steps (comparable() says which others)
        cols = list(pipeline.columns_of(ref) or ())
        # a time renamed by a select or copied by with_columns (t="timestamp") is a time too: read as
        # text on the target's side only, it differed from streamlab's datetimes in every row
        timed = _plan.row_times(pipeline, ref, kinds)
        out[ref] = (cols, {c for c in cols if c in timed})
    for sid, step in pipeline.steps.items():
        if step.kind == "parse":
            out[f"{sid}.dead_letter"] = (list(PARSE_DEAD_LETTER_COLUMNS), set())
        if isinstance(step, DedupStep) and target == "beam":
            cols = [step.id_column] + ([step.time] if step.time else [])
            out[f"{sid}.duplicates"] = (cols, {step.time} if step.time else set())
        if isinstance(step, IntervalJoinStep) and target == "flink":
            cols = list(pipeline.columns_of(sid) or ())
            parses = [s for s in pipeline.steps.values() if isinstance(s, ParseStep)]
            stamps = {f.name for s in parses for f in s.fields if f.type == "timestamp"}
            out[sid] = (cols, {c for c in cols for t in stamps if c in (t, *(t + x for x in step.suffixes))})
        if isinstance(step, WindowStep):
            aggs = [a.name for a in step.aggs]
            types = _plan.column_types(pipeline).get(step.inputs[0], {})
            timed = {a.name for a in step.aggs if _plan.result_type(a, types) == "timestamp"}  # first/last
            out[sid] = (
                [*step.keys, "window_start", "window_end", *aggs],
                {"window_start", "window_end", *timed},
            )
            if target == "lambda":  # the results Timestream cannot hold (aws_lambda.timestream_rejections)
                from streamlab.export.aws_lambda import REJECTED

                out[f"{sid}.{REJECTED}"] = (
                    [*step.keys, "window_start", "window_end", "reject_reason"],
                    {"window_start", "window_end"},
                )
            if target == "flink":
                continue  # Flink SQL drops late rows: no late output
            out[f"{sid}.late"] = ([*step.keys, step.time, "window_start"], {step.time, "window_start"})
    return out


def _after_row_steps(pipeline: Pipeline) -> set[str]:
    """Ids of the detector, feature, rule, drift and pattern steps and of every step downstream of one."""
    found: set[str] = set()
    for sid, step in pipeline.steps.items():  # steps are in topological order
        if isinstance(step, OperatorStep) or any(r.split(".")[0] in found for r in step.inputs):
            found.add(sid)
    return found


def compare(
    pipeline: Pipeline,
    local: dict[str, pd.DataFrame],
    exported: dict[str, pd.DataFrame],
    target: str,
    *,
    outputs: dict[str, tuple[list[str], set[str]]] | None = None,
    time_unit_ns: int = 1,
) -> tuple[bool, pd.DataFrame, dict[str, dict[str, int]]]:
    """Compare outputs as multisets of rows on the compared columns (``outputs``: which, on which
    columns; by default ``compared_outputs(pipeline, target)``), times truncated to ``time_unit_ns``
    (the resolution the target writes: :data:`TIME_UNIT_NS`)."""
    diffs = []
    counts: dict[str, dict[str, int]] = {}
    if outputs is None:
        outputs = compared_outputs(pipeline, target)
    for ref, (cols, times) in outputs.items():
        ours, theirs = local.get(ref, pd.DataFrame()), exported.get(ref, pd.DataFrame())
        if not cols:  # a step whose columns are known only when it runs (map_one without columns=)
            cols = [str(c) for c in (ours.columns if len(ours.columns) else theirs.columns)]
            times = {c for c in cols if c in ours.columns and pd.api.types.is_datetime64_any_dtype(ours[c])}
        left = _normalise(ours, cols, times, time_unit_ns)
        right = _normalise(theirs, cols, times, time_unit_ns)
        counts[ref] = {"streamlab": len(left), target: len(right)}
        d = _multiset_diff(ref, left, right, target)
        if len(d):
            diffs.append(d)
    diff = pd.concat(diffs, ignore_index=True) if diffs else pd.DataFrame(columns=["output", "side"])
    return not diffs, diff, counts


TIME_UNIT_NS = {"beam": 1_000, "spark": 1_000, "lambda": 1_000, "flink": 1_000}
"""The resolution (ns) of the times an export holds and writes, where coarser than streamlab's
nanoseconds (the reasons: :data:`TIME_UNIT_WHY`). Flink's is its DataStream job's (``datastream.py``);
its SQL job (``main.py``) holds milliseconds, at which ``verify`` compares it
(``streamlab.export.flink.SQL_TIME_UNIT_NS``)."""

TIME_UNIT_WHY = {
    "beam": "Beam's element timestamps, the rows' datetimes, streamlab's JSON encoding, BigQuery's TIMESTAMP",
    "spark": "Spark's TIMESTAMP, the rows' datetimes, streamlab's JSON encoding",
    "lambda": "the handler's datetimes, streamlab's JSON encoding of its SQS messages; its time measures hold milliseconds",
    "flink": "datastream.py's datetimes, streamlab's JSON encoding of its outputs",
}
"""Why an export's times are as coarse as :data:`TIME_UNIT_NS` says."""


def finer_time_notes(
    local: dict[str, pd.DataFrame],
    outputs: dict[str, tuple[list[str], set[str]]],
    target: str,
    unit_ns: int,
    why: str | None = None,
) -> list[str]:
    """One note per compared output whose time columns in streamlab's run hold times finer than the
    target writes (``unit_ns``: a microsecond or a millisecond): which columns, an example, and what
    that means for the comparison (``why``: why the target's times are that coarse; by default
    :data:`TIME_UNIT_WHY`'s).

    Examples
    --------
    >>> t = pd.Series(pd.to_datetime([1_704_067_205_123_456_789], utc=True))
    >>> local = {"window": pd.DataFrame({"window_start": t, "window_end": t})}
    >>> finer_time_notes(local, {"window": (["window_start"], {"window_start"})}, "beam", 1_000)[0][:122]
    'window: window_start has times with digits below the microsecond (1 of 1, e.g. window_start 2024-01-01T00:00:05.123456789Z'
    """
    notes = []
    for ref, (_, times) in outputs.items():
        frame = local.get(ref)
        if frame is None or not len(frame):
            continue
        finer = []
        for c in sorted(t for t in times if t in frame.columns):
            ns = to_utc_ns(frame[c])
            ns = ns[ns != np.iinfo(np.int64).min]
            below = ns[ns % unit_ns != 0]
            if len(below):
                example = pd.Timestamp(int(below[0]), tz="UTC").isoformat().replace("+00:00", "Z")
                finer.append((c, len(below), len(ns), example))
        if not finer:
            continue
        cols = " and ".join(c for c, *_ in finer)
        c, n, total, example = finer[0]
        unit = "millisecond" if unit_ns == 1_000_000 else "microsecond"
        sinks = "" if unit_ns != 1_000 else ", as streamlab's own JSON sinks write them"
        notes.append(
            f"{ref}: {cols} {'has' if len(finer) == 1 else 'have'} times with digits below the {unit} "
            f"({n} of {total}, e.g. {c} {example}); the {target} export holds and writes times to the "
            f"{unit} ({why or TIME_UNIT_WHY[target]}), so they are compared truncated to the {unit}{sinks}; "
            f"events less than a {unit} apart are ordered and merged there at the {unit} "
            "(docs/semantics.md, 'Time resolution of exports')"
        )
    return notes


def verify(
    pipeline: Pipeline,
    sample: pd.DataFrame | Sequence[bytes | str],
    target: str = "beam",
    *,
    workdir: str | Path | None = None,
    lambda_batch_size: int = 5,
    timeout_s: float = 600.0,
    **options: Any,
) -> VerificationReport:
    """Export ``pipeline``, run the export on ``sample`` and compare with ``pipeline.run`` on it.

    Parameters
    ----------
    pipeline
        The pipeline; its source is replaced by the sample and its sinks are left out (their inputs
        are compared instead).
    sample
        Raw records in arrival order (bytes/str), a frame with the column the parse reads (its
        ``value_column``: the replayed rows themselves) or a ``value`` column, or a frame of events
        (written as JSON records). Put disorder, late records and bad records in it. streamlab's run and
        the export's are given the same records, in the parse's column for streamlab's.
    target
        ``"beam"`` (DirectRunner with a TestStream), ``"lambda"`` (the handler against moto),
        ``"flink"`` (the exported ``main.py`` on Flink's local mini-cluster, reading the sample from a
        file, in PyFlink's own virtual environment: ``flink_python=`` or ``$STREAMLAB_FLINK_PYTHON``,
        else one built once under ``$STREAMLAB_CACHE``; ``flink_job=`` ``"auto"``, ``"datastream"`` or
        ``"sql"``: see ``streamlab.export.flink.verify_flink``) or
        ``"spark"`` (the job on Spark in local mode reading the sample from files; option
        ``batch_records=N`` reads N records per micro-batch).
    workdir
        Where to write the export (a temporary directory by default); a relative path is taken from
        the current directory, and the exported program is handed absolute paths only. Each run
        clears what an earlier run left in its run directories there (``verify-output``; Spark's
        ``run``), so a verification reads back only its own outputs.
    lambda_batch_size
        Records per Kinesis invocation for ``target="lambda"``.
    timeout_s
        How long the exported program may run (the Beam program, the Flink job, each Spark query)
        before it is stopped with a TimeoutError naming the target.
    **options
        Passed to ``to_beam`` / ``to_lambda`` / ``to_flink`` (``flink_python`` excepted).

    Returns
    -------
    VerificationReport
        ``equal``, the ``diff`` rows and per-output ``counts``; truthy when equal.

    Examples
    --------
    >>> from streamlab import Pipeline, TumblingWindow, agg
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b"{}"]), name="doc")
    >>> _ = p.parse().window(TumblingWindow("1m"), key="event_type").agg(agg.count())
    >>> lines = [b'{"event_id": "1", "event_type": "a", "timestamp": "2024-01-01T00:00:05Z"}', b"oops"]
    >>> verify(p, lines).equal  # doctest: +SKIP
    True
    >>> verify(p, lines, target="storm")
    Traceback (most recent call last):
    ...
    streamlab.errors.PipelineConfigError: step 'pipeline' (verify): unknown target 'storm'. Fix: use target='beam', 'lambda', 'flink' or 'spark'
    """
    _plan.check_pipeline(pipeline, "verify")
    if target not in ("beam", "lambda", "flink", "spark"):
        raise PipelineConfigError(
            "pipeline",
            "verify",
            f"unknown target {target!r}",
            "use target='beam', 'lambda', 'flink' or 'spark'",
        )
    if target == "beam":
        _require_beam()
    column = parse_columns(pipeline)[0]
    lines = sample_lines(sample, column)
    null_note = null_value_note(sample, column)
    local = ran = run_local(pipeline, lines)  # ran: what streamlab produced, before any leave-out
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix=f"streamlab-{target}-")
        workdir = tmp.name
    workdir = Path(workdir).resolve()  # exported programs run in directories of their own
    outputs: dict[str, tuple[list[str], set[str]]] | None = None  # compared_outputs(pipeline, target)
    unit = TIME_UNIT_NS.get(target, 1)  # the resolution of the export's times (Flink's: of the job run)
    try:
        if target == "beam":
            from streamlab.export.beam import replay_unfollowed, to_beam

            files = to_beam(pipeline, workdir, **options)
            exported = run_beam_program(files.module, lines, workdir, timeout_s=timeout_s)
            notes = [
                "the module ran as deployed: its command line (--input FILE --replay), reading the file as "
                "bytes, writing through its files sink",
                *(
                    [
                        "a record of the sample holds a line break (or the first starts with a byte order "
                        "mark): the file held each record in base64, one per line (--input_format base64), so "
                        "that it stays one record"
                    ]
                    if input_format(lines) == "base64"
                    else []
                ),
                "late rows are compared on keys, event time and window_start (Beam cannot report the watermark)",
            ]
            notes += finer_time_notes(local, compared_outputs(pipeline, target), target, TIME_UNIT_NS[target])
            notes += [
                f"{sid}: the replay's watermark follows every parsed record for this window step ({why}), "
                "not only the rows that reach it, so Beam may close its windows at other times than streamlab"
                for sid, why in replay_unfollowed(pipeline).items()
            ]
        elif target == "flink":
            from streamlab.export.flink import verify_flink

            files, local, exported, notes, outputs, unit = verify_flink(
                pipeline, lines, local, workdir, timeout_s=timeout_s, **options
            )
        elif target == "lambda":
            from streamlab.export.aws_lambda import run_lambda, timestream_rejections, to_lambda

            files = to_lambda(pipeline, workdir, **options)
            exported, notes = run_lambda(pipeline, files, lines, batch_size=lambda_batch_size)
            local = timestream_rejections(pipeline, local)  # the results Timestream cannot hold: dead letters
            notes += finer_time_notes(local, compared_outputs(pipeline, target), target, TIME_UNIT_NS[target])
        elif target == "spark":
            from streamlab.export.spark import spark_session, verify_spark

            # the Python workers Spark starts for the job's functions get the caller's Python path too
            # (PySpark hands SparkContext.environment to each function's workers)
            path = caller_path_env().get("PYTHONPATH")
            if path:
                spark_session().sparkContext.environment["PYTHONPATH"] = path
            files, exported, equal, diff, counts, notes = verify_spark(
                pipeline, lines, local, workdir, timeout_s=timeout_s, **options
            )
            skipped = not_compared(notes, ran, exported, counts, target)
            notes = [*notes, null_note] if null_note else notes
            return VerificationReport(target, equal, diff, counts, notes, files, local, exported, skipped)
        equal, diff, counts = compare(pipeline, local, exported, target, outputs=outputs, time_unit_ns=unit)
        skipped = not_compared(notes, ran, exported, counts, target)
        notes = [*notes, null_note] if null_note else notes
        return VerificationReport(target, equal, diff, counts, notes, files, local, exported, skipped)
    finally:
        if tmp is not None:
            tmp.cleanup()
