"""Integer fields keep every digit through a pipeline, also in a batch where some are missing.

pandas would store such a batch's integers as float64, which rounds every integer beyond 2**53: an id of
``2**60 + 1`` came out of parse, windows and sinks as ``1152921504606846976``, and window keys as
floats. Parsed ``int64`` fields with a missing value are pandas' nullable ``Int64``; window and session
keys keep their integers (and ``None`` for a missing key); sinks store the exact values.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import (
    DuckDBSink,
    JsonLinesSink,
    ListSink,
    ParquetSink,
    Pipeline,
    SessionWindow,
    TumblingWindow,
    agg,
)
from streamlab.detectors import VelocityFeature
from streamlab.testing import ListSource

SCHEMA = {"uid": "int64", "n": "int64", "timestamp": "timestamp"}
T0 = pd.Timestamp("2024-01-01", tz="UTC")
BIG = [2**53 + 1, 2**60 + 1, 2**63 - 1, -(2**63), -(2**53) - 3, 0, 7]

ints = st.one_of(st.none(), st.sampled_from(BIG), st.integers(-(2**63), 2**63 - 1))


def records(rows: list[tuple[int | None, int | None, int]]) -> list[dict[str, Any]]:
    out = []
    for uid, n, second in rows:
        event: dict[str, Any] = {"timestamp": (T0 + pd.Timedelta(seconds=second)).isoformat()}
        if uid is not None:
            event["uid"] = uid
        event["n"] = n  # present as null
        out.append({"value": json.dumps(event)})
    return out


def plain(value: Any) -> Any:
    """A result value as a Python int (None for a missing one), failing on a float."""
    if value is None or value is pd.NA:
        return None
    assert not isinstance(value, float), f"an integer became the float {value!r}"
    return int(value)


rows_strategy = st.lists(st.tuples(ints, ints, st.integers(0, 299)), min_size=1, max_size=30)


@settings(max_examples=60, deadline=None)
@given(rows_strategy, st.integers(1, 8))
def test_parsed_integers_and_window_keys_keep_every_digit(rows: list[Any], batch_size: int) -> None:
    rows = sorted(rows, key=lambda r: r[2])
    p = Pipeline(ListSource(records(rows), batch_size=batch_size))
    parsed = p.parse(SCHEMA, step_id="parse")
    out, by_uid, by_both, sessions = ListSink(), ListSink(), ListSink(), ListSink()
    parsed.to(out)
    parsed.window(TumblingWindow("1m"), key="uid").agg(agg.count()).to(by_uid)
    parsed.window(TumblingWindow("1m"), key=["uid", "n"]).agg(agg.count()).to(by_both)
    parsed.window(SessionWindow("30s"), key="uid").agg(agg.count()).to(sessions)
    values = ListSink()
    parsed.window(TumblingWindow("1m")).agg(agg.count_distinct("n"), agg.first("n"), agg.last("n")).to(values)
    p.run()

    assert [(plain(e["uid"]), plain(e["n"])) for e in out.rows()] == [(u, n) for u, n, _ in rows]

    def minute(second: int) -> pd.Timestamp:
        return T0 + pd.Timedelta(minutes=second // 60)

    got = Counter({(plain(w["uid"]), w["window_start"]): w["count"] for w in by_uid.rows()})
    assert got == Counter((u, minute(s)) for u, _, s in rows)
    got = Counter({(plain(w["uid"]), plain(w["n"]), w["window_start"]): w["count"] for w in by_both.rows()})
    assert got == Counter((u, n, minute(s)) for u, n, s in rows)
    minutes: dict[pd.Timestamp, list[int | None]] = {}
    for _, n, second in rows:
        minutes.setdefault(minute(second), []).append(n)
    got_values = {
        w["window_start"]: (w["count_distinct_n"], plain(w["first_n"]), plain(w["last_n"]))
        for w in values.rows()
    }
    assert got_values == {m: (len(set(ns) - {None}), ns[0], ns[-1]) for m, ns in minutes.items()}

    per_key: Counter[int | None] = Counter()
    for w in sessions.rows():
        per_key[plain(w["uid"])] += w["count"]
    assert per_key == Counter(u for u, _, _ in rows)


@settings(max_examples=25, deadline=None)
@given(rows_strategy, st.integers(1, 8))
def test_sinks_store_every_digit(tmp_path_factory: Any, rows: list[Any], batch_size: int) -> None:
    tmp: Path = tmp_path_factory.mktemp("ints")
    p = Pipeline(ListSource(records(rows), batch_size=batch_size))
    parsed = p.parse(SCHEMA)
    sink = DuckDBSink(tmp / "out.duckdb", "events", key=None)
    parsed.to(sink)
    parsed.to(JsonLinesSink(tmp / "out.jsonl"))
    p.run()
    want = [(u, n) for u, n, _ in rows]
    con = sink.connection()
    assert con.sql("select uid, n from events").fetchall() == want
    types = dict(con.sql("select column_name, data_type from information_schema.columns").fetchall())
    assert types["uid"] == types["n"] == "BIGINT"
    lines = [json.loads(line) for line in (tmp / "out.jsonl").read_text().splitlines()]
    assert [(e["uid"], e["n"]) for e in lines] == want


def test_a_batch_with_a_missing_integer_is_nullable_int64_and_one_without_stays_int64() -> None:
    rows = [(2**60 + 1, 1, 0), (None, None, 1), (5, 2, 2)]
    p = Pipeline(ListSource(records(rows), batch_size=2))
    seen: list[str] = []

    def note_dtype(frame: pd.DataFrame) -> pd.DataFrame:
        seen.append(str(frame["uid"].dtype))
        return frame

    p.parse(SCHEMA).map_many(note_dtype)
    p.run()
    assert seen == ["Int64", "int64"]


@settings(max_examples=40, deadline=None)
@given(rows_strategy, st.integers(1, 8))
def test_a_left_enrich_keeps_the_tables_integers_for_rows_without_a_match(
    rows: list[Any], batch_size: int
) -> None:
    table = pd.DataFrame({"uid": [7, 2**60 + 1], "score": [2**62 + 1, -(2**63)]})
    p = Pipeline(ListSource(records(rows), batch_size=batch_size))
    out = ListSink()
    p.parse(SCHEMA).enrich(table, on="uid").to(out)
    p.run()
    scores = dict(zip(table["uid"], table["score"]))
    assert [plain(e["score"]) for e in out.rows()] == [scores.get(u) for u, _, _ in rows]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from([2**60, 2**60 + 1, None, 5]), min_size=1, max_size=20), st.integers(1, 6))
def test_keyed_features_tell_apart_integer_keys_a_float_would_merge(
    uids: list[int | None], batch_size: int
) -> None:
    lines = [
        {"value": json.dumps({"uid": u, "timestamp": (T0 + pd.Timedelta(seconds=i)).isoformat()})}
        for i, u in enumerate(uids)
    ]
    p = Pipeline(ListSource(lines, batch_size=batch_size))
    out = ListSink()
    p.parse({"uid": "int64", "timestamp": "timestamp"}).apply(VelocityFeature("uid", window="1h")).to(out)
    p.run()
    seen: Counter[int] = Counter()
    want = []
    for u in uids:
        if u is not None:  # a missing key goes to the feature's dead letter
            seen[u] += 1
            want.append((u, seen[u]))
    assert [(plain(r["uid"]), r["count_1h"]) for r in out.rows()] == want


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_dedup_tells_apart_ids_a_float_would_merge(batch_size: int) -> None:
    uids = [2**60, 2**60 + 1, None, 2**60 + 1, 2**60]
    lines = [
        {"value": json.dumps({"uid": u, "timestamp": (T0 + pd.Timedelta(seconds=i)).isoformat()})}
        for i, u in enumerate(uids)
    ]
    p = Pipeline(ListSource(lines, batch_size=batch_size))
    out = ListSink()
    p.parse({"uid": "int64", "timestamp": "timestamp"}).dedup("uid").to(out)
    p.run()
    assert [plain(r["uid"]) for r in out.rows()] == [2**60, 2**60 + 1, None]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from([2**62, 2**62 + 1, None, -(2**63), 7]), min_size=1, max_size=12),
    st.integers(1, 4),
)
def test_comparisons_read_integers_exactly_whatever_the_batch(ns: list[int | None], batch_size: int) -> None:
    """A batch with a missing value used to compare in float64: 2**62 + 1 == 2**62 held."""
    lines = [{"value": json.dumps({"n": n, "timestamp": T0.isoformat()})} for n in ns]
    p = Pipeline(ListSource(lines, batch_size=batch_size))
    parsed = p.parse({"n": "int64", "timestamp": "timestamp"})
    kept, mapped = ListSink(), ListSink()
    parsed.filter("n == 4611686018427387904").to(kept)
    parsed.with_columns(big="n > 4611686018427387904", same="n == n").to(mapped)
    p.run()
    assert [plain(r["n"]) for r in kept.rows()] == [n for n in ns if n == 2**62]
    assert [(bool(r["big"]), bool(r["same"])) for r in mapped.rows()] == [
        (n is not None and n > 2**62, n is not None) for n in ns
    ]


ARITHMETIC = {
    "third": "n // 3",
    "square": "n * n",
    "next": "n + 1",
    "rest": "-n % 4",
    "half": "n / 2",
    # -(-2**63) was 2**63 (a Python int) in a batch with a missing n and -2**63 (int64) in one without
    "minus": "-n",
    # 0.0 for a missing n in the exported code, 0 in streamlab's column (a window key: two keys)
    "filled": "n.fillna(0)",
    "twice": "n.mul(2).fillna(1)",  # ((n * 2).fillna(1): pandas 2 cannot evaluate a method of a BinOp)
}


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from([2**62, 2**62 + 1, None, -(2**63), 7, -7, 0]), min_size=1, max_size=10),
    st.integers(1, 4),
)
def test_arithmetic_on_integers_is_the_same_whatever_the_batch(ns: list[int | None], batch_size: int) -> None:
    """A batch with a missing value computed in float64: ``n // 3`` was ``2.0`` there and ``2`` in a batch
    without one, ``n * n`` of 2**62 a float where int64 gives 0; the exported code (a row at a time)
    gives the integers. Each row is now what it is alone, as a sink writes it and as the export does."""
    from streamlab.export._snippets import assign_exprs
    from streamlab.serde import dump_json

    lines = [{"value": json.dumps({"n": n, "timestamp": T0.isoformat()})} for n in ns]
    p = Pipeline(ListSource(lines, batch_size=batch_size))
    out = ListSink()
    p.parse({"n": "int64", "timestamp": "timestamp"}).with_columns(**ARITHMETIC).to(out)
    p.run()
    written = [json.loads(dump_json({c: r[c] for c in ARITHMETIC})) for r in out.rows()]
    exported = [
        json.loads(
            dump_json(
                {
                    c: v
                    for c, v in assign_exprs({"n": n}, ARITHMETIC.items(), ("n",), (("n", "int64"),)).items()
                    if c != "n"
                }
            )
        )
        for n in ns
    ]
    assert [json.dumps(w, sort_keys=True) for w in written] == [
        json.dumps(e, sort_keys=True) for e in exported
    ]


def test_a_text_length_beside_a_missing_text_is_an_integer_as_in_the_export() -> None:
    """``s.str.len()`` of a batch with a missing ``s`` was float64 (``2.0``); alone, and exported, ``2``."""
    from streamlab.export._snippets import assign_exprs
    from streamlab.serde import dump_json

    texts = ["ab", None, "c"]
    lines = [{"value": json.dumps({"s": s, "timestamp": T0.isoformat()})} for s in texts]
    p = Pipeline(ListSource(lines))
    out = ListSink()
    p.parse({"s": "string", "timestamp": "timestamp"}).with_columns(length="s.str.len()").to(out)
    p.run()
    typed = (("s", "string"),)
    exported = [assign_exprs({"s": s}, [("length", "s.str.len()")], (), typed)["length"] for s in texts]
    assert (
        [dump_json(r["length"]) for r in out.rows()] == [dump_json(v) for v in exported] == ["2", "null", "1"]
    )


def _halve(row: dict[str, Any]) -> dict[str, Any]:
    n = row["n"]
    return {**row, "half": None if n is None or pd.isna(n) else n // 2}


@settings(max_examples=30, deadline=None)
@given(st.lists(st.sampled_from([2**62 + 1, None, 7, -(2**63)]), min_size=1, max_size=8), st.integers(1, 4))
def test_map_one_keeps_integers_beside_a_missing_value(ns: list[int | None], batch_size: int) -> None:
    """The rows of a per-event function were joined by ``DataFrame.from_records``: an int64 field passed
    through beside a missing value became float64 (``2**62 + 1`` lost its last digits, ``7`` was ``7.0``)."""
    from streamlab.serde import dump_json

    lines = [{"value": json.dumps({"n": n, "timestamp": T0.isoformat()})} for n in ns]
    p = Pipeline(ListSource(lines, batch_size=batch_size))
    out = ListSink()
    p.parse({"n": "int64", "timestamp": "timestamp"}).map_one(_halve).to(out)
    p.run()
    assert [dump_json([r["n"], r["half"]]) for r in out.rows()] == [
        dump_json([n, None if n is None else n // 2]) for n in ns
    ]


@pytest.mark.parametrize("batch_size", [1, 2, 100])
def test_a_json_fields_ints_and_floats_keep_their_types_in_windows_closed_apart(
    tmp_path_factory: Any, batch_size: int
) -> None:
    # A window keyed by a json field, and first/last of it, whose windows close in different batches:
    # pandas joined the batches' results as float64, so the key 2**60 + 1 came out of ListSink.frame(),
    # RunResult.outputs and ParquetSink (which joins a commit's batches) as 1152921504606846976.0 and 1
    # as 1.0, where one frame of both keeps each value's type, as the JSON sinks and the exported
    # Beam/Lambda code write them (verify reported the export different).
    tmp: Path = tmp_path_factory.mktemp("json-ints")
    values = [2**60 + 1, 2.5, 1, 7]  # no None: a window of it alone would make the column object
    events = [
        {"value": json.dumps({"timestamp": (T0 + pd.Timedelta(seconds=10 * i)).isoformat(), "w": w})}
        for i, w in enumerate(values)
    ]
    p = Pipeline(ListSource(events, batch_size=batch_size))
    parsed = p.parse({"timestamp": "timestamp", "w": "json"})
    keyed, firsts = ListSink(), ListSink()
    parsed.window(TumblingWindow("5s"), key="w", step_id="keyed").agg(agg.count()).to(keyed)
    windowed = parsed.window(TumblingWindow("5s"), step_id="firsts").agg(agg.first("w"), agg.last("w"))
    windowed.to(firsts)
    windowed.to(JsonLinesSink(tmp / "firsts.jsonl"))
    windowed.to(ParquetSink(tmp / "firsts"))
    p.run()

    def typed(xs: list[Any]) -> list[tuple[str, Any]]:
        return [(type(x).__name__, x) for x in xs]

    want = typed(values)
    assert typed(keyed.frame()["w"].tolist()) == want
    assert typed(firsts.frame()["first_w"].tolist()) == want
    assert typed(firsts.frame()["last_w"].tolist()) == want
    lines = [json.loads(line) for line in (tmp / "firsts.jsonl").read_text().splitlines()]
    assert typed([e["first_w"] for e in lines]) == want
    parquet = pd.read_parquet(tmp / "firsts")  # a json field's first value is JSON text there
    assert typed([json.loads(x) for x in parquet["first_w"]]) == want


@pytest.mark.parametrize("batch_size", [1, 2, 3, 100])
def test_a_sum_of_two_int_fields_each_missing_in_other_rows_is_the_same_at_every_batch_size(
    batch_size: int,
) -> None:
    # rows missing a beside rows missing b: Int64 with the exact sums at every batch size (at 100 the
    # expression recursed on the whole batch, and with_columns fell back to halving it)
    shapes = [{"a": 1, "b": None}, {"a": None, "b": 2}, {"a": 3, "b": 4}, {"a": 2**62, "b": 5}]
    p = Pipeline(ListSource([json.dumps(r) for r in shapes * 25]))
    out = ListSink()
    p.parse({"a": "int64", "b": "int64"}, time=None).with_columns(c="a + b").to(out)
    p.run(batch_size=batch_size)
    c = out.frame()["c"]
    assert c.dtype == "Int64"
    assert c.tolist() == [pd.NA, pd.NA, 7, 2**62 + 5] * 25
