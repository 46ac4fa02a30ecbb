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


@pytest.mark.slow
def test_a_relative_workdir_works_for_beam(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Beam program runs with the workdir as its cwd: it once got paths relative to the caller's
    cwd (``w/w/doc_beam.py``) and always failed."""
    pytest.importorskip("apache_beam")
    monkeypatch.chdir(tmp_path)
    p = Pipeline(ListSource([b"{}"]), name="rel")
    p.parse({"timestamp": "timestamp", "x": "string"})
    report = verify(p, [b'{"timestamp": 1, "x": "a"}', b"not json"], "beam", workdir="build/verify")
    assert report.equal, report.diff.to_string()
    assert report.counts["parse.dead_letter"] == {"streamlab": 1, "beam": 1}
    assert report.files.module.is_absolute() and (tmp_path / "build/verify/rel_beam.py").is_file()


@pytest.mark.slow
def test_a_beam_program_past_its_timeout_is_stopped_with_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("apache_beam")
    p = Pipeline(ListSource([b"{}"]), name="slow")
    p.parse({"timestamp": "timestamp", "x": "string"})
    with pytest.raises(TimeoutError, match=r"target='beam'.*did not finish in 0.01 s.*timeout_s="):
        verify(p, [b'{"timestamp": 1, "x": "a"}'], "beam", workdir=tmp_path, timeout_s=0.01)


def test_a_stalled_beam_program_is_reported_as_a_stall() -> None:
    """The DirectRunner raises its stall as an exc_info tuple, which Python turns into "TypeError:
    exceptions must derive from BaseException"; verify names the stall."""
    from streamlab.export.verify import beam_failure

    stderr = (
        'Traceback (most recent call last):\n  File "executor.py", line 462, in await_completion\n'
        "    raise update.exception\nTypeError: exceptions must derive from BaseException\n"
    )
    assert "Monitor task detected a pipeline stall" in beam_failure(stderr)
    assert beam_failure("ValueError: boom\n") == "ValueError: boom\n"
