"""Flink export: numbers summed from a ``json`` field, and windows without a value, as streamlab has them.

Three faults an independent run of the exported jobs found:

* the SQL job (``main.py``) summed a ``json`` field as ``CAST(<JSON text> AS DOUBLE)``, which throws on
  the text of a string (``'"2"'``), of ``true`` or of an object: the job failed, and failed again on
  every restart, where streamlab reads ``"2"`` as 2 and sets the rest aside on the window's dead letters.
  Such a window now goes to the DataStream job, as ``count_distinct``/``min``/``max`` of such a field do;
* the DataStream job's combiners (``streamlab.export._snippets``, shared with Beam and Lambda) took a
  400-digit JSON integer with ``float(value)``, which raises OverflowError: the job failed on it, where
  streamlab reads it as an infinity;
* the DataStream job wrote a window's mean of no values (and any infinity) as the literals ``NaN`` and
  ``Infinity``, which no strict JSON reader takes, where every streamlab JSON sink writes ``null``.
  ``read_outputs`` (what ``verify`` reads the job's files with) now reads them as strict JSON.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.export import _snippets, to_flink, verify
from streamlab.export.flink import read_outputs
from streamlab.testing import ListSource

SCHEMA = {"event_id": "string", "user_id": "string", "timestamp": "timestamp", "j": "json", "x": "float64"}
# the JSON texts of the field ``j``: numbers, a number's text, text, true, an object, a list, a 400-digit
# integer, a number beyond a double (1e400, which Python reads as inf), zeros and a missing value
VALUES = ["1", '"2"', '"x"', "true", '{"a":1}', "[1]", "9" * 400, "1e400", "-0.0", "0.0", "null", "2.5"]


def lines() -> list[bytes]:
    out = [
        b'{"event_id":"e%d","user_id":"u%d","timestamp":"2024-01-01T00:00:%02dZ","j":%s}'
        % (i, i % 3, i, v.encode())
        for i, v in enumerate(VALUES)
    ]
    # a window whose float field has no value (mean NaN), and one whose sum overflows to inf
    out.append(b'{"event_id":"z1","user_id":"u1","timestamp":"2024-01-01T00:05:00Z","x":1e308}')
    out.append(b'{"event_id":"z2","user_id":"u1","timestamp":"2024-01-01T00:05:01Z","x":1e308}')
    return out


def pipeline() -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="json_numbers")
    events = p.parse(SCHEMA)
    events.window(TumblingWindow("1m"), key="user_id", step_id="sums").agg(
        agg.count(), agg.sum("j"), agg.mean("j"), agg.sum("x"), agg.mean("x"), agg.max("x")
    )
    events.window(TumblingWindow("1m"), key="j", step_id="by_j").agg(agg.count())
    return p


@pytest.mark.parametrize("aggregator", [agg.sum("j"), agg.mean("j")])
def test_flink_sql_leaves_sums_of_a_json_field_to_the_datastream_job(
    aggregator: agg.Aggregator, tmp_path: Path
):
    p = Pipeline(ListSource([b"{}"]), name="json_sum")
    p.parse(SCHEMA).window(TumblingWindow("1m"), step_id="w").agg(aggregator)
    to_flink(p, tmp_path / "json")
    written = {f.name for f in (tmp_path / "json").iterdir()}
    assert "job.sql" not in written and "datastream.py" in written, written
    assert "would CAST its JSON text to DOUBLE" in (tmp_path / "json" / "README.md").read_text()
    # a typed field is a DOUBLE in SQL: the SQL job stays
    q = Pipeline(ListSource([b"{}"]), name="typed_sum")
    q.parse(SCHEMA).window(TumblingWindow("1m"), step_id="w").agg(agg.sum("x"), agg.mean("x"))
    to_flink(q, tmp_path / "typed")
    assert (tmp_path / "typed" / "job.sql").exists()


@pytest.mark.parametrize("kind", ["json", "object"])
def test_flink_sql_leaves_windows_keyed_by_a_json_field_to_the_datastream_job(
    kind: str, tmp_path: Path
) -> None:
    # the SQL job grouped objects and arrays by their JSON text (streamlab's dead letters) and wrote the
    # key 1 as the text '1', "s" as '"s"'
    p = Pipeline(ListSource([b"{}"]), name="json_key")
    p.parse({**SCHEMA, "j": kind}).window(TumblingWindow("1m"), key="j", step_id="w").agg(agg.count())
    to_flink(p, tmp_path / kind)
    written = {f.name for f in (tmp_path / kind).iterdir()}
    assert "job.sql" not in written and "datastream.py" in written, written
    assert f"its key 'j' is a {kind} field" in (tmp_path / kind / "README.md").read_text()


def test_the_combiners_read_an_integer_beyond_a_double_as_an_infinity() -> None:
    huge = int("9" * 400)
    for combine, want in (
        (_snippets.SumCombine("v"), math.inf),
        (_snippets.MeanCombine("v"), math.inf),
        (_snippets.MinCombine("v"), -math.inf),
        (_snippets.MaxCombine("v"), math.inf),
    ):
        acc = combine.create_accumulator()
        for v in (1, huge, -huge if isinstance(combine, _snippets.MinCombine) else 2):
            acc = combine.add_input(acc, {"v": v}, 0)
        assert combine.extract_output(acc) == want, type(combine).__name__
    quantile = _snippets.QuantileCombine("v", 0.5, 0.01)
    acc = quantile.add_input(quantile.create_accumulator(), {"v": huge}, 0)
    assert acc["n"] == 1


def test_read_outputs_refuses_nan_literals(tmp_path: Path) -> None:
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "part-0").write_text('{"mean": NaN}\n')
    with pytest.raises(ValueError, match="not JSON"):
        read_outputs(tmp_path, {"w": "w"})


def test_sums_of_a_json_field_on_the_flink_engine_equal_streamlab(flink_python: str, tmp_path: Path) -> None:
    report = verify(pipeline(), lines(), target="flink", workdir=tmp_path, flink_python=flink_python)
    assert report.equal, report.diff.to_string()
    assert report.notes[0].startswith("Flink ran datastream.py")
    # "x", the object and the list are set aside with streamlab's reasons; "2", true and the 400-digit
    # integer are summed (an infinity)
    assert report.counts["sums.dead_letter"] == {"streamlab": 3, "flink": 3}
    # keyed by j: the object and the list are set aside, the keys are JSON values (1, "2", true), not text
    assert report.counts["by_j.dead_letter"] == {"streamlab": 2, "flink": 2}
    keys = report.exported["by_j"]["j"].tolist()
    assert 1 in keys and "2" in keys and True in keys and '"2"' not in keys
    reasons = sorted(report.exported["sums.dead_letter"]["reason"])
    assert reasons[0] == "agg.sum('j') needs a number, got dict {'a': 1}"
    sums = report.exported["sums"]
    first = sums[sums["window_start"] == sums["window_start"].min()].set_index("user_id")
    assert first.loc["u2", "sum_j"] == 2.5  # "x" and [1] set aside, -0.0 and 2.5 summed
    # u0: 1, true, the 400-digit integer (inf) and 0.0; u1: "2" and 1e400 (inf). An infinity is written
    # null, as streamlab's JSON sinks write it (the file held Infinity, or the job failed on the integer)
    assert first[["sum_j", "mean_j"]].loc[["u0", "u1"]].isna().all().all()
    local = report.local["sums"]
    local = local[local["window_start"] == local["window_start"].min()].set_index("user_id")
    assert local.loc[["u0", "u1"], "sum_j"].map(math.isinf).all()
    # the window of x alone: no value of j (mean NaN, written null), and its sum of x overflows to inf
    last = sums[sums["window_start"] > sums["window_start"].min()]
    assert len(last) == 1 and last[["mean_j", "sum_x", "mean_x"]].isna().all().all()
