"""``STREAMLAB_HYPOTHESIS_MAX_EXAMPLES`` caps the examples of properties that set their own count."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st


def _cap_examples() -> object:
    spec = importlib.util.spec_from_file_location(
        "examples_cap_under_test", Path(__file__).parent / "_examples_cap.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.cap_examples


def test_a_property_that_sets_its_own_count_runs_at_most_the_cap() -> None:
    seen: list[int] = []

    @settings(max_examples=80, database=None)
    @given(st.integers())
    def prop(x: int) -> None:
        seen.append(x)

    @settings(max_examples=5, database=None)
    @given(st.integers())
    def small(x: int) -> None:
        pass

    cap_examples = _cap_examples()
    assert cap_examples([prop, small, len], 12) == 1  # small asks for fewer; len is no property
    prop()
    assert 0 < len(seen) <= 12
    assert small._hypothesis_internal_use_settings.max_examples == 5  # type: ignore[attr-defined]
