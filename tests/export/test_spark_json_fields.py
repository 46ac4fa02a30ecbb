"""The Spark export's filters and ``with_columns`` over a ``json`` field of mixed values give streamlab's rows.

The Spark job holds a json (or object) field as its JSON text. Its expressions evaluated that text: ``a * 2``
of the number 3 was ``"33"``, ``a > 1`` compared text with a number, and ``with_columns`` declared ``a * 2``
a DOUBLE, which ``"xx"`` (text times two) could not be written as. Now the job reads such a field's values
back before an expression reads them, evaluates row by row as streamlab computes each row of such a field,
and holds a column computed from one as JSON text (type ``json``).

The property test calls the generated module's functions in this process on rows as Spark hands them, for
every expression of ``test_json_field_parity`` (where the runtime equals the exported evaluator row by row);
the engine test runs the job on Spark through ``verify``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamlab import Pipeline
from streamlab.detectors import ZScoreFeature
from streamlab.export import to_spark, verify
from streamlab.export.spark import json_reads, spark_types
from streamlab.export.verify import load_module
from streamlab.testing import ListSource

from .test_json_field_parity import (
    EXPRESSIONS,
    NUMERIC,
    SCHEMA,
    TEXTS,
    TYPED,
    VALUES,
    _exported_filter,
    _exported_map,
    _kind,
    _same,
)

_MODULES: dict[str, Any] = {}


def _module(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The generated module of a job with a with_columns and a filter over a json field (its functions are
    the same for every expression)."""
    if "m" not in _MODULES:
        p = Pipeline(ListSource([b"{}"]), name="json_fields")
        p.parse(SCHEMA, time="t").with_columns(x="a * 2", step_id="cols").filter("x > 1", step_id="big")
        out = tmp_path_factory.mktemp("spark_json_fields")
        _MODULES["m"] = load_module(to_spark(p, out).module)
    return _MODULES["m"]


def _spark_row(value: Any, text: str | None) -> dict[str, Any]:
    """A row as the job hands it to Python: the json field as its JSON text, the time as a UTC datetime."""
    return {
        "t": datetime(1970, 1, 1, 0, 0, 1, tzinfo=timezone.utc),
        "a": json.dumps(value),
        "b": 1.5,
        "s": text,
    }


def test_a_column_computed_from_a_json_field_is_json() -> None:
    """``a * 2`` over a json field is declared json (JSON text in the job), not DOUBLE; one computed from it
    too; a column that reads no json field keeps the type pandas gives it."""
    p = Pipeline(ListSource([b"{}"]))
    p.parse(SCHEMA, time="t").with_columns(x="a * 2", y="b * 2", z="x + b", step_id="cols")
    assert {k: v for k, v in spark_types(p)["cols"].items() if k in "xyz"} == {
        "x": "json",
        "y": "float64",
        "z": "json",
    }
    assert json_reads(SCHEMA, (("a", "b * 2"), ("y", "a + 1"))) == ((), ())


@given(expr=EXPRESSIONS, rows=st.lists(st.tuples(VALUES, TEXTS), min_size=1, max_size=5))
def test_the_jobs_expressions_over_a_json_field_give_streamlabs_rows(
    tmp_path_factory: pytest.TempPathFactory, expr: str, rows: list[tuple[Any, Any]]
) -> None:
    """Each row's value (kind and value: 6 and 6.0 differ), dead letter or filter answer from the
    generated module equals the exported evaluator's, which equals the runtime's (test_json_field_parity)."""
    m = _module(tmp_path_factory)
    columns = (("x", expr),)
    decode, encode = json_reads(SCHEMA, columns)
    given_rows = [{**_spark_row(v, s), "_n": i} for i, (v, s) in enumerate(rows)]
    kw = {"numeric": NUMERIC, "typed": TYPED, "decode": decode, "encode": encode}
    out, dead = m.eval_columns(given_rows, columns, "with_columns", "cols", **kw)
    got: dict[int, tuple[Any, ...]] = {r["_n"]: ("dead",) for r in dead}
    for r in out:
        assert r["a"] == given_rows[r["_n"]]["a"]  # the field itself keeps its text
        got[r["_n"]] = _kind(json.loads(r["x"]) if isinstance(r["x"], str) else r["x"])
    kept, failed = m.filter_rows(given_rows, expr, None, "filter", "big", NUMERIC, TYPED, decode)
    answers = {r["_n"]: "dead" for r in failed} | {r["_n"]: "kept" for r in kept}
    for i, (v, s) in enumerate(rows):
        assert _same(got[i], _exported_map(v, s, expr)), (expr, rows, i, got[i])
        assert answers.get(i, "dropped") == _exported_filter(v, s, expr), (expr, rows, i)


def test_filters_and_columns_over_a_json_field_on_spark_equal_streamlab(tmp_path: Path) -> None:
    """The job run on Spark: with_columns on the DataFrame path, a filter on the field, a filter on a
    column computed from it, both after a feature step (one applyInPandasWithState group); every kind of
    JSON value in one micro-batch."""
    values: list[object] = [3, 2.5, True, None, "x", {"k": 1}, [1, 2], 2**63, -4]
    sample = [json.dumps({"t": i + 1, "a": v, "b": 1.5, "s": "y"}).encode() for i, v in enumerate(values)]
    p = Pipeline(ListSource(sample))
    events = p.parse(SCHEMA, time="t")
    events.with_columns(x="a * 2", step_id="twice").filter("x > 1", step_id="big")
    events.with_columns(n="a.str.len()", step_id="lengths")
    events.with_columns(neg="-a", step_id="negated")
    events.with_columns(bang="a + '!'", step_id="joined")
    events.filter("a > 1", step_id="above")
    # after a feature step: the run of steps in one applyInPandasWithState group (run_segment)
    z = events.apply(ZScoreFeature("s", "b"), step_id="z")
    z.with_columns(y="a * 2", step_id="then").filter("a > 1", step_id="then_above")
    report = verify(p, sample, "spark", workdir=tmp_path)
    assert report.equal, report.diff.head(20).to_string()
    kept = {ref: n["streamlab"] for ref, n in report.counts.items()}
    # some rows kept and some dead-lettered by each step ("twice" is read by "big" only)
    assert all(kept[r] for r in ("big", "lengths", "negated", "joined", "above", "then_above")), kept
    dead = ("twice", "lengths", "negated", "joined", "above", "then")
    assert all(kept[f"{r}.dead_letter"] for r in dead), kept
