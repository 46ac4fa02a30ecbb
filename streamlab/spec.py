"""The pipeline as a YAML spec, and as a diagram (Mermaid text or HTML).

The spec has one ``streaming:`` section: ``sources`` (where events come from: topics, files),
``processing`` (the steps in order, each with its ``step_id``, inputs and parameters) and ``sinks``.
"""

from __future__ import annotations

import functools
import html
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from streamlab._spec_check import DuplicateKeyError, check_spec, code_in_spec, load_yaml
from streamlab._sql import read_only_problem
from streamlab._step_kinds import ReadContext, config_kinds, from_params, label_of, params_of, step_classes
from streamlab.errors import (
    ParameterError,
    PipelineConfigError,
    SpecError,
    SpecProblem,
    UntrustedSpecError,
    check_path,
)
from streamlab.io import Sink, Source
from streamlab.pipeline import Pipeline, Stream
from streamlab.steps import OperatorStep, SinkStep, SourceStep, WindowStep

if TYPE_CHECKING:
    from streamlab.clock import Clock
    from streamlab.io import SourceReader

_T = TypeVar("_T")

__all__ = [
    "check_spec_data",
    "load_spec",
    "pipeline_from_dict",
    "pipeline_from_yaml",
    "pipeline_to_mermaid",
    "pipeline_to_yaml",
    "register_sink",
    "register_source",
]

SourceFactory = Callable[..., Source]
"""Builds a source from a spec entry's parameters: ``factory(**params) -> Source``."""
SinkFactory = Callable[..., Sink]
"""Builds a sink from a spec entry's parameters: ``factory(**params) -> Sink``."""

# Two registries: the users' kinds, and the built-in ones (loaded on first use, whatever the users
# registered before). A user's kind wins over a built-in kind of the same name.
_SOURCES: dict[str, SourceFactory] = {}
_SINKS: dict[str, SinkFactory] = {}
_BUILTIN_SOURCES: dict[str, SourceFactory] = {}
_BUILTIN_SINKS: dict[str, SinkFactory] = {}


def register_source(kind: str, factory: SourceFactory) -> None:
    """Teach ``from_yaml`` a source kind: ``factory(**params) -> Source``.

    Built-in kinds (``replay``, ``kafka``, ``synthetic``, ...) stay available. Registering a built-in
    kind's name replaces it for this process, e.g. to give ``kafka`` your own defaults.

    Examples
    --------
    >>> from streamlab.testing import ListSource
    >>> register_source('my_source', lambda rows, **kw: ListSource(rows, **kw))
    """
    _SOURCES[kind] = factory


def register_sink(kind: str, factory: SinkFactory) -> None:
    """Teach ``from_yaml`` a sink kind: ``factory(**params) -> Sink``.

    Built-in kinds stay available; registering a built-in kind's name replaces it for this process. A
    ``dead_letter`` parameter written as a sink's spec (a mapping with its ``kind``, as ``to_yaml`` nests
    it) reaches the factory as that sink, for source and sink kinds alike; a mapping without a ``kind``
    reaches a user's factory as written.

    Examples
    --------
    >>> from streamlab.testing import ListSink
    >>> register_sink('my_sink', lambda **kw: ListSink())
    """
    _SINKS[kind] = factory


def _builtin_factories() -> None:
    """Fill the built-in registries once (connectors and datasets are imported only now)."""
    if _BUILTIN_SOURCES:
        return
    from streamlab.recording import RecordingSink
    from streamlab.sinks import DuckDBSink, JsonLinesSink, ListSink, ParquetSink
    from streamlab.sources import ReplaySource

    # a spec names the file ``path``: a path that is not text is reported there, not as ``data``
    sources: dict[str, SourceFactory] = {
        "replay": lambda path, **kw: ReplaySource(check_path("ReplaySource", "path", path), **kw)
    }
    sinks: dict[str, SinkFactory] = {
        "duckdb": lambda **kw: DuckDBSink(**kw),
        "parquet": lambda **kw: ParquetSink(**kw),
        "jsonl": lambda **kw: JsonLinesSink(**kw),
        "list": lambda: ListSink(),  # it takes no parameter: a misplaced one is reported, not dropped
        "recording": lambda **kw: RecordingSink(**kw),
    }
    for module in ("streamlab.connectors", "streamlab.datasets"):
        try:
            mod = __import__(module, fromlist=["register_spec_kinds"])
            hook = getattr(mod, "register_spec_kinds", None)
            if hook is not None:
                hook(sources.__setitem__, sinks.__setitem__)
        except ImportError:  # pragma: no cover - optional parts
            pass
    _BUILTIN_SINKS.update(sinks)
    _BUILTIN_SOURCES.update(sources)  # last: it marks the registries as loaded


