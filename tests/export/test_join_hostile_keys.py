"""Exported interval joins on a key that is a dict or a list (a ``json`` field): such a row matches
nothing, as in streamlab's ``join_interval`` (the SQL jobs hold the field as JSON text, where equal
objects would match; the DataStream job compares the values themselves), and the job goes on. A missing
key (null, or no field) matches nothing either, as SQL's NULL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from streamlab import Pipeline
from streamlab.export import to_flink, verify
from streamlab.testing import ListSource

from .test_flink_datastream import run_rules

SCHEMA = {"event_id": "string", "user_id": "json", "timestamp": "timestamp"}
USERS = ["u1", {"id": 1}, [1], 3, {"id": 1}, [1], "u1", 3, {"id": 2}]
# each row with itself and the later rows of its key; the dicts and the lists pair with nothing
MATCHED = sorted([[f"e{a}", f"e{b}"] for a, b in [(0, 0), (0, 6), (6, 6), (3, 3), (3, 7), (7, 7)]])


def joined() -> Pipeline:
    """A self-join (Flink's SQL job has no filter), each event with its user's events of the next minute."""
    p = Pipeline(ListSource([b"{}"]), name="hostile_join")
    events = p.parse(SCHEMA)
    events.join_interval(events, "user_id", lower="0s", upper="1m", step_id="join")
    return p


def lines() -> list[bytes]:
    return [
        json.dumps({"event_id": f"e{i}", "user_id": u, "timestamp": f"2024-03-01T00:00:{i:02d}Z"}).encode()
        for i, u in enumerate(USERS)
    ]


def pairs(frame: Any) -> list[list[str]]:
    return sorted([a, b] for a, b in zip(frame["event_id"], frame["event_id_right"], strict=True))


def test_streamlab_pairs_only_the_keys_that_can_be_keys() -> None:
    from streamlab.export.verify import run_local

    local = run_local(joined(), lines())
    assert pairs(local["join"]) == MATCHED


def test_the_datastream_rules_pair_only_the_keys_that_can_be_keys(tmp_path: Path) -> None:
    """The DataStream job's per-event rules, run in this process as its keyed process function runs them."""
    to_flink(joined(), tmp_path, source="files")
    out = run_rules(tmp_path / "datastream.py", lines())
    assert pairs(out["join"]) == MATCHED


@pytest.fixture(scope="module")
def spark() -> Any:
    from streamlab.export import spark as spark_export

    return spark_export.spark_session()


def test_spark_pairs_only_the_keys_that_can_be_keys(spark: Any, tmp_path: Path) -> None:
    report = verify(joined(), lines(), target="spark", workdir=tmp_path)
    assert report.equal, report.diff
    assert pairs(report.exported["join"]) == MATCHED


@pytest.mark.parametrize("job", ["sql", "datastream"])
def test_flink_pairs_only_the_keys_that_can_be_keys(flink_python: str, job: str, tmp_path: Path) -> None:
    report = verify(
        joined(), lines(), target="flink", workdir=tmp_path, flink_python=flink_python, flink_job=job
    )
    assert pairs(report.exported["join"]) == MATCHED
    # both jobs write the json key as its value (the SQL job wrote its JSON text, quotes and all)
    assert report.equal, report.diff
    got = report.exported["join"].sort_values(["event_id", "event_id_right"]).reset_index(drop=True)
    want = report.local["join"].sort_values(["event_id", "event_id_right"]).reset_index(drop=True)
    assert got["user_id"].tolist() == want["user_id"].tolist()


# a null key and a missing field pair with nothing, not even their own row (SQL: NULL = NULL is not true)
NULL_USERS: list[Any] = ["u1", None, "u1", None, "omit", 3]
NULL_MATCHED = sorted([[f"e{a}", f"e{b}"] for a, b in [(0, 0), (0, 2), (2, 2), (5, 5)]])


def null_lines() -> list[bytes]:
    rows = [{"event_id": f"e{i}", "timestamp": f"2024-03-01T00:00:{i:02d}Z"} for i in range(len(NULL_USERS))]
    for row, user in zip(rows, NULL_USERS, strict=True):
        if user != "omit":
            row["user_id"] = user
    return [json.dumps(row).encode() for row in rows]


def test_streamlab_pairs_no_missing_key() -> None:
    from streamlab.export.verify import run_local

    assert pairs(run_local(joined(), null_lines())["join"]) == NULL_MATCHED


def test_the_datastream_rules_pair_no_missing_key(tmp_path: Path) -> None:
    to_flink(joined(), tmp_path, source="files")
    assert pairs(run_rules(tmp_path / "datastream.py", null_lines())["join"]) == NULL_MATCHED


# a json key matches one of the same value and type: true, 1 and 1.0 are three keys (Python holds them
# equal), "1" a fourth, as the SQL jobs compare their JSON text; null matches nothing
TYPED_USERS: list[Any] = [True, 1, 1.0, "1", None, True, 1, 1.0, "1", None, 0, False, 0.0]


def typed_lines() -> list[bytes]:
    return [
        json.dumps({"event_id": f"e{i}", "user_id": u, "timestamp": f"2024-03-01T00:00:{i:02d}Z"}).encode()
        for i, u in enumerate(TYPED_USERS)
    ]


def typed_matched() -> list[list[str]]:
    """Each row with itself and the later rows of its key, a key being its value and type."""
    return sorted(
        [f"e{a}", f"e{b}"]
        for a, u in enumerate(TYPED_USERS)
        for b, w in enumerate(TYPED_USERS)
        if u is not None and b >= a and (type(u), u) == (type(w), w)
    )


@pytest.mark.parametrize("batch_size", [1, len(TYPED_USERS)])
def test_streamlab_pairs_json_keys_by_value_and_type(batch_size: int) -> None:
    from streamlab.export.verify import run_local

    local = run_local(joined(), typed_lines(), batch_size=batch_size)
    assert pairs(local["join"]) == typed_matched()
    assert local["join"]["user_id"].map(type).tolist() == [
        type(TYPED_USERS[int(e[1:])]) for e in local["join"]["event_id"]
    ]


def test_the_datastream_rules_pair_json_keys_by_value_and_type(tmp_path: Path) -> None:
    to_flink(joined(), tmp_path, source="files")
    assert pairs(run_rules(tmp_path / "datastream.py", typed_lines())["join"]) == typed_matched()


def test_spark_pairs_json_keys_by_value_and_type(spark: Any, tmp_path: Path) -> None:
    report = verify(joined(), typed_lines(), target="spark", workdir=tmp_path)
    assert report.equal, report.diff
    assert pairs(report.exported["join"]) == typed_matched()
