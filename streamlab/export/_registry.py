"""Which code each exporter generates for each step kind, registered next to that code.

An exporter keeps one emitter per step class it translates and dispatches through this registry, not
through an ``isinstance`` ladder; a step class with no emitter for a target is refused at export time
with an error naming the step and the targets that do translate it. To plug in an exporter (say
``"flink"``), register an emitter per step class in the module that generates the code::

    @emits("flink", DedupStep)
    def _dedup(gen: FlinkGenerator, step: DedupStep) -> None:
        gen.emit(...)

and, where the generator walks the pipeline, call ``emitter_for("flink", step)(gen, step)``. The
emitter's arguments after the step are the exporter's own (the Beam exporter passes the stream
variables too). Emitters are looked up along the step's class hierarchy, so a subclass of a registered
step shares its emitter unless it registers its own. A detector, feature, rule or pattern step (an
``OperatorStep``) is looked up by its config's class first (``@emits("beam", VelocityFeature)``), then
as an ``OperatorStep``: the kinds registered in ``streamlab._step_kinds`` are what an exporter keys on.

Examples
--------
>>> from streamlab.steps import KeyByStep
>>> @emits("doc", KeyByStep)
... def _key_by(gen, step):
...     return f"key by {list(step.keys)}"
>>> emitter_for("doc", KeyByStep("k", ("parse",), keys=("user_id",)))(None, KeyByStep("k", ("parse",), keys=("user_id",)))
"key by ['user_id']"
>>> sorted(registered("doc"))
['key_by']
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from streamlab._step_kinds import label_of
from streamlab.errors import PipelineConfigError
from streamlab.steps import OperatorStep, Step

__all__ = ["emits", "emitter_for", "registered", "targets_for"]

F = TypeVar("F", bound=Callable[..., Any])
_EMITTERS: dict[str, dict[type, Callable[..., Any]]] = {}


def emits(target: str, *step_types: type) -> Callable[[F], F]:
    """Register the decorated function as ``target``'s emitter for each of ``step_types`` (step classes,
    or the step configs of ``streamlab.detectors`` that an ``OperatorStep`` holds)."""

    def register(fn: F) -> F:
        table = _EMITTERS.setdefault(target, {})
        for cls in step_types:
            table[cls] = fn
        return fn

    return register


def find(target: str, step: Step) -> Callable[..., Any] | None:
    """``target``'s emitter for ``step`` (along its class hierarchy), or None."""
    table = _EMITTERS.get(target, {})
    held = (step.config, step) if isinstance(step, OperatorStep) else (step,)
    for obj in held:
        for cls in type(obj).__mro__:
            if cls in table:
                return table[cls]
    return None


def emitter_for(target: str, step: Step) -> Callable[..., Any]:
    """``target``'s emitter for ``step``; a PipelineConfigError naming the step when there is none."""
    fn = find(target, step)
    if fn is None:
        others = targets_for(step)
        fix = f"export to {' or '.join(others)}" if others else "keep this step in the notebook"
        label = label_of(step)
        # what the emitters are keyed on: a detect step's config (Detect), whatever its detector
        what = (
            f"{type(step.config).__name__} steps"
            if isinstance(step, OperatorStep)
            else f"steps of kind {step.kind!r}"
        )
        raise PipelineConfigError(
            step.step_id, label, f"cannot export to {target}: {what} are not translated", fix
        )
    return fn


def registered(target: str) -> set[str]:
    """Kinds of the steps (and step configs) ``target`` translates."""
    return {str(getattr(cls, "kind", cls.__name__)) for cls in _EMITTERS.get(target, {})}


def targets_for(step: Step) -> list[str]:
    """Targets with an emitter for ``step``."""
    return sorted(t for t in _EMITTERS if find(t, step) is not None)
