"""Checks of a pipeline spec as data, before anything is built: every problem with its path and a fix.

:func:`check_spec` walks the ``streaming:`` mapping and returns a list of
:class:`~streamlab.errors.SpecProblem` (empty when the spec is well formed); :func:`code_in_spec` lists
what in it would run as code (function sources, SQL that is not a read-only query, standard-library
functions), which needs ``trust=True``. :func:`load_yaml` reads YAML 1.2 booleans (only
``true``/``false``), so ``on:`` is the key ``"on"`` and not ``True``, and reads as text the numbers
YAML 1.1 and 1.2 disagree on (``0755``, ``12:30``, ``1_000``).
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from streamlab import _pyast
from streamlab import agg as agg_module
from streamlab._names import NAME_FIX, PIPELINE_NAME_FIX, name_problem, pipeline_name_problem
from streamlab._parse import FIELD_TYPES, FieldSpec, FieldSpecError
from streamlab._time import parse_duration
from streamlab.errors import ParameterError, PipelineConfigError, SpecProblem, closest, suggest

__all__ = [
    "TYPE_ALIASES",
    "check_spec",
    "code_in_spec",
    "expression_problem",
    "load_yaml",
    "schema_fields",
    "step_output_names",
]

#: Names people write for parse types, and the type they mean.
TYPE_ALIASES: dict[str, str] = {
    "str": "string",
    "text": "string",
    "varchar": "string",
    "int": "int64",
    "integer": "int64",
    "long": "int64",
    "float": "float64",
    "double": "float64",
    "number": "float64",
    "boolean": "bool",
    "datetime": "timestamp",
    "date": "timestamp",
    "time": "timestamp",
    "dict": "object",
    "map": "object",
    "list": "json",
    "any": "json",
}

_COMMON = {"step_id", "kind", "input"}
_SECTION_KEYS = ("name", "time", "sources", "processing", "sinks")
_WINDOW_KEYS = {
    "tumbling": ({"size"}, {"offset"}),
    "sliding": ({"size", "every"}, {"offset"}),
    "session": ({"gap"}, set()),
}
_AGG_KINDS = tuple(n for n in agg_module.__all__ if n != "from_spec")
_YAML_BOOL_WORDS = "on/off/yes/no"


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping of the spec names one key twice (YAML would silently keep only the last value)."""

    def __init__(self, key: Any, first: yaml.Mark, second: yaml.Mark) -> None:
        super().__init__(None, None, f"duplicate key {key!r} (also on line {first.line + 1})", second)
        self.key = key


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans: ``on``, ``off``, ``yes``, ``no`` stay strings; a key given
    twice in one mapping is an error, not a silent overwrite (a merge ``<<:`` may still be overridden)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Mark] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                try:
                    first = seen.setdefault(key, key_node.start_mark)
                except TypeError:  # an unhashable key: the constructor reports it
                    continue
                if first is not key_node.start_mark:
                    raise DuplicateKeyError(key, first, key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


# YAML 1.1 readings that YAML 1.2 dropped, and that turned a hand-written name into another number:
# booleans other than true/false, octal with a leading 0 (0755 -> 493), binary, sexagesimal (12:30 ->
# 750) and digits with underscores (2024_01 -> 202401). Only what both versions read alike stays a
# number; the rest is text as written. Every form read here is also one PyYAML's dumper quotes as text,
# so what Pipeline.to_yaml writes reads back unchanged.
_RESOLVED_ELSEWHERE = ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")
_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in _RESOLVED_ELSEWHERE]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?(?:0|[1-9][0-9]*)|[-+]?0x[0-9a-fA-F]+)$"),
    list("-+0123456789"),
)
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"^(?:[-+]?[0-9]+\.[0-9]*(?:[eE][-+][0-9]+)?|\.[0-9]+(?:[eE][-+][0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


def load_yaml(text: str) -> Any:
    """Read YAML text with YAML 1.2 booleans (so an enrich step's ``on:`` key stays ``"on"``) and only the
    numbers YAML 1.1 and 1.2 read alike.

    ``true``/``false`` are booleans; ``on``, ``yes``, ``off``, ``no`` are text. Integers are decimal
    without a leading zero, or hexadecimal (``0x1F`` is 31), and floats have a point (``1.5``, ``1.0e+3``,
    ``.inf``). What the two versions read differently is text as written: ``0755`` (493 in YAML 1.1, 755
    in 1.2), ``12:30`` (750 in 1.1), ``1_000`` and ``2024_01`` (1000 and 202401 in 1.1), ``0b101``, and
    ``1e3`` (text in 1.1). So a hand-written group id or topic keeps its text; a number of a setting
    written so is reported as text where the setting is checked. :meth:`Pipeline.to_yaml` quotes every
    text a YAML reader could read otherwise, so its specs read back unchanged.

    Examples
    --------
    >>> load_yaml("on: [user_id]\\nearly: true")
    {'on': ['user_id'], 'early': True}
    >>> load_yaml("[0755, 0x1F, 1_000, 12:30, 1e3, 007, 8, -3, 1.5, 1.0e+3]")
    ['0755', 31, '1_000', '12:30', '1e3', '007', 8, -3, 1.5, 1000.0]
    """
    return yaml.load(text, Loader=_Yaml12Loader)


