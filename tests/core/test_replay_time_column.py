"""A replay's ``time=`` that names no column of its rows is refused when the source is made: with
``speed=None`` ``ReplaySource(path, time='ts')`` on a file without ``ts`` was accepted and the time
silently unused, and with a speed the error was a plain ``ValueError`` without the parameter or a
did-you-mean. The default ``time='timestamp'`` of an unpaced replay still needs no such column."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import Pipeline, ReplaySource
from streamlab.errors import ParameterError, SpecError


@pytest.fixture
def events(tmp_path):
    path = tmp_path / "events.jsonl"
    path.write_text('{"event_ts": "2024-01-01T00:00:00Z", "n": 1}\n')
    return path


@pytest.mark.parametrize("speed", [None, 1.0])
def test_a_time_column_the_file_lacks_is_refused_with_the_columns_and_a_did_you_mean(events, speed):
    with pytest.raises(ParameterError) as e:
        ReplaySource(events, time="event_tss", speed=speed)
    assert e.value.owner == "ReplaySource" and e.value.parameter == "time"
    assert "no column 'event_tss'" in e.value.problem and "['event_ts', 'n']" in e.value.problem
    assert str(events) in e.value.problem
    assert e.value.fix.startswith("did you mean time='event_ts'?")
    assert ("speed=None" in e.value.fix) == (speed is not None)


def test_a_time_column_far_from_every_column_names_the_fix_without_a_guess(events):
    with pytest.raises(ParameterError) as e:
        ReplaySource(events, time="zzz")
    assert "did you mean" not in e.value.fix
    assert "silently unused" in e.value.problem and "drop time=" in e.value.fix


def test_the_default_time_of_an_unpaced_replay_needs_no_column(events):
    assert ReplaySource(events).columns == ("event_ts", "n")
    assert ReplaySource(events, time="event_ts").frame["event_ts"].dt.tz is not None


def test_a_spec_reports_it_at_the_source_time_path(events):
    spec = (
        "streaming:\n  sources:\n"
        f"  - {{step_id: events, kind: replay, path: '{events}', time: event_tss, speed: null}}\n"
        "  processing: []\n  sinks: []\n"
    )
    with pytest.raises(SpecError) as e:
        Pipeline.from_yaml(spec)
    assert [p.path for p in e.value.problems] == ["streaming.sources[0] (step 'events').time"]
    assert "did you mean time='event_ts'?" in e.value.problems[0].fix


@settings(max_examples=40, deadline=None)
@given(
    columns=st.lists(st.text("abcdefgh_", min_size=1, max_size=6), min_size=1, max_size=4, unique=True),
    time=st.text("abcdefgh_", min_size=1, max_size=6),
    speed=st.sampled_from([None, 2.0]),
)
def test_a_frame_replay_accepts_its_time_exactly_when_it_is_a_column_or_the_unpaced_default(
    columns, time, speed
):
    frame = pd.DataFrame({c: pd.to_datetime(["2024-01-01T00:00:00Z"]) for c in columns})
    ok = time in columns or (speed is None and time == "timestamp")
    if ok:
        assert ReplaySource(frame, time=time, speed=speed).time == time
    else:
        with pytest.raises(
            ParameterError, match=r"^ReplaySource\(time=\.\.\.\): the DataFrame has no column"
        ):
            ReplaySource(frame, time=time, speed=speed)
