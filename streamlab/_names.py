"""The one rule for the names a pipeline writes into generated code, file names and tables: step ids
and the pipeline's name.

A name is written into exported Beam, Lambda, Flink and Spark code (docstrings, labels), Terraform and
shell files, and DuckDB tables, so it holds only letters, digits, ``_`` and ``-`` (letters of any
script): a quote, a backslash, a newline or a NUL byte in it made exported code that does not compile,
or that runs what the name holds.

>>> name_problem("fraud_alerts") is None
True
>>> name_problem("my step")
"holds characters other than letters, digits, '_' and '-': ' '"
"""

from __future__ import annotations

import re

__all__ = ["MAX_NAME_LENGTH", "NAME_FIX", "PIPELINE_NAME_FIX", "name_problem", "pipeline_name_problem"]

#: The longest name: longer ones make file names the file system refuses (255 bytes).
MAX_NAME_LENGTH = 100
NAME_FIX = "use letters, digits, '_' and '-', e.g. 'counts' or 'fraud-alerts'"
_NAME = re.compile(r"[^\W][\w-]*\Z")


def name_problem(value: object) -> str | None:
    """What is wrong with ``value`` as a step id or pipeline name, or None when it is a good name.

    Examples
    --------
    >>> name_problem("a.b")
    "holds characters other than letters, digits, '_' and '-': '.'"
    >>> name_problem("")
    'is empty'
    >>> name_problem(3)
    'is int 3, not text'
    """
    if not isinstance(value, str):
        return f"is {type(value).__name__} {value!r}, not text"
    if not value:
        return "is empty"
    if len(value) > MAX_NAME_LENGTH:
        return f"is {len(value)} characters long, more than the {MAX_NAME_LENGTH} a name may have"
    if not _NAME.match(value):
        bad = "".join(dict.fromkeys(c for c in value if not (c.isalnum() or c in "_-")))
        if not bad:  # only a leading '-'
            return "starts with '-'"
        return f"holds characters other than letters, digits, '_' and '-': {bad!r}"
    return None


PIPELINE_NAME_FIX = (
    "name it in one line of text without backslashes or runs of three quotes, e.g. 'clicks-per-minute'"
)


def pipeline_name_problem(value: object) -> str | None:
    """What is wrong with ``value`` as a pipeline's name, or None. A name is a label (notebooks write
    ``name='idle_timeout="2s"'``), so spaces and single quotes are kept; what would end or escape the
    text it is written into (a docstring of exported code, a file name) is refused: a control
    character (newline, NUL), a backslash, three quotes in a row, more than 100 characters.

    Examples
    --------
    >>> pipeline_name_problem('idle_timeout="2s"') is None
    True
    >>> pipeline_name_problem("x" * 101)
    'is 101 characters long, more than the 100 a name may have'
    """
    if not isinstance(value, str):
        return f"is {type(value).__name__} {value!r}, not text"
    if not value.strip():
        return "is empty"
    if len(value) > MAX_NAME_LENGTH:
        return f"is {len(value)} characters long, more than the {MAX_NAME_LENGTH} a name may have"
    if not value.isprintable():
        return "holds a control character (a newline, a tab, a NUL byte)"
    if "\\" in value:
        return "holds a backslash"
    if '"""' in value or "'''" in value:
        return "holds three quotes in a row"
    return None
