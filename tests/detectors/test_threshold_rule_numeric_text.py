"""``ThresholdRule(column=, op=, value=)`` with a number ``value`` reads a text as the number it writes.

The features and detectors read ``"5000"`` as 5000.0 (``streamlab._floats.float_values``, and
``streamlab._detector_record.as_number`` in the exported code), and docs/semantics.md says every rule
reads numbers that way; the rule compared the text itself with the number, found them not comparable, and
never alerted on ``"5000" > 1000`` (``!=``: always alerted). The runtime and the exported rule
(``compare_values``, carried into the Beam, Lambda, Flink and Spark code) now read the text as a number;
a text that writes no number is no alert, as a missing value.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import Pipeline
from streamlab._detector_record import RuleStep, as_number
from streamlab.detectors import ThresholdRule
from streamlab.export._detectors import row_step_spec
from streamlab.testing import ListSink, ListSource

OPS = [">", ">=", "<", "<=", "==", "!="]
TEXTS = [
    "5000",
    "10",
    " 10 ",
    "1e3",
    "-7.5",
    "x",
    "",
    "nan",
    "inf",
    "-inf",
    "n/a",
    "0x10",
    "9007199254740993",
]


def _alerts(values: list[Any], op: str, bound: Any, dtype: Any = object) -> list[bool]:
    rule = ThresholdRule("r", column="amount", op=op, value=bound)
    out = rule.build().process(pd.DataFrame({"amount": pd.Series(values, dtype=dtype)}))["out"]
    return [bool(a) for a in out["is_alert"]]


def _exported(values: list[Any], op: str, bound: Any) -> list[bool]:
    """The exported code's rule (streamlab's per-record step, which every exporter carries), a row at a time."""
    spec = row_step_spec(ThresholdRule("r", column="amount", op=op, value=bound), "r")
    step = RuleStep(spec, None, None, None)
    return [bool(step.process({"amount": v})[0][1]["is_alert"]) for v in values]


def test_numeric_text_is_compared_as_its_number() -> None:
    values = ["5000", "10", " 10 ", "1e3", "x", None, 7000, 5.5]
    assert _alerts(values, ">", 1000) == [True, False, False, False, False, False, True, False]
    assert _alerts(values, "==", 10) == [False, True, True, False, False, False, False, False]
    assert _alerts(values, "!=", 10) == [True, False, False, True, True, True, True, True]
    assert _alerts(values, "<=", 1000.0) == [False, True, True, True, False, False, False, True]
    for op in OPS:  # the exported rule reads each row as the runtime does
        assert _exported(values, op, 1000) == _alerts(values, op, 1000), op


@pytest.mark.parametrize("dtype", [object, "str", "category"])
def test_every_column_of_text_reads_it_as_numbers(dtype: Any) -> None:
    for op in OPS:
        for bound in (10, 1000.5, -7.5, 0):
            want = [
                (not math.isnan(as_number(t)) and bool(eval(f"a {op} b", {"a": as_number(t), "b": bound})))
                or (op == "!=" and math.isnan(as_number(t)))
                for t in TEXTS
            ]
            assert _alerts(TEXTS, op, bound, dtype) == want, (op, bound, dtype)
            assert _exported(TEXTS, op, bound) == want, (op, bound)


def test_a_text_value_still_compares_with_text() -> None:
    # value='10' (a text): the column's text is compared as text, not read as a number
    assert _alerts(["10", "010", 10], "==", "10") == [True, False, False]
    assert _exported(["10", "010", 10], "==", "10") == [True, False, False]


_VALUES = st.one_of(
    st.sampled_from(TEXTS),
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-5000, 5000).map(str),
    st.floats(-1e4, 1e4).map(repr),
)


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(_VALUES, min_size=1, max_size=12),
    op=st.sampled_from(OPS),
    bound=st.one_of(st.integers(-5000, 5000), st.floats(-1e4, 1e4)),
)
def test_the_runtime_reads_each_row_as_the_exported_rule(values: list[Any], op: str, bound: Any) -> None:
    assert _alerts(values, op, bound) == _exported(values, op, bound)
    texts = [v for v in values if isinstance(v, str) or v is None]
    if texts:
        assert _alerts(texts, op, bound, "str") == _exported(texts, op, bound)


def test_a_pipeline_of_text_amounts_alerts_on_the_big_ones() -> None:
    # a json field holds what each record sent: numbers as text beside numbers (a column declared text is
    # refused when the rule is added, as for a feature: declare it a number)
    amounts = ["5000", "12", "abc", None, 1500.5, 7, " 2000 "]
    events = [{"value": json.dumps({"amount": a, "n": i, "timestamp": i})} for i, a in enumerate(amounts)]
    p = Pipeline(ListSource(events, batch_size=3))
    sink = ListSink()
    parsed = p.parse({"amount": "json", "n": "int64", "timestamp": "timestamp"})
    parsed.apply(ThresholdRule("big", column="amount", op=">", value=1000)).to(sink)
    p.run()
    assert [(r["n"], r["rule"]) for r in sink.rows() if r["is_alert"]] == [(0, "big"), (4, "big"), (6, "big")]


@pytest.mark.slow
def test_the_exported_beam_rule_alerts_on_numeric_text(tmp_path: Path) -> None:
    pytest.importorskip("apache_beam")
    from streamlab.export import verify

    p = Pipeline(ListSource([b"{}"]), name="text_rule")
    p.parse({"event_id": "string", "amount": "json", "timestamp": "timestamp"}).apply(
        ThresholdRule("big", column="amount", op=">", value=1000), step_id="big"
    )
    amounts = ["5000", "12", "abc", None, 1500.5, " 2000 ", True]
    lines = [
        json.dumps({"event_id": f"e{i}", "amount": a, "timestamp": f"2024-03-01T00:00:{i:02d}Z"}).encode()
        for i, a in enumerate(amounts)
    ]
    report = verify(p, lines, "beam", workdir=tmp_path)
    assert report.equal, report.diff.head(20).to_string()
    alerted = report.local["big"].set_index("event_id")["is_alert"].to_dict()
    assert [e for e, a in alerted.items() if a] == ["e0", "e4", "e5"]