def _source_factories() -> dict[str, SourceFactory]:
    _builtin_factories()
    return {
        k: _reading_dead_letter(k, f, users=k in _SOURCES)
        for k, f in {**_BUILTIN_SOURCES, **_SOURCES}.items()
    }


def _sink_factories() -> dict[str, SinkFactory]:
    _builtin_factories()
    return {k: _reading_dead_letter(k, f, users=k in _SINKS) for k, f in {**_BUILTIN_SINKS, **_SINKS}.items()}


def _reading_dead_letter(kind: str, factory: Callable[..., _T], *, users: bool = False) -> Callable[..., _T]:
    """``factory`` given a sink for a ``dead_letter`` parameter written as that sink's ``spec()`` (a
    mapping with its ``kind``, as ``to_yaml`` nests it), for every source and sink kind that takes one
    (ReplaySource, TimestreamSink, BigQuerySink, KinesisSink, a user's); a dead-letter sink's own
    ``dead_letter`` is read the same way. A user's factory (``users``) given a mapping without a
    ``kind`` gets it as written: it may read its own ``dead_letter`` settings.

    Examples
    --------
    >>> from streamlab.sinks import JsonLinesSink
    >>> make = _reading_dead_letter("kind", lambda **kw: kw["dead_letter"])
    >>> make(dead_letter={"kind": "jsonl", "path": "dead.jsonl"}).spec() == JsonLinesSink("dead.jsonl").spec()
    True
    """

    def build(**params: Any) -> _T:
        spec = params.get("dead_letter")
        if isinstance(spec, dict) and not (users and "kind" not in spec):
            sinks = _sink_factories()
            nested = spec.get("kind")
            if nested not in sinks:
                raise ParameterError(
                    kind,
                    "dead_letter",
                    f"expected a sink's spec with its kind, got kind {nested!r}",
                    f"write the dead-letter sink as its spec() writes it, with kind one of {sorted(sinks)}",
                )
            try:
                params["dead_letter"] = sinks[nested](**{k: v for k, v in spec.items() if k != "kind"})
            except ParameterError as e:
                # reported at the nested sink's own path (``...dead_letter.path``), not at the outer
                # entry's parameter of that name, which it may not even have
                raise ParameterError(e.owner, f"dead_letter.{e.parameter}", e.problem, e.fix) from e
            except TypeError as e:  # a parameter the nested sink does not take, or lacks: the same
                problem = _parameter_problem("dead_letter", e)
                if problem is None:
                    raise
                raise SpecError([problem]) from e
        return factory(**params)

    return build


def _refuse_custom_aggregators(step: WindowStep) -> None:
    """Raise when ``step`` has an aggregator a spec cannot name: a user's ``Aggregator`` subclass
    describes itself as ``kind: custom``, which no spec reader could turn back into it."""
    from streamlab import agg

    for a in step.aggs:
        try:
            same = agg.from_spec(a.describe()) == a
        except (ValueError, TypeError, KeyError):
            same = False
        if not same:
            step.invalid(
                f"custom aggregator {type(a).__name__} ({a.name!r}) cannot be written to a YAML spec",
                "use the built-in aggregators (streamlab.agg) in a pipeline saved as YAML, or keep this "
                "pipeline in Python",
            )


