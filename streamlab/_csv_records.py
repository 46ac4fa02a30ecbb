"""A CSV file's records split into the ones pandas reads and the malformed ones, each with its reason.

``pandas.read_csv`` refuses a whole file for one malformed record (a line with more fields than the
header) and quietly reads others (invalid UTF-8 fails the file, NUL bytes become text). This splits the
file into records as CSV defines them (a quoted field may span lines), sets aside the malformed ones
with the reason and the line they start on, and has pandas read the rest: the good rows are exactly
what ``read_csv`` gives for the file without the malformed records.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

_BOM = "\ufeff"
_FIELD_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class CsvRecords:
    """The good rows of a CSV file and its malformed records.

    ``bad`` has ``raw`` (the record's bytes, without its line break), ``reason`` and ``line`` (where it
    starts, from 1); ``before[i]`` is how many good rows come before bad record ``i``.
    """

    frame: pd.DataFrame
    bad: pd.DataFrame
    before: np.ndarray[Any, np.dtype[np.int64]]


def no_malformed_records(frame: pd.DataFrame) -> CsvRecords:
    """``frame``, the rows of a CSV file without a malformed record, as :class:`CsvRecords`.

    Examples
    --------
    >>> no_malformed_records(pd.DataFrame({"x": [1]})).bad.columns.tolist()
    ['raw', 'reason', 'line']
    """
    return CsvRecords(frame, _bad_frame([], [], []), np.empty(0, dtype=np.int64))


def _bad_frame(raw: list[bytes], reasons: list[str], starts: list[int]) -> pd.DataFrame:
    """The malformed records as :attr:`CsvRecords.bad` holds them: ``raw``, ``reason`` and ``line``.

    Examples
    --------
    >>> _bad_frame([b"a,b"], ["too many fields"], [3]).to_dict("records")
    [{'raw': b'a,b', 'reason': 'too many fields', 'line': 3}]
    """
    return pd.DataFrame(
        {
            "raw": pd.Series(raw, dtype=object),
            "reason": reasons or pd.Series([], dtype=object),  # a list of text: the text dtype on pandas 3
            "line": pd.Series(starts, dtype="int64"),
        }
    )


class CsvHeaderError(ValueError):
    """The header record itself cannot be read: there is no table to read the rest into."""


def _utf8(encoding: str) -> bool:
    """Whether ``encoding`` names UTF-8 (``utf8``, ``UTF-8``, ``utf-8-sig``: a byte order mark is allowed)."""
    return codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")


def _problem(text: str, fields: list[str], width: int, encoding: str = "utf-8") -> str:
    """Why one record (its text and fields) is malformed, or ``""``."""
    bad_bytes = [c for c in text if "\udc80" <= c <= "\udcff"]  # bytes that were not of the encoding
    if bad_bytes:
        first = ord(bad_bytes[0]) - 0xDC00
        name = "UTF-8" if _utf8(encoding) else encoding
        return f"invalid {name} (byte 0x{first:02x} at character {text.index(bad_bytes[0]) + 1})"
    if "\x00" in text:
        return "it holds a NUL byte (a corrupt or binary line, not CSV text)"
    if len(fields) > width:
        return f"{len(fields)} fields, where the header has {width}"
    return ""


_QUOTED = re.compile(r'"[^"]*(?:""[^"]*)*"(?!")')  # a quoted field: its quotes doubled inside, one closes it


def _unquoted(sep: str) -> re.Pattern[str]:
    """The rest of a field up to ``sep`` or a line break (a quote there is a character)."""
    return re.compile(f"[^{re.escape(sep)}\\r\\n]*")


def _unclosed_quote(text: str, sep: str = ",") -> bool:
    """Whether the last record ends inside a quoted field (the file ended before its closing quote).

    As pandas' tokenizer (and ``csv``) read it: a quote opens a quoted field only at a field's start, a
    doubled quote inside it is a quote, and after the closing quote the field goes on unquoted
    (``"x"y`` is ``xy``). ``csv``'s strict mode cannot tell this: it stops at such a field's ``y``.

    >>> _unclosed_quote('1,"x"y,"z\\n'), _unclosed_quote('1,"x""\\n'), _unclosed_quote('1,"x"y,"z""\\n"\\n')
    (True, True, False)
    >>> _unclosed_quote('1,a"b\\n')
    False
    """
    pos, n, unquoted = 0, len(text), _unquoted(sep)
    while pos < n:
        if text[pos] == '"':
            quoted = _QUOTED.match(text, pos)
            if quoted is None:
                return True
            pos = quoted.end()
        rest = unquoted.match(text, pos)  # it matches anywhere (maybe nothing)
        pos = (rest.end() if rest else pos) + 1  # past the field and its delimiter or line break
    return False


_INT_TEXT = r"\s*[+-]?\d+\s*"  # what pandas reads as an integer


def _integer(value: Any) -> bool:
    """Whether a value pandas read from CSV is an integer (a Python int, or its text)."""
    if isinstance(value, str):
        return re.fullmatch(_INT_TEXT, value) is not None
    return isinstance(value, int) and not isinstance(value, bool)


def read_csv(
    data: str | bytes, *, sep: str = ",", encoding: str = "utf-8", decimal: str = "."
) -> pd.DataFrame:
    """``pandas.read_csv`` of CSV ``data`` (bytes in ``encoding``; UTF-8 with a byte order mark allowed),
    fields between ``sep`` marks, ``decimal`` the decimal mark of its numbers, with its columns of
    integers and missing values exact: pandas holds them as float64, which rounds an id beyond 2**53 onto
    its neighbour's value. Such columns are read again as text and kept as the parse step keeps them
    (``Int64``; Python ints beyond 64 bits).

    Examples
    --------
    >>> frame = read_csv("id,x\\n9007199254740993,1.5\\n,\\n")
    >>> frame["id"].tolist(), str(frame["id"].dtype), frame["x"].tolist()
    ([9007199254740993, <NA>], 'Int64', [1.5, nan])
    >>> read_csv("x;name\\n1,5;Jos\\xe9\\n".encode("cp1252"), sep=";", encoding="cp1252", decimal=",").values.tolist()
    [[1.5, 'José']]
    """
    from streamlab._intcols import inferred_series

    def read(**options: Any) -> pd.DataFrame:
        source = io.BytesIO(data) if isinstance(data, bytes) else io.StringIO(data)
        frame: pd.DataFrame = pd.read_csv(
            source,
            sep=sep,
            decimal=decimal,
            encoding="utf-8-sig" if _utf8(encoding) else encoding,
            **options,
        )
        return frame

    frame = read()
    if not isinstance(frame.index, pd.RangeIndex):
        return frame
    for i in range(len(frame.columns)):
        # a column with an integer beyond 64 bits: pandas 2 keeps its text, pandas 3 Python ints beside
        # NaN; both become Python ints beside None
        column = frame.iloc[:, i]
        given = column.notna()
        if column.dtype == object and given.any() and all(map(_integer, column[given].tolist())):
            values = [int(t) if ok else None for t, ok in zip(column.tolist(), given.tolist())]
            frame.isetitem(i, inferred_series(values).set_axis(frame.index).array)
    floats = [i for i, c in enumerate(frame.columns) if frame.dtypes.iloc[i].kind == "f"]
    floats = [i for i in floats if frame.iloc[:, i].isna().any()]
    if not floats:
        return frame
    texts = read(usecols=floats, dtype=str)
    for i, name in zip(floats, texts.columns):
        text = texts[name]
        given = text.notna()
        if not given.any() or not text[given].str.fullmatch(_INT_TEXT).all():
            continue
        values = [int(t) if ok else None for t, ok in zip(text.tolist(), given.tolist())]
        frame.isetitem(i, inferred_series(values).set_axis(frame.index).array)
    return frame


def cut_short(record: str) -> bool:
    """Whether ``record``, the last of a file, may have been cut short: it holds something and has no
    line break (a record that has its line break is whole, whatever its fields)."""
    return bool(record.strip(" \t\r\n")) and not record.endswith(("\n", "\r"))


def split_csv(data: bytes, *, sep: str = ",", encoding: str = "utf-8", decimal: str = ".") -> CsvRecords:
    """Read CSV ``data`` (in ``encoding``; UTF-8 with a byte order mark allowed) as pandas does (fields
    between ``sep`` marks, ``decimal`` the decimal mark), malformed records set aside.

    A record is malformed when it is not text in ``encoding`` (bytes it does not define), holds a NUL byte, has more fields than the header,
    or opens a quoted field that the file never closes. A record with fewer fields is read as pandas
    reads it (the missing fields are NaN), except the file's last one when it has no line break: the
    file ends inside it (cut short, or a writer is still writing it), so it is malformed.

    Examples
    --------
    >>> got = split_csv(b'a,b\\n1,"x\\ny"\\n2,z,extra\\n3,\\xff\\n4,w\\n')
    >>> got.frame.to_dict("list")
    {'a': [1, 4], 'b': ['x\\ny', 'w']}
    >>> got.bad[["line", "reason"]].values.tolist(), got.before.tolist()
    ([[4, '3 fields, where the header has 2'], [5, 'invalid UTF-8 (byte 0xff at character 3)']], [1, 1])
    """
    utf8 = _utf8(encoding)
    text = data.decode("utf-8" if utf8 else encoding, "surrogateescape")
    if utf8 and text.startswith(_BOM):
        text = text[len(_BOM) :]
    charset = "utf-8" if utf8 else encoding  # a bad record's bytes, as the file holds them
    lines = io.StringIO(text, newline="")
    taken: list[str] = []

    def feed() -> Any:
        for line in lines:
            taken.append(line)
            yield line

    good: list[str] = []
    bad_raw: list[bytes] = []
    reasons: list[str] = []
    starts: list[int] = []
    before: list[int] = []
    width = -1
    line_no, rows, last_fields = 1, 0, 0
    reader = csv.reader(feed(), delimiter=sep)  # it reads no further than the record it gives
    limit = csv.field_size_limit(_FIELD_LIMIT)  # pandas reads fields of any size; csv stops at 128 KiB
    try:
        while True:
            try:
                fields = next(reader)
                error = ""
            except StopIteration:
                break
            except csv.Error as e:  # the reader goes on with the next line
                fields, error = [], f"not CSV ({e})"
            record, start, line_no = "".join(taken), line_no, line_no + len(taken)
            taken.clear()
            if (
                error and "\x00" in record
            ):  # Python 3.10's csv refuses a NUL byte that 3.11's reads: one reason
                error = _problem(record, [], 0, encoding)
            if not record.strip(" \t\r\n"):
                # blank, or spaces and tabs only: pandas skips such a line (before its header too)
                good.append(record)
                continue
            if width < 0:
                why = error or _problem(record, [], 0, encoding)
                if why:
                    raise CsvHeaderError(f"its header (line {start}) cannot be read: {why}")
                width = len(fields)
                good.append(record)
                continue
            why = error or _problem(record, fields, width, encoding)
            if why:
                bad_raw.append(record.rstrip("\r\n").encode(charset, "surrogateescape"))
                reasons.append(why)
                starts.append(start)
                before.append(rows)
                last_fields = -1
            else:
                good.append(record)
                rows += 1
                last_fields = len(fields)
    finally:
        csv.field_size_limit(limit)
    if last_fields > 0 and len(good) > 1 and _unclosed_quote(good[-1], sep):
        # the file ended inside a quoted field: the record runs from its opening quote to the end
        record = good.pop()
        rows -= 1
        bad_raw.append(record.rstrip("\r\n").encode(charset, "surrogateescape"))
        reasons.append("a quoted field is not closed before the end of the file")
        starts.append(line_no - len(io.StringIO(record, newline="").readlines()))
        before.append(rows)
    elif 0 < last_fields < width and len(good) > 1 and cut_short(good[-1]):
        # the file ends inside its last record: a writer was writing it (a replay resumed on the grown
        # file reads it whole, as the next row), or the file was cut
        record = good.pop()
        rows -= 1
        bad_raw.append(record.encode(charset, "surrogateescape"))
        reasons.append(
            f"the file ends inside this record ({last_fields} fields, where the header has {width}, and no "
            "line break): cut short, or still being written"
        )
        starts.append(line_no - len(io.StringIO(record, newline="").readlines()))
        before.append(rows)
    frame = read_csv("".join(good), sep=sep, decimal=decimal)
    order = np.asarray(before, dtype=np.int64)
    if rows != len(frame):  # pandas read the records otherwise (blank-looking lines): keep every one
        order = np.minimum(order, len(frame))
    return CsvRecords(frame, _bad_frame(bad_raw, reasons, starts), order)
