"""``STREAMLAB_HYPOTHESIS_MAX_EXAMPLES`` caps the examples of properties that set their own count
(``cap_examples`` in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st


def test_a_property_that_sets_its_own_count_runs_at_most_the_cap(
    cap_examples: Callable[[Iterable[Any], int], int],
) -> None:
    seen: list[int] = []

    @settings(max_examples=80, database=None)
    @given(st.integers())
    def prop(x: int) -> None:
        seen.append(x)

    @settings(max_examples=5, database=None)
    @given(st.integers())
    def small(x: int) -> None:
        pass

    assert cap_examples([prop, small, len], 12) == 1  # small asks for fewer; len is no property
    prop()
    assert 0 < len(seen) <= 12
    assert small._hypothesis_internal_use_settings.max_examples == 5  # type: ignore[attr-defined]
