"""Bad input never raises and never vanishes, and batch boundaries never change what the parse step
decides: the columnar (arrow) path and the checked per-record path agree on every record, nasty ones
included (huge numbers, deep nesting, bad UTF-8, NUL bytes, NaN literals, surrogates, relative times)."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.json as pj
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from streamlab import ListSink, ListSource, ManualClock, Pipeline
from streamlab._parse import FieldSpec, ParseOperator
from streamlab._record import MAX_DEPTH, MAX_NUMBER_DIGITS, iso_to_ns
from streamlab._time import NAT_NS, to_utc_ns

FAST = {  # every field type arrow reads: these records take the columnar path in large batches
    "event_id": "string",
    "event_type": "category",
    "timestamp": "timestamp",
    "amount": {"type": "float64", "path": "properties.amount"},
    "n": "int64",
    "flag": "bool",
}
CHECKED = {**FAST, "properties": "object", "extra": "json"}  # object/json: the checked path only

GOOD_VALUES = {
    "event_id": ['"e1"', '"caf\\u00e9"', '"\\ud83d\\ude00"', '"x\\u0000y"', '""'],
    "event_type": ['"click"', '"view"', "null"],
    "timestamp": [
        '"2024-01-01T00:00:05Z"',
        '"2024-01-01 00:00:05.123456789"',
        '"2024-01-01T01:00:05+01:00"',
        '"2024-01-01T00"',
        "1704067205",
        "1704067205123",
        "1704067205.5",
    ],
    "amount": ["1.5", "-2", "0", "1e3", "123456789012345678901234567890", "null", "0.1"],
    "n": ["7", "-9223372036854775808", "9223372036854775807", "null", "0"],
    "flag": ["true", "false", "null"],
    "extra": ['{"a": [1, {"b": null}]}', '"text"', "3", "[]", "null"],
}
NASTY_VALUES = [
    "1" + "0" * 400,  # a 400-digit integer
    "-" + "9" * (MAX_NUMBER_DIGITS + 1),  # longer than the digit limit
    "0." + "0" * 600 + "1",
    "1e999999",
    "-1E+400",
    "1e-999999",
    "NaN",
    "Infinity",
    "-Infinity",
    "Inf",
    "-0",
    "-0.0",
    "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
    '{"a":' * 1200 + "1" + "}" * 1200,
    "[" * 40 + "]" * 40,
    '"\\ud800"',  # a lone surrogate
    '"\\udc00x\\ud800"',
    '"now"',
    '"today"',
    '"yesterday"',
    '"tomorrow"',
    '"NaT"',
    '"   "',
    '"2024-02-30T00:00:00Z"',
    '"2262-04-11T23:47:16.854775808Z"',
    '"2024-01-01T00:00:00.1234567891Z"',
    '"1"',
    "true",
    "{}",
    '{"amount": 3}',
    "9223372036854775808",
    "9223372036855",
    '"\\u0000"',
    '"' + "7" * (MAX_NUMBER_DIGITS + 1) + '"',  # digits in a string are not a number
]
BYTE_DAMAGE = [
    b"\xff",
    b"\xc3",
    b"\xed\xa0\x80",
    b"\x00",
    b"\t",
    b"\r",
    b"\n",
    b"\xef\xbb\xbf",
    b" NaN",
    b"}",
]


@st.composite
def record(draw: st.DrawFn) -> bytes:
    """A JSON record: mostly good values, some fields (known or ignored) nasty, sometimes damaged bytes."""
    parts = []
    for name in ("event_id", "event_type", "timestamp", "properties", "n", "flag", "extra", "ignored"):
        if draw(st.integers(0, 9)) == 0:
            continue  # a missing field
        if draw(st.integers(0, 5)) == 0:
            value = draw(st.sampled_from(NASTY_VALUES))
        elif name == "properties":
            value = '{"amount": ' + draw(st.sampled_from(GOOD_VALUES["amount"])) + ', "page": "/p"}'
        elif name == "ignored":
            value = '{"deep": [1, 2, {"x": "y"}]}'
        else:
            value = draw(st.sampled_from(GOOD_VALUES[name]))
        parts.append(f'"{name}": {value}')
    raw = ("{" + ", ".join(parts) + "}").encode()
    if draw(st.integers(0, 4)) == 0:
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.sampled_from(BYTE_DAMAGE)) + raw[at:]
    return raw


# values of the json/object fields: any JSON under "page", and under "extra" objects to look into
# ("extra.a.b"), a path that ends early (no "b") or runs through a number
PAGES = ["/p", 3, None, [1, {"b": 2}], {"x": {"y": [True, 2**70]}}, "caf\u00e9"]
EXTRAS = [{"a": {"b": [1, 2]}}, {"a": {}}, {"a": 3}, {"a": {"b": {"c": None}}}]


def good(i: int) -> bytes:
    properties: dict = {"amount": i / 4}
    if i % 3:
        properties["page"] = PAGES[i % len(PAGES)]
    record = {
        "event_id": f"g{i}",
        "event_type": "click",
        "timestamp": f"2024-01-01T00:00:{i % 60:02d}Z",
        "properties": properties,
        "n": i,
        "flag": bool(i % 2),
    }
    if i % 4 == 1:
        record["extra"] = EXTRAS[(i // 4) % len(EXTRAS)]
    return json.dumps(record).encode()


_ALONE: dict[tuple, dict[str, pd.DataFrame]] = {}


def parse_in_batches(
    schema: dict, records: list[bytes | str | None], batch: int, max_record_bytes: int = 1_000_000
) -> tuple[pd.DataFrame, list[tuple[int, str]]]:
    """The runtime's parse operator over the records cut into batches; outputs put back together."""
    fields = [FieldSpec.of(n, s) for n, s in schema.items()]
    op = ParseOperator("parse", fields, "value", ("timestamp",), max_record_bytes)
    frame = pd.DataFrame({"value": pd.Series(records, dtype=object), "i": range(len(records))})
    oks, dead = [], []
    for lo in range(0, len(frame), batch):
        part = frame.iloc[lo : lo + batch].reset_index(drop=True)
        key = (json.dumps(schema), max_record_bytes, type(records[lo]), records[lo])
        if batch == 1 and key in _ALONE:  # a record alone always parses alike: run it once per session
            out = _ALONE[key]
        else:
            out = op.process(part)
            if batch == 1:
                _ALONE[key] = out
        oks.append(out["out"].assign(i=lo) if batch == 1 else out["out"])
        if "dead_letter" in out:
            dl = out["dead_letter"].assign(i=lo) if batch == 1 else out["dead_letter"]
            dead += list(zip(dl["i"].tolist(), dl["reason"].tolist()))
            assert dl["step_id"].eq("parse").all()
    ok = pd.concat(oks, ignore_index=True)
    for name, spec in schema.items():
        if FieldSpec.of(name, spec).type == "category":
            ok[name] = ok[name].astype(object)
    for name in ("properties", "extra"):
        if name in ok:
            ok[name] = ok[name].map(lambda v: json.dumps(v, sort_keys=True))
    return ok, dead


