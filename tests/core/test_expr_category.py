"""Expressions on a ``category`` field compare its values, as on a ``string`` field (tester4 finding 54):
``event_type >= 'p'`` sent every row to dead letter ("Unordered Categoricals can only compare equality")."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import Pipeline
from streamlab._expr import eval_condition, eval_expression
from streamlab._transforms import FilterOperator, MapOperator
from streamlab.testing import ListSource


@pytest.mark.parametrize("typ", ["string", "category"])
def test_the_reported_filter_keeps_the_same_rows_for_both_types(typ: str) -> None:
    lines = [
        json.dumps({"event_type": t, "timestamp": "2024-01-01T00:00:00Z"})
        for t in ("click", "purchase", "view")
    ]
    p = Pipeline(ListSource(lines))
    f = p.parse({"event_type": typ, "timestamp": "timestamp"}).filter("event_type >= 'p'")
    r = p.run()
    assert r[f.ref]["event_type"].tolist() == ["purchase", "view"]
    assert len(r[f"{f.ref}.dead_letter"]) == 0


texts = st.lists(
    st.one_of(st.none(), st.sampled_from(["a", "b", "click", "purchase", "view", ""])),
    min_size=1,
    max_size=12,
)
EXPRESSIONS = [
    "v >= 'p'",
    "v < 'c' or v == 'view'",
    "v > 'a' and v != 'b'",
    "~(v <= 'click')",
    "v + '_x' == 'a_x'",
    "v.str.len() > 1",
    "v in ['a', 'view']",
]


def parsed(values: list[str | None], typ: str) -> pd.DataFrame:
    """A batch of the field ``v`` as the parse step makes it (``string`` or ``category``)."""
    p = Pipeline(ListSource([json.dumps({"v": v, "timestamp": 0}) for v in values]))
    s = p.parse({"v": typ, "timestamp": "timestamp"})
    return p.run()[s.ref][["v"]]


@settings(max_examples=40, deadline=None)
@given(values=texts, expr=st.sampled_from(EXPRESSIONS))
def test_category_and_string_fields_give_the_same_results(values: list[str | None], expr: str) -> None:
    as_string, as_category = parsed(values, "string"), parsed(values, "category")
    assert isinstance(as_category["v"].dtype, pd.CategoricalDtype)
    kept = [
        FilterOperator("f", expr, None, False).process(b)["out"]["v"].astype(object).tolist()
        for b in (as_string, as_category)
    ]
    # a missing text is None in pandas 2's object column (a string field there), NaN in a category
    assert [None if pd.isna(v) else v for v in kept[0]] == [None if pd.isna(v) else v for v in kept[1]]
    conditions = [eval_condition(b, expr) for b in (as_string, as_category)]
    pd.testing.assert_series_equal(conditions[0], conditions[1], check_dtype=False)


def test_a_copy_keeps_the_category_storage_and_ordered_categories_keep_their_order() -> None:
    batch = pd.DataFrame({"v": pd.Categorical(["b", "a"])})
    out = MapOperator("m", None, False, {"w": "v", "big": "v > 'a'"}).process(batch)["out"]
    assert isinstance(out["w"].dtype, pd.CategoricalDtype) and out["big"].tolist() == [True, False]
    ordered = pd.DataFrame({"v": pd.Categorical(["low", "high"], categories=["low", "high"], ordered=True)})
    assert eval_expression(ordered, "v > 'low'").tolist() == [False, True]  # by the declared order
