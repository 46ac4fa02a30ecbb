"""streamlab's errors could not cross a process boundary: pickle rebuilds an exception as
``cls(*args)``, with its message alone, which the ``__init__`` of ``StepFailedError(step_id, kind,
cause)``, ``PipelineConfigError``, ``SinkFailedError``, ``SpecError`` and ``CheckpointError`` refuse: a
pipeline failing in a process pool (or a test worker) reached the parent as a ``TypeError`` about the
error's constructor, or a broken pool, instead of the step, the problem and the fix."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from streamlab import ManualClock, Pipeline
from streamlab._checkpoint import CheckpointError
from streamlab.errors import ParameterError, PipelineConfigError, SinkFailedError, SpecError, StepFailedError
from streamlab.testing import ListSink, ListSource


def dropped_time(batch: pd.DataFrame) -> pd.DataFrame:
    return batch.drop(columns=["timestamp"])


def failing_window() -> None:
    """A window whose input lost its event-time column (a function dropped it): the step fails."""
    from streamlab import TumblingWindow, agg

    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    p = Pipeline(ListSource([{"timestamp": t0, "k": "a"}]))
    p.stream.map_many(dropped_time).window(TumblingWindow("1m"), key="k", step_id="per_minute").agg(
        agg.count()
    )
    p.run(clock=ManualClock(0))


def failing_sink(tmp: str) -> None:
    import os

    from streamlab import JsonLinesSink

    p = Pipeline(ListSource([{"x": 1}]))
    p.stream.to(JsonLinesSink(os.path.join(tmp, "out.jsonl")), step_id="out")
    os.mkdir(os.path.join(tmp, "out.jsonl"))  # a directory made after the sink: it cannot open its file
    p.run(clock=ManualClock(0))


def bad_config() -> None:
    Pipeline(ListSource([{"x": 1}])).stream.filter("x >", step_id="keep")


def bad_spec() -> None:
    Pipeline.from_yaml("streaming: {sources: []}\n")


def bad_flag() -> None:
    from streamlab import ReplaySource

    ReplaySource(pd.DataFrame({"x": [1]}), raw="yes")  # type: ignore[arg-type]


def bad_checkpoint(tmp: str) -> None:
    (Path(tmp) / "checkpoint.slcp").write_bytes(b"")
    p = Pipeline(ListSource([{"x": 1}]))
    p.stream.to(ListSink())
    p.run(clock=ManualClock(0), checkpoint_dir=tmp)


CASES: list[tuple[Any, type[BaseException], bool]] = [
    (failing_window, StepFailedError, False),
    (failing_sink, SinkFailedError, True),
    (bad_config, PipelineConfigError, False),
    (bad_spec, SpecError, False),
    (bad_flag, ParameterError, False),
    (bad_checkpoint, CheckpointError, True),
]


def raised(fn: Any, tmp_path: Path, needs_dir: bool) -> BaseException:
    try:
        fn(str(tmp_path)) if needs_dir else fn()
    except Exception as e:
        return e
    raise AssertionError(f"{fn.__name__} raised nothing")


@pytest.mark.parametrize(("fn", "kind", "needs_dir"), CASES)
def test_errors_round_trip_through_pickle(fn: Any, kind: type, needs_dir: bool, tmp_path: Path) -> None:
    error = raised(fn, tmp_path, needs_dir)
    assert type(error) is kind
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is kind and str(copy) == str(error) and copy.args == error.args
    assert {k: v for k, v in vars(copy).items()} == {k: v for k, v in vars(error).items()}


def test_a_step_failing_in_a_process_pool_reaches_the_parent_naming_the_step() -> None:
    # a fresh interpreter (a forked pytest worker with threads could crash in the child), the error
    # pickled back as a process pool sends it
    code = (
        "import pickle, sys\n"
        "from tests.core.test_error_pickling import failing_window\n"
        "try:\n    failing_window()\nexcept Exception as e:\n    sys.stdout.buffer.write(pickle.dumps(e))\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, timeout=120, check=True
    )
    with pytest.raises(
        StepFailedError, match=r"step 'per_minute' \(window\) failed: .*Fix: keep 'timestamp'"
    ) as info:
        raise pickle.loads(done.stdout)
    assert info.value.step_id == "per_minute" and info.value.kind == "window"
