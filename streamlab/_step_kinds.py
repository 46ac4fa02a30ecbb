"""One definition per step kind: a step's dataclass fields are its parameters.

Every step (``streamlab.steps``) and every step config (the features, rules, detectors, thresholds
and patterns of ``streamlab.detectors``) is a frozen dataclass registered here with
:func:`step_kind`. From that one definition come its spec (:func:`params_of`: each field written
through its codec), its reading back (:func:`from_params`), its diagram label (:func:`label_of`) and
the list of kinds the exporters, the spec checker and the tests walk (:func:`kinds`). A field is a
parameter unless declared with :func:`internal`; :func:`param` gives it a spec key other than its
name, a codec (durations, windows, aggregators, functions, sources, sinks: ``streamlab._step_codecs``),
a condition for writing it, or how a spec that omits it fills it from the pipeline.

Examples
--------
>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Greeting:
...     name: str
...     loud: bool = param(default=False, when=lambda g: g.loud)
>>> Greeting.kind = "doc_greeting"
>>> _ = step_kind(Greeting)
>>> params_of(Greeting("ada", loud=True)), params_of(Greeting("ada"))
({'name': 'ada', 'loud': True}, {'name': 'ada'})
>>> from_params(Greeting, {"name": "bob"})
Greeting(name='bob', loud=False)
>>> label_of(Greeting("ada"))
'doc_greeting'
>>> _ = unregister(Greeting)
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field
from typing import Any, TypeVar

from streamlab.errors import ParameterError, check_flag, closest

__all__ = [
    "IDENTITY",
    "Codec",
    "ReadContext",
    "StepKind",
    "config_kinds",
    "entry_of",
    "from_params",
    "internal",
    "kinds",
    "label_of",
    "param",
    "param_fields",
    "params_of",
    "step_classes",
    "step_kind",
    "unregister",
]

T = TypeVar("T")
_META = "streamlab.param"


@dataclass(frozen=True)
class ReadContext:
    """What reading a step back from a spec knows besides the step's own entry.

    ``trust``: the spec may hold code (function sources, any DuckDB query); ``step_id``: the step
    being read; ``time``: the pipeline's
    event-time column; ``columns``: the first input's columns (None when unknown); ``sources`` and
    ``sinks``: the factories of source and sink kinds (``streamlab.spec``).
    """

    trust: bool = False
    step_id: str = ""
    time: str = "timestamp"
    columns: tuple[str, ...] | None = None
    sources: Mapping[str, Callable[..., Any]] = field(default_factory=dict)
    sinks: Mapping[str, Callable[..., Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class Codec:
    """How one field's value is written to a spec (``encode``) and read back (``decode``).

    Examples
    --------
    >>> names = Codec(list, lambda v, ctx: tuple(v))
    >>> names.encode(("a", "b")), names.decode(["a"], ReadContext())
    (['a', 'b'], ('a',))
    """

    encode: Callable[[Any], Any]
    decode: Callable[[Any, ReadContext], Any]
    #: the dataclass of each item, for a list of dataclass values (a pattern's steps)
    item: type | None = None


#: plain data, written and read as it is (lists stay lists, tuples become lists in YAML)
IDENTITY = Codec(lambda v: v, lambda v, ctx: v)


@dataclass(frozen=True)
class _Param:
    key: str | None
    codec: Codec
    when: Callable[[Any], bool] | None
    missing: Callable[[ReadContext], Any] | None


def param(
    *,
    key: str | None = None,
    codec: Codec = IDENTITY,
    when: Callable[[Any], bool] | None = None,
    missing: Callable[[ReadContext], Any] | None = None,
    default: Any = MISSING,
    default_factory: Callable[[], Any] | Any = MISSING,
    compare: bool = True,
) -> Any:
    """A dataclass field that is a parameter, with its spec ``key`` (default: the field's name), its
    ``codec``, ``when`` (written only when ``when(step)`` holds) and ``missing`` (the value a spec
    that omits the key gets, from the :class:`ReadContext`; default: the field's default).
    ``key=""`` spreads the encoded mapping into the spec entry, and decodes from the whole entry (an
    operator step's ``type`` and ``config``).

    Examples
    --------
    >>> from dataclasses import dataclass, fields
    >>> @dataclass(frozen=True)
    ... class S:
    ...     ttl_ns: int | None = param(key="ttl", default=None)
    >>> fields(S)[0].metadata["streamlab.param"].key
    'ttl'
    """
    meta = {_META: _Param(key, codec, when, missing)}
    if default_factory is not MISSING:
        return field(default_factory=default_factory, compare=compare, metadata=meta)
    return field(default=default, compare=compare, metadata=meta)


def internal(*, default: Any = MISSING, compare: bool = True) -> Any:
    """A dataclass field that is not a parameter (derived from the parameters, or runtime context).

    Examples
    --------
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class S:
    ...     cache: object = internal(default=None, compare=False)
    >>> param_fields(S)
    []
    """
    return field(default=default, compare=compare, metadata={_META: None})


#: fields every step has that are its place in the graph, not parameters
_GRAPH_FIELDS = ("step_id", "inputs")


def param_fields(cls: type) -> list[tuple[dataclasses.Field[Any], _Param]]:
    """The parameter fields of a registered dataclass, with their spec settings, in field order."""
    out = []
    for f in dataclasses.fields(cls):
        if f.name in _GRAPH_FIELDS:
            continue
        spec = f.metadata.get(_META, _Param(None, IDENTITY, None, None))
        if spec is not None:
            out.append((f, spec))
    return out


@dataclass(frozen=True)
class StepKind:
    """A registered kind: its name, class and diagram label.

    ``config`` is True for the step configs of ``streamlab.detectors`` (written in a spec as
    ``kind: operator`` with ``type:`` their class name, inside an ``OperatorStep``).
    """

    kind: str
    cls: type
    label: Callable[[Any], str]
    config: bool


# The registration is held by the class itself (not in a module-level table), so that it is one with
# the class whatever imports the module again (pytest's importlib mode does, for doctests).
_ENTRY = "_step_kind_entry"


def _class_name(obj: Any) -> str:
    return type(obj).__name__


def step_kind(
    cls: type[T] | None = None, *, label: Callable[[Any], str] | None = None, config: bool = False
) -> Any:
    """Register a frozen dataclass step (or, with ``config=True``, a step config) under its ``kind``.

    ``label(step)`` is the "what" of the diagram and of errors naming the step (default: the kind; for
    a config, its class: the label of the ``OperatorStep`` holding it). Use as ``@step_kind`` or
    ``@step_kind(label=...)`` above ``@dataclass(frozen=True)``.
    """

    def register(c: type[T]) -> type[T]:
        if not dataclasses.is_dataclass(c):
            raise TypeError(f"step_kind: {c.__name__} must be a dataclass (its fields are its parameters)")
        kind = str(getattr(c, "kind", "") or c.__name__)
        default = _class_name if config else (lambda step: kind)
        setattr(c, _ENTRY, StepKind(kind, c, label or default, config))
        flags = [f.name for f in dataclasses.fields(c) if f.type in (bool, "bool")]
        if flags:
            # a flag given as text ('no') would be true; from a spec from_params says where it is
            init = c.__init__

            @functools.wraps(init)
            def checked_init(self: Any, *args: Any, **kwargs: Any) -> None:
                init(self, *args, **kwargs)
                for name in flags:
                    try:
                        check_flag(type(self).__name__, name, getattr(self, name))
                    except ParameterError as e:
                        step_id = getattr(self, "step_id", None)
                        if not isinstance(step_id, str):
                            raise
                        # which of a pipeline's steps (two windows are both a WindowStep)
                        raise ParameterError(
                            e.owner, e.parameter, f"{e.problem}, in step {step_id!r}", e.fix
                        ) from None

            c.__init__ = checked_init  # type: ignore[method-assign]
        return c

    return register if cls is None else register(cls)


def unregister(cls: type) -> StepKind | None:
    """Remove a registration (tests and doctests that register a throwaway kind)."""
    entry: StepKind | None = cls.__dict__.get(_ENTRY)
    if entry is not None:
        delattr(cls, _ENTRY)
    return entry


def kinds() -> list[StepKind]:
    """Every registered kind (steps first, then step configs), loading the built-in ones.

    Examples
    --------
    >>> from streamlab._step_kinds import kinds
    >>> {"parse", "window", "operator"} <= {k.kind for k in kinds() if not k.config}
    True
    """
    found: dict[type, StepKind] = {}
    todo = list(_roots())
    while todo:
        cls = todo.pop(0)
        todo.extend(cls.__subclasses__())
        entry = cls.__dict__.get(_ENTRY)
        if entry is not None:
            found[cls] = entry
    return sorted(found.values(), key=lambda k: k.config)


def config_kinds() -> dict[str, type]:
    """The registered step configs by class name (the ``type:`` of an operator step in a spec).

    Examples
    --------
    >>> from streamlab._step_kinds import config_kinds
    >>> "VelocityFeature" in config_kinds() and "Pattern" in config_kinds()
    True
    """
    return {k.cls.__name__: k.cls for k in kinds() if k.config}


def step_classes() -> dict[str, type]:
    """The processing step classes a spec can name, by kind (sources and sinks have their sections).

    Examples
    --------
    >>> from streamlab._step_kinds import step_classes
    >>> sorted(step_classes())[:3]
    ['dedup', 'enrich', 'filter']
    """
    return {k.kind: k.cls for k in kinds() if not k.config and k.kind not in ("source", "sink")}


def entry_of(obj: Any) -> StepKind:
    """The registration of a step or config (or of its class), along the class hierarchy."""
    cls = obj if isinstance(obj, type) else type(obj)
    for c in cls.__mro__:
        entry = c.__dict__.get(_ENTRY)
        if entry is not None:
            return entry  # type: ignore[no-any-return]
    raise KeyError(
        f"{cls.__name__} is not a registered step kind; decorate it with @step_kind "
        "(streamlab._step_kinds) so its spec, reading back and label are defined"
    )


def params_of(obj: Any) -> dict[str, Any]:
    """The spec parameters of a step or config: each parameter field through its codec."""
    out: dict[str, Any] = {}
    for f, spec in param_fields(type(obj)):
        if spec.when is not None and not spec.when(obj):
            continue
        value = spec.codec.encode(getattr(obj, f.name))
        if spec.key == "":
            out.update(value)
        else:
            out[spec.key or f.name] = value
    return out


def from_params(cls: type[T], params: Mapping[str, Any], ctx: ReadContext | None = None, **graph: Any) -> T:
    """Build ``cls`` from spec parameters (the inverse of :func:`params_of`); ``graph`` gives
    ``step_id`` and ``inputs`` for steps. Unknown keys raise a ``TypeError`` naming them."""
    ctx = ctx or ReadContext()
    fields = param_fields(cls)
    known = {spec.key or f.name for f, spec in fields}
    unknown = sorted(set(params) - known)
    if unknown and "" not in {spec.key for _, spec in fields}:
        near = [n for n in (closest(u, known) for u in unknown) if n is not None]
        hint = f"did you mean {', '.join(map(repr, near))}? " if near else ""
        raise TypeError(f"{cls.__name__}: unknown argument(s) {unknown}; {hint}it takes {sorted(known)}")
    kwargs: dict[str, Any] = {}
    for f, spec in fields:
        key = spec.key or f.name
        if spec.key == "":
            kwargs[f.name] = spec.codec.decode(dict(params), ctx)
        elif key in params:
            if f.type in (bool, "bool") and spec.codec is IDENTITY:  # quoted 'no' would be true
                check_flag(cls.__name__, key, params[key])
            kwargs[f.name] = spec.codec.decode(params[key], ctx)
        elif spec.missing is not None:
            kwargs[f.name] = spec.missing(ctx)
    return cls(**graph, **kwargs)


def label_of(step: Any) -> str:
    """What a step (or a step config) is, for the diagram, the HTML table and the errors naming it: its
    registered label (a detector, feature, rule, drift or pattern step's: its config's class, a detect
    step's: its detector's).

    Examples
    --------
    >>> from streamlab import Pipeline
    >>> from streamlab._step_kinds import label_of
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b"{}"]))
    >>> _ = p.parse()
    >>> label_of(p.steps["source"]), label_of(p.steps["parse"])
    ('ListSource', 'parse')
    """
    return entry_of(step).label(step)


def _roots() -> tuple[type, ...]:
    """The bases whose registered subclasses :func:`kinds` lists: steps and step configs (imported
    here, on first use; the kinds register themselves when their modules are imported)."""
    import streamlab.detectors  # noqa: F401  (registers the configs)
    from streamlab.detectors._common import StepConfig
    from streamlab.steps import Step

    return (Step, StepConfig)


def names_of(value: Sequence[str] | str) -> tuple[str, ...]:
    """A column name or list of names as a tuple (specs may write one name for a list of one)."""
    return (value,) if isinstance(value, str) else tuple(value)
