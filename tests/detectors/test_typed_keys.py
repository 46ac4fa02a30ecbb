"""Keyed features, rules, detectors and patterns tell keys apart by value and type, as windows do: a
``json`` field's ``true``, ``1`` and ``1.0`` are three keys (Python holds them equal), as in the exported
jobs, which run ``streamlab._detector_record`` per key (Beam keys its state by the key's JSON text).

They used to be one key, so a ``true`` key's velocity counted the ``1`` events, and streamlab's columns
differed from the exported job's. Values a distinct count or ``differs_from`` compares stay compared as
Python compares them (``true``, ``1`` and ``1.0`` are one value), as ``agg.count_distinct`` counts them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlab import _detector_record as rec
from streamlab.detectors import (
    AdaptiveThresholdFilter,
    Detect,
    DistinctCountFeature,
    GaussianScorerDetector,
    HalfSpaceTreesDetector,
    Pattern,
    PatternStep,
    RatioToMedianFeature,
    TimeSinceLastFeature,
    VelocityFeature,
    VelocityRule,
    ZScoreFeature,
)
from streamlab.export._detectors import row_step_spec
from streamlab.export._snippets import eval_expr

S = 1_000_000_000
KEYS = [True, 1, 1.0, "1", None, False, 0, 0.0]
VALUES = ["a", True, 1, 1.0, "1", None]
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def steps() -> dict[str, Any]:
    """One step of each keyed kind, keyed by the json column ``k``."""
    return {
        "velocity": VelocityFeature("k", window="1h", value="v"),
        "burst": VelocityRule("k", window="1h", max_count=2, name="burst"),
        "zscore": ZScoreFeature("k", "v"),
        "ratio": RatioToMedianFeature("k", "v", history=4),
        "since": TimeSinceLastFeature("k"),
        "distinct": DistinctCountFeature("k", "c", window="1h"),
        "gaussian": Detect(
            GaussianScorerDetector(grace_period=1),
            features=["v"],
            key="k",
            threshold=AdaptiveThresholdFilter(k=0.5, warmup=2),
            key_ttl=None,
        ),
        "trees": Detect(
            HalfSpaceTreesDetector(n_trees=2, height=2, window_size=4, seed=1),
            features=["v"],
            key="k",
            key_ttl=None,
        ),
        "pattern": Pattern(
            key="k",
            steps=[PatternStep("first", "v > 0"), PatternStep("second", "v >= 0")],
            within="1h",
            delay="0s",
        ),
    }


def label(value: Any) -> Any:
    """A key as text naming its type: what the key means when told apart by type (None stays None)."""
    return None if value is None else f"{type(value).__name__}:{value!r}"


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(1, 30))
    keys = draw(st.lists(st.sampled_from(KEYS), min_size=n, max_size=n))
    values = draw(st.lists(st.sampled_from([1.0, 2.0, 5.0, -1.0, 0.5]), min_size=n, max_size=n))
    seen = draw(st.lists(st.sampled_from(VALUES), min_size=n, max_size=n))
    steps_s = draw(st.lists(st.integers(0, 30), min_size=n, max_size=n))
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "k": pd.Series(keys, dtype=object),
            "v": values,
            "c": pd.Series(seen, dtype=object),
            "timestamp": pd.to_datetime(np.cumsum(steps_s) * S, utc=True),
        }
    )


def run(step: Any, frame: pd.DataFrame, size: int, output: str = "out") -> pd.DataFrame:
    """The step's runtime operator over ``frame`` in batches of ``size`` rows; one output, concatenated."""
    op = step.build()
    parts = []
    for start in range(0, len(frame), size):
        res = op.process(frame.iloc[start : start + size].reset_index(drop=True))
        parts.append(res.get(output))
    if hasattr(op, "on_end"):
        parts.append(op.on_end().get(output))
    parts = [p for p in parts if p is not None and len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def added(step: Any, out: pd.DataFrame, frame: pd.DataFrame, named: bool = False) -> list[dict[str, Any]]:
    """The rows a step outputs, as records: the columns it adds (the whole match for a pattern, its key
    as :func:`label` names it, unless the keys are ``named`` so already)."""
    if out.empty:
        return []
    if isinstance(step, Pattern):
        matches = out.assign(
            k=out["k"] if named else out["k"].map(label), event_ids=out["event_ids"].map(list)
        )
        return matches.to_dict("records")
    columns = [c for c in out.columns if c not in frame.columns]
    return out[["event_id", *columns]].to_dict("records")


def same(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> bool:
    def norm(v: Any) -> Any:
        if isinstance(v, (float, np.floating)):
            return "nan" if v != v else round(float(v), 9)
        return v

    return [{k: norm(v) for k, v in r.items()} for r in a] == [{k: norm(v) for k, v in r.items()} for r in b]


@SETTINGS
@given(frames())
@pytest.mark.parametrize("name", list(steps()))
def test_json_keys_of_equal_value_and_other_types_are_other_keys(name: str, frame: pd.DataFrame) -> None:
    """Each step on the json keys gives what it gives on keys naming their type (``"bool:True"``,
    ``"int:1"``, ...), in batches of one row and in one batch; a missing key goes to dead letter."""
    step = steps()[name]
    labelled = frame.assign(k=pd.Series(frame["k"].map(label).tolist(), dtype=object))
    want = added(step, run(step, labelled, len(frame)), frame, named=True)
    for size in (1, len(frame)):
        got = added(step, run(step, frame, size), frame)
        assert same(got, want), (size, got, want)
        dead = run(step, frame, size, "dead_letter")
        assert (dead["event_id"].tolist() if len(dead) else []) == frame["event_id"][
            frame["k"].isna()
        ].tolist()


def per_record(step: Any, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The step's per-record state machine (what the exported jobs run) over the rows, in order."""
    machine = rec.make_step(
        row_step_spec(step, "step"),
        eval_expr,
        lambda v: pd.Timestamp(v).value,
        lambda ns: pd.Timestamp(ns, tz="UTC"),
    )
    rows = frame.to_dict("records")
    outputs = [o for row in rows for o in machine.process(row)] + machine.finish()
    return [r for name, r in outputs if name == "out"]


@SETTINGS
@given(frames())
@pytest.mark.parametrize("name", list(steps()))
def test_the_per_record_steps_tell_the_keys_apart_as_streamlab_does(name: str, frame: pd.DataFrame) -> None:
    """``streamlab._detector_record`` (copied into the exported jobs) gives streamlab's columns on json
    keys, in batches of one row and in one batch."""
    step = steps()[name]
    records = per_record(step, frame)
    if isinstance(step, Pattern):
        want = [{**r, "k": label(r["k"])} for r in records]
    else:
        columns = [c for c in records[0] if c not in frame.columns] if records else []
        want = [{"event_id": r["event_id"], **{c: r[c] for c in columns}} for r in records]
    for size in (1, len(frame)):
        got = added(step, run(step, frame, size), frame)
        assert same(got, want), (size, got, want)


def test_true_one_and_one_point_zero_are_three_keys_and_one_distinct_value() -> None:
    """The example of the docs: three keys for velocity; one distinct value of ``c`` for a key."""
    frame = pd.DataFrame(
        {
            "event_id": ["e0", "e1", "e2", "e3", "e4"],
            "k": pd.Series([True, 1, 1.0, "1", True], dtype=object),
            "v": [1.0] * 5,
            "c": pd.Series([True, 1, 1.0, "1", 1], dtype=object),
            "timestamp": pd.to_datetime(np.arange(5) * S, utc=True),
        }
    )
    velocity = run(VelocityFeature("k", window="1h"), frame, 5)
    assert velocity["count_1h"].tolist() == [1, 1, 1, 1, 2]
    distinct = run(DistinctCountFeature("k", "c", window="1h"), frame, 5)
    assert distinct.iloc[:, -1].tolist() == [1, 1, 1, 1, 1]  # the key true saw true, then 1: one value
    one_key = frame.assign(k="x")
    assert run(DistinctCountFeature("k", "c", window="1h"), one_key, 5).iloc[:, -1].tolist() == [
        1,
        1,
        1,
        2,
        2,
    ]


@SETTINGS
@given(frames())
def test_a_standalone_per_key_threshold_keeps_json_keys_apart(frame: pd.DataFrame) -> None:
    """``AdaptiveThresholdFilter(key=...)`` on its own keeps statistics per key told apart by type."""
    step = AdaptiveThresholdFilter(k=0.5, key="k", warmup=2)
    scored = frame.assign(score=frame["v"]).dropna(subset=["k"]).reset_index(drop=True)
    labelled = scored.assign(k=pd.Series(scored["k"].map(label).tolist(), dtype=object))
    for size in (1, max(len(scored), 1)):
        got = run(step, scored, size)
        want = run(step, labelled, size)
        assert (got["is_anomaly"].tolist() if len(got) else []) == (
            want["is_anomaly"].tolist() if len(want) else []
        )


_NUMERIC_KEYS = {"int": [1, 3, 2**53 + 1], "float": [1.0, 3.0, 2.0**53]}


def python_class(key: Any) -> str:
    """A numeric key as text equal for keys Python holds equal (``1 == 1.0``, ``2**53 + 1 != 2.0**53``)."""
    return str(int(key))


@st.composite
def numeric_key_batches(draw: st.DrawFn) -> list[pd.DataFrame]:
    """Batches whose key column is int64 in some and float64 in others (a float64 column is not tagged)."""
    batches, t = [], 0
    for b in range(draw(st.integers(1, 6))):
        n = draw(st.integers(1, 4))
        keys = draw(
            st.lists(
                st.sampled_from(_NUMERIC_KEYS[draw(st.sampled_from(["int", "float"]))]),
                min_size=n,
                max_size=n,
            )
        )
        times = t + np.cumsum(draw(st.lists(st.integers(0, 30), min_size=n, max_size=n)))
        t = int(times[-1])
        batches.append(
            pd.DataFrame(
                {
                    "event_id": [f"e{b}_{i}" for i in range(n)],
                    "k": pd.Series(keys),
                    "v": draw(st.lists(st.sampled_from([1.0, 2.0, 5.0, -1.0]), min_size=n, max_size=n)),
                    "c": pd.Series(
                        draw(st.lists(st.sampled_from(VALUES), min_size=n, max_size=n)), dtype=object
                    ),
                    "timestamp": pd.to_datetime(times * S, utc=True),
                }
            )
        )
    return batches


@SETTINGS
@given(numeric_key_batches())
@pytest.mark.parametrize("name", [n for n in steps() if n != "pattern"])
def test_numeric_keys_of_a_column_changing_dtype_are_the_keys_python_holds_equal(
    name: str, batches: list[pd.DataFrame]
) -> None:
    """An int64 key column in one batch and a float64 one in another: one key where Python holds the
    values equal (1 and 1.0), two where it does not (``2**53 + 1`` and ``2.0**53``), in every keyed step.
    pandas' lookups across dtypes cast the int to a float: the velocity and distinct counts stored both
    in one float64 index and the next batch raised ``InvalidIndexError``; the other steps merged the keys."""
    step = steps()[name]
    op = step.build()
    got = [added(step, op.process(batch)["out"], batch, named=True) for batch in batches]
    frame = pd.concat(batches, ignore_index=True)
    named = frame.assign(
        k=pd.Series([python_class(k) for b in batches for k in b["k"].tolist()], dtype=object)
    )
    want = added(step, run(step, named, len(named)), frame, named=True)
    assert same([r for rows in got for r in rows], want)
