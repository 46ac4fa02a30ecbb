"""Read-only SQL for enrichment tables: what an untrusted spec may ask DuckDB to run.

A spec that was not loaded with ``trust=True`` may name a DuckDB table by a single ``SELECT`` (or
``WITH ... SELECT``, ``FROM t``, ``VALUES``) query, which runs on a read-only connection with external
access disabled: no ``COPY``, ``ATTACH``, ``INSTALL``/``LOAD``, ``PRAGMA``, ``CREATE`` and no reading or
writing of other files (``read_csv('/etc/passwd')`` fails). A trusted spec runs its query as written.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["connect_restricted", "read_only_problem"]


def read_only_problem(query: str) -> str | None:
    """Why ``query`` is not a single read-only query, or None when it is.

    Examples
    --------
    >>> read_only_problem("select * from users") is None
    True
    >>> read_only_problem("COPY users TO 'out.csv'")
    'it is a COPY statement, and only a single read-only SELECT (or WITH ... SELECT) query may run'
    >>> read_only_problem("select 1; select 2")
    'it holds 2 statements, and only a single read-only SELECT (or WITH ... SELECT) query may run'
    >>> read_only_problem("/* db */ PRAGMA version")
    'it is a PRAGMA statement, and only a single read-only SELECT (or WITH ... SELECT) query may run'
    """
    import duckdb

    only = "only a single read-only SELECT (or WITH ... SELECT) query may run"
    if not isinstance(query, str) or not query.strip():
        return f"the query is empty, and {only}"
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as e:
        return f"DuckDB cannot parse it ({str(e).splitlines()[0]})"
    if len(statements) != 1:
        return f"it holds {len(statements)} statements, and {only}"
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        return f"it is a {kind.name} statement, and {only}"
    if _PRAGMA.match(query):  # DuckDB 1.x (Python 3.10's newest) types a table-function PRAGMA as SELECT
        return f"it is a PRAGMA statement, and {only}"
    return None


_PRAGMA = re.compile(r"\s*(?:(?:--[^\n]*(?:\n|$)|/\*.*?\*/)\s*)*pragma\b", re.IGNORECASE | re.DOTALL)


def connect_restricted(path: str) -> Any:
    """A read-only DuckDB connection to ``path`` that cannot touch other files, the network or extensions.

    Examples
    --------
    >>> import duckdb, tempfile, os
    >>> db = os.path.join(tempfile.mkdtemp(), "ref.duckdb")
    >>> duckdb.connect(db).execute("create table t as select 1 as k").close()
    >>> con = connect_restricted(db)
    >>> con.execute("select k from t").fetchall()
    [(1,)]
    >>> con.close()
    """
    import duckdb

    return duckdb.connect(
        path,
        read_only=True,
        config={
            "enable_external_access": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "lock_configuration": True,
        },
    )
