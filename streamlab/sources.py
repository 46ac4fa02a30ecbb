"""Built-in sources: in-memory lists and replays of files or DataFrames at a chosen speed."""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from streamlab._compat import read_json_lines_as_written
from streamlab._csv_records import CsvRecords, cut_short, no_malformed_records, read_csv, split_csv
from streamlab._lines import LineBlocks, file_lines
from streamlab._time import NAT_NS, to_utc_ns, utc_array
from streamlab.clock import Clock
from streamlab.errors import ParameterError, check_flag, check_path, closest
from streamlab.io import Sink, SinkWriter, Source, SourceReader, default_clock, publish_now

__all__ = ["ListSource", "ReplaySource"]

log = logging.getLogger("streamlab")

_JSON_LINES = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".ndjson")


class _FrameReader(SourceReader):
    """Reads a DataFrame in order, optionally paced by event time (``speed``)."""

    file_id: str | None = None  # the replayed file's identity, kept in snapshots (_file_identity)

    def __init__(
        self,
        frame: pd.DataFrame,
        release_ns: np.ndarray | None,
        speed: float | None,
        clock: Clock,
        position: int,
        batch_size: int | None,
    ) -> None:
        self.frame = frame
        self.release = release_ns
        self.speed = speed
        self.clock = clock
        self.pos = position
        self.batch_size = batch_size
        self._anchor()

    def _anchor(self) -> None:
        self.anchor_proc = self.clock.now_ns()
        if self.release is not None and self.pos < len(self.release):
            self.anchor_event = int(self.release[self.pos])
        else:
            self.anchor_event = 0

    def _replay_now(self) -> int:
        # integers: event times are ~1.7e18 ns, where float64 steps are 256 ns wide
        assert self.speed is not None
        return self.anchor_event + round((self.clock.now_ns() - self.anchor_proc) * self.speed)

    def poll(self, max_events: int) -> pd.DataFrame | None:
        n = len(self.frame)
        if self.pos >= n:
            return None
        limit = min(max_events, self.batch_size or max_events)
        end = min(n, self.pos + limit)
        if self.speed is not None and self.release is not None:
            due = int(np.searchsorted(self.release, self._replay_now(), side="right"))
            end = min(end, due)
            if end <= self.pos:
                return None
        out = self.frame.iloc[self.pos : end].reset_index(drop=True)
        self.pos = end
        return out

    @property
    def done(self) -> bool:
        return self.pos >= len(self.frame)

    def next_ready_ns(self) -> int | None:
        if self.speed is None or self.release is None or self.done:
            return None
        gap = int(self.release[self.pos]) - self.anchor_event
        return self.anchor_proc + math.ceil(gap / self.speed)

    def set_speed(self, speed: float | None) -> None:
        self.speed = replay_speed("set_speed", speed)
        self._anchor()

    def on_resume(self) -> None:
        self._anchor()

    def snapshot(self) -> Any:
        return {"position": self.pos, **({"file": self.file_id} if self.file_id else {})}

    def lag(self) -> int | None:
        return len(self.frame) - self.pos


class _CsvFrameReader(_FrameReader):
    """A CSV replay whose malformed records go to a dead-letter sink as the replay passes them: a record
    between good rows ``k - 1`` and ``k`` is written when row ``k`` is delivered (those after the last row
    with it), so a replay resumed from a checkpoint writes those after its position only. A file without
    good rows has its records written at the first poll: the reader is not done before, and its
    snapshot says they were (``dead_letters_written``), as a position past the last row says it for
    the others."""

    def __init__(
        self, records: CsvRecords, dead_letter: SinkWriter, *args: Any, written: bool = False
    ) -> None:
        super().__init__(records.frame, *args)
        self.bad = records.bad
        n = len(self.frame)
        # written already (before this position, or with the last row, or as the snapshot says)
        passed = (records.before < self.pos) | (self.pos >= n > 0) | written
        self.before = np.where(passed, -1, records.before)
        self.dead_letter = dead_letter

    def _left(self) -> bool:
        return bool((self.before >= 0).any())

    @property
    def done(self) -> bool:
        return super().done and not self._left()

    def next_ready_ns(self) -> int | None:
        if self.pos >= len(self.frame):  # only records left to write: now
            return self.clock.now_ns() if self._left() else None
        return super().next_ready_ns()

    def poll(self, max_events: int) -> pd.DataFrame | None:
        start = self.pos
        out = super().poll(max_events)
        end = self.pos + (
            1 if self.pos >= len(self.frame) else 0
        )  # at the end: also those after the last row
        due = (self.before >= start) & (self.before < end)
        if due.any():
            publish_now(self.dead_letter, self.bad[due].reset_index(drop=True))
            self.before = np.where(due, -1, self.before)  # written: never again by this reader
        return out

    def snapshot(self) -> Any:
        position = super().snapshot()
        if len(self.frame) == 0 and not self._left():
            position["dead_letters_written"] = True
        return position

    def close(self) -> None:
        self.dead_letter.close()


def replay_speed(owner: str, value: Any) -> float | None:
    """``value`` checked as a replay speed: a positive, finite number (times event time), or None.

    Examples
    --------
    >>> replay_speed("ReplaySource", 10), replay_speed("ReplaySource", None)
    (10.0, None)
    >>> replay_speed("set_speed", float("nan"))
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: set_speed(speed=...): speed must be a positive, finite number, got nan. Fix: use e.g. 10 (ten times faster than event time), or None (null in YAML) for as fast as possible
    """
    if value is None:
        return None
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if number and math.isfinite(value) and value > 0:
        return float(value)
    raise ParameterError(
        owner,
        "speed",
        f"speed must be a positive, finite number, got {value!r}",
        "use e.g. 10 (ten times faster than event time), or None (null in YAML) for as fast as possible",
    )


def _batch_size(owner: str, value: Any) -> int | None:
    """``value`` checked as a source's ``batch_size``: a positive whole number of events, or None.

    Examples
    --------
    >>> _batch_size("ListSource", 500), _batch_size("ListSource", None)
    (500, None)
    >>> _batch_size("ListSource", 0)
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: ListSource(batch_size=...): batch_size must be a positive number of events, got 0. Fix: use e.g. 10000, or None (null in YAML) for the run's batch size
    """
    if value is None or (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value > 0):
        return None if value is None else int(value)
    raise ParameterError(
        owner,
        "batch_size",
        f"batch_size must be a positive number of events, got {value!r}",
        "use e.g. 10000, or None (null in YAML) for the run's batch size",
    )


class _LinesReader(SourceReader):
    """Reads the lines of a JSON-lines file as they are polled (a raw replay as fast as possible)."""

    file_id: str | None = None  # the replayed file's identity, kept in snapshots (_file_identity)

    def __init__(self, blocks: LineBlocks, batch_size: int | None) -> None:
        self.blocks = blocks
        self.batch_size = batch_size

    def poll(self, max_events: int) -> pd.DataFrame | None:
        if self.blocks.done:
            return None
        values = self.blocks.take(min(max_events, self.batch_size or max_events))
        return pd.DataFrame({"value": values}) if len(values) else None

    @property
    def done(self) -> bool:
        return self.blocks.done

    def snapshot(self) -> Any:
        position = {"position": self.blocks.taken, **({"file": self.file_id} if self.file_id else {})}
        if self.blocks.done and self.blocks.open_end is not None:
            position["open_end"] = self.blocks.open_end  # its last line was taken without a break
        return position

    def lag(self) -> int | None:
        return self.blocks.left()

    def close(self) -> None:
        self.blocks.close()


