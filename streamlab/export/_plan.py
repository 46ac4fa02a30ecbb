"""What exporters share: checking which steps a target supports, column types, names, copied helpers."""

from __future__ import annotations

import ast
import builtins
import functools
import inspect
import keyword
import re
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeGuard

from streamlab import (
    _dead_letter,
    _detector_record,
    _kpl,
    _pyast,
    _record,
    _serde_values,
    _sessions,
    _timestream_values,
)
from streamlab._agg_inputs import NUMERIC_AGGREGATORS
from streamlab._dead_letter import dead_letter_types
from streamlab._step_kinds import label_of
from streamlab._time import NAT_NS, format_duration
from streamlab.aggregators import (
    Aggregator,
    CountAggregator,
    CountDistinctAggregator,
    FirstAggregator,
    LastAggregator,
    MaxAggregator,
    MeanAggregator,
    MinAggregator,
    QuantileAggregator,
    SumAggregator,
)
from streamlab.errors import PipelineConfigError
from streamlab.export import _snippets
from streamlab.functions import UserFunction
from streamlab.pipeline import Pipeline
from streamlab.steps import (
    DedupStep,
    FilterStep,
    KeyByStep,
    MapStep,
    OperatorStep,
    ParseStep,
    SelectStep,
    SinkStep,
    SourceStep,
    Step,
    WindowStep,
)

_COMBINERS: dict[type[Aggregator], str] = {
    CountAggregator: "CountCombine",
    SumAggregator: "SumCombine",
    MeanAggregator: "MeanCombine",
    MinAggregator: "MinCombine",
    MaxAggregator: "MaxCombine",
    CountDistinctAggregator: "CountDistinctCombine",
    FirstAggregator: "FirstCombine",
    LastAggregator: "LastCombine",
    QuantileAggregator: "QuantileCombine",
}
_BASES = {
    "SumCombine": ["CountCombine", "to_float"],
    "MeanCombine": ["CountCombine", "SumCombine", "to_float"],
    "MinCombine": ["CountCombine", "to_float"],
    "MaxCombine": ["CountCombine", "MinCombine", "to_float"],
    "CountDistinctCombine": ["CountCombine"],
    "FirstCombine": ["CountCombine"],
    "LastCombine": ["CountCombine", "FirstCombine"],
    "QuantileCombine": ["CountCombine", "to_float"],
    "eval_expr": ["ExprCompiler", "pandas_eval"],
    "assign_exprs": ["eval_expr", "ExprCompiler", "pandas_eval"],
    "filter_keeps": ["eval_expr", "ExprCompiler", "pandas_eval"],
}
_SNIPPET_ORDER = [
    "is_null",
    "to_float",
    "window_starts",
    "CountCombine",
    "SumCombine",
    "MeanCombine",
    "MinCombine",
    "MaxCombine",
    "CountDistinctCombine",
    "FirstCombine",
    "LastCombine",
    "QuantileCombine",
    "RowCombine",
    "group_key",
    "ExprCompiler",
    "pandas_eval",
    "eval_expr",
    "filter_keeps",
    "assign_exprs",
]
RECORD_IMPORTS = ("heapq", "json", "math", "re", "datetime", "itertools", "typing")
"""Modules ``streamlab._record`` imports: every generated module's header imports them."""
SERDE_IMPORTS = ("base64", "json", "math", "datetime", "typing")
"""Modules ``streamlab._serde_values`` imports: the headers of generated modules that write rows import them."""
SERDE_SNIPPETS = frozenset({"json_default", "dump_json", "group_key"})
"""Snippet names that bring the row encoding (``streamlab._serde_values``) into a generated module."""
DEAD_LETTER_SNIPPETS = ("RAW", "REASON", "STEP_ID", "dead_letter_row", "raw_dead_letter_row", "fit_message")
"""The plain-Python part of ``streamlab._dead_letter`` that generated modules carry (wanted as ``dead_letter_row``)."""


UNFIT_SNIPPETS = (
    "NAN",
    "as_number",
    "unkeyable",
    "missing_value",
    "unjoinable",
    "short_repr",
    "shown_value",
    "unfit_key_reason",
    "unfit_value_reason",
    "unfit_reason",
)
"""The part of ``streamlab._detector_record`` that decides which rows a window's aggregators cannot take
(``unfit_reason``) and which join keys match nothing (``unjoinable``), as generated modules without the
whole module carry it."""


