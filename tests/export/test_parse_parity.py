"""The exported parser is streamlab's parse: for every field type, on arbitrary and bad records and on the
bundled datasets' real records, the generated module's parse gives the runtime's rows and reasons; and
the generated Beam module, run as a program on a file, sends a line that is not UTF-8 to dead letter."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from streamlab import Pipeline, TumblingWindow, agg
from streamlab._parse import FIELD_TYPES, FieldSpec, ParseOperator
from streamlab._record import MAX_DEPTH
from streamlab.export import to_beam, to_lambda, verify
from streamlab.export._plan import record_source
from streamlab.export.beam import _BQ_TYPES
from streamlab.export.verify import compare, load_module, run_local
from streamlab.pipeline import EVENT_SCHEMA
from streamlab.testing import ListSource

pytest.importorskip("apache_beam")

ALL_TYPES = {
    "s": "string",
    "c": "category",
    "i": "int64",
    "f": "float64",
    "b": "bool",
    "t": "timestamp",
    "o": "object",
    "j": "json",
    "amount": {"type": "float64", "path": "p.amount"},
}
ARROW_TYPES = {k: v for k, v in ALL_TYPES.items() if v not in ("object", "json")}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The parse of a generated Beam module (a pipeline with a field of every type)."""
    p = Pipeline(ListSource([b"{}"]), name="every_type")
    p.parse(ALL_TYPES, time="t").window(TumblingWindow("1m"), key="c", time="t").agg(agg.count())
    return load_module(to_beam(p, tmp_path_factory.mktemp("beam")).module)


def runtime(schema: dict, records: list[bytes], batch: int) -> list[tuple[str, Any]]:
    """streamlab's parse of each record: ("ok", row) or ("dead", reason), in record order."""
    fields = [FieldSpec.of(n, s) for n, s in schema.items()]
    op = ParseOperator("parse", fields, "value", ("t",), 1_000_000)
    outcome: dict[int, tuple[str, Any]] = {}
    for lo in range(0, len(records), batch):
        frame = pd.DataFrame({"value": pd.Series(records[lo : lo + batch], dtype=object)})
        frame["_row"] = range(lo, lo + len(frame))
        out = op.process(frame)
        for row in out["out"].to_dict("records"):
            outcome[row.pop("_row")] = ("ok", row)
        if "dead_letter" in out:
            for i, reason in zip(out["dead_letter"]["_row"], out["dead_letter"]["reason"]):
                outcome[i] = ("dead", reason)
    assert sorted(outcome) == list(range(len(records)))
    return [outcome[i] for i in range(len(records))]


def same_value(kind: str, ours: Any, theirs: Any) -> bool:
    if theirs is None:
        return ours is None or (not isinstance(ours, (dict, list, str)) and bool(pd.isna(ours)))
    if kind == "timestamp":  # exported jobs carry microseconds (Beam's resolution)
        return bool(pd.Timestamp(theirs) == pd.Timestamp(ours).floor("us"))
    if kind == "float64":
        return float(ours) == theirs and math.copysign(1, float(ours)) == math.copysign(1, theirs)
    if kind == "int64":  # a column with nulls holds floats in pandas
        return bool(ours == theirs) if isinstance(ours, int) else float(ours) == float(theirs)
    if kind in ("string", "category"):
        return str(ours) == theirs
    # bool, object, json: the same values of the same JSON types (1, 1.0 and true differ)
    return bool(ours == theirs) and json.dumps(ours) == json.dumps(theirs)


