"""Declared column types, traced back through the graph, so steps can check them at construction.

A column's type is known where it is declared (a parse step's schema, a source's DataFrame, an enrich
table) and is carried by steps that pass columns through unchanged (dedup, filter, key_by, select,
union, a window's ``late`` output). Anything else (user functions, expressions) makes it unknown, and
unknown types are never an error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from streamlab._compat import PANDAS_3
from streamlab._expr import eval_expression, expression_names, type_driven
from streamlab.aggregators import (
    Aggregator,
    MaxAggregator,
    MeanAggregator,
    MinAggregator,
    QuantileAggregator,
    SumAggregator,
)
from streamlab.steps import (
    DedupStep,
    EnrichStep,
    FilterStep,
    IntervalJoinStep,
    KeyByStep,
    MapStep,
    OperatorStep,
    ParseStep,
    SelectStep,
    SourceStep,
    UnionStep,
    WindowStep,
)

if TYPE_CHECKING:
    from streamlab.pipeline import Pipeline

__all__ = [
    "NOT_NUMERIC",
    "NUMERIC",
    "aggregator_type_problem",
    "declared_type",
    "expression_type_problem",
    "join_key_type_problem",
]

_NUMERIC_AGGS = (SumAggregator, MeanAggregator, MinAggregator, MaxAggregator, QuantileAggregator)
#: Declared types whose values are numbers (a bool as 0 or 1).
NUMERIC = frozenset({"int64", "float64", "bool"})
#: Declared types a step that reads numbers cannot read.
NOT_NUMERIC = frozenset({"string", "category", "timestamp", "object"})


def _frame_type(series: pd.Series) -> str | None:
    kind = series.dtype.kind
    if kind in "iu":
        return "int64"
    if kind == "f":
        return "float64"
    if kind == "b":
        return "bool"
    if kind == "M" or isinstance(series.dtype, pd.DatetimeTZDtype):
        return "timestamp"
    if isinstance(series.dtype, pd.CategoricalDtype):
        return "category"
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    return "string" if inferred == "string" else None


def declared_type(pipeline: Pipeline, ref: str, column: str) -> tuple[str, str] | None:
    """``(type, step_id that declared it)`` of ``column`` in stream ``ref``, or None when unknown.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b'{}']))
    >>> s = p.parse({'user_id': 'string', 'timestamp': 'timestamp'}).dedup('user_id')
    >>> declared_type(p, s.ref, 'user_id')
    ('string', 'parse')
    """
    for _ in range(len(pipeline.steps) + 1):
        sid, _, out = ref.partition(".")
        step = pipeline.steps.get(sid)
        if step is None:
            return None
        if isinstance(step, ParseStep):
            if out:
                return None
            typ = next((f.type for f in step.fields if f.name == column), None)
            if typ is not None:
                return typ, sid
        elif isinstance(step, SourceStep):
            frame = getattr(step.source, "frame", None)
            if isinstance(frame, pd.DataFrame) and column in frame.columns:
                typ = _frame_type(frame[column])
                return (typ, sid) if typ else None
            return None
        elif isinstance(step, EnrichStep):
            ins = pipeline.columns_of(step.inputs[0])
            if (ins is None or column not in ins) and column in step.table.columns:
                typ = _frame_type(step.table[column])
                return (typ, sid) if typ else None
        elif isinstance(step, SelectStep):
            column = next((i for i, o in step.columns if o == column), column)
        elif isinstance(step, UnionStep):
            found = {declared_type(pipeline, r, column) for r in step.inputs}
            types = {f[0] if f else None for f in found}
            return next(iter(found)) if len(types) == 1 and None not in types else None
        elif isinstance(step, MapStep):
            if step.fn is not None or column in dict(step.columns) or out:
                return None
        elif isinstance(step, WindowStep):
            if out in ("", "early"):
                return _window_result_type(pipeline, step, column)
            if out != "late":
                return None
        elif isinstance(step, OperatorStep):
            from streamlab.detectors._common import StepConfig

            config = step.config
            if out or not isinstance(config, StepConfig):
                return None
            typ = config.added_column_types().get(column)
            if typ is not None:
                return typ, sid
            # out rows are the input rows with the added columns (the StepConfig default) or unknown
            if type(config).out_columns is not StepConfig.out_columns or column in config.added_columns():
                return None
        elif isinstance(step, (FilterStep, KeyByStep)):
            if out:
                return None
        elif not isinstance(step, DedupStep):
            return None
        if not step.inputs:
            return None
        ref = step.inputs[0]
    return None


def _window_result_type(pipeline: Pipeline, step: WindowStep, column: str) -> tuple[str, str] | None:
    """The type of ``column`` of a window's results: a key column keeps its input type, the window
    bounds are timestamps, an aggregator's output is what :meth:`Aggregator.result_type` says."""
    if column in step.keys:
        return declared_type(pipeline, step.inputs[0], column)
    if column in ("window_start", "window_end"):
        return "timestamp", step.step_id
    if column == "is_final":
        return "bool", step.step_id
    for a in step.aggs:
        if a.name == column:
            found = declared_type(pipeline, step.inputs[0], a.column) if a.column is not None else None
            typ = a.result_type(found[0] if found else None)
            if typ is None:
                return None
            # the type a first/last keeps was declared upstream; a computed one by this step
            return typ, found[1] if found and typ == found[0] else step.step_id
    return None


