"""A join key declared text on one side and a number or a time on the other is refused when the step is
added, naming the step, both types, where each was declared, and the conversion to write.

Before: keys of two types match nowhere (``'1'`` never equals ``1``, in pandas, SQL and the exported
joins), so such an ``enrich`` gave every event missing table columns (an inner one dropped every event)
and such an interval join paired nothing, silently: a CSV table's integer ids against a stream's text ids
is the usual way to get there.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from streamlab import ManualClock, Pipeline
from streamlab.errors import PipelineConfigError
from streamlab.testing import ListSource

EVENT = {"user_id": "7", "n": 7, "amount": 1.5, "timestamp": pd.Timestamp("2024-01-01", tz="UTC")}


def _stream() -> Any:
    return Pipeline(ListSource([EVENT])).stream


@pytest.mark.parametrize(
    ("key", "table_key", "says", "fix"),
    [
        (
            "user_id",
            [7],
            "is string in the stream (declared by step 'source') but int64 in the table",
            "str}",
        ),
        (
            "n",
            ["7"],
            "is int64 in the stream (declared by step 'source') but string in the table",
            "to_numeric",
        ),
        ("amount", ["1.5"], "is float64 in the stream", "to_numeric"),
        ("timestamp", ["2024-01-01"], "is timestamp in the stream", "to_datetime"),
    ],
)
def test_an_enrich_key_of_another_type_than_the_tables_is_refused(
    key: str, table_key: list[Any], says: str, fix: str
) -> None:
    table = pd.DataFrame({key: table_key, "tier": ["gold"]})
    with pytest.raises(PipelineConfigError) as e:
        _stream().enrich(table, key, step_id="tiers")
    assert e.value.step_id == "tiers" and says in e.value.problem, e.value
    assert "no event would match" in e.value.problem and fix in e.value.fix, e.value


def test_an_interval_join_key_of_two_types_is_refused() -> None:
    p = Pipeline()
    left = p.add_source(ListSource([EVENT]), step_id="clicks")
    right = p.add_source(ListSource([{**EVENT, "user_id": 7}]), step_id="orders")
    with pytest.raises(PipelineConfigError) as e:
        left.join_interval(right, "user_id", lower="-1m", upper="1m", step_id="j")
    assert e.value.step_id == "j", e.value
    assert "string on the left (declared by step 'clicks') but int64 on the right" in e.value.problem
    assert "astype(str)" in e.value.fix


@pytest.mark.parametrize(
    ("key", "table_key"),
    [("user_id", ["7"]), ("n", [7.0]), ("n", [True]), ("amount", [1.5]), ("user_id", [None])],
)
def test_keys_of_one_family_or_of_unknown_type_still_enrich(key: str, table_key: list[Any]) -> None:
    s = _stream()
    s.enrich(pd.DataFrame({key: table_key, "tier": ["gold"]}), key, step_id="tiers")
    assert len(s.pipeline.run(clock=ManualClock(0))["tiers"]) == 1
