"""The README's demo pipeline (``streamlab demo``) reaches production: Beam and Lambda, verified equal."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlab.datasets import load_raw

from streamlab.cli import build_demo_pipeline
from streamlab.export import verify


@pytest.mark.parametrize("target", ["beam", "lambda"])
def test_the_demo_pipeline_exports_equal_on_the_bundled_clickstream(target: str, tmp_path: Path) -> None:
    lines = [*load_raw("clickstream")[:400], b"not json", b'{"event_id": "x", "timestamp": "soon"}']
    report = verify(
        build_demo_pipeline(str(tmp_path / "demo.duckdb")), lines, target, workdir=tmp_path / target
    )
    assert report.equal, report.diff.head(20).to_string()
    assert report.counts["window"]["streamlab"] > 0
    assert report.counts["parse.dead_letter"] == {"streamlab": 2, target: 2}
