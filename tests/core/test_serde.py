"""streamlab.serde: every column type encodes as documented, column at a time equal to value by value."""

from __future__ import annotations

import base64
import json
import math
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import _serde_values
from streamlab.serde import dump_json, encode_rows, encode_value, encode_values, json_column, rows_to_json

SETTINGS = settings(max_examples=60, deadline=None)

# -- what each value must read back as (the module's table, written independently) ---------------------


def expected(v: Any) -> Any:
    """What ``json.loads`` of an encoded value must give."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, np.generic):
        if isinstance(v, np.datetime64):
            return None if np.isnat(v) else expected(pd.Timestamp(v).floor("us").to_pydatetime())
        v = v.item()
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, datetime):
        ts = pd.Timestamp(v)
        ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        ts = ts.floor("us")
        return f"{ts.year:04d}-{ts.month:02d}-{ts.day:02d}T{ts.hour:02d}:{ts.minute:02d}:{ts.second:02d}.{ts.microsecond:06d}Z"
    if isinstance(v, (bytes, bytearray)):
        return base64.b64encode(bytes(v)).decode()
    if isinstance(v, timedelta):
        return pd.Timedelta(v).total_seconds()
    if isinstance(v, date):
        return v.isoformat()
    if isinstance(v, dict):
        return {(k if isinstance(k, str) else json.dumps(k)): expected(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [expected(x) for x in v]
    if isinstance(v, (set, frozenset)):
        return [expected(x) for x in sorted(v, key=str)]
    return str(v)


# -- strategies: one per column type ------------------------------------------------------------------
times_ns = st.integers(-(2**62), 2**62)
zones = st.sampled_from(
    [timezone.utc, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))]
)
finite_or_not = st.floats(allow_nan=True, allow_infinity=True)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**200), 2**200),  # Python ints beyond int64: every digit kept
    finite_or_not,
    st.text(max_size=12),
    st.binary(max_size=12),
    st.datetimes(timezones=st.one_of(st.none(), zones)),
    st.decimals(allow_nan=False, allow_infinity=False, places=4),
)
nested = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.text(max_size=5), st.integers(-9, 9)), inner, max_size=3),
    ),
    max_leaves=8,
)


@st.composite
def columns(draw: st.DrawFn, n: int) -> pd.Series:
    kind = draw(
        st.sampled_from(
            [
                "int",
                "uint",
                "float",
                "float32",
                "bool",
                "Int64",
                "boolean",
                "ts_utc",
                "ts_zone",
                "ts_naive",
                "ts_object",
                "str",
                "bytes",
                "category",
                "nested",
                "timedelta",
                "bigint",
            ]
        )
    )
    if kind == "int":
        return pd.Series(draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=n, max_size=n)))
    if kind == "uint":
        return pd.Series(
            draw(st.lists(st.integers(2**63, 2**64 - 1), min_size=n, max_size=n)), dtype="uint64"
        )
    if kind == "bigint":
        return pd.Series(draw(st.lists(st.integers(-(2**90), 2**90), min_size=n, max_size=n)), dtype=object)
    if kind in ("float", "float32"):
        values = draw(st.lists(st.floats(width=64 if kind == "float" else 32), min_size=n, max_size=n))
        return pd.Series(values, dtype="float64" if kind == "float" else "float32")
    if kind == "bool":
        return pd.Series(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    if kind == "Int64":
        return pd.Series(
            draw(st.lists(st.none() | st.integers(-(2**40), 2**40), min_size=n, max_size=n)), dtype="Int64"
        )
    if kind == "boolean":
        return pd.Series(draw(st.lists(st.none() | st.booleans(), min_size=n, max_size=n)), dtype="boolean")
    if kind.startswith("ts_") and kind != "ts_object":
        ns = draw(st.lists(st.none() | times_ns, min_size=n, max_size=n))
        s = pd.Series(
            pd.to_datetime([pd.NaT if x is None else x for x in ns], unit="ns", utc=kind != "ts_naive")
        )
        return s.dt.tz_convert("Asia/Kolkata") if kind == "ts_zone" else s
    if kind == "ts_object":  # Python datetimes in several zones, naive ones too, and NaT
        values = draw(
            st.lists(
                st.just(pd.NaT) | st.datetimes(timezones=st.one_of(st.none(), zones)), min_size=n, max_size=n
            )
        )
        return pd.Series(values, dtype=object)
    if kind == "str":
        return pd.Series(
            draw(st.lists(st.none() | st.text(max_size=10), min_size=n, max_size=n)), dtype=object
        )
    if kind == "bytes":
        return pd.Series(draw(st.lists(st.binary(max_size=10), min_size=n, max_size=n)), dtype=object)
    if kind == "category":
        return pd.Series(
            draw(st.lists(st.none() | st.sampled_from(["a", "b", "é"]), min_size=n, max_size=n)),
            dtype="category",
        )
    if kind == "timedelta":
        secs = draw(st.lists(st.none() | st.integers(-(10**9), 10**9), min_size=n, max_size=n))
        return pd.Series(pd.to_timedelta([pd.NaT if x is None else x for x in secs], unit="us"))
    return pd.Series(draw(st.lists(nested, min_size=n, max_size=n)), dtype=object)


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(1, 6))
    cols = draw(st.lists(columns(n), min_size=1, max_size=4))
    return pd.DataFrame({f"c{i}": c.reset_index(drop=True) for i, c in enumerate(cols)})


@SETTINGS
@given(frames(), st.booleans())
def test_rows_read_back_as_documented_and_equal_the_per_value_encoding(
    frame: pd.DataFrame, compact: bool
) -> None:
    lines = rows_to_json(frame, compact)
    assert len(lines) == len(frame)
    by_column = {c: frame[c].tolist() for c in frame.columns}
    for i, line in enumerate(lines):
        values = {c: by_column[c][i] for c in frame.columns}
        assert json.loads(line) == {c: expected(v) for c, v in values.items()}
        assert line == dump_json({c: v for c, v in values.items()}, compact)  # columnar == per value
        assert line.isascii() and "\n" not in line
    assert [json.loads(b) for b in encode_rows(frame)] == [json.loads(x) for x in lines]


@SETTINGS
@given(nested)
def test_any_nested_value_reads_back_as_documented(value: Any) -> None:
    assert json.loads(dump_json(value)) == expected(value)
    assert json.loads(dump_json(value, compact=False)) == expected(value)


@SETTINGS
@given(st.lists(st.binary(max_size=20), min_size=1, max_size=5))
def test_bytes_round_trip_through_base64(blobs: list[bytes]) -> None:
    lines = rows_to_json(pd.DataFrame({"raw": pd.Series(blobs, dtype=object)}))
    assert [base64.b64decode(json.loads(x)["raw"]) for x in lines] == blobs


@SETTINGS
@given(st.lists(st.none() | times_ns, min_size=1, max_size=5))
def test_times_read_back_at_microseconds_in_utc(ns: list[int | None]) -> None:
    stamps = pd.Series(pd.to_datetime([pd.NaT if x is None else x for x in ns], unit="ns", utc=True))
    back = [json.loads(x)["t"] for x in rows_to_json(pd.DataFrame({"t": stamps.dt.tz_convert("US/Eastern")}))]
    for text, ts in zip(back, stamps):
        assert (text is None) == (ts is pd.NaT)
        if text is not None:
            assert text.endswith("Z") and pd.Timestamp(text) == ts.floor("us")


@SETTINGS
@given(scalars)
def test_encode_value_gives_text_as_itself_and_the_rest_as_json(value: Any) -> None:
    out = encode_value(value)
    if _serde_values.is_missing(value):
        assert out is None
    elif isinstance(value, bytes):
        assert out == value
    elif isinstance(value, str):
        assert out == value.encode()
    else:
        assert out is not None
        want = expected(value)
        assert (out.decode() if isinstance(want, str) else json.loads(out)) == want


def test_decimals_and_huge_integers_keep_every_digit() -> None:
    d = Decimal("12345678901234567890.123456789")
    big = 2**100 + 1
    back = json.loads(rows_to_json(pd.DataFrame({"d": [d], "i": pd.Series([big], dtype=object)}))[0])
    assert Decimal(back["d"]) == d and back["i"] == big


def test_layouts_messages_compact_files_spaced() -> None:
    frame = pd.DataFrame({"a": [1], "p": [{"k": [1, 2]}]})
    assert rows_to_json(frame) == ['{"a":1,"p":{"k":[1,2]}}']
    assert rows_to_json(frame, compact=False) == ['{"a": 1, "p": {"k": [1, 2]}}']
    assert rows_to_json(frame.iloc[:0]) == [] and rows_to_json(pd.DataFrame(index=[0, 1])) == ["{}", "{}"]


def test_numpy_values_inside_objects() -> None:
    value = {
        "arr": np.array([1.5, np.nan]),
        "t": np.datetime64("2024-01-01T00:00:00.123456789"),
        "nat": np.datetime64("NaT"),
        "f32": np.float32("nan"),
        "i": np.int16(3),
        "td": np.timedelta64(1500, "ms"),
        "set": {"b", "a"},
        (1, 2): date(2024, 1, 2),
    }
    assert json.loads(dump_json(value)) == {
        "arr": [1.5, None],
        "t": "2024-01-01T00:00:00.123456Z",
        "nat": None,
        "f32": None,
        "i": 3,
        "td": 1.5,
        "set": ["a", "b"],
        "(1, 2)": "2024-01-02",
    }


def test_encode_values_of_a_column() -> None:
    when = pd.Timestamp("2024-01-01T01:00", tz="Europe/Paris")
    assert encode_values(pd.Series([b"\xff", "é", 1.5, None, when, True], dtype=object)) == [
        b"\xff",
        "é".encode(),
        b"1.5",
        None,
        b"2024-01-01T00:00:00.000000Z",
        b"true",
    ]


def test_json_column_is_vectorized_for_numbers_and_times() -> None:
    s = pd.Series(np.arange(3, dtype="int64"))
    assert json_column(s).tolist() == ["0", "1", "2"]


@pytest.mark.parametrize("compact", [True, False])
def test_duplicate_column_names_are_encoded_in_order(compact: bool) -> None:
    frame = pd.DataFrame([[1, 2]], columns=["a", "a"])
    assert rows_to_json(frame, compact)[0].replace(" ", "") == '{"a":1,"a":2}'
