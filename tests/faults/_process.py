"""Pipeline processes of the fault suite: a spec run in a child (as ``streamlab run`` does), reaped by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

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
