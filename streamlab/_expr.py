"""Pandas expressions (conditions, computed columns) evaluated over the columns they name, compiled once."""

from __future__ import annotations

import ast
import datetime
import functools
import io
import keyword
import math
import operator
import re
import tokenize
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from streamlab._compat import PANDAS_2_3, PANDAS_3, as_pandas_3, inferred_kind
from streamlab._intcols import exact_values, inferred_series
from streamlab._pyast import BACKTICK_PREFIX, guarded, parse, unquote_backticks

__all__ = [
    "as_expression_input",
    "by_presence",
    "compile_expression",
    "eval_condition",
    "eval_expression",
    "expression_names",
    "fails_alike",
    "kind_groups",
    "partly_missing",
    "typed_result",
]

#: One node of a compiled expression: the batch in, the node's value out (Series or scalar).
_Node = Callable[[pd.DataFrame], Any]


@functools.lru_cache(maxsize=512)
def expression_names(expr: str) -> tuple[str, ...] | None:
    """The bare names ``expr`` reads (not attributes after a dot), or None when it may read more.

    A backtick-quoted name (`` `unit price` ``) is its column's; None for ``@`` locals, which only
    ``DataFrame.eval`` resolves.

    Examples
    --------
    >>> expression_names("amount > 10 and country.str.startswith('F')")
    ('amount', 'country')
    >>> expression_names("`unit price` > 1 and `unit price` < n")
    ('unit price', 'n')
    """
    if "@" in expr:
        return None
    try:
        source, quoted = unquote_backticks(expr)
        tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, SyntaxError):
        return None
    names: dict[str, None] = {}
    after_dot = False
    for tok in tokens:
        if tok.type == tokenize.NAME and not keyword.iskeyword(tok.string) and not after_dot:
            names[quoted.get(tok.string, tok.string)] = None
        if tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT):
            after_dot = tok.type == tokenize.OP and tok.string == "."
    return tuple(names)


class _NotCompiledError(Exception):
    """The compiled form does not cover this case: ``DataFrame.eval`` evaluates the expression."""


_CMP = {
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_ARITH = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}
_UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {
    ast.UAdd: operator.pos,
    ast.USub: operator.neg,
    ast.Not: operator.invert,
    ast.Invert: operator.invert,
}
# pandas' "term" nodes (names, constants, attributes and call results): ==/!= between two of them
# becomes isin when one side is a string
_TERMS = (ast.Name, ast.Constant, ast.Attribute, ast.Call)


def _datetime_like(v: Any) -> bool:
    if isinstance(v, pd.Series):
        return isinstance(v.dtype, pd.DatetimeTZDtype) or getattr(v.dtype, "kind", "") == "M"
    return isinstance(v, (datetime.date, np.datetime64))


def _checked(v: Any) -> Any:
    """``v`` when pandas' eval would combine it as it is (no float32 downcast, no datetime conversion)."""
    if _datetime_like(v) or isinstance(v, list):
        raise _NotCompiledError
    if isinstance(v, pd.Series) and v.dtype in (np.float32, np.float16):
        raise _NotCompiledError
    return v


def _numeric(v: Any) -> Any:
    """``v`` when pandas' eval types it as a number (its arithmetic on anything else: DataFrame.eval)."""
    if isinstance(v, pd.Series):
        if isinstance(v.dtype, np.dtype) and v.dtype.kind in "iuf":
            return v
    elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)):
        return v
    raise _NotCompiledError


def _text(v: Any) -> bool:
    """Whether ``v`` is a string or a column of strings (missing values among them)."""
    if isinstance(v, pd.Series):
        if isinstance(v.dtype, pd.StringDtype):
            return True
        return v.dtype == object and pd.api.types.infer_dtype(v, skipna=True) in ("string", "empty")
    return isinstance(v, str)


def _add(left: Any, right: Any) -> Any:
    """``left + right``: numbers added, or text joined (a column with a column or a string constant).

    pandas' ``DataFrame.eval`` refuses a string constant in arithmetic (``s + '!'`` is its TypeError
    "unsupported operand type(s) for +: 'str' and '<class 'str'>'") while it joins two text columns;
    joining text is what ``+`` means in Python and in the exported code, so it is done here, a missing
    value staying missing.
    """
    if _text(left) and _text(right) and (isinstance(left, pd.Series) or isinstance(right, pd.Series)):
        return left + right
    return _numeric(left) + _numeric(right)


def _compile_node(node: ast.AST) -> _Node:
    """A closure computing ``node`` as ``DataFrame.eval(engine="python")`` does, for the node kinds
    covered; anything else raises ``_NotCompiledError`` here (when compiling) or in the closure (when run)."""
    if isinstance(node, ast.Name):
        name = node.id
        return lambda batch: batch[name]
    if isinstance(node, ast.Constant):
        value = node.value
        if value is None or isinstance(value, (bytes, complex)) or value is Ellipsis:
            raise _NotCompiledError
        return lambda batch: value
    if isinstance(node, ast.Attribute):
        if not isinstance(node.value, (ast.Name, ast.Attribute, ast.Call)):
            raise _NotCompiledError
        of, attr = _compile_node(node.value), node.attr
        return lambda batch: getattr(of(batch), attr)
    if isinstance(node, ast.Call):
        # a method of a column (pandas calls it at once with its evaluated arguments)
        if not isinstance(node.func, ast.Attribute) or node.func.attr == "__call__":
            raise _NotCompiledError
        if not all(isinstance(a, ast.Constant) for a in node.args) or not all(
            k.arg is not None and isinstance(k.value, ast.Constant) for k in node.keywords
        ):
            raise _NotCompiledError
        method = _compile_node(node.func)
        args = tuple(a.value for a in node.args)  # type: ignore[attr-defined]
        kwargs = {str(k.arg): k.value.value for k in node.keywords}  # type: ignore[attr-defined]
        return lambda batch: method(batch)(*args, **kwargs)
    if isinstance(node, ast.UnaryOp):
        func = _UNARY[type(node.op)]
        operand = _compile_node(node.operand)
        return lambda batch: func(operand(batch))
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _ARITH:
            raise _NotCompiledError
        arith, left, right = _ARITH[type(node.op)], _compile_node(node.left), _compile_node(node.right)
        if isinstance(node.left, ast.Constant) and isinstance(node.right, ast.Constant):
            raise _NotCompiledError
        if isinstance(node.op, ast.Add):
            return lambda batch: _add(_checked(left(batch)), _checked(right(batch)))
        return lambda batch: arith(_numeric(_checked(left(batch))), _numeric(_checked(right(batch))))
    if isinstance(node, ast.Compare):
        if len(node.ops) > 1:  # a < b < c: (a < b) and (b < c), as pandas rewrites it
            pairs: list[ast.expr] = [
                ast.Compare(left=lhs, ops=[op], comparators=[rhs])
                for lhs, op, rhs in zip([node.left, *node.comparators[:-1]], node.ops, node.comparators)
            ]
            return _compile_node(ast.BoolOp(op=ast.And(), values=pairs))
        if type(node.ops[0]) not in _CMP:
            raise _NotCompiledError
        return _compare(node.left, node.ops[0], node.comparators[0])
    if isinstance(node, ast.BoolOp):
        combine = operator.and_ if isinstance(node.op, ast.And) else operator.or_
        parts = [_compile_node(v) for v in node.values]
        if any(isinstance(v, ast.Constant) for v in node.values):
            raise _NotCompiledError  # pandas refuses some scalar operands of and/or

        def boolop(batch: pd.DataFrame) -> Any:
            acc = _series(parts[0](batch))
            for part in parts[1:]:
                acc = combine(acc, _series(part(batch)))
            return acc

        return boolop
    raise _NotCompiledError


