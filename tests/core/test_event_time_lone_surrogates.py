"""An event-time column of text holding a lone surrogate (``"\\ud800"``: an escaped surrogate read from
JSON, or built by a user function) is no time: each step that reads event times sends such a row to its
dead letter, as any unreadable time. Reading the column failed the step before (pandas' Arrow-backed text
cannot hold a lone surrogate: UnicodeEncodeError on every retry), and a file replayed whole failed to
load with a traceback instead of the message that says to replay it raw."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from streamlab import ManualClock, Pipeline, ReplaySource, TumblingWindow, agg
from streamlab._time import NAT_NS, to_utc_ns
from streamlab.detectors import GaussianScorerDetector, PatternStep, VelocityFeature
from streamlab.testing import ListSource

TIMES = ["2024-01-01T00:00:00Z", "2024-01-01T00:00:0\ud800Z", "2024-01-01T00:00:02Z", "\udcff", None]

STEPS: dict[str, Callable[[Any], Any]] = {
    "window": lambda s: s.window(TumblingWindow("1m"), key="user", time="t").agg(agg.count()),
    "dedup": lambda s: s.dedup("event_id", ttl="1h", time="t"),
    "detect": lambda s: s.detect(GaussianScorerDetector(), ["x"], key="user", time="t"),
    "velocity_feature": lambda s: s.apply(VelocityFeature("user", window="1m", time="t")),
    "pattern": lambda s: s.pattern(
        "user", [PatternStep("a", "x > 0"), PatternStep("b", "x > 0")], within="1m", time="t"
    ),
}


def test_a_lone_surrogate_reads_as_no_time() -> None:
    got = to_utc_ns(pd.Series(TIMES, dtype=object)).tolist()
    assert got == [1704067200000000000, NAT_NS, 1704067202000000000, NAT_NS, NAT_NS]  # raised before


def _outputs(times: list[Any], kind: str, batch: int) -> dict[str, pd.DataFrame]:
    frame = pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(len(times))],
            "user": ["u"] * len(times),
            "x": [1.0] * len(times),
            "t": pd.Series(times, dtype=object),
        }
    )
    p = Pipeline(ListSource(frame, batch_size=batch))
    STEPS[kind](p.stream)
    result = p.run(clock=ManualClock(0))
    assert result.status == "finished"
    return {name: out.drop(columns=["t"], errors="ignore") for name, out in result.outputs.items()}


@pytest.mark.parametrize("kind", sorted(STEPS))
@pytest.mark.parametrize("batch", [1, 2, 5])
def test_each_event_time_step_takes_such_a_row_as_an_unreadable_time(kind: str, batch: int) -> None:
    got = _outputs(TIMES, kind, batch)  # failed the step before
    want = _outputs(
        ["garbage" if (t is not None and "\ud800" in t) or t == "\udcff" else t for t in TIMES], kind, batch
    )
    assert got.keys() == want.keys()
    for name in got:
        pd.testing.assert_frame_equal(got[name], want[name])
    if f"{kind}.dead_letter" in got:  # the steps with a dead letter send both rows there
        assert sorted(got[f"{kind}.dead_letter"]["event_id"]) == ["e1", "e3", "e4"]


def test_a_file_replayed_whole_says_to_replay_it_raw(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps({"user": "u", "timestamp": t}) + "\n" for t in TIMES[:3]))
    with pytest.raises(
        ValueError, match=r"record 2 of .* cannot be read as a table.*ReplaySource\(path, raw=True\)"
    ):
        ReplaySource(path, speed=None)
