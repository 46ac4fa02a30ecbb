"""Parsing Python expressions safely from more than one thread.

CPython 3.11 and 3.12 keep the AST constructor's recursion depth in state shared by the whole
interpreter (gh-106905). Two threads that build Python ASTs at the same time can both change that
state: ``ast.parse``, ``compile(..., ast.PyCF_ONLY_AST)`` and pandas' ``eval``/``query`` (which parse
their expression) all do. If the garbage collector runs a finalizer in the middle of a parse, the
interpreter can switch threads there. The parse then fails with ``SystemError: AST constructor
recursion depth mismatch``, although nothing is wrong with its input.

streamlab parses in more than one thread. A running pipeline's thread evaluates filter and column
expressions while the kernel compiles the next cell, and ``verify`` can run next to another
``verify``. So every parse and every pandas expression evaluation in streamlab goes through this
module. One lock keeps streamlab's own parses apart. If the error still comes from a parse outside
streamlab (the kernel's, another library's), the call is retried: it is a fresh parse of the same
text, with no side effects.
"""

from __future__ import annotations

import ast
import threading
from collections.abc import Callable
from typing import Any, Literal, TypeVar, overload

__all__ = ["guarded", "is_ast_race", "parse"]

T = TypeVar("T")

_LOCK = threading.RLock()
_ATTEMPTS = 5
_MESSAGE = "AST constructor recursion depth mismatch"


def is_ast_race(error: BaseException) -> bool:
    """Whether ``error`` is CPython's spurious ``SystemError`` from two threads parsing at once.

    Examples
    --------
    >>> is_ast_race(SystemError("AST constructor recursion depth mismatch (before=30, after=154)"))
    True
    >>> is_ast_race(SyntaxError("invalid syntax"))
    False
    """
    return isinstance(error, SystemError) and _MESSAGE in str(error)


def guarded(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` under streamlab's parse lock, retried on CPython's AST race.

    ``fn`` must be free of side effects when it fails (a parse, a pandas ``eval`` without
    assignment): on the spurious ``SystemError`` it is called again, up to five times.

    Examples
    --------
    >>> import pandas as pd
    >>> guarded(pd.DataFrame({"a": [1, 2]}).eval, "a * 10").tolist()
    [10, 20]
    """
    for attempt in range(_ATTEMPTS):
        with _LOCK:
            try:
                return fn(*args, **kwargs)
            except SystemError as e:
                if not is_ast_race(e) or attempt == _ATTEMPTS - 1:
                    raise
    raise AssertionError("unreachable")  # pragma: no cover


@overload
def parse(source: str, mode: Literal["exec"] = ...) -> ast.Module: ...
@overload
def parse(source: str, mode: Literal["eval"]) -> ast.Expression: ...
def parse(source: str, mode: str = "exec") -> ast.AST:
    """``ast.parse(source, mode=mode)``, safe to call from any thread.

    Examples
    --------
    >>> type(parse("a + 1", mode="eval").body).__name__
    'BinOp'
    """
    tree: ast.AST = guarded(ast.parse, source, mode=mode)
    return tree


#: The prefix of the identifier standing for a backtick-quoted column name (pandas' own).
BACKTICK_PREFIX = "BACKTICK_QUOTED_STRING_"


def unquote_backticks(expr: str) -> tuple[str, dict[str, str]]:
    """``expr`` with each backtick-quoted column name (pandas' `` `unit price` ``, a JSON key with a space
    or a dot) replaced by an identifier that Python parses, and the column name of each identifier.
    Backticks inside a string literal are text.

    Examples
    --------
    >>> unquote_backticks("`unit price` * `a.b` > 2 and s == '`x`'")
    ("BACKTICK_QUOTED_STRING_0 * BACKTICK_QUOTED_STRING_1 > 2 and s == '`x`'", {'BACKTICK_QUOTED_STRING_0': 'unit price', 'BACKTICK_QUOTED_STRING_1': 'a.b'})
    >>> unquote_backticks("amount > 1")
    ('amount > 1', {})
    """
    if "`" not in expr:
        return expr, {}
    out: list[str] = []
    names: dict[str, str] = {}
    quote: str | None = None
    i = 0
    while i < len(expr):
        c = expr[i]
        if quote is not None:
            out.append(c)
            if c == "\\" and i + 1 < len(expr):
                out.append(expr[i + 1])
                i += 1
            elif c == quote:
                quote = None
        elif c in "'\"":
            quote = c
            out.append(c)
        elif c == "`":
            end = expr.find("`", i + 1)
            if end < 0:
                raise SyntaxError(f"a backtick-quoted name is not closed: {expr[i:]!r}")
            name = expr[i + 1 : end]
            ident = next((k for k, v in names.items() if v == name), f"{BACKTICK_PREFIX}{len(names)}")
            names[ident] = name
            out.append(ident)
            i = end
        else:
            out.append(c)
        i += 1
    return "".join(out), names