def _series(v: Any) -> Any:
    if not isinstance(v, pd.Series):
        raise _NotCompiledError  # pandas refuses some scalar operands of and/or
    return _checked(v)


def _compare(left_node: ast.expr, op: ast.cmpop, right_node: ast.expr) -> _Node:
    cmp, left, right = _CMP[type(op)], _compile_node(left_node), _compile_node(right_node)
    if (
        isinstance(op, (ast.Eq, ast.NotEq))
        and isinstance(left_node, _TERMS)
        and isinstance(right_node, _TERMS)
    ):
        from pandas.core.computation.ops import _in, _not_in  # type: ignore[attr-defined]

        member = _in if isinstance(op, ast.Eq) else _not_in

        def eq_ne(batch: pd.DataFrame) -> Any:
            lv, rv = _checked(left(batch)), _checked(right(batch))
            if isinstance(lv, str) or isinstance(rv, str):
                # pandas turns == 'x' into isin(['x']) (missing values compare False, not NA)
                return member([lv] if isinstance(lv, str) else lv, [rv] if isinstance(rv, str) else rv)
            return cmp(lv, rv)

        return eq_ne
    return lambda batch: cmp(_checked(left(batch)), _checked(right(batch)))


@functools.lru_cache(maxsize=512)
def compile_expression(expr: str) -> _Node | None:
    """``expr`` as a closure over a batch, or None when only ``DataFrame.eval`` evaluates it.

    The closure performs the pandas operations ``DataFrame.eval(expr, engine="python")`` performs
    (pandas 2.3 and 3 rewrite the expression alike, and that rewriting is followed: ``&``/``|`` read
    as ``and``/``or`` with their precedence, ``and``/``or``/``not`` as ``&``/``|``/``~``, ``== 'x'``
    as ``isin(['x'])``, chained comparisons as ``and``), without parsing the expression or building a
    Series for every column at each call. Covered: column names, constants, comparisons, ``and``,
    ``or``, ``not``, ``+ - * /`` between numbers, attributes and methods of columns with constant
    arguments. Anything else (lists, ``in``, functions, backticks, ``@`` locals, float32 or
    date-time operands, ...) falls back to ``DataFrame.eval``, at compile time or when run.

    Examples
    --------
    >>> import pandas as pd
    >>> fn = compile_expression("a > 1 & b == 'x'")
    >>> fn(pd.DataFrame({"a": [1, 2, 3], "b": ["x", "x", "y"]})).tolist()
    [False, True, False]
    >>> compile_expression("a in [1, 2]") is None
    True
    """
    if not PANDAS_2_3 or "\n" in expr or "\r" in expr:  # older pandas: DataFrame.eval decides
        return None
    if "`" in expr or expression_names(expr) is None:  # backticks: DataFrame.eval resolves them
        return None
    try:
        from pandas.core.computation.expr import _preparse  # type: ignore[attr-defined]

        tree = parse(_preparse(expr), mode="eval")
        return _compile_node(tree.body)
    except Exception:  # _NotCompiledError, a syntax error, or another pandas: DataFrame.eval decides
        return None


def _object_numbers(col: pd.Series) -> Any:
    """The numeric dtype that holds an object column of Python numbers as they are, or None.

    Floats (with ints among them) read float64, as Python adds an int to a float; ints within int64
    read int64. Anything else stays as it is: text, bools, an int beyond int64, and a missing value
    (None or NaN among objects fails as in the exported code, which computes with None; a part of the
    batch holding such a row must not read it as a number where the row alone would not, so that the
    rows set aside do not depend on their neighbours, :func:`kind_groups`).
    """
    if col.hasnans:
        return None
    kind = pd.api.types.infer_dtype(col, skipna=False)
    if kind in ("floating", "mixed-integer-float"):
        return np.float64
    if kind == "integer" and all(_fits_int64(v) for v in col.to_numpy()):
        return np.int64
    return None


def _fits_int64(v: Any) -> bool:
    """Whether the integer ``v`` (a Python or numpy int) is within int64's range.

    Examples
    --------
    >>> _fits_int64(2**63 - 1), _fits_int64(2**63), _fits_int64(-(2**63))
    (True, False, True)
    """
    return bool(-(2**63) <= v < 2**63)


def _beyond_int64(col: pd.Series) -> bool:
    """Whether ``col`` is an object column of Python ints, none missing, one of them beyond int64.

    Examples
    --------
    >>> _beyond_int64(pd.Series([1, 10**20], dtype=object)), _beyond_int64(pd.Series([1, 2], dtype=object))
    (True, False)
    """
    if col.dtype != object or col.hasnans or pd.api.types.infer_dtype(col, skipna=False) != "integer":
        return False
    return not all(_fits_int64(v) for v in col.to_numpy())


