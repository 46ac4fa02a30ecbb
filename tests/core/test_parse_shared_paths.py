"""Two parse fields that read one JSON key as different types: every field gets the value the per-record
rule (``streamlab._record.read_record``) gives it, at every batch size. Arrow reads a key in one type,
and the last field on it used to decide that type for all of them (wrong values, or a crash, in a batch
of more than 48 records)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from streamlab import ListSink, ListSource, Pipeline
from streamlab._parse import FieldSpec, ParseOperator
from streamlab._record import BadRecordError, read_record
from streamlab.errors import PipelineConfigError
from streamlab.operators import Operator

TYPES = ("int64", "float64", "string", "bool", "timestamp", "json")
N = 60  # records of each kind: more than 48, so a batch of all of them is one arrow read


def value(kind: str, i: int) -> Any:
    return {
        "epoch": 1_704_067_205 + i,
        "big": 2**53 + 1 + 2 * i,
        "float": 1_704_067_205.25 + i,
        "iso": f"2024-01-01T00:00:{i % 60:02d}+01:00",
        "text": f"s{i}",
        "bool": i % 2 == 0,
        "object": {"x": i},
    }[kind]


KINDS = ("epoch", "big", "float", "iso", "text", "bool", "object")


def records(kind: str, path: tuple[str, ...]) -> list[bytes]:
    out = []
    for i in range(N):
        obj: dict[str, Any] = {"event_id": f"e{i}"}
        if i % 13 != 5:  # a few records lack the key, a few hold null
            v = None if i % 10 == 3 else value(kind, i)
            obj.update({path[0]: v} if len(path) == 1 else {path[0]: {path[1]: v}})
        out.append(json.dumps(obj).encode())
    return out


def norm(typ: str, v: Any) -> Any:
    """A value of a field of type ``typ`` as one Python value, whichever path or frame gave it."""
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
        return None
    if typ in ("json", "object"):
        return json.dumps(v, sort_keys=True)
    if typ == "timestamp":
        return v if isinstance(v, int) else int(v.value)
    return {"int64": int, "float64": float, "bool": bool, "string": str, "category": str}[typ](v)


def expected(recs: list[bytes], fields: list[FieldSpec]) -> list[Any]:
    spec = tuple((f.name, f.type, f.path) for f in fields)
    out: list[Any] = []
    for r in recs:
        try:
            row = read_record(r, spec, (), 1 << 20)
            out.append(tuple(norm(f.type, row[f.name]) for f in fields))
        except BadRecordError as e:
            out.append(str(e))
    return out


def decided(
    recs: list[bytes], fields: list[FieldSpec], batch_size: int, op: Operator | None = None
) -> list[Any]:
    op = op or ParseOperator("parse", fields, "value", (), 1 << 20)
    found: dict[int, Any] = {}
    for lo in range(0, len(recs), batch_size):
        chunk = recs[lo : lo + batch_size]
        out = op.process(pd.DataFrame({"value": chunk, "i": range(lo, lo + len(chunk))}))
        ok = out["out"]
        rows = zip(*(ok[f.name].tolist() for f in fields)) if len(ok) else iter(())
        for i, row in zip(ok["i"].tolist(), rows):
            found[i] = tuple(norm(f.type, v) for f, v in zip(fields, row))
        if "dead_letter" in out:
            found.update(zip(out["dead_letter"]["i"].tolist(), out["dead_letter"]["reason"]))
    return [found[i] for i in range(len(recs))]


@pytest.mark.parametrize(("first", "second"), list(itertools.product(TYPES, TYPES)))
def test_two_types_on_one_key_give_the_per_record_values(first, second):
    fields = [
        FieldSpec.of("event_id", "string"),
        FieldSpec.of("a", {"type": first, "path": "v"}),
        FieldSpec.of("b", {"type": second, "path": "v"}),
    ]
    for kind in KINDS:
        recs = records(kind, ("v",))
        want = expected(recs, fields)
        # batches of 1 and 7 (the checked path) over the first records, a null and a missing key among
        # them; a batch of 200 (here all 60): one arrow read
        assert decided(recs[:6], fields, 1) == want[:6], kind
        assert decided(recs[:14], fields, 7) == want[:14], kind
        assert decided(recs, fields, 200) == want, kind


@pytest.mark.parametrize("kind", KINDS)
def test_a_time_and_its_number_at_a_nested_key_and_a_third_field_on_it(kind):
    fields = [
        FieldSpec.of("t", {"type": "timestamp", "path": "p.v"}),
        FieldSpec.of("event_id", "string"),
        FieldSpec.of("n", {"type": "int64", "path": "p.v"}),
        FieldSpec.of("f", {"type": "float64", "path": "p.v"}),
        FieldSpec.of("s", {"type": "category", "path": "event_id"}),
    ]
    recs = records(kind, ("p", "v"))
    want = expected(recs, fields)
    assert decided(recs[:6], fields, 1) == want[:6]
    assert decided(recs[:14], fields, 7) == want[:14]
    assert decided(recs, fields, 200) == want


def test_epoch_time_and_its_integer_through_a_pipeline_and_lambda(tmp_path: Path):
    from streamlab import TumblingWindow, agg
    from streamlab.export import verify

    schema = {
        "event_type": "string",
        "timestamp": "timestamp",
        "t_int": {"type": "int64", "path": "timestamp"},
    }
    recs = [json.dumps({"event_type": "click", "timestamp": 1_704_067_205 + i}).encode() for i in range(60)]
    p = Pipeline(ListSource(recs, batch_size=1000))
    ok = ListSink()
    p.parse(schema).to(ok)
    p.run()
    frame = ok.frame()
    assert frame["timestamp"].iloc[0] == pd.Timestamp("2024-01-01T00:00:05Z")
    assert frame["t_int"].iloc[0] == 1_704_067_205
    p = Pipeline(ListSource([b"{}"]), name="shared")
    p.parse(schema).window(TumblingWindow("1m"), key="event_type").agg(agg.count(), agg.max("t_int"))
    report = verify(p, recs, "lambda", workdir=tmp_path)
    assert report.equal, report.diff.head(20).to_string()


# which two field types can both hold one JSON value (the per-record rule, streamlab._record.check_value):
# a string and a category read text, a timestamp ISO text and epoch numbers, an int64 integers, a float64
# numbers, a bool booleans, an object objects, a json anything
_READS = {
    "string": {"text"},
    "category": {"text"},
    "int64": {"int"},
    "float64": {"int", "float"},
    "bool": {"bool"},
    "timestamp": {"text", "int", "float"},
    "object": {"object"},
    "json": {"text", "int", "float", "bool", "object", "array"},
}
ALL_TYPES = tuple(_READS)


def mixed_records() -> list[bytes]:
    """Records of every kind of value at key ``v``, an array among them, interleaved (nulls and missing
    keys too): more than 48, so a batch of all of them is one arrow read."""
    out = []
    for i in range(N):
        for kind in (*KINDS, "array"):
            obj: dict[str, Any] = {"event_id": f"e{i}"}
            if i % 13 != 5:
                obj["v"] = None if i % 10 == 3 else [i, "x"] if kind == "array" else value(kind, i)
            out.append(json.dumps(obj).encode())
    return out


@pytest.mark.parametrize(("first", "second"), list(itertools.product(ALL_TYPES, ALL_TYPES)))
def test_two_types_on_one_key_are_refused_when_built_exactly_when_no_value_is_both(first, second):
    schema = {"event_id": "string", "a": {"type": first, "path": "v"}, "b": {"type": second, "path": "v"}}
    p = Pipeline(ListSource([b"{}"]))
    if not _READS[first] & _READS[second]:
        with pytest.raises(PipelineConfigError) as caught:
            p.parse(schema, time=None)
        message = str(caught.value)
        assert message.startswith(f"step 'parse' (parse): fields 'a' ({first}) and 'b' ({second}) both read ")
        assert "every record with a value there would be a dead letter" in message
        assert "Fix: drop 'b', or give it a type that shares values with" in message
        return
    parsed = p.parse(schema, time=None)
    step = p.steps[parsed.step_id]
    fields = list(step.fields)
    recs = mixed_records()
    want = expected(recs, fields)
    # where both can hold a value, some record gives both fields one
    assert any(isinstance(w, tuple) and None not in w for w in want)
    assert decided(recs[:40], fields, 1, step.build()) == want[:40]
    assert decided(recs, fields, 1000, step.build()) == want