def schema_fields(step_id: str, schema: Any) -> tuple[FieldSpec, ...]:
    """The parse step's fields; every bad entry is reported at once, an unknown type with the type
    it most likely means (``str`` → ``string``, ``datetime`` → ``timestamp``, ``flaot`` → ``float64``).

    Examples
    --------
    >>> schema_fields("parse", {"a": "str", "b": "flaot"})
    Traceback (most recent call last):
    ...
    streamlab.errors.PipelineConfigError: step 'parse' (parse): 2 schema fields: 'a' has unknown type 'str' (did you mean 'string'?), 'b' has unknown type 'flaot' (did you mean 'float64'?). Fix: use 'string' for 'a', 'float64' for 'b'; the types are string, category, int64, float64, bool, timestamp, object, json
    """
    if not isinstance(schema, Mapping):
        raise PipelineConfigError(
            step_id,
            "parse",
            f"the schema is {type(schema).__name__} {str(schema)[:60]!r}, not a mapping of field names to types",
            "pass a dict such as {'timestamp': 'timestamp', 'amount': 'float64'}",
        )
    fields, unknown, other, fixes = [], [], [], []
    for name, entry in schema.items():
        try:
            fields.append(FieldSpec.of(name, entry))
        except ValueError as e:
            typ = entry.get("type") if isinstance(entry, dict) else entry
            if isinstance(typ, str) and typ not in FIELD_TYPES:
                unknown.append((name, typ, closest(typ, FIELD_TYPES, TYPE_ALIASES)))
            elif isinstance(e, FieldSpecError):  # a path: its own fix, not the types
                other.append(e.problem)
                fixes.append(e.fix)
            else:
                other.append(str(e))
    if not unknown and not other:
        return tuple(fields)
    parts = [
        f"{n!r} has unknown type {t!r}" + (f" (did you mean {c!r}?)" if c else "") for n, t, c in unknown
    ]
    many = len(unknown) > 1
    problem = f"{len(unknown)} schema fields: " * many + ", ".join(parts)
    problem = "; ".join([problem, *other] if problem else other)
    fixed = ", ".join(f"{c!r} for {n!r}" for n, _, c in unknown if c)
    types = (f"use {fixed}; " if fixed else "write each field's type as a name; ") + (
        f"the types are {', '.join(FIELD_TYPES)}"
    )
    about_types = unknown or len(fixes) < len(other)  # an entry without a fix of its own: its type
    fix = "; ".join([types] * bool(about_types) + list(dict.fromkeys(fixes)))
    raise PipelineConfigError(step_id, "parse", problem, fix)


def step_output_names() -> dict[str, tuple[str, ...]]:
    """Output names of each processing kind, read from the registered step classes.

    Examples
    --------
    >>> step_output_names()["parse"]
    ('out', 'dead_letter')
    """
    from streamlab._step_kinds import step_classes

    return {kind: tuple(getattr(cls, "output_names", ("out",))) for kind, cls in step_classes().items()}


@functools.cache
def param_keys() -> dict[str, set[str]]:
    """The keys each processing kind reads: its parameter fields' spec keys (``streamlab._step_kinds``),
    so a parameter added to a step is accepted here without being listed twice.

    Examples
    --------
    >>> sorted(param_keys()["dedup"])
    ['id', 'max_ids', 'time', 'ttl']
    """
    from streamlab._step_kinds import param_fields, step_classes

    keys: dict[str, set[str]] = {}
    for kind, cls in step_classes().items():
        keys[kind] = {spec.key or f.name for f, spec in param_fields(cls) if spec.key != ""}
    keys["operator"] = {"type", "config"}  # a step config: streamlab.steps.OperatorStep
    return keys


