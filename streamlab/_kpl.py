"""The user records inside a Kinesis record that the Kinesis Producer Library (KPL) aggregated.

The KPL (Java producers, the Kinesis Agent's aggregation, Firehose-fed streams) packs many user records
into one Kinesis record: the magic bytes ``F3 89 9A C2``, a protobuf ``AggregatedRecord`` (a table of
partition keys, a table of explicit hash keys, the records, each with its key's index and its data),
and the MD5 of that protobuf. Consumers built on the KCL, Flink's and Spark's Kinesis connectors and
Beam's ``KinesisIO`` deliver the user records; so do ``KinesisSource`` and the exported Lambda handler,
with this module (plain Python: the handler carries a copy of it). A record without the magic bytes,
or whose digest or protobuf does not check, is a record of its own, as the KCL delivers it.

Examples
--------
>>> packed = kpl_aggregate([("user-1", b'{"a": 1}'), ("user-2", b'{"a": 2}')])
>>> kpl_records(packed)
[('user-1', b'{"a": 1}'), ('user-2', b'{"a": 2}')]
>>> kpl_records(b'{"a": 1}') is None
True
"""

from __future__ import annotations

import hashlib

KPL_MAGIC = b"\xf3\x89\x9a\xc2"
"""The first bytes of a record the KPL aggregated."""


def _varint(data: bytes, at: int) -> tuple[int, int]:
    """The unsigned varint at ``at`` and where it ends (ValueError when cut short or over 10 bytes)."""
    value = shift = 0
    while True:
        if at >= len(data) or shift > 63:
            raise ValueError("a varint is cut short")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, at
        shift += 7


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """The (field number, value) pairs of a protobuf message: an int for a varint or a fixed field, the
    bytes of a length-delimited one (ValueError when the message is malformed)."""
    out: list[tuple[int, int | bytes]] = []
    at = 0
    while at < len(data):
        tag, at = _varint(data, at)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, at = _varint(data, at)
            out.append((number, value))
        elif wire == 2:
            size, at = _varint(data, at)
            if at + size > len(data):
                raise ValueError("a field is cut short")
            out.append((number, data[at : at + size]))
            at += size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            if at + width > len(data):
                raise ValueError("a fixed field is cut short")
            out.append((number, int.from_bytes(data[at : at + width], "little")))
            at += width
        else:
            raise ValueError(f"wire type {wire} is not read")
    return out


def kpl_records(data: bytes) -> list[tuple[str, bytes]] | None:
    """The user records of the KPL-aggregated record ``data``, as (partition key, data) pairs in order;
    None when ``data`` is not one (no magic bytes, a wrong MD5, a malformed protobuf).

    Examples
    --------
    >>> kpl_records(kpl_aggregate([("k", b"x")])[:-1]) is None  # its digest no longer checks
    True
    """
    if len(data) < len(KPL_MAGIC) + 16 or not data.startswith(KPL_MAGIC):
        return None
    message, digest = data[len(KPL_MAGIC) : -16], data[-16:]
    if hashlib.md5(message, usedforsecurity=False).digest() != digest:
        return None
    try:
        keys: list[str] = []
        records: list[tuple[int, bytes]] = []
        for number, value in _fields(message):
            if number == 1 and isinstance(value, bytes):
                keys.append(value.decode("utf-8"))
            elif number == 3 and isinstance(value, bytes):
                index, payload = None, b""
                for inner, item in _fields(value):
                    if inner == 1 and isinstance(item, int):
                        index = item
                    elif inner == 3 and isinstance(item, bytes):
                        payload = item
                if index is None:
                    return None
                records.append((index, payload))
        if any(index >= len(keys) for index, _ in records):
            return None
        return [(keys[index], payload) for index, payload in records]
    except (ValueError, UnicodeDecodeError):
        return None


def user_records(data: bytes, partition_key: str | None) -> tuple[list[tuple[str | None, bytes]], bool]:
    """The user records a Kinesis record with ``data`` and ``partition_key`` delivers, as (partition key,
    data) pairs, and whether it was an aggregated record (else it is its one user record).

    Examples
    --------
    >>> user_records(b'{"a": 1}', "k")
    ([('k', b'{"a": 1}')], False)
    >>> user_records(kpl_aggregate([("j", b"x")]), "k")
    ([('j', b'x')], True)
    """
    inside = kpl_records(data)
    if inside is None:
        return [(partition_key, data)], False
    return list(inside), True


def _field(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def kpl_aggregate(records: list[tuple[str, bytes]]) -> bytes:
    """One KPL-aggregated record of (partition key, data) pairs, as the KPL writes it (for tests and
    local producers; streamlab's sinks put records one by one).

    Examples
    --------
    >>> kpl_aggregate([("k", b"x")]).startswith(KPL_MAGIC)
    True
    """
    keys: dict[str, int] = {}
    body = bytearray()
    for key, _ in records:
        if key not in keys:
            keys[key] = len(keys)
            body += _field(1, key.encode("utf-8"))
    for key, payload in records:
        record = _encode_varint(1 << 3 | 0) + _encode_varint(keys[key]) + _field(3, payload)
        body += _field(3, record)
    message = bytes(body)
    return KPL_MAGIC + message + hashlib.md5(message, usedforsecurity=False).digest()
