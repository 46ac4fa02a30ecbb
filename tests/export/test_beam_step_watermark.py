"""The Beam export's watermark at a window step follows the rows that reach the step, as streamlab's does.

streamlab tracks a watermark per window step from the rows that reach it: rows a filter or a dedup
removed, rows the window dead-letters (a value its aggregators cannot take, a missing event time) do not
advance it, and a map that moves the event time moves it. The generated module's replay once advanced
Beam's watermark by every parsed record, so Beam closed windows before rows that streamlab counts in
them came (they became late rows) or counted rows that streamlab reports late. Now the replay holds
Beam's watermark behind every window step's, and the module decides which rows are late by streamlab's
rule at each step (for a sliding window, per window of the row).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from streamlab import Pipeline, SessionWindow, SlidingWindow, TumblingWindow, agg
from streamlab.export import to_beam, verify
from streamlab.export.beam import replay_unfollowed
from streamlab.export.verify import load_module
from streamlab.pipeline import Stream
from streamlab.testing import ListSource
from streamlab.windows import Window

pytest.importorskip("apache_beam")

SCHEMA = {"timestamp": "timestamp", "kind": "string", "event_id": "string", "v": "json", "t2": "timestamp"}
WINDOWS: dict[str, Callable[[], Window]] = {
    "tumbling": lambda: TumblingWindow("1m"),
    "sliding": lambda: SlidingWindow("2m", every="1m"),
    "session": lambda: SessionWindow("30s"),
}


def at(second: int) -> str:
    return f"2024-01-01T00:{second // 60:02d}:{second % 60:02d}Z"


def seconds(times: Any) -> list[int]:
    """Times as written by a sink, in seconds after 2024-01-01T00:00:00Z."""
    import pandas as pd

    return [int(pd.Timestamp(t).timestamp()) - 1_704_067_200 for t in times]


def ev(second: int, kind: str = "a", **extra: Any) -> bytes:
    return json.dumps({"timestamp": at(second), "kind": kind, **extra}).encode()


def later_b() -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A map that moves the event time of kind ``b`` 45 s forward (the parse time stays behind); local, so
    the export copies its source (this test module is not importable by the exported program)."""

    def moved(row: dict[str, Any]) -> dict[str, Any]:
        if row["kind"] == "b":
            row = {**row, "timestamp": row["timestamp"] + timedelta(seconds=45)}
        return row

    return moved


# Each case: records in arrival order where the rows that do not reach the window (or reach it at another
# time) would move a watermark of every parsed record away from the window step's own, and the steps.
# junk rows, dropped by the filter, are newer than the kept rows that arrive after them
FILTERED = [ev(10), ev(300, "junk"), ev(20), ev(40, "b"), ev(400, "junk"), ev(70), ev(65, "b"), ev(130)]
# repeats of an id carry later event times than the first occurrences that follow them
DEDUPED = [
    ev(10, event_id="1"),
    ev(300, event_id="1"),
    ev(20, event_id="2"),
    ev(70, event_id="3"),
    ev(500, event_id="3"),
    ev(65, event_id="4"),
    ev(130, event_id="5"),
]
# b's time moves 45 s forward at the map: at the window its rows make a and b rows after them late
MAPPED = [ev(10), ev(100, "b"), ev(20), ev(70), ev(50), ev(130), ev(150, "b"), ev(160)]
# the window dead-letters values its sum cannot take and rows without its event-time column t2
DEAD = [
    ev(10, v=1, t2=at(10)),
    ev(300, v="x", t2=at(300)),
    ev(20, v=2, t2=at(20)),
    ev(400, v=1),
    ev(70, v=1, t2=at(70)),
    ev(500, v={"a": 1}, t2=at(500)),
    ev(65, v=3, t2=at(65)),
    ev(130, v=1, t2=at(130)),
]
CASES: dict[str, tuple[list[bytes], Callable[[Stream], Stream], str | None]] = {
    "filter": (FILTERED, lambda s: s.filter("kind != 'junk'"), None),
    "dedup": (DEDUPED, lambda s: s.dedup("event_id", ttl="1h"), None),
    "map": (MAPPED, lambda s: s.map_one(later_b()), None),
    "window dead letters": (DEAD, lambda s: s, "t2"),
}


