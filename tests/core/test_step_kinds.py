"""One definition per step kind (``streamlab._step_kinds``): every step and detector config is
registered, round-trips through YAML with the same spec and the same outputs, checks its own
arguments when built directly, and takes its diagram label from the registry."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st_
from streamlab.datasets import load

from streamlab import JsonLinesSink, ManualClock, Pipeline, ReplaySource, TumblingWindow, agg
from streamlab import _step_codecs as codec
from streamlab import steps as st
from streamlab._step_kinds import ReadContext, from_params, kinds, label_of
from streamlab._time import MAX_DURATION_NS
from streamlab.detectors import (
    AdaptiveThresholdFilter,
    Detect,
    DistinctCountFeature,
    DriftDetector,
    FixedThresholdFilter,
    GaussianScorerDetector,
    HalfSpaceTreesDetector,
    Pattern,
    PatternStep,
    QuantileThresholdFilter,
    RatioToMedianFeature,
    ThresholdRule,
    TimeSinceLastFeature,
    VelocityFeature,
    VelocityRule,
    ZScoreFeature,
)
from streamlab.detectors._common import StepConfig
from streamlab.errors import PipelineConfigError
from streamlab.spec import pipeline_from_yaml, pipeline_to_mermaid, pipeline_to_yaml

_N = 400  # transactions: enough for every step to emit rows, small enough to run each pipeline fast


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The bundled transactions (their first rows) as raw JSON lines and as Parquet, and a card table."""
    root = tmp_path_factory.mktemp("step_kinds")
    rows = load("transactions").head(_N).drop(columns=["is_fraud", "fraud_pattern", "fraud_burst_id"])
    parquet = root / "transactions.parquet"
    rows.to_parquet(parquet)
    lines = root / "transactions.jsonl"
    with lines.open("w") as f:
        for r in rows.to_dict("records"):
            f.write(json.dumps({**r, "timestamp": r["timestamp"].isoformat()}) + "\n")
    cards = root / "cards.parquet"
    pd.DataFrame({"card_id": sorted(set(rows["card_id"])), "tier": "gold"}).to_parquet(cards)
    return {"parquet": str(parquet), "jsonl": str(lines), "cards": str(cards), "root": str(root)}


_SCHEMA = {
    "event_id": "string",
    "card_id": "string",
    "country": "category",
    "amount": "float64",
    "timestamp": "timestamp",
}


def _steps_pipeline(d: dict[str, str]) -> Pipeline:
    """Every built-in step kind: parse, filter, map, select, dedup, key_by, union, window, join, enrich."""
    p = Pipeline(ReplaySource(d["jsonl"], raw=True), name="steps")
    parsed = p.parse(_SCHEMA, required=["event_id"])
    small = parsed.filter("amount < 50", step_id="small")
    large = parsed.filter("amount >= 50", step_id="large")
    both = small.union(large, step_id="both")
    with_fee = both.with_columns(fee="amount * 0.02")
    slim = with_fee.select("event_id", "card_id", "country", "timestamp", "fee", value="amount")
    unique = slim.dedup("event_id", ttl="10m", max_ids=10_000)
    keyed = unique.key_by("country")
    keyed.window(TumblingWindow("1m"), delay="5s", lateness="1s").agg(agg.count(), agg.sum("value"))
    keyed.enrich(d["cards"], on="card_id").to(JsonLinesSink(str(Path(d["root"]) / "enriched.jsonl")))
    unique.join_interval(unique, "card_id", lower="-1m", upper="1m", step_id="pairs")
    return p


