"""Asking a stream for an output its step does not have (``dedup(...).late``, ``.dead_letter`` of a
source, ``.late`` of a drift detector) is an AttributeError that names the step and the outputs it has,
with how to read them; before, Python's own named only the class ("'DedupedStream' object has no
attribute 'late'"). Other attributes, ``hasattr`` and pickling behave as before."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from typing import Any

import pytest

from streamlab import Pipeline
from streamlab.detectors import DriftDetector
from streamlab.testing import ListSource


def _pipeline() -> Pipeline:
    return Pipeline(ListSource([{"event_id": "a", "timestamp": 0, "score": 1.0}]))


@pytest.mark.parametrize(
    ("ask", "says"),
    [
        (
            lambda p: p.stream.dedup(ttl=None).late,
            "step 'dedup' (dedup) has no output 'late'; its outputs: 'out' (the stream itself), "
            "'duplicates' (read it as .duplicates)",
        ),
        (lambda p: p.stream.dead_letter, "step 'source' (ListSource) has no output 'dead_letter'"),
        (
            lambda p: p.stream.apply(DriftDetector(column="score"), step_id="d").late,
            "step 'd' (DriftDetector) has no output 'late'; its outputs: 'out' (the stream itself), "
            "'drift' (read it as .drift)",
        ),
        (
            lambda p: p.stream.dedup(ttl=None).duplicates.late,
            "'dedup.duplicates' is the 'duplicates' output of step 'dedup', not a step",
        ),
    ],
)
def test_an_output_the_step_lacks_names_the_outputs_it_has(ask: Callable[[Pipeline], Any], says: str) -> None:
    with pytest.raises(AttributeError) as e:
        ask(_pipeline())
    assert says in str(e.value), e.value


def test_other_attributes_hasattr_and_pickling_are_as_before() -> None:
    p = _pipeline()
    deduped = p.stream.dedup(ttl=None)
    with pytest.raises(AttributeError, match="'DedupedStream' object has no attribute 'foo'"):
        deduped.foo  # type: ignore[attr-defined]  # noqa: B018
    assert not hasattr(deduped, "late") and hasattr(deduped, "duplicates")
    assert pickle.loads(pickle.dumps(deduped)).ref == "dedup"
    assert p.stream.apply(DriftDetector(column="score"), step_id="d").drift.ref == "d.drift"
