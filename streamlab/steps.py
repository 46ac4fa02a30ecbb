"""Frozen steps: the nodes of a pipeline graph.

A step is pure configuration with a ``step_id``, the references of its inputs (``"parse"`` for a step's
main output, ``"parse.dead_letter"`` for a named one) and its parameters: its dataclass fields. Each
kind is registered in ``streamlab._step_kinds``, from which its spec (``params()``), its reading back
from YAML and its diagram label come. A step checks its own arguments when built (``__post_init__``)
and its input columns when added to a pipeline (``input_problem``), so a step built directly is
checked as one built by a ``Stream`` method. ``build()`` creates the runtime operator.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, NoReturn

import pandas as pd

from streamlab import _pyast
from streamlab import _step_codecs as codec
from streamlab._dead_letter import dead_letter_columns
from streamlab._dedup import DedupOperator
from streamlab._joins import EnrichOperator, IntervalJoinOperator, repeated_keys
from streamlab._names import MAX_NAME_LENGTH, NAME_FIX, name_problem
from streamlab._parse import FIELD_TYPES, FieldSpec, ParseOperator, read_together
from streamlab._sessions import SessionOperator
from streamlab._spec_check import schema_fields
from streamlab._step_kinds import (
    Codec,
    ReadContext,
    config_kinds,
    from_params,
    internal,
    label_of,
    param,
    params_of,
    step_kind,
)
from streamlab._time import MAX_DURATION_NS, format_duration
from streamlab._transforms import FilterOperator, MapOperator, PassOperator, SelectOperator, UnionOperator
from streamlab._windowing import PanedWindowOperator, WindowOperator, window_reach_ns
from streamlab.aggregators import Aggregator
from streamlab.clock import Clock
from streamlab.errors import PipelineConfigError, suggest
from streamlab.functions import UserFunction
from streamlab.io import Sink, SinkWriter, Source, Upstream
from streamlab.operators import Operator
from streamlab.windows import SessionWindow, SlidingWindow, TumblingWindow, Window

__all__ = [
    "EVENT_SCHEMA",
    "DedupStep",
    "EnrichStep",
    "FilterStep",
    "IntervalJoinStep",
    "KeyByStep",
    "MapStep",
    "OperatorStep",
    "ParseStep",
    "SelectStep",
    "SinkStep",
    "SourceStep",
    "Step",
    "UnionStep",
    "WindowStep",
]

Columns = tuple[str, ...] | None

EVENT_SCHEMA: dict[str, Any] = {
    "event_id": "string",
    "event_type": "string",
    "user_id": "string",
    "timestamp": "timestamp",
    "properties": "object",
}
"""The product's event schema: the default of ``Stream.parse`` and of a parse step's ``schema``."""

#: the parse step's default ``max_record_bytes``: larger records are dead letters (``Stream.parse``,
#: ``ParseStep`` and ``profile``, whose malformed share must count what the parse step rejects)
MAX_RECORD_BYTES = 1_000_000
_EXPR_NAMES_IGNORED = {"True", "False", "None", "abs", "str", "len", "nan", "inf"}


def expr_columns(expr: str, step_id: str, kind: str) -> set[str]:
    """Column names a pandas expression reads; a PipelineConfigError when it cannot be read.

    Examples
    --------
    >>> sorted(expr_columns("amount > 10 and country == 'FR'", "f", "filter"))
    ['amount', 'country']
    """
    try:
        source, quoted = _pyast.unquote_backticks(expr)  # `unit price`: pandas' quoted column names
        tree = _pyast.parse(source, mode="eval")
    except SyntaxError as e:
        raise PipelineConfigError(
            step_id,
            kind,
            f"cannot read expression {expr!r}: {e.msg}",
            'write a pandas expression such as "amount > 100"',
        ) from None
    unsupported = unsupported_form(tree) or unsupported_call(tree) or misread_comparison(tree)
    if unsupported is not None:
        problem, fix = unsupported
        raise PipelineConfigError(step_id, kind, f"expression {expr!r} {problem}", fix)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    attrs = {
        n.value.id for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
    }
    functions = {
        n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
    }
    return {quoted.get(n, n) for n in names - attrs - functions - _EXPR_NAMES_IGNORED}


def named_columns(expr: str) -> tuple[str, ...]:
    """The column names ``expr`` reads, sorted (as a filter checks them), or none when it cannot be read
    (the step that holds it reports that).

    Examples
    --------
    >>> named_columns("abs(amount) > 10 and country == 'FR'"), named_columns("a >")
    (('amount', 'country'), ())
    """
    try:
        return tuple(sorted(expr_columns(expr, "", "")))
    except PipelineConfigError:
        return ()


def _expression_functions() -> tuple[str, ...]:
    """The functions pandas' expressions call (``sqrt(x)``, ``abs(x)``); any other is its ValueError."""
    from pandas.core.computation.ops import MATHOPS  # type: ignore[attr-defined]

    return tuple(MATHOPS)


def _accessors() -> dict[str, tuple[type, ...]]:
    """The accessor classes of a column (``x.str``, ``x.dt``, ``x.cat``), whose methods expressions call."""
    from pandas.core.arrays.categorical import CategoricalAccessor
    from pandas.core.indexes.accessors import DatetimeProperties, PeriodProperties, TimedeltaProperties
    from pandas.core.strings.accessor import StringMethods

    return {
        "str": (StringMethods,),
        "dt": (DatetimeProperties, TimedeltaProperties, PeriodProperties),
        "cat": (CategoricalAccessor,),
    }


#: the column method to write for a Python function pandas' expressions do not call ({x}: its argument)
_FUNCTION_FIXES = {
    "len": "for the length of a text column write {x}.str.len()",
    "str": "for a number as text write {x}.astype(str)",
    "int": "for a whole number write {x}.astype('int64')",
    "float": "for a number write {x}.astype('float64')",
    "round": "to round write {x}.round(2)",
}


#: what a column has that reads the other rows of the batch (a reduction, a running or shifted value, an
#: order, a position, the batch's size): an expression's value of a row must not depend on how the rows
#: are cut into micro-batches, nor differ from the exported code's, which sees one row at a time
BATCH_READS = frozenset(
    [
        "mean",
        "sum",
        "std",
        "var",
        "sem",
        "min",
        "max",
        "median",
        "count",
        "nunique",
        "quantile",
        "prod",
        "product",
        "kurt",
        "kurtosis",
        "skew",
        "mode",
        "cumsum",
        "cumprod",
        "cummax",
        "cummin",
        "shift",
        "diff",
        "pct_change",
        "rank",
        "rolling",
        "expanding",
        "ewm",
        "first",
        "last",
        "head",
        "tail",
        "sample",
        "item",
        "iloc",
        "loc",
        "iat",
        "at",
        "idxmax",
        "idxmin",
        "argmax",
        "argmin",
        "argsort",
        "nlargest",
        "nsmallest",
        "sort_values",
        "sort_index",
        "value_counts",
        "unique",
        "factorize",
        "describe",
        "duplicated",
        "drop_duplicates",
        "dropna",
        "explode",
        "ffill",
        "bfill",
        "interpolate",
        "agg",
        "aggregate",
        "transform",
        "groupby",
        "resample",
        "autocorr",
        "corr",
        "cov",
        "size",
        "shape",
        "empty",
        "is_unique",
        "is_monotonic_increasing",
        "is_monotonic_decreasing",
        "hasnans",
        "any",
        "all",
    ]
)