def _configs_pipeline(d: dict[str, str]) -> Pipeline:
    """Every detector config: features, rules, detect with each threshold filter, drift and pattern."""
    p = Pipeline(ReplaySource(d["parquet"]), name="configs")
    s = (
        p.stream.apply(VelocityFeature("card_id", window="10m", value="amount"))
        .apply(ZScoreFeature("card_id", "amount"))
        .apply(TimeSinceLastFeature("card_id"))
        .apply(DistinctCountFeature("card_id", "country", window="1h"))
        .apply(RatioToMedianFeature("card_id", "amount", history=11))
        .apply(ThresholdRule("big", column="amount", op=">", value=200))
        .apply(VelocityRule("card_id", window="10m", max_count=3, name="burst"))
    )
    s.detect(
        HalfSpaceTreesDetector(seed=7, window_size=50),
        features=["amount", "count_10m"],
        threshold=QuantileThresholdFilter(0.95, warmup=20),
        learn="unflagged",
        step_id="hst",
    )
    s.detect(
        GaussianScorerDetector(grace_period=5),
        features=["amount"],
        key="card_id",
        threshold=FixedThresholdFilter(0.99),
        step_id="gauss",
    ).apply(DriftDetector(column="score", method="page_hinkley"), step_id="drift")
    s.detect(
        GaussianScorerDetector(grace_period=5),
        features=["amount"],
        threshold=AdaptiveThresholdFilter(k=2.0, per_key=False),
        step_id="adaptive",
    )
    p.stream.pattern(
        "card_id",
        [
            PatternStep("home", "amount > 0"),
            PatternStep("abroad", "amount > 0", differs_from={"country": "home"}),
        ],
        within="1h",
        delay="2s",
        name="two_countries",
    )
    return p


def small_amounts(batch: pd.DataFrame) -> Any:
    """A batch filter referenced by import path in the spec."""
    return batch["amount"] < 50


def is_domestic(event: dict[str, Any]) -> bool:
    """A per-event filter referenced by import path in the spec."""
    return bool(event["country"] == "US")


def with_cents(batch: pd.DataFrame) -> pd.DataFrame:
    """A batch map referenced by import path in the spec."""
    return batch.assign(cents=(batch["amount"] * 100).round())


def tagged(event: dict[str, Any]) -> dict[str, Any]:
    """A per-event map referenced by import path in the spec."""
    return {**event, "tag": event["card_id"][-1]}


def _functions_pipeline(d: dict[str, str]) -> Pipeline:
    """Filter and map steps holding functions (batch and per event), written as ``fn: {ref: ...}``."""
    p = Pipeline(ReplaySource(d["parquet"]), name="functions")
    small = p.stream.filter_many(small_amounts).map_many(with_cents, columns=[*p.columns, "cents"])
    small.filter_one(is_domestic).map_one(tagged)
    return p


_PIPELINES: dict[str, Callable[[dict[str, str]], Pipeline]] = {
    "steps": _steps_pipeline,
    "configs": _configs_pipeline,
    "functions": _functions_pipeline,
}


def _kinds_in(p: Pipeline) -> set[str]:
    found = set()
    for step in p.steps.values():
        found.add(step.kind)
        if isinstance(step, st.OperatorStep):
            found.add(step.config.kind)
            threshold = getattr(step.config, "threshold", None)
            if threshold is not None:
                found.add(threshold.kind)
    return found


@pytest.mark.parametrize("name", sorted(_PIPELINES))
def test_every_kind_round_trips_through_yaml_with_the_same_spec_and_outputs(
    name: str, data: dict[str, str]
) -> None:
    p = _PIPELINES[name](data)
    text = pipeline_to_yaml(p)
    back = pipeline_from_yaml(text)  # without trust: functions by import path, no code in the spec
    assert pipeline_to_yaml(back) == text
    if name == "functions":
        assert text.count("ref: ") == 4
    assert {sid: s.params() for sid, s in back.steps.items()} == {
        sid: s.params() for sid, s in p.steps.items()
    }
    assert {sid: s.inputs for sid, s in back.steps.items()} == {sid: s.inputs for sid, s in p.steps.items()}
    ours, theirs = p.run(clock=ManualClock(0)).outputs, back.run(clock=ManualClock(0)).outputs
    assert sorted(ours) == sorted(theirs)
    assert sum(len(f) for f in ours.values()) > 0
    for ref in ours:
        pd.testing.assert_frame_equal(ours[ref], theirs[ref], obj=ref)