def pipeline_to_dict(p: Pipeline) -> dict[str, Any]:
    """Describe a pipeline as plain data: ``{"streaming": {name, time, sources, processing, sinks}}``.

    Every built-in step writes its parameters (``Step.params()``), sources and sinks their ``spec()``
    with secrets redacted. Steps that hold Python code (a custom operator) cannot be described and raise
    ``ValueError``; ``map``/``filter`` functions are written as ``module:name``, or as their source.

    Examples
    --------
    >>> from streamlab.sources import ReplaySource
    >>> import pandas as pd, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), 'e.parquet')
    >>> pd.DataFrame({'x': [1]}).to_parquet(path)
    >>> list(pipeline_to_dict(Pipeline(ReplaySource(path)))['streaming'])
    ['name', 'time', 'sources', 'processing', 'sinks']
    """
    sources, processing, sinks = [], [], []
    for sid, step in p.steps.items():
        if isinstance(step, SourceStep):
            sources.append({"step_id": sid, **step.source.spec()})
        elif isinstance(step, SinkStep):
            sinks.append({"step_id": sid, "input": step.inputs[0], **step.sink.spec()})
        else:
            entry: dict[str, Any] = {"step_id": sid, "kind": step.kind}
            entry["input"] = step.inputs[0] if len(step.inputs) == 1 else list(step.inputs)
            if isinstance(step, WindowStep):
                _refuse_custom_aggregators(step)
            entry.update(_config_spec(step) if isinstance(step, OperatorStep) else step.params())
            processing.append(entry)
    return {
        "streaming": {
            "name": p.name,
            "time": p.time,
            "sources": sources,
            "processing": processing,
            "sinks": sinks,
        }
    }


def pipeline_to_yaml(p: Pipeline, path: str | None = None) -> str:
    """The :func:`pipeline_to_dict` description as YAML text, also written to ``path`` when given.

    Secrets never appear in it: connectors write them as ``${NAME}`` environment references, and a
    first comment line lists the variables to set where the spec runs.

    Examples
    --------
    >>> import pandas as pd, tempfile, os
    >>> from streamlab.sources import ReplaySource
    >>> path = os.path.join(tempfile.mkdtemp(), 'e.parquet')
    >>> pd.DataFrame({'x': [1]}).to_parquet(path)
    >>> pipeline_to_yaml(Pipeline(ReplaySource(path))).splitlines()[0]
    'streaming:'
    """
    text = yaml.safe_dump(pipeline_to_dict(p), sort_keys=False, default_flow_style=False, width=110)
    refs = sorted(set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text)))
    if refs:
        text = (
            "# Secrets are environment references, resolved when the pipeline connects: set "
            f"{', '.join(refs)} where this spec runs.\n" + text
        )
    if path is not None:
        Path(path).write_text(text)
    return text


