"""Benchmark: ingest throughput with three live charts attached, and the redraw rate they hold.

A window pipeline replays ~15M clickstream events as fast as possible, once bare and once with a
WindowChart, a WatermarkDebugger and an AnomalyChart, each with its live view, driven by one Dashboard refresher
at ``--max-fps``. Prints events/s with and without charts, their ratio (target >= 0.90), the rate the refresher settled
at (it spaces its ticks so redraws use at most ``cpu_share`` of a core, never below ``min_fps``) and each
chart's redraws per second (target >= 5, at most the configured maximum) and per refresher tick (1.00:
every tick redrew).
Outside a kernel the views have no frontend, so this measures the kernel-side cost (buffering, pulling,
encoding the whole figure for its view), not the browser. Each refresher tick's CPU time (its thread's
clock) is printed too.

With ``--floor`` a third run per repeat keeps the charts subscribed and their views made but the
refresher stopped: its ratio to the bare run is the noise floor of a loaded machine (what the buffers
cost the pipeline thread, plus noise), to read the live ratio against.

A run must last well over a second: redraws come on a fixed 1/max_fps grid, so over a 0.5 s run one
redraw more or less moves the rate by 2 per second.

    python benchmarks/bench_widgets.py [--copies 300] [--max-fps 10] [--repeat 5] [--floor]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np
import pandas as pd
from streamlab.datasets import load
from streamlab.widgets import AnomalyChart, Dashboard, WatermarkDebugger, WindowChart

from streamlab import Pipeline, ReplaySource, TumblingWindow, agg


def make_events(copies: int) -> pd.DataFrame:
    base = load("clickstream")[["event_type", "user_id", "timestamp"]]
    span = base["timestamp"].max() - base["timestamp"].min() + pd.Timedelta("1min")
    frames = [base.assign(timestamp=base["timestamp"] + i * span) for i in range(copies)]
    return pd.concat(frames, ignore_index=True)


def build(frame: pd.DataFrame) -> Pipeline:
    p = Pipeline(ReplaySource(frame, speed=None), name="bench")
    p.window(TumblingWindow("10s"), key="event_type", delay="5s").agg(agg.count())
    p.window(TumblingWindow("10s"), delay="5s", step_id="total").agg(agg.count())
    return p


def run_once(
    frame: pd.DataFrame, charts: bool, max_fps: float, batch_size: int, refresh: bool = True
) -> dict[str, float]:
    p = build(frame)
    handle = p.start(batch_size=batch_size, paused=True, max_collect_rows=10_000)
    widgets: list[Any] = []
    tick_cpu: list[float] = []
    dash = None
    if charts:
        widgets = [
            WindowChart(handle, "window", value="count", key="event_type"),
            WatermarkDebugger(handle, "window"),
            AnomalyChart(handle, "total", time="window_start", score="count", threshold=250.0),
        ]
        # One refresher drives the three live views, as in a notebook dashboard.
        dash = Dashboard(
            handle, widgets, controls=False, gauges=False, debugger=False, diagram=False, max_fps=max_fps
        )
        _ = dash.widget
        tick = dash.refresher.callback

        def timed() -> Any:
            started = time.thread_time()
            try:
                return tick()
            finally:
                tick_cpu.append(time.thread_time() - started)

        dash.refresher.callback = timed
        if not refresh:
            dash.refresher.stop()
    start_redraws = [w.redraws for w in widgets]
    start_ticks = dash.refresher.ticks if dash is not None else 0
    t0 = time.perf_counter()
    handle.resume()
    result = handle.wait(timeout=600)
    elapsed = time.perf_counter() - t0
    redraws = [w.redraws - r for w, r in zip(widgets, start_redraws)]
    ticks = dash.refresher.ticks - start_ticks if dash is not None else 0
    fps = dash.refresher.fps if dash is not None else 0.0
    if dash is not None:
        dash.close()
    handle.stop()
    assert result is not None and result.metrics["events_in"] == len(frame)
    out = {"events_per_s": len(frame) / elapsed, "seconds": elapsed, "fps": fps}
    out["tick_ms"] = float(np.median(tick_cpu)) * 1e3 if tick_cpu else 0.0
    for w, n in zip(widgets, redraws):
        out[f"{type(w).__name__} redraws/s"] = n / elapsed
        out[f"{type(w).__name__} per tick"] = n / max(ticks, 1)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--copies", type=int, default=300, help="copies of the 50k-event dataset (default 15M events)"
    )
    ap.add_argument("--max-fps", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=50_000)
    ap.add_argument("--floor", action="store_true", help="also run with the refresher stopped (noise floor)")
    args = ap.parse_args(argv)
    frame = make_events(args.copies)
    print(f"{len(frame):,} events, batch size {args.batch_size:,}, max_fps {args.max_fps:g}")
    run_once(
        frame.head(50_000), True, args.max_fps, args.batch_size
    )  # warm-up: imports, plotly.js for the views
    bare, live, stopped = [], [], []
    for _ in range(args.repeat):  # interleaved, so machine load affects all alike
        bare.append(run_once(frame, False, args.max_fps, args.batch_size))
        live.append(run_once(frame, True, args.max_fps, args.batch_size))
        if args.floor:
            stopped.append(run_once(frame, True, args.max_fps, args.batch_size, refresh=False))
    best_bare = max(bare, key=lambda r: r["events_per_s"])
    best_live = max(live, key=lambda r: r["events_per_s"])
    ratio = best_live["events_per_s"] / best_bare["events_per_s"]
    print(f"without charts: {best_bare['events_per_s']:,.0f} events/s ({best_bare['seconds']:.2f} s)")
    print(f"with 3 charts:  {best_live['events_per_s']:,.0f} events/s ({best_live['seconds']:.2f} s)")
    print(f"ratio: {ratio:.2f} (target >= 0.90) {'OK' if ratio >= 0.9 else 'BELOW TARGET'}")
    print(
        "each repeat's ratio (live / bare of the same repeat): "
        f"{[round(lv['events_per_s'] / b['events_per_s'], 2) for lv, b in zip(live, bare)]}"
    )
    if stopped:
        best_stopped = max(stopped, key=lambda r: r["events_per_s"])
        print(
            f"noise floor, refresher stopped: ratio {best_stopped['events_per_s'] / best_bare['events_per_s']:.2f}; "
            f"each repeat {[round(st['events_per_s'] / b['events_per_s'], 2) for st, b in zip(stopped, bare)]}"
        )
    print(f"CPU per refresher tick (median of each run, ms): {[round(r['tick_ms'], 2) for r in live]}")
    print(
        "refresher rate at the end of each run (max_fps, slowed to its CPU share, at least min_fps 6): "
        f"{[round(r['fps'], 1) for r in live]}"
    )
    for key in [k for k in best_live if k.endswith("redraws/s")]:
        rates = np.array([r[key] for r in live])
        per_tick = np.mean([r[key.replace("redraws/s", "per tick")] for r in live])
        verdict = "OK" if rates.min() >= 5 else "BELOW TARGET"
        print(
            f"{key}: {rates.mean():.1f} (target >= 5, max_fps {args.max_fps:g}; runs "
            f"{np.round(rates, 1).tolist()}; per refresher tick {per_tick:.2f}) {verdict}"
        )


if __name__ == "__main__":
    main()
