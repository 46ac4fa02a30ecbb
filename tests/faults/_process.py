"""Pipeline processes of the fault suite: a spec run in a child (as ``streamlab run`` does), reaped by PID."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

from streamlab._checkpoint import CHECKPOINT_FILE
from streamlab.testing import wait_for

RUNNER = """
import sys
from streamlab import Pipeline
Pipeline.from_yaml(sys.argv[1]).run(checkpoint_dir=sys.argv[2], commit_every="100ms", batch_size=int(sys.argv[3]))
"""


def runner(spec: Path, ckpt: Path, batch_size: int = 50_000) -> subprocess.Popen[bytes]:
    """A pipeline process running the spec with a checkpoint directory (as ``streamlab run`` does)."""
    return subprocess.Popen(
        [sys.executable, "-c", RUNNER, str(spec), str(ckpt), str(batch_size)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def reap(proc: subprocess.Popen[bytes]) -> str:
    """SIGKILL ``proc`` if it still runs, wait for it, and return its stderr."""
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    proc.stderr.close()
    return err


def _stamp(checkpoint: Path) -> int:
    return checkpoint.stat().st_mtime_ns if checkpoint.exists() else 0


def kill_at_a_seeded_point(
    proc: subprocess.Popen[bytes], ckpt: Path, before: int, rng: random.Random
) -> bool:
    """SIGKILL a pipeline process at a seeded point: once its checkpoint changed from ``before`` (the
    sign that it is under way), after a seeded delay of up to 0.4 s of real time (a point of a live
    process: no clock to control). Returns whether it was killed (False: it ended by itself first)."""
    checkpoint = ckpt / CHECKPOINT_FILE
    wait_for(
        lambda: _stamp(checkpoint) != before or proc.poll() is not None,
        timeout=60,
        what="a checkpoint",
    )
    try:
        proc.wait(timeout=rng.uniform(0.0, 0.4))
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        return True
    return False


def run_killed_until_done(
    spec: Path, ckpt: Path, rng: random.Random, *, max_runs: int, batch_size: int = 50_000
) -> int:
    """Run the spec in a child until it finishes, SIGKILLing the first two runs at seeded points
    (:func:`kill_at_a_seeded_point`); returns the number of kills. A run that ends by itself before its
    point is let finish."""
    kills = 0
    for _ in range(max_runs):
        before = _stamp(ckpt / CHECKPOINT_FILE)
        proc = runner(spec, ckpt, batch_size=batch_size)
        try:
            if kills < 2 and kill_at_a_seeded_point(proc, ckpt, before, rng):
                kills += 1
            code = proc.wait(timeout=60)
        finally:
            err = reap(proc)
        if code == 0:
            return kills
        assert code == -signal.SIGKILL, err[-2000:]
    raise AssertionError("the pipeline never finished")
