"""A comparison of two constants with a text or a list in a filter or rule expression is refused.

pandas' evaluation reads ``==`` with a text (or a list) as ``in``, the text as a list of it: in
``filter("n > 0 and ('FR' == 0)")`` it evaluated ``['FR'] in 0`` and every batch failed ("argument of
type 'int' is not iterable"), and ``ThresholdRule(expr="('FR' == 'FR')")`` alerted on no row where
Python's ``==`` says True. The exported jobs evaluate expressions as pandas does, so both were wrong
alike. Such a comparison does not depend on the rows: it is refused when the step is built, with its
value as Python computes it. Comparisons with a column are read as Python reads them.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import ManualClock, Pipeline
from streamlab.detectors import ThresholdRule
from streamlab.errors import PipelineConfigError, SpecError
from streamlab.spec import pipeline_from_dict
from streamlab.testing import ListSource

ROWS = [{"country": "FR", "n": 0}, {"country": "DE", "n": 1}, {"country": "FR", "n": 2}]


def test_pandas_reads_such_a_comparison_otherwise_than_python() -> None:
    """What the refusal guards against (if pandas changes, this says so)."""
    frame = pd.DataFrame(ROWS)
    assert not frame.eval("('FR' == 'FR')", engine="python")
    with pytest.raises(TypeError, match="not iterable"):
        frame.eval("n > 0 and ('FR' == 0)", engine="python")


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        ("n > 0 and ('FR' == 0)", "False"),
        ("('FR' == 'FR')", "True"),
        ("n >= 0 and ('FR' != 'FR')", "False"),
        ("'F' in 'FR'", "True"),
        ("1 == [1]", "False"),
        ("country == 'FR' or ('FR' == 0)", "False"),
        ("0 == ['FR']", "False"),
        ("n < 'a' == 'a'", "True"),  # a chain: its second comparison
    ],
)
@pytest.mark.parametrize("where", ["filter", "with_columns", "rule"])
def test_a_comparison_of_constants_is_refused_with_its_python_value(
    expr: str, value: str, where: str
) -> None:
    p = Pipeline(ListSource(ROWS))
    with pytest.raises(PipelineConfigError, match="compares two constants") as caught:
        if where == "filter":
            p.stream.filter(expr)
        elif where == "with_columns":
            p.stream.with_columns(ok=expr)
        else:
            p.stream.apply(ThresholdRule("r", expr=expr))
    message = str(caught.value)
    assert f"write its value, {value}, instead" in message and "'FR' == 'FR' is False" in message
    assert "\n" not in message


def test_a_spec_with_such_a_filter_is_refused_at_the_step() -> None:
    spec = {
        "streaming": {
            "sources": [{"step_id": "e", "kind": "replay", "path": "e.jsonl", "raw": True}],
            "processing": [{"step_id": "f", "kind": "filter", "input": "e", "expr": "('FR' == 0)"}],
        }
    }
    with pytest.raises((SpecError, PipelineConfigError), match=r"'f'.*compares two constants, 'FR' == 0"):
        pipeline_from_dict(spec, lazy_sources=True)


def test_a_constant_without_text_or_list_and_comparisons_with_columns_are_kept() -> None:
    p = Pipeline(ListSource(ROWS))
    # 0 == 'FR' is read as 0 in ['FR']: Python's value, kept
    p.stream.filter("(country == 'FR') and ('FR' == country) and (n != 'x') and (1 == 1) and (0 != 'FR')")
    assert p.run(clock=ManualClock(0))["filter"]["n"].tolist() == [0, 2]


_CONSTANTS = st.one_of(
    st.sampled_from(["'FR'", "'F'", "''", "0", "1", "2.5", "True", "False", "[1]", "['FR']", "-1"]),
)
_OPERANDS = st.one_of(_CONSTANTS, st.sampled_from(["n", "country"]))


@settings(max_examples=200, deadline=None)
@given(left=_OPERANDS, op=st.sampled_from(["==", "!="]), right=_OPERANDS)
def test_any_comparison_is_refused_or_filters_as_python_compares(left: str, op: str, right: str) -> None:
    """Accepted, a comparison of constants or of a column with a scalar constant keeps the rows Python's
    ``==`` keeps (a column compared with a list is pandas' membership test: left out here)."""
    if ("[" in left and right in ("n", "country")) or ("[" in right and left in ("n", "country")):
        return
    expr = f"n >= 0 and ({left} {op} {right})"
    p = Pipeline(ListSource(ROWS))
    try:
        p.stream.filter(expr)
    except PipelineConfigError as e:
        assert (
            "compares two constants" in str(e)
            and left not in ("n", "country")
            and right not in ("n", "country")
        )
        return
    want = [row["n"] for row in ROWS if eval(expr, {}, dict(row))]
    got = p.run(clock=ManualClock(0))["filter"]
    assert (got["n"].tolist() if len(got) else []) == want, expr
    assert len(p.run(clock=ManualClock(0)).outputs.get("filter.dead_letter", [])) == 0


def test_an_export_never_sees_such_an_expression(tmp_path: Any) -> None:
    """The pipeline cannot be built, so no export of it is written (before, Beam's module took it and
    every record failed at the same place streamlab's batches did)."""
    p = Pipeline(ListSource([json.dumps(r).encode() for r in ROWS]))
    parsed = p.parse({"country": "string", "n": "int64"}, time=None)
    with pytest.raises(PipelineConfigError, match="compares two constants"):
        parsed.filter("('FR' == 'FR')")
    assert list(p.steps) == ["source", "parse"]
