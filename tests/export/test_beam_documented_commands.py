"""The generated Beam module's docstring says how to run it on a file with streamlab's results: the
command written there, run as it is, writes the late rows streamlab reports (a backfill, the other
documented file command, counts them in their windows)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.export import to_beam
from streamlab.export.verify import run_local
from streamlab.testing import ListSource

pytest.importorskip("apache_beam")

LINES = [
    json.dumps({"event_id": str(i), "event_type": "click", "user_id": "u", "timestamp": t}).encode()
    for i, t in enumerate(["2024-01-01T00:00:05Z", "2024-01-01T00:02:00Z", "2024-01-01T00:00:30Z"])
]


def test_the_documented_replay_command_gives_streamlabs_late_rows(tmp_path: Path) -> None:
    p = Pipeline(ListSource([b"{}"]), name="doc")
    p.parse().window(TumblingWindow("1m"), key="event_type").agg(agg.count())
    module = Path(to_beam(p, tmp_path / "export").module)
    doc = module.read_text()
    found = re.search(r"^ +(python \S+ --input events\.jsonl --replay .*)$", doc, re.M)
    assert found, "the module's docstring names no command giving streamlab's results on a file"
    (tmp_path / "events.jsonl").write_bytes(b"".join(line + b"\n" for line in LINES))
    args = shlex.split(found.group(1).replace("OUT_DIR", str(tmp_path / "out")))
    args[0:2] = [sys.executable, str(module)]
    done = subprocess.run([*args, "--direct_num_workers", "1"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    written = [f for f in (tmp_path / "out" / "window_late").glob("*") if f.is_file()]
    late = [json.loads(x) for f in written for x in f.read_text().splitlines() if x]
    local = run_local(p, LINES)
    assert [r["event_id"] for r in late] == list(local["window.late"]["event_id"]) == ["2"]