class _Checker:
    def __init__(self, sources: set[str] | None, sinks: set[str] | None) -> None:
        self.problems: list[SpecProblem] = []
        self.source_kinds = sources
        self.sink_kinds = sinks
        self.sink_inputs: dict[str, Any] = {}  # a sink's step_id -> what it reads (a sink has no output)
        self._bools_seen: set[int] = set()  # mappings whose boolean keys are reported (once each)

    def add(self, path: str, problem: str, fix: str) -> None:
        self.problems.append(SpecProblem(path, problem, fix))

    # -- generic shapes --------------------------------------------------------------------------
    def mapping(self, value: Any, path: str, example: str) -> bool:
        if isinstance(value, dict):
            self.bool_keys(value, path)
            return True
        self.add(path, f"expected a mapping, got {_shown(value)}", f"write it as a mapping, e.g. {example}")
        return False

    def bool_keys(self, value: dict[Any, Any], path: str) -> None:
        if id(value) in self._bools_seen:
            return
        self._bools_seen.add(id(value))
        for k in value:
            if isinstance(k, bool):
                self.add(
                    f"{path}.{k}",
                    f"a key was read by YAML as the boolean {str(k).lower()} (YAML 1.1 reads "
                    f"{_YAML_BOOL_WORDS} as booleans)",
                    "quote the key, e.g. 'on': [user_id], or load the spec with Pipeline.from_yaml",
                )

    def keys(self, value: dict[Any, Any], allowed: set[str], path: str, what: str) -> None:
        self.bool_keys(value, path)
        self.text_keys(value, path, what, allowed)
        for k in value:
            if isinstance(k, str) and k not in allowed:
                self.add(
                    f"{path}.{k}",
                    f"unknown key {k!r} for {what}",
                    suggest(k, sorted(allowed), what="keys").replace(
                        "Known keys:", "remove it, or use one of"
                    ),
                )

    def text_keys(self, value: dict[Any, Any], path: str, what: str, allowed: set[str] | None = None) -> None:
        """Report the keys YAML read as something other than text (``1:``, ``2024-01-01:``, ``null:``),
        which name no parameter; boolean keys are :meth:`bool_keys`'."""
        for k in value:
            if isinstance(k, (str, bool)):
                continue
            shown = _key_text(k)
            fix = "remove it, or write the name it stands for"
            if allowed is not None:
                fix = suggest(shown, sorted(allowed), what="keys").replace(
                    "Known keys:", "remove it, or use one of"
                )
            self.add(
                f"{path}.{shown}",
                f"unknown key {shown} for {what} (YAML reads it as {_read_as(k)}, not as a name)",
                fix,
            )

    def string(self, value: Any, path: str, example: str, optional: bool = False) -> bool:
        if isinstance(value, str) and value:
            return True
        if optional and value is None:
            return True
        self.add(path, f"expected a name, got {_shown(value)}", f"write e.g. {example}")
        return False

    def names(self, value: Any, path: str, example: str, allow_one: bool = True) -> None:
        if allow_one and isinstance(value, str):
            return
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.add(path, f"expected a list of column names, got {_shown(value)}", f"write e.g. {example}")

    def duration(
        self,
        value: Any,
        path: str,
        *,
        positive: bool = False,
        negative_ok: bool = False,
        optional: bool = False,
    ) -> None:
        if value is None and optional:
            return
        try:
            ns = parse_duration(value, what=path)
        except (ValueError, TypeError) as e:
            problem, sep, fix = str(e).removeprefix(f"{path}: ").partition(". Fix: ")
            if sep:  # read, but beyond what timestamps hold: its own problem and fix, not "cannot read"
                self.add(path, problem, fix)
                return
            self.add(
                path,
                f"cannot read {_shown(value)} as a duration",
                "write it like '500ms', '10s', '5m', '1h' or '1d'" + (", or null" if optional else ""),
            )
            return
        if ns < 0 and not negative_ok:
            self.add(path, f"{value!r} is negative", "write a positive duration such as '1h'")
        elif ns == 0 and positive:
            self.add(path, f"{value!r} is zero", "write a positive duration such as '1h'")

    def integer(self, value: Any, path: str, example: str, *, minimum: int = 1) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            self.add(path, f"expected a whole number, got {_shown(value)}", f"write e.g. {example}")
        elif value < minimum:
            self.add(path, f"{value} is below {minimum}", f"write e.g. {example}")

    def boolean(self, value: Any, path: str) -> None:
        if not isinstance(value, bool):
            self.add(path, f"expected true or false, got {_shown(value)}", "write true or false")

    # -- the spec ----------------------------------------------------------------------------------
    def spec(self, data: Any) -> None:
        if not isinstance(data, dict):
            hint = (
                "a path that does not exist is read as YAML text; check the file name"
                if isinstance(data, str)
                else "start the file with 'streaming:' and its sources, processing and sinks"
            )
            self.add("(spec)", f"expected a mapping with a 'streaming:' section, got {_shown(data)}", hint)
            return
        s = data.get("streaming")
        if s is None:
            self.add(
                "streaming",
                "the spec has no top-level 'streaming:' section"
                + (f" (it has {', '.join(map(repr, data))})" if data else ""),
                "put sources, processing and sinks under 'streaming:', as Pipeline.to_yaml() writes them",
            )
            return
        self.top_level_keys(data)
        if not self.mapping(s, "streaming", "streaming: {sources: [...], processing: [...], sinks: [...]}"):
            return
        self.keys(s, set(_SECTION_KEYS), "streaming", "the 'streaming:' section")
        if self.string(s.get("name", "pipeline"), "streaming.name", "name: clickstream"):
            problem = pipeline_name_problem(s.get("name", "pipeline"))
            if problem is not None:
                self.add("streaming.name", f"the name {s['name']!r} {problem}", PIPELINE_NAME_FIX)
        self.string(s.get("time", "timestamp"), "streaming.time", "time: timestamp")
        if not s.get("sources"):
            self.add(
                "streaming.sources",
                "the spec has no sources, so the pipeline would read nothing",
                "add a source under 'streaming:', e.g. 'sources: [{step_id: events, kind: replay, "
                "path: events.jsonl}]', then processing steps and sinks reading it",
            )
        known: list[str] = []  # step references so far: 'parse', 'parse.dead_letter'
        ids: set[str] = set()
        for section in ("sources", "processing", "sinks"):
            items = s.get(section) or []
            if not isinstance(items, list):
                self.add(
                    f"streaming.{section}",
                    f"expected a list, got {_shown(items)}",
                    f"write each entry as a list item: '{section}:' then '- {{step_id: ..., kind: ...}}'",
                )
                continue
            for i, item in enumerate(items):
                self.entry(section, i, item, known, ids)

    def top_level_keys(self, data: dict[Any, Any]) -> None:
        """Keys beside ``streaming:``, which nothing reads (``Pipeline.to_yaml()`` writes none): a
        ``sinks:`` indented one level too little would be dropped without a word."""
        for k in data:
            if k == "streaming":
                continue
            shown = k if isinstance(k, str) else _key_text(k)
            read_as = "" if isinstance(k, str) else f" (YAML reads it as {_read_as(k)})"
            if k in _SECTION_KEYS:
                fix = (
                    f"indent '{k}:' and its entries under 'streaming:' (as far as 'sources:'), where it "
                    "is read"
                )
            else:
                fix = "remove it: a spec has the 'streaming:' section only, as Pipeline.to_yaml() writes it"
            self.add(
                shown,
                f"unknown top-level key {k!r}{read_as} beside 'streaming:', which nothing reads",
                fix,
            )

    def entry(self, section: str, i: int, item: Any, known: list[str], ids: set[str]) -> None:
        path = f"streaming.{section}[{i}]"
        if not isinstance(item, dict):
            self.mapping(item, path, "{step_id: counts, kind: window, input: parse, ...}")
            return
        sid = item.get("step_id")
        self.bool_keys(item, f"{path} (step {sid!r})" if isinstance(sid, str) else path)
        if sid is None:
            self.add(path, "missing 'step_id'", "give every entry a unique name: step_id: my_step")
        elif self.string(sid, f"{path}.step_id", "step_id: counts"):
            path = f"{path} (step {sid!r})"
            if sid in ids:
                self.add(
                    f"{path}.step_id", f"step_id {sid!r} is used twice", "give each entry a unique step_id"
                )
            problem = name_problem(sid)
            if problem is not None:
                self.add(f"{path}.step_id", f"step_id {sid!r} {problem}", NAME_FIX)
        kind = item.get("kind")
        kinds: list[str] | None
        if section == "sources":
            kinds = sorted(self.source_kinds) if self.source_kinds is not None else None
        elif section == "sinks":
            kinds = sorted(self.sink_kinds) if self.sink_kinds is not None else None
        else:
            kinds = sorted(param_keys())
        what = {"sources": "source", "sinks": "sink", "processing": "step"}[section]
        if kind is None:
            self.add(
                path,
                "missing 'kind'",
                f"say what this {what} is: kind: " + ("|".join(kinds) if kinds else "..."),
            )
        elif not isinstance(kind, str) or (kinds is not None and kind not in kinds):
            self.add(
                f"{path}.kind",
                f"unknown {what} kind {_shown(kind)}",
                suggest(str(kind), kinds or [], what="kinds"),
            )
            kind = None
        if section != "sources":
            self.inputs(item, path, known, multiple=section == "processing")
        if section != "processing":  # a parameter given as text that the kind lacks: its factory says so
            about = f"a {kind} {what}" if kind is not None else f"a {what}"
            self.text_keys(item, path, about)
            dead = item.get("dead_letter")
            if isinstance(dead, dict) and "kind" in dead:  # a sink's spec (without: a user's own settings)
                self.bool_keys(dead, f"{path}.dead_letter")
                self.text_keys(dead, f"{path}.dead_letter", "a dead-letter sink")
        if section == "processing" and kind is not None:
            before = len(self.problems)
            self.keys(item, param_keys().get(kind, set()) | _COMMON, path, f"a {kind} step")
            if kind == "operator":
                self.config_keys_outside(item, path, before)
            check_kind = getattr(self, f"step_{kind}", None)  # the step checks itself when built, too
            if check_kind is not None:
                check_kind(item, path)
        if isinstance(sid, str) and sid and section == "sinks":
            ids.add(sid)
            self.sink_inputs[sid] = item.get("input")
        elif isinstance(sid, str) and sid:
            ids.add(sid)
            outs = step_output_names().get(kind or "", ("out",)) if section == "processing" else ("out",)
            if kind == "operator":
                from streamlab.spec import config_types

                cls = config_types().get(str(item.get("type")))
                outs = tuple(getattr(cls, "output_names", ("out",)))
            known.extend(sid if o == "out" else f"{sid}.{o}" for o in outs)

    def inputs(self, item: dict[str, Any], path: str, known: list[str], multiple: bool) -> None:
        if "input" not in item:
            self.add(
                path,
                "missing 'input'",
                "name the step it reads: input: " + (known[0] if known else "<step_id>"),
            )
            return
        inp = item["input"]
        refs = inp if multiple and isinstance(inp, list) and inp else [inp]
        for ref in refs:
            if not isinstance(ref, str):
                self.add(f"{path}.input", f"expected a step_id, got {_shown(ref)}", "write e.g. input: parse")
            elif ref in self.sink_inputs:
                read = self.sink_inputs[ref]
                self.add(
                    f"{path}.input",
                    f"{ref!r} is a sink, which has no output to read",
                    f"read the stream that sink reads: input: {read if isinstance(read, str) else '<step_id>'}",
                )
            elif ref not in known:
                hint = suggest(ref, known, what="steps so far") if known else "list the sources first"
                self.add(
                    f"{path}.input",
                    f"{ref!r} names no earlier step or output",
                    hint + " (a step can only read steps listed before it)",
                )

    def config_keys_outside(self, item: dict[str, Any], path: str, since: int) -> None:
        """Reword the unknown keys of an operator step (``self.problems[since:]``) that are its config's
        parameters, written beside ``type:`` instead of under ``config:``."""
        from streamlab._step_kinds import param_fields
        from streamlab.spec import config_types

        cls = config_types().get(item.get("type"))  # type: ignore[arg-type]
        if cls is None:
            return
        params = {spec.key or f.name for f, spec in param_fields(cls)}
        for i in range(since, len(self.problems)):
            key = self.problems[i].path.rpartition(".")[2]
            if key in params:
                self.problems[i] = SpecProblem(
                    self.problems[i].path,
                    f"{key!r} is a parameter of {cls.__name__}, written beside type: instead of under config:",
                    f"move it under config:, e.g. type: {cls.__name__} then config: {{{key}: ...}}",
                )

    # -- processing kinds --------------------------------------------------------------------------
    def step_operator(self, st: dict[str, Any], path: str) -> None:
        """A step config of ``streamlab.detectors`` (features, rules, detectors, patterns) by class name."""
        from streamlab.spec import config_from_spec, config_types

        types = config_types()
        name = st.get("type")
        if not isinstance(name, str) or name not in types:
            self.add(
                f"{path}.type",
                f"unknown step config type {_shown(name)}",
                suggest(str(name), list(types), what="step configs"),
            )
            return
        config = st.get("config", {})
        if not self.mapping(config, f"{path}.config", "config: {key: user_id, window: 10m}"):
            return
        import dataclasses

        from streamlab._step_kinds import param_fields

        fields = param_fields(types[name])
        known = [spec.key or f.name for f, spec in fields]
        # (as from_params reads them: a config with a spreading field takes any key)
        unknown = [] if "" in known else [k for k in config if k not in known]
        for key in unknown:
            self.add(
                f"{path}.config.{key}",
                f"unknown key {_shown(key)} for {name}",
                f"{suggest(str(key), known, what='keys')}; help({name}) lists them",
            )
        missing = [
            f.name
            for f, spec in fields
            if f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
            and f.init
            and (spec.key or f.name) not in config
        ]
        if missing:
            self.add(
                f"{path}.config",
                f"{name} needs {', '.join(map(repr, missing))}, which the config does not give",
                f"add {missing[0]}: ... under config: (help({name}) says what it is)",
            )
        if unknown or missing:
            return
        try:
            config_from_spec(name, config)
        except ParameterError as e:
            self.add(f"{path}.config.{e.parameter}", f"{name}: {e.problem}", e.fix)
        except PipelineConfigError as e:  # the config's own check: its problem and fix, once each
            self.add(f"{path}.config", f"{name}: {e.problem}", e.fix)
        except (TypeError, ValueError) as e:  # a nested part's (a detector, a threshold, a pattern step)
            text = str(e)
            while text.startswith(f"{name}: "):
                text = text.removeprefix(f"{name}: ")
            problem, sep, fix = text.rpartition("; ")
            if not sep:
                problem, fix = text, f"give {name} the parameters its documentation lists (help({name}))"
            self.add(f"{path}.config", f"{name}: {problem}", fix)

    def step_parse(self, st: dict[str, Any], path: str) -> None:
        schema = st.get("schema")
        if schema is not None and self.mapping(
            schema, f"{path}.schema", "schema: {event_id: string, timestamp: timestamp}"
        ):
            for name, entry in schema.items():
                self.field(name, entry, f"{path}.schema.{name}")
        elif schema is not None and isinstance(schema, list):
            self.problems[-1] = SpecProblem(
                f"{path}.schema",
                f"the schema is a list ({_shown(schema)}), but each field needs a type",
                "write a mapping of field name to type, e.g. schema: {a: string, b: float64}",
            )
        if st.get("time", "timestamp") is not None:
            self.string(st.get("time"), f"{path}.time", "time: timestamp", optional=True)
        if "required" in st:
            self.names(st["required"], f"{path}.required", "required: [event_id]", allow_one=False)
        if "value_column" in st:
            self.string(st["value_column"], f"{path}.value_column", "value_column: value")
        if "max_record_bytes" in st:
            self.integer(st["max_record_bytes"], f"{path}.max_record_bytes", "max_record_bytes: 1000000")

    def field(self, name: Any, entry: Any, path: str) -> None:
        typ = entry.get("type", "string") if isinstance(entry, dict) else entry
        if isinstance(entry, list) and len(entry) == 2:
            typ = entry[0]
        if not isinstance(typ, str):
            self.add(
                path,
                f"expected a type name, got {_shown(entry)}",
                "write e.g. float64, or {type: float64, path: properties.amount}",
            )
            return
        if typ not in FIELD_TYPES:
            self.add(
                path, f"unknown type {typ!r}", suggest(typ, FIELD_TYPES, what="types", aliases=TYPE_ALIASES)
            )
        if isinstance(entry, dict):
            self.keys(entry, {"type", "path"}, path, "a schema field")

    def step_filter(self, st: dict[str, Any], path: str) -> None:
        self.expr_or_fn(st, path, "expr", "expr: 'amount > 100'")

    def step_map(self, st: dict[str, Any], path: str) -> None:
        if "columns" in st:
            if self.mapping(st["columns"], f"{path}.columns", "columns: {total: 'price * qty'}"):
                for k, v in st["columns"].items():
                    if not isinstance(v, str):
                        self.add(
                            f"{path}.columns.{k}",
                            f"expected an expression, got {_shown(v)}",
                            "write e.g. 'price * qty'",
                        )
        else:
            self.expr_or_fn(st, path, None, "columns: {total: 'price * qty'}")
        if "output_columns" in st and st["output_columns"] is not None:
            self.names(
                st["output_columns"], f"{path}.output_columns", "output_columns: [a, b]", allow_one=False
            )

    def expr_or_fn(self, st: dict[str, Any], path: str, expr_key: str | None, example: str) -> None:
        if expr_key and expr_key in st:
            if not isinstance(st[expr_key], str) or not st[expr_key].strip():
                self.add(
                    f"{path}.{expr_key}",
                    f"expected an expression, got {_shown(st[expr_key])}",
                    f"write e.g. {example}",
                )
            return
        if "fn" not in st:
            self.add(
                path,
                "neither an expression nor a function ('fn') is given",
                f"write e.g. {example}, or fn: {{ref: 'mymodule:myfunction'}}",
            )
            return
        fn = st["fn"]
        if isinstance(fn, str):
            fn = {"ref": fn}
        if not isinstance(fn, dict) or not (fn.get("ref") or fn.get("source")):
            self.add(
                f"{path}.fn",
                f"expected {{ref: 'module:name'}} or {{source: ...}}, got {_shown(st['fn'])}",
                "write fn: {ref: 'mymodule:myfunction'}",
            )
        elif fn.get("ref") and not re.fullmatch(r"[\w.]+:[\w.]+", str(fn["ref"])):
            self.add(
                f"{path}.fn.ref",
                f"{fn['ref']!r} is not an import path",
                "write it as module:name, e.g. mypackage.rules:is_big",
            )
        if "per_event" in st:
            self.boolean(st["per_event"], f"{path}.per_event")

    def step_select(self, st: dict[str, Any], path: str) -> None:
        columns = st.get("columns")
        if isinstance(columns, list):  # one input read twice: [a, {a: b}] (steps.SELECT_COLUMNS)
            for i, item in enumerate(columns):
                named = isinstance(item, str) and bool(item)
                pair = (
                    isinstance(item, dict)
                    and len(item) == 1
                    and all(isinstance(k, str) and k and isinstance(v, str) and v for k, v in item.items())
                )
                if not (named or pair):
                    self.add(
                        f"{path}.columns[{i}]",
                        f"expected a column's name or {{input: output}}, got {_shown(item)}",
                        "write columns: [a, {a: b}] to keep a and copy it as b",
                    )
            return
        if self.mapping(columns, f"{path}.columns", "columns: {user_id: user_id, amount: total}"):
            assert isinstance(columns, dict)
            for old, new in columns.items():
                if not isinstance(new, str) or not new:
                    self.add(
                        f"{path}.columns.{old}",
                        f"expected the output column's name, got {_shown(new)}",
                        f"write {old}: {old} to keep the column, or {old}: new_name to rename it",
                    )

    def step_dedup(self, st: dict[str, Any], path: str) -> None:
        self.string(st.get("id", "event_id"), f"{path}.id", "id: event_id")
        self.duration(st.get("ttl"), f"{path}.ttl", positive=True, optional=True)
        if "max_ids" in st:
            self.integer(st["max_ids"], f"{path}.max_ids", "max_ids: 1000000")
        self.string(st.get("time"), f"{path}.time", "time: timestamp", optional=True)

    def step_key_by(self, st: dict[str, Any], path: str) -> None:
        keys = st.get("keys")
        if not keys:
            self.add(f"{path}.keys", "no key column given", "write e.g. keys: [user_id]")
        else:
            self.names(keys, f"{path}.keys", "keys: [user_id]", allow_one=False)

    def step_union(self, st: dict[str, Any], path: str) -> None:
        if not isinstance(st.get("input"), list) or len(st["input"]) < 2:
            self.add(
                f"{path}.input", "a union reads two or more streams", "write e.g. input: [clicks, views]"
            )

    def step_window(self, st: dict[str, Any], path: str) -> None:
        w = st.get("window")
        if w is None:
            self.add(path, "missing 'window'", "add e.g. window: {kind: tumbling, size: 1m}")
        elif self.mapping(w, f"{path}.window", "{kind: tumbling, size: 1m}"):
            kind = w.get("kind")
            if not isinstance(kind, str) or kind not in _WINDOW_KEYS:
                self.add(
                    f"{path}.window.kind",
                    f"unknown window kind {_shown(kind)}",
                    suggest(str(kind), list(_WINDOW_KEYS), what="kinds"),
                )
            else:
                need, extra = _WINDOW_KEYS[kind]
                for k in sorted(need):
                    if k not in w:
                        self.add(f"{path}.window", f"a {kind} window needs {k!r}", f"add {k}: 1m")
                    else:
                        self.duration(w[k], f"{path}.window.{k}", positive=True)
                for k in sorted(extra & set(w)):
                    self.duration(w[k], f"{path}.window.{k}")
                self.keys(w, need | extra | {"kind"}, f"{path}.window", f"a {kind} window")
        aggs = st.get("aggregate")
        if not aggs:
            self.add(
                f"{path}.aggregate",
                "the window has no aggregators, so it would compute nothing",
                "add e.g. aggregate: [{kind: count}] (in Python: .window(...).agg(agg.count()))",
            )
        elif not isinstance(aggs, list):
            self.add(
                f"{path}.aggregate",
                f"expected a list, got {_shown(aggs)}",
                "write e.g. aggregate: [{kind: count}, {kind: sum, column: amount}]",
            )
        else:
            for j, a in enumerate(aggs):
                self.aggregator(a, f"{path}.aggregate[{j}]")
        if st.get("key") is not None:
            self.names(st["key"], f"{path}.key", "key: [event_type]")
        for k in ("delay", "lateness"):
            if k in st:
                self.duration(st[k], f"{path}.{k}")
        if st.get("idle_timeout") is not None:
            self.duration(st["idle_timeout"], f"{path}.idle_timeout", positive=True)
        if st.get("watermark_by") not in (None, "auto"):
            self.names(st["watermark_by"], f"{path}.watermark_by", "watermark_by: [partition], or auto")
        if "time" in st:
            self.string(st["time"], f"{path}.time", "time: timestamp")
        if "early" in st:
            self.boolean(st["early"], f"{path}.early")

    def aggregator(self, a: Any, path: str) -> None:
        if not self.mapping(a, path, "{kind: sum, column: amount}"):
            return
        kind = a.get("kind")
        if not isinstance(kind, str) or kind not in _AGG_KINDS:
            self.add(
                f"{path}.kind",
                f"unknown aggregator {_shown(kind)}",
                suggest(str(kind), _AGG_KINDS, what="aggregators"),
            )
            return
        if kind != "count" and not isinstance(a.get("column"), str):
            self.add(
                path,
                f"the {kind} aggregator needs a column",
                f"add column: amount, e.g. {{kind: {kind}, column: amount}}",
            )
        for name, fix in (("column", "column: amount"), ("name", "name: total")):
            value = a.get(name)
            named = isinstance(value, str) and value.strip()
            if (
                value is None
                or named
                or (name == "column" and kind != "count" and not isinstance(value, str))
            ):
                continue  # null: the default; a missing column is reported above
            self.add(
                f"{path}.{name}",
                f"expected {'a column' if name == 'column' else 'an output column'} name, got {_shown(value)}",
                f"write {fix} (one name, as text)"
                + (", or remove it" if name == "name" or kind == "count" else ""),
            )
        if kind == "quantile":
            for name, example in (("q", "0.95"), ("relative_accuracy", "0.01")):
                value = a.get(name)
                if name == "q" and value is None:
                    self.add(path, "the quantile aggregator needs q", "add q: 0.95")
                elif value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                    with contextlib.suppress(TypeError, ValueError):
                        example = str(float(value)) if isinstance(value, str) else example
                    self.add(
                        f"{path}.{name}",
                        f"expected a number, got {_shown(value)}",
                        f"write {name}: {example} (a number, without quotes)",
                    )
                elif value is not None and not (0.0 <= value <= 1.0 if name == "q" else 0.0 < value < 1.0):
                    self.add(
                        f"{path}.{name}",
                        f"{name} {_shown(value)} is out of range: it must be within "
                        f"{'[0, 1]' if name == 'q' else '(0, 1)'}",
                        f"write {name}: {example}",
                    )
        allowed = {"kind", "column", "name"} | ({"q", "relative_accuracy"} if kind == "quantile" else set())
        self.keys(a, allowed, path, f"a {kind} aggregator")

    def step_interval_join(self, st: dict[str, Any], path: str) -> None:
        if not isinstance(st.get("input"), list) or len(st["input"]) != 2:
            self.add(
                f"{path}.input", "an interval join reads two streams", "write input: [left_step, right_step]"
            )
        self.join_on(st, path, "on: [user_id]")
        for k in ("lower", "upper"):
            if k not in st:
                self.add(path, f"missing {k!r}", f"add {k}: {'-5m' if k == 'lower' else '5m'}")
            else:
                self.duration(st[k], f"{path}.{k}", negative_ok=True)
        if "delay" in st:
            self.duration(st["delay"], f"{path}.delay")
        for k in ("left_time", "right_time"):
            if k in st:
                self.string(st[k], f"{path}.{k}", f"{k}: timestamp")
        suffixes = st.get("suffixes", ["", "_right"])
        if not (
            isinstance(suffixes, (list, tuple))
            and len(suffixes) == 2
            and all(isinstance(x, str) for x in suffixes)
        ):
            self.add(
                f"{path}.suffixes",
                f"expected two strings, got {_shown(suffixes)}",
                "write e.g. suffixes: ['', _right] (added to the left and the right side's clashing columns)",
            )

    def step_enrich(self, st: dict[str, Any], path: str) -> None:
        self.join_on(st, path, "on: [user_id]")
        table = st.get("table")
        if not isinstance(table, str) or not table:
            self.add(
                f"{path}.table",
                f"expected a file path or 'duckdb:PATH:QUERY', got {_shown(table)}",
                "write e.g. table: users.parquet",
            )
        elif table.startswith("duckdb:") and table.count(":") < 2:
            self.add(
                f"{path}.table",
                f"{table!r} has no query",
                "write duckdb:PATH:QUERY, e.g. duckdb:ref.duckdb:select * from users",
            )
        if st.get("how", "left") not in ("left", "inner"):
            self.add(f"{path}.how", f"how={st['how']!r}", "write how: left (keep every event) or how: inner")

    def join_on(
        self, st: dict[Any, Any], path: str, example: str
    ) -> None:  # keys: YAML 1.1 reads on: as True
        if "on" in st:
            self.names(st["on"], f"{path}.on", example)
        elif True not in st:  # a True key is reported once, by bool_keys
            self.add(path, "missing 'on' (the key columns to join on)", f"add {example}")


