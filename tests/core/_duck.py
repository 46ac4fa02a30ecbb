"""Reading back what a DuckDB sink stored: its tables' column types."""

from __future__ import annotations

import duckdb


def column_types(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, str]:
    """``{column: DuckDB type}`` of ``table`` as the sink created it (``information_schema``)."""
    rows = con.execute(
        "select column_name, data_type from information_schema.columns where table_name = ?", [table]
    ).fetchall()
    return dict(rows)
