"""``verify`` reads back only its own run's outputs: a second run in the same ``workdir`` does not see
the first run's files (a dead letter only the first sample had)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamlab import Pipeline
from streamlab.export import verify
from streamlab.testing import ListSource


@pytest.mark.slow
def test_a_second_beam_run_in_the_same_workdir_reads_only_its_outputs(tmp_path: Path) -> None:
    pytest.importorskip("apache_beam")
    p = Pipeline(ListSource([b"{}"]), name="same")
    p.parse({"timestamp": "timestamp", "x": "string"})
    first = verify(p, [b'{"timestamp": 1, "x": "a"}', b"not json"], "beam", workdir=tmp_path)
    assert first.equal and first.counts["parse.dead_letter"] == {"streamlab": 1, "beam": 1}
    second = verify(p, [b'{"timestamp": 1, "x": "a"}'], "beam", workdir=tmp_path)
    assert second.equal, second.diff.to_string()
    assert second.counts["parse.dead_letter"] == {"streamlab": 0, "beam": 0}