def as_expression_input(batch: pd.DataFrame, expr: str) -> pd.DataFrame:
    """``batch`` with the columns ``expr`` reads in the types the expression language is defined on.

    - A column that holds only Python bools as objects (a bool field with a missing value elsewhere in
      the batch) becomes a bool column: ``~flag`` and ``not flag`` are then logical, as on a bool column
      and in the exported code, not pandas' bitwise ``~`` of each object (-1, -2).
    - A nullable integer column (an ``int64`` field of a batch with a missing value, kept exact as
      ``Int64`` elsewhere) becomes int64 without a missing value. With one, the missing value is NaN, as
      in the exported code (``NaN >= 500`` is False, not ``pd.NA``), and the integers are Python ints,
      compared exactly (``2**62 + 1 == 2**62`` is False, where float64 would round both to one value),
      when the expression only compares and combines (``==``, ``<``, ``in``, ``and``, ``~``, ...);
      an expression that computes with them (``n + 1``, a method call) reads float64, as pandas
      cannot compute on Python ints in an expression: :func:`eval_expression` evaluates the rows
      with a value apart (:func:`by_presence`), so this is the case of rows all missing it.
    - An object column of Python numbers (a field no schema typed, whose other rows hold text) becomes
      float64 (or int64: ints within its range), no value missing, so a row of numbers computes as
      in a numeric column and in the exported code, where pandas' evaluator fails on an object column
      for every row: only the rows whose values cannot be computed with go to the dead letter.
    - An unordered ``category`` column (a ``category`` field) becomes its values' type (text): category
      is a way to store text, so ``event_type >= 'p'`` compares the values as on a ``string`` field
      (and as the exported code does), where pandas refuses to order an unordered Categorical. An
      expression that is just the column's name (a copy) keeps the category storage.
    - On pandas 2.3, a text column (strings as objects, a missing one None; all None in a part without
      a string) whose ``.str`` methods the expression reads (``s.str.contains('a')``) becomes pandas 3's
      text dtype (``str``, a missing string NaN), as streamlab's text columns are on pandas 3: a test of a missing string is False and a string method
      gives a missing string, as in the exported code (``ExprCompiler.missing_text``). The object
      column's own ``.str`` methods answer NaN, which ``or`` read as False (``s.str.contains('a') or
      n > 2`` dropped a row without ``s`` whose ``n`` is 3) and ``not`` refused (a TypeError).

    Examples
    --------
    >>> import pandas as pd
    >>> eval_expression(pd.DataFrame({"t": pd.Categorical(["click", "view"])}), "t >= 'p'").tolist()
    [False, True]
    >>> batch = pd.DataFrame({"flag": pd.Series([True, False], dtype=object)})
    >>> eval_expression(batch, "~flag").tolist()
    [False, True]
    >>> eval_condition(pd.DataFrame({"status": pd.array([503, None], dtype="Int64")}), "status >= 500").tolist()
    [True, False]
    >>> eval_condition(pd.DataFrame({"n": pd.array([2**62 + 1, None], dtype="Int64")}), "n == 4611686018427387904").tolist()
    [False, False]
    >>> eval_condition(pd.DataFrame({"s": ["ab", None]}), "not s.str.contains('a')").tolist()  # str; pandas 2: object
    [False, True]
    """
    columns = batch.columns
    if not columns.is_unique or not len(batch):
        return batch
    names = expression_names(expr)
    read = [n for n in names if n in columns] if names else list(columns)
    cast: dict[str, Any] = {}
    exact: dict[str, pd.Series] = {}
    # an object column of integers beyond int64 stays Python ints, and then so do the other object
    # columns of numbers: an int64 column with one of Python objects fails in pandas ("unsupported operand
    # type(s) for /: 'int64' and 'object"), where two object columns compute as Python does (0 / 10**400
    # is 0.0, as in the exported code); else a row's result would depend on its neighbours' values
    numbers_stay = bool(names) and any(_beyond_int64(batch[n]) for n in read)
    for n in read:
        col = batch[n]
        if isinstance(col.dtype, pd.api.extensions.ExtensionDtype) and col.dtype.kind in "iu":
            if col.hasnans and not _compares_only(expr):
                cast[n] = np.float64
            elif col.hasnans:
                exact[n] = pd.Series(exact_values(col, missing=np.nan), index=col.index, dtype=object)
            else:
                cast[n] = col.dtype.numpy_dtype  # type: ignore[attr-defined]
        elif names and col.dtype == object and pd.api.types.infer_dtype(col, skipna=False) == "boolean":
            cast[n] = bool
        elif (
            names
            and not numbers_stay
            and col.dtype == object
            and (number := _object_numbers(col)) is not None
        ):
            cast[n] = number
        elif (
            names
            and isinstance(col.dtype, pd.CategoricalDtype)
            and not col.dtype.ordered
            and expr.strip() != n  # a copy of the column keeps its storage
        ):
            cats = col.dtype.categories  # none: every value missing, and no type to read them as
            cast[n] = cats.dtype if len(cats) else object
        elif (
            _TEXT_AS_PANDAS_3 is not None
            and n in _str_methods_read(expr)
            and col.dtype == object
            and inferred_kind(col) in ("string", "empty")  # empty: every string of the part missing
        ):
            cast[n] = _TEXT_AS_PANDAS_3
    out = batch.astype(cast) if cast else batch
    return out.assign(**exact) if exact else out


#: pandas 3's text dtype (a missing string NaN, its ``.str`` tests False), for pandas 2.3's object text
_TEXT_AS_PANDAS_3 = pd.StringDtype("python", na_value=np.nan) if PANDAS_2_3 and not PANDAS_3 else None


@functools.lru_cache(maxsize=1024)
def _str_methods_read(expr: str) -> frozenset[str]:
    """The names whose ``.str`` methods ``expr`` reads (``s`` in ``s.str.len() > 2 or t.isna()``).

    Examples
    --------
    >>> sorted(_str_methods_read("s.str.contains('a') or n > 2 or t.isna()"))
    ['s']
    """
    try:
        tree = parse(unquote_backticks(expr.strip())[0], mode="eval")
    except SyntaxError:
        return frozenset()
    return frozenset(
        node.value.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr == "str" and isinstance(node.value, ast.Name)
    )


#: Nodes of an expression that only compares and combines its values (no arithmetic, no calls)
_COMPARING = (
    ast.Expression,
    ast.Compare,
    ast.BoolOp,
    ast.UnaryOp,
    ast.Name,
    ast.Constant,
    ast.List,
    ast.Tuple,
    ast.Load,
    ast.cmpop,
    ast.boolop,
    ast.unaryop,
    ast.BitAnd,
    ast.BitOr,
)


@functools.lru_cache(maxsize=1024)
def _compares_only(expr: str) -> bool:
    """Whether ``expr`` only compares and combines values (``a == 1 | ~(b > 2)``): pandas evaluates
    that on Python ints, where its arithmetic refuses them.

    Examples
    --------
    >>> _compares_only("n == 4611686018427387904 and not (m in [1, 2])"), _compares_only("n + 1 > 2")
    (True, False)
    >>> _compares_only("n > -5"), _compares_only("-n")
    (True, False)
    """
    try:
        tree = parse(unquote_backticks(expr.strip())[0], mode="eval")
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.BinOp):
            if not isinstance(node.op, (ast.BitAnd, ast.BitOr)):
                return False
        elif not isinstance(node, _COMPARING):
            return False
        elif _negates_a_value(node):
            return False  # -n computes: on Python ints the int64 minimum negated left int64
    return True