def _read_spec_file(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise SpecError(
            [
                SpecProblem(
                    str(path),
                    "is a directory, not a spec file",
                    "pass the YAML file written by Pipeline.to_yaml()",
                )
            ]
        ) from None
    except OSError as e:
        raise SpecError(
            [SpecProblem(str(path), f"cannot be read ({e.strerror})", "check the path and its permissions")]
        ) from None
    if b"\x00" in raw:
        raise SpecError(
            [
                SpecProblem(
                    str(path),
                    "is a binary file, not a YAML spec",
                    "pass the YAML file written by Pipeline.to_yaml()",
                )
            ]
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(
            [SpecProblem(str(path), f"is not UTF-8 text (byte {e.start})", "save the spec as UTF-8 YAML")]
        ) from None


def load_spec(text_or_path: str | os.PathLike[str]) -> tuple[Any, str | None]:
    """Read a YAML spec (text, or the path of a file) into plain data; returns ``(data, origin)``.

    A single-line string ending in ``.yaml``/``.yml`` is a path and must exist; YAML is read with
    YAML 1.2 booleans (``on:`` is the key ``"on"``). Unreadable files and YAML syntax errors raise
    :class:`~streamlab.errors.SpecError` naming the file and the line.

    Examples
    --------
    >>> load_spec("streaming: {name: demo}")
    ({'streaming': {'name': 'demo'}}, None)
    >>> load_spec("/nonexistent/spec.yaml")
    Traceback (most recent call last):
    ...
    streamlab.errors.SpecError: /nonexistent/spec.yaml: no such file. Fix: check the path; Pipeline.to_yaml('spec.yaml') writes one
    """
    origin: str | None = None
    if not isinstance(text_or_path, (str, os.PathLike)):
        raise SpecError(
            [
                SpecProblem(
                    "(spec)",
                    f"expected YAML text or the path of a spec file, got {type(text_or_path).__name__}",
                    "pass the text Pipeline.to_yaml() returns, or the path of the file it wrote; a dict "
                    "goes to streamlab.spec.pipeline_from_dict",
                )
            ]
        )
    if isinstance(text_or_path, str) and not text_or_path.strip():
        # Path('') is '.', the working directory: an empty text was reported as a directory
        raise SpecError(
            [
                SpecProblem(
                    "(spec)",
                    "the spec text is empty",
                    "pass the YAML text or the file Pipeline.to_yaml() wrote",
                )
            ]
        )
    text = text_or_path
    if isinstance(text_or_path, os.PathLike) or "\n" not in text_or_path:
        path = Path(text_or_path)
        looks_like_path = isinstance(text_or_path, os.PathLike) or path.suffix in (".yaml", ".yml", ".json")
        try:
            exists = path.is_file() or path.is_dir()
        except OSError:  # a one-line YAML text too long to be a file name (ENAMETOOLONG): text
            exists = False
        if exists:
            origin = str(path)
            text = _read_spec_file(path)
        elif looks_like_path:
            raise SpecError(
                [
                    SpecProblem(
                        str(path), "no such file", "check the path; Pipeline.to_yaml('spec.yaml') writes one"
                    )
                ]
            )
    try:
        return load_yaml(str(text)), origin
    except RecursionError:
        raise SpecError(
            [
                SpecProblem(
                    "the YAML",
                    "is nested too deeply to read",
                    "write the spec as Pipeline.to_yaml() does: sections, lists of steps, and mappings "
                    "a few levels deep",
                )
            ],
            origin,
        ) from None
    except DuplicateKeyError as e:
        mark = e.problem_mark
        assert mark is not None
        raise SpecError(
            [
                SpecProblem(
                    f"line {mark.line + 1}, column {mark.column + 1}",
                    f"{e.problem}: YAML would keep only the last value",
                    f"remove one of the two {e.key!r} entries, or rename it",
                )
            ],
            origin,
        ) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else "the YAML"
        what = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise SpecError(
            [
                SpecProblem(
                    where,
                    f"not valid YAML: {what}",
                    "fix the YAML syntax there (indentation, quotes, colons)",
                )
            ],
            origin,
        ) from None


def pipeline_from_yaml(text_or_path: str | os.PathLike[str], *, trust: bool = False) -> Pipeline:
    """Rebuild a pipeline from a YAML spec (text, or the path of a file).

    The spec is checked as a whole before anything is built: every problem is reported at once with
    its path (``streaming.processing[3].window.size``) and a fix, as a
    :class:`~streamlab.errors.SpecError`. A spec is data: one that holds code (a function's
    ``source:``, an enrich query that is not a single read-only SELECT, a standard-library function)
    raises :class:`~streamlab.errors.UntrustedSpecError` unless ``trust=True``. Functions referenced by
    import path in your own modules (``fn: {ref: 'mymodule:is_big'}``) need no trust.

    Examples
    --------
    >>> spec = '''
    ... streaming:
    ...   name: demo
    ...   sources:
    ...     - {step_id: events, kind: replay, path: events.jsonl, raw: true}
    ...   processing:
    ...     - {step_id: parse, kind: parse, input: events}
    ...     - step_id: counts
    ...       kind: window
    ...       input: parse
    ...       window: {kind: tumbling, size: 1m}
    ...       key: [event_type]
    ...       aggregate: [{kind: count}]
    ...   sinks: []
    ... '''
    >>> sorted(pipeline_from_dict(load_yaml(spec), lazy_sources=True).steps)
    ['counts', 'events', 'parse']
    """
    data, origin = load_spec(text_or_path)
    return pipeline_from_dict(data, trust=trust, origin=origin)


class _PlaceholderSource(Source):
    """Stands in for a source whose file is absent (for inspecting a spec without its data)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self._spec = spec
        self.columns = ("value",) if spec.get("raw") else None

    def open(self, resume: Any = None, clock: Clock | None = None) -> SourceReader:
        raise FileNotFoundError(f"source {self._spec} is not available here")

    def spec(self) -> dict[str, Any]:
        return self._spec


def check_spec_data(data: Any, *, trust: bool = False, origin: str | None = None) -> None:
    """Raise :class:`~streamlab.errors.SpecError` listing every problem of a spec, or
    :class:`~streamlab.errors.UntrustedSpecError` when it holds code and ``trust`` is False.

    Examples
    --------
    >>> check_spec_data({"streaming": {"sources": [{"step_id": "e", "kind": "replay", "path": "e.jsonl"}]}})
    >>> check_spec_data({"streaming": {"sources": [{"step_id": "e"}]}})
    Traceback (most recent call last):
    ...
    streamlab.errors.SpecError: streaming.sources[0] (step 'e'): missing 'kind'. Fix: say what this source is: kind: ...
    """
    problems = check_spec(data, set(_source_factories()), set(_sink_factories()))
    if problems:
        raise SpecError(problems, origin)
    if not trust:
        code = code_in_spec(data, read_only_problem)
        if code:
            raise UntrustedSpecError(code, origin)


def pipeline_from_dict(
    data: dict[str, Any], *, lazy_sources: bool = False, trust: bool = False, origin: str | None = None
) -> Pipeline:
    """Rebuild a pipeline from a :func:`pipeline_to_dict` description.

    The whole spec is checked first (:func:`check_spec_data`); then steps are checked as they are added,
    and a step that cannot be built is reported with its path in the spec. ``lazy_sources=True``
    stands a placeholder in for a file source whose file is absent (to inspect or export a spec
    without its data). ``trust`` is as in :func:`pipeline_from_yaml`.

    Examples
    --------
    >>> p = pipeline_from_dict({'streaming': {'sources': [{'step_id': 'e', 'kind': 'replay', 'path': 'missing.jsonl', 'raw': True}]}}, lazy_sources=True)
    >>> list(p.steps)
    ['e']
    """
    check_spec_data(data, trust=trust, origin=origin)
    source_factories, sink_factories = _source_factories(), _sink_factories()
    s = data["streaming"]
    p = Pipeline(name=s.get("name", "pipeline"), time=s.get("time", "timestamp"))
    streams: dict[str, Stream] = {}
    problems: list[SpecProblem] = []
    failed: set[str] = set()

    def attempt(path: str, build: Callable[[], _T]) -> _T | None:
        try:
            return build()
        except FileNotFoundError as e:
            problems.append(
                SpecProblem(
                    path, f"file not found: {e.filename or e}", "check the path, or create the file first"
                )
            )
        except ParameterError as e:
            problems.append(SpecProblem(f"{path}.{e.parameter}", e.problem, e.fix))
        except SpecError as e:
            problems.extend(
                SpecProblem(f"{path}.{q.path}" if q.path else path, q.problem, q.fix) for q in e.problems
            )
        except PipelineConfigError as e:
            problems.append(SpecProblem(path, e.problem, e.fix))
        except Exception as e:  # a factory's own error (connector, DuckDB): reported at its path
            problem = _parameter_problem(path, e) or _checked_value_problem(path, e)
            if problem is not None:
                problems.append(problem)
                return None
            fix = "check this entry's parameters against Pipeline.to_yaml() output"
            if isinstance(e, TypeError) and "argument" in str(e):
                fix = (
                    "remove or rename the parameter; the connector's docstring lists the parameters it takes"
                )
            elif isinstance(e, (ImportError, AttributeError)):
                fix = "check the import path module:name, and that its package is installed here"
            problems.append(SpecProblem(path, f"{type(e).__name__}: {e}", fix))
        return None

    def stream(ref: str) -> Stream:
        sid, _, out = ref.partition(".")
        return streams[sid] if not out else Stream(p, ref)

    for i, src in enumerate(s.get("sources") or []):
        src = dict(src)
        sid, kind = src.pop("step_id"), src.pop("kind")
        path = f"streaming.sources[{i}] (step {sid!r})"

        def make_source(kind: str = kind, src: dict[str, Any] = src) -> Source:
            try:
                source: Source = source_factories[kind](**src)
            except FileNotFoundError:
                if not lazy_sources:
                    raise
                source = _PlaceholderSource({"kind": kind, **src})
            return source

        source = attempt(path, make_source)
        if source is None:
            failed.add(sid)
            continue
        streams[sid] = p.add_source(source, step_id=sid)

    classes = step_classes()
    for i, st in enumerate(s.get("processing") or []):
        st = dict(st)
        sid, kind, inp = st.pop("step_id"), st.pop("kind"), st.pop("input")
        inputs = [inp] if isinstance(inp, str) else list(inp)
        if any(r.partition(".")[0] in failed for r in inputs):
            failed.add(sid)
            continue
        path = f"streaming.processing[{i}] (step {sid!r})"

        def make_step(
            inputs: list[str] = inputs, sid: str = sid, kind: str = kind, st: dict[str, Any] = st
        ) -> Any:
            # the step is read from its own definition (its fields and their codecs), then checked
            # against its inputs as a step added by a Stream method is
            ctx = ReadContext(trust, sid, p.time, p.columns_of(inputs[0]), source_factories, sink_factories)
            step: Any = from_params(classes[kind], st, ctx, step_id=sid, inputs=tuple(inputs))
            return p.add_step(step)

        built = attempt(path, make_step)
        if built is None:
            failed.add(sid)
        else:
            streams[sid] = built
    for i, sk in enumerate(s.get("sinks") or []):
        sk = dict(sk)
        sid, kind, inp = sk.pop("step_id"), sk.pop("kind"), sk.pop("input")
        if inp.partition(".")[0] in failed:
            continue
        path = f"streaming.sinks[{i}] (step {sid!r})"

        def make_sink(kind: str = kind, sk: dict[str, Any] = sk) -> Sink:
            return sink_factories[kind](**sk)

        def connect(sink: Sink, inp: str = inp, sid: str = sid) -> None:
            stream(inp).to(sink, step_id=sid)

        sink = attempt(path, make_sink)
        if sink is not None:
            attempt(path, functools.partial(connect, sink))
    if problems:
        raise SpecError(problems, origin)
    return p


def _parameter_problem(path: str, e: Exception) -> SpecProblem | None:
    """A connector called with a parameter it does not take, or without one it needs (a ``TypeError``
    whose text would name a factory's internals), as a problem at the parameter's path."""
    if not isinstance(e, TypeError):
        return None
    text = str(e)
    unknown = re.search(r"unexpected keyword argument '(\w+)'", text)
    if unknown:
        name = unknown.group(1)
        return SpecProblem(
            f"{path}.{name}",
            f"unknown parameter {name!r}",
            "remove or rename it; the connector's docstring lists the parameters it takes",
        )
    missing = re.search(r"missing \d+ required (?:positional |keyword-only )?arguments?: (.+)$", text)
    if missing:
        names = re.findall(r"'(\w+)'", missing.group(1))
        if names:
            return SpecProblem(
                path,
                "missing " + ", ".join(repr(n) for n in names),
                "add "
                + ", ".join(f"{n}: ..." for n in names)
                + " (Pipeline.to_yaml() writes every parameter)",
            )
    return None


#: A constructor's own check worded "Owner(param=...): problem" or "Owner: problem; fix" in a plain
#: ValueError (a user's registered factory; streamlab's own sources, sinks and connectors raise
#: ParameterError, whose fields ``pipeline_from_dict`` reports without parsing any text).
_CHECK_MESSAGE = re.compile(r"^(\w+)(?:\((?:(\w+)=)?.*?\))?: (.+)$", re.DOTALL)


def _checked_value_problem(path: str, e: Exception) -> SpecProblem | None:
    """A plain ``ValueError`` a factory's constructor raised on a parameter it checked, as a problem at
    the parameter's path (when its message names it) with the fix its message gives: reported as
    ``ValueError: MySink: ...`` with the generic fix, it read as a crash. A :class:`ParameterError` never
    gets here: its ``parameter``, ``problem`` and ``fix`` are reported as they are.

    Examples
    --------
    >>> print(_checked_value_problem("streaming.sinks[0]", ValueError("MySink(maxlen=0): a positive number of entries, or None")))
    streaming.sinks[0].maxlen: a positive number of entries, or None. Fix: check maxlen against help(MySink)
    >>> print(_checked_value_problem("streaming.sinks[0]", ValueError("MySink: token is empty; copy it from the portal")))
    streaming.sinks[0]: token is empty. Fix: copy it from the portal
    """
    if type(e) is not ValueError:
        return None
    match = _CHECK_MESSAGE.match(str(e))
    if match is None:
        return None
    owner, parameter, text = match.groups()
    problem, sep, fix = text.partition(". Fix: ")
    if not sep:
        problem, sep, fix = text.rpartition("; ")
        if problem.count("(") != problem.count(")"):  # a '; ' inside parentheses: not a fix
            sep = ""
    if not sep:
        problem = text
        fix = f"check {parameter or 'its parameters'} against help({owner})"
    return SpecProblem(f"{path}.{parameter}" if parameter else path, problem.rstrip("."), fix)


def config_types() -> dict[str, type]:
    """The step configs a spec can name (features, rules, detectors, thresholds, patterns), by class
    name: those registered in ``streamlab._step_kinds``.

    Examples
    --------
    >>> "VelocityFeature" in config_types() and "ThresholdRule" in config_types()
    True
    """
    return config_kinds()


def config_from_spec(type_name: str, params: dict[str, Any]) -> Any:
    """The step config ``type_name`` (one of ``config_types()``) built from its spec parameters; a
    detector (``{"kind": "half_space_trees", ...}``), threshold filter or pattern steps inside are
    read by their fields' codecs.

    Examples
    --------
    >>> config_from_spec("ThresholdRule", {"name": "big", "expr": "amount > 1000"})
    ThresholdRule(name='big', expr='amount > 1000', column=None, op=None, value=None)
    """
    types = config_types()
    if type_name not in types:
        raise ValueError(f"unknown step config type {type_name!r}; known: {sorted(types)}")
    return from_params(types[type_name], params, ReadContext())


def _plain(value: Any) -> bool:
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _config_spec(step: OperatorStep) -> dict[str, Any]:
    """An operator step's ``{"type": ..., "config": ...}``, when its parameters are plain data that
    read back to the same config (a river model given as a Python object is not)."""
    name = type(step.config).__name__
    try:
        params = step.params()
        same = _plain(params) and params_of(config_from_spec(name, params["config"])) == params["config"]
    except (TypeError, ValueError, KeyError):
        same = False
    if same:
        return params
    raise ValueError(
        f"step {step.step_id!r} ({name}) cannot be written to YAML: its parameters do not describe it as "
        "plain data that builds it again (Python objects or code inside); keep it in Python, or use "
        f"built-in steps and the configs of streamlab.detectors ({', '.join(sorted(config_types()))})"
    )


def _label(p: Pipeline, sid: str) -> str:
    return f"{sid}: {label_of(p.steps[sid])}"


def pipeline_to_mermaid(p: Pipeline, counts: dict[str, Any] | None = None) -> str:
    """The graph as Mermaid flowchart text; ``counts`` (runtime metrics) adds rows per edge.

    Examples
    --------
    >>> from streamlab.testing import ListSource
    >>> pl = Pipeline(ListSource([b"{}"]))
    >>> _ = pl.parse()
    >>> print(pipeline_to_mermaid(pl))
    flowchart LR
      source["source: ListSource"]
      parse["parse: parse"]
      source --> parse
      parse -.->|dead_letter| parse_dead_letter(["dead_letter (collected)"])
    """
    lines = ["flowchart LR"]
    for sid in p.steps:
        lines.append(f'  {sid}["{_label(p, sid)}"]')
    for sid, step in p.steps.items():
        for ref in step.inputs:
            src, _, out = ref.partition(".")
            n = (counts or {}).get("steps", {}).get(src, {}).get("out", {}).get(out or "out")
            label = f"{out} " if out else ""
            label += f"{n:,}" if n is not None else ""
            arrow = f"-->|{label.strip()}|" if label.strip() else "-->"
            lines.append(f"  {src} {arrow} {sid}")
    for ref in p.unattached_outputs():
        src, _, out = ref.partition(".")
        if out:
            lines.append(f'  {src} -.->|{out}| {src}_{out}(["{out} (collected)"])')
    return "\n".join(lines)


def pipeline_to_html(p: Pipeline, counts: dict[str, Any] | None = None) -> str:
    """A dependency-free HTML table of steps, inputs and outputs (Jupyter's rich repr).

    Examples
    --------
    >>> from streamlab.testing import ListSource
    >>> '<table>' in pipeline_to_html(Pipeline(ListSource([{'x': 1}])))
    True
    """
    from streamlab._display import step_params_text

    rows = []
    for sid, step in p.steps.items():
        outs = p.outputs_of(sid)
        m = (counts or {}).get("steps", {}).get(sid, {})
        counted = ", ".join(f"{o}: {m.get('out', {}).get(o, 0):,}" for o in outs) if m else ", ".join(outs)
        rows.append(
            f"<tr><td><b>{html.escape(sid)}</b></td><td>{html.escape(_label(p, sid).split(': ', 1)[1])}</td>"
            f"<td><code>{html.escape(step_params_text(step))}</code></td>"
            f"<td>{html.escape(', '.join(step.inputs))}</td><td>{html.escape(counted)}</td></tr>"
        )
    return (
        f"<div><b>Pipeline {html.escape(p.name)}</b><table><tr><th>step</th><th>what</th><th>parameters</th>"
        f"<th>inputs</th><th>outputs</th></tr>{''.join(rows)}</table></div>"
    )
