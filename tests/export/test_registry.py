"""The exporters dispatch through one registry of emitters per step class (streamlab.export._registry)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

import streamlab.export.aws_lambda
import streamlab.export.beam  # noqa: F401 - importing an exporter registers its emitters
from streamlab._step_kinds import step_kind, unregister
from streamlab.errors import PipelineConfigError
from streamlab.export import _plan, _registry
from streamlab.steps import DedupStep, Step, WindowStep


def test_every_step_kind_an_exporter_accepts_has_its_emitter() -> None:
    accepted = {cls.kind for cls in (*_plan._ALWAYS, WindowStep)}
    assert _registry.registered("beam") == accepted | {
        "operator"
    }  # Beam checks each operator's config itself
    assert _registry.registered("lambda") == (accepted | {"operator"}) - {"source", "parse", "sink"}
    dedup = DedupStep("d", ("parse",))
    assert _registry.targets_for(dedup) == ["beam", "lambda"]


def test_a_step_without_an_emitter_is_refused_naming_it_and_the_targets_that_have_one(
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    monkeypatch.setitem(_registry._EMITTERS, "beam", dict(_registry._EMITTERS["beam"]))  # undone after

    @step_kind  # every step is registered: its label is what errors call it
    @dataclass(frozen=True)
    class OnlyBeamStep(Step):
        kind: ClassVar[str] = "only_beam"

    request.addfinalizer(lambda: unregister(OnlyBeamStep))  # a throwaway kind, gone after the test

    @_registry.emits("beam", OnlyBeamStep)
    def _emit(gen: object, step: Step, v: str, src: str) -> None:
        return None

    step = OnlyBeamStep("special", ("parse",))
    with pytest.raises(
        PipelineConfigError, match=r"step 'special' \(only_beam\): cannot export to lambda.*export to beam"
    ):
        _registry.emitter_for("lambda", step)
    assert _registry.emitter_for("beam", step) is _emit


def test_a_detector_step_is_refused_by_lambda_naming_it_and_beam(tmp_path: Path) -> None:
    from streamlab import Pipeline, TumblingWindow, agg
    from streamlab.detectors import DriftDetector
    from streamlab.export import to_beam, to_lambda
    from streamlab.testing import ListSource

    p = Pipeline(ListSource([b"{}"]), name="rules")
    events = p.parse({"amount": "float64", "timestamp": "timestamp", "event_type": "string"})
    ruled = events.apply(DriftDetector("amount"), step_id="big_amount")  # features now run on Lambda
    ruled.window(TumblingWindow("1m"), key="event_type").agg(agg.count())
    with pytest.raises(
        PipelineConfigError,
        match=r"step 'big_amount' \(DriftDetector\): cannot export to AWS Lambda: the step keeps state.*Apache Beam",
    ):
        to_lambda(p, tmp_path / "lambda")
    assert to_beam(p, tmp_path / "beam").module.exists()