def _negates_a_value(node: ast.AST) -> bool:
    """Whether ``node`` is a sign (``-`` or ``+``) of something other than a constant (``-n``, not ``-5``).

    Examples
    --------
    >>> _negates_a_value(ast.parse("-n", mode="eval").body), _negates_a_value(ast.parse("-5", mode="eval").body)
    (True, False)
    """
    return (
        isinstance(node, ast.UnaryOp)
        and isinstance(node.op, (ast.USub, ast.UAdd))
        and not isinstance(node.operand, ast.Constant)
    )


def typed_result(value: Any) -> Any:
    """An expression's result as a column: integers of an object result (an ``int64`` column read with
    a missing value, :func:`as_expression_input`) as ``Int64``, every digit kept; anything else as it is.

    Examples
    --------
    >>> import pandas as pd
    >>> str(typed_result(pd.Series([2**62 + 2, float("nan")], dtype=object)).dtype)
    'Int64'
    """
    if (
        isinstance(value, pd.Series)
        and value.dtype == object
        and len(value)
        and pd.api.types.infer_dtype(value, skipna=True) == "integer"
    ):
        typed = inferred_series(value.to_numpy())
        typed.index = value.index
        return typed
    return value


def partly_missing(batch: pd.DataFrame, expr: str) -> np.ndarray | None:
    """Rows of ``batch`` missing a value that ``expr`` computes with, where other rows have one, or None.

    Such a column reads differently in the rows that have its values: a nullable integer column
    (``Int64``) that an expression computes with reads float64 when a value is missing
    (:func:`as_expression_input`), so ``n // 3`` gave ``2.0`` and ``n * n`` a float beyond int64 where
    a batch without a missing ``n`` gives the integers ``2`` and int64's answer; a text column with a
    missing value gives float64 from its ``.str`` methods (``s.str.len()``); an object column of Python
    numbers with a missing value stays objects (:func:`_object_numbers`), which compute as Python does
    beside an int beyond int64 (``0 + NaN``) and fail alone (``'int64' and 'object'``). Evaluated apart
    (:func:`by_presence`), the rows with every value give what they give in a batch of their own (and
    in the exported code, which evaluates a row at a time), whatever the batch holds besides.

    Examples
    --------
    >>> import pandas as pd
    >>> partly_missing(pd.DataFrame({"n": pd.array([1, None], dtype="Int64")}), "n // 3").tolist()
    [False, True]
    >>> partly_missing(pd.DataFrame({"n": pd.array([1, None], dtype="Int64")}), "n > 3") is None  # exact
    True
    """
    gaps = _partial_gaps(batch, expr)
    return np.logical_or.reduce(gaps) if gaps else None


_NUMBER_KINDS = ("integer", "floating", "mixed-integer-float")
_INT_KINDS = ("integer", "mixed-integer-float", "mixed-integer", "mixed")


def _partial_gaps(batch: pd.DataFrame, expr: str) -> list[np.ndarray]:
    """For each column ``expr`` computes with whose type a missing value changes and that some rows of
    ``batch`` lack and others have, which rows lack it (see :func:`partly_missing`)."""
    names = expression_names(expr)
    if not names or not len(batch) or not batch.columns.is_unique:
        return []
    compares = _compares_only(expr)
    found = []
    for n in names:
        if n not in batch.columns:
            continue
        col = batch[n]
        dtype = col.dtype
        # text: pandas' string dtype, or strings as objects (pandas 2's text columns, a json field's)
        kind = inferred_kind(col) if col.dtype == object else ""
        if kind in _MIXED_KINDS:
            # values of several types (a json field's): each type apart, read as a part holding it alone
            # reads it (and the exported code, a row at a time): an int as int64 beside floats (6, not
            # 6.0), a bool as a bool beside numbers (-True and ~True are False), a number beside text
            # (a.str.len() refused), a missing value beside bools
            codes = _type_codes(col.tolist())
            if bool((codes != codes[0]).any()):
                found.append(codes)
        if kind in _INT_KINDS:
            # an int beyond int64 keeps every number column of its part Python objects (numbers_stay in
            # as_expression_input), where a row without one reads int64 or float64 alone: such rows and
            # the others are evaluated apart, so neither computes as its neighbours make it (-a too: the
            # int64 minimum negates to itself in int64, to 2**63 as a Python int)
            big = np.fromiter((type(v) is int and not _fits_int64(v) for v in col.tolist()), bool, len(col))
            if big.any() and not big.all():
                found.append(big)
        if compares:
            continue  # comparisons and logic read Python ints exactly: a missing value changes nothing
        integers = isinstance(dtype, pd.api.extensions.ExtensionDtype) and dtype.kind in "iu"
        text = isinstance(dtype, pd.StringDtype) or kind == "string"
        # Python numbers as objects: a part without a missing one reads them as numbers, a part with
        # one keeps them objects (_object_numbers), so a missing row computed as Python does (0 + NaN)
        # beside an int beyond int64 (numbers_stay) and failed alone ('int64' and 'object')
        numbers = kind in _NUMBER_KINDS
        # text as objects (a json field's) on pandas 3: its null joins a str column's text alone (a
        # TypeError, 'object' and 'str'), where beside strings the column joins it (NaN)
        objects_text = PANDAS_3 and kind == "string"
        if not (integers or numbers or (text and "." in expr) or objects_text):
            continue  # a text column's own operators keep their type beside a missing value
        gaps = col.isna().to_numpy()
        if gaps.any() and not gaps.all():
            found.append(gaps)
    return found + _masked_rows(batch, expr)


#: Methods of a column that set rows missing by a condition (``n.where(n > 0)``, ``n.mask(n < 0)``)
_MASKING = ("where", "mask")


@functools.lru_cache(maxsize=512)
def _masks(expr: str) -> tuple[tuple[str, ...], str | None]:
    """The conditions of the ``.where``/``.mask`` calls of ``expr``, and ``expr`` with each such call
    replaced by the values it masks (every row kept), as expressions; ``((), None)`` without such a call.

    Examples
    --------
    >>> _masks("n.where(n > 0 & m < 2) * 2")
    (('n > 0 and m < 2',), 'n * 2')
    >>> _masks("`a b`.mask(cond=`a b` < 0, other=1)")
    (('`a b` < 0',), '`a b`')
    >>> _masks("n.fillna(0)"), _masks("n.where(False)")
    (((), None), ((), 'n'))
    """
    from streamlab.export._snippets import ExprCompiler  # not at import: streamlab.export imports this

    if not any(f".{m}" in expr for m in _MASKING):
        return (), None
    try:
        unquoted, quoted = unquote_backticks(expr.strip())
        source = ExprCompiler.source(unquoted, keywords=True)  # & and | as pandas reads them
        tree = parse(source, mode="eval") if source is not None else None
    except SyntaxError:
        return (), None
    if tree is None:
        return (), None

    def text(node: ast.AST) -> str:
        out = ast.unparse(node)
        return re.sub(rf"{BACKTICK_PREFIX}\d+", lambda m: f"`{quoted.get(m.group(), m.group())}`", out)

    conditions: list[str] = []
    calls = []

    class Kept(ast.NodeTransformer):
        def visit_Call(self, node: ast.Call) -> ast.AST:
            func = node.func
            if not (isinstance(func, ast.Attribute) and func.attr in _MASKING):
                return self.generic_visit(node)
            calls.append(node)
            cond = (
                node.args[0] if node.args else next((k.value for k in node.keywords if k.arg == "cond"), None)
            )
            if cond is not None and not isinstance(cond, ast.Constant):  # (a constant splits no rows)
                conditions.append(text(cond))
            return self.visit(func.value)  # type: ignore[no-any-return]

    kept = Kept().visit(tree)
    return (tuple(conditions), text(kept)) if calls else ((), None)