def _module_body(module: Any, allowed: tuple[str, ...]) -> str:
    """The code of a module after its imports, checking that it imports only modules of ``allowed``."""
    name = module.__name__
    text = Path(inspect.getsourcefile(module) or "").read_text()
    tree = _pyast.parse(text)
    imports = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    modules = {a.name for n in imports if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module or "" for n in imports if isinstance(n, ast.ImportFrom) and n.module != "__future__"}
    if not modules <= set(allowed):  # a new import must reach the generated headers too
        raise RuntimeError(f"{name} imports {sorted(modules)}; update the allowed imports and the headers")
    lines = text.splitlines()
    return "\n".join(lines[imports[-1].end_lineno or 0 :]).strip() + "\n"


def record_source() -> str:
    """The code of ``streamlab._record`` after its imports, as generated modules carry it: the per-record
    parse that streamlab's checked path runs, copied, not rewritten."""
    return _module_body(_record, RECORD_IMPORTS)


def serde_source() -> str:
    """The code of ``streamlab._serde_values`` after its imports: the row encoding of streamlab's sinks
    (``streamlab.serde``), copied into generated modules so that their outputs cannot drift from it."""
    return _module_body(_serde_values, SERDE_IMPORTS)


def kpl_source() -> str:
    """The code of ``streamlab._kpl`` after its imports: the user records of a record the Kinesis Producer
    Library aggregated, as ``KinesisSource`` reads them, copied into the Lambda handler."""
    return _module_body(_kpl, ("hashlib",))


def timestream_values_source() -> str:
    """The code of ``streamlab._timestream_values`` after its imports: which measure values Timestream
    cannot hold, the rule of ``TimestreamSink``, copied into the Lambda handler that writes Timestream."""
    return _module_body(_timestream_values, ("datetime", "json", "math", "typing", "streamlab._serde_values"))


#: A source line with its end (``\n``, ``\r\n`` or ``\r``, the only ends Python's tokenizer knows), or the
#: last line without one.
_SOURCE_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


def source_segment(lines: list[str], node: ast.stmt) -> str:
    """What ``ast.get_source_segment(text, node)`` returns, from ``text`` split once into ``lines``
    (:data:`_SOURCE_LINE`): that function splits the whole text on every call, which made each export
    take seconds (about 90 calls over a 900-line module). Column offsets are UTF-8 byte offsets.

    Examples
    --------
    >>> text = "x = 1\\ndef f():\\n    return 'é'  # the end\\n"
    >>> node = ast.parse(text).body[1]
    >>> source_segment(_SOURCE_LINE.findall(text), node) == ast.get_source_segment(text, node)
    True
    """
    first, last = node.lineno - 1, (node.end_lineno or node.lineno) - 1
    end = node.end_col_offset
    if first == last:
        return lines[first].encode()[node.col_offset : end].decode()
    head = lines[first].encode()[node.col_offset :].decode()
    return "".join([head, *lines[first + 1 : last], lines[last].encode()[:end].decode()])


