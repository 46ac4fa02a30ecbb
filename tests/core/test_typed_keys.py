"""Window and session keys are told apart by type: a ``json`` field's ``true``, ``1`` and ``1.0`` are three
keys, as in the exported code (Beam groups by the encoded key), although Python holds them equal.

They used to be one key (its first value), so counts merged and differed from the exported job's. Joins
(``join_interval``, ``enrich``) match keys by the same rule: they paired ``true`` with ``1`` and ``1.0``.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import ListSink, Pipeline, SessionWindow, TumblingWindow, agg
from streamlab._joins import EnrichOperator, IntervalJoinOperator
from streamlab.testing import ListSource

T0 = pd.Timestamp("2024-01-01", tz="UTC")
keys = st.sampled_from([True, False, 1, 0, 1.0, 0.0, 2.5, "1", "true", None, 2**60 + 1])


def typed(value: Any) -> tuple[str, Any]:
    """A key with its type; a missing key (None, or NaN in a float column of results) as None."""
    if value is None or (isinstance(value, float) and value != value):
        return ("NoneType", None)
    return (type(value).__name__, value)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(keys, keys), min_size=1, max_size=15), st.integers(1, 5))
def test_json_keys_of_equal_value_and_other_types_are_other_keys(rows: list[Any], batch_size: int) -> None:
    lines = [
        {"value": json.dumps({"j": j, "b": b, "timestamp": (T0 + pd.Timedelta(seconds=i)).isoformat()})}
        for i, (j, b) in enumerate(rows)
    ]
    p = Pipeline(ListSource(lines, batch_size=batch_size))
    parsed = p.parse({"j": "json", "b": "json", "timestamp": "timestamp"})
    one, two, sessions = ListSink(), ListSink(), ListSink()
    parsed.window(TumblingWindow("1h"), key="j").agg(agg.count()).to(one)
    parsed.window(TumblingWindow("1h"), key=["j", "b"]).agg(agg.count()).to(two)
    parsed.window(SessionWindow("1h"), key="j").agg(agg.count()).to(sessions)
    p.run()
    want = Counter(typed(j) for j, _ in rows)
    assert Counter({typed(r["j"]): r["count"] for r in one.rows()}) == want
    assert Counter({typed(r["j"]): r["count"] for r in sessions.rows()}) == want
    assert Counter({(typed(r["j"]), typed(r["b"])): r["count"] for r in two.rows()}) == Counter(
        (typed(j), typed(b)) for j, b in rows
    )


def test_a_bool_field_with_and_without_missing_values_keeps_one_key_per_value() -> None:
    """A bool field's column holds bools (no missing value in the batch) or objects (one missing): the
    same two keys either way."""
    values = [True, None, False, True, True, False]
    lines = [
        {"value": json.dumps({"f": f, "timestamp": (T0 + pd.Timedelta(seconds=i)).isoformat()})}
        for i, f in enumerate(values)
    ]
    for batch_size in (1, 2, 6):
        p = Pipeline(ListSource(lines, batch_size=batch_size))
        out = ListSink()
        p.parse({"f": "bool", "timestamp": "timestamp"}).window(TumblingWindow("1h"), key="f").agg(
            agg.count()
        ).to(out)
        p.run()
        assert {r["f"]: r["count"] for r in out.rows()} == {True: 3, False: 2, None: 1}


JOIN_KEYS = [True, 1, 1.0, "1", None, False, 0, 0.0]


def label(value: Any) -> Any:
    """A key as text naming its type (None stays None): the key told apart by type."""
    return None if value is None else f"{type(value).__name__}:{value!r}"


@pytest.mark.parametrize("how", ["left", "inner"])
@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.sampled_from(JOIN_KEYS), max_size=16),
    st.lists(st.sampled_from(JOIN_KEYS), min_size=1, max_size=8),
    st.sampled_from([1, 1000]),
)
def test_enrich_matches_a_json_key_of_the_same_value_and_type(
    how: str, keys: list[Any], table_keys: list[Any], size: int
) -> None:
    """As on keys naming their type, in batches of one row and in one: ``true`` gets the table's ``true``
    row only, not its ``1`` or ``1.0`` rows; a missing key matches nothing."""
    table = pd.DataFrame({"k": pd.Series(table_keys, dtype=object), "tid": range(len(table_keys))})
    named = table.assign(k=pd.Series([label(k) for k in table_keys], dtype=object))
    op, oracle = EnrichOperator(table, ["k"], how), EnrichOperator(named, ["k"], how)
    got: list[Any] = []
    want: list[Any] = []
    for start in range(0, len(keys), size):
        part = keys[start : start + size]
        batch = pd.DataFrame({"k": pd.Series(part, dtype=object), "i": range(start, start + len(part))})
        out = op.process(batch)["out"]
        got += [
            (i, typed(k), None if pd.isna(t) else int(t)) for i, k, t in zip(out["i"], out["k"], out["tid"])
        ]
        ref = oracle.process(batch.assign(k=pd.Series([label(k) for k in part], dtype=object)))["out"]
        want += [(i, None if pd.isna(t) else int(t)) for i, t in zip(ref["i"], ref["tid"])]
    assert [(i, t) for i, _, t in got] == want
    assert [k for _, k, _ in got] == [typed(keys[i]) for i, _, _ in got]  # the batch's own key values


def test_enrich_tells_a_float64_table_key_from_a_json_int() -> None:
    """A float64 table column joined with a json field: its 1.0 is the json 1.0, not the json 1."""
    table = pd.DataFrame({"k": [1.0, 2.0], "name": ["one", "two"]})
    batch = pd.DataFrame({"k": pd.Series([1, 1.0, 2.0, True], dtype=object)})
    out = EnrichOperator(table, ["k"], "left").process(batch)["out"]
    assert out["name"].tolist()[1:3] == ["one", "two"] and out["name"].isna().tolist() == [
        True,
        False,
        False,
        True,
    ]
    ints = pd.DataFrame({"k": [1, 2], "name": ["one", "two"]})  # int64 with float64: by value, as before
    assert EnrichOperator(ints, ["k"], "inner").process(table[["k"]])["out"]["name"].tolist() == [
        "one",
        "two",
    ]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(JOIN_KEYS), min_size=1, max_size=12), st.sampled_from([1, 1000]))
def test_an_interval_join_pairs_json_keys_of_the_same_value_and_type(keys: list[Any], size: int) -> None:
    """A self-join of json keys within a minute: each row with the rows of its key and type."""
    frame = pd.DataFrame(
        {
            "k": pd.Series(keys, dtype=object),
            "t": pd.to_datetime(np.arange(len(keys)), unit="s", utc=True),
            "i": range(len(keys)),
        }
    )
    op = IntervalJoinOperator("j", ["k"], "t", "t", -(60 * 10**9), 60 * 10**9, 10**12, ("_l", "_r"))
    got: list[tuple[int, int]] = []
    for start in range(0, len(keys), size):
        part = frame.iloc[start : start + size].reset_index(drop=True)
        for port in (0, 1):
            out = op.process(part, port).get("out")
            if out is not None:
                got += zip(out["i_l"].tolist(), out["i_r"].tolist())
                assert [typed(k) for k in out["k"]] == [typed(keys[i]) for i in out["i_l"]]
    want = [(a, b) for a in range(len(keys)) for b in range(len(keys)) if keys[a] is not None]
    want = [(a, b) for a, b in want if typed(keys[a]) == typed(keys[b])]
    assert sorted(got) == sorted(want)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        (pd.Series([1, 2]), pd.Series(["1", "2"], dtype=object)),  # a json/text key against an int64 one
        (
            pd.Series(pd.to_datetime(["2024-01-01", "2024-01-02"], utc=True)),
            pd.Series(["2024-01-01", "x"], dtype=object),
        ),
        (pd.Series([1, 2]), pd.Series(pd.to_datetime(["2024-01-01", "2024-01-02"]))),
    ],
)
def test_join_keys_pandas_will_not_compare_match_nothing_instead_of_stopping_the_run(left, right):
    # pandas refuses to merge an int64 or datetime key with an object one ("You are trying to merge on
    # int64 and object columns"): one record of text in a json key stopped the run
    t = pd.Series(pd.to_datetime(["2024-01-01", "2024-01-01"], utc=True))
    table = pd.DataFrame({"k": right, "name": ["A", "B"]})
    out = EnrichOperator(table, ["k"], "left").process(pd.DataFrame({"k": left, "x": [1, 2]}))["out"]
    assert out["x"].tolist() == [1, 2] and out["name"].isna().all()
    join = IntervalJoinOperator("j", ["k"], "t", "t", -(10**9), 10**9, 0, ("", "_right"))
    join.process(pd.DataFrame({"k": left, "t": t}), 0)
    got = join.process(pd.DataFrame({"k": right, "t": t}), 1)
    assert len(got.get("out", pd.DataFrame())) == 0