def _masked_rows(batch: pd.DataFrame, expr: str) -> list[np.ndarray]:
    """For each ``.where``/``.mask`` call of ``expr`` whose condition holds on some rows of ``batch`` and
    not on others, a code per row of the condition's value.

    pandas' ``n.where(n > 0)`` of an int64 ``n`` is float64 in a batch where a row is set missing (``3.0``,
    and integers beyond 2**53 rounded) and int64 in one where none is; a row alone, and the exported code,
    give the integer. Evaluated apart (:func:`by_presence`), the kept rows give their integers, and
    beside the rows set missing make a nullable integer column, as rows missing an ``int64`` field do.

    Examples
    --------
    >>> batch = pd.DataFrame({"n": [2**53 + 1, -3, 4]})
    >>> [codes.tolist() for codes in _masked_rows(batch, "n.where(n > 0)")]
    [[0, 1, 0]]
    >>> eval_expression(batch, "n.where(n > 0)").tolist()
    [9007199254740993, <NA>, 4]
    """
    found = []
    for cond in _masks(expr)[0]:
        try:
            got = eval_condition(batch, cond)
        except Exception:  # the expression's own evaluation fails, with its own error
            continue
        if not isinstance(got, pd.Series) or len(got) != len(batch):
            continue
        codes = pd.factorize(got.to_numpy(dtype=object))[0].astype(np.int64)  # a missing value: -1
        if bool((codes != codes[0]).any()):
            found.append(codes)
    return found


_MIXED_KINDS = ("mixed", "mixed-integer", "mixed-integer-float", "boolean")


def _type_codes(values: list[Any]) -> np.ndarray:
    """A code for each value's type, the same for values of one type, in order of first appearance.

    Examples
    --------
    >>> _type_codes([1, "a", 2.5, None, 3, True]).tolist()
    [0, 1, 2, 3, 0, 4]
    """
    seen: dict[type, int] = {}
    return np.fromiter((seen.setdefault(type(v), len(seen)) for v in values), np.int64, len(values))


def by_presence(batch: pd.DataFrame, expr: str, evaluate: Callable[[pd.DataFrame], Any]) -> Any:
    """``evaluate(batch)``, rows evaluated in groups of those that miss the same of the values
    :func:`partly_missing` looks at, their results put back in the batch's order: integers of the rows
    with values and missing values of the others make a nullable integer column (:func:`typed_result`
    keeps it so). In a group, each such column is all there or all missing.

    Examples
    --------
    >>> import pandas as pd
    >>> batch = pd.DataFrame({"n": pd.array([2**62 + 1, None, 7], dtype="Int64")})
    >>> eval_expression(batch, "n // 3").tolist()
    [1537228672809129301, <NA>, 2]
    """
    gaps = _partial_gaps(batch, expr)
    if not gaps:
        return evaluate(batch)
    # a group per pattern of missing columns; the rows with every value first
    _, pattern, sizes = np.unique(np.column_stack(gaps), axis=0, return_inverse=True, return_counts=True)
    order = np.argsort(pattern.reshape(-1), kind="stable")
    parts = []
    for rows in np.split(order, np.cumsum(sizes)[:-1]):
        part = batch.iloc[rows]
        value = evaluate(part)
        if not isinstance(value, pd.Series) or len(value) != len(part):
            return evaluate(batch)  # a scalar or a frame: no rows to put back
        parts.append(value.reset_index(drop=True))
    numbers = [p for p in parts if not (p.dtype.kind == "f" and bool(p.isna().all()))]
    if (numbers and len(numbers) < len(parts) and all(p.dtype.kind in "iu" for p in numbers)) or (
        number_kinds_differ(parts)
    ):
        # integers beside groups of only missing values: objects, which typed_result makes Int64; ints of
        # one part beside floats or bools of another (a json field's values, each type apart): each value
        # as its part gave it (concat would make the ints floats)
        joined = pd.Series(np.concatenate([p.to_numpy(dtype=object) for p in parts]))
    else:
        joined = pd.concat(parts, ignore_index=True)
    out = joined.take(np.argsort(order, kind="stable"))
    out.index = batch.index
    return out


def number_kinds_differ(parts: list[pd.Series]) -> bool:
    """Whether ``parts`` (one column's values, computed apart) hold numbers of different kinds (ints, floats,
    bools), a part of only missing values (NaN) counting for nothing: joined by pandas, ints would become
    floats and bools ints.

    Examples
    --------
    >>> number_kinds_differ([pd.Series([6]), pd.Series([5.0])]), number_kinds_differ([pd.Series([6]), pd.Series([None], dtype=float)])
    (True, False)
    """
    kinds = {p.dtype.kind for p in parts if not (p.dtype.kind == "f" and bool(p.isna().all()))}
    return len(kinds & set("biuf")) > 1


def eval_expression(batch: pd.DataFrame, expr: str) -> Any:
    """``batch.eval(expr, engine="python")``, through its compiled form when every name is a column.

    The compiled form (:func:`compile_expression`) runs the same pandas operations; where it does
    not apply, or raises, ``DataFrame.eval`` evaluates the expression (and raises its own errors). Rows
    missing a value the expression computes with, beside rows that have one, are evaluated apart
    (:func:`by_presence`).

    Examples
    --------
    >>> import pandas as pd
    >>> batch = pd.DataFrame({"ratio": [2.0, None], "amount": [5.0, 600.0]})
    >>> eval_expression(batch, "ratio.fillna(1.0) * amount").tolist()
    [10.0, 600.0]
    """
    with np.errstate(all="ignore"):  # floating-point flags: see eval_condition
        value = by_presence(batch, expr, lambda part: _as_with_values(part, expr, _eval_whole(part, expr)))
    return _as_object_text(value)


