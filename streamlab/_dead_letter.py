"""Dead letters: the columns of every step's ``dead_letter`` output, named and ordered in one place.

A dead letter is a row a step set aside, with the ``reason`` and the ``step_id`` of the step. The canonical
order puts them first: ``reason, step_id`` and then the row's own columns; a parse step's dead letter holds
the ``raw`` record instead of a row: ``raw, reason, step_id`` and then the source's metadata columns.
Detector, feature, rule and pattern steps keep the order they have always written, the row first: its
columns, then ``reason`` (the runtime adds ``step_id`` after it).

The constants, the two ``*_row`` functions and ``fit_message`` are plain Python: generated Beam modules and
Lambda handlers carry their code (``streamlab.export._plan.dead_letter_source``), so exported dead letters are
built, and cut to a queue's size limit, by the same definition.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

RAW = "raw"
REASON = "reason"
STEP_ID = "step_id"
DEAD_LETTER_COLUMNS = (REASON, STEP_ID)
"""What every dead letter carries before the row's own columns, in this order."""
PARSE_DEAD_LETTER_COLUMNS = (RAW, REASON, STEP_ID)
"""A parse step's dead letter: the raw record, why it failed, which step (then the source's metadata)."""
TRUNCATION_COLUMNS = ("raw_truncated", "raw_bytes", "raw_sha256")
"""What a dead letter cut to a size limit adds (``fit_message``): that it was cut, the whole text's UTF-8
length and its SHA-256."""


def dead_letter_row(reason: str, step_id: str, row: dict[str, Any]) -> dict[str, Any]:
    """One dead letter as a dict: ``reason``, ``step_id``, then the row's fields.

    Examples
    --------
    >>> dead_letter_row("bad", "map", {"x": 1})
    {'reason': 'bad', 'step_id': 'map', 'x': 1}
    """
    return {REASON: reason, STEP_ID: step_id, **row}


def raw_dead_letter_row(raw: Any, reason: str, step_id: str) -> dict[str, Any]:
    """A parse step's dead letter as a dict, the raw record as text (invalid UTF-8 replaced), as JSON
    outputs of generated code carry it; a record that arrived without a value (a tombstone) keeps None,
    as streamlab's dead letter does.

    Examples
    --------
    >>> raw_dead_letter_row(b"\\xff{", "invalid UTF-8", "parse")
    {'raw': '\\ufffd{', 'reason': 'invalid UTF-8', 'step_id': 'parse'}
    >>> raw_dead_letter_row(None, "null value (tombstone)", "parse")["raw"] is None
    True
    """
    text = bytes(raw).decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray, memoryview)) else raw
    return {RAW: text, REASON: reason, STEP_ID: step_id}