def aggregator_type_problem(pipeline: Pipeline, ref: str, aggregator: Aggregator) -> tuple[str, str] | None:
    """``(problem, fix)`` when a numeric aggregator is given a column declared non-numeric, else None.

    Examples
    --------
    >>> from streamlab import Pipeline, agg
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b'{}']))
    >>> s = p.parse({'user_id': 'string', 'timestamp': 'timestamp'})
    >>> problem, fix = aggregator_type_problem(p, s.ref, agg.sum('user_id'))
    >>> problem
    "agg.sum('user_id') adds numbers, but column 'user_id' is string (declared by step 'parse')"
    """
    if not isinstance(aggregator, _NUMERIC_AGGS) or aggregator.column is None:
        return None
    found = declared_type(pipeline, ref, aggregator.column)
    if found is None or found[0] not in NOT_NUMERIC:
        return None
    typ, where = found
    col = aggregator.column
    what = {
        SumAggregator: "adds numbers",
        MeanAggregator: "averages numbers",
        QuantileAggregator: "ranks numbers",
    }.get(type(aggregator), "compares numbers")
    problem = (
        f"agg.{aggregator.kind}({col!r}) {what}, but column {col!r} is {typ} (declared by step {where!r})"
    )
    options = f"agg.count_distinct({col!r}), agg.first({col!r}) or agg.last({col!r})"
    if typ == "timestamp":
        fix = f"use {options} for a {typ} column, or aggregate a numeric column"
    else:
        fix = (
            f"use {options} for a {typ} column; if it holds numbers, declare it as float64 or int64 in "
            f"the schema of step {where!r}"
        )
    return problem, fix


#: One value of each declared type, in the dtype a batch holds it in (pandas 2's text is Python objects)
_SAMPLES: dict[str, pd.Series] = {
    "string": pd.Series(["a"], dtype="str" if PANDAS_3 else object),
    "int64": pd.Series([1], dtype="int64"),
    "float64": pd.Series([1.5], dtype="float64"),
    "bool": pd.Series([True], dtype="bool"),
    "timestamp": pd.Series(pd.to_datetime(["2024-01-01T00:00:00Z"], utc=True)),
}


def expression_type_problem(
    pipeline: Pipeline, ref: str, expr: str, what: str, computed: tuple[str, ...] = ()
) -> tuple[str, str] | None:
    """``(problem, fix)`` when ``expr`` (the step's ``what``) over stream ``ref`` fails for the declared types of its columns
    alone (a text column compared with a number), so it would fail on every row; else None.

    The declared types decide, not a batch's dtypes: on pandas 2 a parse step's text is a column of
    Python objects, as a json field is, and a batch cannot tell the two apart. Each column is given one
    value of its declared type, in the dtype the parse step gives it, and an expression of operators alone
    (:func:`streamlab._expr.type_driven`: no call) fails for its types when it fails there. A column of unknown type,
    of type ``object``/``json``/``category``, or in ``computed`` (added by the step itself), makes it
    unknown, and unknown is never a problem; so does a text column beside a timestamp column (text that
    holds ISO times compares with times).

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b'{}']))
    >>> s = p.parse({'country': 'string', 'amount': 'float64', 'timestamp': 'timestamp'})
    >>> problem, fix = expression_type_problem(p, s.ref, 'country > 5', "filter('country > 5')")
    >>> problem.split(' (')[0]
    "filter('country > 5') fails on every row for its columns' types"
    >>> expression_type_problem(p, s.ref, "country == 'FR' and amount > 5", 'filter') is None
    True
    """
    names = expression_names(expr)
    if not names or "`" in expr or any(n in computed for n in names):
        return None
    found = {n: declared_type(pipeline, ref, n) for n in names}
    columns: dict[str, pd.Series] = {}
    for n, f in found.items():
        if f is None or f[0] not in _SAMPLES:
            return None
        columns[n] = _SAMPLES[f[0]]
    kinds = {f[0] for f in found.values() if f}
    if {"timestamp", "string"} <= kinds:  # text holding times compares with times: the values decide
        return None
    # asked first: names, constants and operators alone are evaluated (never a call, such as an untrusted
    # spec's ``amount.to_csv('f')``)
    if not type_driven(expr):
        return None
    sample = pd.DataFrame(columns)
    try:
        eval_expression(sample, expr)
        return None
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
    types = ", ".join(f"{n!r} is {f[0]} (declared by step {f[1]!r})" for n, f in found.items() if f)
    problem = f"{what} fails on every row for its columns' types ({types}): {error}"
    texts = [(n, f[1]) for n, f in found.items() if f and f[0] == "string"]
    fix = (
        "compare each column with values of its type (a text column with 'text', a number column with numbers"
    )
    if any(f and f[0] == "timestamp" for f in found.values()):
        fix += ", a timestamp column with a time that names its zone, e.g. '2024-01-01T00:00:00Z'"
    fix += ")"
    if texts:
        n, where = texts[0]
        fix += f"; if {n!r} holds numbers, declare it as float64 or int64 in the schema of step {where!r}"
    return problem, fix


