"""A keyed ``Detect`` keeps each key's model across a batch whose every row goes to dead letter.

Such a batch (e.g. one row with a missing key, what batches of one row give) rebuilt the vectorized
detectors' key table from its models. When every key then was a bool or a ``json`` float (all tagged
as ``(type, value)`` tuples), pandas made that index a ``MultiIndex``, whose levels merge ``1.0`` with
``True``: on pandas 2 the key ``1.0`` was not found again and started a fresh model, so its scores
differed from the per-record code of the exported jobs.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
import pytest

from streamlab.detectors import Detect

from .test_typed_keys import per_record, steps

KEYS: list[Any] = [True, 1, 1.0, "1", False, 0, 0.0, 2.5]


def frame(keys: list[Any]) -> pd.DataFrame:
    n = len(keys)
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "k": pd.Series(keys, dtype=object),
            "v": [float(i % 3) for i in range(n)],
            "timestamp": pd.to_datetime(np.zeros(n, dtype=np.int64), utc=True),
        }
    )


def one_row_at_a_time(step: Detect, events: pd.DataFrame) -> list[dict[str, Any]]:
    op = step.build()
    out = []
    for i in range(len(events)):
        got = op.process(events.iloc[i : i + 1].reset_index(drop=True)).get("out")
        if got is not None:
            out += got.drop(columns=["k", "v", "timestamp"]).to_dict("records")
    return out


@pytest.mark.parametrize("name", ["gaussian", "trees"])
def test_each_key_keeps_its_model_across_a_batch_of_dead_letters(name: str) -> None:
    step = steps()[name]  # json keys, as in test_typed_keys
    for a, b in itertools.product(KEYS, repeat=2):
        events = frame([a, b, a, b, a, None, *[a, b] * 4, None, b])
        got = one_row_at_a_time(step, events)
        want = per_record(step, events)
        assert [r["event_id"] for r in got] == [r["event_id"] for r in want], (a, b)
        assert np.allclose([r["score"] for r in got], [r["score"] for r in want]), (a, b, got, want)
        assert [r.get("is_anomaly") for r in got] == [r.get("is_anomaly") for r in want], (a, b)


def test_the_key_table_keeps_tagged_keys_as_elements() -> None:
    """The table read back after the rebuild holds the keys as they went in (no ``MultiIndex``)."""
    op = steps()["gaussian"].build()
    for keys in ([True], [1.0], [None], [1.0]):
        op.process(frame(keys))
    assert op.table is not None and not isinstance(op.table.index, pd.MultiIndex)
    assert list(op.table.to_models()) == [(bool, True), (float, 1.0)]
    assert [type(k[1]) for k in op.table.to_models()] == [bool, float]