def _as_object_text(value: Any) -> Any:
    """On pandas 2.3, text an expression computed from a column read as pandas 3's text dtype
    (:func:`as_expression_input`) back as pandas 2 holds text, objects with None for a missing string:
    a computed column keeps the type it has in every other batch (and the one it had before).

    Examples
    --------
    >>> _as_object_text(pd.Series(["a", None], dtype=object)).tolist()
    ['a', None]
    """
    if _TEXT_AS_PANDAS_3 is not None and isinstance(value, pd.Series) and value.dtype == _TEXT_AS_PANDAS_3:
        return value.astype(object).where(value.notna(), None)
    return value


def _as_with_values(batch: pd.DataFrame, expr: str, value: Any) -> Any:
    """``value``, the result of ``expr`` over rows that all miss an integer field it computes with, as
    integers (``Int64``) where the same expression gives integers over rows that have the field.

    Such a field reads as float64 NaN there (:func:`as_expression_input`), so ``n.fillna(0)`` gave
    ``0.0`` in a batch (or a part of one, :func:`by_presence`) whose rows all missed ``n`` and ``7`` in
    one whose rows had it: the column's type, and the JSON a sink writes (``7.0``), depended on how the
    rows were cut into batches. The rows are first evaluated with the field as None, as the exported code
    reads a row (``n.fillna(1.0)`` is 1.0, ``n.fillna(0)`` is 0); where that fails (``n + 1``), the type
    is that of the expression over one row holding an integer (1), if the values are whole numbers.

    Examples
    --------
    >>> import pandas as pd
    >>> eval_expression(pd.DataFrame({"n": pd.array([None], dtype="Int64")}), "n.fillna(0)").tolist()
    [0]
    >>> eval_expression(pd.DataFrame({"n": pd.array([None], dtype="Int64")}), "n / 2").tolist()
    [nan]
    """
    if isinstance(value, pd.Series) and value.dtype.kind in "iu" and len(value) and batch.columns.is_unique:
        return _as_without_values(batch, expr, value)
    if not (
        isinstance(value, pd.Series) and value.dtype.kind == "f" and len(value) and batch.columns.is_unique
    ):
        return value
    masked = _as_masked(batch, expr, value)
    if masked is not value:
        return masked
    names = expression_names(expr)
    if not names or _compares_only(expr):
        return value
    ints = [
        n
        for n in names
        if n in batch.columns
        and isinstance(batch[n].dtype, pd.api.extensions.ExtensionDtype)
        and batch[n].dtype.kind in "iu"
        and bool(batch[n].isna().all())
    ]
    if not ints:
        return value
    given = _with_missing_values(batch, expr, ints)
    if given is not None:
        return given
    numbers = value.to_numpy()
    present = ~np.isnan(numbers)
    whole = numbers[present]
    if not (np.all(np.abs(whole) < 2.0**63) and np.all(whole == np.floor(whole))):
        return value
    probe = batch.iloc[:1].copy()
    for n in ints:
        probe[n] = np.ones(1, dtype=np.int64)
    try:
        kind = getattr(_eval_whole(probe, expr), "dtype", None)
    except Exception:  # the probe's value fails where the rows' do not: keep what they gave
        return value
    if kind is None or kind.kind not in "iu":
        return value
    out = pd.Series(
        pd.array(np.zeros(len(value), dtype=np.int64), dtype="Int64"), index=value.index, name=value.name
    )
    out[present] = whole.astype(np.int64)
    out[~present] = pd.NA
    return out.astype(np.int64) if present.all() else out


def _as_masked(batch: pd.DataFrame, expr: str, value: pd.Series) -> Any:
    """``value``, the result of ``expr`` over rows that its ``.where``/``.mask`` calls all set missing
    (:func:`_masked_rows`), as missing integers (``Int64``) where the values kept are integers: the rows it
    keeps give integers, so ``n.where(n > 0)`` is a nullable integer column in every batch.

    Examples
    --------
    >>> import pandas as pd
    >>> eval_expression(pd.DataFrame({"n": [-3, -4]}), "n.where(n > 0)").dtype
    Int64Dtype()
    >>> eval_expression(pd.DataFrame({"n": [-3, -4]}), "(n / 2).where(n > 0)").dtype
    dtype('float64')
    """
    _, kept = _masks(expr)
    if kept is None or not bool(value.isna().all()) or not batch.columns.is_unique:
        return value
    probe = batch.iloc[:1].copy()
    for n in probe.columns:  # an integer column all missing here: its values are integers where present
        col = probe[n]
        if isinstance(col.dtype, pd.api.extensions.ExtensionDtype) and col.dtype.kind in "iu" and col.hasnans:
            probe[n] = np.ones(1, dtype=col.dtype.numpy_dtype)  # type: ignore[attr-defined]
    try:
        probe = _eval_whole(probe, kept)
    except Exception:  # the values kept fail where the masked rows do not: keep what they gave
        return value
    if not isinstance(probe, pd.Series) or probe.dtype.kind not in "iu":
        return value
    dtype = "UInt64" if probe.dtype.kind == "u" else "Int64"
    return pd.Series(pd.NA, index=value.index, dtype=dtype, name=value.name)


#: Whether an expression gives a float where its integer columns are missing, by (expression, the dtypes
#: of the columns it reads): a property of the expression and the types, found once on a row
_FLOAT_WHEN_MISSING: dict[tuple[str, tuple[tuple[str, str], ...]], bool] = {}


def _as_without_values(batch: pd.DataFrame, expr: str, value: pd.Series) -> Any:
    """``value``, integers of ``expr`` over rows that all have the integer fields it computes with, as
    float64 where the expression gives a float for a row missing them (``n.fillna(0.5)``): otherwise
    such a column was int64 in a batch without a gap and float64 in one with a gap (7 or 7.0)."""
    names = expression_names(expr)
    if not names or _compares_only(expr):
        return value
    ints = [n for n in names if n in batch.columns and batch[n].dtype.kind in "iu"]  # int64 or Int64
    if not ints:
        return value
    key = (expr, tuple((n, str(batch[n].dtype)) for n in names if n in batch.columns))
    floats = _FLOAT_WHEN_MISSING.get(key)
    if floats is None:
        got = _with_missing_values(batch.iloc[:1], expr, ints)
        floats = got is not None and got.dtype.kind == "f"
        if len(_FLOAT_WHEN_MISSING) < 1024:
            _FLOAT_WHEN_MISSING[key] = floats
    return value.astype(np.float64) if floats else value


