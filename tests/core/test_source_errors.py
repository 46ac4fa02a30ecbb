"""A source failing at run time named no step either. Its error keeps its type (the connectors' errors,
``KafkaUnreachableError`` and the others, are documented and caught by type) and now carries a note
naming the step and what it was doing, which tracebacks and the command line show."""

from __future__ import annotations

import argparse
from typing import Any

import pandas as pd
import pytest

from streamlab import ManualClock, Pipeline
from streamlab.cli import describe_error
from streamlab.io import Source, SourceReader
from streamlab.testing import ListSink


class GoneError(RuntimeError):
    pass


class FailingSource(Source):
    def __init__(self, fails_in: str) -> None:
        self.fails_in = fails_in

    def open(self, resume: Any = None, clock: Any = None) -> SourceReader:
        if self.fails_in == "open":
            raise GoneError("service gone")
        fails_in = self.fails_in

        class Reader(SourceReader):
            polls = 0

            def poll(self, max_events: int) -> pd.DataFrame | None:
                self.polls += 1
                if fails_in == "poll" and self.polls > 1:
                    raise GoneError("service gone")
                return pd.DataFrame({"x": [self.polls]})

            def commit(self, position: Any) -> None:
                if fails_in == "commit":
                    raise GoneError("service gone")

        return Reader()


@pytest.mark.parametrize(
    ("fails_in", "action"), [("open", "opening"), ("poll", "polling"), ("commit", "committing its position")]
)
def test_a_failing_source_keeps_its_error_and_names_its_step(fails_in: str, action: str) -> None:
    p = Pipeline(FailingSource(fails_in), name="orders")
    p.stream.to(ListSink())
    with pytest.raises(GoneError, match="^service gone") as info:
        p.run(clock=ManualClock(0), commit_every="0s", max_events=5)
    note = f"step 'source' (FailingSource) failed {action}"
    assert info.value.__notes__ == [note]
    said = describe_error(info.value, argparse.Namespace(command="run"))
    assert said.startswith(f"streamlab run: GoneError: service gone ({note})")
