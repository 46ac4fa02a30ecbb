"""Joins whose key columns hold values that cannot be keys (a dict, a list: a ``json`` field, records of
a ``ListSource``): such a row matches nothing, as a key the other side lacks, instead of failing the
batch on every restart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from streamlab._joins import EnrichOperator, IntervalJoinOperator

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
    hashable = [i for i, k in enumerate(KEYS) if not isinstance(k, (dict, list))]
    want = left.iloc[hashable].merge(right[right["k"].map(lambda k: not isinstance(k, (dict, list)))], on="k")
    assert sorted(zip(pairs["l"], pairs["r"])) == sorted(zip(want["l"], want["r"]))
    assert len(pairs) > 0