def assert_batch_sizes_agree(schema: dict, records: list, max_record_bytes: int = 1_000_000) -> None:
    results = [parse_in_batches(schema, records, b, max_record_bytes) for b in (1, 7, len(records) or 1)]
    ok, dead = results[0]
    assert len(ok) + len(dead) == len(records)  # nothing vanishes
    assert sorted(set(ok["i"]) | {i for i, _ in dead}) == list(range(len(records)))
    for other_ok, other_dead in results[1:]:
        pd.testing.assert_frame_equal(ok, other_ok)
        assert dead == other_dead


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.generate],  # a failure is reported as found: shrinking takes minutes
)
@given(
    nasty=st.lists(record(), min_size=1, max_size=12),
    n_good=st.integers(50, 80),
    rnd=st.randoms(use_true_random=False),
    schema=st.sampled_from([FAST, CHECKED]),
    as_text=st.booleans(),
)
def test_fuzzed_records_never_raise_and_batch_size_never_changes_the_outcome(
    nasty: list[bytes], n_good: int, rnd, schema: dict, as_text: bool
) -> None:
    records: list = [good(i) for i in range(n_good)] + nasty
    rnd.shuffle(records)
    if as_text:  # text records (some sources give str): decoded as sources would, surrogates kept
        records = [r.decode("utf-8", "surrogateescape") if i % 3 == 0 else r for i, r in enumerate(records)]
    assert_batch_sizes_agree(schema, records)