#: What a key of each declared type equals: a key of one family never equals a key of another (pandas
#: and SQL match ``'1'`` with ``1`` nowhere), so a join on keys of two families pairs nothing.
_KEY_FAMILIES = {
    "string": "text",
    "int64": "number",
    "float64": "number",
    "bool": "number",
    "timestamp": "time",
}

#: How to give a table's key column the stream's family (``{k}``: the column)
_TABLE_CASTS = {
    "text": "table.astype({{{k!r}: str}})",
    "number": "table.assign({k}=pd.to_numeric(table[{k!r}]))",
    "time": "table.assign({k}=pd.to_datetime(table[{k!r}], utc=True))",
}


def join_key_type_problem(pipeline: Pipeline, step: EnrichStep | IntervalJoinStep) -> tuple[str, str] | None:
    """``(problem, fix)`` when a key column of an enrich (stream and table) or an interval join (left and
    right) is declared text on one side and a number or a time on the other, else None: such keys never
    match, so every event would find no row of the table (a left enrich: its columns missing on every
    event, an inner one: no event), or no partner. Unknown types are never a problem.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b'{}']))
    >>> s = p.parse({'user_id': 'string', 'timestamp': 'timestamp'})
    >>> step = EnrichStep('e', (s.ref,), table=pd.DataFrame({'user_id': [1], 'tier': ['gold']}), on=('user_id',))
    >>> join_key_type_problem(p, step)[0]
    "key column 'user_id' is string in the stream (declared by step 'parse') but int64 in the table: string keys never equal int64 keys, so no event would match a row of the table"
    """
    for k in step.on:
        left = declared_type(pipeline, step.inputs[0], k)
        if isinstance(step, EnrichStep):
            typ = _frame_type(step.table[k]) if k in step.table.columns else None
            right = (typ, "") if typ else None
        else:
            right = declared_type(pipeline, step.inputs[1], k)
        if left is None or right is None:
            continue
        families = _KEY_FAMILIES.get(left[0]), _KEY_FAMILIES.get(right[0])
        if None in families or families[0] == families[1]:
            continue
        if isinstance(step, EnrichStep):
            problem = (
                f"key column {k!r} is {left[0]} in the stream (declared by step {left[1]!r}) but {right[0]} "
                f"in the table: {left[0]} keys never equal {right[0]} keys, so no event would match a row "
                "of the table"
            )
            cast = _TABLE_CASTS[str(families[0])].format(k=k)
            fix = (
                f"give the table's key the stream's type, e.g. {cast}, or declare {k!r} as {right[0]} in "
                f"the schema of step {left[1]!r}"
            )
        else:
            problem = (
                f"key column {k!r} is {left[0]} on the left (declared by step {left[1]!r}) but {right[0]} on "
                f"the right (declared by step {right[1]!r}): {left[0]} keys never equal {right[0]} keys, "
                "so no event would find a partner"
            )
            fix = (
                f"declare {k!r} with one type on both sides, or convert one side first, e.g. "
                f'.with_columns({k}="{k}.astype(str)")'
            )
        return problem, fix
    return None