#: (problem, fix) for an operator or form pandas' expressions do not evaluate, by its ``ast`` class name
_FORM_FIXES: dict[str, tuple[str, str]] = {
    "RShift": (
        "shifts bits (>>)",
        "divide by a power of 2 instead: a >> 1 is a // 2, a >> 3 is a // 8",
    ),
    "LShift": (
        "shifts bits (<<)",
        "multiply by a power of 2 instead: a << 1 is a * 2, a << 3 is a * 8",
    ),
    "BitXor": (
        "uses ^ (exclusive or)",
        "for conditions write (a > 1) != (b > 1), true where exactly one holds",
    ),
    "MatMult": ("uses @ (matrix product)", "for a product of two columns write a * b"),
    "Dict": ("holds a mapping ({...: ...})", "to look values up, join a table (enrich) or use map_many(fn)"),
    "Set": ("holds a set ({...})", "write a list instead: a in [1, 2], a.isin([1, 2])"),
    "Is": ("uses 'is'", "for a missing value write a.isna(), else compare with =="),
    "IsNot": ("uses 'is not'", "for a present value write a.notna(), else compare with !="),
    "Lambda": ("holds a lambda", ""),
    "ListComp": ("holds a list comprehension", ""),
    "SetComp": ("holds a set comprehension", ""),
    "DictComp": ("holds a dict comprehension", ""),
    "GeneratorExp": ("holds a generator expression", ""),
    "JoinedStr": ("holds an f-string", "for a number as text write a.astype(str), and join texts with +"),
    "NamedExpr": ("assigns a name (:=)", ""),
}


def _number(node: ast.AST) -> bool:
    """Whether ``node`` is a number written in the expression (``1``, ``-2.5``), not a bool."""
    while isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.UAdd, ast.USub)):
        node = node.operand
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, (int, float, complex))
        and not isinstance(node.value, bool)
    )


def unsupported_form(tree: ast.AST) -> tuple[str, str] | None:
    """``(problem, fix)`` for an operator or form pandas' evaluation has no rule for (``a >> 1``,
    ``a ^ b``, ``a if b else 0``, ``{'a': 1}``, ``b @ b``), or for ``&``/``|``/``and``/``or`` with a
    number as an operand (``a & 1``: pandas reads them as logical operators, and a number is no
    condition), else None: such an expression fails on every row at run time, whatever the columns hold.

    The tree is read as pandas reads the text (``&`` as ``and``, with its precedence), so
    ``a > 1 & b == 'x'``, which pandas reads as ``(a > 1) and (b == 'x')``, is kept.

    Examples
    --------
    >>> unsupported_form(_pyast.parse("(a > 1) & (b < 2)", mode="eval")) is None
    True
    >>> unsupported_form(_pyast.parse("a > 1 & b == 'x'", mode="eval")) is None
    True
    >>> unsupported_form(_pyast.parse("a >> 1 > 0", mode="eval"))[0]
    'shifts bits (>>), which expressions cannot evaluate'
    >>> unsupported_form(_pyast.parse("a if b else 0", mode="eval"))[1]
    'write a.where(b, 0): the value of a where b holds, else 0'
    >>> unsupported_form(_pyast.parse("a & 1", mode="eval"))[0]
    'uses the number 1 as an operand of & / and, which expressions cannot evaluate (pandas reads & as and: a number is no condition)'
    """
    from pandas.core.computation.expr import PandasExprVisitor, _preparse  # type: ignore[attr-defined]

    function_step = "for anything else use a function step (map_many(fn) / filter_many(fn))"
    try:  # pandas rewrites the text before it parses it: & and | as and / or
        read: ast.AST = _pyast.parse(_preparse(ast.unparse(tree)), mode="eval")
    except SyntaxError:  # b @ b: pandas reads @b as a local variable
        read = tree
    nodes = (ast.expr, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)
    refused = set(getattr(PandasExprVisitor, "unsupported_nodes", ()))
    for node in [*ast.walk(tree), *ast.walk(read)]:
        if not isinstance(node, nodes):
            continue
        name = type(node).__name__
        if isinstance(node, ast.IfExp):
            body, test, other = (ast.unparse(n) for n in (node.body, node.test, node.orelse))
            if not isinstance(node.body, (ast.Name, ast.Attribute, ast.Call, ast.Constant)):
                body = f"({body})"
            return "uses 'x if c else y', which expressions cannot evaluate", (
                f"write {body}.where({test}, {other}): the value of {body} where {test} holds, else {other}"
            )
        if hasattr(PandasExprVisitor, f"visit_{name}") and f"visit_{name}" not in refused:
            if isinstance(node, ast.BoolOp):
                number = next((v for v in node.values if _number(v)), None)
                if number is not None:
                    symbol = "&" if isinstance(node.op, ast.And) else "|"
                    word = "and" if isinstance(node.op, ast.And) else "or"
                    return (
                        f"uses the number {ast.unparse(number)} as an operand of {symbol} / {word}, which "
                        f"expressions cannot evaluate (pandas reads {symbol} as {word}: a number is no condition)"
                    ), (
                        f"{symbol} joins conditions, e.g. (a > 1) {symbol} (b < 2); to test a number write a "
                        "comparison (a != 0), and for its bits a // 2 % 2 == 1; " + function_step
                    )
            continue
        problem, fix = _FORM_FIXES.get(name, (f"uses a {name} form", ""))
        return f"{problem}, which expressions cannot evaluate", (fix + "; " if fix else "") + function_step
    return None


