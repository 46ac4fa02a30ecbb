"""The pipeline as a YAML spec, and as a diagram (Mermaid text or HTML).

The spec has one ``streaming:`` section: ``sources`` (where events come from: topics, files),
``processing`` (the steps in order, each with its ``step_id``, inputs and parameters) and ``sinks``.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import yaml

from streamlab import agg as agg_module
from streamlab.functions import UserFunction
from streamlab.io import Sink, Source
from streamlab.pipeline import Pipeline, Stream
from streamlab.steps import OperatorStep, SinkStep, SourceStep
from streamlab.windows import window_from_spec

__all__ = [
    "pipeline_from_yaml",
    "pipeline_to_mermaid",
    "pipeline_to_yaml",
    "register_sink",
    "register_source",
]

_SOURCES: dict[str, Any] = {}
_SINKS: dict[str, Any] = {}


def register_source(kind: str, factory: Any) -> None:
    """Teach ``from_yaml`` a source kind: ``factory(**params) -> Source``.

    Examples
    --------
    >>> register_source('my_source', lambda **kw: None)
    """
    _SOURCES[kind] = factory


def register_sink(kind: str, factory: Any) -> None:
    """Teach ``from_yaml`` a sink kind: ``factory(**params) -> Sink``.

    Examples
    --------
    >>> register_sink('my_sink', lambda **kw: None)
    """
    _SINKS[kind] = factory


def _builtin_factories() -> None:
    if _SOURCES:
        return
    from streamlab.sinks import DuckDBSink, JsonLinesSink, ListSink, ParquetSink
    from streamlab.sources import ReplaySource

    register_source("replay", lambda path, **kw: ReplaySource(path, **kw))
    register_sink("duckdb", lambda **kw: DuckDBSink(**kw))
    register_sink("parquet", lambda **kw: ParquetSink(**kw))
    register_sink("jsonl", lambda **kw: JsonLinesSink(**kw))
    register_sink("list", lambda **kw: ListSink())
    from streamlab.recording import RecordingSink

    register_sink("recording", lambda **kw: RecordingSink(**kw))
    for module in ("streamlab.connectors", "streamlab.datasets"):
        try:
            mod = __import__(module, fromlist=["register_spec_kinds"])
            hook = getattr(mod, "register_spec_kinds", None)
            if hook is not None:
                hook(register_source, register_sink)
        except ImportError:  # pragma: no cover - optional parts
            pass


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
            if isinstance(step, OperatorStep):
                raise ValueError(
                    f"step {sid!r} ({type(step.config).__name__}) cannot be written to YAML yet; "
                    "keep it in Python, or use built-in steps only in a portable spec"
                )
            entry: dict[str, Any] = {"step_id": sid, "kind": step.kind}
            entry["input"] = step.inputs[0] if len(step.inputs) == 1 else list(step.inputs)
            entry.update(step.params())
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
    if path is not None:
        Path(path).write_text(text)
    return text


def pipeline_from_yaml(text_or_path: str) -> Pipeline:
    """Rebuild a pipeline from a YAML spec (text, or the path of a file).

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
    >>> sorted(pipeline_from_dict(yaml.safe_load(spec), lazy_sources=True).steps)
    ['counts', 'events', 'parse']
    """
    if "\n" not in text_or_path and Path(text_or_path).exists():
        text_or_path = Path(text_or_path).read_text()
    data = yaml.safe_load(text_or_path)
    return pipeline_from_dict(data)


class _PlaceholderSource(Source):
    """Stands in for a source whose file is absent (for inspecting a spec without its data)."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self._spec = spec
        self.columns = ("value",) if spec.get("raw") else None

    def open(self, resume: Any = None, clock: Any = None) -> Any:
        raise FileNotFoundError(f"source {self._spec} is not available here")

    def spec(self) -> dict[str, Any]:
        return self._spec