def test_the_round_trip_pipelines_hold_every_registered_kind(data: dict[str, str]) -> None:
    covered = set().union(*(_kinds_in(build(data)) for build in _PIPELINES.values()))
    assert {k.kind for k in kinds()} - covered == set()


def _concrete_subclasses(base: type) -> set[type]:
    found, todo = set(), [base]
    while todo:
        cls = todo.pop()
        subs = cls.__subclasses__()
        todo.extend(subs)
        # streamlab's own classes (a test may define a throwaway Step subclass)
        if cls is not base and not cls.__name__.startswith("_") and cls.__module__.startswith("streamlab."):
            found.add(cls)
    return found


def test_every_step_class_and_detector_config_is_registered() -> None:
    import streamlab.detectors

    registered = {k.cls for k in kinds()}
    abstract = {streamlab.detectors.ThresholdFilter}  # the base of the threshold filters
    classes = _concrete_subclasses(st.Step) | (_concrete_subclasses(StepConfig) - abstract)
    assert classes - registered == set(), (
        "give these classes a definition: @step_kind (streamlab._step_kinds)"
    )
    assert {k.cls.__name__ for k in kinds() if k.config} >= {
        "Detect",
        "DriftDetector",
        "Pattern",
        "VelocityFeature",
        "ThresholdRule",
        "QuantileThresholdFilter",
    }


# -- each kind built directly with a bad argument: the step itself says what is wrong -------------------
_IO = ("bad_step", ("source",))
_BAD_STEPS: dict[str, Callable[[], Any]] = {
    "source": lambda: st.SourceStep(*_IO[:1], (), source=print),  # type: ignore[arg-type]
    "parse": lambda: st.ParseStep(*_IO, time="ts"),
    "filter": lambda: st.FilterStep(*_IO, expr="amount >"),
    "map": lambda: st.MapStep(*_IO),
    "select": lambda: st.SelectStep(*_IO, columns=()),
    "dedup": lambda: st.DedupStep(*_IO, max_ids=0),
    "key_by": lambda: st.KeyByStep(*_IO, keys=()),
    "union": lambda: st.UnionStep(*_IO),
    "window": lambda: st.WindowStep(*_IO, window=TumblingWindow("1m"), aggs=(agg.count(),), delay_ns=-1),
    "interval_join": lambda: st.IntervalJoinStep("bad_step", ("a", "b"), on=("k",), lower_ns=5, upper_ns=-5),
    "enrich": lambda: st.EnrichStep(*_IO, table=pd.DataFrame({"k": [1]}), on=("k",), how="outer"),
    "sink": lambda: st.SinkStep(*_IO, sink=print),  # type: ignore[arg-type]
    "operator": lambda: st.OperatorStep(*_IO, config=object()),
}


@pytest.mark.parametrize("kind", sorted(_BAD_STEPS))
def test_a_step_built_directly_with_a_bad_argument_names_its_id_kind_and_fix(kind: str) -> None:
    with pytest.raises(PipelineConfigError) as e:
        _BAD_STEPS[kind]()
    assert e.value.step_id == "bad_step" and e.value.kind == kind
    assert "step 'bad_step'" in str(e.value) and "Fix:" in str(e.value)


def test_every_step_kind_has_a_bad_argument_case() -> None:
    assert {k.kind for k in kinds() if not k.config} == set(_BAD_STEPS)


_BAD_CONFIGS: dict[str, Callable[[], Any]] = {
    "velocity_feature": lambda: VelocityFeature("card_id", window="-5m"),
    "zscore_feature": lambda: ZScoreFeature("card_id", ""),
    "time_since_last_feature": lambda: TimeSinceLastFeature("card_id", max_keys=0),
    "distinct_count_feature": lambda: DistinctCountFeature("card_id", "country", window="soon"),
    "ratio_to_median_feature": lambda: RatioToMedianFeature("card_id", "amount", history=0),
    "threshold_rule": lambda: ThresholdRule("big", column="amount", op="=>", value=1),
    "velocity_rule": lambda: VelocityRule("card_id", window="1m", max_count=-1, name="burst"),
    "detect": lambda: Detect(GaussianScorerDetector(), features=["amount"], learn="sometimes"),
    "drift_detector": lambda: DriftDetector(method="guess"),
    "pattern": lambda: Pattern("card_id", [("a", "amount > 0")], within="0s"),
    "fixed_threshold": lambda: FixedThresholdFilter(float("nan")),
    "quantile_threshold": lambda: QuantileThresholdFilter(q=1.5),
    "adaptive_threshold": lambda: AdaptiveThresholdFilter(k=-1.0),
}


