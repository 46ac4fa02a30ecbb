"""A JSON-lines file replayed without ``raw`` is loaded whole: each line that is not one JSON object (a
number, a string, null, an array, nesting thousands of levels deep) makes the load fail with a
ValueError naming its line and the raw replay that sends it to dead letter, never a row of columns
``0, 1, ...`` made from it, nor a RecursionError or AttributeError."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlab import ListSink, ManualClock, Pipeline, ReplaySource

GOOD = [
    b'{"timestamp": "2024-01-01T00:00:01Z", "a": 1}',
    b'{"timestamp": "2024-01-01T00:00:02Z", "a": "\\ud83d\\ude00"}',  # a surrogate escape: Python's reader
    b'{"timestamp": "2024-01-01T00:00:03Z", "a": ' + b"1" * 30 + b"}",  # beyond 64 bits: Python's reader
    b"{}",
]
BAD = [
    b"5",
    b'"text"',
    b'"\\ud800"',
    b"null",
    b"true",
    b"[1, 2]",
    b"[]",
    b'[{"timestamp": "2024-01-01T00:00:04Z", "a": 1}]',
    b"[" * 10_000 + b"]" * 10_000,
    b'{"timestamp": "2024-01-01T00:00:05Z", "a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    b'{"a": ' + b'{"a": ' * 10_000 + b"1" + b"}" * 10_001,
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(GOOD + BAD), min_size=1, max_size=6), st.sampled_from([".jsonl", ".json"]))
def test_a_line_that_is_not_an_object_is_named_never_made_a_row(
    tmp_path_factory: pytest.TempPathFactory, lines: list[bytes], suffix: str
) -> None:
    path = tmp_path_factory.mktemp("lines") / f"events{suffix}"
    path.write_bytes(b"\n".join(lines) + b"\n")
    bad = [n for n, line in enumerate(lines, 1) if line in BAD]
    if suffix == ".json" and len(lines) == 1 and lines[0].startswith((b"[{", b"[]")):
        bad = []  # a .json file holding one array of objects (or none): its rows
    if not bad:
        frame = ReplaySource(path).frame
        assert len(frame) == sum(line.count(b"{") for line in lines)
        assert all(isinstance(c, str) for c in frame.columns)
        return
    with pytest.raises(ValueError, match="ReplaySource") as caught:
        ReplaySource(path)
    if suffix == ".jsonl" or lines[0] not in BAD:  # (a .json file opening with "[" is one JSON array)
        assert f"line {bad[0]} of {path}" in str(caught.value)
        assert "raw=True" in str(caught.value)


@pytest.mark.parametrize("line", BAD)
def test_the_raw_replay_of_such_a_file_sends_the_line_to_dead_letter(tmp_path: Path, line: bytes) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(GOOD[0] + b"\n" + line + b"\n" + GOOD[1] + b"\n")
    p = Pipeline(ReplaySource(path, raw=True))
    parsed = p.parse({"timestamp": "timestamp", "a": "json"})
    ok, dead = ListSink(), ListSink()
    parsed.to(ok)
    parsed.dead_letter.to(dead)
    p.run(clock=ManualClock(0))
    assert len(ok.frame()) == 2
    assert dead.frame()["raw"].tolist() == [line] and dead.frame()["reason"].str.len().gt(0).all()
