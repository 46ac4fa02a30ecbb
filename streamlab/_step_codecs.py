"""How step fields that are not plain data are written to a spec and read back (``streamlab._step_kinds``).

One codec per kind of value: durations (held as nanoseconds by steps, as given by step configs),
column lists, schemas, windows, aggregators, user functions, sources, sinks, detectors, nested
configs (a detector's threshold filter) and dataclass values (a pattern's steps).

Examples
--------
>>> DURATION_NS.encode(90_000_000_000), DURATION_NS.decode("90s", ReadContext())
('90s', 90000000000)
>>> SIGNED_DURATION_NS.encode(-60_000_000_000)
'-1m'
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from typing import Any

from streamlab._step_kinds import Codec, ReadContext, from_params, kinds, names_of, params_of
from streamlab._time import format_duration, parse_duration
from streamlab.errors import suggest

__all__ = [
    "AGGREGATORS",
    "DETECTOR",
    "DURATION_NS",
    "DURATION_TEXT",
    "EXPRESSION",
    "FLOAT",
    "FUNCTION",
    "MAPPING",
    "NAMES",
    "NESTED_CONFIG",
    "OPTIONAL_DURATION_NS",
    "OPTIONAL_DURATION_TEXT",
    "OPTIONAL_NAMES",
    "PAIRS",
    "SCHEMA",
    "SIGNED_DURATION_NS",
    "SINK",
    "SOURCE",
    "TABLE_REF",
    "WINDOW",
    "UntrustedRef",
    "dataclass_list",
    "expressions_in",
]


def _signed(ns: int) -> str:
    return format_duration(ns) if ns >= 0 else "-" + format_duration(-ns)


def _optional(codec: Codec) -> Codec:
    return Codec(
        lambda v: None if v is None else codec.encode(v),
        lambda v, ctx: None if v is None else codec.decode(v, ctx),
    )


#: a duration held as int nanoseconds, written as text such as "5m"
DURATION_NS = Codec(format_duration, lambda v, ctx: parse_duration(v, what=f"step {ctx.step_id!r} duration"))
OPTIONAL_DURATION_NS = _optional(DURATION_NS)
#: a duration that may be negative (an interval join's bounds)
SIGNED_DURATION_NS = Codec(_signed, DURATION_NS.decode)
#: a duration held as given (text, seconds or timedelta), written as normalised text
DURATION_TEXT = Codec(lambda v: format_duration(parse_duration(v)), lambda v, ctx: v)
OPTIONAL_DURATION_TEXT = _optional(DURATION_TEXT)
#: a pandas expression (evaluated on batches): written as text, and checked by ``code_in_spec`` before
#: an untrusted spec is built
EXPRESSION = Codec(lambda v: v, lambda v, ctx: v)
#: a number written as a float
FLOAT = Codec(float, lambda v, ctx: v)
#: column names: a tuple, written as a list (a spec may give one name)
NAMES = Codec(list, lambda v, ctx: () if v is None else names_of(v))
OPTIONAL_NAMES = _optional(NAMES)
#: pairs of names (select's renames, with_columns' expressions), written as a mapping
PAIRS = Codec(dict, lambda v, ctx: tuple((str(a), str(b)) for a, b in dict(v).items()))
#: a mapping, copied both ways
MAPPING = Codec(dict, lambda v, ctx: dict(v))


def _decode_schema(value: Any, ctx: ReadContext) -> Any:
    from streamlab._spec_check import schema_fields

    return schema_fields(ctx.step_id or "parse", dict(value))


#: a parse step's fields, written as ``{name: type}`` (or ``{type, path}``)
SCHEMA = Codec(lambda fields: {f.name: f.describe() for f in fields}, _decode_schema)


def _decode_window(value: Any, ctx: ReadContext) -> Any:
    from streamlab.windows import window_from_spec

    return window_from_spec(value)


#: a window, written as ``{kind, size, ...}``
WINDOW = Codec(lambda w: w.describe(), _decode_window)


def _decode_aggregators(value: Any, ctx: ReadContext) -> Any:
    from streamlab import agg

    return tuple(agg.from_spec(a) for a in value)


#: aggregators, written as a list of ``{kind, column, ...}``
AGGREGATORS = Codec(lambda aggs: [a.describe() for a in aggs], _decode_aggregators)


def _decode_function(value: Any, ctx: ReadContext) -> Any:
    from streamlab.functions import UserFunction

    return UserFunction.from_spec(value, trust=ctx.trust)


#: a user function, written as ``{ref: module:name}`` or its source (which needs trust to read)
FUNCTION = _optional(Codec(lambda fn: fn.spec(), _decode_function))


def _factory_codec(what: str) -> Codec:
    def decode(value: Any, ctx: ReadContext) -> Any:
        spec = dict(value)
        kind = spec.pop("kind")
        return getattr(ctx, what)[kind](**spec)

    return Codec(lambda held: held.spec(), decode)


#: a source, written as its ``spec()``, read back by the factory of its kind
SOURCE = _factory_codec("sources")
#: a sink, written as its ``spec()``, read back by the factory of its kind
SINK = _factory_codec("sinks")


class UntrustedRef(str):
    """A table reference read from a spec loaded without trust: its DuckDB query runs sandboxed."""


#: an enrich table's reference (a path or ``duckdb:PATH:QUERY``), marked untrusted when read without trust
TABLE_REF = Codec(lambda ref: str(ref), lambda v, ctx: str(v) if ctx.trust else UntrustedRef(v))


def _detector_classes() -> dict[str, type]:
    from streamlab.detectors import Detector

    found: dict[str, type] = {}
    todo = list(Detector.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        name = cls.__dict__.get("name")
        if isinstance(name, str):
            found[name] = cls
    return found


def _decode_detector(value: Any, ctx: ReadContext) -> Any:
    if isinstance(value, str) and value in _detector_classes():  # a kind written without its mapping
        raise ValueError(
            f"detector {value!r} is written as a name, where a detector is a mapping of its kind and "
            f"parameters; write detector: {{kind: {value}}} (with its parameters beside kind)"
        )
    if not isinstance(value, Mapping):
        return value  # a detector object (Python), checked by the config
    params = dict(value)
    kind = params.pop("kind", None)
    models = _detector_classes()
    if kind not in models:
        raise ValueError(f"unknown detector {kind!r}; {suggest(str(kind), sorted(models), what='detectors')}")
    cls = models[kind]
    takes = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = [p for p in params if p not in takes]
    if unknown:  # (the constructor's TypeError named neither a close name nor the ones it takes)
        raise ValueError(
            f"{cls.__name__} ({kind}) has no parameter {unknown[0]!r}; "
            f"{suggest(str(unknown[0]), takes, what='parameters')}"
        )
    return cls(**params)


#: an anomaly detector model, written as ``{kind: <its name>, **its parameters}``
DETECTOR = Codec(lambda d: d.describe(), _decode_detector)


def _decode_config(value: Any, ctx: ReadContext) -> Any:
    if not isinstance(value, Mapping):
        return value
    params = dict(value)
    kind = params.pop("kind", None)
    found = [k.cls for k in kinds() if k.config and k.kind == kind]
    if not found:
        known = sorted(k.kind for k in kinds() if k.config and k.kind.endswith("_threshold"))
        raise ValueError(f"unknown step config kind {kind!r}; {suggest(str(kind), known, what='kinds')}")
    return from_params(found[0], params, ctx)


#: a nested step config (a detector's threshold filter), written as ``{kind, **its parameters}``
NESTED_CONFIG = _optional(Codec(lambda c: {"kind": c.kind, **params_of(c)}, _decode_config))


def dataclass_list(cls: type) -> Codec:
    """A list of dataclass values (a pattern's steps), each written as its parameters.

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class P:
    ...     a: int
    >>> codec = dataclass_list(P)
    >>> codec.encode([P(1)]), codec.decode([{"a": 2}], ReadContext())
    ([{'a': 1}], (P(a=2),))
    """

    def encode(values: Any) -> Any:
        return [params_of(v) if dataclasses.is_dataclass(v) else v for v in values]

    def decode(values: Any, ctx: ReadContext) -> Any:
        return tuple(from_params(cls, v, ctx) if isinstance(v, Mapping) else v for v in values)

    return Codec(encode, decode, item=cls)


def expressions_in(cls: type, params: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The expressions a spec entry of ``cls`` holds, with their paths in it: the values of its
    :data:`EXPRESSION` fields, in nested dataclass lists too.

    Examples
    --------
    >>> from streamlab.detectors import Pattern
    >>> expressions_in(Pattern, {"key": "k", "steps": [{"name": "a", "where": "x > 1"}], "within": "1m"})
    [('steps[0].where', 'x > 1')]
    """
    from streamlab._step_kinds import param_fields

    found: list[tuple[str, Any]] = []
    for f, spec in param_fields(cls):
        key = spec.key or f.name
        value = params.get(key)
        if spec.codec is EXPRESSION and value is not None:
            found.append((key, value))
        elif spec.codec.item is not None and isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, Mapping):
                    found += [(f"{key}[{i}].{k}", e) for k, e in expressions_in(spec.codec.item, item)]
    return found
