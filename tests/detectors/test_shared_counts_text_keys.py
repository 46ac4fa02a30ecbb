"""``SharedCounts`` on text keys held as Python strings (pandas 2's text columns, a ``json`` field of text):
a ``VelocityRule`` after its ``VelocityFeature`` takes the feature's counts there too.

Only Arrow-backed text (pandas 3's ``str``) and int64 keys identified a batch, so on pandas 2 every rule
on text keys counted its windows again. Keys of other types among objects still count apart: ``True``,
``1`` and ``1.0`` are equal in Python but three keys.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from streamlab.detectors import VelocityFeature, VelocityRule
from streamlab.detectors._windowcount import SHARED_COUNTS, SharedCounts, WindowCounter

T0 = pd.Timestamp("2024-01-01", tz="UTC").value
S = 1_000_000_000


def frame(keys: list[Any]) -> pd.DataFrame:
    n = len(keys)
    return pd.DataFrame(
        {
            "user_id": pd.Series(keys, dtype=object),
            "timestamp": pd.to_datetime(T0 + np.arange(n) * 7 * S, utc=True),
            "amount": np.ones(n),
        }
    )


def test_a_rule_on_text_objects_takes_the_features_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    hits: list[bool] = []
    take = SHARED_COUNTS.take

    def counted_take(counter: WindowCounter, token: Any, times: np.ndarray) -> np.ndarray | None:
        got = take(counter, token, times)
        hits.append(got is not None)
        return got

    monkeypatch.setattr(SHARED_COUNTS, "take", counted_take)
    feature = VelocityFeature("user_id", window="1m", value="amount").build()
    rule = VelocityRule("user_id", window="1m", max_count=2, name="burst").build()
    alone = VelocityRule("user_id", window="1m", max_count=2, name="burst").build()
    keys = ["a", "b", "a", "\ud800", "a", "b", "\udfff", "a"]
    for part in (keys[:3], keys[3:4], keys[4:]):
        batch = feature.process(frame(part))["out"]
        got = rule.process(batch)["out"]
        with monkeypatch.context() as counting_alone:
            counting_alone.setattr(SharedCounts, "token", staticmethod(lambda keys: None))
            want = alone.process(batch)["out"]
        pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert hits == [True, True, True]


@pytest.mark.parametrize(
    "keys",
    [["a", "b"], np.array(["a", "b"], dtype=object)],
    ids=["series", "array"],
)
def test_text_objects_identify_a_batch(keys: Any) -> None:
    column = pd.Series(keys, dtype=object) if isinstance(keys, list) else keys
    token = SharedCounts.token(column)
    assert token is not None and token.tolist() == ["a", "b"]
    assert token is not getattr(column, "values", column)  # a copy: a later write to the column is no match


@pytest.mark.parametrize("keys", [[True, "a"], [1, "a"], [1.0, "a"], [None, "a"], ["a", np.nan]])
def test_objects_other_than_text_identify_no_batch(keys: list[Any]) -> None:
    """``True == 1 == 1.0``: compared by value, such batches would take counts of other keys."""
    assert SharedCounts.token(pd.Series(keys, dtype=object)) is None
