"""``DuckDBSink(path, "analytics.counts")`` created a table literally named ``analytics.counts`` in the
schema main, so ``SELECT * FROM analytics.counts`` found nothing (tester4 finding 28); session 18 refused
such a name. It is now table ``counts`` of schema ``analytics`` (created if missing); other dotted names
are refused with the fix; plain names work as before."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import DuckDBSink, Pipeline
from streamlab.errors import PipelineConfigError
from streamlab.testing import ListSource

_quoted_names = st.text(st.sampled_from('abcXYZ09 _-"'), min_size=1, max_size=8).filter(
    lambda name: not name.startswith("__streamlab") and name.strip() == name
)


@settings(max_examples=25, deadline=None)
@given(schema=_quoted_names, table=_quoted_names)
def test_a_schema_qualified_name_is_that_schemas_table(schema: str, table: str) -> None:
    """It was refused (session 18); it is now table ``table`` of schema ``schema``, created if missing,
    whatever the names hold (quotes, spaces, dashes: each part is quoted apart)."""
    sink = DuckDBSink(":memory:", f"{schema}.{table}", key=None)
    p = Pipeline(ListSource(pd.DataFrame({"event_id": ["a", "b"], "n": [1, 2]})))
    p.stream.to(sink)
    p.run()
    quoted = ".".join('"' + part.replace('"', '""') + '"' for part in (schema, table))
    assert sink.query(f"SELECT * FROM {quoted} ORDER BY n").values.tolist() == [["a", 1], ["b", 2]]
    assert sink.read(order_by="n").values.tolist() == [["a", 1], ["b", 2]]
    found = sink.query("SELECT table_schema, table_name FROM information_schema.tables")
    assert (schema, table) in set(found.itertuples(index=False, name=None))
    # its staging table is in its schema too; main holds only the commit ledger of every sink
    assert set(found.loc[found["table_schema"] == "main", "table_name"]) == {"__streamlab_commits"}


def test_a_schema_table_keeps_appends_exactly_once_and_its_rejected_rows_beside_it(tmp_path: Path) -> None:
    db = tmp_path / "o.duckdb"
    events = pd.DataFrame({"event_id": ["a", None, "c"], "n": [1, 2, 3]})
    for _ in range(2):  # a re-run upserts by event_id: no doubles
        p = Pipeline(ListSource(events))
        p.stream.to(DuckDBSink(db, "analytics.events"))
        p.run(checkpoint_dir=tmp_path / "ckpt")
    assert DuckDBSink(db, "analytics.events").read(order_by="n").values.tolist() == [["a", 1], ["c", 3]]
    rejected = DuckDBSink(db, "analytics.events").rejected_sink()
    assert rejected.table == "analytics.events_rejected" and len(rejected.read()) == 1
    with pytest.raises(LookupError, match="tables in .*'analytics.events'"):
        DuckDBSink(db, "analytics.other").read()


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("db.analytics.counts", "another database"),
        (".counts", "is not 'table' or 'schema.table'"),
        ("analytics.", "is not 'table' or 'schema.table'"),
        ("a..b", "is not 'table' or 'schema.table'. Fix"),
    ],
)
def test_names_that_are_not_table_or_schema_table_are_refused_with_the_fix(table: str, message: str) -> None:
    with pytest.raises(PipelineConfigError, match=message) as e:
        DuckDBSink(":memory:", table)
    assert "e.g. table='analytics." in str(e.value)


@pytest.mark.parametrize("table", ["", None, 3])
def test_a_table_that_is_no_name_is_refused(table: object) -> None:
    with pytest.raises(PipelineConfigError, match="is not a table name"):
        DuckDBSink(":memory:", table)  # type: ignore[arg-type]


def test_a_plain_name_is_written_and_read(tmp_path: Path) -> None:
    p = Pipeline(ListSource(pd.DataFrame({"event_id": ["a"], "n": [1]})))
    p.stream.to(DuckDBSink(tmp_path / "o.duckdb", "analytics_counts"))
    p.run()
    assert DuckDBSink(tmp_path / "o.duckdb", "analytics_counts").read().values.tolist() == [["a", 1]]
