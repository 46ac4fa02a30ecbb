"""Benchmark of streamlab.detectors against a bare river loop, and of the vectorized velocity rule.

Run: ``python benchmarks/bench_detectors.py [--events 20000] [--batch 1000]``

1. ``VelocityFeature -> Detect(HalfSpaceTreesDetector) -> QuantileThresholdFilter`` through the
   operators, versus ``for x in rows: s = m.score_one(x); m.learn_one(x)`` on the same feature
   dicts with the same river model and seed. Both must give identical scores; the overhead of
   the operator path (features, dict building, per-key bookkeeping, threshold) is printed
   (target: <= 10%). The fixed per-batch cost of the pandas steps weighs more on small batches,
   so the pipeline runs at two batch sizes.
2. ``VelocityRule`` over 10k keys in batches of 100k events (target: >= 1M events/s).

Not a test: a script that prints numbers and exits non-zero when scores differ.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import pandas as pd
from river import anomaly, preprocessing

from streamlab import ListSink, ManualClock, Pipeline, ReplaySource
from streamlab.detectors import (
    Detect,
    HalfSpaceTreesDetector,
    QuantileThresholdFilter,
    VelocityFeature,
    VelocityRule,
)

T0 = pd.Timestamp("2024-01-01", tz="UTC").value


def make_events(n: int, n_keys: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "event_id": np.arange(n),
            "user_id": rng.integers(0, n_keys, n),
            "amount": rng.gamma(2.0, 20.0, n),
            "timestamp": pd.to_datetime(T0 + np.sort(rng.integers(0, 6 * 3600 * 10**9, n)), utc=True),
        }
    )


def bench_pipeline(n: int, batch: int, repeats: int) -> bool:
    df = make_events(n, n_keys=1000)
    feature = VelocityFeature("user_id", window="10m", value="amount")
    features = ["amount", *feature.column_names()]
    detect = Detect(
        HalfSpaceTreesDetector(seed=42),
        features=features,
        threshold=QuantileThresholdFilter(q=0.99, warmup=500),
    )
    # the bare loop gets the same feature values, prepared outside its timing
    feats = feature.build().process(df)["out"]
    rows = [dict(zip(features, r)) for r in feats[features].to_numpy(dtype="float64").tolist()]

    best_ops, best_bare, best_detect, best_runtime = (float("inf"),) * 4
    runtime_scores: list[float] = []
    ops_scores: list[float] = []
    bare_scores: list[float] = []
    for _ in range(repeats):
        # operator path: features -> detect (score, learn, threshold), batch by batch
        fop, dop = feature.build(), detect.build()
        start = time.process_time()
        outs = [dop.process(fop.process(df.iloc[a : a + batch])["out"])["out"] for a in range(0, n, batch)]
        best_ops = min(best_ops, time.process_time() - start)
        ops_scores = pd.concat(outs)["score"].tolist()

        m = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=42)
        start = time.process_time()
        scores = []
        for x in rows:
            s = m.score_one(x)
            m.learn_one(x)
            scores.append(s)
        best_bare = min(best_bare, time.process_time() - start)
        bare_scores = scores

        # the detect step alone on precomputed features isolates its own overhead
        dop = detect.build()
        parts = [feats.iloc[a : a + batch] for a in range(0, n, batch)]
        start = time.process_time()
        for p in parts:
            dop.process(p)
        best_detect = min(best_detect, time.process_time() - start)

        # the same steps as a pipeline through the runtime: replay -> features -> detect -> threshold
        pipe = Pipeline(ReplaySource(df, batch_size=batch), name="bench")
        scored = pipe.stream.apply(feature).detect(
            HalfSpaceTreesDetector(seed=42),
            features=features,
            threshold=QuantileThresholdFilter(q=0.99, warmup=500),
        )
        sink = ListSink()
        scored.to(sink)
        start = time.process_time()
        pipe.run(clock=ManualClock(0), batch_size=batch)
        best_runtime = min(best_runtime, time.process_time() - start)
        runtime_scores = sink.frame()["score"].tolist()

    same = ops_scores == bare_scores == runtime_scores
    overhead = best_ops / best_bare - 1
    print(f"pipeline, {n} events, batches of {batch}, best of {repeats}:")
    print(f"  bare river loop          {n / best_bare:12,.0f} events/s")
    print(f"  streamlab operators      {n / best_ops:12,.0f} events/s")
    print(f"  overhead                 {overhead:12.1%}   (target <= 10%)")
    print(
        f"  streamlab runtime        {n / best_runtime:12,.0f} events/s   "
        f"({best_runtime / best_bare - 1:.1%} overhead: replay -> features -> detect -> threshold)"
    )
    print(
        f"  detect step alone        {n / best_detect:12,.0f} events/s   ({best_detect / best_bare - 1:.1%} overhead)"
    )
    print(f"  identical scores         {same}")
    return same


def bench_velocity_rule(n: int, repeats: int) -> None:
    df = make_events(n, n_keys=10_000, seed=1)
    rule = VelocityRule("user_id", window="1m", max_count=5, name="burst")
    batch = 100_000
    parts = [df.iloc[a : a + batch] for a in range(0, n, batch)]
    best = float("inf")
    alerts = 0
    for _ in range(repeats):
        op = rule.build()
        start = time.process_time()
        alerts = sum(int(op.process(p)["out"]["is_alert"].sum()) for p in parts)
        best = min(best, time.process_time() - start)
    print(f"velocity rule, {n} events over 10k keys, batches of {batch}, best of {repeats}:")
    print(f"  throughput               {n / best:12,.0f} events/s   (target >= 1,000,000)")
    print(f"  alerts                   {alerts:12,d}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="events for the detector pipeline")
    parser.add_argument(
        "--batch", type=int, nargs="+", default=[1_000, 5_000], help="micro-batch sizes of the pipeline"
    )
    parser.add_argument("--rule-events", type=int, default=2_000_000, help="events for the velocity rule")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    same = all([bench_pipeline(args.events, size, args.repeats) for size in args.batch])
    bench_velocity_rule(args.rule_events, args.repeats)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
