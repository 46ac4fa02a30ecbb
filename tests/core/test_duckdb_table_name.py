"""``DuckDBSink(path, "analytics.counts")`` created a table literally named ``analytics.counts`` in the
schema main, so ``SELECT * FROM analytics.counts`` found nothing (tester4 finding 28). A dotted name is
refused when the sink is built, with the fix; plain names work as before."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamlab import DuckDBSink, Pipeline
from streamlab.errors import PipelineConfigError
from streamlab.testing import ListSource

_names = st.text(st.characters(categories=["L", "N"], max_codepoint=0x7F), min_size=1, max_size=8)


@given(schema=_names, table=_names)
def test_a_schema_qualified_name_is_refused_with_the_fix(schema: str, table: str) -> None:
    with pytest.raises(PipelineConfigError) as e:
        DuckDBSink(":memory:", f"{schema}.{table}")
    msg = str(e.value)
    assert f"not table {table!r} of schema {schema!r}" in msg
    assert f"table={schema + '_' + table!r}" in msg


@pytest.mark.parametrize("table", ["", None, 3])
def test_a_table_that_is_no_name_is_refused(table: object) -> None:
    with pytest.raises(PipelineConfigError, match="is not a table name"):
        DuckDBSink(":memory:", table)  # type: ignore[arg-type]


def test_a_plain_name_is_written_and_read(tmp_path: Path) -> None:
    p = Pipeline(ListSource(pd.DataFrame({"event_id": ["a"], "n": [1]})))
    p.stream.to(DuckDBSink(tmp_path / "o.duckdb", "analytics_counts"))
    p.run()
    assert DuckDBSink(tmp_path / "o.duckdb", "analytics_counts").read().values.tolist() == [["a", 1]]