def _key_text(key: Any) -> str:
    """A key as a spec writes it: ``1``, ``2024-01-01``, ``null``."""
    if key is None:
        return "null"
    if isinstance(key, (datetime.date, datetime.datetime)):
        return key.isoformat()
    return str(key)


def _read_as(key: Any) -> str:
    """What YAML read a key that is not text as."""
    if key is None:
        return "null"
    if isinstance(key, (datetime.date, datetime.datetime)):
        return "a date"
    if isinstance(key, (int, float)):
        return "a number"
    return type(key).__name__


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60] + '...' if len(text) > 60 else text}"


def check_spec(
    data: Any, sources: set[str] | None = None, sinks: set[str] | None = None
) -> list[SpecProblem]:
    """Every problem of a spec as data (shape, kinds, references, durations, types), with paths.

    ``sources``/``sinks`` are the known kinds (None: not checked).

    Examples
    --------
    >>> spec = {"streaming": {"sources": [{"step_id": "e", "kind": "replay", "path": "e.jsonl"}],
    ...         "processing": [{"step_id": "p", "kind": "parse", "input": "e", "schema": {"id": "str"}},
    ...                        {"step_id": "d", "kind": "dedup", "input": "p", "ttl": "-1h"}]}}
    >>> for problem in check_spec(spec):
    ...     print(problem)
    streaming.processing[0] (step 'p').schema.id: unknown type 'str'. Fix: did you mean 'string'? Known types: 'string', 'category', 'int64', 'float64', 'bool', 'timestamp', 'object', 'json'
    streaming.processing[1] (step 'd').ttl: '-1h' is negative. Fix: write a positive duration such as '1h'
    """
    c = _Checker(sources, sinks)
    c.spec(data)
    return c.problems


