"""Spark export of pattern steps: streamlab's rule per key in applyInPandasWithState, equal to streamlab.

The property test drives the generated group function in this process, micro-batch by micro-batch,
with a stand-in for Spark's group state and Spark's watermark rule (the largest event time of the
batches before, minus the delay); the engine test runs the job on Spark in local mode through verify.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import Pipeline
from streamlab._time import unreadable_time_reason
from streamlab.detectors import PatternStep
from streamlab.export import to_spark, verify
from streamlab.export.verify import compare, load_module, run_local
from streamlab.testing import ListSource

from ._samples import BASE_MS, iso

SCHEMA = {
    "event_id": "string",
    "event_type": "category",
    "user_id": "string",
    "country": "string",
    "timestamp": "timestamp",
}
TYPES = ["login_failed", "login_failed", "login_failed", "login_success", "view"]


def pattern_pipeline(time: str = "timestamp") -> Pipeline:
    """Two failed logins, then a success from another country than theirs, within a minute (on the
    event time ``time``: ``seen_at`` is an optional copy of ``timestamp``)."""
    p = Pipeline(ListSource([b"{}"]), name="takeover")
    p.parse({**SCHEMA, "seen_at": "timestamp"}).pattern(
        "user_id",
        [
            PatternStep("fail", "event_type == 'login_failed'", times=2),
            PatternStep("ok", "event_type == 'login_success'", differs_from={"country": "fail"}),
        ],
        within="1m",
        time=time,
        delay="5s",
        name="takeover",
        step_id="takeover",
    )
    return p


def events(rng: random.Random, n: int) -> list[tuple[int, bytes]]:
    """(event time ms, record): in time order but for swaps within the 5 s delay (nothing is late)."""
    times = sorted(rng.randrange(0, 600_000) for _ in range(n))
    out = []
    for i, t in enumerate(times):
        country = rng.choice(["FR", "US", None])
        record = {
            "event_id": f"e{i}",
            "event_type": rng.choice(TYPES),
            "user_id": rng.choice(["u1", "u2", "u3"]),
            "timestamp": iso(BASE_MS + t),
            **({"country": country} if country else {}),
        }
        out.append((t, json.dumps(record).encode()))
    for j in range(len(out) - 1):
        if out[j + 1][0] - out[j][0] < 4_000 and rng.random() < 0.5:
            out[j], out[j + 1] = out[j + 1], out[j]
    return out


class GroupState:
    """What the generated function uses of Spark's GroupState."""

    def __init__(self, value: Any, watermark_ms: int) -> None:
        self.value, self.watermark_ms, self.timeout_ms = value, watermark_ms, None

    @property
    def exists(self) -> bool:
        return self.value is not None

    @property
    def get(self) -> Any:
        return self.value

    def update(self, value: Any) -> None:
        self.value = value

    def remove(self) -> None:
        self.value = None

    def getCurrentWatermarkMs(self) -> int:
        return self.watermark_ms

    def setTimeoutTimestamp(self, ms: int) -> None:
        assert ms > self.watermark_ms - 1  # Spark refuses a timeout behind the watermark
        self.timeout_ms = ms


def run_groups(module: Any, lines: list[tuple[int, bytes]], batch: int) -> pd.DataFrame:
    """The generated function over micro-batches of ``batch`` records, as Spark calls it; then the
    end of input (a watermark past every event) fires every group's timeout."""
    states: dict[str, GroupState] = {}
    out = []
    max_ms, watermark = None, 0
    fields = tuple((n, t, (n,)) for n, t in SCHEMA.items())
    chunks = [lines[i : i + batch] for i in range(0, len(lines), batch)] + [[]]
    for k, chunk in enumerate(chunks):
        final = k == len(chunks) - 1
        rows = [module.parse_record(raw, fields, ("timestamp",), 10**6) for _, raw in chunk]
        frame = pd.DataFrame(rows, columns=list(SCHEMA))
        if len(frame):
            frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).dt.tz_localize(None)
        wm = 10**13 if final else watermark
        keys = set(frame["user_id"]) | {
            u for u, s in states.items() if s.timeout_ms is not None and s.timeout_ms < wm
        }
        for user in sorted(keys):
            state = states.setdefault(user, GroupState(None, wm))
            state.watermark_ms, state.timeout_ms = wm, None
            group = frame[frame["user_id"] == user] if len(frame) else frame
            out += [
                f for f in module.pattern_takeover((user,), [group] if len(group) else [], state) if len(f)
            ]
        if len(frame):
            t = int(pd.to_datetime(frame["timestamp"]).max().value // 1_000_000)
            max_ms = t if max_ms is None else max(max_ms, t)
            watermark = max_ms - 5_000  # Spark: the batches before, minus the delay
    return pd.concat(out, ignore_index=True) if out else pd.DataFrame()


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10**6), st.integers(20, 120), st.integers(1, 40))
def test_generated_group_function_equals_streamlab(seed: int, n: int, batch: int) -> None:
    p = pattern_pipeline()
    lines = events(random.Random(seed), n)
    module = _module(p)
    local = run_local(p, [raw for _, raw in lines])
    assert len(local.get("takeover.late", [])) == 0
    exported = {"takeover": run_groups(module, lines, batch)}
    cols = ["user_id", "pattern", "first_time", "last_time", "event_ids", "n_events"]
    equal, diff, _ = compare(
        p, local, exported, "spark", outputs={"takeover": (cols, {"first_time", "last_time"})}
    )
    assert equal, diff


_MODULES: dict[str, Any] = {}


def _module(p: Pipeline) -> Any:
    if "m" not in _MODULES:
        import tempfile

        files = to_spark(p, tempfile.mkdtemp(prefix="spark-pattern-"))
        _MODULES["m"] = load_module(files.module)
    return _MODULES["m"]


def test_pattern_job_on_spark_equals_streamlab(tmp_path: Path) -> None:
    """Matches and dead letters (rows without key or event time, with streamlab's reasons) on Spark."""
    p = pattern_pipeline(time="seen_at")
    lines = []
    for i, (_, raw) in enumerate(events(random.Random(11), 150)):
        record = json.loads(raw)
        if i % 40 != 7:  # three rows without the pattern's event time
            record["seen_at"] = record["timestamp"]
        if i % 50 == 3:  # three rows without its key
            del record["user_id"]
        lines.append(json.dumps(record).encode())
    lines.append(b"not json")
    # micro-batches of 50 records: the group state (buffered events, open candidates) crosses batches
    report = verify(p, lines, target="spark", workdir=tmp_path, batch_records=50)
    assert report.equal, report.diff
    assert "micro-batches of 50 records" in " ".join(report.notes)
    assert report.counts["takeover"]["spark"] == report.counts["takeover"]["streamlab"] > 0
    assert report.counts["takeover.dead_letter"] == {"streamlab": 7, "spark": 7}
    reasons = report.exported["takeover.dead_letter"]["reason"].value_counts().to_dict()
    assert reasons == {
        "key column 'user_id' is missing": 3,
        unreadable_time_reason("seen_at"): 4,
    }
    assert set(report.exported["takeover.dead_letter"]["step_id"]) == {"takeover"}
    text = report.files.module.read_text()
    assert "applyInPandasWithState(pattern_takeover" in text and "def advance(" in text
