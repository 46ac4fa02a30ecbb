"""JSON lines: serialization round trip, malformed lines that really are malformed, raw app logs."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from streamlab.datasets import generate_app_logs, generate_clickstream, generate_transactions, to_json_lines
from streamlab.datasets._jsonl import EVENT_DEFECTS, MAX_RECORD_BYTES, check_line, corrupt_record, parse_lines
from streamlab.datasets._loader import dataset_info
from streamlab.datasets._logs import LOG_DEFECTS, LOG_SCHEMA

from streamlab._time import NAT_NS, to_utc_ns

CLICK_SCHEMA = dataset_info("clickstream").schema
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _is_malformed(line: bytes, schema) -> bool:
    """Independent check: not UTF-8, not a JSON object, a field missing or mistyped, or no real date."""
    if len(line) > MAX_RECORD_BYTES:
        return True
    try:
        obj = json.loads(line.decode("utf-8"))
    except ValueError:
        return True
    if not isinstance(obj, dict):
        return True
    for field, kind in schema:
        if field not in obj:
            return True
        value = obj[field]
        if kind.endswith("|null") and value is None:
            continue
        types: dict[str, type | tuple[type, ...]] = {
            "str": str,
            "ts": str,
            "dict": dict,
            "bool": bool,
            "num": (int, float),
            "int": int,
        }
        expected = types[kind.split("|")[0]]
        if not isinstance(value, expected) or (kind != "bool" and isinstance(value, bool)):
            return True
        if kind == "ts":
            try:
                if pd.isna(pd.Timestamp(str(value))):
                    return True
            except ValueError:
                return True
    return False


def test_to_json_lines_round_trips_events() -> None:
    df = generate_clickstream(2000, seed=4)
    lines = to_json_lines(df)
    assert len(lines) == len(df)
    first = json.loads(lines[0])
    assert ISO_Z.match(first["timestamp"])
    assert first["event_id"] == df["event_id"].iloc[0]
    parsed, rejected = parse_lines(lines, CLICK_SCHEMA)
    assert not rejected
    pd.testing.assert_frame_equal(parsed, df)


def test_to_json_lines_writes_missing_values_as_null() -> None:
    df = generate_transactions(50, seed=1)
    rec = json.loads(to_json_lines(df)[0])
    assert rec["fraud_burst_id"] is None
    frame = pd.DataFrame({"x": [1.5, np.nan], "t": pd.to_datetime(pd.Series(["2024-01-01", None]), utc=True)})
    assert [json.loads(b) for b in to_json_lines(frame)] == [
        {"x": 1.5, "t": "2024-01-01T00:00:00.000Z"},
        {"x": None, "t": None},
    ]


def test_sub_millisecond_timestamps_keep_their_precision() -> None:
    frame = pd.DataFrame({"t": pd.to_datetime([1_700_000_000_123_456_789], unit="ns", utc=True)})
    assert json.loads(to_json_lines(frame)[0])["t"] == "2023-11-14T22:13:20.123456789Z"


def test_injected_lines_are_malformed_and_every_event_survives_in_order() -> None:
    df = generate_clickstream(3000, seed=2)
    lines = to_json_lines(df, malformed_share=0.1, seed=9)
    good = to_json_lines(df)
    assert abs(len(lines) - len(good) / 0.9) <= 1
    bad = [line for line in lines if _is_malformed(line, CLICK_SCHEMA)]
    assert len(bad) == len(lines) - len(good)
    assert [line for line in lines if not _is_malformed(line, CLICK_SCHEMA)] == good
    parsed, rejected = parse_lines(lines, CLICK_SCHEMA)
    assert sum(rejected.values()) == len(bad)
    pd.testing.assert_frame_equal(parsed, df)
    assert to_json_lines(df, malformed_share=0.1, seed=9) == lines


def test_to_json_lines_rejects_bad_share() -> None:
    with pytest.raises(ValueError, match="malformed_share"):
        to_json_lines(generate_clickstream(5), malformed_share=0.9)


_EVENT = st.fixed_dictionaries(
    {
        "event_id": st.text(min_size=1, max_size=12),
        "event_type": st.sampled_from(["click", "purchase"]),
        "user_id": st.text(max_size=8),
        "timestamp": st.integers(0, 4_000_000_000_000).map(
            lambda ms: pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        ),
        "properties": st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=3),
        "is_duplicate": st.booleans(),
        "is_late": st.booleans(),
        "is_burst": st.booleans(),
    }
)


@settings(max_examples=60, deadline=None)
@given(record=_EVENT, defect=st.sampled_from(EVENT_DEFECTS), seed=st.integers(0, 2**32 - 1))
def test_each_defect_breaks_the_record_the_way_it_says(record: dict, defect: str, seed: int) -> None:
    assert check_line(json.dumps(record).encode(), CLICK_SCHEMA)[1] == "ok"
    line = corrupt_record(defect, record, np.random.default_rng(seed))
    assert _is_malformed(line, CLICK_SCHEMA)
    obj, _ = check_line(line, CLICK_SCHEMA)
    if defect in ("truncated_json", "plain_text"):
        with pytest.raises(ValueError):
            json.loads(line)
    elif defect == "non_utf8":
        with pytest.raises(UnicodeDecodeError):
            line.decode("utf-8")
    elif defect == "missing_timestamp":
        assert "timestamp" not in json.loads(line)
    elif defect == "bad_timestamp":
        assert to_utc_ns(pd.Series([json.loads(line)["timestamp"]], dtype=object))[0] == NAT_NS
    else:
        changed = {k for k, v in json.loads(line).items() if type(v) is not type(record[k])}
        assert len(changed) == 1
    # Only timestamp-based defects can pass the JSON and type checks; those fail on the date.
    if obj is not None:
        assert defect == "bad_timestamp"


def test_app_logs_labels_say_which_lines_are_bad_and_why() -> None:
    logs = generate_app_logs(4000, seed=3, malformed_share=0.05)
    assert list(logs.columns) == ["value", "is_malformed", "malformed_reason"]
    assert int(logs["is_malformed"].sum()) == 200
    assert set(logs.loc[logs["is_malformed"], "malformed_reason"]) == set(LOG_DEFECTS)
    assert (logs.loc[~logs["is_malformed"], "malformed_reason"] == "none").all()
    truth = logs["is_malformed"].to_numpy()
    observed = np.array([_is_malformed(v, LOG_SCHEMA) for v in logs["value"]])
    np.testing.assert_array_equal(observed, truth)
    huge = logs.loc[logs["malformed_reason"] == "huge_record", "value"]
    assert all(len(v) > MAX_RECORD_BYTES and isinstance(json.loads(v), dict) for v in huge)
    parsed, rejected = parse_lines(list(logs["value"]), LOG_SCHEMA)
    assert len(parsed) == 3800 and sum(rejected.values()) == 200
    assert (
        parsed["timestamp"]
        .between(pd.Timestamp("2023-12-31T23:59Z"), pd.Timestamp("2024-01-01T01:00Z"))
        .all()
    )
    assert set(parsed["level"]) == {"DEBUG", "INFO", "WARN", "ERROR"}


def test_app_logs_are_deterministic_and_clean_when_asked() -> None:
    a = generate_app_logs(500, seed=8, huge_bytes=2000)
    pd.testing.assert_frame_equal(a, generate_app_logs(500, seed=8, huge_bytes=2000))
    clean = generate_app_logs(300, seed=1, malformed_share=0.0)
    assert not clean["is_malformed"].any()
    assert all(check_line(v, LOG_SCHEMA)[1] == "ok" for v in clean["value"])
    with pytest.raises(ValueError, match="huge_bytes"):
        generate_app_logs(10, huge_bytes=0)


def test_to_json_lines_leaves_its_input_alone_and_converts_other_time_zones() -> None:
    df = generate_clickstream(500, seed=6)
    to_json_lines(df, malformed_share=0.3, seed=2)
    # Compare with a fresh frame: a deep copy would share the property dicts.
    pd.testing.assert_frame_equal(df, generate_clickstream(500, seed=6))
    berlin = pd.DataFrame({"t": pd.to_datetime(["2024-06-01T12:00:00+02:00"]).tz_convert("Europe/Berlin")})
    assert json.loads(to_json_lines(berlin)[0]) == {"t": "2024-06-01T10:00:00.000Z"}
