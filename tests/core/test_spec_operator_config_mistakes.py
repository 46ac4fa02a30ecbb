"""Mistakes in the ``config:`` of an operator step (a feature, rule, detector or pattern) in a spec: each
is one problem at its path with the config's own fix, and exit status 2 from ``streamlab run``.

Before: a config's check came out as ``config: ThresholdRule: step "ThresholdRule(name='big')"
(threshold_rule): op must be ... Fix: give ThresholdRule the parameters ... Fix: give ThresholdRule the
parameters ...`` (two fixes, neither the config's); a misspelled key got no "did you mean"; a missing one
read ``ThresholdRule.__init__() missing 1 required positional argument``; parameters written beside
``type:`` were "unknown keys for a operator step"; and ``value: '2'``, ``value: null``, ``expr: amount >``
ran (never alerting, or every row to dead letter) and ``value: [2]`` stopped the run (exit status 1).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from streamlab import Pipeline
from streamlab.cli import main
from streamlab.errors import SpecError

SPEC = """\
streaming:
  sources:
  - {{step_id: events, kind: replay, path: '{path}', raw: true}}
  processing:
  - {{step_id: parse, kind: parse, input: events, schema: {{user_id: string, amount: float64, timestamp: timestamp}}}}
  - step_id: rule
    kind: operator
    input: parse
    type: ThresholdRule
{rule}  sinks: []
"""

PATH = "streaming.processing[1] (step 'rule')"

#: name -> (the rule's lines, the problem's path, text its problem holds, text its fix holds)
CASES: dict[str, tuple[str, str, str, str]] = {
    "op misspelled": (
        "    config: {name: big, column: amount, op: '=>', value: 2}\n",
        f"{PATH}.config",
        "ThresholdRule: op must be one of",
        "op: '>'",
    ),
    "key misspelled": (
        "    config: {name: big, colum: amount, op: '>', value: 2}\n",
        f"{PATH}.config.colum",
        "unknown key str 'colum' for ThresholdRule",
        "did you mean 'column'?",
    ),
    "key missing": (
        "    config: {column: amount, op: '>', value: 2}\n",
        f"{PATH}.config",
        "ThresholdRule needs 'name'",
        "add name: ... under config:",
    ),
    "parameter beside type": (
        "    name: big\n    config: {expr: amount > 2}\n",
        f"{PATH}.name",
        "'name' is a parameter of ThresholdRule, written beside type: instead of under config:",
        "move it under config:",
    ),
    "value null": (
        "    config: {name: big, column: amount, op: '>', value: null}\n",
        f"{PATH}.config",
        "value is missing",
        "amount.isna()",
    ),
    "value a list": (
        "    config: {name: big, column: amount, op: '>', value: [2]}\n",
        f"{PATH}.config",
        "value=[2] is a list",
        "amount.isin([1, 2])",
    ),
    "expr unreadable": (
        "    config: {name: big, expr: amount >}\n",
        f"{PATH}.config",
        "cannot read expression 'amount >'",
        "amount > 100",
    ),
    "value quoted number": (
        "    config: {name: big, column: amount, op: '>', value: '2'}\n",
        PATH,
        "compares column 'amount' with a text, but it is float64 (declared by step 'parse')",
        "in YAML without quotes",
    ),
}


@pytest.fixture
def events(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_text('{"user_id": "a", "amount": 3.0, "timestamp": "2024-01-01T00:00:00Z"}\n')
    return path


@pytest.mark.parametrize("name", list(CASES))
def test_a_rule_config_mistake_is_one_problem_at_its_path_with_the_configs_fix(
    name: str, events: Path
) -> None:
    rule, path, problem, fix = CASES[name]
    with pytest.raises(SpecError) as e:
        Pipeline.from_yaml(SPEC.format(path=events, rule=rule))
    found = [p for p in e.value.problems if p.path == path]
    assert found, [str(p) for p in e.value.problems]
    assert problem in found[0].problem, found[0]
    assert fix in found[0].fix and "documentation lists" not in found[0].fix, found[0]
    assert str(e.value).count("Fix:") == len(e.value.problems), str(e.value)


@pytest.mark.parametrize("name", ["value a list", "value quoted number"])
def test_streamlab_run_exits_2_before_reading_an_event(
    name: str, events: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(path=events, rule=CASES[name][0]))
    assert main(["run", str(spec), "--quiet"]) == 2
    assert CASES[name][2] in capsys.readouterr().err


def test_a_rule_config_that_works_still_loads(events: Path) -> None:
    rule = "    config: {name: big, column: amount, op: '>', value: 2}\n"
    p = Pipeline.from_yaml(SPEC.format(path=events, rule=rule))
    assert p.steps["rule"].params()["config"]["value"] == 2


@pytest.mark.parametrize(
    ("lateness", "problem", "fix"),
    [
        # read, but longer than timestamps hold: was "cannot read str '100000d' as a duration"
        ("100000d", "'100000d' is longer than the 53,375 days", "use a shorter duration, e.g. '365d'"),
        ("1h30m", "cannot read str '1h30m' as a duration", "write it like '500ms'"),
    ],
)
def test_a_duration_in_a_spec_says_why_it_cannot_be_used(
    lateness: str, problem: str, fix: str, events: Path
) -> None:
    window = (
        "  - {step_id: w, kind: window, input: parse, window: {kind: tumbling, size: 1m}, "
        f"lateness: '{lateness}', aggregate: [{{kind: count}}]}}\n"
    )
    text = SPEC.format(path=events, rule="    config: {name: big, expr: amount > 2}\n")
    with pytest.raises(SpecError) as e:
        Pipeline.from_yaml(text.replace("  sinks: []\n", window + "  sinks: []\n"))
    [found] = e.value.problems
    assert found.path == "streaming.processing[2] (step 'w').lateness", found
    assert problem in found.problem and fix in found.fix, found


NESTED = """\
streaming:
  sources:
  - {{step_id: events, kind: replay, path: '{path}', raw: true}}
  processing:
  - {{step_id: parse, kind: parse, input: events, schema: {{user_id: string, amount: float64, timestamp: timestamp}}}}
  - {{step_id: d, kind: operator, input: parse, type: {type}, config: {config}}}
  sinks: []
