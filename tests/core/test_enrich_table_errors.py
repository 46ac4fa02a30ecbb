"""Stream.enrich given a table it cannot read (a missing file, an empty CSV, a directory, a file that is
not Parquet, a DuckDB database that does not exist) raises PipelineConfigError naming the step, the
table and a fix, not pandas', pyarrow's or DuckDB's own exception."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import ListSource, Pipeline, PipelineConfigError


def events() -> Pipeline:
    return Pipeline(ListSource([{"user_id": "u", "timestamp": 0}]))


@pytest.mark.parametrize("name", ["missing.csv", "empty.csv", "dir", "bad.parquet", "duckdb"])
def test_a_table_that_cannot_be_read_is_a_config_error(tmp_path: Path, name: str) -> None:
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "bad.parquet").write_text("not parquet")
    (tmp_path / "dir").mkdir()
    ref = f"duckdb:{tmp_path / 'missing.duckdb'}:select 1" if name == "duckdb" else str(tmp_path / name)
    with pytest.raises(PipelineConfigError) as e:
        events().stream.enrich(ref, "user_id", step_id="users")
    assert e.value.step_id == "users" and "cannot read the table" in e.value.problem and e.value.fix


def test_a_readable_table_still_enriches(tmp_path: Path) -> None:
    pd.DataFrame({"user_id": ["u"], "tier": ["gold"]}).to_csv(tmp_path / "users.csv", index=False)
    assert "tier" in (events().stream.enrich(str(tmp_path / "users.csv"), "user_id").columns or ())


def test_a_table_holding_a_key_twice_is_refused_naming_the_keys_and_the_fix(tmp_path: Path) -> None:
    # each event of user 'u' became two rows (one per table row), silently
    table = pd.DataFrame(
        {"user_id": ["u", "v", "u", None, None], "tier": ["gold", "gold", "silver", "a", "b"]}
    )
    with pytest.raises(PipelineConfigError) as e:
        events().stream.enrich(table, "user_id", step_id="users")
    assert e.value.step_id == "users"
    assert "the table holds 1 key of ['user_id'] on more than one row (e.g. 'u')" in e.value.problem
    assert "drop_duplicates(subset=['user_id'], keep='last')" in e.value.fix
    table.to_csv(tmp_path / "users.csv", index=False)
    with pytest.raises(PipelineConfigError, match="more than one row"):
        events().stream.enrich(str(tmp_path / "users.csv"), "user_id")
    # rows with a missing key match nothing (not repeats); one row per key is a lookup
    kept = events().stream.enrich(table.drop_duplicates(subset=["user_id"], keep="last"), "user_id")
    rows = kept.pipeline.run()[kept.ref]
    assert rows[["user_id", "tier"]].values.tolist() == [["u", "silver"]]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 3), st.booleans(), st.floats(0, 3), st.none()), max_size=8))
def test_a_table_is_refused_exactly_when_an_event_would_match_two_of_its_rows(keys: list[object]) -> None:
    table = pd.DataFrame({"k": pd.Series(keys, dtype=object), "row": range(len(keys))})
    p = Pipeline(
        ListSource([{"k": k, "timestamp": 0} for k in keys if k is not None] or [{"k": 0, "timestamp": 0}])
    )
    try:
        p.enrich(table, "k", how="inner")
    except PipelineConfigError:
        refused = True
    else:
        refused = False
    # the join's own matching (True, 1 and 1.0 are three keys in an object column)
    from streamlab._joins import EnrichOperator

    matched = EnrichOperator(table, ["k"], "inner").process(table[["k"]].rename_axis(None).assign(n=1))["out"]
    assert refused == (len(matched) > len(table["k"].dropna()))


def test_a_duckdb_table_object_that_cannot_be_read_names_the_step(tmp_path: Path) -> None:
    # DuckDBTable(...) given as the table raised DuckDB's own IOException, naming no step and no fix
    from streamlab import DuckDBTable

    table = DuckDBTable(tmp_path / "missing.duckdb", "select 'u' as user_id")
    with pytest.raises(PipelineConfigError) as e:
        events().stream.enrich(table, "user_id", step_id="users")
    assert e.value.step_id == "users" and "cannot read the table " in e.value.problem
    assert "missing.duckdb" in e.value.problem
    assert "DuckDBTable(path, query)" in e.value.fix


@pytest.mark.parametrize("query", ["", "  \n", None, 3])
def test_a_duckdb_table_without_a_query_is_refused_when_built(tmp_path: Path, query: object) -> None:
    # DuckDBTable(path, "") was accepted until an enrich step tried to read it
    from streamlab import DuckDBTable

    with pytest.raises(
        ValueError, match=r"pass the SELECT query .* DuckDBTable\(path, 'select \* from users'\)"
    ):
        DuckDBTable(tmp_path / "ref.duckdb", query)  # type: ignore[arg-type]
