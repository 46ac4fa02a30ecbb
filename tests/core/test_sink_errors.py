"""A sink failing at run time named neither its step nor the fix (only operators' errors were wrapped,
in ``StepFailedError``): a pipeline with three DuckDB sinks said ``ConversionException: ...`` and the user
had to guess which. The runtime now raises :class:`SinkFailedError`, naming the step, the sink's class
and what it was doing, chained to the sink's own error; the sources are not committed past rows a sink
failed on."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import pytest

from streamlab import ManualClock, Pipeline
from streamlab.errors import SinkFailedError, StepFailedError
from streamlab.io import Sink, SinkWriter
from streamlab.testing import ListSink, ListSource


class FailingSink(Sink):
    """A sink whose writer raises ``OSError("disk full")`` in the method named ``fails_in``, from its
    ``after``-th call on."""

    def __init__(self, fails_in: str, after: int = 0) -> None:
        self.fails_in, self.after = fails_in, after

    def open(self, clock: Any = None) -> SinkWriter:
        sink = self
        if sink.fails_in == "open":
            raise OSError("disk full")

        class Writer(SinkWriter):
            calls = 0

            def _maybe_fail(self, method: str) -> None:
                if method == sink.fails_in:
                    self.calls += 1
                    if self.calls > sink.after:
                        raise OSError("disk full")

            def write_batch(self, batch: pd.DataFrame) -> None:
                self._maybe_fail("write_batch")

            def flush(self) -> None:
                self._maybe_fail("flush")

            def commit(self) -> None:
                self._maybe_fail("commit")

            def close(self) -> None:
                self._maybe_fail("close")

        return Writer()


class CommitRecordingSource(ListSource):
    def __init__(self, records: list[dict[str, Any]], **kwargs: Any) -> None:
        super().__init__(records, **kwargs)
        self.committed: list[Any] = []

    def open(self, resume: Any = None, clock: Any = None) -> Any:
        reader = super().open(resume, clock)
        reader.commit = self.committed.append  # type: ignore[method-assign]
        return reader


def pipeline(sink: Sink) -> tuple[Pipeline, CommitRecordingSource]:
    source = CommitRecordingSource([{"x": i} for i in range(6)], batch_size=2)
    p = Pipeline(source)
    p.stream.to(ListSink(), step_id="kept")
    p.stream.to(sink, step_id="to_disk")
    return p, source


@pytest.mark.parametrize(
    ("fails_in", "after", "action"),
    [
        ("write_batch", 1, "writing a batch of 2 rows"),
        ("flush", 0, "flushing at a commit"),
        ("commit", 0, "publishing what it staged at a commit"),
    ],
)
def test_a_failing_sink_is_named_by_its_step_and_commits_nothing_past_it(
    fails_in: str, after: int, action: str
) -> None:
    p, source = pipeline(FailingSink(fails_in, after))
    with pytest.raises(SinkFailedError) as info:
        p.run(clock=ManualClock(0), commit_every="0s")
    e = info.value
    assert isinstance(e, StepFailedError) and e.step_id == "to_disk" and e.kind == "FailingSink"
    assert isinstance(e.__cause__, OSError) and str(e.__cause__) == "disk full"
    text = str(e)
    assert text.startswith(f"step 'to_disk' (FailingSink) failed {action}: OSError: disk full.")
    assert "Fix:" in text and "Nothing was committed past the rows it failed on" in text
    # commits happen after each delivered batch: only the first batch's is there when the second's write
    # fails; a failed flush or publish fails the very first commit
    assert source.committed == ([{"position": 2}] if fails_in == "write_batch" else [])


def test_a_sink_failing_to_open_is_named_and_nothing_runs() -> None:
    p, source = pipeline(FailingSink("open"))
    with pytest.raises(SinkFailedError, match=r"^step 'to_disk' \(FailingSink\) failed opening: OSError"):
        p.run(clock=ManualClock(0))
    assert source.committed == []


def test_a_sink_failing_to_close_is_logged_naming_its_step(caplog: pytest.LogCaptureFixture) -> None:
    p, source = pipeline(FailingSink("close"))
    with caplog.at_level(logging.ERROR, logger="streamlab"):
        p.run(clock=ManualClock(0))
    assert "step 'to_disk' (FailingSink) failed closing: OSError: disk full" in caplog.text
    assert source.committed[-1] == {"position": 6}  # the run ended and committed before closing
    assert "Nothing was committed" not in caplog.text  # (everything was)


def test_a_background_run_reports_the_step_too() -> None:
    p, _ = pipeline(FailingSink("write_batch"))
    handle = p.start(clock=ManualClock(0))
    with pytest.raises(SinkFailedError, match="step 'to_disk'"):
        handle.wait(timeout=30)


def test_duckdb_sink_errors_name_the_step(tmp_path: Any) -> None:
    """A real sink: a DuckDB file that another table's writer cannot open (a directory at its path)."""
    from streamlab import DuckDBSink

    p = Pipeline(ListSource([{"x": 1}]))
    p.stream.to(DuckDBSink(tmp_path / "out.duckdb", "t"), step_id="results")
    (tmp_path / "out.duckdb").mkdir()  # after the sink was made (which refuses a directory at its path)
    with pytest.raises(SinkFailedError, match=r"^step 'results' \(DuckDBSink\) failed"):
        p.run(clock=ManualClock(0))