def test_a_missing_record_takes_the_fallback_path_with_the_same_outcome() -> None:
    nasty = [r.encode() if isinstance(r, str) else r for r in NASTY_VALUES]
    records: list = [good(i) for i in range(100)]
    for k, value in enumerate(nasty):
        records.insert(
            3 * k, b'{"timestamp": "2024-01-01T00:00:00Z", "properties": {"amount": ' + value + b"}}"
        )
    with_none = [*records, None]  # one missing value: the per-record routing instead of the vector one
    ok_a, dead_a = parse_in_batches(FAST, records, len(records))
    ok_b, dead_b = parse_in_batches(FAST, with_none, len(with_none))
    pd.testing.assert_frame_equal(ok_a, ok_b)
    assert dead_b == [*dead_a, (len(records), "null value (tombstone)")]


CASES = {
    b'{"timestamp": "2024-01-01T00:00:00Z", "amount": 1' + b"0" * 400 + b"}": "expected float64, got int",
    b'{"timestamp": "2024-01-01T00:00:00Z", "n": 1' + b"0" * 400 + b"}": "expected int64, got int",
    b'{"timestamp": "2024-01-01T00:00:00Z", "x": 1' + b"0" * 600 + b"}": "a number has more than 500 digits",
    b'{"timestamp": "2024-01-01T00:00:00Z", "x": '
    + b"[" * 5000
    + b"]" * 5000
    + b"}": "nested deeper than 512",
    b'{"timestamp": "2024-01-01T00:00:00Z", "o": '
    + b'{"a":' * 2000
    + b"1"
    + b"}" * 2000
    + b"}": "nested deeper",
    b'{"timestamp": "2024-01-01T00:00:00Z", "j": ' + b"[" * 1000 + b"]" * 1000 + b"}": "nested deeper",
    b'{"timestamp": "2024-01-01T00:00:00Z", "x": NaN}': "invalid JSON: NaN is not valid JSON",
    b'{"timestamp": "2024-01-01T00:00:00Z", "x": -Infinity}': "invalid JSON: -Infinity is not valid JSON",
    b'{"timestamp": "2024-01-01T00:00:00Z", "x": Inf}': "invalid JSON",
    b'{"timestamp": "2024-01-01T00:00:00Z", "amount": 1e999}': "expected float64, got float 'inf'",
    b'{"timestamp": "2024-01-01T00:00:00Z", "s": "\\ud800"}': "a lone surrogate is not text",
    b'{"timestamp": "2024-01-01T00:00:00Z", "s": "\x00"}': "invalid JSON",
    b'{"timestamp": "2024-01-01T00:00:00Z"}\x00': "invalid JSON",
    b'{"timestamp": "2024-01-01T00:00:00Z", "s": "\xff"}': "invalid UTF-8",
    b'{"timestamp": "now"}': "a relative time is not an event time",
    b'{"timestamp": "today"}': "a relative time is not an event time",
    b'{"timestamp": " Yesterday "}': "a relative time is not an event time",
    b'{"timestamp": "tomorrow"}': "a relative time is not an event time",
    b" \t\n ": "empty record",
}
CASE_SCHEMA = {
    "timestamp": "timestamp",
    "amount": "float64",
    "n": "int64",
    "s": "string",
    "o": "object",
    "j": "json",
}


@pytest.mark.parametrize("schema", [CASE_SCHEMA, {k: v for k, v in CASE_SCHEMA.items() if k not in "oj"}])
def test_each_kind_of_poison_record_is_a_dead_letter_with_its_reason_in_any_batch(schema: dict) -> None:
    records = [good(i) for i in range(60)]
    for k, raw in enumerate(CASES):
        records.insert(2 * k + 1, raw)
    for batch in (1, 5, len(records)):
        p = Pipeline(ListSource(records, batch_size=batch))
        parsed = p.parse(schema)
        ok, dead = ListSink(), ListSink()
        parsed.to(ok)
        parsed.dead_letter.to(dead)
        p.run(clock=ManualClock(0))  # never raises
        assert len(ok.frame()) == 60
        reasons = dict(zip(dead.frame()["raw"], dead.frame()["reason"]))
        for raw, reason in CASES.items():  # deep values in ignored fields too: the same reason
            assert reason in reasons[raw], (raw[:60], reasons[raw])


