"""An expression with an operator or form pandas' evaluation has no rule for is refused when it is built.

``a >> 1 > 0``, ``a ^ 1``, ``a if b else 0``, ``{'a': 1}``, ``b @ b`` and ``a & 1`` were accepted by
filter and with_columns (and by a rule's ``expr``), then every row went to dead letter with a pandas
internal error (``'PandasExprVisitor' object has no attribute 'visit_RShift'``, ``'IfExp' nodes are not
implemented``, ``cannot evaluate scalar only bool ops``). Each is now refused at construction, naming the
step, the form and a fix; look-alikes that pandas evaluates stay accepted and compute.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamlab import ManualClock, Pipeline, ReplaySource
from streamlab.detectors import ThresholdRule
from streamlab.errors import PipelineConfigError, SpecError
from streamlab.testing import ListSource

ROWS = [{"a": i, "b": 2, "t": i % 2 == 0, "timestamp": i} for i in range(4)]

REFUSED = {
    "a >> 1 > 0": ("shifts bits (>>)", "a >> 1 is a // 2"),
    "a << 1 > 0": ("shifts bits (<<)", "a << 1 is a * 2"),
    "a ^ 1": ("uses ^ (exclusive or)", "(a > 1) != (b > 1)"),
    "(a > 1) ^ (b > 1)": ("uses ^ (exclusive or)", "(a > 1) != (b > 1)"),
    "a if b else 0": ("uses 'x if c else y'", "write a.where(b, 0)"),
    "(a + 1) if t else b": ("uses 'x if c else y'", "write (a + 1).where(t, b)"),
    "{'a': 1}": ("holds a mapping", "map_many(fn)"),
    "a in {1, 2}": ("holds a set", "a in [1, 2]"),
    "b @ b": ("uses @ (matrix product)", "a * b"),
    "a & 1": ("uses the number 1 as an operand of & / and", "(a > 1) & (b < 2)"),
    "a | 1": ("uses the number 1 as an operand of | / or", "(a > 1) | (b < 2)"),
    "(a > 1) & -2.5": ("uses the number -2.5 as an operand of & / and", "a != 0"),
    "a > 1 and 0": ("uses the number 0 as an operand of & / and", "a != 0"),
}

# the value each look-alike computes, over ROWS
ACCEPTED = {
    "(a > 1) & (b < 3)": [False, False, True, True],
    "(a > 1) | t": [True, False, True, True],
    "a > 1 & b == 2": [False, False, True, True],  # pandas reads & as and: (a > 1) and (b == 2)
    "(a > 1) & True": [False, False, True, True],
    "a & b": [0, 0, 2, 2],
    "(a > 1) != (b > 1)": [True, True, False, False],
    "a // 2": [0, 0, 1, 1],
    "a.where(t, 0)": [0, 0, 2, 0],
    "a in [1, 2]": [False, True, True, False],
    "-a < -1": [False, False, True, True],
    "~t": [False, True, False, True],
}


def _pipeline() -> Pipeline:
    return Pipeline(ListSource(ROWS))


@pytest.mark.parametrize("expr", sorted(REFUSED))
def test_filter_and_with_columns_refuse_the_form_naming_it_and_a_fix(expr: str) -> None:
    problem, fix = REFUSED[expr]
    with pytest.raises(PipelineConfigError) as e:
        _pipeline().filter(expr, step_id="f")
    message = str(e.value)
    assert message.startswith("step 'f' (filter): ")
    assert f"{problem}" in message and "which expressions cannot evaluate" in message
    assert fix in message.split("Fix: ", 1)[1]
    with pytest.raises(PipelineConfigError, match=r"step 'm' \(map\)") as e:
        _pipeline().with_columns(step_id="m", z=expr)
    assert problem in str(e.value)


def test_a_rule_expression_is_refused_alike() -> None:
    with pytest.raises(PipelineConfigError, match=r"shifts bits \(>>\).*Fix: divide by a power of 2") as e:
        _pipeline().apply(ThresholdRule("big", expr="a >> 1 > 0"), step_id="d")
    assert "step 'd'" in str(e.value)


def test_a_spec_holding_such_an_expression_is_refused_when_read(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    p = Pipeline(ReplaySource(str(events)))
    p.filter("a > 1", step_id="f")
    text = p.to_yaml()
    assert "expr: a > 1" in text
    with pytest.raises(SpecError, match=r"step 'f'\): expression .*uses \^ \(exclusive or\)"):
        Pipeline.from_yaml(text.replace("expr: a > 1", "expr: (a > 1) ^ (b > 1)"))


@pytest.mark.parametrize("expr", sorted(ACCEPTED))
def test_look_alikes_pandas_evaluates_stay_accepted(expr: str) -> None:
    p = _pipeline()
    p.with_columns(step_id="m", z=expr)
    result = p.run(clock=ManualClock(0))
    assert len(result["m.dead_letter"]) == 0
    assert result["m"]["z"].tolist() == ACCEPTED[expr]
