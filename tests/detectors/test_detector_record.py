"""``streamlab._detector_record`` (the per-record semantics that exported code carries) against the runtime's
batch operators: random streams, keys, disorder, missing values and batch sizes give equal columns."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlab import _detector_record as rec
from streamlab.detectors import (
    AdaptiveThresholdFilter,
    Detect,
    DistinctCountFeature,
    DriftDetector,
    FixedThresholdFilter,
    GaussianScorerDetector,
    HalfSpaceTreesDetector,
    Pattern,
    PatternStep,
    QuantileThresholdFilter,
    RatioToMedianFeature,
    StandardAbsoluteDeviationDetector,
    ThresholdRule,
    TimeSinceLastFeature,
    VelocityFeature,
    VelocityRule,
    ZScoreFeature,
)

S = 1_000_000_000
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def streams(draw: st.DrawFn, max_disorder_s: int = 30, n_max: int = 60) -> pd.DataFrame:
    """Events in arrival order: keys from a few, times mostly increasing with bounded disorder,
    values with NaN, a few repeated values (for medians and distinct counts)."""
    n = draw(st.integers(1, n_max))
    keys = draw(st.lists(st.sampled_from(["a", "b", "c", "d", "e"]), min_size=n, max_size=n))
    steps = draw(st.lists(st.integers(0, 40), min_size=n, max_size=n))
    jitter = draw(st.lists(st.integers(-max_disorder_s, 0), min_size=n, max_size=n))
    values = draw(
        st.lists(
            st.one_of(st.sampled_from([1.0, 2.0, 0.0, 5.0]), st.floats(-100, 100), st.just(math.nan)),
            min_size=n,
            max_size=n,
        )
    )
    base = np.cumsum(steps)
    times = [int(b + j) * S for b, j in zip(base, jitter)]
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "k": keys,
            "v": values,
            "c": [["FR", "US", "DE", None][int(abs(v)) % 4] if v == v else None for v in values],
            "timestamp": pd.to_datetime(times, utc=True),
        }
    )


def run_batches(op, frame: pd.DataFrame, cuts: list[int], output: str = "out") -> pd.DataFrame:
    """The runtime operator over ``frame`` cut at ``cuts``; one output, concatenated."""
    parts, start = [], 0
    for end in [*sorted(set(c for c in cuts if 0 < c < len(frame))), len(frame)]:
        res = op.process(frame.iloc[start:end].reset_index(drop=True))
        if output in res and len(res[output]):
            parts.append(res[output])
        start = end
    if hasattr(op, "on_end"):
        res = op.on_end()
        if output in res and len(res[output]):
            parts.append(res[output])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def ns(frame: pd.DataFrame) -> list[int]:
    """Event times in nanoseconds, whatever the column's unit (pandas 3 keeps a Timestamp's own)."""
    return frame["timestamp"].dt.as_unit("ns").astype("int64").tolist()


def same(a: list[float], b: list[float], rel: float = 0.0) -> bool:
    return len(a) == len(b) and all(
        (x != x and y != y) or x == y or (rel and math.isclose(x, y, rel_tol=rel, abs_tol=1e-9))
        for x, y in zip(a, b)
    )


cut_lists = st.lists(st.integers(1, 60), max_size=6)


@SETTINGS
@given(streams(), cut_lists, st.sampled_from([5, 60, 600]), st.sampled_from(["0s", "20s", "1h"]))
def test_velocity_feature_and_rule(
    frame: pd.DataFrame, cuts: list[int], window_s: int, lateness: str
) -> None:
    if lateness != "1h":
        cuts = list(range(1, len(frame)))  # beyond lateness the runtime's horizon moves per batch
    step = VelocityFeature("k", window=f"{window_s}s", value="v", allowed_lateness=lateness)
    out = run_batches(step.build(), frame, cuts)
    state = rec.WindowEvents(window_s * S, {"0s": 0, "20s": 20 * S, "1h": 3600 * S}[lateness])
    got = [state.update(k, t, v) for k, t, v in zip(frame["k"], ns(frame), frame["v"])]
    count, total = step.column_names()
    assert [c for c, _ in got] == out[count].astype(int).tolist()
    assert same([s for _, s in got], out[total].tolist(), rel=1e-9)
    rule = VelocityRule("k", window=f"{window_s}s", max_count=2, name="burst", allowed_lateness=lateness)
    ruled = run_batches(rule.build(), frame, cuts)
    alerts = []
    for c, _ in got:
        row: dict[str, object] = {}
        rec.merge_alert(row, "burst", c > 2)
        alerts.append((row["rule"], row["is_alert"]))
    assert alerts == list(zip(ruled["rule"], ruled["is_alert"].tolist()))


@SETTINGS
@given(streams(), cut_lists, st.sampled_from([10, 300]), st.sampled_from(["0s", "1h"]))
def test_distinct_count(frame: pd.DataFrame, cuts: list[int], window_s: int, lateness: str) -> None:
    if lateness != "1h":
        cuts = list(range(1, len(frame)))
    step = DistinctCountFeature("k", "c", window=f"{window_s}s", allowed_lateness=lateness)
    out = run_batches(step.build(), frame, cuts)
    state = rec.DistinctValues(window_s * S, 0 if lateness == "0s" else 3600 * S)
    got = [state.update(k, t, c) for k, t, c in zip(frame["k"], ns(frame), frame["c"])]
    assert got == out[step.column_name()].tolist()


@SETTINGS
@given(streams(), cut_lists, st.integers(1, 6), st.sampled_from([2, 3, 100]))
def test_keyed_features(frame: pd.DataFrame, cuts: list[int], max_keys: int, history: int) -> None:
    if max_keys < 5:
        cuts = list(range(1, len(frame)))  # the runtime forgets keys after each batch
    z = ZScoreFeature("k", "v", max_keys=max_keys)
    r = RatioToMedianFeature("k", "v", history=history, max_keys=max_keys)
    t = TimeSinceLastFeature("k", max_keys=max_keys)
    zs, rs, ts = (
        rec.ZScoreState(max_keys),
        rec.RatioToMedianState(history, max_keys),
        rec.TimeSinceLastState(max_keys),
    )
    keys, values, times = frame["k"].tolist(), frame["v"].tolist(), ns(frame)
    assert same(
        [zs.update(k, v) for k, v in zip(keys, values)],
        run_batches(z.build(), frame, cuts)[z.column_name()].tolist(),
    )
    assert same(
        [rs.update(k, v) for k, v in zip(keys, values)],
        run_batches(r.build(), frame, cuts)[r.column_name()].tolist(),
    )
    assert same(
        [ts.update(k, x) for k, x in zip(keys, times)],
        run_batches(t.build(), frame, cuts)[t.column_name()].tolist(),
    )


@SETTINGS
@given(streams(), cut_lists)
def test_threshold_rules_chain(frame: pd.DataFrame, cuts: list[int]) -> None:
    first = ThresholdRule("big", expr="v > 50")
    second = ThresholdRule("neg", column="v", op="<", value=-50)
    mid = run_batches(first.build(), frame, cuts)
    out = run_batches(second.build(), mid, cuts)
    got = []
    for v in frame["v"]:
        row: dict[str, object] = {}
        rec.merge_alert(row, "big", rec.truthy(v > 50))
        rec.merge_alert(row, "neg", rec.compare_values(v, "<", -50))
        got.append((row["rule"], row["is_alert"]))
    assert got == list(zip(out["rule"], out["is_alert"].tolist()))


def _detect_record(step: Detect, frame: pd.DataFrame) -> tuple[list[object], list[str]]:
    spec = step.describe()
    ttl = None if step.key_ttl is None else pd.Timedelta(step.key_ttl).value
    state = rec.DetectState(
        spec["detector"],
        spec["features"],
        step.key,
        step.learn,
        spec["threshold"],
        step.max_keys,
        ttl,
        step.time,
    )
    results, reasons = [], []
    for row, t in zip(frame.to_dict("records"), ns(frame)):
        res = state.process([row[f] for f in step.features], row.get(step.key) if step.key else None, t)
        (reasons if isinstance(res, str) else results).append(res)
    return results, reasons


detectors = st.sampled_from(
    [
        lambda: HalfSpaceTreesDetector(n_trees=3, height=3, window_size=7, seed=3),
        lambda: GaussianScorerDetector(grace_period=3),
        lambda: StandardAbsoluteDeviationDetector(grace_period=2),
    ]
)
thresholds = st.sampled_from(
    [
        lambda: None,
        lambda: FixedThresholdFilter(0.8),
        lambda: QuantileThresholdFilter(0.9, warmup=5),
        lambda: AdaptiveThresholdFilter(k=1.0, warmup=3),
    ]
)


@SETTINGS
@given(
    streams(),
    cut_lists,
    detectors,
    thresholds,
    st.booleans(),
    st.sampled_from([None, 2, 10]),
    st.sampled_from([None, "30s"]),
)
def test_detect(frame, cuts, make_detector, make_threshold, keyed, max_keys, ttl) -> None:
    threshold = make_threshold()
    if threshold is None and not keyed:
        threshold = FixedThresholdFilter(0.5)
    if isinstance(threshold, AdaptiveThresholdFilter) and not keyed:
        threshold = AdaptiveThresholdFilter(k=1.0, warmup=3, per_key=False)
    learn = "unflagged" if threshold is not None and len(frame) % 2 else "all"
    step = Detect(
        make_detector(),
        features=["v"],
        key="k" if keyed else None,
        learn=learn,
        threshold=threshold,
        max_keys=max_keys or 10_000,
        key_ttl=ttl,
    )
    frame = frame.assign(v=frame["v"].where(frame.index % 7 != 3, np.inf))
    op = step.build()
    out = run_batches(op, frame, cuts)
    dead = run_batches(step.build(), frame, cuts, "dead_letter")
    results, reasons = _detect_record(step, frame)
    assert reasons == (dead["reason"].tolist() if len(dead) else [])
    assert len(results) == len(out)
    if results:
        assert same([s for s, _ in results], out["score"].tolist(), rel=1e-9)
        if threshold is not None:
            assert [f for _, f in results] == out["is_anomaly"].tolist()


@SETTINGS
@given(
    streams(max_disorder_s=20, n_max=40),
    cut_lists,
    st.sampled_from(["0s", "10s", "30s"]),
    st.sampled_from([1, 2]),
)
def test_pattern(frame: pd.DataFrame, cuts: list[int], delay: str, times: int) -> None:
    pattern = Pattern(
        key="k",
        steps=[
            PatternStep("first", "v > 0", times=times),
            PatternStep("second", "v >= 0", differs_from={"c": "first"}),
        ],
        within="60s",
        delay=delay,
    )
    out = run_batches(pattern.build(), frame, cuts)
    late = run_batches(pattern.build(), frame, cuts, "late")
    state = rec.PatternState([(times, {}), (1, {0: 0})], 60 * S, pd.Timedelta(delay).value)
    matches, late_ids = [], []
    for row, t in zip(frame.to_dict("records"), ns(frame)):
        if state.is_late(t):
            late_ids.append(row["event_id"])
            continue
        v = row["v"]
        masks = [rec.truthy(v > 0), rec.truthy(v >= 0)]
        matches += state.add(row["k"], t, masks, row["event_id"], [row["c"]])
    matches += state.finish()
    expected = (
        []
        if out.empty
        else list(
            zip(
                out["k"],
                out["first_time"].astype("int64"),
                out["last_time"].astype("int64"),
                out["event_ids"],
            )
        )
    )
    assert [(k, f, last, ids) for k, f, last, ids in matches] == [
        (k, f, last, list(ids)) for k, f, last, ids in expected
    ]
    assert late_ids == (late["event_id"].tolist() if len(late) else [])


@SETTINGS
@given(
    st.lists(st.one_of(st.floats(0, 1), st.floats(5, 6), st.just(math.nan)), min_size=1, max_size=300),
    cut_lists,
)
def test_drift(values: list[float], cuts: list[int]) -> None:
    frame = pd.DataFrame({"x": values, "timestamp": pd.to_datetime(np.arange(len(values)) * S, utc=True)})
    op = DriftDetector(column="x", method="adwin", params={"clock": 4}).build()
    drift = run_batches(op, frame, cuts, "drift")
    state = rec.DriftState("adwin", {"clock": 4})
    got = [n for n in (state.update(v) for v in values) if n is not None]
    assert got == (drift["n_seen"].tolist() if len(drift) else [])


def test_module_is_self_contained() -> None:
    """Exporters copy it into generated code: it imports the standard library only (river lazily), and
    ``streamlab._record``, whose code every generated module carries (``_plan.snippet_source``)."""
    tree = ast.parse(Path(rec.__file__).read_text())
    top = {a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    top |= {n.module for n in tree.body if isinstance(n, ast.ImportFrom) and n.module}
    allowed = {"__future__", "bisect", "heapq", "math", "collections", "typing", "streamlab._record"}
    assert top <= allowed, top