def _frame_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """A DataFrame's rows as a source gives them: numbered from 0, each named index level (a time index,
    ``df.set_index("timestamp")``) kept as a column (one that a column of the same name does not hide);
    an unnamed index (a filtered frame's row numbers) is not data.

    Examples
    --------
    >>> df = pd.DataFrame({"t": [10, 20], "x": [1, 2]}).set_index("t")
    >>> _frame_rows(df).to_dict("list"), _frame_rows(df.reset_index(drop=True)).to_dict("list")
    ({'t': [10, 20], 'x': [1, 2]}, {'x': [1, 2]})
    """
    names = [n for n in frame.index.names if n is not None and n not in frame.columns]
    if names:
        frame = frame.reset_index(level=names)
    return frame.reset_index(drop=True)


_RAW = (bytes, str, bytearray, memoryview)


class ListSource(Source):
    """Events from a Python list: dicts become columns; bytes or str become a raw ``value`` column.

    Parameters
    ----------
    events
        A list of dicts (parsed events) or of bytes/str (raw records, for ``parse``).
    batch_size
        Largest batch returned at once: lets tests cut the same stream into different batches.

    Examples
    --------
    >>> src = ListSource([{"x": 1}, {"x": 2}, {"x": 3}], batch_size=2)
    >>> reader = src.open()
    >>> reader.poll(100)["x"].tolist(), reader.poll(100)["x"].tolist(), reader.done
    ([1, 2], [3], True)
    """

    def __init__(self, events: list[Any] | pd.DataFrame, *, batch_size: int | None = None) -> None:
        if not isinstance(events, (pd.DataFrame, Iterable)) or isinstance(events, (str, bytes, Mapping)):
            raise ParameterError(
                "ListSource",
                "events",
                f"expected a list of events or a DataFrame, got {type(events).__name__} {repr(events)[:40]}",
                "pass a list of dicts (ListSource([{'x': 1}])), a list of raw records (bytes or str) for "
                "parse, or a DataFrame",
            )
        if not isinstance(events, (pd.DataFrame, list)):
            events = list(events)  # a generator is read once: the checks below would consume it
        if isinstance(events, pd.DataFrame):
            frame = _frame_rows(events)
        elif (
            events
            and any(isinstance(e, _RAW) or e is None for e in events)
            and not any(isinstance(e, Mapping) for e in events)
        ):
            # raw records as a broker gives them, None (a record without value, e.g. a Kafka tombstone)
            # and whatever else a test feeds: ``parse`` sends what is not JSON text to its dead letter
            frame = pd.DataFrame({"value": pd.Series(events, dtype=object)})
        else:
            try:
                try:
                    frame = _exact_ints(pd.DataFrame.from_records(list(events)), lambda: events)
                except UnicodeEncodeError:  # text with a lone surrogate ("\ud800"): no str column holds it
                    if not all(isinstance(v, Mapping) for v in events):
                        raise
                    frame = _records_frame([dict(v) for v in events])  # columns of objects hold it
            except (AttributeError, TypeError, ValueError) as e:  # AttributeError: pandas 2 on a None
                dicts = any(isinstance(v, Mapping) for v in events)
                i, odd = next(
                    (
                        (i, v)
                        for i, v in enumerate(events)
                        if not (isinstance(v, Mapping) if dicts else isinstance(v, _RAW) or v is None)
                    ),
                    (0, events),
                )
                what = "among events (dicts)" if dicts else "neither an event (a dict) nor a raw record"
                raise ValueError(
                    f"ListSource: event {i} is {type(odd).__name__} {str(odd)[:40]!r}, {what} "
                    f"({type(e).__name__}: {e}). Fix: pass a list of dicts, or a list of raw records (bytes or "
                    "str; None for a record without value) for parse"
                ) from None
        self.frame = frame
        self.batch_size = _batch_size("ListSource", batch_size)
        self.columns = tuple(frame.columns) if len(frame.columns) else None

    def open(self, resume: Any = None, clock: Clock | None = None) -> SourceReader:
        pos = resume["position"] if resume else 0
        return _FrameReader(self.frame, None, None, default_clock(clock), pos, self.batch_size)

    def spec(self) -> dict[str, Any]:
        raise ValueError(
            "ListSource holds data in memory, which a YAML spec cannot carry; write the events to a file and "
            "use ReplaySource('events.jsonl') to make the pipeline portable"
        )

    def __repr__(self) -> str:
        return f"ListSource({len(self.frame)} events)"


def _file_identity(path: Path, length: int | None = None) -> str | None:
    """What tells a replayed file from another at its path: ``"<n>:<hash>"`` of its first ``n`` bytes
    (up to 64 KiB, or the ``length`` an earlier identity covered), so a file that grows keeps its
    identity and a replaced or rotated one does not. None when it cannot be read.

    Examples
    --------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "e.jsonl"
    >>> _ = f.write_text('{"a": 1}\\n')
    >>> first = _file_identity(f)
    >>> _ = f.write_text('{"a": 1}\\n{"a": 2}\\n')  # grown
    >>> _file_identity(f, int(first.split(":")[0])) == first
    True
    >>> _ = f.write_text('{"b": 1}\\n{"a": 2}\\n')  # another file at the path
    >>> _file_identity(f, int(first.split(":")[0])) == first
    False
    """
    import hashlib

    try:
        with open(path, "rb") as f:
            head = f.read((1 << 16) if length is None else length)
    except OSError:
        return None
    return f"{len(head)}:{hashlib.sha256(head).hexdigest()[:16]}"


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _unreadable(path: Path, where: str | None, error: Exception) -> ValueError:
    """The error for a file that cannot be loaded whole (``where``: which line or record), with the way
    to read it with dead letters."""
    where = f"{where} of {path}" if where is not None else str(path)
    return ValueError(
        f"ReplaySource: {where} cannot be read as a table ({type(error).__name__}: {error}). "
        "A file with bad records cannot be loaded whole; replay it raw so that bad records go to a "
        "dead-letter output: Pipeline(ReplaySource(path, raw=True)).parse({...fields...})"
        if path.name.lower().endswith(_JSON_LINES)
        else f"ReplaySource: {where} cannot be read as a table ({type(error).__name__}: {error}). A CSV file "
        "with malformed records cannot be loaded whole; pass a sink for them, and its good rows replay while "
        "those records go there with the reason: ReplaySource(path, dead_letter=JsonLinesSink('bad.jsonl'))"
        + (
            "; or, for a file written in another encoding than UTF-8 (Excel's exports often are), name "
            "it: ReplaySource(path, encoding='cp1252')"
            if "UTF-8" in str(error)
            else ""
        )
        if " of " in where and path.name.lower().endswith(_CSV)
        else f"ReplaySource: {where} cannot be read as a table ({type(error).__name__}: {error}); "
        "fix the file or load it yourself (pandas.read_csv(..., on_bad_lines=...)) and pass the DataFrame"
    )


def _unreadable_line(path: Path, error: Exception) -> ValueError:
    """:func:`_unreadable` for a JSON-lines file: its first bad line with that line's own problem
    (:func:`_bad_json_line`), else the whole file with ``error``."""
    bad = _bad_json_line(path)
    return _unreadable(path, None, error) if bad is None else _unreadable(path, f"line {bad[0]}", bad[1])


_SEPARATORS = (";", "\t", "|")  # what a table file may use instead of commas
_CSV = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".tab")  # read as CSV (a .tsv or .tab file with sep='\t')
_TABBED = (".tsv", ".tsv.gz", ".tab")