def assert_parity(module: Any, schema: dict, records: list[bytes]) -> None:
    spec = tuple((f.name, f.type, f.path) for f in (FieldSpec.of(n, s) for n, s in schema.items()))
    kinds = {name: kind for name, kind, _ in spec}
    alone = runtime(schema, records, 40)  # batches of at most 48 records: the checked path for each
    together = runtime(schema, records, len(records))  # the columnar path where the schema allows it
    assert [o[0] for o in alone] == [o[0] for o in together]
    for raw, ours, batched in zip(records, alone, together):
        try:
            theirs = ("ok", module.parse_record(raw, spec, ("t",), 1_000_000))
        except module.BadRecordError as e:
            theirs = ("dead", str(e))
        assert ours[0] == theirs[0], (raw[:80], ours, theirs)
        if ours[0] == "dead":
            assert ours[1] == batched[1] == theirs[1], raw[:80]
            continue
        for name, kind in kinds.items():
            assert same_value(kind, ours[1][name], theirs[1][name]), (raw[:80], name, ours[1], theirs[1])
            assert same_value(kind, batched[1][name], theirs[1][name]), (
                raw[:80],
                name,
                batched[1],
                theirs[1],
            )


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=6),
    st.sampled_from(["2024-01-01T00:00:05Z", "2024-01-01 00:00:05.25+02:00", "now", "NaT", "", "2024-13-01"]),
)
_json = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)
_RAW_VALUES = [
    "1" + "0" * 400,
    "9" * 600,
    "NaN",
    "-Infinity",
    "1e999",
    "-0",
    '"\\ud800"',
    "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5),
    '{"amount": 1' + "0" * 400 + "}",
    '{"amount": NaN}',
    "1704067200",
    "1704067200123.5",
    "9223372036855",
]


@st.composite
def records(draw: st.DrawFn) -> bytes:
    names = [*ALL_TYPES, "p", "other"]
    obj = draw(st.dictionaries(st.sampled_from(names), _json, max_size=8))
    if draw(st.booleans()):
        obj["t"] = draw(st.sampled_from(["2024-01-01T00:00:05Z", 1704067205, 1704067205.5]))
    if draw(st.booleans()):
        obj["p"] = {"amount": draw(_scalars)}
    text = json.dumps(obj)
    if draw(st.integers(0, 3)) == 0:  # a raw JSON fragment JSON encoders would not write
        key = draw(st.sampled_from(names))
        text = text[:-1] + (", " if obj else "") + f'"{key}": {draw(st.sampled_from(_RAW_VALUES))}' + "}"
    raw = text.encode()
    if draw(st.integers(0, 5)) == 0:
        raw = draw(st.sampled_from([b"", b"   ", b" \n ", b"\xff" + raw, raw + b"\x00", b"[1]", b"null"]))
    return raw


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.generate],
)
@given(st.lists(records(), min_size=1, max_size=60), st.sampled_from([ALL_TYPES, ARROW_TYPES]))
def test_exported_parse_equals_streamlabs_for_every_field_type(
    exported: Any, recs: list[bytes], schema: dict
) -> None:
    assert {FieldSpec.of(n, s).type for n, s in ALL_TYPES.items()} == set(FIELD_TYPES)
    filler = [
        json.dumps({"t": 1704067200 + i, "s": "x", "f": i / 2, "p": {"amount": i}}).encode()
        for i in range(50)
    ]
    assert_parity(exported, schema, recs + filler)  # filler: the runtime's batch takes its columnar path


def test_ordinary_events_with_properties_and_whitespace_records(exported: Any) -> None:
    # the default parse schema has `properties: object`: an ordinary event must parse, not dead-letter
    event = b'{"event_id": "e1", "event_type": "buy", "user_id": "u1", "timestamp": "2024-01-01T00:00:00Z", "properties": {"amount": 3}}'
    spec = tuple((f.name, f.type, f.path) for f in (FieldSpec.of(n, s) for n, s in EVENT_SCHEMA.items()))
    row = exported.parse_record(event, spec, ("timestamp",), 1_000_000)
    assert row["properties"] == {"amount": 3}
    for blank in (b"   ", b"\t\n", b""):
        with pytest.raises(exported.BadRecordError, match="^empty record$"):
            exported.parse_record(blank, spec, ("timestamp",), 1_000_000)
    assert_parity(exported, {**EVENT_SCHEMA, "t": "timestamp"}, [event, b"   ", b'{"properties": [1]}'])
    assert _BQ_TYPES["object"] == _BQ_TYPES["json"] == "JSON"


