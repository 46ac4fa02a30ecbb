"""A step builder given an argument of the wrong kind (an unreadable duration, a number where column
names go, something that is not a stream) raises PipelineConfigError naming the step and a fix, never a
bare TypeError, ValueError, AttributeError or IndexError from inside the builder."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import ListSource, Pipeline, PipelineConfigError, Stream, TumblingWindow, agg
from streamlab.detectors import HalfSpaceTreesDetector, PatternStep


def events() -> Stream:
    return Pipeline(
        ListSource([{"user_id": "u", "amount": 1.0, "timestamp": pd.Timestamp("2024-01-01", tz="UTC")}])
    ).stream


T = TumblingWindow("1m")

CASES: dict[str, tuple[Callable[[Stream], Any], str, str]] = {
    "dedup ttl text": (lambda s: s.dedup("user_id", ttl="abc"), "dedup", "ttl"),
    "dedup ttl bool": (lambda s: s.dedup("user_id", ttl=True), "dedup", "ttl"),
    "window delay None": (lambda s: s.window(T, delay=None), "window", "delay"),
    "window lateness text": (lambda s: s.window(T, lateness="soon"), "window", "lateness"),
    "window idle_timeout list": (lambda s: s.window(T, idle_timeout=[1]), "window", "idle_timeout"),
    "window delay too long": (lambda s: s.window(T, delay="99999999d"), "window", "delay"),
    "window key int": (lambda s: s.window(T, key=3), "window", "key"),
    "window key list of int": (lambda s: s.window(T, key=[1]), "window", "key"),
    "window watermark_by int": (lambda s: s.window(T, watermark_by=3), "window", "watermark_by"),
    "join other int": (
        lambda s: s.join_interval(3, "user_id", lower="-1m", upper="1m"),  # type: ignore[arg-type]
        "interval_join",
        "other",
    ),
    "join on int": (lambda s: s.join_interval(s, 3, lower="-1m", upper="1m"), "interval_join", "on"),  # type: ignore[arg-type]
    "join lower text": (
        lambda s: s.join_interval(s, "user_id", lower="abc", upper="1m"),
        "interval_join",
        "lower",
    ),
    "join delay None": (
        lambda s: s.join_interval(s, "user_id", lower="-1m", upper="1m", delay=None),  # type: ignore[arg-type]
        "interval_join",
        "delay",
    ),
    "join suffixes int": (
        lambda s: s.join_interval(s, "user_id", lower="-1m", upper="1m", suffixes=3),  # type: ignore[arg-type]
        "interval_join",
        "suffixes",
    ),
    "join one suffix": (
        lambda s: s.join_interval(s, "user_id", lower="-1m", upper="1m", suffixes=("a",)),  # type: ignore[arg-type]
        "interval_join",
        "suffixes",
    ),
    "union None": (lambda s: s.union(None), "union", "other"),  # type: ignore[arg-type]
    "union int": (lambda s: s.union(3), "union", "other"),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("name", list(CASES))
def test_a_wrong_argument_is_a_config_error_naming_step_parameter_and_fix(name: str) -> None:
    build, kind, parameter = CASES[name]
    with pytest.raises(PipelineConfigError) as e:
        build(events())
    assert e.value.kind == kind and e.value.step_id
    assert parameter in e.value.problem
    assert e.value.fix


JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**30), max_value=10**30),
)


@settings(max_examples=200, deadline=None)
@given(JUNK, st.sampled_from(["delay", "lateness", "idle_timeout"]))
def test_any_window_duration_is_accepted_or_a_config_error(value: object, parameter: str) -> None:
    s = events()
    try:
        s.window(T, **{parameter: value}).agg(agg.count())  # type: ignore[arg-type]
    except PipelineConfigError as e:
        assert e.step_id == "window" and e.fix


@settings(max_examples=200, deadline=None)
@given(JUNK)
def test_any_dedup_ttl_is_accepted_or_a_config_error(value: object) -> None:
    try:
        events().dedup("user_id", ttl=value)  # type: ignore[arg-type]
    except PipelineConfigError as e:
        assert e.step_id == "dedup" and e.fix


CONFIG_CASES: dict[str, tuple[Callable[[Stream], Any], str]] = {
    "detect features int": (lambda s: s.detect(HalfSpaceTreesDetector(), 3, step_id="d"), "features"),  # type: ignore[arg-type]
    "detect detector None": (lambda s: s.detect(None, ["amount"], step_id="d"), "detector"),
    "detect threshold int": (
        lambda s: s.detect(HalfSpaceTreesDetector(), ["amount"], threshold=3, step_id="d"),
        "threshold",
    ),
    "detect learn": (
        lambda s: s.detect(HalfSpaceTreesDetector(), ["amount"], learn="x", step_id="d"),
        "learn",
    ),
    "pattern steps int": (lambda s: s.pattern("user_id", 3, within="1m", step_id="d"), "steps"),  # type: ignore[arg-type]
    "pattern steps empty": (lambda s: s.pattern("user_id", [], within="1m", step_id="d"), "steps"),
    "pattern within zero": (
        lambda s: s.pattern("user_id", [PatternStep("a", "amount > 0")], within=0, step_id="d"),
        "within",
    ),
}


@pytest.mark.parametrize("name", list(CONFIG_CASES))
def test_a_detect_or_pattern_error_names_the_step_id_it_was_given(name: str) -> None:
    # the config's own checks named its class ('Detect'), or raised a bare TypeError
    build, parameter = CONFIG_CASES[name]
    with pytest.raises(PipelineConfigError) as e:
        build(events())
    assert e.value.step_id == "d" and parameter in e.value.problem and e.value.fix