def _csv_option(name: str, value: Any, sep: Any = None) -> None:
    """Raise a ParameterError unless ``value`` is a valid ``sep``, ``encoding`` or ``decimal`` of
    ReplaySource (``sep``: the separator, that a ``decimal`` mark must differ from).

    Examples
    --------
    >>> _csv_option("sep", ";"), _csv_option("encoding", "cp1252"), _csv_option("decimal", ",", ";")
    (None, None, None)
    >>> _csv_option("decimal", ",", ",")
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: ReplaySource(decimal=...): decimal=',' is also the separator (sep=','), so a number's fields cannot be told apart. Fix: Excel's exports with a decimal comma separate fields with semicolons: ReplaySource(path, sep=';', decimal=',')
    """
    import codecs

    if name == "encoding":
        try:
            ok = isinstance(value, str) and 'a,;\t|\n\r"'.encode(value) == b'a,;\t|\n\r"'
        except LookupError:
            raise ParameterError(
                "ReplaySource",
                "encoding",
                f"unknown encoding {value!r}",
                "name a Python text encoding, e.g. encoding='cp1252' (Excel on Windows), 'latin-1' or 'utf-8'",
            ) from None
        if not ok or codecs.lookup(value).name.startswith(("utf-16", "utf-32", "utf_16", "utf_32")):
            raise ParameterError(
                "ReplaySource",
                "encoding",
                f"encoding={value!r} is no text encoding that writes commas, quotes and line breaks as "
                "single ASCII bytes (UTF-16 and UTF-32 do not), so the file's records cannot be split",
                "name one, e.g. encoding='cp1252', 'latin-1' or 'utf-8'; re-save a UTF-16 file as UTF-8",
            )
        return
    what = {"sep": "separator between fields", "decimal": "decimal mark of numbers"}[name]
    example = {"sep": "sep=';' or sep='\\t'", "decimal": "decimal=','"}[name]
    if not isinstance(value, str) or len(value) != 1 or value in '"\r\n':
        raise ParameterError(
            "ReplaySource",
            name,
            f"the {what} must be one character other than a quote or a line break, got {value!r}",
            f"pass one character, e.g. {example}",
        )
    if name == "decimal" and (value == sep or value.isdigit()):
        raise ParameterError(
            "ReplaySource",
            "decimal",
            f"decimal={value!r} is "
            + (
                f"also the separator (sep={sep!r}), so a number's fields cannot be told apart"
                if value == sep
                else "a digit"
            ),
            "Excel's exports with a decimal comma separate fields with semicolons: "
            "ReplaySource(path, sep=';', decimal=',')",
        )


def _first_line(data: bytes) -> str:
    return data[: data.find(b"\n") if b"\n" in data else len(data)].decode("utf-8", "replace").strip()


def _other_separator(data: bytes) -> str | None:
    """The separator a CSV file's header uses instead of commas (``;``, a tab, ``|``), if it has one.

    Examples
    --------
    >>> _other_separator(b"timestamp;user;amount\\n2024-01-01T00:00:00Z;a;1,5\\n")
    ';'
    >>> _other_separator(b"timestamp,user\\n") is None, _other_separator(b"timestamp\\n") is None
    (True, True)
    """
    header = _first_line(data[:65536])
    if "," in header or '"' in header:
        return None
    counts = {sep: header.count(sep) for sep in _SEPARATORS}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else None


def _bad_json_line(path: Path) -> tuple[int, Exception] | None:
    """The number (from 1) of the first line of ``path`` that is not one JSON object, if any, and what is
    wrong with that line: an error that names it gives its own reason, not that of a reader (pandas')
    which stopped elsewhere, at a byte position of the whole file.

    Examples
    --------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "e.jsonl"
    >>> _ = f.write_bytes(b'{"a": 1}\\n\\n{"a": \\n{"a": "\\xe9"}\\n')
    >>> _bad_json_line(f)
    (3, ValueError('invalid JSON: Expecting value at column 6'))
    >>> _ = f.write_bytes(b'{"a": "\\xe9"}\\n')
    >>> _bad_json_line(f)
    (1, ValueError('invalid UTF-8: byte 0xe9 at byte 8 of the line'))
    """
    import gzip
    import json

    n = 0
    with (gzip.open if path.name.lower().endswith(".gz") else open)(path, "rb") as f:
        lines = iter(f)
        while True:
            try:
                line = next(lines)
            except StopIteration:
                break
            except (EOFError, OSError) as e:  # a truncated or corrupt compressed file: where it stops
                return n + 1, e
            n += 1
            # columns are the line's own: only the byte order mark and the line break taken away
            line = (line.removeprefix(b"\xef\xbb\xbf") if n == 1 else line).rstrip()
            if not line.strip():
                continue
            try:
                row = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError as e:
                return n, ValueError(
                    f"invalid UTF-8: byte 0x{line[e.start]:02x} at byte {e.start + 1} of the line"
                )
            except json.JSONDecodeError as e:
                return n, ValueError(f"invalid JSON: {e.msg} at column {e.colno}")
            except RecursionError:  # nesting deeper than Python's stack
                return n, ValueError("nested deeper than Python's parser reads")
            if not isinstance(row, dict):
                return n, ValueError(f"{json.dumps(row)[:40]} is {type(row).__name__}, not an object (a row)")
    return None


def _refuse_lines_not_objects(path: Path) -> None:
    """Raise the error naming the first line of ``path`` that is not a JSON object, if any: pandas' reader
    takes a line holding an array, a number, a string or null, as a row of columns ``0, 1, ...``, of the
    array's objects, or without values. Lines that start with ``{`` are found in a vectorized scan; only
    a file with some other line (a blank one, too) is read again, line by line, to find the culprit."""
    import gzip

    other, at_start = False, True
    with (gzip.open if path.name.lower().endswith(".gz") else open)(path, "rb") as f:
        first = True
        while not other and (chunk := f.read(1 << 24)):
            if first:
                chunk, first = chunk.removeprefix(b"\xef\xbb\xbf"), False
            view = np.frombuffer(chunk, dtype=np.uint8)
            starts = np.flatnonzero(view == 0x0A) + 1
            starts = starts[starts < len(view)]
            other = bool((view[starts] != 0x7B).any()) or (at_start and len(view) > 0 and view[0] != 0x7B)
            at_start = chunk.endswith(b"\n")
    if other and (bad := _bad_json_line(path)) is not None:
        raise _unreadable(path, f"line {bad[0]}", bad[1])


def json_array_file(path: Path) -> bool:
    """Whether ``path`` (a ``.json`` file, maybe gzipped) holds one JSON array rather than JSON lines: its
    first character, after a byte order mark and white space, is ``[``.

    Examples
    --------
    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "e.json"
    >>> _ = f.write_text('\\n [{"a": 1}]')
    >>> json_array_file(f), json_array_file(f.with_suffix(".jsonl"))
    (True, False)
    """
    import gzip

    name = path.name.lower()
    if not name.endswith((".json", ".json.gz")):
        return False
    try:
        with (gzip.open if name.endswith(".gz") else open)(path, "rb") as f:
            head = f.read(1 << 16)
            while head and not head.lstrip(b"\xef\xbb\xbf \t\r\n"):
                head = f.read(1 << 16)
    except (EOFError, OSError):
        return False
    return head.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"["


def json_document_file(path: Path) -> bool:
    """Whether ``path`` (a ``.json`` file, maybe gzipped) holds JSON documents rather than JSON lines: one
    array (:func:`json_array_file`), or an object whose first line is not the whole object (pretty-printed
    over several lines, maybe followed by others). Such a file is read whole, not line by line.

    Examples
    --------
    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "one.json").write_text('{\\n  "a": 1\\n}\\n')
    >>> _ = (d / "lines.json").write_text('{"a": 1}\\n{"a": 2}\\n')
    >>> json_document_file(d / "one.json"), json_document_file(d / "lines.json")
    (True, False)
    """
    import gzip
    import json

    name = path.name.lower()
    if not name.endswith((".json", ".json.gz")) or path.is_dir():
        return False
    if json_array_file(path):
        return True
    try:
        with (gzip.open if name.endswith(".gz") else open)(path, "rb") as f:
            first = f.readline().removeprefix(b"\xef\xbb\xbf")  # a byte order mark is no data
            while first and not first.strip():
                first = f.readline()
    except (EOFError, OSError):
        return False
    if first.strip()[:1] != b"{":
        return False
    try:
        json.loads(first)
    except ValueError:  # also bad UTF-8: the object goes on below, or the line is broken
        return True
    except RecursionError:  # a whole line, nested too deep to read: JSON lines, whose reader names it
        return False
    return False