def _dataset_schema(line: bytes) -> dict[str, str]:
    kinds = {str: "string", bool: "bool", int: "int64", float: "float64", dict: "object", type(None): "json"}
    schema = {k: kinds[type(v)] for k, v in json.loads(line).items()}
    schema["timestamp"] = "timestamp"
    return schema


@pytest.mark.parametrize("name", ["clickstream", "transactions", "iot", "app_logs"])
def test_exported_parse_equals_streamlabs_on_the_bundled_datasets(exported: Any, name: str) -> None:
    from streamlab.datasets import load_raw

    lines = load_raw(name)[::97][:200]
    schema = _dataset_schema(lines[0])
    for s in (schema, EVENT_SCHEMA):  # the dataset's own fields, and the default event schema
        assert_parity(exported, {**s, "t": "timestamp"}, lines)


def test_generated_modules_carry_the_record_parser_verbatim(tmp_path: Path) -> None:
    p = Pipeline(ListSource([b"{}"]), name="carried")
    p.parse().window(TumblingWindow("1m"), key="event_type").agg(agg.count())
    body = record_source()
    assert "def read_record(" in body and "def iso_to_ns(" in body
    assert body in to_beam(p, tmp_path / "beam").module.read_text()
    assert body in to_lambda(p, tmp_path / "lambda").module.read_text()


@pytest.mark.parametrize("input_format", ["lines", "base64"])
def test_the_beam_program_sends_a_line_that_is_not_utf8_to_dead_letter(
    tmp_path: Path, input_format: str
) -> None:
    # base64: the backfill (ReadFromText) decodes each line to its record, line breaks and all
    p = Pipeline(ListSource([b"{}"]), name="from_file")
    p.parse().window(TumblingWindow("1m"), key="event_type").agg(agg.count())  # the default schema
    lines = [
        json.dumps(
            {
                "event_id": f"e{i}",
                "event_type": ("buy", "view")[i % 2],
                "user_id": "u1",
                "timestamp": f"2024-01-01T00:0{i // 6}:{i * 7 % 60:02d}Z",
                "properties": {"amount": i, "page": "/p"},
            }
        ).encode()
        for i in range(24)
    ]
    lines[5:5] = [b'{"event_id": "bad", "note": "caf\xe9"}', b"\xff\xfe not text", b"not json", b"   "]
    data = tmp_path / "input.jsonl"
    if input_format == "base64":
        lines[7] = b"not\njson"
        data.write_bytes(b"".join(base64.b64encode(x) + b"\n" for x in lines))
    else:
        data.write_bytes(b"\n".join(lines) + b"\n")
    files = to_beam(p, tmp_path / "export", runner_source="file")
    out = tmp_path / "out"
    cmd = [sys.executable, str(files.module), "--input", str(data), "--output", str(out)]
    cmd += ["--input_format", input_format]
    cmd += ["--runner", "DirectRunner", "--direct_num_workers=1"]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    module = load_module(files.module)
    exported = {
        ref: pd.DataFrame(
            [json.loads(x) for f in sorted(out.glob(f"{name}-*")) for x in f.read_text().splitlines()]
        )
        for ref, name in module.OUTPUTS.items()
    }
    local = run_local(p, lines)
    equal, diff, counts = compare(p, local, exported, "beam")
    assert equal, diff.to_string()
    assert counts["parse.dead_letter"] == {"streamlab": 4, "beam": 4}
    reasons = sorted(exported["parse.dead_letter"]["reason"])
    assert [r.split(":")[0] for r in reasons] == [
        "empty record",
        "invalid JSON",
        "invalid UTF-8",
        "invalid UTF-8",
    ]
    assert exported["window"]["count"].sum() == 24