def _stdlib_module(ref: str) -> bool:
    top = ref.partition(":")[0].split(".")[0]
    return top in sys.stdlib_module_names or top == "builtins"


# What an untrusted expression may call or reach: pandas' Series accessors and methods that compute,
# never those that write (to_csv, to_pickle), call back into Python (apply, pipe) or reach internals.
_SAFE_ATTRIBUTES = frozenset(
    [
        "str",
        "dt",
        "cat",
        "abs",
        "round",
        "clip",
        "between",
        "isin",
        "isna",
        "notna",
        "isnull",
        "notnull",
        "fillna",
        "astype",
        "len",
        "lower",
        "upper",
        "strip",
        "lstrip",
        "rstrip",
        "contains",
        "startswith",
        "endswith",
        "match",
        "fullmatch",
        "replace",
        "slice",
        "split",
        "get",
        "zfill",
        "pad",
        "year",
        "month",
        "day",
        "hour",
        "minute",
        "second",
        "microsecond",
        "nanosecond",
        "dayofweek",
        "weekday",
        "dayofyear",
        "quarter",
        "date",
        "time",
        "floor",
        "ceil",
        "total_seconds",
        "days",
        "seconds",
        "sum",
        "min",
        "max",
        "mean",
        "median",
        "std",
        "var",
        "count",
        "nunique",
        "any",
        "all",
        "where",
        "mask",
        "shift",
        "diff",
        "cumsum",
        "rank",
        "eq",
        "ne",
        "lt",
        "le",
        "gt",
        "ge",
        "add",
        "sub",
        "mul",
        "div",
        "truediv",
        "floordiv",
        "mod",
        "pow",
    ]
)