@pytest.mark.parametrize("kind", sorted(_BAD_CONFIGS))
def test_a_detector_config_with_a_bad_argument_names_itself_its_kind_and_fix(kind: str) -> None:
    cls = next(k.cls for k in kinds() if k.kind == kind)
    with pytest.raises(PipelineConfigError) as e:
        _BAD_CONFIGS[kind]()
    # a config has no step id yet: it is named by its class (and its name, for rules and patterns), and
    # by the step id Stream.apply gives it by default (its kind), not as "step 'VelocityFeature'"
    assert e.value.kind == kind and e.value.step_id.startswith(cls.__name__)
    assert str(e.value).startswith(f"{e.value.step_id} (config of step {kind!r}: the id Stream.apply gives")
    assert "Fix: " in str(e.value) and e.value.fix


def test_every_detector_config_has_a_bad_argument_case() -> None:
    assert {k.kind for k in kinds() if k.config} == set(_BAD_CONFIGS)


def test_a_step_added_directly_is_checked_against_its_input_columns(data: dict[str, str]) -> None:
    p = Pipeline(ReplaySource(data["parquet"]))
    with pytest.raises(
        PipelineConfigError, match=r"step 'd' \(dedup\): unknown column 'evnt_id'.*'event_id'"
    ):
        p.add_step(st.DedupStep("d", ("source",), id_column="evnt_id"))
    assert p.add_step(st.DedupStep("d", ("source",))).columns == p.columns


# -- labels ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(_PIPELINES))
def test_the_diagram_labels_come_from_the_registry(name: str, data: dict[str, str]) -> None:
    from streamlab.widgets import PipelineDiagram

    p = _PIPELINES[name](data)
    mermaid = pipeline_to_mermaid(p)
    html = p._repr_html_()
    boxes = {n["id"]: n["kind"] for n in PipelineDiagram(p, auto_refresh=False).layout()["nodes"]}
    for sid, step in p.steps.items():
        label = label_of(step)
        assert f'{sid}["{sid}: {label}"]' in mermaid
        assert f"<td>{label}</td>" in html
        assert boxes[sid] == label
        assert (sid if label == sid else f"{sid} ({label})") in repr(p)
    expected = {
        "functions": {"ReplaySource", "filter", "map"},
        "steps": {"ReplaySource", "parse", "union", "window", "interval_join", "JsonLinesSink"},
        "configs": {"ReplaySource", "VelocityFeature", "HalfSpaceTreesDetector", "DriftDetector", "Pattern"},
    }
    assert expected[name] <= {label_of(s) for s in p.steps.values()}