def pipeline_from_dict(data: dict[str, Any], *, lazy_sources: bool = False) -> Pipeline:
    """Rebuild a pipeline from a :func:`pipeline_to_dict` description.

    Steps are checked as they are added, so a wrong parameter fails here with the step's id.
    ``lazy_sources=True`` stands a placeholder in for a file source whose file is absent (to inspect or
    export a spec without its data).

    Examples
    --------
    >>> p = pipeline_from_dict({'streaming': {'sources': [{'step_id': 'e', 'kind': 'replay', 'path': 'missing.jsonl', 'raw': True}]}}, lazy_sources=True)
    >>> list(p.steps)
    ['e']
    """
    _builtin_factories()
    s = data.get("streaming")
    if not isinstance(s, dict):
        raise ValueError(
            "a pipeline spec needs a top-level 'streaming:' section with sources, processing and sinks"
        )
    p = Pipeline(name=s.get("name", "pipeline"), time=s.get("time", "timestamp"))
    streams: dict[str, Stream] = {}
    for src in s.get("sources", []):
        src = dict(src)
        sid, kind = src.pop("step_id"), src.pop("kind")
        if kind not in _SOURCES:
            raise ValueError(f"source {sid!r}: unknown kind {kind!r}; known kinds: {sorted(_SOURCES)}")
        try:
            source: Source = _SOURCES[kind](**src)
        except FileNotFoundError:
            if not lazy_sources:
                raise
            source = _PlaceholderSource({"kind": kind, **src})
        streams[sid] = p.add_source(source, step_id=sid)

    def stream(ref: str) -> Stream:
        sid, _, out = ref.partition(".")
        if sid not in streams:
            raise ValueError(f"input {ref!r} names no earlier step; known: {sorted(streams)}")
        return streams[sid] if not out else Stream(p, ref)

    for st in s.get("processing", []):
        st = dict(st)
        sid, kind, inp = st.pop("step_id"), st.pop("kind"), st.pop("input")
        inputs = [inp] if isinstance(inp, str) else list(inp)
        base = stream(inputs[0])
        streams[sid] = _build_step(base, [stream(r) for r in inputs[1:]], sid, kind, st)
    for sk in s.get("sinks", []):
        sk = dict(sk)
        sid, kind, inp = sk.pop("step_id"), sk.pop("kind"), sk.pop("input")
        if kind not in _SINKS:
            raise ValueError(f"sink {sid!r}: unknown kind {kind!r}; known kinds: {sorted(_SINKS)}")
        sink: Sink = _SINKS[kind](**sk)
        stream(inp).to(sink, step_id=sid)
    return p


def _build_step(base: Stream, others: list[Stream], sid: str, kind: str, prm: dict[str, Any]) -> Stream:
    if kind == "parse":
        return base.parse(
            prm.get("schema"),
            time=prm.get("time", "timestamp"),
            required=prm.get("required", ()),
            value_column=prm.get("value_column", "value"),
            max_record_bytes=prm.get("max_record_bytes", 1_000_000),
            step_id=sid,
        )
    if kind == "filter":
        if "expr" in prm:
            return base.filter(prm["expr"], step_id=sid)
        fn = UserFunction.from_spec(prm["fn"])
        return (base.filter_one if prm.get("per_event") else base.filter_many)(fn, step_id=sid)
    if kind == "map":
        if "columns" in prm:
            return base.with_columns(step_id=sid, **prm["columns"])
        fn = UserFunction.from_spec(prm["fn"])
        method = base.map_one if prm.get("per_event") else base.map_many
        return method(fn, columns=prm.get("output_columns"), step_id=sid)
    if kind == "select":
        cols = prm["columns"]
        return base.select(
            *[c for c, n in cols.items() if c == n], step_id=sid, **{n: c for c, n in cols.items() if c != n}
        )
    if kind == "dedup":
        return base.dedup(
            prm.get("id", "event_id"),
            ttl=prm.get("ttl"),
            max_ids=prm.get("max_ids", 1_000_000),
            time=prm.get("time"),
            step_id=sid,
        )
    if kind == "key_by":
        return base.key_by(*prm["keys"], step_id=sid)
    if kind == "union":
        return base.union(*others, step_id=sid)
    if kind == "window":
        aggs = [agg_module.from_spec(a) for a in prm.get("aggregate", [])]
        return base.window(
            window_from_spec(prm["window"]),
            prm.get("key") or (),
            time=prm.get("time"),
            delay=prm.get("delay", 0),
            lateness=prm.get("lateness", 0),
            early=prm.get("early", False),
            watermark_by=prm.get("watermark_by", "auto") or None,
            idle_timeout=prm.get("idle_timeout"),
            step_id=sid,
        ).agg(*aggs)
    if kind == "interval_join":
        return base.join_interval(
            others[0],
            prm["on"],
            lower=prm["lower"],
            upper=prm["upper"],
            time=prm.get("left_time"),
            other_time=prm.get("right_time"),
            delay=prm.get("delay", 0),
            suffixes=tuple(prm.get("suffixes", ("", "_right"))),
            step_id=sid,
        )
    if kind == "enrich":
        return base.enrich(prm["table"], prm["on"], how=prm.get("how", "left"), step_id=sid)
    raise ValueError(f"step {sid!r}: unknown kind {kind!r}")


def _label(p: Pipeline, sid: str) -> str:
    step = p.steps[sid]
    if isinstance(step, SourceStep):
        return f"{sid}: {type(step.source).__name__}"
    if isinstance(step, SinkStep):
        return f"{sid}: {type(step.sink).__name__}"
    if isinstance(step, OperatorStep):
        return f"{sid}: {type(step.config).__name__}"
    return f"{sid}: {step.kind}"


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
