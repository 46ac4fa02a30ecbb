"""Generated modules encode rows with streamlab.serde's own code: the same text for every value."""

from __future__ import annotations

from datetime import timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.export import _plan, to_beam, to_lambda
from streamlab.export.verify import load_module
from streamlab.serde import dump_json, encode_value
from streamlab.testing import ListSource

from ._samples import SCHEMA

zones = st.sampled_from([timezone.utc, timezone(timedelta(hours=-3))])
values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**80), 2**80),
        st.floats(),
        st.text(max_size=8),
        st.binary(max_size=8),
        st.datetimes(timezones=st.one_of(st.none(), zones)),
        st.timedeltas(),
        st.decimals(allow_nan=False, allow_infinity=False, places=3),
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=8,
)


def _pipeline() -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="serde_export")
    p.parse(SCHEMA).window(TumblingWindow("1m"), key="event_type").agg(agg.count())
    return p


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[str, Any]]:
    root = tmp_path_factory.mktemp("serde_export")
    out = {}
    for target, export in (("beam", to_beam), ("lambda", to_lambda)):
        files = export(_pipeline(), root / target)
        text = Path(files.module).read_text()
        out[target] = (text, load_module(files.module) if target == "lambda" else None)
    return out


def test_generated_modules_carry_the_serde_code_verbatim(generated: dict[str, tuple[str, Any]]) -> None:
    for text, _ in generated.values():
        assert _plan.serde_source() in text
        assert "json_default(value: Any)" in text and text.count("def dump_json(") == 1


@settings(max_examples=60, deadline=None)
@given(values, st.booleans())
def test_the_lambda_handler_encodes_like_the_runtime(
    generated: dict[str, tuple[str, Any]], value: Any, compact: bool
) -> None:
    module = generated["lambda"][1]
    assert module.dump_json(value, compact) == dump_json(value, compact)
    assert module.encode_value(value) == encode_value(value)