def test_an_exporter_keys_a_detector_step_on_its_config_class(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamlab.export import _registry

    monkeypatch.setitem(_registry._EMITTERS, "doc", {})  # a throwaway target, removed after the test

    @_registry.emits("doc", VelocityFeature)
    def _velocity(gen: object, step: st.OperatorStep) -> str:
        return f"velocity of {step.config.key}"

    step = st.OperatorStep("v", ("source",), config=VelocityFeature("card_id"))
    assert _registry.emitter_for("doc", step)(None, step) == "velocity of card_id"
    assert "velocity_feature" in _registry.registered("doc")
    other = st.OperatorStep("z", ("source",), config=ZScoreFeature("card_id", "amount"))
    with pytest.raises(
        PipelineConfigError,
        match=r"step 'z' \(ZScoreFeature\): cannot export to doc: ZScoreFeature steps are not",
    ):
        _registry.emitter_for("doc", other)


# -- the codecs read back what they write ----------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(
    ns=st_.integers(min_value=0, max_value=10**18), signed=st_.integers(min_value=-(10**18), max_value=10**18)
)
def test_durations_read_back_to_the_nanosecond(ns: int, signed: int) -> None:
    ctx = ReadContext()
    assert codec.DURATION_NS.decode(codec.DURATION_NS.encode(ns), ctx) == ns
    assert codec.SIGNED_DURATION_NS.decode(codec.SIGNED_DURATION_NS.encode(signed), ctx) == signed
    seconds = ns % (MAX_DURATION_NS // 1_000_000_000 + 1)  # a duration is at most MAX_DURATION_NS
    text = codec.DURATION_TEXT.encode(seconds)
    assert codec.DURATION_TEXT.encode(codec.DURATION_TEXT.decode(text, ctx)) == text


@settings(max_examples=100, deadline=None)
@given(
    ttl=st_.one_of(st_.none(), st_.integers(min_value=1, max_value=10**15)),
    max_ids=st_.integers(min_value=1, max_value=10**9),
    delay=st_.integers(min_value=0, max_value=10**15),
    keys=st_.lists(st_.sampled_from(["a", "b", "c"]), unique=True, max_size=3),
)
def test_steps_read_back_from_their_params_equal(
    ttl: int | None, max_ids: int, delay: int, keys: list[str]
) -> None:
    for step in (
        st.DedupStep("d", ("source",), ttl_ns=ttl, max_ids=max_ids),
        st.WindowStep(
            "w",
            ("source",),
            window=TumblingWindow("1m"),
            keys=tuple(keys),
            aggs=(agg.count(),),
            delay_ns=delay,
        ),
        st.IntervalJoinStep("j", ("a", "b"), on=("k",), lower_ns=-delay, upper_ns=delay, delay_ns=delay),
    ):
        back = from_params(type(step), step.params(), step_id=step.step_id, inputs=step.inputs)
        assert back.params() == step.params()
        assert back == step or isinstance(step, st.WindowStep)  # aggregators compare by identity


# -- expressions in detector configs are checked like filter expressions before an untrusted spec runs ----
@pytest.mark.parametrize(
    ("config", "where"),
    [
        (ThresholdRule("big", expr="amount.to_csv('{out}') > 0"), "config.expr"),
        (Pattern("card_id", [("a", "amount.to_csv('{out}') > 0")], within="1m"), r"config.steps\[0\].where"),
    ],
)
def test_an_expression_in_a_rule_or_pattern_needs_trust(
    config: Any, where: str, data: dict[str, str], tmp_path: Path
) -> None:
    from streamlab.errors import UntrustedSpecError

    out = tmp_path / "written.csv"
    p = Pipeline(ReplaySource(data["parquet"]), name="sneaky")
    p.stream.apply(config, step_id="rule")
    text = pipeline_to_yaml(p).replace("{out}", str(out))
    with pytest.raises(UntrustedSpecError, match=rf"step 'rule'\)\.{where}.*could do more than compute"):
        pipeline_from_yaml(text)
    assert not out.exists()
    safe = pipeline_to_yaml(p).replace("amount.to_csv('{out}') > 0", "amount.abs() > 0")
    assert list(pipeline_from_yaml(safe).steps) == ["source", "rule"]


def test_a_configs_error_names_the_step_id_stream_apply_gives_it() -> None:
    # it read "step 'VelocityFeature' (velocity_feature)", a step id that no step has
    from streamlab.detectors import VelocityFeature
    from streamlab.testing import ListSource

    with pytest.raises(PipelineConfigError) as e:
        VelocityFeature("user_id", window="-5m")
    assert str(e.value).startswith("VelocityFeature (config of step 'velocity_feature': ")
    assert "step 'VelocityFeature'" not in str(e.value)
    p = Pipeline(ListSource([b"{}"]))
    stream = p.parse({"user_id": "string", "timestamp": "timestamp"})
    assert stream.apply(VelocityFeature("user_id", window="5m")).step_id == "velocity_feature"
