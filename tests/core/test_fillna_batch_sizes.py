"""An expression over an int64 field with gaps gives the same values of the same types whatever the
batch size: ``n.fillna(0)`` was 0.0 (float64) in a batch, or a part of one, whose rows all missed ``n``
and 7 (int64) in one whose rows had it, so a JSON sink wrote ``0.0`` or ``0`` and ``7.0`` or ``7`` by how
the rows were cut, and a batch with both rounded 2**62 + 1 to a float. The exported code writes ints."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import Pipeline
from streamlab.serde import encode_rows
from streamlab.testing import ListSink, ListSource

INTEGER_EXPRESSIONS = {
    "x": "n.fillna(0)",
    "w": "n.fillna(0) + 1",
    "s": "n.fillna(-1).abs()",
    "t": "n.fillna(7) // 2",
}


def _run(values: list[int | None], batch_size: int | None) -> ListSink:
    recs = [
        json.dumps({"timestamp": 1_704_067_200 + i, **({} if v is None else {"n": v})}).encode()
        for i, v in enumerate(values)
    ]
    p = Pipeline(ListSource(recs, batch_size=batch_size) if batch_size else ListSource(recs))
    sink = ListSink()
    p.parse({"timestamp": "timestamp", "n": "int64"}).with_columns(**INTEGER_EXPRESSIONS).to(sink)
    p.run()
    return sink


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), min_size=1, max_size=12))
def test_fillna_of_an_int64_field_is_int64_whatever_the_batch_size(values):
    lines = None
    for batch_size in (1, 2, 7, None):
        sink = _run(values, batch_size)
        for b in sink.batches:
            assert all(b[c].dtype.kind == "i" for c in INTEGER_EXPRESSIONS), (batch_size, b.dtypes.to_dict())
        frame = sink.frame()
        assert frame["x"].tolist() == [0 if v is None else v for v in values]
        # what a JSON sink writes, batch by batch: the same text for every batch size
        got = [line for b in sink.batches for line in encode_rows(b[list(INTEGER_EXPRESSIONS)])]
        assert lines is None or got == lines, batch_size
        lines = got


@pytest.mark.parametrize("batch_size", [1, 2, 7, None])
def test_a_missing_value_filled_with_an_int_is_written_as_an_int(batch_size):
    sink = _run([7, None, 2**62 + 1], batch_size)
    rows = [json.loads(line) for b in sink.batches for line in encode_rows(b[["x"]])]
    assert rows == [{"x": 7}, {"x": 0}, {"x": 2**62 + 1}]
    assert all(type(r["x"]) is int for r in rows), rows  # 0.0 == 0: the JSON text was '0.0'


@pytest.mark.parametrize("batch_size", [1, 2, 7, None])
def test_a_missing_value_filled_with_a_float_makes_floats_in_every_batch(batch_size):
    # n.fillna(0.5) was float64 in a batch with a gap (7.0) and int64 without one (7); and n.fillna(1.0)
    # gave the int 1 for a missing n
    recs = [
        json.dumps({"timestamp": 1_704_067_200 + i, **({} if v is None else {"n": v})}).encode()
        for i, v in enumerate([7, None, 2**62 + 1])
    ]
    p = Pipeline(ListSource(recs, batch_size=batch_size) if batch_size else ListSource(recs))
    sink = ListSink()
    p.parse({"timestamp": "timestamp", "n": "int64"}).with_columns(
        half="n.fillna(0.5)", one="n.fillna(1.0)"
    ).to(sink)
    p.run()
    assert all(b[c].dtype == "float64" for b in sink.batches for c in ("half", "one"))
    lines = [line for b in sink.batches for line in encode_rows(b[["half", "one"]])]
    assert lines == [
        b'{"half":7.0,"one":7.0}',
        b'{"half":0.5,"one":1.0}',
        b'{"half":4.611686018427388e+18,"one":4.611686018427388e+18}',
    ]


@pytest.mark.parametrize("target", ["lambda", "beam"])
def test_fills_export_equal(target, tmp_path):
    from streamlab import TumblingWindow, agg
    from streamlab.export import verify

    p = Pipeline(ListSource([b"{}"]), name="fills")
    cols = p.parse({"timestamp": "timestamp", "k": "string", "n": "int64"}).with_columns(
        zero="n.fillna(0)", half="n.fillna(0.5)", step_id="cols"
    )
    cols.window(TumblingWindow("5s"), key="k").agg(agg.count(), agg.sum("half"), agg.max("zero"))
    recs = [
        json.dumps({"timestamp": 1_704_067_200 + i, "k": "ab"[i % 2], **({"n": i} if i % 3 else {})}).encode()
        for i in range(12)
    ]
    report = verify(p, recs, target, workdir=tmp_path)
    assert report.equal, report.diff.head(20).to_string()