def test_object_fields_are_bigquery_json_columns(tmp_path: Path) -> None:
    p = Pipeline(ListSource([b"{}"]), name="to_bq")
    p.parse().window(TumblingWindow("1m"), key="event_type").agg(agg.count())
    module = load_module(to_beam(p, tmp_path, sink="bigquery").module)
    schema = {f["name"]: f["type"] for f in module.BIGQUERY_TABLES["window_late"][0]}
    assert schema["properties"] == "JSON"  # the default schema's `properties: object`
    row = {"event_id": "e1", "properties": {"amount": 3}, "note": None}
    # file loads take JSON values parsed; streaming inserts take them as JSON text (as Beam's own tests)
    assert module.to_json_row(row, ("properties", "note"), False)["properties"] == {"amount": 3}
    assert module.to_json_row(row, ("properties", "note"), True) == {**row, "properties": '{"amount": 3}'}


def test_bigquery_side_outputs_over_the_row_limit_are_written_cut_to_fit(tmp_path: Path) -> None:
    p = Pipeline(ListSource([b"{}"]), name="to_bq")
    p.parse().window(TumblingWindow("1m"), key="event_type").agg(agg.count())
    module = load_module(to_beam(p, tmp_path, sink="bigquery").module)
    # Beam sets a row over 9 MiB aside from every table; the dead letter is kept, cut, with its digest
    raw = '{"event_type": "' + "é\t" * 3_000_000 + '"}'
    row = module.raw_dead_letter_row(raw.encode(), "record too large", "parse")
    fitted = module.fit_side_row(row, "parse_dead_letter", module.BIGQUERY_ROW_LIMIT)
    assert len(module.dump_json(fitted)) <= module.BIGQUERY_ROW_LIMIT
    assert fitted["raw_truncated"] is True and raw.startswith(fitted["raw"])
    assert fitted["raw_sha256"] == hashlib.sha256(raw.encode()).hexdigest()
    for table in ("parse_dead_letter", "window_late"):
        columns = {f["name"] for f in module.BIGQUERY_TABLES[table][0]}
        assert set(fitted) <= columns | {"reason", "step_id"}, table
    small = module.raw_dead_letter_row(b"not json", "invalid JSON", "parse")
    assert module.fit_side_row(small, "parse_dead_letter", module.BIGQUERY_ROW_LIMIT) is small


def test_verify_hands_the_beam_program_records_holding_line_breaks_whole(tmp_path: Path) -> None:
    # verify wrote the sample one record per line, so a record holding "\n" reached the Beam program as
    # two records (two dead letters where streamlab saw one good event, or one bad record), and a record
    # ending in "\r" lost it: false differences. A sample holding one is now handed over in base64.
    p = Pipeline(ListSource([b"{}"]), name="line_breaks")
    p.parse().window(TumblingWindow("1m"), key="event_type").agg(agg.count())
    lines = [
        b'{"event_id": "e1", "event_type": "buy", "user_id": "u",\n "timestamp": "2024-01-01T00:00:01Z"}',
        b'{"event_id": "e2", "event_type": "buy", "user_id": "u", "timestamp": "2024-01-01T00:00:02Z"}\r\n',
        b"not\njson",
        b'{"event_id": "e3", "event_type": "view", "user_id": "u", "timestamp": "2024-01-01T00:00:03Z"}\r',
        b"\n",
    ]
    report = verify(p, lines, "beam", workdir=tmp_path)
    assert report.equal, report.diff.to_string()
    assert report.counts["parse.dead_letter"] == {"streamlab": 2, "beam": 2}
    assert sorted(report.exported["window"]["count"]) == [1, 2]
    raws = sorted(report.exported["parse.dead_letter"]["raw"])
    assert raws == ["\n", "not\njson"]
    assert any("--input_format base64" in n for n in report.notes), report.notes