"""


@pytest.mark.parametrize(
    ("type_", "config", "problem", "fix"),
    [
        (
            "Detect",
            "{detector: {kind: gausian}, features: [amount]}",
            "unknown detector 'gausian'",
            "did you mean 'gaussian_scorer'?",
        ),
        (
            "Detect",
            "{detector: {kind: gaussian_scorer, grace: 3}, features: [amount]}",
            "GaussianScorerDetector (gaussian_scorer) has no parameter 'grace'",
            "did you mean 'grace_period'?",
        ),
        (
            "Detect",
            "{detector: {kind: gaussian_scorer}, features: [amount], threshold: {kind: fixd, value: 0.9}}",
            "unknown step config kind 'fixd'",
            "'fixed_threshold'",
        ),
        (
            "Detect",
            "{detector: {kind: gaussian_scorer}, features: [amount], threshold: {kind: fixed_threshold, value: '0.9'}}",
            "value must be a number, got '0.9'",
            "without quotes",
        ),
        (
            "Detect",
            "{detector: gaussian_scorer, features: [amount]}",
            "detector 'gaussian_scorer' is written as a name",
            "write detector: {kind: gaussian_scorer}",
        ),
        (
            "DriftDetector",
            "{column: amount, params: {deltaa: 0.1}}",
            "are not accepted by river.drift.ADWIN",
            "did you mean 'delta'?",
        ),
        (
            "Pattern",
            "{key: user_id, within: 5m, steps: [{name: a, wher: amount > 1}]}",
            "PatternStep: unknown argument(s) ['wher']",
            "did you mean 'where'?",
        ),
    ],
)
def test_a_mistake_inside_a_configs_part_says_which_and_the_fix(
    type_: str, config: str, problem: str, fix: str, events: Path
) -> None:
    with pytest.raises(SpecError) as e:
        Pipeline.from_yaml(NESTED.format(path=events, type=type_, config=config))
    [found] = e.value.problems
    assert found.path == "streaming.processing[1] (step 'd').config", found
    assert found.problem.startswith(f"{type_}: ") and f"{type_}: {type_}:" not in found.problem, found
    assert problem in found.problem and fix in found.fix, found
    assert "documentation lists" not in found.fix, found
