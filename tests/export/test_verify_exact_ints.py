"""``verify`` reads an exported int64 column with missing values exactly (not as float64, which rounds
an int beyond 2**53), so matching outputs compare equal and outputs one apart do not."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.export import verify
from streamlab.export.verify import compare, rows_frame
from streamlab.testing import ListSource

BIG = 2**62 + 3  # 4611686018427387907: a double cannot hold it
LINES = [b'{"timestamp": 1, "n": %d}' % BIG, b'{"timestamp": 2}']


def pipeline() -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="bigkey")
    p.parse({"timestamp": "timestamp", "n": "int64"}).window(TumblingWindow("1m"), key="n").agg(agg.count())
    return p


def test_rows_frame_keeps_every_digit_and_tells_neighbours_apart() -> None:
    rows = [{"n": BIG, "window_start": 0, "window_end": 60_000_000_000, "count": 1}]
    rows.append({"n": None, "window_start": 0, "window_end": 60_000_000_000, "count": 1})
    frame = rows_frame(rows)
    assert frame["n"].tolist()[0] == BIG
    local = {"window": frame.copy()}
    off_by_one = rows_frame([{**rows[0], "n": BIG + 1}, rows[1]])
    assert compare(pipeline(), local, {"window": frame}, "beam")[0]
    assert not compare(pipeline(), local, {"window": off_by_one}, "beam")[0]


@pytest.mark.slow
def test_a_big_int_key_beside_a_missing_one_verifies_equal_on_beam(tmp_path: Path) -> None:
    pytest.importorskip("apache_beam")
    report = verify(pipeline(), LINES, "beam", workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    assert sorted(report.exported["window"]["n"].dropna().tolist()) == [BIG]
