"""Conditions written as pandas expressions, evaluated over the columns they name only."""

from __future__ import annotations

import functools
import io
import keyword
import tokenize
from typing import Any

import pandas as pd

from streamlab._pyast import guarded

__all__ = ["eval_condition"]


@functools.lru_cache(maxsize=512)
def expression_names(expr: str) -> tuple[str, ...] | None:
    """The bare names ``expr`` reads (not attributes after a dot), or None when it may read more.

    None for backtick-quoted names and ``@`` locals, which only ``DataFrame.eval`` resolves.

    Examples
    --------
    >>> expression_names("amount > 10 and country.str.startswith('F')")
    ('amount', 'country')
    >>> expression_names("`unit price` > 1") is None
    True
    """
    if "`" in expr or "@" in expr:
        return None
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(expr).readline))
    except (tokenize.TokenError, SyntaxError):
        return None
    names: dict[str, None] = {}
    after_dot = False
    for tok in tokens:
        if tok.type == tokenize.NAME and not keyword.iskeyword(tok.string) and not after_dot:
            names[tok.string] = None
        if tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT):
            after_dot = tok.type == tokenize.OP and tok.string == "."
    return tuple(names)


def eval_condition(batch: pd.DataFrame, expr: str) -> Any:
    """``batch.eval(expr, engine="python")``, resolving only the columns ``expr`` names.

    ``DataFrame.eval`` builds a Series for every column and for the index before it parses; when
    every name in ``expr`` is a column, those columns resolve first there too, so handing pandas
    just them gives the same result (anything else, such as an index name, a function or a
    backtick-quoted column, takes ``DataFrame.eval`` itself).

    Examples
    --------
    >>> import pandas as pd
    >>> batch = pd.DataFrame({"amount": [5.0, 600.0], "country": ["FR", "US"], "x": [1, 2]})
    >>> eval_condition(batch, "amount >= 500 and country != 'FR'").tolist()
    [False, True]
    """
    names = expression_names(expr)
    columns = batch.columns
    if not names or not all(isinstance(n, str) and n in columns for n in names) or not columns.is_unique:
        return guarded(batch.eval, expr, engine="python")
    return guarded(pd.eval, expr, engine="python", resolvers=[{n: batch[n] for n in names}], target=batch)
