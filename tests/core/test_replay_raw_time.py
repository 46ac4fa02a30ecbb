"""``ReplaySource(path, raw=True, time=...)`` checks its event-time field as the non-raw replay checks its
column. Before, a misnamed field paced nothing (each line was released with the one before it: the file
replayed at once, unpaced, silently), and ``time=`` without ``speed`` was silently unused."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamlab import ReplaySource
from streamlab.errors import ParameterError

LINES = (
    b"not json\n"  # a bad line is the parse step's dead letter, not a reason to refuse the file
    b'{"ts":"2024-01-01T00:00:00Z","user":"u1","label":"x"}\n'
    b'{"ts":"2024-01-01T00:00:05Z","user":"u2","label":"y"}\n'
)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    (tmp_path / "e.jsonl").write_bytes(LINES)
    return tmp_path / "e.jsonl"


def test_a_paced_raw_replay_without_its_time_field_is_refused_with_did_you_mean(path: Path) -> None:
    with pytest.raises(ParameterError) as e:
        ReplaySource(path, raw=True, time="t", speed=1.0)
    assert e.value.parameter == "time"
    assert "the first 3 lines of e.jsonl have no field 't' to pace the replay by" in e.value.problem
    assert "['ts', 'user', 'label']" in e.value.problem and "replayed unpaced" in e.value.problem
    assert e.value.fix.startswith("did you mean time='ts'?")
    with pytest.raises(ParameterError, match="no field 'timestamp'"):  # the default name, not in the file
        ReplaySource(path, raw=True, speed=1.0)


def test_a_paced_raw_replay_whose_time_field_holds_no_time_is_refused(path: Path) -> None:
    with pytest.raises(ParameterError) as e:
        ReplaySource(path, raw=True, time="label", speed=1.0)
    assert "field 'label' of the first 3 lines of e.jsonl holds no time to pace the replay by (e.g. 'x')" in (
        e.value.problem
    )


def test_a_paced_raw_replay_is_paced_by_its_time_field(path: Path) -> None:
    release = ReplaySource(path, raw=True, time="ts", speed=1.0).release_times()
    assert (release[-1] - release[0]) == 5_000_000_000


def test_time_without_speed_on_a_raw_replay_is_refused_as_unused(path: Path) -> None:
    with pytest.raises(ParameterError) as e:
        ReplaySource(path, raw=True, time="ts")
    assert (
        "time='ts' with raw=True and speed=None" in e.value.problem and "silently unused" in e.value.problem
    )
    assert "parse({...}, time='ts')" in e.value.fix
    assert ReplaySource(path, raw=True).columns == ("value",)  # the default name, unpaced: nothing to read
