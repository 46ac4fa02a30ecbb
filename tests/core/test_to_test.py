"""to_test(): the written module passes, covers every output, and catches the fixed mutation set."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest
from streamlab.datasets import generate_clickstream, to_json_lines

from streamlab import Pipeline, ReplaySource, TumblingWindow, agg
from streamlab._to_test import mutations
from streamlab.clock import ManualClock
from streamlab.testing import ListSink, ListSource, assert_outputs_equal, run_sample


def clicks_pipeline(lines: list[bytes]) -> Pipeline:
    p = Pipeline(ListSource(lines, batch_size=997), name="clicks")
    events = p.parse(
        {
            "event_id": "string",
            "event_type": "category",
            "timestamp": "timestamp",
            "amount": {"type": "float64", "path": "properties.amount"},
        }
    )
    counts = (
        events.dedup("event_id", ttl="1h")
        .window(TumblingWindow("10s"), key="event_type", delay="5s")
        .agg(agg.count(), agg.sum("amount"))
    )
    counts.to(ListSink())  # a sink's output is compared too: the test collects it
    return p


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory):
    frame = generate_clickstream(6000, seed=11, late_share=0.02, duplicate_share=0.02)
    lines = to_json_lines(frame, malformed_share=0.01, seed=11)
    result = clicks_pipeline(lines).run(clock=ManualClock(0))
    path = tmp_path_factory.mktemp("gen") / "test_clicks_regression.py"
    return result.to_test(path)


def test_the_written_module_passes_and_covers_every_output(written) -> None:
    spec = importlib.util.spec_from_file_location("test_clicks_regression", written.path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.test_clicks_reproduces_its_outputs()
    cov = written.coverage
    assert cov["window.late"] >= 1 and cov["parse.dead_letter"] >= 1 and cov["dedup.duplicates"] >= 1
    windows = module.EXPECTED["window"]["columns"]
    assert len(set(windows["window_start"])) >= 3 and len(set(windows["event_type"])) >= 3
    assert sum(len(d["arrival_ns"]) for d in module.INPUTS.values()) <= 1500
    assert "ListSource" not in Path(written.path).read_text()  # no broker, no in-memory source: literals


def test_every_mutation_of_the_pipeline_makes_the_written_test_fail(written) -> None:
    mutants = mutations(written.spec)
    assert sorted(mutants) == ["aggregator", "dedup ttl", "delay", "key", "window size"]
    for name, spec in mutants.items():
        with pytest.raises(AssertionError):
            assert_outputs_equal(run_sample(spec, written.inputs), written.expected)
        assert name  # each mutant was caught


def test_a_running_handle_writes_a_test_from_what_it_read(tmp_path: Path) -> None:
    frame = generate_clickstream(3000, seed=3)
    p = Pipeline(ReplaySource(frame, speed=None), name="live")
    p.window(TumblingWindow("30s"), key="event_type", delay="2s").agg(agg.count())
    handle = p.start(clock=ManualClock(0), paused=True, batch_size=500)
    handle.step(2)
    from streamlab.testing import wait_for

    wait_for(lambda: handle.metrics["events_in"] >= 1000, timeout=30, what="two batches")
    written = handle.to_test(tmp_path / "test_live.py")
    handle.stop()
    assert_outputs_equal(run_sample(written.spec, written.inputs), written.expected)
    assert sum(len(d["arrival_ns"]) for d in written.inputs.values()) <= 1000


def test_a_result_without_recorded_input_says_what_to_do(tmp_path: Path) -> None:
    from streamlab import RunResult

    with pytest.raises(ValueError, match="no recorded input"):
        RunResult({}, {}, None, "finished").to_test(tmp_path / "t.py")


def test_the_sampled_windows_equal_the_runs_own_results(tmp_path: Path) -> None:
    frame = generate_clickstream(6000, seed=12, late_share=0.02, duplicate_share=0.02)
    lines = to_json_lines(frame, malformed_share=0.01, seed=12)
    p = clicks_pipeline(lines)
    sink = p.steps["sink"].sink
    result = p.run(clock=ManualClock(0))
    written = result.to_test(tmp_path / "test_exact.py")
    exact = written.exact
    assert exact["keys"] and exact["start"] < exact["end"]

    def pick(rows: pd.DataFrame) -> pd.DataFrame:
        keys = {k[0] for k in exact["keys"]}
        inside = (rows["window_start"] >= exact["start"]) & (rows["window_end"] <= exact["end"])
        return rows[inside & rows["event_type"].astype(str).isin(keys)]

    run_rows = pick(sink.frame())
    sample_rows = pick(run_sample(written.spec, written.inputs)["window"])
    assert len(run_rows) >= 3
    assert_outputs_equal({"window": sample_rows}, {"window": run_rows})


def test_the_input_tape_stops_recording_at_its_byte_bound() -> None:
    """A stream of large records does not make every run hold their first 200,000 rows."""
    from streamlab._to_test import InputTape

    big = [{"k": "a", "timestamp": i, "blob": "x" * 100_000} for i in range(50)]
    result = Pipeline(ListSource(big, batch_size=5)).run(clock=ManualClock(0))
    assert result.tape.rows == 50 and not result.tape.truncated  # 5 MB: under the default 64 MiB
    small = InputTape(max_bytes=1_000_000)
    executor = type("Executor", (), {"assigned": {}, "clock": ManualClock(0)})()
    record = small._recorder("source", executor)
    for i in range(0, 50, 5):
        record(pd.DataFrame(big[i : i + 5]))
    assert small.truncated and small.rows < 50 and small.bytes >= 1_000_000


def test_a_run_whose_window_got_no_rows_still_writes_a_passing_test(tmp_path: Path) -> None:
    # choose_sample read d["columns"] of the traced inputs, which hold frames: KeyError, no file written
    lines = [f'{{"k": "a", "v": {i}, "timestamp": "2024-01-01T00:00:{i:02d}Z"}}'.encode() for i in range(20)]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    p = Pipeline(ReplaySource(path, raw=True), name="quiet")
    s = p.parse({"k": "string", "v": "int64", "timestamp": "timestamp"})
    s.filter("v > 100").window(TumblingWindow("1m"), key="k").agg(agg.count())
    written = p.run(clock=ManualClock(0)).to_test(tmp_path / "test_quiet.py")
    assert sum(len(d["arrival_ns"]) for d in written.inputs.values()) == 20
    spec = importlib.util.spec_from_file_location("test_quiet", written.path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.test_quiet_reproduces_its_outputs()
