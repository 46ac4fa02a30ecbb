"""scripts/build_docs.py's snapshot of live widgets shows each run as it ended, whatever the notebook's ending.

The documentation is read long after the notebook ran, so a dashboard snapshotted while its run was still
going showed the first second of it (notebooks 08 and 09: "running · 142 events", 160 of 12,000 points,
"0 flagged"). The build now waits, bounded, for runs still going after the last cell, redraws every view,
and fails naming a run still going after the bound. One kernel runs a small notebook that leaves two live
dashboards going: a replay of about 3 s and one of about 100 s.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest

from streamlab.export.verify import load_module

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "build_docs.py"
EVENTS = 300

SETUP = f"""\
import pandas as pd
from streamlab import Pipeline, ReplaySource
from streamlab.detectors import FixedThresholdFilter, GaussianScorerDetector
from streamlab.widgets import AnomalyChart, Dashboard

# one event a second, every 25th far from the others
events = pd.DataFrame({{
    "timestamp": pd.date_range("2024-03-01", periods={EVENTS}, freq="s", tz="UTC"),
    "x": [50.0 if i % 25 == 24 else float(i % 3) for i in range({EVENTS})],
}})


def live(name, speed):
    p = Pipeline(ReplaySource(events, speed=speed, batch_size=10), name=name)
    p.stream.detect(GaussianScorerDetector(grace_period=5), features=["x"],
                    threshold=FixedThresholdFilter(0.99), step_id="detect")
    handle = p.start()
    return Dashboard(handle, [AnomalyChart(handle, "detect")], gauges=False, debugger=False, diagram=False)
"""


def figures(html: str) -> list[tuple[list[int], str]]:
    """Each plotly figure the static HTML draws: its traces' point counts and its title."""
    found = []
    decoder = json.JSONDecoder()
    for m in re.finditer(r"Plotly\.newPlot\(\s*\"[^\"]+\",\s*", html):
        data, end = decoder.raw_decode(html, m.end())
        layout, _ = decoder.raw_decode(html, re.compile(r",\s*").match(html, end).end())  # type: ignore[union-attr]
        counts = []
        for trace in data:
            x: Any = trace.get("x", [])
            if isinstance(x, dict):  # plotly writes arrays as {"dtype": "f8", "bdata": base64}
                x = np.frombuffer(base64.b64decode(x["bdata"]), dtype=x["dtype"])
            counts.append(len(x))
        found.append((counts, layout.get("title", {}).get("text", "")))
    return found


@pytest.mark.slow  # a kernel, and the bounded wait for the run that does not end
def test_the_snapshot_shows_a_run_the_notebook_left_going_as_it_ended(tmp_path: Path) -> None:
    build_docs = load_module(SCRIPT)
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell(SETUP),
        nbformat.v4.new_code_cell('live("long", speed=3.0)  # about 100 s'),
        # last, so the snapshot comes well before its end
        nbformat.v4.new_code_cell('live("short", speed=100.0)  # 300 s of events in about 3 s'),
    ]
    path = tmp_path / "live.ipynb"
    nbformat.write(nb, path)

    _, _, error = build_docs.execute(path, tmp_path / "out", timeout=120, wait_s=6.0)

    # a run still going after the bound fails the build, named, rather than be published half drawn
    assert error is not None and "['long'] still running" in error, error
    built = nbformat.read(tmp_path / "out" / path.name, as_version=4)
    long, short = (built.cells[i].outputs[0]["data"]["text/html"] for i in (1, 2))
    # the short run, which the notebook did not wait for, is shown as it ended: every event, its alerts
    assert f"finished · {EVENTS} events · " in short, short[:2000]
    [(points, title)] = figures(short)
    assert points[0] == EVENTS and points[1] > 0, points  # every score, and the flagged ones
    assert re.match(rf"score \(detect\) · {points[1]} flagged", title), title
    assert "running · " in long