def unsupported_call(tree: ast.AST) -> tuple[str, str] | None:
    """``(problem, fix)`` for a call in an expression that pandas' evaluation cannot make on a column
    (a function other than its math functions, a method a column or its ``.str``/``.dt``/``.cat``
    accessor does not have), else None: such an expression would fail on every row at run time. Also
    for what reads the other rows of the batch (``x - x.mean()``, ``x.shift()``: :data:`BATCH_READS`),
    whose value would change with how the events are cut into micro-batches.

    Examples
    --------
    >>> unsupported_call(_pyast.parse("ratio.fillna(1.0) * sqrt(amount) > 2", mode="eval")) is None
    True
    >>> unsupported_call(_pyast.parse("len(name) > 3", mode="eval"))[0]
    'calls len(), which expressions cannot evaluate'
    >>> unsupported_call(_pyast.parse("amount - amount.mean()", mode="eval"))[0]
    'reads .mean, which depends on the other rows of the micro-batch'
    """
    functions = _expression_functions()
    accessors = _accessors()
    supported = (
        f"expressions call the math functions {', '.join(functions)}, and methods of a column "
        "(x.fillna(0), x.abs(), x.isin(['a']), x.astype(str)) or of its .str, .dt and .cat accessors "
        "(x.str.upper(), x.str.len(), x.dt.hour); for anything else use a function step "
        "(map_many(fn) / filter_many(fn))"
    )
    # what each node is: a column ("column"), a column's accessor ("str", "dt", "cat"), or not known ("")
    kinds: dict[ast.AST, str] = {}

    def kind_of(node: ast.AST) -> str:
        if isinstance(node, ast.Name):
            return "column"
        if isinstance(node, ast.Attribute):
            return kinds.get(node, "")
        return ""

    # a parent after its children: ast.walk is breadth-first, so walk it reversed
    for node in reversed(list(ast.walk(tree))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id not in functions:
            name = node.func.id
            arg = ast.unparse(node.args[0]) if node.args else "x"
            hint = _FUNCTION_FIXES.get(name, "").format(x=arg)
            return f"calls {name}(), which expressions cannot evaluate", (
                hint + "; " if hint else ""
            ) + supported
        if not isinstance(node, ast.Attribute):
            continue
        of = kind_of(node.value)
        if node.attr in BATCH_READS and of not in accessors:
            return f"reads .{node.attr}, which depends on the other rows of the micro-batch", (
                "an expression computes each row from that row alone (the rows of a micro-batch are not a "
                "fixed set: its value would change with the batch size, and the exported code sees one row "
                "at a time); for a statistic over events use a window (.window(...).agg(agg.mean(...))) or "
                "a feature step (ZScoreFeature, VelocityFeature, RatioToMedianFeature)"
            )
        if of == "column":
            if node.attr in accessors:
                kinds[node] = node.attr
            elif not hasattr(pd.Series, node.attr):
                on_text = hasattr(accessors["str"][0], node.attr)
                hint = f"for text write {ast.unparse(node.value)}.str.{node.attr}(...); " if on_text else ""
                return f"reads {node.attr!r}, which a column does not have", hint + supported
        elif of in accessors and not any(hasattr(cls, node.attr) for cls in accessors[of]):
            return f"reads .{of}.{node.attr}, which the .{of} accessor does not have", supported
    return None


def _reads_column(node: ast.AST) -> bool:
    """Whether ``node`` reads a column: a name that is not a called function's (``sqrt(4)`` reads none)."""
    called = {id(n.func) for n in ast.walk(node) if isinstance(n, ast.Call)}
    return any(isinstance(n, ast.Name) and id(n) not in called for n in ast.walk(node))


def _text_or_list(node: ast.AST) -> bool:
    return any(
        (isinstance(n, ast.Constant) and isinstance(n.value, str))
        or isinstance(n, (ast.List, ast.Tuple, ast.Set))
        for n in ast.walk(node)
    )


_PYTHON_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


def misread_comparison(tree: ast.AST) -> tuple[str, str] | None:
    """``(problem, fix)`` for a comparison (``==``, ``!=``, ``in``, ``not in``) of two operands that read no
    column which pandas' evaluation reads otherwise than Python: it reads ``==`` with a text or a list as
    ``in`` (the text as a list of it), so ``'FR' == 0`` raises and ``'FR' == 'FR'`` is False, where Python's
    ``==`` says False and True (a text on the left, a list, or ``in``; ``0 == 'FR'``, read as
    ``0 in ['FR']``, is Python's value and kept). Such a comparison is refused (its value does not depend on the rows: write
    the value); a comparison with a column (``country == 'FR'``) is read as Python reads it, row by row.

    Examples
    --------
    >>> misread_comparison(_pyast.parse("country == 'FR' and n > 0", mode="eval")) is None
    True
    >>> print(*misread_comparison(_pyast.parse("n > 0 and ('FR' == 0)", mode="eval")), sep="\\n")
    compares two constants, 'FR' == 0, which pandas' evaluation does not read as Python does (it reads a text there as a list of that text and == as 'in': 'FR' == 0 fails, 'FR' == 'FR' is False)
    write its value, False, instead, or compare a column with the constant (country == 'FR')
    """
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for op, left, right in zip(node.ops, operands, operands[1:]):
            if type(op) not in _PYTHON_COMPARE or _reads_column(left) or _reads_column(right):
                continue
            text_right = isinstance(right, ast.Constant) and isinstance(right.value, str)
            if not (
                _text_or_list(left)
                or (_text_or_list(right) and (isinstance(op, (ast.In, ast.NotIn)) or not text_right))
            ):
                continue  # 0 == 'FR' is read as 0 in ['FR']: Python's value
            text = ast.unparse(ast.Compare(left=left, ops=[op], comparators=[right]))
            try:  # literals only (never evaluated as code)
                a, b = ast.literal_eval(left), ast.literal_eval(right)
                value = repr(_PYTHON_COMPARE[type(op)](a, b))
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                value = ""  # not literals (sqrt(4)), or Python cannot compare them either (1 in 'FR')
            return (
                f"compares two constants, {text}, which pandas' evaluation does not read as Python does (it "
                "reads a text there as a list of that text and == as 'in': 'FR' == 0 fails, 'FR' == 'FR' is "
                "False)",
                (f"write its value, {value}, instead" if value else "write what it means without it")
                + ", or compare a column with the constant (country == 'FR')",
            )
    return None


def missing_column(columns: Columns, names: Iterable[str], what: str) -> tuple[str, str] | None:
    """``(problem, fix)`` for the first of ``names`` not in ``columns`` (None when all are, or unknown)."""
    if columns is None:
        return None
    for n in names:
        if n not in columns:
            return f"unknown column {n!r} in {what}", suggest(n, columns)
    return None


def _first(*problems: tuple[str, str] | None) -> tuple[str, str] | None:
    return next((p for p in problems if p is not None), None)


@dataclass(frozen=True)
class Step:
    """Base of all steps.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b'{}']))
    >>> _ = p.parse()
    >>> step = p.steps['parse']
    >>> step.kind, step.inputs, step.output_names
    ('parse', ('source',), ('out', 'dead_letter'))
    """

    step_id: str
    inputs: tuple[str, ...]
    kind: ClassVar[str] = ""
    output_names: ClassVar[tuple[str, ...]] = ("out",)

    def __post_init__(self) -> None:
        problem = name_problem(self.step_id)
        if problem is not None:
            raise PipelineConfigError(
                str(self.step_id)[:MAX_NAME_LENGTH],
                self.kind,
                f"step_id={self.step_id!r} is not a name: it {problem}",
                f"{NAME_FIX}; a step id is written into exported code, file and table names",
            )
        if not isinstance(self.inputs, tuple) or not all(isinstance(r, str) and r for r in self.inputs):
            self.invalid(f"inputs={self.inputs!r} is not a tuple of step references", "pass e.g. ('parse',)")
        self.check()

    def check(self) -> None:
        """Check the step's own arguments (raise with :meth:`invalid`); called when the step is built."""

    def invalid(self, problem: str, fix: str) -> NoReturn:
        """Raise the PipelineConfigError of this step: its id, kind, what is wrong and the fix."""
        raise PipelineConfigError(self.step_id, self.kind, problem, fix)

    def build(self) -> Operator:
        raise NotImplementedError

    def bound(self, columns_in: list[Columns]) -> Step:
        """This step as the pipeline adds it, given the columns of its inputs (None where unknown): the
        step itself, or (a union) a copy that also holds what its operator needs of them."""
        return self

    def params(self) -> dict[str, Any]:
        """The step's parameters as spec data: its fields, each through its codec (``_step_kinds``)."""
        return params_of(self)

    @property
    def outputs(self) -> tuple[str, ...]:
        """Names of the step's outputs."""
        return self.output_names

    def input_problem(self, columns_in: list[Columns]) -> tuple[str, str] | None:
        """``(problem, fix)`` when an input lacks a column the step reads (columns known), else None."""
        return None

    def keys_out(self, keys_in: tuple[str, ...]) -> tuple[str, ...]:
        """The key later keyed steps default to (``key_by`` sets it; other steps pass it on)."""
        return keys_in

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        """Columns of each output, when known, so later steps can be checked at construction."""
        return {"out": columns_in[0] if columns_in else None}


def _source_label(step: SourceStep) -> str:
    return type(step.source).__name__


@step_kind(label=_source_label)
@dataclass(frozen=True)
class SourceStep(Step):
    """Where events enter the graph: wraps a :class:`~streamlab.io.Source`.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> Pipeline(ListSource([{'x': 1}])).steps['source'].kind
    'source'
    """

    source: Source = param(codec=codec.SOURCE, default=None)
    kind: ClassVar[str] = "source"

    def check(self) -> None:
        if not callable(getattr(self.source, "open", None)):
            self.invalid(
                f"{self.source!r} is not a streamlab Source",
                "pass a Source such as ReplaySource(df), ListSource([...]) or KafkaSource(...)",
            )

    def build(self) -> Operator:
        return PassOperator()

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        cols = getattr(self.source, "columns", None)
        return {"out": tuple(cols) if cols else None}


def _event_fields() -> tuple[FieldSpec, ...]:
    return schema_fields("parse", EVENT_SCHEMA)


@step_kind
@dataclass(frozen=True)
class ParseStep(Step):
    """Raw JSON records to typed columns; bad records to ``dead_letter`` with the reason.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b'{}']))
    >>> _ = p.parse({'timestamp': 'timestamp', 'n': 'int64'})
    >>> p.steps['parse'].params()['schema']
    {'timestamp': 'timestamp', 'n': 'int64'}
    """

    fields: tuple[FieldSpec, ...] = param(key="schema", codec=codec.SCHEMA, default_factory=_event_fields)
    value_column: str = "value"
    time: str | None = "timestamp"
    required: tuple[str, ...] = param(codec=codec.NAMES, default=())
    max_record_bytes: int = MAX_RECORD_BYTES
    kind: ClassVar[str] = "parse"
    output_names: ClassVar[tuple[str, ...]] = ("out", "dead_letter")

    def check(self) -> None:
        if not isinstance(self.fields, tuple) or not all(isinstance(f, FieldSpec) for f in self.fields):
            self.invalid(
                f"fields={self.fields!r} are not parse fields",
                "build them with schema_fields(step_id, {'timestamp': 'timestamp', ...}) or use Stream.parse",
            )
        names = [f.name for f in self.fields]
        if self.time is not None:
            if self.time not in names:
                stamps = [f.name for f in self.fields if f.type == "timestamp"]
                self.invalid(
                    f"the event-time field {self.time!r} is not in the schema"
                    + (f" (its timestamp fields: {stamps})" if stamps else ""),
                    (f"pass time={stamps[0]!r} to read the event time from it, or " if stamps else "")
                    + f"add {self.time!r}: 'timestamp' to the schema, or pass time=None for streams without "
                    "event time",
                )
            if next(f for f in self.fields if f.name == self.time).type != "timestamp":
                self.invalid(
                    f"field {self.time!r} must have type 'timestamp'", f"declare {self.time!r}: 'timestamp'"
                )
        for r in self.required:
            if r not in names:
                self.invalid(f"required field {r!r} is not in the schema", suggest(r, names))
        for outer in self.fields:
            if outer.type in ("object", "json"):
                continue
            inner = next(
                (
                    f
                    for f in self.fields
                    if f.path[: len(outer.path)] == outer.path
                    and f is not outer
                    and len(f.path) > len(outer.path)
                ),
                None,
            )
            if inner is not None:
                self.invalid(
                    f"field {outer.name!r} is a {outer.type} at {outer.path_spec()!r}, and field {inner.name!r} "
                    f"reads {inner.path_spec()!r} inside it: no value is both (every record would be a dead letter)",
                    f"declare {outer.name!r} as 'object' (or 'json') to keep the whole object beside "
                    f"{inner.name!r}, or drop one of them",
                )
        self._check_shared_keys()
        if not isinstance(self.value_column, str) or not self.value_column:
            self.invalid(f"value_column={self.value_column!r} is not a column name", "pass e.g. 'value'")
        n = self.max_record_bytes
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            self.invalid(f"max_record_bytes={n!r} must be positive", "pass e.g. 1_000_000")

    def _check_shared_keys(self) -> None:
        """Refuse two fields on one key whose types no JSON value satisfies both (``read_together``):
        every record holding a value there would be a dead letter."""
        for i, first in enumerate(self.fields):
            for second in self.fields[i + 1 :]:
                if second.path != first.path or read_together(first.type, second.type):
                    continue
                sharing = [t for t in FIELD_TYPES if t != first.type and read_together(first.type, t)]
                self.invalid(
                    f"fields {first.name!r} ({first.type}) and {second.name!r} ({second.type}) both read the "
                    f"key {first.path_spec()!r}, and no JSON value reads as both {first.type} and "
                    f"{second.type} (every record with a value there would be a dead letter)",
                    f"drop {second.name!r}, or give it a type that shares values with {first.type} "
                    f"({', '.join(sharing[:-1])}{' or ' * (len(sharing) > 1)}{sharing[-1]}); a key whose "
                    "records hold values of several kinds is read by one 'json' field",
                )

    def build(self) -> Operator:
        req = tuple(dict.fromkeys(((self.time,) if self.time else ()) + self.required))
        return ParseOperator(self.step_id, list(self.fields), self.value_column, req, self.max_record_bytes)

    def input_problem(self, columns_in: list[Columns]) -> tuple[str, str] | None:
        return _first(
            self._parsed_input(columns_in[0]),
            missing_column(columns_in[0], [self.value_column], "value_column"),
            self._clash(columns_in[0]),
        )

    def _parsed_input(self, columns: Columns) -> tuple[str, str] | None:
        """An input of events already in columns (a list of dicts, a CSV, a DataFrame, JSON lines read
        without ``raw=True``) where the default raw column ``value`` is looked for: "did you mean" one of
        the event's columns would be wrong advice."""
        if columns is None or self.value_column != "value" or "value" in columns or not columns:
            return None
        return (
            f"parse reads raw records (JSON text or bytes) from the column 'value', and the input has none: "
            f"its events are already columns ({', '.join(repr(c) for c in columns)}), as a source of dicts, "
            "a CSV, a DataFrame or JSON lines replayed without raw=True gives them",
            "drop the parse and use the columns as they are (windows and the other steps read text times "
            "with time='...'), or give the source raw records to parse (ReplaySource(path, raw=True), "
            "ListSource of JSON strings or bytes), or name the raw column with value_column='...'",
        )

    def _clash(self, columns: Columns) -> tuple[str, str] | None:
        """A field named as a column the source gives beside the records (Kafka's ``partition``, ``key``,
        ``topic``): the parsed rows and dead letters would lose the source's one, and a window's
        ``watermark_by="auto"`` would read the field."""
        same = [
            f.name
            for f in self.fields
            if columns is not None and f.name in columns and f.name != self.value_column
        ]
        if not same:
            return None
        f = next(f for f in self.fields if f.name == same[0])
        return (
            f"field {same[0]!r} has the name of a column the source gives beside the records "
            f"(its metadata: {[c for c in columns or () if c != self.value_column]}); the parsed rows and "
            "dead letters would lose the source's column",
            f"read the field under another name: {{'{same[0]}_field': {{'type': {f.type!r}, 'path': {f.path_spec()!r}}}}}",
        )

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        names = tuple(f.name for f in self.fields)
        extra = tuple(c for c in (columns_in[0] or ()) if c != self.value_column and c not in names)
        dl_extra = extra if columns_in[0] is not None else None
        return {
            "out": names + extra if columns_in[0] is not None else None,
            "dead_letter": dead_letter_columns(dl_extra, raw=True),
        }


def _as_function(step: Step, fn: Any) -> None:
    """Hold a plain callable as a :class:`UserFunction` (so the spec can name it)."""
    if fn is not None and not isinstance(fn, UserFunction):
        if not callable(fn):
            step.invalid(f"expected a function, got {type(fn).__name__}", "pass a function or a lambda")
        object.__setattr__(step, "fn", UserFunction.of(fn))


def _has_expr(step: FilterStep) -> bool:
    return step.expr is not None


def _has_fn(step: FilterStep | MapStep) -> bool:
    return step.fn is not None


@step_kind
@dataclass(frozen=True)
class FilterStep(Step):
    """Keep rows by a pandas expression, a batch function or a per-event function.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{'x': 1}]))
    >>> _ = p.filter('x > 0')
    >>> p.steps['filter'].params()
    {'expr': 'x > 0'}
    """

    expr: str | None = param(codec=codec.EXPRESSION, default=None, when=_has_expr)
    fn: UserFunction | None = param(codec=codec.FUNCTION, default=None, when=_has_fn)
    per_event: bool = param(default=False, when=_has_fn)
    kind: ClassVar[str] = "filter"
    output_names: ClassVar[tuple[str, ...]] = ("out", "dead_letter")

    def check(self) -> None:
        if (self.expr is None) == (self.fn is None):
            self.invalid(
                "give either an expression or a function (not both, not neither)",
                "use filter('amount > 100'), or filter_many(fn) / filter_one(fn) for functions",
            )
        if self.expr is not None:
            if not isinstance(self.expr, str):
                self.invalid(
                    f"expected an expression string, got {type(self.expr).__name__}",
                    "use filter('amount > 100'), or filter_many(fn) / filter_one(fn) for functions",
                )
            expr_columns(self.expr, self.step_id, self.kind)
        _as_function(self, self.fn)

    def build(self) -> Operator:
        return FilterOperator(self.step_id, self.expr, self.fn, self.per_event)

    def input_problem(self, columns_in: list[Columns]) -> tuple[str, str] | None:
        if self.expr is None:
            return None
        used = sorted(expr_columns(self.expr, self.step_id, self.kind))
        return missing_column(columns_in[0], used, f"expression {self.expr!r}")

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        c = columns_in[0]
        return {"out": c, "dead_letter": dead_letter_columns(c)}


def _by_function(step: MapStep) -> bool:
    return not step.columns


def _declared(step: MapStep) -> bool:
    return not step.columns and step.declared is not None


@step_kind
@dataclass(frozen=True)
class MapStep(Step):
    """Add columns from expressions, or transform rows with a batch or per-event function.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{'x': 1}]))
    >>> _ = p.with_columns(y='x * 2')
    >>> p.steps['with_columns'].params()
    {'columns': {'y': 'x * 2'}}
    """

    fn: UserFunction | None = param(codec=codec.FUNCTION, default=None, when=_by_function)
    per_event: bool = param(default=False, when=_by_function)
    #: with_columns: (name, expression)
    columns: tuple[tuple[str, str], ...] = param(
        codec=codec.PAIRS, default=(), when=lambda s: bool(s.columns)
    )
    #: output columns the user declared for a function
    declared: tuple[str, ...] | None = param(
        key="output_columns", codec=codec.OPTIONAL_NAMES, default=None, when=_declared
    )
    kind: ClassVar[str] = "map"
    output_names: ClassVar[tuple[str, ...]] = ("out", "dead_letter")

    def check(self) -> None:
        if bool(self.columns) == (self.fn is not None):
            self.invalid(
                "give either column expressions or a function (not both, not neither)",
                "pass e.g. with_columns(total='price * qty'), or map_many(fn) / map_one(fn)",
            )
        for name, e in self.columns:
            if not isinstance(e, str):
                self.invalid(
                    f"column {name!r} needs an expression string",
                    f"write it as text, e.g. with_columns({name}='price * qty')",
                )
            expr_columns(e, self.step_id, self.kind)
        _as_function(self, self.fn)

    def build(self) -> Operator:
        declared = self.declared if self.fn is not None else None
        return MapOperator(self.step_id, self.fn, self.per_event, dict(self.columns) or None, declared)

    def input_problem(self, columns_in: list[Columns]) -> tuple[str, str] | None:
        if columns_in[0] is None:
            return None
        known = set(columns_in[0])
        for name, e in self.columns:
            for c in sorted(expr_columns(e, self.step_id, self.kind)):
                if c not in known:
                    return f"unknown column {c!r} in {name}={e!r}", suggest(c, known)
            known.add(name)
        return None

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        c = columns_in[0]
        if self.columns:
            out: Columns = None if c is None else tuple(dict.fromkeys(c + tuple(n for n, _ in self.columns)))
        else:
            out = self.declared
        return {"out": out, "dead_letter": dead_letter_columns(c)}


def _encode_select(pairs: tuple[tuple[str, str], ...]) -> Any:
    inputs = [i for i, _ in pairs]
    if len(set(inputs)) == len(inputs):
        return dict(pairs)
    return [{i: o} for i, o in pairs]  # an input read twice: a mapping keyed by it would keep one output


def _decode_select(value: Any, ctx: ReadContext) -> tuple[tuple[Any, ...], ...]:
    if isinstance(value, Mapping):
        return tuple((str(i), str(o)) for i, o in value.items())
    pairs: list[tuple[Any, ...]] = []
    for item in value if isinstance(value, list) else [value]:
        if isinstance(item, str):
            pairs.append((item, item))
        elif isinstance(item, Mapping) and len(item) == 1:
            ((i, o),) = item.items()
            pairs.append((str(i), o))
        else:
            pairs.append((item,))  # not a column name: the step's check says so
    return tuple(pairs)


#: select's (input name, output name) pairs, written ``{input: output}``; when one input gives two
#: outputs (``select('a', b='a')``), as a list of such one-entry mappings, in order (a list item may
#: also be a name alone, kept as it is)
SELECT_COLUMNS = Codec(_encode_select, _decode_select)


@step_kind
@dataclass(frozen=True)
class SelectStep(Step):
    """Keep and rename columns.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{'x': 1}]))
    >>> p.select(y='x').columns
    ('y',)
    """

    columns: tuple[tuple[str, str], ...] = param(
        codec=SELECT_COLUMNS, default=()
    )  # (input name, output name)
    kind: ClassVar[str] = "select"

    def check(self) -> None:
        if not self.columns:
            self.invalid("no columns given", "pass e.g. select('user_id', total='amount')")
        for pair in self.columns:
            odd = next((c for c in pair if not isinstance(c, str) or not c), None) if len(pair) == 2 else pair
            if odd is not None:
                self.invalid(
                    f"{odd!r} is not a column name",
                    "name columns as text, e.g. select('user_id', total='amount')",
                )
        outs = [o for _, o in self.columns]
        if len(set(outs)) != len(outs):
            self.invalid(f"output columns {outs!r} repeat a name", "give each output column its own name")

    def build(self) -> Operator:
        return SelectOperator(self.columns)

    def input_problem(self, columns_in: list[Columns]) -> tuple[str, str] | None:
        return missing_column(columns_in[0], [c for c, _ in self.columns], "select")

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        return {"out": tuple(o for _, o in self.columns)}


def _dedup_time(ctx: ReadContext) -> str | None:
    return ctx.time if ctx.columns is None or ctx.time in ctx.columns else None


@step_kind
@dataclass(frozen=True)
class DedupStep(Step):
    """Drop repeated event ids (bounded by ``ttl`` of event time and ``max_ids``).

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{'event_id': 'a', 'timestamp': 0}]))
    >>> _ = p.dedup(ttl='10m')
    >>> p.steps['dedup'].params()['ttl']
    '10m'
    """

    id_column: str = param(key="id", default="event_id")
    time: str | None = param(default="timestamp", missing=_dedup_time)
    ttl_ns: int | None = param(key="ttl", codec=codec.OPTIONAL_DURATION_NS, default=None)
    max_ids: int = 1_000_000
    kind: ClassVar[str] = "dedup"
    output_names: ClassVar[tuple[str, ...]] = ("out", "duplicates")

    def check(self) -> None:
        if not isinstance(self.id_column, str) or not self.id_column:
            self.invalid(f"id={self.id_column!r} is not a column name", "pass e.g. dedup('event_id')")
        if self.ttl_ns is not None:
            if self.ttl_ns <= 0:
                self.invalid(
                    f"ttl={format_duration(self.ttl_ns)!r} is not positive, so no id would be remembered",
                    "pass a positive duration such as ttl='1h', or ttl=None (bounded by max_ids only)",
                )
            if self.time is None:
                self.invalid(
                    "ttl needs an event-time column, and the step has none",
                    "pass time='<column>' or ttl=None (bounded by max_ids only)",
                )
        if isinstance(self.max_ids, bool) or not isinstance(self.max_ids, int) or self.max_ids <= 0:
            self.invalid(
                f"max_ids={self.max_ids!r} must be a positive integer", "pass e.g. max_ids=1_000_000"
            )

    def build(self) -> Operator:
        return DedupOperator(self.step_id, self.id_column, self.time, self.ttl_ns, self.max_ids)

    def input_problem(self, columns_in: list[Columns]) -> tuple[str, str] | None:
        cols = columns_in[0]
        if self.ttl_ns is not None and cols is not None and self.time not in cols:
            return (
                f"ttl needs the event-time column {self.time!r}, which the stream lacks",
                "pass time='<column>' or ttl=None (bounded by max_ids only)",
            )
        return missing_column(cols, [self.id_column], "id")

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        return {"out": columns_in[0], "duplicates": columns_in[0]}


@step_kind
@dataclass(frozen=True)
class KeyByStep(Step):
    """Declare the key that later keyed steps use by default.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> Pipeline(ListSource([{'user_id': 'u'}])).key_by('user_id').keys
    ('user_id',)
    """

    keys: tuple[str, ...] = param(codec=codec.NAMES, default=())
    kind: ClassVar[str] = "key_by"

    def check(self) -> None:
        if not self.keys or not all(isinstance(k, str) and k for k in self.keys):
            self.invalid(f"keys={self.keys!r}: no key column given", "pass e.g. key_by('user_id')")

    def build(self) -> Operator:
        return PassOperator()

    def input_problem(self, columns_in: list[Columns]) -> tuple[str, str] | None:
        return missing_column(columns_in[0], self.keys, "key")

    def keys_out(self, keys_in: tuple[str, ...]) -> tuple[str, ...]:
        return self.keys


@step_kind
@dataclass(frozen=True)
class UnionStep(Step):
    """Merge several streams into one.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{'x': 1}]))
    >>> p.stream.union(p.stream).step_id
    'union'
    """

    #: the union's columns, when every input's are known (set by :meth:`bound`, not a parameter):
    #: each batch is aligned to them, so rows of one input have the other inputs' columns, missing
    aligned: tuple[str, ...] | None = field(default=None, compare=False, repr=False)
    kind: ClassVar[str] = "union"

    def check(self) -> None:
        if len(self.inputs) < 2:
            self.invalid(
                f"a union reads two or more streams, got {list(self.inputs)}", "pass e.g. a.union(b)"
            )

    def bound(self, columns_in: list[Columns]) -> Step:
        return replace(self, aligned=self.out_columns(columns_in)["out"])

    def build(self) -> Operator:
        return UnionOperator(self.aligned)

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        if any(c is None for c in columns_in):
            return {"out": None}
        return {"out": tuple(dict.fromkeys(c for cols in columns_in for c in cols or ()))}


def partition_columns(columns: Columns) -> tuple[str, ...]:
    """The source-partition columns a stream has (Kafka's ``topic``/``partition``, Kinesis' ``shard_id``):
    what ``watermark_by="auto"`` means.

    Examples
    --------
    >>> partition_columns(("topic", "partition", "x")), partition_columns(None)
    (('topic', 'partition'), ())
    """
    cols = columns or ()
    if "partition" in cols:
        return ("topic", "partition") if "topic" in cols else ("partition",)
    return ("shard_id",) if "shard_id" in cols else ()


def _decode_watermark_by(value: Any, ctx: ReadContext) -> tuple[str, ...]:
    if value == "auto":
        return partition_columns(ctx.columns)
    return () if value is None else codec.NAMES.decode(value, ctx)


_WATERMARK_BY = Codec(list, _decode_watermark_by)


def _pipeline_time(ctx: ReadContext) -> str:
    return ctx.time


@step_kind
@dataclass(frozen=True)
class WindowStep(Step):
    """Event-time windows per key with aggregators, watermark delay and allowed lateness.

    Examples
    --------
    >>> from streamlab import Pipeline, TumblingWindow, agg
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{'timestamp': 0}]))
    >>> _ = p.window(TumblingWindow('1m'), delay='5s').agg(agg.count())
    >>> p.steps['window'].params()['window'], p.steps['window'].params()['delay']
    ({'kind': 'tumbling', 'size': '1m'}, '5s')
    """

    window: Window = param(codec=codec.WINDOW, default=None)
    keys: tuple[str, ...] = param(key="key", codec=codec.NAMES, default=())
    aggs: tuple[Aggregator, ...] = param(key="aggregate", codec=codec.AGGREGATORS, default=())
    time: str = param(default="timestamp", missing=_pipeline_time)
    delay_ns: int = param(key="delay", codec=codec.DURATION_NS, default=0)
    lateness_ns: int = param(key="lateness", codec=codec.DURATION_NS, default=0)
    early: bool = False
    watermark_by: tuple[str, ...] = param(
        codec=_WATERMARK_BY, default=(), missing=lambda ctx: partition_columns(ctx.columns)
    )
    idle_timeout_ns: int | None = param(key="idle_timeout", codec=codec.OPTIONAL_DURATION_NS, default=None)
    kind: ClassVar[str] = "window"
    output_names: ClassVar[tuple[str, ...]] = ("out", "late", "dead_letter", "early")

    def check(self) -> None:
        self.check_window()
        if len(set(self.keys)) != len(self.keys):
            self.invalid(f"key lists a column twice: {list(self.keys)}", "list each key column once")
        if not self.aggs:
            self.invalid("no aggregators given", "add e.g. .agg(agg.count())")
        for a in self.aggs:
            if not isinstance(a, Aggregator):
                self.invalid(
                    f"{a!r} is not an aggregator",
                    "use streamlab.agg.count(), agg.sum('amount'), ... or an Aggregator subclass",
                )
        names = [a.name for a in self.aggs]
        dup = {n for n in names if names.count(n) > 1} | (
            set(names) & {*self.keys, "window_start", "window_end"}
        )
        if dup:
            self.invalid(
                f"output column names collide: {sorted(dup)}",
                "give the aggregators distinct names, e.g. agg.sum('amount', name='total')",
            )

    def check_window(self) -> None:
        """The checks of everything but the aggregators (``Stream.window`` runs them before ``.agg``)."""
        if not isinstance(self.window, Window):
            self.invalid(
                f"{self.window!r} is not a window",
                "pass TumblingWindow('1m'), SlidingWindow('5m', every='1m') or SessionWindow('30m')",
            )
        if self.delay_ns < 0 or self.lateness_ns < 0:
            self.invalid("delay and lateness must not be negative", "use e.g. delay='10s'")
        span = window_reach_ns(self.window) + self.lateness_ns
        if span > MAX_DURATION_NS:
            self.invalid(
                f"the window's size plus its lateness ({format_duration(span)}) is longer than the "
                f"{MAX_DURATION_NS // 86_400_000_000_000:,} days timestamps leave room for",
                "use a shorter window or lateness",
            )
        if self.early and isinstance(self.window, SessionWindow):
            self.invalid(
                "early results are not supported for session windows",
                "drop early=True, or use a tumbling or sliding window",
            )
        # (that it has partitions, or several sources, to time out is checked by the pipeline)
        if self.idle_timeout_ns is not None and self.idle_timeout_ns <= 0:
            self.invalid("idle_timeout must be positive", "use e.g. idle_timeout='30s'")

    def build(self) -> Operator:
        if isinstance(self.window, SessionWindow):
            return SessionOperator(
                self.step_id,
                self.window,
                list(self.keys),
                list(self.aggs),
                self.time,
                self.delay_ns,
                self.lateness_ns,
                watermark_by=list(self.watermark_by),
                idle_timeout_ns=self.idle_timeout_ns,
            )
        assert isinstance(self.window, (TumblingWindow, SlidingWindow))
        paned = (
            isinstance(self.window, SlidingWindow)
            and self.window.size_ns % self.window.every_ns == 0
            and not self.early
        )
        return (PanedWindowOperator if paned else WindowOperator)(
            self.step_id,
            self.window,
            list(self.keys),
            list(self.aggs),
            self.time,
            self.delay_ns,
            self.lateness_ns,
            self.early,
            watermark_by=list(self.watermark_by),
            idle_timeout_ns=self.idle_timeout_ns,
        )

    def input_problem(self, columns_in: list[Columns]) -> tuple[str, str] | None:
        cols = columns_in[0]
        return _first(
            missing_column(cols, self.keys, "key"),
            missing_column(cols, [self.time], "time (pass time='<event-time column>')"),
            missing_column(cols, self.watermark_by, "watermark_by"),
            *(missing_column(cols, [a.column], f"aggregator {a!r}") for a in self.aggs if a.column),
        )

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        c = columns_in[0]
        results = (*self.keys, "window_start", "window_end", *(a.name for a in self.aggs))
        return {
            "out": results,
            "early": (*results, "is_final"),
            "late": (*c, "window_start", "window_end", "watermark") if c is not None else None,
            "dead_letter": dead_letter_columns(c),
        }


@step_kind
@dataclass(frozen=True)
class IntervalJoinStep(Step):
    """Join two streams on keys where the right event time is within ``[lower, upper]`` of the left.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{'k': 1, 'timestamp': 0}]))
    >>> _ = p.stream.join_interval(p.stream, 'k', lower='-1m', upper='30s')
    >>> p.steps['join'].params()['lower'], p.steps['join'].params()['upper']
    ('-1m', '30s')
    """

    on: tuple[str, ...] = param(codec=codec.NAMES, default=())
    left_time: str = param(default="timestamp", missing=_pipeline_time)
    right_time: str = param(default="timestamp", missing=_pipeline_time)
    lower_ns: int = param(key="lower", codec=codec.SIGNED_DURATION_NS, default=0)
    upper_ns: int = param(key="upper", codec=codec.SIGNED_DURATION_NS, default=0)
    delay_ns: int = param(key="delay", codec=codec.DURATION_NS, default=0)
    suffixes: tuple[str, str] = param(codec=codec.NAMES, default=("", "_right"))
    kind: ClassVar[str] = "interval_join"
    output_names: ClassVar[tuple[str, ...]] = ("out", "late")

    def check(self) -> None:
        if len(self.inputs) != 2:
            self.invalid(
                f"an interval join reads two streams, got {list(self.inputs)}", "pass a.join_interval(b, ...)"
            )
        if not self.on:
            self.invalid("no key column given", "pass e.g. on='user_id'")
        if self.lower_ns > self.upper_ns:
            self.invalid(
                f"lower ({codec.SIGNED_DURATION_NS.encode(self.lower_ns)}) is after upper "
                f"({codec.SIGNED_DURATION_NS.encode(self.upper_ns)})",
                "swap them: lower is the earliest offset of the other side, e.g. lower='-5m', upper='5m'",
            )
        if self.delay_ns < 0:
            self.invalid("delay must not be negative", "use e.g. delay='10s'")
        if len(self.suffixes) != 2:
            self.invalid(
                f"suffixes={self.suffixes!r} must be two strings", "pass e.g. suffixes=('', '_right')"
            )

    def build(self) -> Operator:
        return IntervalJoinOperator(
            self.step_id,
            list(self.on),
            self.left_time,
            self.right_time,
            self.lower_ns,
            self.upper_ns,
            self.delay_ns,
            (self.suffixes[0], self.suffixes[1]),
        )

    def input_problem(self, columns_in: list[Columns]) -> tuple[str, str] | None:
        return _first(
            missing_column(columns_in[0], [*self.on, self.left_time], "the left side"),
            missing_column(columns_in[1], [*self.on, self.right_time], "the right side"),
            self._repeated_columns(columns_in),
        )

    def _repeated_columns(self, columns_in: list[Columns]) -> tuple[str, str] | None:
        """A problem when the suffixes give two output columns one name (pandas' merge refuses it)."""
        out = self.out_columns(columns_in)["out"]
        if out is None:
            return None
        repeated = sorted({c for c in out if out.count(c) > 1})
        if not repeated:
            return None
        return (
            f"suffixes={self.suffixes!r} give the output two columns named {', '.join(map(repr, repeated))}",
            "pass suffixes that no column of either side already ends in, e.g. suffixes=('_left', '_right'), "
            "or rename a column first with select(...)",
        )

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        left, right = columns_in
        if left is None or right is None:
            return {"out": None, "late": None}
        both = set(left) & set(right) - set(self.on)
        out = [c + self.suffixes[0] if c in both else c for c in left]
        out += [c + self.suffixes[1] if c in both else c for c in right if c not in self.on]
        return {"out": tuple(out), "late": None}


def read_table(step_id: str, ref: str, load: Callable[[], pd.DataFrame]) -> pd.DataFrame:
    """``load()``: the table of enrich step ``step_id`` from ``ref``; pandas', pyarrow's or DuckDB's own
    error (a missing file or database, a query that fails) is a PipelineConfigError naming the step."""
    try:
        return load()
    except PipelineConfigError:
        raise
    except Exception as e:  # pandas', pyarrow's or DuckDB's own error: no step, no fix
        raise PipelineConfigError(
            step_id,
            "enrich",
            f"cannot read the table {str(ref)!r}: {type(e).__name__}: {e}",
            "pass an existing .csv or .parquet file with a header row, duckdb:PATH:QUERY (or "
            "DuckDBTable(path, query)) on an existing database, or a DataFrame",
        ) from e


def _load_table(ref: str) -> pd.DataFrame:
    if ref.startswith("duckdb:"):
        from streamlab.sinks import DuckDBTable

        _, path, query = ref.split(":", 2)
        return DuckDBTable(path, query, trusted=not isinstance(ref, codec.UntrustedRef)).load()
    return pd.read_parquet(ref) if ref.endswith(".parquet") else pd.read_csv(ref)


@step_kind
@dataclass(frozen=True)
class EnrichStep(Step):
    """Join each event with a table (DataFrame, file or DuckDB query).

    ``table_ref`` is where the table comes from (a Parquet/CSV path or ``"duckdb:PATH:QUERY"``): what
    the spec holds. A step given only ``table_ref`` loads the table when built.

    Examples
    --------
    >>> import pandas as pd
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{'k': 1}]))
    >>> p.enrich(pd.DataFrame({'k': [1], 'name': ['one']}), on='k').columns
    ('k', 'name')
    """

    table: pd.DataFrame = internal(default=None, compare=False)
    table_ref: str | None = param(key="table", codec=codec.TABLE_REF, default=None)
    on: tuple[str, ...] = param(codec=codec.NAMES, default=())
    how: str = "left"
    kind: ClassVar[str] = "enrich"

    def check(self) -> None:
        if self.table is None and isinstance(self.table_ref, str):
            ref = self.table_ref
            object.__setattr__(self, "table", read_table(self.step_id, ref, lambda: _load_table(ref)))
        if not isinstance(self.table, pd.DataFrame):
            self.invalid(
                f"cannot use {type(self.table).__name__} as a table",
                "pass a pandas DataFrame, a .parquet/.csv path or DuckDBTable(path, query)",
            )
        if self.how not in ("left", "inner"):
            self.invalid(f"how={self.how!r}", "use how='left' (keep every event) or 'inner'")
        if not self.on:
            self.invalid("no key column given", "pass e.g. on='user_id'")
        for k in self.on:
            if k not in self.table.columns:
                self.invalid(f"the table has no column {k!r}", suggest(k, self.table.columns))
        # An enrichment looks each event's key up in the table (as a KTable or a side input held as a
        # dict does): a key on two rows would turn each matching event into two rows, silently.
        repeated, n = repeated_keys(self.table, list(self.on))
        if repeated:
            on = list(self.on)
            shown = ", ".join(repr(k[0] if len(on) == 1 else k) for k in repeated)
            self.invalid(
                f"the table holds {n} key{'s' if n > 1 else ''} of {on} on more than one row (e.g. {shown}), "
                "and each event with such a key would become one row per table row",
                f"keep one row per key, e.g. table.drop_duplicates(subset={on}, keep='last'), or aggregate the "
                f"table by {on} first",
            )

    def build(self) -> Operator:
        return EnrichOperator(self.table, list(self.on), self.how)

    def params(self) -> dict[str, Any]:
        if self.table_ref is None:
            raise ValueError(
                f"step {self.step_id!r} (enrich): the table is an in-memory DataFrame, which YAML cannot hold; "
                "pass enrich(table='path/to/table.parquet' or a DuckDBTable(...)) to make the pipeline portable"
            )
        return super().params()

    def input_problem(self, columns_in: list[Columns]) -> tuple[str, str] | None:
        return _first(
            missing_column(columns_in[0], self.on, "on"), table_clash(self.table, self.on, columns_in[0])
        )

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        c = columns_in[0]
        if c is None:
            return {"out": None}
        return {"out": tuple(dict.fromkeys(c + tuple(self.table.columns)))}


def table_clash(table: pd.DataFrame, on: Iterable[str], columns: Columns) -> tuple[str, str] | None:
    """``(problem, fix)`` when the stream's ``columns`` hold a column of ``table`` besides the keys
    ``on`` (an enrich would give the result two columns of one name); None when not, or unknown.

    Examples
    --------
    >>> table_clash(pd.DataFrame({"k": [1], "v": [2]}), ["k"], ("k", "v", "timestamp"))[0]
    "the table's column 'v' is also a column of the stream"
    """
    if columns is None:
        return None
    keys = set(on)
    both = [c for c in table.columns if c in columns and c not in keys]
    if not both:
        return None
    names = ", ".join(map(repr, both))
    return (
        f"the table's column{'s' if len(both) > 1 else ''} {names} "
        f"{'are' if len(both) > 1 else 'is'} also {'columns' if len(both) > 1 else 'a column'} of the stream",
        f"rename {'them' if len(both) > 1 else 'it'} in the table, e.g. "
        f"table.rename(columns={{{both[0]!r}: {both[0] + '_table'!r}}}), or drop {'them' if len(both) > 1 else 'it'}",
    )


def _sink_label(step: SinkStep) -> str:
    return type(step.sink).__name__


@step_kind(label=_sink_label)
@dataclass(frozen=True)
class SinkStep(Step):
    """Where a stream leaves the graph: wraps a :class:`~streamlab.io.Sink`.

    Examples
    --------
    >>> from streamlab import Pipeline, ListSink
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{'x': 1}]))
    >>> p.stream.to(ListSink()).step_id, p.steps['sink'].params()
    ('sink', {'sink': {'kind': 'list'}})
    """

    sink: Sink = param(codec=codec.SINK, default=None)
    #: what the writer learns about the stream written (set by ``Stream.to``; not part of the spec)
    upstream: Upstream = internal(default=Upstream(), compare=False)
    kind: ClassVar[str] = "sink"
    output_names: ClassVar[tuple[str, ...]] = ()

    def check(self) -> None:
        if not callable(getattr(self.sink, "open", None)):
            self.invalid(
                f"{self.sink!r} is not a streamlab Sink",
                "pass a Sink such as DuckDBSink('out.duckdb', 'counts') or ListSink()",
            )

    def build(self) -> Operator:
        return PassOperator()

    def input_problem(self, columns_in: list[Columns]) -> tuple[str, str] | None:
        columns = columns_in[0]
        if columns is None or not isinstance(self.sink, Sink):  # a duck-typed sink: nothing to ask
            return None
        return self.sink.columns_problem(list(columns), self.upstream)

    def open_writer(self, clock: Clock | None = None) -> SinkWriter:
        """The writer of one run: the sink opened for :attr:`upstream`."""
        return self.sink.open_for(self.upstream, clock)

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        return {}


def _operator_label(step: OperatorStep) -> str:
    return label_of(step.config)


def _encode_config(config: Any) -> dict[str, Any]:
    return {"type": type(config).__name__, "config": params_of(config)}


def _decode_config(value: Any, ctx: ReadContext) -> Any:
    if not isinstance(value, Mapping):
        return value
    types = config_kinds()
    name = value.get("type")
    if name not in types:
        raise ValueError(f"unknown step config type {name!r}; known: {sorted(types)}")
    return from_params(types[name], value.get("config") or {}, ctx)


@step_kind(label=_operator_label)
@dataclass(frozen=True)
class OperatorStep(Step):
    """A step backed by a step config with ``build() -> Operator`` (detectors, features, rules, patterns).

    Its spec is the config's: ``type`` (the config's class, registered in ``streamlab._step_kinds``)
    and ``config`` (its parameters).

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> from streamlab.detectors import DriftDetector
    >>> p = Pipeline(ListSource([{'score': 1.0, 'timestamp': 0}]))
    >>> _ = p.apply(DriftDetector(column='score'), step_id='drift')
    >>> p.steps['drift'].outputs
    ('out', 'drift')
    >>> p.steps['drift'].params()['type']
    'DriftDetector'
    """

    config: Any = param(key="", codec=Codec(_encode_config, _decode_config), default=None)
    kind: ClassVar[str] = "operator"
    output_names: ClassVar[tuple[str, ...]] = ("out",)

    def check(self) -> None:
        if not callable(getattr(self.config, "build", None)):
            self.invalid(
                f"{self.config!r} has no build() method",
                "pass a streamlab step config such as a detector or feature",
            )
        self._check_expressions()

    def _check_expressions(self) -> None:
        """Refuse a config's expression (a rule's ``expr``, a pattern's ``where``) that calls what pandas'
        evaluation cannot: it would send every row to dead letter at run time."""
        if not dataclasses.is_dataclass(self.config):
            return
        for path, expr in codec.expressions_in(type(self.config), params_of(self.config)):
            try:
                tree = _pyast.parse(_pyast.unquote_backticks(expr)[0], mode="eval")
            except (SyntaxError, TypeError, ValueError):
                continue  # the config's own check reports it
            unsupported = unsupported_form(tree) or unsupported_call(tree) or misread_comparison(tree)
            if unsupported is not None:
                problem, fix = unsupported
                self.invalid(f"{type(self.config).__name__} {path}={expr!r} {problem}", fix)

    def build(self) -> Operator:
        return self.config.build()  # type: ignore[no-any-return]

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(getattr(self.config, "output_names", ("out",)))

    def numeric_columns(self) -> tuple[str, ...]:
        """Input columns the config reads as numbers (its ``numeric_columns()``; none if it has none)."""
        columns = getattr(self.config, "numeric_columns", None)
        return tuple(columns()) if columns is not None else ()

    def text_columns(self) -> tuple[str, ...]:
        """Input columns the config compares with a text (its ``text_columns()``; none if it has none)."""
        columns = getattr(self.config, "text_columns", None)
        return tuple(columns()) if columns is not None else ()

    def input_problem(self, columns_in: list[Columns]) -> tuple[str, str] | None:
        check = getattr(self.config, "check_columns", None)
        if check is None or columns_in[0] is None:
            return None
        return check(columns_in[0])  # type: ignore[no-any-return]

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        fn = getattr(self.config, "out_columns", None)
        if fn is not None:
            return fn(columns_in)  # type: ignore[no-any-return]
        return {name: None for name in self.outputs}
