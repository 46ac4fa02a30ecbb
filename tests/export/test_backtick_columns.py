"""Column names that are no Python identifiers (a JSON key with a space or a dot) are reachable in
``filter`` and ``with_columns`` expressions by pandas' backtick quoting (`` `unit price` ``), in
streamlab and in the exported Beam and Lambda code. Before, building the step failed: "cannot read
expression '`unit price` > 1': invalid syntax"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamlab import Pipeline, ReplaySource, TumblingWindow, agg
from streamlab.errors import PipelineConfigError
from streamlab.export import verify
from streamlab.testing import ListSource

SCHEMA = {
    "timestamp": "timestamp",
    "kind": "string",
    "unit price": {"type": "float64", "path": "unit price"},
    "user.id": {"type": "string", "path": ["user.id"]},
    "n": "int64",
}


def quoted() -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="quoted")
    kept = p.parse(SCHEMA).filter("`unit price` > 1 or `user.id` == 'u`2'", step_id="keep")
    cols = kept.with_columns(total="`unit price` * n", tag="`user.id` + '!'", step_id="cols")
    cols.window(TumblingWindow("5s"), key="kind").agg(agg.count(), agg.sum("total"))
    return p


def lines() -> list[bytes]:
    return [
        json.dumps(
            {
                "timestamp": 1_700_000_000_000 + i * 1000,
                "kind": "buy" if i % 2 else "view",
                **({"unit price": i * 0.5} if i % 3 else {}),
                "user.id": "u`2" if i == 4 else f"u{i}",
                "n": i,
            }
        ).encode()
        for i in range(12)
    ]


def _spec_source(tmp_path: Path) -> ReplaySource:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines()) + b"\n")
    return ReplaySource(path, raw=True)


def test_streamlab_reads_backtick_quoted_columns(tmp_path: Path):
    p = Pipeline(ListSource(lines()), name="quoted")
    kept = p.parse(SCHEMA).filter("`unit price` > 1 or `user.id` == 'u`2'", step_id="keep")
    kept.with_columns(total="`unit price` * n", tag="`user.id` + '!'", step_id="cols")
    out = p.run().outputs["cols"]
    assert out["n"].tolist() == [4, 5, 7, 8, 10, 11]  # price i/2 > 1 from i = 3 (3, 6, 9 have none), and u`2
    assert out["total"].tolist() == [8.0, 12.5, 24.5, 32.0, 50.0, 60.5]
    assert out["tag"].tolist()[:2] == ["u`2!", "u5!"]
    spec = Pipeline(_spec_source(tmp_path), name="quoted")
    spec.parse(SCHEMA).filter("`unit price` > 1 or `user.id` == 'u`2'", step_id="keep")
    again = Pipeline.from_yaml(spec.to_yaml())  # a spec keeps the quoted names
    assert again.run().outputs["keep"]["n"].tolist() == [4, 5, 7, 8, 10, 11]


def test_an_untrusted_spec_checks_what_a_quoted_name_calls(tmp_path: Path):
    from streamlab.errors import SpecError

    p = Pipeline(_spec_source(tmp_path), name="quoted")
    p.parse(SCHEMA).with_columns(x="`unit price`.to_csv('/tmp/x')", step_id="cols")
    with pytest.raises(SpecError, match="it calls .to_csv., which is not one of the computing methods"):
        Pipeline.from_yaml(p.to_yaml())


@pytest.mark.parametrize("target", ["lambda", "beam"])
def test_backtick_quoted_columns_export_equal(target: str, tmp_path: Path) -> None:
    report = verify(quoted(), lines(), target, workdir=tmp_path)
    assert report.equal, report.diff.head(20).to_string()
    assert report.counts["window"]["streamlab"] > 0


def test_an_unclosed_backtick_is_refused_at_construction():
    p = Pipeline(ListSource([b"{}"]))
    with pytest.raises(PipelineConfigError, match="backtick-quoted name is not closed"):
        p.parse(SCHEMA).filter("`unit price > 1")


@pytest.mark.parametrize("batch_size", [1, 2, 7, None])
def test_a_quoted_integer_field_with_gaps_computes_alike_in_every_batch_size(batch_size):
    # with the quoted names unknown, every int64 column with a gap was read as float64: `n x` // 3 was 2.0
    from streamlab.testing import ListSink

    vals = [7, None, 3, None, 2**62 + 1]
    recs = [
        json.dumps({"timestamp": 1_704_067_200 + i, **({} if v is None else {"n x": v})}).encode()
        for i, v in enumerate(vals)
    ]
    p = Pipeline(ListSource(recs, batch_size=batch_size) if batch_size else ListSource(recs))
    sink = ListSink()
    schema = {"timestamp": "timestamp", "n x": {"type": "int64", "path": "n x"}}
    p.parse(schema).with_columns(third="`n x` // 3", filled="`n x`.fillna(0)").to(sink)
    p.run()
    assert all(b[c].dtype.kind == "i" for b in sink.batches for c in ("third", "filled"))
    assert sink.frame()["third"].tolist()[::2] == [2, 1, (2**62 + 1) // 3]
    assert sink.frame()["filled"].tolist() == [7, 0, 3, 0, 2**62 + 1]