def test_a_duckdb_file_another_process_holds_says_which_and_how_to_free_it(tmp_path):
    # the usual case: a notebook (or a DuckDB shell) still connected to the results file while
    # `streamlab run` or another kernel writes to it; the general fix ("correct the sink's settings")
    # gave no hint that the file was merely held
    import subprocess
    import sys

    from streamlab import DuckDBSink

    path = tmp_path / "results.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, sys; c = duckdb.connect({str(path)!r}); print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        p = Pipeline(ListSource([{"k": "a"}]))
        p.stream.to(DuckDBSink(str(path), "rows"))
        with pytest.raises(SinkFailedError) as e:
            p.run(clock=ManualClock(0))
        text = str(e.value)
        assert "failed opening" in text and "lock" in text
        assert "Fix: another process has" in text and "con.close()" in text
    finally:
        holder.communicate("", timeout=30)


class StaysFailedSink(Sink):
    """A sink whose flush fails and whose close reports the same failure again (as an alert sink does)."""

    def open(self, clock: Any = None) -> SinkWriter:
        class Writer(SinkWriter):
            def write_batch(self, batch: pd.DataFrame) -> None:
                pass

            def flush(self) -> None:
                raise OSError("3 alert(s) not delivered")

            def close(self) -> None:
                self.flush()

        return Writer()


@pytest.mark.parametrize("background", [False, True], ids=["run", "start"])
def test_the_sink_a_run_failed_on_is_not_reported_again_when_it_closes(
    background: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """The run raised the sink's failure, then logged it a second time with its traceback when the
    runtime closed that sink (an alert sink, which stays failed, did so); another sink failing to
    close is still logged."""
    p, _ = pipeline(StaysFailedSink())
    p.stream.to(FailingSink("close"), step_id="other")
    with (
        caplog.at_level(logging.DEBUG, logger="streamlab"),
        pytest.raises(SinkFailedError, match=r"^step 'to_disk' \(StaysFailedSink\) failed flushing"),
    ):
        if background:
            p.start(clock=ManualClock(0)).wait(timeout=30)
        else:
            p.run(clock=ManualClock(0))
    errors = [
        r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and "closing" in r.getMessage()
    ]
    assert len(errors) == 1 and "step 'other' (FailingSink) failed closing" in errors[0], errors


def test_an_alert_sink_whose_endpoint_is_down_fails_the_run_once(caplog: pytest.LogCaptureFixture) -> None:
    from streamlab.connectors.alerts import WebhookSink

    from streamlab.testing import find_free_port

    sink = WebhookSink(
        f"http://127.0.0.1:{find_free_port()}/hook", max_retries=0, timeout=2
    )  # nothing listens
    p, _ = pipeline(sink)
    with caplog.at_level(logging.WARNING, logger="streamlab"), pytest.raises(SinkFailedError, match="alert"):
        p.run(clock=ManualClock(0))
    assert [r for r in caplog.records if "failed closing" in r.getMessage()] == []