def _json_documents_frame(path: Path) -> pd.DataFrame:
    """The rows of a ``.json`` file of JSON documents (:func:`json_document_file`): an array's objects, or
    each object, however many lines it spans; or an error naming what is not an object."""
    import gzip
    import json

    if json_array_file(path):
        return _json_array_frame(path)
    try:
        with (gzip.open if path.name.lower().endswith(".gz") else open)(path, "rb") as f:
            text = f.read().decode("utf-8-sig")
        decoder, rows, at = json.JSONDecoder(), [], 0
        while (at := _JSON_SPACE.match(text, at).end()) < len(text):  # type: ignore[union-attr]
            start = at
            row, at = decoder.raw_decode(text, at)
            if not isinstance(row, dict):
                shown = json.dumps(row)[:40]
                raise ValueError(
                    f"{shown} at character {start} is {type(row).__name__}, not an object (a row)"
                )
            rows.append(row)
    except (ValueError, RecursionError, EOFError, OSError) as e:  # also invalid UTF-8
        if _some_line_an_object(path):  # JSON lines whose first line is broken: raw sets it aside
            raise _unreadable_line(path, e) from None
        raise ValueError(
            f"ReplaySource: {path} holds a JSON object over several lines that cannot be read "
            f"({type(e).__name__}: {e}); fix the file: a .json file holds one JSON array of objects, "
            "JSON objects (each over one line or several), or JSON lines"
        ) from None
    return _records_frame(rows)


_JSON_SPACE = re.compile(r"[ \t\n\r]*")  # JSON's white space between values


def _some_line_an_object(path: Path) -> bool:
    """Whether a line of ``path`` after its first is a whole JSON object: JSON lines, not an object
    pretty-printed over lines (whose lines are parts of it)."""
    import gzip
    import json

    with (gzip.open if path.name.lower().endswith(".gz") else open)(path, "rb") as f:
        next(f, None)
        for line in f:
            text = line.strip()
            if text[:1] == b"{" and text[-1:] == b"}":
                try:
                    if isinstance(json.loads(text), dict):
                        return True
                except (ValueError, RecursionError):
                    continue
    return False


def _records_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """JSON objects as rows: a column per key (in the order keys first appear), its values as the parse
    step's columns keep them (integers with missing values, or beyond 64 bits, exact)."""
    from streamlab._intcols import inferred_series

    keys = list(dict.fromkeys(k for row in rows for k in row))
    return pd.DataFrame({k: inferred_series([row.get(k) for row in rows]) for k in keys}, columns=keys)


_SURROGATE_ESCAPE = re.compile(rb"\\[uU][dD][89a-fA-F][0-9a-fA-F]{2}")


def _escapes_surrogates(path: Path) -> bool:
    """Whether a JSON-lines file escapes a UTF-16 surrogate (``\\ud83d``: half of a pair, or alone)."""
    import gzip

    try:
        with (gzip.open if path.name.lower().endswith(".gz") else open)(path, "rb") as f:
            tail = b""
            while chunk := f.read(1 << 22):
                if _SURROGATE_ESCAPE.search(tail + chunk):
                    return True
                tail = chunk[-5:]
    except (EOFError, OSError):  # a truncated or corrupt compressed file: pandas' read names it
        return False
    return False


def _json_line_objects(path: Path) -> Iterable[dict[str, Any]]:
    """The JSON objects of a JSON-lines file, one per line that is not blank, read by Python's parser."""
    import gzip
    import json

    with (gzip.open if path.name.lower().endswith(".gz") else open)(path, "rb") as f:
        for n, line in enumerate(f):
            text = line[3:] if n == 0 and line.startswith(b"\xef\xbb\xbf") else line
            if text.strip():
                try:
                    row = json.loads(text)
                except RecursionError:
                    raise ValueError("nested deeper than Python's parser reads") from None
                if not isinstance(row, dict):
                    raise ValueError(f"{json.dumps(row)[:40]} is {type(row).__name__}, not an object (a row)")
                yield row


def _json_array_frame(path: Path) -> pd.DataFrame:
    """The rows of a ``.json`` file holding one array of JSON objects, or an error naming what is not."""
    import gzip
    import json

    try:
        with (gzip.open if path.name.lower().endswith(".gz") else open)(path, "rb") as f:
            data = f.read()
        rows = json.loads(data.decode("utf-8-sig"))
    except (ValueError, RecursionError, EOFError, OSError) as e:  # also invalid UTF-8
        raise ValueError(
            f"ReplaySource: {path} holds no readable JSON array ({type(e).__name__}: {e}); fix the file, or "
            "write one object a line (.jsonl) and replay it raw so that bad records go to a dead-letter "
            "output: Pipeline(ReplaySource(path, raw=True)).parse({...fields...})"
        ) from None
    odd = next((i for i, row in enumerate(rows) if not isinstance(row, dict)), None)
    if odd is not None:
        raise ValueError(
            f"ReplaySource: element {odd} of the JSON array in {path} is {type(rows[odd]).__name__} "
            f"{json.dumps(rows[odd])[:40]}, not an object (a row); each element must be a JSON object"
        )
    return _records_frame(rows)


def _exact_ints(frame: pd.DataFrame, rows: Callable[[], list[Mapping[str, Any]]]) -> pd.DataFrame:
    """``frame`` (pandas' table of the records ``rows()`` gives) with its columns of integers and missing
    values exact: pandas holds them as float64, which rounds an id beyond 2**53 onto its neighbour's
    value. Such columns are taken again from the records and kept as the parse step keeps them
    (``Int64``; Python ints beyond 64 bits). ``rows`` is called only when such a column may be there."""
    from streamlab._intcols import inferred_series

    floats = [c for c in frame.columns if frame[c].dtype.kind == "f" and frame[c].isna().any()]
    if not floats:
        return frame
    records = rows()
    if len(records) != len(frame) or not all(isinstance(row, Mapping) for row in records):
        return frame  # read otherwise than pandas did (not records of keys): leave pandas' values
    for c in floats:
        values = [None if _missing(v) else v for v in (row.get(c) for row in records)]
        given = [v for v in values if v is not None]
        if given and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in given):
            frame[c] = inferred_series([None if v is None else int(v) for v in values]).set_axis(frame.index)
    return frame


def _missing(value: Any) -> bool:
    """Whether pandas reads ``value`` of a record as a missing value (None, NaN, ``pd.NA``, ``pd.NaT``)."""
    return value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value)


def _parquet_parts(path: Path) -> list[str]:
    """The Parquet files of a directory in name order (ParquetSink's parts in the order written), but
    hidden ones (``_SUCCESS``, ``.crc``) and those being written (``part-*.tmp``)."""
    return sorted(
        str(f) for f in path.iterdir() if f.name.endswith(".parquet") and not f.name.startswith(("_", "."))
    )