def test_a_10_mb_record_is_a_dead_letter_or_parsed_as_the_limit_says() -> None:
    big = b'{"timestamp": "2024-01-01T00:00:00Z", "event_id": "' + b"x" * 10_000_000 + b'"}'
    records = [good(i) for i in range(60)] + [big]
    ok, dead = parse_in_batches(FAST, records, len(records))
    assert dead == [(60, f"record is {len(big):,} bytes; max_record_bytes is 1,000,000")]
    assert_batch_sizes_agree(FAST, records[-3:], max_record_bytes=20_000_000)
    ok, dead = parse_in_batches(FAST, records, len(records), max_record_bytes=20_000_000)
    assert not dead and len(ok["event_id"].iloc[-1]) == 10_000_000


def _arrow_ns(text: str) -> int | None:
    schema = pa.schema([("t", pa.timestamp("ns", tz="UTC"))])
    options = pj.ParseOptions(explicit_schema=schema)
    try:
        table = pj.read_json(pa.BufferReader(json.dumps({"t": text}).encode()), parse_options=options)
    except (pa.ArrowInvalid, ValueError):
        return None
    value = table.column("t")[0].value
    return None if value is None else int(value)


_two = st.integers(0, 99).map(lambda v: f"{v:02d}")
_iso_like = st.builds(
    lambda y, mo, d, sep, h, mi, s, frac, zone: f"{y:04d}-{mo}-{d}{sep}{h}{mi}{s}{frac}{zone}",
    st.integers(1600, 2300),
    st.integers(0, 13).map(lambda v: f"{v:02d}"),
    st.integers(0, 32).map(lambda v: f"{v:02d}"),
    st.sampled_from(["T", " ", "t", ""]),
    st.one_of(st.just(""), _two),
    st.one_of(st.just(""), _two.map(lambda v: ":" + v)),
    st.one_of(st.just(""), _two.map(lambda v: ":" + v)),
    st.one_of(st.just(""), st.text("0123456789", min_size=0, max_size=11).map(lambda v: "." + v)),
    st.sampled_from(["", "Z", "z", "+01", "-0130", "+05:45", "-23:59", "+24:00", "+1", " UTC"]),
)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(_iso_like)
@example("2262-04-11T23:47:16.854775807")
@example("1969-12-31T23:59:59.5Z")
def test_iso_times_arrow_accepts_are_read_to_the_same_nanosecond(text: str) -> None:
    # the columnar path takes arrow's reading of a time; the checked path must accept it and agree
    arrow = _arrow_ns(text)
    if arrow is not None:
        assert iso_to_ns(text) == arrow


def test_relative_words_are_not_times() -> None:
    for word in ("now", "today", "yesterday", "tomorrow", "NOW", "2024-01-01 now"):
        with pytest.raises(ValueError):
            iso_to_ns(word)
    assert iso_to_ns("NaT") is None and iso_to_ns(" ") is None
    # time columns that are text (windows, dedup, joins over frames): a relative word is no time either
    assert to_utc_ns(pd.Series(["now", " Today", "2024-01-01T00:00:00Z"])).tolist()[:2] == [NAT_NS, NAT_NS]


@settings(max_examples=60, deadline=None, derandomize=True, phases=[Phase.explicit, Phase.generate])
@given(st.lists(record(), min_size=1, max_size=20))
def test_a_python_without_the_decoders_scanner_reads_object_values_alike(records: list[bytes]) -> None:
    """The json/object values come from the strict decoder's ``scan_once``; where a Python has none,
    ``raw_decode`` stands in, with the same values and the same records left to the checked path."""
    from unittest.mock import patch

    from streamlab import _parse

    texts = [r.decode("utf-8", "surrogateescape") for r in records]
    scanned = [_parse._decoded_object(r) for r in records + texts]
    with patch.object(_parse, "_SCAN_JSON", _parse._raw_decode):
        decoded = [_parse._decoded_object(r) for r in records + texts]
    assert decoded == scanned