def expression_problem(expr: Any) -> str | None:
    """Why a filter/map expression from a spec could do more than compute (None when it cannot).

    pandas evaluates ``x.to_csv('f')`` or ``x.__class__`` inside an expression, so an expression from an
    untrusted spec may use columns, constants, operators and the computing methods in
    ``_SAFE_ATTRIBUTES`` only.

    Examples
    --------
    >>> expression_problem("amount > 10 and event_type.str.startswith('click')") is None
    True
    >>> expression_problem("amount.to_csv('/tmp/x')")
    "it calls 'to_csv', which is not one of the computing methods an untrusted spec may use"
    """
    import ast

    if not isinstance(expr, str):
        return None
    try:
        tree = _pyast.parse(_pyast.unquote_backticks(expr)[0], mode="eval")  # `a b`: a column's name
    except SyntaxError:
        return None  # reported as a bad expression when the step is built
    for node in ast.walk(tree):
        name = (
            node.attr if isinstance(node, ast.Attribute) else node.id if isinstance(node, ast.Name) else None
        )
        if name is not None and name.startswith("_"):
            return f"it reaches {name!r}, a Python internal"
        if isinstance(node, ast.Attribute) and node.attr not in _SAFE_ATTRIBUTES:
            return (
                f"it calls {node.attr!r}, which is not one of the computing methods an untrusted spec may use"
            )
        if isinstance(
            node, (ast.Lambda, ast.NamedExpr, ast.ListComp, ast.GeneratorExp, ast.DictComp, ast.SetComp)
        ):
            return "it holds Python code (a lambda, comprehension or assignment)"
    return None


