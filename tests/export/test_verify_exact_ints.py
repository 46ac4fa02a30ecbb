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


# A json field holding ints in some windows and floats in others: first/last (and a key of it) are ints
# there and floats here, as the exported programs write them in JSON. verify read such a column as
# float64, so 1 became 1.0 and differed from streamlab's 1 (and a key 2**60 + 1 lost its last digits).
JSON_LINES = [
    b'{"timestamp": "2024-01-01T00:00:00Z", "w": 1152921504606846977}',
    b'{"timestamp": "2024-01-01T00:00:10Z", "w": 2.5}',
    b'{"timestamp": "2024-01-01T00:00:20Z", "w": 1}',
    b'{"timestamp": "2024-01-01T00:00:30Z"}',
]


def json_pipeline() -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="jsonfirst")
    s = p.parse({"timestamp": "timestamp", "w": "json"})
    s.window(TumblingWindow("5s"), step_id="firsts").agg(agg.first("w"), agg.last("w"), agg.count())
    s.window(TumblingWindow("5s"), key="w", step_id="keyed").agg(agg.count())
    return p


def test_rows_frame_keeps_ints_beside_floats_as_written() -> None:
    import json

    from streamlab.export.verify import run_local
    from streamlab.serde import dump_json

    p = json_pipeline()
    local = run_local(p, JSON_LINES, batch_size=1)
    # what an exported program writes: each row as JSON, read back by verify
    written = {
        ref: rows_frame([json.loads(dump_json(r)) for r in local[ref].to_dict("records")]) for ref in local
    }
    assert written["firsts"]["first_w"].tolist() == [2**60 + 1, 2.5, 1, None]
    assert [type(x) for x in written["keyed"]["w"].tolist()] == [int, float, int, type(None)]
    assert compare(p, local, written, "beam")[0]
    as_floats = {**written, "firsts": written["firsts"].assign(first_w=[float(2**60 + 1), 2.5, 1.0, None])}
    assert not compare(p, local, as_floats, "beam")[0]  # 1.0 for 1 is still a difference


@pytest.mark.slow
def test_a_json_fields_ints_beside_floats_verify_equal_on_beam_and_lambda(tmp_path: Path) -> None:
    pytest.importorskip("apache_beam")
    report = verify(json_pipeline(), JSON_LINES, "beam", workdir=tmp_path / "beam")
    assert report.equal, report.diff.to_string()
    p = Pipeline(ListSource([b"{}"]), name="jsonfirst")  # Lambda runs one chain: the first/last window
    p.parse({"timestamp": "timestamp", "w": "json"}).window(TumblingWindow("5s"), step_id="firsts").agg(
        agg.first("w"), agg.last("w"), agg.count()
    )
    for batch in (1, 3):
        report = verify(p, JSON_LINES, "lambda", workdir=tmp_path / f"lambda{batch}", lambda_batch_size=batch)
        assert report.equal, report.diff.to_string()
        assert report.exported["firsts"]["first_w"].tolist() == [2**60 + 1, 2.5, 1, None]
