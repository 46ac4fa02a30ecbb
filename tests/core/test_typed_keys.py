"""Window and session keys are told apart by type: a ``json`` field's ``true``, ``1`` and ``1.0`` are three
keys, as in the exported code (Beam groups by the encoded key), although Python holds them equal.

They used to be one key (its first value), so counts merged and differed from the exported job's.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import ListSink, Pipeline, SessionWindow, TumblingWindow, agg
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