def fit_message(row: dict[str, Any], limit: int, encode: Any) -> tuple[str, bool]:
    """A side-output row (dead letter, late row) as message text of at most ``limit`` UTF-8 bytes.

    Topics and queues refuse larger messages (Pub/Sub 10 MB, SQS 256 KiB to 1 MiB, Kafka's
    ``max.message.bytes``), and a refused dead letter fails its bundle or batch on every retry: one huge
    record would stop the pipeline. A row that fits is ``encode(row)``, unchanged. One that does not keeps
    ``reason`` (its first 4,096 characters) and ``step_id``, and its ``raw`` text (a parse step's dead
    letter; for any other row, the row's other fields encoded by ``encode``) cut to the longest prefix
    that fits, with ``raw_truncated`` (true), ``raw_bytes`` (the UTF-8 length of the whole text) and
    ``raw_sha256`` (its SHA-256), so that the record can be found at its source and checked.

    Parameters
    ----------
    row
        The side output's row as a dict.
    limit
        Largest message in bytes (of ``encode``'s text as UTF-8); at least 1,024 leaves room for the
        reason and the step.
    encode
        How the output encodes a row: a function of the row to text (``dump_json``).

    Returns
    -------
    tuple[str, bool]
        The message text, and whether it was cut.

    Examples
    --------
    >>> import json
    >>> fit_message({"raw": "x" * 10, "reason": "bad", "step_id": "parse"}, 1024, json.dumps)[1]
    False
    >>> text, cut = fit_message({"raw": "x" * 2000, "reason": "bad", "step_id": "parse"}, 1024, json.dumps)
    >>> cut, len(text) <= 1024, json.loads(text)["raw_bytes"]
    (True, True, 2000)
    """
    import hashlib  # here, not at the top: generated modules carry this function's code alone

    text = encode(dict(row))
    if len(text.encode("utf-8", "surrogatepass")) <= limit:
        return text, False
    raw = row.get(RAW)
    if not isinstance(raw, str):
        raw = encode({k: v for k, v in row.items() if k not in (REASON, STEP_ID)})
    whole = raw.encode("utf-8", "surrogatepass")
    reason = str(row.get(REASON, ""))[:4096]
    head: dict[str, Any] = {
        REASON: reason,
        STEP_ID: row.get(STEP_ID),
        "raw_truncated": True,
        "raw_bytes": len(whole),
        "raw_sha256": hashlib.sha256(whole).hexdigest(),
    }

    def size(prefix: str) -> int:
        return len(encode({**head, RAW: prefix}).encode("utf-8", "surrogatepass"))

    while size("") > limit and reason:  # a reason of many escapes: cut it too
        reason = head[REASON] = reason[: len(reason) // 2]
    lo, hi = 0, min(len(raw), limit)
    while lo < hi:  # the longest prefix that fits: a character takes a byte or more
        mid = (lo + hi + 1) // 2
        if size(raw[:mid]) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return encode({**head, RAW: raw[:lo]}), True


def fit_payload(payload: bytes, limit: int, where: object, limit_name: str) -> bytes:
    """A sink's JSON message over ``limit`` bytes, cut to fit by :func:`fit_message` (an error is logged).

    For sinks whose destination refuses larger messages on every retry (``where`` names the sink in the
    log, ``limit_name`` the limit). Not carried into generated code.

    Examples
    --------
    >>> cut = fit_payload(b'{"raw": "' + b"x" * 2000 + b'", "reason": "bad"}', 1024, "sink", "its limit")
    >>> len(cut) <= 1024
    True
    """
    from streamlab._serde_values import dump_json

    text = fit_message(json.loads(payload), limit, dump_json)[0]
    logging.getLogger("streamlab.dead_letter").error(
        "%s: a row of %d bytes is over %s: written cut to %d bytes (raw_truncated, raw_bytes, raw_sha256)",
        where,
        len(payload),
        limit_name,
        len(text),
    )
    return text.encode("utf-8")


def dead_letter_columns(columns: Sequence[str] | None, raw: bool = False) -> tuple[str, ...] | None:
    """Columns of a step's ``dead_letter`` output when its input has ``columns`` (None: unknown).

    Examples
    --------
    >>> dead_letter_columns(("x",)), dead_letter_columns(("partition",), raw=True)
    (('reason', 'step_id', 'x'), ('raw', 'reason', 'step_id', 'partition'))
    """
    if columns is None:
        return None
    return (*(PARSE_DEAD_LETTER_COLUMNS if raw else DEAD_LETTER_COLUMNS), *columns)


def dead_letter_types(types: Mapping[str, str], raw: bool = False) -> dict[str, str]:
    """Field types of a ``dead_letter`` output, given the types of the rows it holds (exporters' schemas).

    Examples
    --------
    >>> dead_letter_types({"x": "int64"})
    {'reason': 'string', 'step_id': 'string', 'x': 'int64'}
    """
    head = PARSE_DEAD_LETTER_COLUMNS if raw else DEAD_LETTER_COLUMNS
    return {**dict.fromkeys(head, "string"), **types}


def dead_letter_frame(rows: pd.DataFrame, reasons: Sequence[str] | str, step_id: str) -> pd.DataFrame:
    """``rows`` as dead letters: ``reason`` and ``step_id`` first, then the rows' columns.

    Examples
    --------
    >>> dead_letter_frame(pd.DataFrame({"x": [1]}), ["boom"], "map").columns.tolist()
    ['reason', 'step_id', 'x']
    """
    dl: pd.DataFrame = rows.reset_index(drop=True)
    dl.insert(0, REASON, reasons if isinstance(reasons, str) else list(reasons))
    dl.insert(1, STEP_ID, step_id)
    return dl


def raw_dead_letter_frame(
    raw: Sequence[Any], reasons: Sequence[str], step_id: str, metadata: pd.DataFrame | None = None
) -> pd.DataFrame:
    """A parse step's dead letters: ``raw``, ``reason``, ``step_id``, then the source's ``metadata`` columns.

    ``raw`` stays an object column: raw text may hold what a string column cannot (a lone surrogate).

    Examples
    --------
    >>> raw_dead_letter_frame([b"{"], ["invalid JSON"], "parse").columns.tolist()
    ['raw', 'reason', 'step_id']
    """
    dl: pd.DataFrame = pd.DataFrame(
        {RAW: pd.Series(list(raw), dtype=object), REASON: list(reasons), STEP_ID: step_id}
    )
    if metadata is not None:
        dl = pd.concat([dl, metadata.reset_index(drop=True)], axis=1)
    return dl


def reason_last_columns(columns: Sequence[str] | None) -> tuple[str, ...] | None:
    """Columns of a detector-style ``dead_letter`` output: the rows' columns, ``reason``, ``step_id``.

    Examples
    --------
    >>> reason_last_columns(("x",))
    ('x', 'reason', 'step_id')
    """
    return None if columns is None else (*columns, REASON, STEP_ID)


def reason_last_frame(batch: pd.DataFrame, bad: np.ndarray[Any, Any], reasons: Any) -> pd.DataFrame:
    """Detector-style dead letters: the rows of ``batch`` selected by ``bad``, then a ``reason`` column
    (one text, or one per row of ``batch``); the runtime adds ``step_id`` after it.

    Examples
    --------
    >>> reason_last_frame(pd.DataFrame({"x": [1, 2]}), np.array([False, True]), "missing").to_dict("list")
    {'x': [2], 'reason': ['missing']}
    """
    out = batch.loc[bad].copy()
    out[REASON] = reasons if isinstance(reasons, str) else np.asarray(reasons, dtype=object)[bad]
    picked: pd.DataFrame = out.reset_index(drop=True)
    return picked
