"""An expression that fails on a batch: ``filter`` and ``with_columns`` set aside exactly the rows it fails
on, and when it fails for its columns' types (``fails_alike``) they set the whole batch aside at once
instead of evaluating it one row at a time (50,000 rows took minutes that way)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streamlab._transforms as transforms
from streamlab._expr import fails_alike
from streamlab._transforms import FilterOperator, MapOperator, isolate_failures


def test_typed_columns_and_operators_fail_alike_anything_else_is_looked_into() -> None:
    frame = pd.DataFrame(
        {
            "country": ["FR", "US"],
            "amount": [1.0, 2.0],
            "n": [1, 2],
            "mixed": pd.Series(["7", 8], dtype=object),
        }
    )
    assert fails_alike(frame, "country > 5")
    assert fails_alike(frame, "amount > 1 and country * 2 == 'x'")
    assert not fails_alike(frame, "mixed > 5")  # an object column: the values' types may differ
    assert not fails_alike(frame, "n ** amount > 1")  # a power fails for negative integer exponents only
    assert not fails_alike(frame, "n & (n / n)")  # & on numbers: NaN among them decides
    assert fails_alike(frame, "(amount > 1) & ~(country == 5) | (n < 2)")
    assert not fails_alike(frame, "amount.astype('int64') > 1")  # a call: NaN fails, numbers do not
    assert not fails_alike(frame, "missing > 1") and not fails_alike(frame, "`amount` > 1")


@pytest.mark.parametrize(
    "make",
    [
        lambda: FilterOperator("f", "country > 5", None, False),
        lambda: MapOperator("m", None, False, {"x": "amount * 2", "y": "country > 5"}),
    ],
)
def test_a_batch_failing_for_its_types_is_set_aside_in_one_call(make: Any, monkeypatch: Any) -> None:
    calls = []
    evaluate = transforms.eval_expression
    monkeypatch.setattr(transforms, "eval_expression", lambda *a: calls.append(1) or evaluate(*a))
    n = 20_000
    batch = pd.DataFrame({"country": np.where(np.arange(n) % 2, "FR", "US"), "amount": np.arange(n) * 1.0})
    res = make().process(batch)
    assert len(res["out"]) == 0 and len(res["dead_letter"]) == n
    assert res["dead_letter"]["reason"].nunique() == 1 and "TypeError" in res["dead_letter"]["reason"][0]
    assert len(calls) <= 2


values = st.one_of(st.integers(-5, 5), st.floats(-5, 5), st.sampled_from(["7", "x"]), st.none())


@settings(max_examples=60, deadline=None)
@given(st.lists(values, min_size=1, max_size=40), st.sampled_from(["v > 1", "v * 2 > 3", "-v < 0"]))
def test_set_aside_rows_are_those_a_row_by_row_search_finds(vs: list[Any], expr: str) -> None:
    """On an object column the search halves the batch as before; ``alike`` only answers for typed ones."""
    batch = pd.DataFrame({"v": pd.Series(vs, dtype=object)})
    op = FilterOperator("f", expr, None, False)
    res = op.process(batch)
    good, bad, _ = isolate_failures(batch, op._mask, op.what, "f")
    kept = sorted(int(i) for pos, mask in good for i in pos[mask])
    dead = res["dead_letter"]["v"].tolist() if "dead_letter" in res else []
    assert dead == batch["v"].iloc[bad].tolist()
    assert res["out"]["v"].tolist() == batch["v"].iloc[kept].tolist()


def typed_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": rng.integers(-3, 3, n),
            "b": rng.normal(size=n).round(1),
            "s": rng.choice(["FR", "US", ""], n),
            "c": pd.Categorical(rng.choice(["x", "y"], n)),
            "t": pd.to_datetime(rng.integers(0, 10**12, n), utc=True),
            "z": rng.random(n) > 0.5,
            "n": pd.array(np.where(rng.random(n) > 0.3, rng.integers(-3, 3, n), 0), dtype="Int64"),
        }
    )


operands = st.sampled_from(["a", "b", "s", "c", "t", "z", "n", "0", "2", "1.5", "'FR'", "True"])
binary = st.sampled_from(["+", "-", "*", "/", "//", "%", ">", "<=", "==", "!=", "&", "|"])
expressions = st.recursive(
    operands,
    lambda inner: st.tuples(inner, binary, inner).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
    max_leaves=4,
)


@settings(max_examples=200, deadline=None)
@given(expressions, st.integers(2, 30), st.integers(0, 2**16))
def test_what_fails_alike_on_a_batch_fails_on_each_of_its_rows(expr: str, n: int, seed: int) -> None:
    """The claim behind the shortcut: on typed columns with operators alone, an expression that fails on a
    batch fails on every row of it (each row alone, its column's dtype kept)."""
    batch = typed_frame(n, seed)
    op = FilterOperator("f", expr, None, False)
    try:
        op._mask(batch)
    except Exception:
        if fails_alike(batch, expr):
            for i in range(n):
                with pytest.raises(Exception):  # noqa: B017 (whatever the whole raised, as each row)
                    op._mask(batch.iloc[[i]])