def pipeline(case: str, window: str) -> Pipeline:
    _, before, time = CASES[case]
    p = Pipeline(ListSource([b"{}"]), name="stepwm")
    before(p.parse(SCHEMA)).window(WINDOWS[window](), key="kind", time=time).agg(agg.count(), agg.sum("v"))
    return p


def every_window(case: str) -> Pipeline:
    """The case's steps, then one window step of each kind (named by its kind) on their rows: each step
    has its own watermark in streamlab, and the replay holds Beam's behind the smallest of them."""
    _, before, time = CASES[case]
    p = Pipeline(ListSource([b"{}"]), name="stepwm")
    rows = before(p.parse(SCHEMA))
    for window, make in WINDOWS.items():
        rows.window(make(), key="kind", time=time, step_id=window).agg(agg.count(), agg.sum("v"))
    return p


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_windows_after_steps_that_remove_or_move_rows(tmp_path: Path, case: str) -> None:
    """One verification per case, its three windows side by side (one DirectRunner run, not three)."""
    report = verify(every_window(case), CASES[case][0], "beam", workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    # streamlab's late rows (Beam's equal them): none where the steps only removed newer rows, except b's
    # row at 65 s, after its session [40 s, 70 s) closed at 70 s; after the map, the rows behind b's moved times
    late = {("filter", "session"): 1, ("map", "tumbling"): 4, ("map", "sliding"): 6, ("map", "session"): 4}
    for window in WINDOWS:
        assert len(report.local.get(f"{window}.late", ())) == late.get((case, window), 0), window
        assert report.counts[window]["beam"] > 0, window
        if case == "window dead letters":
            dead = f"{window}.dead_letter"
            assert len(report.exported[dead]) == len(report.local[dead]) == 3, window


def test_the_replay_watermark_trails_the_rows_that_reach_each_window(tmp_path: Path) -> None:
    """No DirectRunner: the replay's watermark events, against the kept rows' largest event time."""
    from apache_beam.testing.test_stream import WatermarkEvent

    module = load_module(to_beam(pipeline("filter", "tumbling"), tmp_path).module)
    assert module.REPLAY_WINDOWS == ("window",) and module.REPLAY_PARSED is False
    events = module.replay_stream(FILTERED)._events
    marks = [e.new_watermark.micros // 1_000_000 for e in events if isinstance(e, WatermarkEvent)]
    kept_max = 130  # seconds after 00:00; the junk rows at 300 and 400 do not count
    base = 1_704_067_200
    # up to the kept rows' largest time, then just past the last record's, then +inf
    assert [m - base for m in marks[:-2]] and all(m - base <= kept_max for m in marks[:-2])
    assert marks[-2] - base == 400
    assert marks[-1] > base + 10**9


def test_a_sliding_row_late_for_one_window_counts_in_the_next_while_beams_watermark_lags(
    tmp_path: Path,
) -> None:
    """Two window steps: ``recent`` sees only the old rows a filter keeps, so the replay holds Beam's
    watermark there; ``all`` sees every row, and a row late for its first sliding window (in streamlab's
    watermark at ``all``) but on time for its second goes to ``late`` with the first and counts in the
    second only, where Beam's ``SlidingWindows`` would have put it into both."""
    p = Pipeline(ListSource([b"{}"]), name="twosteps")
    events = p.parse(SCHEMA)
    events.window(SlidingWindow("2m", every="1m"), key="kind", step_id="all").agg(agg.count())
    events.filter("kind == 'old'").window(TumblingWindow("1m"), step_id="recent").agg(agg.count())
    lines = [ev(5, "old"), ev(10), ev(130), ev(70), ev(100), ev(200), ev(30, "old"), ev(110)]
    report = verify(p, lines, "beam", workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    # 70 and 100 are late for [0, 2m) and counted in [1m, 3m); 30 and 110 are late for both their windows
    late = report.exported["all.late"]
    assert len(late) == len(report.local["all.late"]) == 6
    assert sorted(seconds(late["timestamp"])) == [30, 30, 70, 100, 110, 110]
    assert report.counts["all"] == {"streamlab": 7, "beam": 7}
    out = report.exported["all"]
    counted = dict(zip(zip(out["kind"], seconds(out["window_start"])), out["count"]))
    assert counted[("a", 60)] == 3  # 130, 70 and 100


@pytest.mark.slow
def test_a_window_the_replay_cannot_follow_is_named(tmp_path: Path) -> None:
    """A window over another window's results: the replay follows every parsed record for it, and the
    module's docstring and verify's notes say so."""
    p = Pipeline(ListSource([b"{}"]), name="hourly")
    counts = (
        p.parse(SCHEMA).filter("kind != 'junk'").window(TumblingWindow("1m"), key="kind").agg(agg.count())
    )
    counts.window(TumblingWindow("1h"), time="window_start", step_id="hourly").agg(agg.sum("count"))
    assert replay_unfollowed(p) == {"hourly": "its rows come from window step 'window'"}
    module = load_module(to_beam(p, tmp_path).module)
    assert module.REPLAY_WINDOWS == ("window",) and module.REPLAY_PARSED is True
    assert "Window step 'hourly': its rows come from window step 'window'" in module.__doc__
    report = verify(p, FILTERED, "beam", workdir=tmp_path / "verify")
    assert report.equal, report.diff.to_string()
    (note,) = [n for n in report.notes if n.startswith("hourly: ")]
    assert (
        "follows every parsed record for this window step (its rows come from window step 'window')" in note
    )


def _random_case(seed: int) -> tuple[Pipeline, list[bytes]]:
    """Out-of-order records (some very late, repeats of ids, junk, values a sum cannot take, rows without
    ``t2``) through a random chain of filter, dedup and a time-moving map before a random window; half of
    the pipelines have a second window on every parsed row, so Beam's watermark lags one of them."""
    rng = random.Random(seed)
    n = rng.randint(15, 40)
    lines = []
    for i, t in enumerate(sorted(rng.randint(0, 420) for _ in range(n))):
        t = max(0, min(599, t + rng.choice([0, 0, 0, rng.randint(-60, 60), rng.randint(-200, 0)])))
        event: dict[str, Any] = {
            "timestamp": at(t),
            "kind": rng.choice("aab") if rng.random() > 0.25 else "junk",
            "event_id": str(rng.randint(0, n // 2) if rng.random() < 0.3 else 1000 + i),
            "v": rng.choice([1, 2, 2.5, "x"]) if rng.random() > 0.1 else {"a": 1},
        }
        if rng.random() > 0.15:
            event["t2"] = at(max(0, min(599, t + rng.choice([0, 0, 30, -30]))))
        lines.append(json.dumps(event).encode())
    p = Pipeline(ListSource([b"{}"]), name=f"random{seed}")
    parsed = p.parse(SCHEMA)
    s: Stream = parsed
    for step in rng.sample(["filter", "dedup", "map"], rng.randint(1, 3)):
        s = {"filter": CASES["filter"][1], "dedup": CASES["dedup"][1], "map": CASES["map"][1]}[step](s)
    windows: list[Callable[[], Window]] = [*WINDOWS.values(), lambda: SlidingWindow("90s", every="30s")]
    s.window(
        rng.choice(windows)(),
        key="kind",
        time=rng.choice([None, None, "t2"]),
        delay=rng.choice(["0s", "10s"]),
        lateness=rng.choice(["0s", "20s"]),
        step_id="w",
    ).agg(agg.count(), agg.sum("v"))
    if rng.random() < 0.5:
        parsed.window(rng.choice(windows)(), key="kind", delay=rng.choice(["0s", "5s"]), step_id="w2").agg(
            agg.count()
        )
    return p, lines


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 3, 7, 12, 15])
def test_random_out_of_order_streams_through_row_removing_steps(tmp_path: Path, seed: int) -> None:
    """Seeds whose pipelines the replay of every parsed record got wrong (8 of the first 16 were)."""
    p, lines = _random_case(seed)
    report = verify(p, lines, "beam", workdir=tmp_path)
    assert report.equal, report.diff.to_string()