def code_in_spec(data: dict[str, Any], read_only_problem: Callable[[str], str | None]) -> list[SpecProblem]:
    """What in a (well-formed) spec would run as code: one problem per item, naming it and where it is.

    Function sources run Python; an enrich query that is not a single read-only SELECT could write
    files or load extensions; a function referenced in the standard library (``os:system``) could run
    commands. Functions referenced by import path in your own modules are not listed: the spec only
    names code that is already installed.

    Examples
    --------
    >>> spec = {"streaming": {"processing": [{"step_id": "f", "kind": "filter", "input": "e",
    ...         "fn": {"source": "lambda e: True"}}]}}
    >>> print(code_in_spec(spec, lambda q: None)[0].path)
    streaming.processing[0] (step 'f').fn.source
    """
    found: list[SpecProblem] = []
    for i, st in enumerate(data["streaming"].get("processing") or []):
        path = f"streaming.processing[{i}] (step {st.get('step_id')!r})"
        fn = st.get("fn")
        fn = {"ref": fn} if isinstance(fn, str) else fn
        if isinstance(fn, dict) and fn.get("source") and not fn.get("ref"):
            first = str(fn["source"]).strip().splitlines()[0][:80]
            found.append(
                SpecProblem(
                    f"{path}.fn.source",
                    f"the spec holds Python code that would run when it is loaded: {first!r}",
                    "load it with trust=True (streamlab run/export --trust) only if you wrote or reviewed it; "
                    "or move the function into a module and write fn: {ref: 'mymodule:myfunction'}",
                )
            )
        elif isinstance(fn, dict) and fn.get("ref") and _stdlib_module(str(fn["ref"])):
            found.append(
                SpecProblem(
                    f"{path}.fn.ref",
                    f"the spec calls the standard-library function {fn['ref']!r}, which can reach the "
                    "operating system",
                    "load it with trust=True (--trust) if that is intended; or reference a function in your own module",
                )
            )
        exprs = [("expr", st.get("expr"))] if st.get("kind") == "filter" else []
        if st.get("kind") == "map" and isinstance(st.get("columns"), dict):
            exprs += [(f"columns.{k}", v) for k, v in st["columns"].items()]
        if st.get("kind") == "operator" and isinstance(st.get("config"), dict):
            # a rule's expr, a pattern step's where: evaluated on batches as filters are
            from streamlab._step_codecs import expressions_in
            from streamlab._step_kinds import config_kinds

            cls = config_kinds().get(str(st.get("type")))
            if cls is not None:
                exprs += [(f"config.{k}", e) for k, e in expressions_in(cls, st["config"])]
        for where, expr in exprs:
            why = expression_problem(expr)
            if why:
                found.append(
                    SpecProblem(
                        f"{path}.{where}",
                        f"the expression {expr!r} could do more than compute: {why}",
                        "write it with columns, constants, operators and methods such as .str.contains or "
                        ".isna(); or load the spec with trust=True (--trust) if you wrote or reviewed it",
                    )
                )
        table = st.get("table")
        if st.get("kind") == "enrich" and isinstance(table, str) and table.startswith("duckdb:"):
            _, db, query = table.split(":", 2)
            why = read_only_problem(query)
            if why:
                found.append(
                    SpecProblem(
                        f"{path}.table",
                        f"the DuckDB query on {db} would run when the spec is loaded, and {why}",
                        "write a single SELECT that reads tables of that database; or load the spec with "
                        "trust=True (--trust) if you wrote or reviewed the query",
                    )
                )
    return found