def _with_missing_values(batch: pd.DataFrame, expr: str, ints: list[str]) -> pd.Series | None:
    """``expr`` over ``batch`` with the integer columns ``ints``, all missing, read as missing values
    (None) rather than NaN, as the exported code reads a row: ``n.fillna(1.0)`` is the float 1.0 and
    ``n.fillna(0)`` the int 0 there. None when that fails (``n + 1`` of None) or gives no number (``n * n``
    of None is NaN in pandas, a TypeError in Python)."""
    none = pd.Series([None] * len(batch), dtype=object, index=batch.index)
    try:
        got = _pandas_eval(batch.assign(**dict.fromkeys(ints, none)), expr)
    except Exception:  # arithmetic on None: the NaN reading decides
        return None
    if not isinstance(got, pd.Series) or len(got) != len(batch) or got.dtype != object:
        return None
    values = got.tolist()
    if all(type(v) is int and _fits_int64(v) for v in values):
        return pd.Series(np.array(values, dtype=np.int64), index=got.index, name=got.name)
    if all(type(v) is float for v in values) and any(v == v for v in values):  # all NaN: n * n of None
        return pd.Series(np.array(values, dtype=np.float64), index=got.index, name=got.name)
    return None


def _eval_whole(batch: pd.DataFrame, expr: str) -> Any:
    batch = as_expression_input(batch, expr)
    fn = compile_expression(expr)
    if fn is not None and _all_columns(batch, expr):
        try:
            return fn(batch)
        except Exception:  # _NotCompiledError or an error: DataFrame.eval gives the result or its error
            pass
    return _pandas_eval(batch, expr)


def _all_columns(batch: pd.DataFrame, expr: str) -> bool:
    """Whether every name ``expr`` reads is a column of ``batch`` (and no backtick-quoted one, which
    only ``DataFrame.eval`` resolves)."""
    if "`" in expr:
        return False
    names = expression_names(expr)
    columns = batch.columns
    return bool(names) and columns.is_unique and all(isinstance(n, str) and n in columns for n in names)  # type: ignore[union-attr]


#: Operators whose errors depend on their operands' types alone (not ``**``: an integer power fails only
#: for negative exponents; not ``&``/``|``/``^`` on numbers, whose errors can depend on NaN among them)
_ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.FloorDiv, ast.Mod)


def _type_driven(node: ast.AST) -> bool:
    """Whether evaluating ``node`` fails or not by its operands' types alone: names, constants,
    arithmetic, comparisons, and and/or/not (``&``/``|``/``~``) over comparisons."""
    if isinstance(node, ast.Expression):
        return _type_driven(node.body)
    if isinstance(node, (ast.Name, ast.Constant)):
        return True
    if isinstance(node, (ast.Tuple, ast.List)):
        return all(_type_driven(e) for e in node.elts)
    if isinstance(node, ast.Compare):
        return _type_driven(node.left) and all(_type_driven(c) for c in node.comparators)
    if isinstance(node, ast.BinOp):
        if isinstance(node.op, _ARITHMETIC):
            return _type_driven(node.left) and _type_driven(node.right)
        if isinstance(node.op, (ast.BitAnd, ast.BitOr)):
            return _logical(node.left) and _logical(node.right)
        return False
    if isinstance(node, ast.BoolOp):
        return all(_logical(v) for v in node.values)
    if isinstance(node, ast.UnaryOp):
        if isinstance(node.op, (ast.Not, ast.Invert)):
            return _logical(node.operand)
        return isinstance(node.op, (ast.USub, ast.UAdd)) and _type_driven(node.operand)
    return False


def _logical(node: ast.AST) -> bool:
    """A condition made of comparisons (their results are booleans whatever the values)."""
    if isinstance(node, ast.Compare):
        return _type_driven(node)
    if isinstance(node, ast.BoolOp) or (
        isinstance(node, ast.BinOp) and isinstance(node.op, (ast.BitAnd, ast.BitOr))
    ):
        return _type_driven(node)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.Invert)):
        return _logical(node.operand)
    return False


def fails_alike(batch: pd.DataFrame, expr: str) -> bool:
    """Whether ``expr``, having failed on ``batch``, fails on every part of it as well.

    True when it reads only columns of ``batch`` whose dtype is not ``object`` (each part keeps the
    column's dtype, where an object column's values may differ in type) with operators alone. Such a
    failure (a text column compared with a number) is the expression's, not a row's: a step need not
    look for the rows that cause it, one part at a time.

    Examples
    --------
    >>> import pandas as pd
    >>> batch = pd.DataFrame({"country": pd.Series(["FR"], dtype="string"), "mixed": pd.Series(["7"], dtype=object)})
    >>> fails_alike(batch, "country > 5"), fails_alike(batch, "mixed > 5")
    (True, False)
    >>> fails_alike(batch, "country.str.len() > 5")
    False
    """
    names = expression_names(expr)
    if not _all_columns(batch, expr) or any(_read_as_objects(batch[n]) for n in names or ()):
        return False
    if any(_missing_text(batch[n]) for n in names or ()):
        return False  # a part whose text is all missing compares with a number (False): kind_groups
    return type_driven(expr)


def type_driven(expr: str) -> bool:
    """Whether ``expr`` fails or not by its operands' types alone, whatever their values: names,
    constants, arithmetic, comparisons, and and/or/not over comparisons (no call, no attribute).

    Examples
    --------
    >>> type_driven("country > 5 and amount * 2 > 1"), type_driven("country.str.len() > 5")
    (True, False)
    """
    try:
        tree = parse(expr, mode="eval")
    except SyntaxError:
        return False
    return _type_driven(tree)


def _read_as_objects(col: pd.Series) -> bool:
    """Whether an expression reads ``col`` as Python objects: an object column, or an unordered category
    of them (read as its values' type, :func:`as_expression_input`: text is ``str`` on pandas 3, objects
    on pandas 2, where text compared with a float NaN is False rather than an error, so its failures are
    the values', not the dtype's)."""
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype) and not dtype.ordered:
        return bool(dtype.categories.dtype == object)
    return bool(col.dtype == object)


def _missing_text(col: pd.Series) -> bool:
    """A text column (pandas' string dtype) with missing values: compared with a number it fails unless
    every value of the part is missing, so its failure is not its dtype's alone."""
    return isinstance(col.dtype, pd.StringDtype) and bool(col.isna().any())


class _NoKindError(Exception):
    """A value whose failure under an operator may depend on the value itself, not on its kind."""


def _kind(value: Any) -> Any:
    """What an operator-only expression's failure on ``value`` depends on: its type and, for a number,
    whether it is zero (division), NaN or infinite, an int beyond a double's range (mixed with a
    float) or beyond int64; raises :class:`_NoKindError` for any other type (a container compares by its contents, a
    datetime by its time zone)."""
    t = type(value)
    if value is None or t is str:
        return t
    if t is bool or t is int:
        if value == 0:
            return t, 0
        try:
            float(value)
        except OverflowError:
            return t, math.inf
        # beyond int64 a part reads Python ints (as_expression_input), within it int64: two kinds
        return t, 1 if t is bool or _fits_int64(value) else 2
    if t is float:
        if value != value:
            return t, "nan"  # missing, as pandas reads it
        return t, 0 if value == 0 else value if math.isinf(value) else 1
    raise _NoKindError


