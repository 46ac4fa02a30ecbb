"""Exactly once into files and append tables: a crash at any point of a commit, then a restart, leaves
every sink as an uninterrupted run leaves it (no row lost, none doubled)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import streamlab.runtime._commit as runtime_module
from streamlab import ListSource, ManualClock
from streamlab._checkpoint import save_checkpoint

from ._delivery import build, contents, raw_events, replay, write_events


class Crash(BaseException):
    """Stands for kill -9: nothing after it runs (the runtime only closes what it opened)."""


def uninterrupted(tmp: Path, events: list[bytes], batch: int) -> dict[str, list[str]]:
    out = tmp / "clean"
    out.mkdir()
    build(ListSource(events, batch_size=batch), out).run(clock=ManualClock(0), commit_every="0s")
    return contents(out)


@settings(max_examples=8, deadline=None, phases=[Phase.explicit, Phase.generate])  # no slow shrinking
@given(
    n=st.integers(20, 80),
    batch=st.integers(5, 40),
    crashes=st.lists(
        st.tuples(st.integers(1, 6), st.sampled_from(["before", "after"])), min_size=1, max_size=3
    ),
)
def test_a_crash_between_sink_flush_and_checkpoint_never_doubles_or_loses_rows(
    tmp_path_factory, n, batch, crashes
):
    tmp = tmp_path_factory.mktemp("crash")
    events = raw_events(n, seed=n, any_json=True)
    expected = uninterrupted(tmp, events, batch)
    out, cp = tmp / "crashed", tmp / "cp"
    out.mkdir()
    for at, where in [*crashes, (None, None)]:
        calls = 0

        def save(directory, snap, header, at=at, where=where):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            if calls == at and where == "before":
                raise Crash  # sinks flushed, checkpoint not written
            save_checkpoint(directory, snap, header)
            if calls == at:
                raise Crash  # checkpoint written, staged rows not published, positions not committed

        runtime_module.save_checkpoint, original = save, runtime_module.save_checkpoint  # type: ignore[assignment]
        try:
            p = build(ListSource(events, batch_size=batch), out)
            p.run(clock=ManualClock(0), commit_every="0s", checkpoint_dir=cp)
        except Crash:
            continue
        finally:
            runtime_module.save_checkpoint = original
        break
    assert contents(out) == expected


def _streamlab(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("streamlab")  # the installed command, when there is one
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "import sys; from streamlab.cli import main; sys.exit(main())", *args]


@pytest.mark.timeout(240)
def test_kill_9_at_seeded_random_points_then_restart_until_done_equals_an_uninterrupted_run(tmp_path):
    """``streamlab run SPEC --checkpoint-dir`` killed with SIGKILL at seeded random moments."""
    events = write_events(tmp_path / "events.jsonl", 3000, seed=7)
    clean = tmp_path / "clean"
    clean.mkdir()
    build(replay(events), clean).run(clock=ManualClock(0))
    expected = contents(clean)

    out, cp = tmp_path / "killed", tmp_path / "cp"
    out.mkdir()
    # replayed at 60x: 300 s of event time take about 5 s, with a commit every 5 s and at the end
    spec = tmp_path / "spec.yaml"
    from streamlab import ReplaySource

    build(ReplaySource(events, raw=True, time="timestamp", speed=60.0), out).to_yaml(str(spec))
    rng = random.Random(14)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    kills = 0
    for attempt in range(12):
        proc = subprocess.Popen(
            _streamlab("run", str(spec), "--quiet", "--checkpoint-dir", str(cp)),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        delay = rng.uniform(1.0, 7.0) if attempt < 4 else None  # four kills, then let it finish
        try:
            _, stderr = proc.communicate(timeout=delay if delay is not None else 120)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=30)
            kills += 1
            continue
        assert proc.returncode == 0, stderr.decode()[-2000:]
        break
    else:
        pytest.fail("the run never finished")
    assert kills >= 1
    assert contents(out) == expected
