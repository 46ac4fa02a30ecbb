"""Rows as JSON documents, shared by the message sinks (Pub/Sub, Kinesis) and BigQuery."""

from __future__ import annotations

import base64
from typing import Any

import pandas as pd

__all__ = ["encode_json_rows"]


def encode_json_rows(batch: pd.DataFrame) -> list[bytes]:
    """Serialize each row of ``batch`` as one UTF-8 JSON object (timestamps as ISO-8601 UTC).

    Parameters
    ----------
    batch
        Rows to encode; nested dicts/lists stay nested, missing values become ``null``, and bytes (such
        as a dead letter's ``raw`` record) become base64 text, as BigQuery writes BYTES in JSON.

    Returns
    -------
    list of bytes
        One JSON document per row, in order.

    Examples
    --------
    >>> rows = pd.DataFrame({"user_id": ["u1"], "n": [3], "properties": [{"page": "/"}]})
    >>> encode_json_rows(rows)
    [b'{"user_id":"u1","n":3,"properties":{"page":"\\\\/"}}']
    >>> encode_json_rows(pd.DataFrame({"raw": [b"\\xff{"]}))
    [b'{"raw":"\\\\/3s="}']
    """
    if batch.empty:
        return []
    binary = [
        c
        for c in batch.columns
        if batch[c].dtype == object and batch[c].map(lambda v: isinstance(v, bytes)).any()
    ]
    if binary:
        batch = batch.assign(**{c: batch[c].map(_base64_text) for c in binary})
    text = batch.to_json(orient="records", lines=True, date_format="iso", date_unit="us", force_ascii=False)
    # to_json escapes newlines inside strings, so each line is exactly one row.
    return [line.encode("utf-8") for line in text.rstrip("\n").split("\n")]


def _base64_text(value: Any) -> Any:
    return base64.b64encode(value).decode("ascii") if isinstance(value, bytes) else value
