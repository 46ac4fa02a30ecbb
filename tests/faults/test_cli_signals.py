"""``streamlab run SPEC`` stopped by Ctrl-C (SIGINT) or SIGTERM while it writes files: it exits 130 or 143
(the shell's statuses for those signals) with the sinks flushed and the checkpoint saved at exactly what they hold, and a second run completes the output
as an uninterrupted run writes it (the fault suite's other signal tests send SIGTERM to a Python runner
writing to DuckDB)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from streamlab import JsonLinesSink, ParquetSink, Pipeline, ReplaySource, TumblingWindow, agg
from streamlab._checkpoint import load_checkpoint, pipeline_fingerprint
from streamlab.testing import wait_for

pytestmark = pytest.mark.timeout(120)

N = 600


def _streamlab(*args: str) -> list[str]:
    script = Path(sys.executable).with_name("streamlab")
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "import sys; from streamlab.cli import main; sys.exit(main())", *args]


def _build(events: Path, out: Path, speed: float | None) -> Pipeline:
    p = Pipeline(ReplaySource(events, time="timestamp", speed=speed, batch_size=20), name="signals")
    p.stream.to(JsonLinesSink(out / "events.jsonl"))
    windows = p.stream.window(TumblingWindow("1m"), key="kind").agg(agg.count())
    windows.to(ParquetSink(out / "windows"))
    return p


def _outputs(out: Path) -> tuple[list[int], list[str]]:
    xs = [json.loads(line)["x"] for line in (out / "events.jsonl").read_text().splitlines()]
    frame = pd.read_parquet(out / "windows")
    rows = sorted(json.dumps(r, sort_keys=True, default=str) for r in frame.to_dict("records"))
    return xs, rows


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["sigint", "sigterm"])
def test_a_signal_stops_the_cli_with_its_files_and_checkpoint_agreeing(sig: int, tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    events.write_text(
        "".join(
            json.dumps({"timestamp": (t0 + pd.Timedelta(seconds=i)).isoformat(), "x": i, "kind": "ab"[i % 2]})
            + "\n"
            for i in range(N)
        )
    )
    clean = tmp_path / "clean"
    clean.mkdir()
    _build(events, clean, None).run()
    want = _outputs(clean)

    out, ckpt, spec = tmp_path / "out", tmp_path / "ckpt", tmp_path / "spec.yaml"
    out.mkdir()
    paced = _build(events, out, speed=60.0)  # 600 s of event time in about 10 s
    paced.to_yaml(str(spec))
    proc = subprocess.Popen(
        _streamlab("run", str(spec), "--quiet", "--checkpoint-dir", str(ckpt)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        jsonl = out / "events.jsonl"
        # under way: the file's write buffer spilled (8 KiB, a line perhaps cut), before a commit (5 s)
        wait_for(lambda: (jsonl.exists() and jsonl.stat().st_size > 0) or proc.poll() is not None, timeout=60)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)
    assert proc.returncode == (130 if sig == signal.SIGINT else 143), stderr.decode()[-2000:]
    status = "interrupted" if sig == signal.SIGINT else "stopped"
    assert f"status='{status}'" in stdout.decode(), stdout.decode()

    fingerprint, steps = pipeline_fingerprint(paced)
    saved = load_checkpoint(ckpt, fingerprint, steps)
    assert saved is not None
    written = (out / "events.jsonl").read_bytes()
    position = saved["sources"]["source"]["position"]
    assert 0 < position < N  # stopped part way
    assert len(written.splitlines()) == position  # the checkpoint is exactly what the file holds
    assert saved["sinks"]["sink"] == len(written)

    done = subprocess.run(
        _streamlab("run", str(spec), "--quiet", "--checkpoint-dir", str(ckpt)),
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert _outputs(out) == want