def kind_groups(batch: pd.DataFrame, exprs: list[str]) -> list[np.ndarray] | None:
    """Rows of ``batch`` on which ``exprs`` fail or not alike: groups of row positions whose values
    in the columns the expressions read are of one kind each (``_kind``), in order of first row; None
    when that cannot be told (no column of Python objects nor text column with missing values: see
    :func:`fails_alike`; an expression beyond names, constants and operators; a value of another type;
    text under ``*`` or ``%``, where repeating or formatting depends on the value; bools among other
    values, read as a bool column by a part that holds them alone, :func:`as_expression_input`).

    An expression that fails on one row of a group fails on every row of it (with the same error), so
    a step evaluates each group once instead of halving the batch, two evaluations a row.

    Examples
    --------
    >>> import pandas as pd
    >>> batch = pd.DataFrame({"v": pd.Series([1, "a", 2, None, "b", 0], dtype=object)})
    >>> [g.tolist() for g in kind_groups(batch, ["v > 1"])]
    [[0, 2], [1, 4], [3], [5]]
    >>> kind_groups(batch, ["v * 2 > 1"]) is None  # "a" * 2 is "aa"
    True
    """
    names: list[str] = []
    repeat: set[str] = set()  # the names read by an expression with * or %
    for expr in exprs:
        found = expression_names(expr)
        if not _all_columns(batch, expr) or found is None:
            return None
        try:
            tree = parse(expr, mode="eval")
        except SyntaxError:
            return None
        if not _type_driven(tree):
            return None
        names += [n for n in found if n not in names]
        if any(isinstance(n, ast.BinOp) and isinstance(n.op, (ast.Mult, ast.Mod)) for n in ast.walk(tree)):
            repeat.update(found)
    if not any(batch[n].dtype == object or _missing_text(batch[n]) for n in names):
        return None
    try:
        kinds = [[_kind(v) for v in batch[n].tolist()] for n in names]
    except _NoKindError:
        return None
    # text under * or % of its own expression (another expression's * on numbers does not matter)
    if any(n in repeat and str in column for n, column in zip(names, kinds, strict=True)):
        return None
    for column in kinds:  # a part holding bools alone reads them as a bool column (as_expression_input)
        has_bool = [isinstance(k, tuple) and k[0] is bool for k in column]
        if any(has_bool) and not all(has_bool):
            return None
    groups: dict[Any, list[int]] = {}
    for i, key in enumerate(zip(*kinds, strict=True)):
        groups.setdefault(key, []).append(i)
    return [np.array(rows, dtype=np.int64) for rows in groups.values()]


def eval_condition(batch: pd.DataFrame, expr: str) -> Any:
    """``batch.eval(expr, engine="python")``, resolving only the columns ``expr`` names.

    The compiled form first (:func:`eval_expression`). Otherwise: ``DataFrame.eval`` builds a
    Series for every column and for the index before it parses; when every name in ``expr`` is a
    column, those columns resolve first there too, so handing pandas just them gives the same
    result (anything else, such as an index name, a function or a backtick-quoted column, takes
    ``DataFrame.eval`` itself).

    Examples
    --------
    >>> import pandas as pd
    >>> batch = pd.DataFrame({"amount": [5.0, 600.0], "country": ["FR", "US"], "x": [1, 2]})
    >>> eval_condition(batch, "amount >= 500 and country != 'FR'").tolist()
    [False, True]
    """
    # numpy's floating-point flags (1 / 0, 1e308 * 10, a number compared with NaN among objects) are
    # results, inf or NaN or False, as in the exported code: without this each raised a RuntimeWarning,
    # noise in a notebook, and where warnings are errors (pytest's filterwarnings) the row a dead letter
    with np.errstate(all="ignore"):
        return _eval_condition(as_expression_input(batch, expr), expr)


def _eval_condition(batch: pd.DataFrame, expr: str) -> Any:
    if not _all_columns(batch, expr):
        return _pandas_eval(batch, expr)
    fn = compile_expression(expr)
    if fn is not None:
        try:
            return fn(batch)
        except Exception:
            pass
    names = expression_names(expr) or ()
    rewritten, texts = _text_operands(expr)
    resolvers = {n: batch[n] for n in names} | {n: _constant_column(batch, v, expr) for n, v in texts}
    return _pandas_evaluates(pd.eval, rewritten, engine="python", resolvers=[resolvers], target=batch)


@functools.lru_cache(maxsize=512)
def _text_operands(expr: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """``expr`` with each string constant next to a ``+`` read from a name, and those (name, constant):
    the rule the exported code follows (``ExprCompiler.text_operands``), for ``DataFrame.eval``, which
    refuses a string constant in arithmetic but joins text columns."""
    from streamlab.export._snippets import ExprCompiler  # not at import: streamlab.export imports this

    return ExprCompiler.text_operands(expr)


def _constant_column(batch: pd.DataFrame, value: str, expr: str) -> pd.Series:
    from streamlab.export._snippets import ExprCompiler

    return ExprCompiler.constant_column(batch, value, expr)  # type: ignore[no-any-return]


def _pandas_eval(batch: pd.DataFrame, expr: str) -> Any:
    """``batch.eval(expr, engine="python")``, a string constant joined with ``+`` read as a column of it
    (:func:`_text_operands`)."""
    rewritten, texts = _text_operands(expr)
    with as_pandas_3():
        if texts:
            resolvers = [{n: _constant_column(batch, v, expr) for n, v in texts}]
            return _pandas_evaluates(batch.eval, rewritten, engine="python", resolvers=resolvers)
        return _pandas_evaluates(batch.eval, expr, engine="python")


def _pandas_evaluates(fn: Callable[..., Any], expr: str, **kwargs: Any) -> Any:
    """``fn(expr, **kwargs)``, a pandas ``eval`` (through :func:`guarded`), raising the TypeError pandas
    meant where it garbles it (``-1.5 + a`` over objects: "'UnaryOp' object has no attribute 'type'"),
    as the exported code does (``ExprCompiler.meant``), so a dead letter's reason says which operation
    refused which types. On pandas 2, an operation whose attribute ``expr`` reads (``(n * 2).fillna(1)``)
    is evaluated first, as pandas 3 evaluates it (``ExprCompiler.operations_read``).

    Examples
    --------
    >>> import pandas as pd
    >>> try:
    ...     _pandas_evaluates(pd.DataFrame({"a": [None]}).eval, "-1.5 + a", engine="python")
    ... except TypeError as e:
    ...     print(e)
    unsupported operand type(s) for +: '<class 'float'>' and 'object'
    """
    from streamlab.export._snippets import ExprCompiler

    return ExprCompiler.meant(functools.partial(guarded, fn), expr, **kwargs)