def _segments(module: Any) -> Mapping[str, str]:
    """Source of each top-level function, class and ``NAME = ...`` of a module, by name.

    Parsed once per version of the module's file (its path, size and modification time): an export
    copies from the same few modules, whose parse was about half of a small export's time.
    """
    path = Path(inspect.getsourcefile(module) or "")
    stat = path.stat()
    return _file_segments(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _file_segments(path: str, size: int, mtime_ns: int) -> Mapping[str, str]:
    """:func:`_segments` of the file at ``path`` (``size`` and ``mtime_ns`` key the cache only)."""
    text = Path(path).read_text()
    lines = _SOURCE_LINE.findall(text)
    parts: dict[str, str] = {}
    for node in _pyast.parse(text).body:
        name = None
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            name = node.name
        elif isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
        if name is not None:
            parts[name] = source_segment(lines, node)
    return MappingProxyType(parts)


def dead_letter_source() -> str:
    """The dead-letter columns and row builders of ``streamlab._dead_letter``, as generated modules carry them."""
    parts = _segments(_dead_letter)
    return "\n\n\n".join(parts[n] for n in DEAD_LETTER_SNIPPETS) + "\n"


def unfit_source() -> str:
    """``unfit_reason`` and what it builds on, copied from ``streamlab._detector_record``."""
    parts = _segments(_detector_record)
    return "\n\n\n".join(parts[n] for n in UNFIT_SNIPPETS) + "\n"


def session_rule_source() -> str:
    """``assign_one_by_one``, streamlab's session rule one event at a time, copied from
    ``streamlab._sessions`` (with the ``NAT_NS`` it uses): which rows are late for a session window."""
    return f"NAT_NS = {NAT_NS!r}\n\n\n" + _segments(_sessions)["assign_one_by_one"] + "\n"


def unfit_checks(step: WindowStep) -> tuple[tuple[str, str, bool], ...]:
    """The (kind, column, numeric) triples ``unfit_reason`` checks for ``step``'s aggregators: those that
    read a column as numbers or tell its values apart (the runtime's ``split_unfit_values``)."""
    return tuple(
        (a.kind, a.column, isinstance(a, NUMERIC_AGGREGATORS))
        for a in step.aggs
        if a.column is not None and isinstance(a, (*NUMERIC_AGGREGATORS, CountDistinctAggregator))
    )


def snippet_source(names: set[str]) -> str:
    """Source of the record parser (``streamlab._record``), of the row encoding (``streamlab._serde_values``)
    when a name of ``SERDE_SNIPPETS`` is wanted, and of the named helpers of ``_snippets`` (plus what they
    build on), in a stable order."""
    wanted = set(names)
    for n in list(wanted):
        wanted.update(_BASES.get(n, []))
    if any(n.endswith("Combine") for n in wanted):
        wanted.add("is_null")
    parts = _segments(_snippets)
    code = [parts[n] for n in _SNIPPET_ORDER if n in wanted]
    serde = serde_source() + "\n\n" if wanted & SERDE_SNIPPETS else ""
    dead = dead_letter_source() + "\n\n" if "dead_letter_row" in wanted else ""
    return record_source() + "\n\n" + serde + dead + "\n\n\n".join(code)


def is_pattern_step(step: Step | None) -> TypeGuard[OperatorStep]:
    """Whether ``step`` is a pattern (CEP) step, which the Flink and Spark exports translate specially."""
    from streamlab.detectors import Pattern

    return isinstance(step, OperatorStep) and isinstance(step.config, Pattern)


def ident(name: str) -> str:
    """A Python identifier for a step id or stream reference."""
    out = re.sub(r"\W", "_", name)
    if not out or out[0].isdigit() or keyword.iskeyword(out):
        out = "s_" + out
    return out


def step_ref_name(ref: str) -> str:
    """Variable name of a stream reference in generated code (never shadowing a builtin)."""
    name = ident(ref.replace(".", "_"))
    return name + "_" if name in dir(builtins) else name


@dataclass
class FunctionCode:
    """How generated code reaches a user function: an import or its pasted source."""

    name: str
    imports: list[str] = field(default_factory=list)
    source: str = ""


def function_alias(step_id: str) -> str:
    """The name generated code gives the user function of step ``step_id``."""
    return f"user_fn_{ident(step_id)}"


def function_code(fn: UserFunction, step_id: str, kind: str, alias: str | None = None) -> FunctionCode:
    r"""How generated code reaches a step's user function: under ``alias`` (:func:`function_alias`), never
    under the function's own name, which may be a step's (``map_one(tagged, step_id="tagged")``: the
    generated code names that step's stream ``tagged``, and called the stream) or a generated helper's
    (``parse_record``, ``build``); the copied source is defined inside a function of its own.

    Examples
    --------
    >>> from streamlab.functions import UserFunction
    >>> code = function_code(UserFunction(fn=len, source="def tagged(row):\n    return row\n"), "tagged", "map")
    >>> code.name
    'user_fn_tagged'
    >>> print(code.source)
    def user_fn_tagged_source():
        def tagged(row):
            return row
        return tagged
    <BLANKLINE>
    <BLANKLINE>
    user_fn_tagged = user_fn_tagged_source()
    <BLANKLINE>
    """
    alias = alias or function_alias(step_id)
    if fn.ref:
        module, _, qualname = fn.ref.partition(":")
        if "." in qualname:
            top = qualname.split(".")[0]
            return FunctionCode(
                f"{alias}.{qualname.split('.', 1)[1]}", [f"from {module} import {top} as {alias}"]
            )
        return FunctionCode(alias, [f"from {module} import {qualname} as {alias}"])
    if fn.source:
        src = fn.source.strip()
        if src.startswith(("lambda", "(")):
            return FunctionCode(alias, [], f"{alias} = {src}\n")
        tree = _pyast.parse(src)
        defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        if defs:
            body = textwrap.indent(src, "    ")
            source = (
                f"def {alias}_source():\n{body}\n    return {defs[-1].name}\n\n\n{alias} = {alias}_source()\n"
            )
            return FunctionCode(alias, [], source)
    raise PipelineConfigError(
        step_id,
        kind,
        f"function {fn.name} has neither an import path nor readable source, so it cannot be exported",
        "define it at the top level of a module (importable as module:name)",
    )


def aggregator_code(a: Aggregator, step_id: str, time: str) -> tuple[str, str]:
    """(helper class name, constructor expression) of a built-in aggregator."""
    cls = _COMBINERS.get(type(a))
    if cls is None:
        raise PipelineConfigError(
            step_id,
            "window",
            f"aggregator {a!r} is a custom Aggregator; exporters generate code for built-in aggregators only",
            "use streamlab.agg (count, sum, mean, min, max, count_distinct, first, last, quantile)",
        )
    if isinstance(a, QuantileAggregator):
        return cls, f"{cls}({a.column!r}, q={a.q!r}, relative_accuracy={a.relative_accuracy!r})"
    return cls, f"{cls}({a.column!r})"


def result_type(a: Aggregator, column_types: dict[str, str]) -> str:
    """streamlab field type of an aggregator's result."""
    if isinstance(a, (CountAggregator, CountDistinctAggregator)):
        return "int64"
    if isinstance(a, (FirstAggregator, LastAggregator)):
        return column_types.get(a.column or "", "string")
    return "float64"


_DTYPE_TYPES = {"b": "bool", "i": "int64", "u": "int64", "f": "float64", "M": "timestamp"}
_EMPTY = {"bool": "bool", "int64": "int64", "float64": "float64", "timestamp": "datetime64[ns, UTC]"}
NUMERIC_TYPES = frozenset({"int64", "float64"})
"""Field types whose missing value is NaN in streamlab's columns (arrow's nulls become NaN in pandas)."""


def with_columns_types(types: dict[str, str], columns: tuple[tuple[str, str], ...]) -> dict[str, str]:
    """The field types after ``with_columns``: each expression evaluated (as streamlab does, one after
    the other) on an empty frame of the input's types; a result pandas cannot type is a string.

    Examples
    --------
    >>> types = {"a": "float64", "ok": "bool"}
    >>> with_columns_types(types, (("b", "a * 2"), ("both", "ok & ok"), ("big", "a > 1 and ok"), ("a2", "a")))
    {'a': 'float64', 'ok': 'bool', 'b': 'float64', 'both': 'bool', 'big': 'bool', 'a2': 'float64'}
    >>> with_columns_types({"id": "string"}, (("tag", "id + '_x'"),))["tag"]
    'string'
    """
    import pandas as pd

    from streamlab._expr import eval_expression

    out = dict(types)
    frame = pd.DataFrame({c: pd.Series([], dtype=_EMPTY.get(t, "object")) for c, t in types.items()})
    for name, expr in columns:
        try:  # as streamlab evaluates it (a text joined to a string constant, which pandas' eval refuses)
            value = _pyast.guarded(eval_expression, frame, expr)
            kind = _DTYPE_TYPES.get(getattr(getattr(value, "dtype", None), "kind", ""), "string")
            frame[name] = value
        except Exception:  # an expression that fails on no rows: a number, as streamlab types it
            kind = "float64"
        out[name] = out.get(expr, kind) if expr in types else kind
    return out


def numeric_columns(types: dict[str, str]) -> tuple[str, ...]:
    """The columns of ``types`` whose missing value is NaN (``eval_expr``'s ``numeric``), sorted.

    Examples
    --------
    >>> numeric_columns({"b": "float64", "s": "string", "a": "int64", "ok": "bool"})
    ('a', 'b')
    """
    return tuple(sorted(c for c, t in types.items() if t in NUMERIC_TYPES))


def typed_columns(types: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """(column, type) of the columns of ``types`` that are not float64, sorted (``eval_expr``'s ``typed``):
    the missing values of those not numeric are what streamlab's columns hold, never re-read as NaN; an
    ``int64`` column (also in ``numeric_columns``) types what an expression computes from it
    (``ExprCompiler.with_integers``).

    Examples
    --------
    >>> typed_columns({"b": "float64", "s": "string", "ok": "bool", "n": "int64"})
    (('n', 'int64'), ('ok', 'bool'), ('s', 'string'))
    """
    return tuple(sorted((c, t) for c, t in types.items() if t != "float64"))


def keyable_join_sql(on: Any, kinds: dict[str, str], alias: str) -> list[str]:
    """SQL conditions that keep a join key of ``alias`` from matching when it is a dict or a list.

    The SQL exports hold ``object`` and ``json`` fields as JSON text, where a dict or a list is text
    starting with ``{`` or ``[`` (a string starts with its quote), and equal texts would match; streamlab's
    ``join_interval`` matches such a key with nothing. One condition per such key column of ``on``
    (``SUBSTRING ... FROM ... FOR``, which Flink SQL and Spark SQL both read).

    Examples
    --------
    >>> keyable_join_sql(["user_id", "day"], {"user_id": "json", "day": "string"}, "L")
    ["SUBSTRING(L.`user_id` FROM 1 FOR 1) NOT IN ('{', '[')"]
    """
    return [
        f"SUBSTRING({alias}.`{k.replace('`', '``')}` FROM 1 FOR 1) NOT IN ('{{', '[')"
        for k in on
        if kinds.get(k) in ("object", "json")
    ]


def row_times(p: Pipeline, ref: str, kinds: dict[str, dict[str, str]] | None = None) -> set[str]:
    """The time columns of stream ``ref``, as ``verify`` compares them: a parse's timestamp fields and the
    times of pattern matches and drift changes (``first_time``, ``last_time``, ``time``) by name, and
    every column ``column_types`` (``kinds``, computed when not given) knows as a time there, so a time
    renamed by a select or copied by with_columns is one too.

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b"{}"]))
    >>> _ = p.parse().select("event_id", t="timestamp", step_id="renamed")
    >>> sorted(row_times(p, "renamed"))
    ['first_time', 'last_time', 't', 'time', 'timestamp']
    """
    kinds = column_types(p) if kinds is None else kinds
    named = {
        f.name
        for s in p.steps.values()
        if isinstance(s, ParseStep)
        for f in s.fields
        if f.type == "timestamp"
    }
    typed = {c for c, kind in kinds.get(ref, {}).items() if kind == "timestamp"}
    return named | {"first_time", "last_time", "time"} | typed


def column_types(p: Pipeline) -> dict[str, dict[str, str]]:
    """Best-effort streamlab field type of every column of every stream reference."""
    out: dict[str, dict[str, str]] = {}
    for sid, step in p.steps.items():
        ins = [out.get(r, {}) for r in step.inputs]
        base = dict(ins[0]) if ins else {}
        if isinstance(step, SourceStep):
            cols = p.columns_of(sid) or ()
            out[sid] = {c: "bytes" if c == "value" else "string" for c in cols}
        elif isinstance(step, ParseStep):
            out[sid] = {f.name: f.type for f in step.fields}
            # raw records are written as text (invalid UTF-8 replaced), the form JSON sinks can carry
            out[f"{sid}.dead_letter"] = dead_letter_types({}, raw=True)
        elif isinstance(step, SelectStep):
            out[sid] = {new: base.get(old, "string") for old, new in step.columns}
        elif isinstance(step, MapStep):
            if step.columns:
                out[sid] = with_columns_types(base, tuple(step.columns))
            else:
                out[sid] = {c: "string" for c in step.declared or ()}
            out[f"{sid}.dead_letter"] = dead_letter_types(base)
        elif isinstance(step, WindowStep):
            res = {k: base.get(k, "string") for k in step.keys}
            res.update({"window_start": "timestamp", "window_end": "timestamp"})
            res.update({a.name: result_type(a, base) for a in step.aggs})
            out[sid] = res
            out[f"{sid}.late"] = {**base, "window_start": "timestamp", "window_end": "timestamp"}
            out[f"{sid}.dead_letter"] = dead_letter_types(base)
        elif isinstance(step, FilterStep):
            out[sid] = base
            out[f"{sid}.dead_letter"] = dead_letter_types(base)
        elif isinstance(step, DedupStep):
            out[sid] = base
            out[f"{sid}.duplicates"] = base
        else:
            out[sid] = base
    return out


def sink_outputs(p: Pipeline) -> dict[str, str]:
    """Streams that generated code writes somewhere: reference -> destination name (sink step id or ref)."""
    dest: dict[str, str] = {}
    for sid, step in p.steps.items():
        if isinstance(step, SinkStep):
            dest.setdefault(step.inputs[0], ident(sid))
    for ref in p.unattached_outputs():
        step = p.steps[ref.split(".")[0]]
        if isinstance(step, SourceStep) or ref.endswith(".early"):
            continue
        dest.setdefault(ref, step_ref_name(ref))
    return dest


_ALWAYS = (SourceStep, ParseStep, FilterStep, MapStep, SelectStep, DedupStep, KeyByStep, SinkStep)


def unsupported(step: Step, target: str, why: str, fix: str) -> PipelineConfigError:
    """An export error naming the step as every error names it (``streamlab._step_kinds.label_of``:
    a detect step by its detector's class, another config's step by its config's class)."""
    return PipelineConfigError(step.step_id, label_of(step), f"cannot export to {target}: {why}", fix)


def window_geometry(step: WindowStep) -> dict[str, int]:
    """A window step's durations in ns by name: size, every, offset (or gap), lateness and delay."""
    from streamlab.windows import SessionWindow, SlidingWindow, TumblingWindow

    w = step.window
    parts: dict[str, int] = {}
    if isinstance(w, TumblingWindow):
        parts.update(size=w.size_ns, offset=w.offset_ns)
    elif isinstance(w, SlidingWindow):
        parts.update(size=w.size_ns, every=w.every_ns, offset=w.offset_ns)
    elif isinstance(w, SessionWindow):
        parts.update(gap=w.gap_ns)
    return {**parts, "lateness": step.lateness_ns, "delay": step.delay_ns}


def refuse_finer_than(step: WindowStep, parts: dict[str, int], unit: str, target: str, why: str) -> None:
    """A PipelineConfigError for the first of ``parts`` (name -> ns) that is not whole ``unit``s
    (``"us"`` or ``"ms"``): the target keeps times in that unit, so its windows would not be streamlab's.

    Examples
    --------
    >>> from streamlab import Pipeline, TumblingWindow, agg
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([{"timestamp": 0}]))
    >>> _ = p.stream.window(TumblingWindow("1500us")).agg(agg.count())
    >>> refuse_finer_than(p.steps["window"], {"size": 1_500_000}, "ms", "AWS Lambda", "Timestream keeps ms")
    Traceback (most recent call last):
    ...
    streamlab.errors.PipelineConfigError: step 'window' (window): cannot export to AWS Lambda: size='1500us' is not a whole number of milliseconds (Timestream keeps ms). Fix: give size in whole milliseconds (e.g. '1ms')
    """
    unit_ns, name = {"us": (1_000, "microseconds"), "ms": (1_000_000, "milliseconds")}[unit]
    for part, ns in parts.items():
        if ns % unit_ns:
            raise PipelineConfigError(
                step.step_id,
                "window",
                f"cannot export to {target}: {part}={format_duration(abs(ns))!r} is not a whole number of "
                f"{name} ({why})",
                f"give {part} in whole {name} (e.g. '{max(1, abs(ns) // unit_ns)}{unit}')",
            )


def check_pipeline(p: object, function: str) -> None:
    """Raise a TypeError unless ``p`` is a Pipeline: the chained form ``Pipeline(...).parse(...)`` holds
    the stream its last method returns, which the exporters took for a pipeline and failed on with an
    AttributeError ('ParsedStream' object has no attribute 'steps').

    Examples
    --------
    >>> from streamlab.testing import ListSource
    >>> check_pipeline(Pipeline(ListSource([b"{}"])).parse(), "to_beam")
    Traceback (most recent call last):
    ...
    TypeError: to_beam: expected a Pipeline, got a ParsedStream (what Pipeline(...).parse(...) and the other stream methods return). Fix: export its pipeline: to_beam(stream.pipeline, ...), or keep the Pipeline in a variable before chaining
    """
    if isinstance(p, Pipeline):
        return
    stream = hasattr(p, "pipeline") and isinstance(getattr(p, "pipeline", None), Pipeline)
    what = (
        f"a {type(p).__name__} (what Pipeline(...).parse(...) and the other stream methods return)"
        if stream
        else f"{type(p).__name__} {p!r}"[:200]
    )
    fix = (
        f"export its pipeline: {function}(stream.pipeline, ...), or keep the Pipeline in a variable before "
        "chaining"
        if stream
        else "pass the Pipeline the steps were added to"
    )
    raise TypeError(f"{function}: expected a Pipeline, got {what}. Fix: {fix}")


def check_steps(p: Pipeline, target: str, *, operators: bool = False) -> None:
    """Raise a PipelineConfigError naming the first step the target cannot run (``operators``: the target
    translates detector, feature, rule and pattern steps, and checks each one itself)."""
    sources = [s for s in p.steps.values() if isinstance(s, SourceStep)]
    if len(sources) != 1:
        raise PipelineConfigError(
            "pipeline",
            "pipeline",
            f"cannot export to {target}: the pipeline has {len(sources)} sources",
            "export pipelines with exactly one source (union of sources is not translated yet)",
        )
    for step in p.steps.values():
        if isinstance(step, (*_ALWAYS, WindowStep)) or (operators and isinstance(step, OperatorStep)):
            continue
        why = {
            "interval_join": "interval joins need two keyed, watermarked inputs with shared state, "
            "which the exporter does not translate",
            "enrich": "enrich joins with a table held in memory; the exported job cannot ship it",
            "union": "union of several streams is not translated",
            "operator": "detector, feature, rule, drift and pattern steps keep per-key state and models that "
            f"{target} does not hold",
        }.get(step.kind, f"steps of kind {step.kind!r} are not translated")
        fix = "keep this step in the notebook, or remove it before exporting"
        if step.kind == "operator":
            fix = (
                "export to Apache Beam instead (Pipeline.to_beam translates detector, feature, rule, drift and "
                "pattern steps, with per-key state), or run the pipeline with streamlab itself: "
                "Pipeline.to_yaml('pipeline.yaml') writes it and `streamlab run pipeline.yaml` runs it"
            )
        raise unsupported(step, target, why, fix)
    parse_steps = [s for s in p.steps.values() if isinstance(s, ParseStep)]
    if not parse_steps:
        raise PipelineConfigError(
            "pipeline",
            "pipeline",
            f"cannot export to {target}: the pipeline has no parse step",
            "exported jobs read raw records; add .parse(schema) after the source",
        )
    for st in p.steps.values():
        if isinstance(st, WindowStep) and st.early:
            raise unsupported(
                st, target, "early results are not exported", "drop early=True before exporting"
            )


def const_value(module_text: str, name: str) -> Any:
    """The value of a ``NAME = literal`` line that ``const`` wrote into a generated module."""
    for node in _pyast.parse(module_text).body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == name for t in node.targets
        ):
            return ast.literal_eval(node.value)
    raise KeyError(name)


def const(name: str, value: Any, comment: str = "") -> str:
    """``NAME = value`` as readable source: wrapped at 106 columns, dict order kept."""
    import pprint

    text = f"{name} = {pprint.pformat(value, width=106 - len(name), sort_dicts=False)}"
    if "\n" in text:
        pad = " " * (len(name) + 3)
        first, *rest = text.split("\n")
        text = "\n".join([first, *(pad + line.lstrip() if line.startswith(" ") else line for line in rest)])
    return text + (f"  # {comment}" if comment else "")
