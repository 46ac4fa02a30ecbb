"""What pandas 2 (Python 3.10's newest is 2.3) does differently from pandas 3, and streamlab must not pass on.

Each test holds on both: CI runs pandas 3, where the old code passed too; under pandas 2 each failed
(or crashed) before its fix.
"""

from __future__ import annotations

import gc
import json

import numpy as np
import pandas as pd
import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab._compat import inferred_kind
from streamlab._keytable import KeyIndex
from streamlab.testing import ListSink, ListSource

T0 = "2024-01-01T00:00:0{}Z"


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        ([1.5, None], "floating"),  # pandas 2: "mixed-integer-float", as for ints beside floats
        ([None, 1.5, float("nan")], "floating"),
        ([1, 2.5, None], "mixed-integer-float"),
        ([1, 1.0], "mixed-integer-float"),
        ([1, None], "integer"),
        (["a", None], "string"),
    ],
)
def test_inferred_kind_is_pandas_3s_answer(values: list[object], kind: str) -> None:
    assert inferred_kind(pd.Series(values, dtype=object)) == kind
    assert inferred_kind(np.array(values, dtype=object)) == kind


def test_a_float_key_beside_a_missing_one_makes_a_float_key_column() -> None:
    """pandas 2 read the keys ``[None, 1.5, 2.5]`` as ints and floats together: the window's key column
    was ``object`` holding None, where pandas 3 gives float64 with NaN."""
    records = [{"k": k, "timestamp": T0.format(i)} for i, k in enumerate([1.5, None, 2.5])]
    p = Pipeline(ListSource([json.dumps(r).encode() for r in records]))
    sink = ListSink()
    p.parse({"k": "json", "timestamp": "timestamp"}).window(TumblingWindow("1m"), key="k").agg(
        agg.count()
    ).to(sink)
    p.run()
    keys = sink.frame()["k"]
    assert keys.dtype == np.float64
    assert sorted(keys.fillna(-1.0).tolist()) == [-1.0, 1.5, 2.5]


def test_released_object_keys_leave_nothing_dangling_in_the_hash_table() -> None:
    """pandas 2's object hash table keeps no reference to its keys: a released key, freed, left a
    dangling pointer that the table's next lookup or growth read (a segmentation fault)."""
    index = KeyIndex(1)
    for r in range(60):
        keys = np.array([10**20 + 7 * r + i for i in range(40)] + [None], dtype=object)
        ids = index.ids_for(keys)
        index.hold(ids)
        index.release(ids)
        del keys  # its ints are freed here (reference counting; no cycle waits for the collector)
        gc.collect(0)
        again = np.array([10**20 + 7 * r + i for i in range(40)], dtype=object)
        assert (index.lookup(again) == -1).all()
    kept = np.array([10**20 + 1, 2**64], dtype=object)
    ids = index.ids_for(kept)
    assert index.lookup(np.array([2**64, 10**20 + 1], dtype=object)).tolist() == ids[::-1].tolist()


@pytest.mark.parametrize("batch_size", [1, 2, 4])
def test_text_computed_from_text_has_the_type_of_the_text_it_came_from(batch_size: int) -> None:
    # on pandas 2.3 a column whose .str methods an expression reads is evaluated as pandas 3's text (a
    # missing string's test is False); what it computes went out in that type, where every other text
    # column is objects: batches of one run had two text types, and their concat warned
    from streamlab import ListSink, ListSource, ManualClock, Pipeline

    rows = [{"s": s, "n": n} for s, n in (("ab", 1), (None, 2), ("c", 3), (None, 4))]
    p = Pipeline(ListSource(rows, batch_size=batch_size))
    out = ListSink()
    p.stream.with_columns(u="s.str.upper()").filter("s.str.len() > 1 or n > 2").to(out)
    p.run(clock=ManualClock(0))
    assert [b["u"].dtype == b["s"].dtype for b in out.batches] == [True] * len(out.batches)
    assert out.frame()["u"].tolist()[:2] == ["AB", "C"] and out.frame()["u"].isna().tolist()[2]
