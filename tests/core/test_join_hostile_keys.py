"""Joins whose key columns hold values that cannot be keys (a dict, a list: a ``json`` field, records of
a ``ListSource``): such a row matches nothing, as a key the other side lacks, instead of failing the
batch on every restart."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab._joins import EnrichOperator, IntervalJoinOperator

from ._keys import KEY_VALUES, key_column, same_key

T0 = pd.Timestamp("2024-01-01", tz="UTC")
KEYS = ["a", {"x": 1}, "b", [1, 2], 2.5, None, ("t", 1), "a"]


@pytest.mark.parametrize("how", ["left", "inner"])
def test_enrich_matches_nothing_for_a_key_that_cannot_be_one(how: str) -> None:
    batch = pd.DataFrame({"k": pd.Series(KEYS, dtype=object), "n": range(len(KEYS))})
    table = pd.DataFrame({"k": pd.Series(["a", "b", 2.5, ("t", 1)], dtype=object), "info": [1, 2, 3, 4]})
    out = EnrichOperator(table, ["k"], how).process(batch)["out"]
    got = dict(zip(out["n"], out["info"]))
    if how == "left":
        assert out["n"].tolist() == list(range(len(KEYS)))  # every row, in batch order
        assert pd.isna(got[1]) and pd.isna(got[3]) and pd.isna(got[5])  # the table's ints stay Int64
        assert out["k"].tolist()[1] == {"x": 1}  # the row as it came
    else:
        assert sorted(got) == [0, 2, 4, 6, 7]
    assert (got[0], got[2], got[4], got[6], got[7]) == (1, 2, 3, 4, 1)


def test_interval_join_never_pairs_a_key_that_cannot_be_one() -> None:
    op = IntervalJoinOperator("j", ["k"], "t", "t", -(10**10), 10**10, 10**12, ("_l", "_r"))
    times = pd.to_datetime(np.arange(len(KEYS)), unit="s", utc=True)
    left = pd.DataFrame({"k": pd.Series(KEYS, dtype=object), "t": times, "l": range(len(KEYS))})
    right = pd.DataFrame({"k": pd.Series(KEYS[::-1], dtype=object), "t": times, "r": range(len(KEYS))})
    out = [op.process(left, 0).get("out"), op.process(right, 1).get("out")]
    pairs = pd.concat([o for o in out if o is not None], ignore_index=True)
    keyable = [i for i, k in enumerate(KEYS) if k is not None and not isinstance(k, (dict, list))]
    want = left.iloc[keyable].merge(
        right[right["k"].map(lambda k: k is not None and not isinstance(k, (dict, list)))], on="k"
    )
    assert sorted(zip(pairs["l"], pairs["r"])) == sorted(zip(want["l"], want["r"]))
    assert len(pairs) > 0


def enrich_reference(keys: list[tuple[Any, ...]], table: list[tuple[Any, ...]], how: str) -> list[Any]:
    """(row, table row) of each match, (row, None) for a row a left enrich keeps unmatched: a missing
    key matches no table row, whatever the table holds."""
    out: list[Any] = []
    for i, key in enumerate(keys):
        matches = [(i, t) for t, tkey in enumerate(table) if same_key(key, tkey)]
        out += matches or ([(i, None)] if how == "left" else [])
    return sorted(out, key=repr)


@pytest.mark.parametrize("how", ["left", "inner"])
@pytest.mark.parametrize("width", [1, 2])
@pytest.mark.parametrize("dtype", list(KEY_VALUES))
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_enrich_matches_no_table_row_for_a_missing_key(dtype: str, width: int, how: str, data: Any) -> None:
    key = st.tuples(*[st.sampled_from(KEY_VALUES[dtype])] * width)
    keys = data.draw(st.lists(key, max_size=20))
    table_keys = data.draw(st.lists(key, min_size=1, max_size=6))
    size = data.draw(st.sampled_from([1, 3, 1000]))
    on = [f"k{n}" for n in range(width)]

    def frame(rows: list[tuple[Any, ...]], ids: str, first: int = 0) -> pd.DataFrame:
        cols = {c: key_column([r[n] for r in rows], dtype) for n, c in enumerate(on)}
        return pd.DataFrame({**cols, ids: range(first, first + len(rows))})

    op = EnrichOperator(frame(table_keys, "tid"), on, how)
    got: list[Any] = []
    for start in range(0, len(keys), size):  # batches of ``size`` rows
        out = op.process(frame(keys[start : start + size], "i", start))["out"]
        got += [(i, None if pd.isna(t) else int(t)) for i, t in zip(out["i"], out["tid"])]
    assert sorted(got, key=repr) == enrich_reference(keys, table_keys, how)


@pytest.mark.parametrize("how", ["left", "inner"])
def test_enrich_does_not_match_a_null_key_to_the_tables_null_row(how: str) -> None:
    # the finding: k=None got the table's row whose key is None ('NULLROW')
    table = pd.DataFrame({"k": ["a", None], "name": ["A", "NULLROW"]})
    out = EnrichOperator(table, ["k"], how).process(pd.DataFrame({"k": [None, "a"], "n": [0, 1]}))["out"]
    got = dict(zip(out["n"], out["name"]))
    assert got[1] == "A" and "NULLROW" not in got.values()
    assert (0 in got and pd.isna(got[0])) if how == "left" else (0 not in got)
