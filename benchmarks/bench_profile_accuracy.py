"""Accuracy of profile(): the late fraction it predicts at its suggested settings against a full run.

Streams with known disorder: synthetic Poisson arrivals whose event times trail arrival by an
exponential, uniform or Pareto delay, over 1, 4 or 8 partitions (with a skewed partition), the clickstream
generator at several disorder and late shares, and the bundled datasets. For each, ``profile`` reads
the first ``--sample`` events (window: 1 min tumbling), and the whole stream then runs through a window
step with the suggested ``delay`` and ``lateness`` (one watermark per partition). Target: predicted within
±20 % (relative) or ±0.1 percentage point of the full run. Also checks that the inferred types equal the
generator's. Run: ``python benchmarks/bench_profile_accuracy.py``.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
from streamlab.datasets import dataset_path, generate_clickstream, to_json_lines

from streamlab import ManualClock, ReplaySource, TumblingWindow, profile
from streamlab.testing import ListSource

S = 1_000_000_000


def synthetic(n: int, dist: str, partitions: int, seed: int, idle_after: float | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(0.01 * S, n)).astype(np.int64) + 1_704_067_200 * S
    if dist == "exponential":
        delay = rng.exponential(2 * S, n)
    elif dist == "uniform":
        delay = rng.uniform(0, 10 * S, n)
    else:  # pareto: a heavy tail
        delay = (rng.pareto(2.5, n) + 1) * 0.5 * S
    ts = arrival - delay.astype(np.int64)
    weights = np.arange(1, partitions + 1, dtype=float)
    part = rng.choice(partitions, n, p=weights / weights.sum())
    if idle_after is not None:  # the last partition falls silent after this share of the stream
        stop = int(n * idle_after)
        part[stop:] = np.where(part[stop:] == partitions - 1, part[stop:] % (partitions - 1), part[stop:])
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "k": rng.choice(["a", "b", "c"], n),
            "timestamp": pd.to_datetime(ts, utc=True),
            "partition": part,
        }
    )


def full_run_late(source: object, prof: object, key: str | None, delay: str | None = None) -> float:
    """Late share of a whole run with the profile's settings (or another ``delay``, lateness 0)."""
    p = prof.pipeline(TumblingWindow("1m"), key=key, source=source, dedup=False)  # type: ignore[attr-defined]
    if delay is not None:
        import dataclasses

        from streamlab._time import parse_duration

        step = p.steps["window"]
        p.steps["window"] = dataclasses.replace(step, delay_ns=parse_duration(delay), lateness_ns=0)
    start = 0
    if isinstance(source, ReplaySource) and source.speed is not None:
        start = int(source.release_times()[0])
    result = p.run(clock=ManualClock(start), batch_size=5_000)
    late = result.outputs.get("window.late", pd.DataFrame())
    return len(late) / max(result.metrics["steps"]["window"]["in"], 1)


def within(predicted: float, actual: float) -> bool:
    return abs(predicted - actual) <= max(0.2 * actual, 0.001)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--sample", type=int, default=50_000)
    ap.add_argument("--idle-events", type=int, default=40_000)
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="tiny streams, bundled datasets left out: checks that every case runs and reports, not accuracy",
    )
    args = ap.parse_args(argv)
    if args.smoke:
        args.events, args.sample, args.idle_events = 4_000, 2_000, 4_000
    table = accuracy_table(args.events, args.sample, args.idle_events, bundled=not args.smoke)
    print()
    print(f"{args.events:,} events per stream, profile sample {args.sample:,}, 1 min tumbling windows")
    print("| " + " | ".join(table.columns) + " |")
    print("|" + "---|" * len(table.columns))
    for rec in table.itertuples(index=False):
        print("| " + " | ".join(map(str, rec)) + " |")
    return 0 if args.smoke or (table["within target"] == "yes").all() else 1


def accuracy_table(events: int, sample: int, idle_events: int, bundled: bool = True) -> pd.DataFrame:
    """One row per stream: the profile's suggestion, its predicted late share and the full run's."""
    rows = []
    cases: list[tuple[str, object, str | None]] = []
    for dist in ("exponential", "uniform", "pareto"):
        for parts in (1, 4, 8):
            frame = synthetic(events, dist, parts, seed=parts)
            if parts == 1:
                frame = frame.drop(columns=["partition"])
            cases.append((f"synthetic {dist} delay, {parts} partition(s)", ListSource(frame), "k"))
    for disorder, late in (("2s", 0.0), ("5s", 0.01), ("20s", 0.03)):
        frame = generate_clickstream(events, seed=7, disorder=disorder, late_share=late)
        cases.append(
            (
                f"clickstream generator disorder={disorder} late_share={late}",
                ListSource(to_json_lines(frame)),
                None,
            )
        )
    for name in ("clickstream", "transactions", "iot", "app_logs") if bundled else ():
        cases.append((f"bundled {name}", ReplaySource(dataset_path(name), raw=True), None))
    # a partition that falls silent: replayed in (simulated) real time so idle_timeout can act
    for dist in ("exponential", "pareto"):
        frame = synthetic(idle_events, dist, 4, seed=9, idle_after=0.1)
        cases.append(
            (
                f"synthetic {dist} delay, 4 partitions, one silent after 10 %",
                ReplaySource(frame, speed=1.0),
                "k",
            )
        )
    for label, source, key in cases:
        n = sample if "silent" not in label else idle_events // 4
        prof = profile(source, n=n, window=TumblingWindow("1m"), clock=ManualClock(0), timeout="1000d")
        actual = full_run_late(source, prof, key)
        predicted = prof.predicted_late_fraction
        # the table's other delays (lateness 0): the prediction where late fractions are large
        others = [
            (row["delay"], row["predicted late"], full_run_late(source, prof, key, row["delay"]))
            for _, row in prof.late_table.iterrows()
            if row["delay"] != prof.suggestion["delay"]
        ]
        ok = within(predicted, actual)
        rows.append(
            {
                "stream": label,
                "delay": prof.suggestion["delay"],
                "lateness": prof.suggestion["lateness"],
                "idle_timeout": prof.suggestion["idle_timeout"] or "",
                "predicted late": f"{predicted:.3%}",
                "full run late": f"{actual:.3%}",
                "within target": "yes" if ok else "NO",
                "other delays within target": f"{sum(within(p, a) for _, p, a in others)}/{len(others)}",
                "full run late at other delays": ", ".join(f"{d}: {a:.2%}" for d, _, a in others),
                "largest miss at other delays": max(
                    (f"{d}: {p:.2%} vs {a:.2%}" for d, p, a in others if not within(p, a)), default=""
                ),
            }
        )
        print(rows[-1], flush=True)
    return pd.DataFrame(rows)


if __name__ == "__main__":
    raise SystemExit(main())
