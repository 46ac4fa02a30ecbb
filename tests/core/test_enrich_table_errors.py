"""Stream.enrich given a table it cannot read (a missing file, an empty CSV, a directory, a file that is
not Parquet, a DuckDB database that does not exist) raises PipelineConfigError naming the step, the
table and a fix, not pandas', pyarrow's or DuckDB's own exception."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

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
