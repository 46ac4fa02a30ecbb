"""JSON keys holding a dot (tester4 finding 29): ``{"user.id": ...}`` could not be read, the value silently
became missing. A field named ``"user.id"`` now reads that key, a path given as a list takes its keys
literally, and the runtime's columnar and checked paths and the exported parser agree on them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from streamlab import Pipeline, ReplaySource, TumblingWindow, agg
from streamlab._parse import FieldSpec
from streamlab.export import to_beam
from streamlab.export.flink import _json_path
from streamlab.export.verify import load_module
from streamlab.testing import ListSource

from .test_parse_parity import assert_parity

pytest.importorskip("apache_beam")

DOTTED = {
    "user.id": "string",  # the top-level key "user.id"
    "nested": {"type": "string", "path": "user.id"},  # text: "user" then "id"
    "literal": {"type": "float64", "path": ["event.amount"]},
    "deep": {"type": "int64", "path": ["p", "a.b"]},
    "t": "timestamp",
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Any:
    p = Pipeline(ListSource([b"{}"]), name="dotted")
    p.parse(DOTTED, time="t").window(TumblingWindow("1m"), key="user.id", time="t").agg(agg.count())
    return load_module(to_beam(p, tmp_path_factory.mktemp("beam")).module)


def test_field_paths() -> None:
    paths = {n: FieldSpec.of(n, s).path for n, s in DOTTED.items()}
    assert paths == {
        "user.id": ("user.id",),
        "nested": ("user", "id"),
        "literal": ("event.amount",),
        "deep": ("p", "a.b"),
        "t": ("t",),
    }
    with pytest.raises(ValueError, match=r"list of keys taken literally, e.g. \['user.id'\]"):
        FieldSpec.of("x", {"type": "string", "path": ["a", 1]})


def test_the_reported_record_is_read(exported: Any) -> None:
    line = b'{"user.id": "u42", "event.amount": 3.5, "user": {"id": "n"}, "p": {"a.b": 7}, "t": "2024-01-01T00:00:00Z"}'
    p = Pipeline(ListSource([line]))
    p.parse(DOTTED, time="t")
    row = p.run()["parse"].to_dict("records")[0]
    assert (row["user.id"], row["nested"], row["literal"], row["deep"]) == ("u42", "n", 3.5, 7)
    assert_parity(exported, DOTTED, [line])


def test_a_schema_with_dotted_keys_round_trips_through_yaml(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text("{}\n")
    p = Pipeline(ReplaySource(str(tmp_path / "in.jsonl"), raw=True), name="dotted")
    p.parse(DOTTED, time="t")
    again = Pipeline.from_yaml(p.to_yaml())
    assert [f.path for f in again.steps["parse"].fields] == [f.path for f in p.steps["parse"].fields]


def test_flink_sql_reads_a_dotted_key_by_bracket_notation() -> None:
    assert _json_path(("p", "a.b")) == "$.p[''a.b'']"  # inside a SQL string literal: $.p['a.b']
    assert _json_path(("properties", "amount")) == "$.properties.amount"  # unchanged


_values = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=False), st.text(max_size=3)
)


@st.composite
def records(draw: st.DrawFn) -> bytes:
    obj: dict[str, Any] = {}
    for key in ("user.id", "event.amount", "t"):
        if draw(st.booleans()):
            obj[key] = draw(_values) if key != "t" else "2024-01-01T00:00:05Z"
    if draw(st.booleans()):
        obj["user"] = {"id": draw(_values)} if draw(st.booleans()) else draw(_values)
    if draw(st.booleans()):
        obj["p"] = {draw(st.sampled_from(["a.b", "a"])): draw(_values)}
    return json.dumps(obj).encode()


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.generate],
)
@given(st.lists(records(), min_size=1, max_size=40))
def test_columnar_checked_and_exported_parse_agree_on_dotted_keys(exported: Any, recs: list[bytes]) -> None:
    filler = [
        json.dumps({"t": 1704067200 + i, "user.id": "x", "event.amount": i / 2, "p": {"a.b": i}}).encode()
        for i in range(50)
    ]
    assert_parity(exported, DOTTED, recs + filler)  # filler: the runtime's batch takes its columnar path