def _parquet_frame(files: list[str]) -> pd.DataFrame:
    """The rows of Parquet ``files`` (one table), its integers exact where pandas gives float64 (which rounds an id
    beyond 2**53 onto its neighbour's value): an integer column with missing values is ``Int64``, and a
    nested column (struct, list, map) holding integers holds Python values (dicts, lists), as the parse
    step's ``json`` fields do, where pandas makes ``{"x": 1}`` beside a missing ``x`` ``{"x": 1.0}``."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from streamlab._intcols import inferred_series, nullable_ints

    schemas = [pq.read_schema(f) for f in files]  # (their footers)
    try:  # the parts' columns, each of one type: a column a part lacks is missing there
        schema = schemas[0] if len(files) == 1 else pa.unify_schemas(schemas)
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # a column whose type changed between parts
        return _parquet_parts_frame(files, schemas)
    # pandas hands a list of files to pyarrow as one dataset (its stubs name one path only), read with
    # every part's columns (pyarrow's dataset takes the first part's, dropping a column added later)
    many: Any = files
    frame = pd.read_parquet(files[0]) if len(files) == 1 else pd.read_parquet(many, schema=schema)
    ints = [
        f.name
        for f in schema
        if f.name in frame.columns
        and (
            (pa.types.is_integer(f.type) and frame[f.name].dtype.kind == "f")
            or (pa.types.is_nested(f.type) and _holds_integers(f.type))
        )
    ]
    if ints:
        table = pq.read_table(files[0] if len(files) == 1 else files, columns=ints, schema=schema)
        for name in ints:
            column = table.column(name)
            if pa.types.is_nested(column.type):
                frame[name] = pd.Series(column.to_pylist(), index=frame.index, dtype=object)
                continue
            big = column.type == pa.uint64() and (pc.max(column).as_py() or 0) >= 2**63
            exact = inferred_series(column.to_pylist()) if big else nullable_ints(column.cast(pa.int64()))
            frame[name] = exact.set_axis(frame.index)
    return frame


def _parquet_parts_frame(files: list[str], schemas: list[Any]) -> pd.DataFrame:
    """The rows of Parquet parts in which a column's type changed (ParquetSink types each part by its
    own rows: ``1`` in one, ``"a"`` in the next), no part's rows lost: each part read as one file, and a
    column whose parts differ in dtype (or that some parts lack) read from its values as a JSON-lines
    replay reads a column (``inferred_series``: integers exact, with missing values ``Int64``; ints and
    text, or ints and floats, Python objects each of its own type)."""
    from streamlab._intcols import inferred_series

    frames = [_parquet_frame([f]) for f in files]
    names = list(dict.fromkeys(n for schema in schemas for n in schema.names))
    columns: dict[str, pd.Series] = {}
    for name in names:
        pieces = [frame[name] if name in frame.columns else None for frame in frames]
        dtypes = {None if piece is None else piece.dtype for piece in pieces}
        if len(dtypes) == 1 and None not in dtypes:
            columns[name] = pd.concat(pieces, ignore_index=True)
            continue
        values: list[Any] = []
        for frame, piece in zip(frames, pieces):
            values += (
                [None] * len(frame) if piece is None else [None if _missing(v) else v for v in piece.tolist()]
            )
        columns[name] = inferred_series(values)
    return pd.DataFrame(columns, columns=names, index=pd.RangeIndex(sum(len(f) for f in frames)))


def _holds_integers(kind: Any) -> bool:
    """Whether an arrow type is, or nests, an integer type."""
    import pyarrow as pa

    if pa.types.is_integer(kind):
        return True
    return any(_holds_integers(kind.field(i).type) for i in range(kind.num_fields))


def _far_iso(value: Any) -> bool:
    """Whether ``value`` is ISO-8601 text of a time (one beyond the years 1677-2262 included)."""
    from streamlab._record import iso_to_ns

    try:
        return isinstance(value, str) and iso_to_ns(value) is not None
    except ValueError:
        return False


def _event_times(path: Path, values: pd.Series, column: str) -> pd.Series:
    """``values`` as UTC timestamps, or an error naming the first row whose time cannot be read.

    Read as every step reads event times (``to_utc_ns``): ISO-8601 text or epoch seconds or
    milliseconds, as ``parse`` takes them (pandas' ISO parser alone refused a file of epoch numbers, and
    read ``"now"`` and ``"today"`` as the wall clock, which a replay would read as another time).
    """
    ns = to_utc_ns(values)
    bad = np.flatnonzero((ns == NAT_NS) & values.notna().to_numpy())
    # ISO text beyond the years nanoseconds hold (2300-01-01) is a time: the window dead-letters it, as
    # it does where pandas (3) keeps such a time above; pandas 2 refused the column for it
    bad = np.array([i for i in bad.tolist() if not _far_iso(values.iloc[i])], dtype=np.int64)
    if len(bad):
        value = values.iloc[int(bad[0])]
        if isinstance(value, np.generic):
            value = value.item()
        why = ValueError(
            f"event time {column!r} is {value!r}, not an ISO 8601 time or epoch seconds or milliseconds "
            "within the years 1677-2262"
        )
        raise _unreadable(path, f"record {int(bad[0]) + 1}", why) from None
    if pd.api.types.infer_dtype(values, skipna=True) in ("string", "datetime", "datetime64", "empty"):
        try:  # every time read by the rule: pandas keeps one nanoseconds cannot hold (the window dead-letters it)
            return pd.to_datetime(values, utc=True, format="ISO8601")
        except (ValueError, TypeError, OverflowError):
            pass
    return pd.Series(utc_array(ns), index=values.index, name=values.name)


class ReplaySource(Source):
    """Replay recorded events at a chosen speed, honouring the gaps between their event times.

    Rows are delivered in their stored (arrival) order. A row is released when the replay clock passes
    the largest event time seen up to it, so late and out-of-order rows come at the moment they
    arrived originally. A row dated at or after every row that follows it is released with the next
    row that is not: one event of 2200 among events of 2024 (a broken clock) no longer holds every later
    row until the replay clock reaches 2200. (Near the end of a file whose last rows are late, the newest
    rows before them come that much early; elsewhere pacing is unchanged.) The last row (with an event
    time) is released at its time, whatever it is. ``speed=1`` is real time, ``10`` ten times faster,
    ``None`` as fast as possible.

    Parameters
    ----------
    data
        A DataFrame, or a path to JSON lines (``.jsonl``, ``.jsonl.gz``), CSV or Parquet, or to a directory
        of Parquet files (read as one table, in name order: a :class:`ParquetSink`'s parts). A ``.json`` file
        holds JSON lines or one JSON array of objects (each object a row). Integers beside missing
        values are kept exact (``Int64``, as ``parse`` keeps them), where pandas would round them to
        float64.
    time
        Event-time column used for pacing. A name the rows lack is refused when the source is made
        (with the columns they have), except the default ``'timestamp'`` of an unpaced replay. With
        ``raw=True`` it names a field of the JSON lines: a paced replay whose first 1000 lines hold no
        time in it is refused (lines without one are left to the parse step), and an unpaced raw replay,
        which reads no event time, refuses a ``time`` other than the default.
    speed
        Replay speed factor, or ``None`` for as fast as possible.
    raw
        For JSON lines: deliver the raw lines in a ``value`` column (for ``parse`` with dead letters)
        instead of parsed columns (a CSV or Parquet file, or a DataFrame, refuses it). With ``speed=None`` the file is read a block at a time as it is
        replayed (memory stays at a few blocks); a paced replay reads it whole first (its release times).
        A file that grows between runs resumes from its checkpoint's line; when the last line that run
        read had no line break (a writer was writing it: its cut-short bytes went to dead letter) and the
        file has grown since, that line is read again, whole.
        Without ``raw`` the file is loaded whole when the source is made, and a record that cannot be
        loaded (invalid JSON, an unreadable event time) raises ``ValueError`` naming its line: replay
        such a file raw and ``parse`` it to send bad records to a dead-letter output.
    batch_size
        Largest batch returned at once (None: the run's batch size).
    dead_letter
        For CSV: a sink that receives the file's malformed records (a line with more fields than the
        header, invalid UTF-8, a NUL byte, a quoted field the file never closes) while the good rows
        replay, each with ``raw`` (the record's bytes), ``reason`` and ``line`` (where it starts, from
        1), written when the replay passes it. The good rows are the rows ``pandas.read_csv`` reads from
        the file without those records (its integer columns with missing values exact). A last record
        with fewer fields than the header and no line break is such a record (the file ends inside it:
        a writer was writing it); a replay resumed on the grown file reads it whole, as the next row. Without a ``dead_letter``, such a file raises ``ValueError``
        naming the first malformed record, as a JSON-lines file with a bad line does without ``raw``.
    sep, encoding, decimal
        For CSV, as ``pandas.read_csv`` has them: the one character between fields (``';'`` for Excel's
        exports where the decimal mark is a comma, ``'\\t'`` for a tab-separated ``.tsv`` or ``.tab``
        file, which is read only with ``sep`` named), the file's text encoding (``'cp1252'`` for Excel on
        Windows; one that writes ASCII as single bytes, not UTF-16) and the decimal mark of its numbers
        (``','``, which must differ from ``sep``). They hold for every row and for ``dead_letter``: a
        record with bytes the encoding does not define goes there (``invalid cp1252 (...)``), its ``raw``
        the file's bytes. A file whose header has no comma but semicolons, tabs or bars is refused
        without ``sep`` (it would be read as one column). The exported jobs never read the CSV file,
        with these options or without: they read the records the parse reads from a column of its rows
        (``streamlab.export.write_job_input`` writes them).

    Examples
    --------
    >>> from streamlab.clock import ManualClock
    >>> df = pd.DataFrame({"timestamp": pd.to_datetime(["2024-01-01T00:00:00Z", "2024-01-01T00:00:10Z"])})
    >>> clock = ManualClock("2030-01-01T00:00:00Z")
    >>> reader = ReplaySource(df, speed=1.0).open(clock=clock)
    >>> len(reader.poll(100)), reader.poll(100)
    (1, None)
    >>> clock.advance("10s")
    >>> len(reader.poll(100))
    1

    A CSV file with a malformed line: the good rows replay, the line goes to ``dead_letter``.

    >>> import tempfile
    >>> from streamlab.sinks import ListSink
    >>> path = Path(tempfile.mkdtemp()) / "e.csv"
    >>> _ = path.write_bytes(b"user_id,n\\nu1,1\\nu2,2,3\\nu3,3\\n")
    >>> dead = ListSink()
    >>> reader = ReplaySource(path, dead_letter=dead).open()
    >>> reader.poll(100)["user_id"].tolist(), dead.rows()
    (['u1', 'u3'], [{'raw': b'u2,2,3', 'reason': '3 fields, where the header has 2', 'line': 3}])

    A CSV file as Excel exports it on a German or French Windows: semicolons, decimal commas, cp1252.

    >>> _ = path.write_bytes("timestamp;user;amount\\n2024-01-01T00:00:00Z;José;1,5\\n".encode("cp1252"))
    >>> ReplaySource(path, sep=";", decimal=",", encoding="cp1252").frame.values.tolist()
    [['2024-01-01T00:00:00Z', 'José', 1.5]]
    """

    def __init__(
        self,
        data: pd.DataFrame | str | os.PathLike[str],
        *,
        time: str = "timestamp",
        speed: float | None = None,
        raw: bool = False,
        batch_size: int | None = None,
        dead_letter: Sink | None = None,
        sep: str = ",",
        encoding: str = "utf-8",
        decimal: str = ".",
    ) -> None:
        speed = replay_speed("ReplaySource", speed)
        raw = check_flag("ReplaySource", "raw", raw)
        _csv_option("sep", sep)
        _csv_option("encoding", encoding)
        _csv_option("decimal", decimal, sep)
        if not isinstance(data, pd.DataFrame):
            if not isinstance(data, (str, os.PathLike)):
                raise ParameterError(
                    "ReplaySource",
                    "data",
                    f"expected a DataFrame or a file path, got {type(data).__name__} {data!r}"[:200],
                    "pass a pandas DataFrame, or the path of a .jsonl, .csv or .parquet file (in a spec, "
                    "path: events.jsonl); ListSource([...]) takes a list of events",
                )
            data = check_path("ReplaySource", "path", data)
        if dead_letter is not None and (
            not isinstance(dead_letter, Sink)
            or isinstance(data, pd.DataFrame)
            or not os.fspath(data).lower().endswith(_CSV)
        ):
            raise ParameterError(
                "ReplaySource",
                "dead_letter",
                f"expected a sink for the malformed records of a CSV file, got {dead_letter!r} for "
                f"{'a DataFrame' if isinstance(data, pd.DataFrame) else os.fspath(data)!r}",
                "pass dead_letter= with a CSV file only (.csv, .tsv); replay JSON lines with raw=True and parse them "
                "to send bad lines to a dead-letter output",
            )
        if raw and isinstance(data, pd.DataFrame):  # (raw was ignored: the rows came as columns)
            raise ParameterError(
                "ReplaySource",
                "raw",
                "raw=True delivers a JSON-lines file's lines whole (a 'value' column to parse), got a DataFrame",
                "drop raw=True: a DataFrame replays its rows as they are; a column of JSON text in it is "
                "parsed by .parse(value_column='<that column>')",
            )
        given = {
            name: value
            for name, value, default in (
                ("sep", sep, ","),
                ("encoding", encoding, "utf-8"),
                ("decimal", decimal, "."),
            )
            if value != default
        }
        if given and (isinstance(data, pd.DataFrame) or not os.fspath(data).lower().endswith(_CSV)):
            options = ", ".join(f"{k}={v!r}" for k, v in given.items())
            raise ParameterError(
                "ReplaySource",
                next(iter(given)),
                f"{options} is for reading a CSV file (.csv, .csv.gz, .tsv, .tab), got "
                f"{'a DataFrame' if isinstance(data, pd.DataFrame) else os.fspath(data)!r}"[:300],
                "drop it: a DataFrame is already read, and JSON lines and Parquet files have their own "
                "encoding (UTF-8) and numbers; or give the CSV file's path",
            )
        if (
            not raw
            and not isinstance(data, pd.DataFrame)
            and sep == ","
            and os.fspath(data).lower().endswith(_TABBED)
        ):
            # by its name, before the file is read: a spec built without its data (lazy_sources, as
            # ``streamlab export`` builds it) reports it then, not when the file first arrives
            raise ParameterError(
                "ReplaySource",
                "sep",
                f"{Path(data).name} is tab-separated by its name, and sep=',' would read each of its lines "
                "as one field",
                "name the separator to read it: ReplaySource(path, sep='\\t')",
            )
        self.sep, self.encoding, self.decimal = sep, encoding, decimal
        self.dead_letter = dead_letter
        self._csv: CsvRecords | None = None
        if not isinstance(time, str) or not time:
            raise ParameterError(
                "ReplaySource", "time", f"expected a column name, got {time!r}", "name the event-time column"
            )
        self.path: str | None = None
        self.time = time
        self.speed = speed
        self.raw = raw
        self.batch_size = _batch_size("ReplaySource", batch_size)
        self._frame: pd.DataFrame | None = None
        if isinstance(data, pd.DataFrame):
            self._frame = _frame_rows(data)
        else:
            self.path = os.fspath(data)
            if raw:  # the lines are read as they are replayed (or when ``frame`` is asked for)
                self._check_raw(Path(self.path))
            else:
                self._frame = self._load(Path(self.path))
        if raw:
            self.columns: tuple[str, ...] | None = ("value",)
            if speed is None and time != "timestamp":
                where = repr(self.path) if self.path is not None else "the DataFrame"
                raise ParameterError(
                    "ReplaySource",
                    "time",
                    f"time={time!r} with raw=True and speed=None: the lines of {where} are delivered as they "
                    "are, and their event time is not read, so time= would be silently unused",
                    f"name the event time in the parse step (parse({{...}}, time={time!r})), and drop time= "
                    "here; or pass speed= to pace the replay by that field",
                )
            if speed is not None and self.path is not None:
                self._check_raw_time(Path(self.path))
        else:
            self.columns = tuple(self.frame.columns)
            nothing_yet = self.path is not None and self.frame.shape == (0, 0)  # an empty file: no columns
            if (
                time not in self.frame.columns
                and (speed is not None or time != "timestamp")
                and not nothing_yet
            ):
                self._refuse_time(time, speed)
        self._release: np.ndarray | None = None

    def _refuse_time(self, time: str, speed: float | None) -> None:
        """Refuse an event-time column the rows lack: a paced replay cannot pace by it, and a named one
        with ``speed=None`` would be silently unused (the default name, unpaced, needs no column)."""
        columns = [str(c) for c in self.frame.columns]
        where = repr(self.path) if self.path is not None else "the DataFrame"
        near = closest(time, columns)
        hint = f"did you mean time={near!r}? " if near is not None else ""
        if speed is not None:
            problem = f"{where} has no column {time!r} to pace the replay by (its columns: {columns})"
            fix = f"{hint}name its event-time column with time='<column>', or replay unpaced with speed=None"
        else:
            problem = (
                f"{where} has no column {time!r} (its columns: {columns}); with speed=None the event "
                "time is not read, so time= would be silently unused"
            )
            fix = (
                f"{hint}name its event-time column with time='<column>', or drop time= for an unpaced replay"
            )
        raise ParameterError("ReplaySource", "time", problem, fix)

    def _check_raw_time(self, path: Path, lines: int = 1000) -> None:
        """Refuse a paced raw replay none of whose first ``lines`` lines has a readable time in the field
        ``time``: each such line is released with the one before it, so a misnamed field replayed the
        whole file at once, unpaced, silently. (A line without one is left to the parse step's dead
        letters, as the non-raw replay refuses a column the rows lack.)"""
        from streamlab._parse import FieldSpec, ParseOperator

        blocks = LineBlocks(path)
        try:
            head = [bytes(line) for line in blocks.take(lines).tolist()]
        finally:
            blocks.close()
        values = [line for line in head if line.strip()]
        if not values:
            return
        op = ParseOperator("replay", [FieldSpec.of(self.time, "timestamp")], "value", (), 1 << 62)
        parsed = op.process(pd.DataFrame({"value": values}))["out"]
        if (to_utc_ns(parsed[self.time]) != NAT_NS).any():
            return
        fields: dict[str, None] = {}
        found: list[Any] = []
        for line in values:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                fields.update(dict.fromkeys(map(str, record)))
                if self.time in record:
                    found.append(record[self.time])
        seen = f"the first {len(values)} line{'s' if len(values) > 1 else ''} of {path.name}"
        if found:
            problem = f"field {self.time!r} of {seen} holds no time to pace the replay by (e.g. {found[0]!r})"
            hint = ""
        else:
            problem = f"{seen} have no field {self.time!r} to pace the replay by (their fields: {list(fields)[:20]})"
            near = closest(self.time, list(fields))
            hint = f"did you mean time={near!r}? " if near is not None else ""
        raise ParameterError(
            "ReplaySource",
            "time",
            problem + "; each line would be released with the one before it: the file replayed unpaced",
            f"{hint}name the field holding each record's event time (ISO text or epoch milliseconds) with "
            "time='<field>', or replay unpaced with speed=None",
        )

    @property
    def frame(self) -> pd.DataFrame:
        """The replayed rows (for a raw file: its lines in a ``value`` column, read when first asked for)."""
        if self._frame is None:
            assert self.path is not None
            self._frame = self._load(Path(self.path))
        return self._frame

    @property
    def malformed_records(self) -> CsvRecords | None:
        """A CSV file's good rows (``frame``) and the malformed records its ``dead_letter`` receives
        (``bad``, ``before``: see :class:`CsvRecords`), or None: no malformed record, or no CSV file.
        Read with the rows (``frame``)."""
        _ = self.frame
        return self._csv if self._csv is not None and len(self._csv.bad) else None

    def _check_raw(self, path: Path) -> None:
        if not path.exists():
            raise FileNotFoundError(f"ReplaySource: {path} does not exist")
        if not path.name.lower().endswith(_JSON_LINES):
            raise ValueError(f"ReplaySource(raw=True) needs JSON lines, got {path.name}")
        if json_document_file(path):
            what = "one JSON array" if json_array_file(path) else "a JSON object over several lines"
            raise ValueError(
                f"ReplaySource(raw=True) needs JSON lines, one record a line; {path.name} holds {what}. "
                "Replay it without raw=True (its objects become rows), or write one object a line "
                "(.jsonl) to parse it with dead letters"
            )

    def _load(self, path: Path) -> pd.DataFrame:
        if not path.exists():
            raise FileNotFoundError(f"ReplaySource: {path} does not exist")
        name = path.name.lower()
        if path.is_dir() and not self.raw:
            parts = _parquet_parts(path)
            if not parts:
                raise ValueError(
                    f"ReplaySource: {path} is a directory without .parquet files; replay a file (.jsonl, "
                    ".csv or .parquet) or a directory of Parquet files (as ParquetSink writes)"
                )
            return self._load_parquet(path, parts)
        if name.endswith(_JSON_LINES):
            if self.raw:
                return pd.DataFrame({"value": file_lines(path, owner=self)})
            if json_document_file(path):
                frame = _json_documents_frame(path)
            elif _escapes_surrogates(path):  # pandas' reader makes a lone "\ud800" "" (Python's keeps it)
                try:
                    frame = _records_frame(list(_json_line_objects(path)))
                except (ValueError, TypeError, EOFError, OSError) as e:
                    raise _unreadable_line(path, e) from None
            else:
                try:  # utf-8-sig: a byte order mark at the start (Windows tools write one) is no data;
                    # no date guessing: pandas 2 made numbers in columns named *_time, *_at, modified or
                    # date datetimes (an elapsed_time of 40000000 ms became 1971-04-08); the event time is
                    # read below, as every step reads it
                    frame = read_json_lines_as_written(path)
                except (ValueError, TypeError, AttributeError, EOFError, OSError) as e:  # TypeError (pandas
                    # 2: AttributeError): a JSON line that is no object; EOFError, OSError: a truncated or
                    # corrupt compressed file
                    if _bad_json_line(path) is not None or isinstance(e, (EOFError, OSError)):
                        raise _unreadable_line(path, e) from None
                    # every line is a JSON object (pandas' reader refused a number beyond 64 bits)
                    frame = _records_frame(list(_json_line_objects(path)))
                else:
                    _refuse_lines_not_objects(path)
                    frame = _exact_ints(frame, lambda: list(_json_line_objects(path)))
            if self.time in frame.columns:
                frame[self.time] = _event_times(path, frame[self.time], self.time)
            return frame
        if self.raw:
            raise ValueError(f"ReplaySource(raw=True) needs JSON lines, got {path.name}")
        if name.endswith(_CSV):  # a .tsv or .tab file with its separator named (refused when made)
            return self._load_csv(path)
        if name.endswith(".parquet"):
            return self._load_parquet(path, [str(path)])
        raise ValueError(f"ReplaySource: cannot tell the format of {path.name}; use .jsonl, .csv or .parquet")

    def _load_parquet(self, path: Path, files: list[str]) -> pd.DataFrame:
        try:
            return _parquet_frame(files)
        except (ValueError, OSError) as e:  # pyarrow's ArrowInvalid is a ValueError
            raise ValueError(
                f"ReplaySource: {path} cannot be read as Parquet ({type(e).__name__}: {' '.join(str(e).split())}); "
                "check that it is a complete Parquet file (a .jsonl or .csv file needs that extension)"
                + (", and that its files' columns agree" if path.is_dir() else "")
            ) from None

    def _load_csv(self, path: Path) -> pd.DataFrame:
        """The rows of a CSV file; its malformed records, if any, kept for ``dead_letter`` (or raised)."""
        import gzip

        try:
            with (gzip.open if path.name.lower().endswith(".gz") else open)(path, "rb") as f:
                data = f.read()
        except (EOFError, OSError) as e:  # a truncated or corrupt compressed file
            raise _unreadable(path, None, e) from None
        if not data.removeprefix(b"\xef\xbb\xbf").strip():
            # nothing yet (a file its writer has just made, or only blank lines): no rows, as an empty
            # JSON-lines file; pandas refuses it ("No columns to parse from file")
            return pd.DataFrame()
        other = _other_separator(data) if self.sep == "," else None
        if other is not None:  # e.g. Excel's exports where the decimal mark is a comma
            raise ValueError(
                f"ReplaySource: {path} is no comma-separated file: its header {_first_line(data)[:80]!r} has "
                f"no comma but {other!r} between its names; name its separator: ReplaySource(path, sep={other!r}"
                + (", decimal=','" if other == ";" else "")
                + ")"
                + (" (and encoding='cp1252' if it is Excel's export from Windows)" if other == ";" else "")
            )
        options = {"sep": self.sep, "encoding": self.encoding, "decimal": self.decimal}
        try:
            if b"\x00" not in data:  # pandas reads NUL bytes as text: only the check below refuses them
                try:
                    frame = read_csv(data, **options)
                except (ValueError, UnicodeDecodeError):  # pandas' ParserError is a ValueError
                    frame = None
                # pandas takes a first row with one field more than the header as an index column
                # (and shifts every column of every row): that row is malformed too; a last row with
                # missing fields and no line break may be cut short (split_csv tells)
                if (
                    frame is not None
                    and isinstance(frame.index, pd.RangeIndex)
                    and not (
                        len(frame)
                        and frame.iloc[-1].isna().iloc[-1]
                        and cut_short(data[-1:].decode("latin-1"))
                    )
                ):
                    return frame
            records = split_csv(data, **options)
        except (ValueError, EOFError, OSError) as e:  # CsvHeaderError too: a header that cannot be read
            raise _unreadable(path, None, e) from None
        if len(records.bad) and self.dead_letter is None:
            first = records.bad.iloc[0]
            raise _unreadable(path, f"line {first['line']}", ValueError(first["reason"]))
        self._csv = records
        return records.frame

    def release_times(self) -> np.ndarray:
        """Event time at which each row is released: the running maximum of event times, the time of a
        row dated at or after every later row read as the next row's that is not."""
        if self._release is None:
            if self.raw:
                from streamlab._parse import FieldSpec, ParseOperator

                op = ParseOperator("replay", [FieldSpec.of(self.time, "timestamp")], "value", (), 1 << 62)
                parsed = op.process(self.frame.assign(__row=np.arange(len(self.frame))))["out"]
                ts = np.full(len(self.frame), NAT_NS, dtype=np.int64)
                ts[parsed["__row"].to_numpy()] = to_utc_ns(parsed[self.time])
            elif self.time not in self.frame.columns:  # an empty file (refused otherwise)
                ts = np.empty(0, dtype=np.int64)
            else:
                ts = to_utc_ns(self.frame[self.time])
            ts = np.where(ts == NAT_NS, np.iinfo(np.int64).min + 1, ts)
            untimed = np.iinfo(np.int64).min + 1
            if len(ts) > 1:
                # a row dated at or after every later row (one event of 2200 among events of 2024, a
                # broken clock) held every later row until the replay clock reached 2200: it is released
                # with the next timed row that is not such a row (the last timed row always is not)
                later = np.maximum.accumulate(ts[::-1])[::-1]  # the largest time from each row on
                later = np.append(later[1:], untimed)
                beyond = (ts != untimed) & (later != untimed) & (ts >= later)
                if beyond.any():
                    rows = np.where(beyond | (ts == untimed), len(ts), np.arange(len(ts)))
                    nxt = np.minimum.accumulate(rows[::-1])[::-1]
                    ts = np.where(beyond, ts[np.minimum(nxt, len(ts) - 1)], ts)
            rel = np.maximum.accumulate(ts) if len(ts) else ts
            first_ok = rel[rel > np.iinfo(np.int64).min + 1]
            floor = first_ok[0] if len(first_ok) else 0
            self._release = np.maximum(rel, floor)
        return self._release

    def open(self, resume: Any = None, clock: Clock | None = None) -> SourceReader:
        pos = resume["position"] if resume else 0
        file_id = _file_identity(Path(self.path)) if self.path is not None else None
        before = resume.get("file") if resume else None
        replaced = bool(
            before
            and self.path is not None
            and _file_identity(Path(self.path), int(before.split(":")[0])) != before
        )
        if replaced:
            log.warning(
                "ReplaySource: %s is not the file its checkpoint read (its first bytes differ: replaced, "
                "rotated?); it is replayed from its start, not from the checkpoint's position %s",
                self.path,
                f"{pos:,}",
            )
            pos = 0
        open_end = resume.get("open_end") if resume and not replaced else None
        if open_end is not None and pos > 0 and self.path is not None and _size(self.path) > open_end:
            # the last line the checkpoint read had no line break and the file has grown since: a writer
            # was writing that line (its cut-short bytes went to dead letter); it is read again, whole
            pos -= 1
        reader: _FrameReader | _LinesReader
        if self.raw and self.path is not None and self.speed is None:
            reader = _LinesReader(LineBlocks(Path(self.path), pos), self.batch_size)
        else:
            release = self.release_times() if self.speed is not None else None
            frame, csv = self.frame, self._csv
            args = (release, self.speed, default_clock(clock), pos, self.batch_size)
            if self.dead_letter is not None:  # opened with no record for it too: the run wrote it (empty)
                written = bool(resume and resume.get("dead_letters_written")) and not replaced
                records = csv if csv is not None else no_malformed_records(frame)
                reader = _CsvFrameReader(records, self.dead_letter.open(clock), *args, written=written)
            else:
                reader = _FrameReader(frame, *args)
        reader.file_id = file_id
        return reader

    def spec(self) -> dict[str, Any]:
        if self.path is None:
            raise ValueError(
                "ReplaySource over an in-memory DataFrame cannot be written to YAML; save it "
                "(df.to_parquet('events.parquet')) and use ReplaySource('events.parquet')"
            )
        spec: dict[str, Any] = {
            "kind": "replay",
            "path": self.path,
            "time": self.time,
            "speed": self.speed,
            "raw": self.raw,
        }
        # written when given: earlier specs stay as they were
        for name, default in (("batch_size", None), ("sep", ","), ("encoding", "utf-8"), ("decimal", ".")):
            if getattr(self, name) != default:
                spec[name] = getattr(self, name)
        if self.dead_letter is not None:
            spec["dead_letter"] = self.dead_letter.spec()
        return spec

    def __repr__(self) -> str:
        what = self.path or f"DataFrame({len(self.frame)} rows)"
        return f"ReplaySource({what!r}, speed={self.speed}, raw={self.raw})"
