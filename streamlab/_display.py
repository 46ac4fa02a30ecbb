"""Rich notebook displays: a pipeline with each step's parameters, a run's status, counts and sinks.

Plain HTML without scripts or external styles, so it renders in JupyterLab, VS Code, Voila and
static pages (nbconvert, documentation sites) alike.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import pandas as pd

__all__ = ["params_text", "run_html", "step_params_text"]

_STYLE = (
    "<style>.sl-table{border-collapse:collapse;font-size:12px}"
    ".sl-table th,.sl-table td{padding:2px 10px;text-align:left;vertical-align:top;"
    "border-bottom:1px solid #ddd}.sl-table code{white-space:pre-wrap}"
    ".sl-status{display:inline-block;padding:1px 8px;border-radius:8px;color:#fff}</style>"
)
_STATUS_COLOURS = {
    "finished": "#2ca02c",
    "running": "#1f77b4",
    "paused": "#ff7f0e",
    "stopped": "#7f7f7f",
    "failed": "#d62728",
}


def params_text(params: Mapping[str, Any], limit: int = 240) -> str:
    """One line for a step's parameters (its spec form): nested values compact, empty ones left out.

    Parameters
    ----------
    params
        A step's ``params()``: what its YAML spec holds.
    limit
        Longest text returned; longer ones end in ``…``.

    Returns
    -------
    str
        ``key=value`` pairs separated by ``; ``.

    Examples
    --------
    >>> params_text({"window": {"kind": "tumbling", "size": "1m"}, "key": ["event_type"], "delay": "5s",
    ...              "early": False, "idle_timeout": None})
    'window=tumbling 1m; key=event_type; delay=5s'
    """
    text = "; ".join(f"{k}={_compact(v)}" for k, v in params.items() if not _empty(v))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def step_params_text(step: Any) -> str:
    """:func:`params_text` of a step; a source, sink or config a spec cannot hold (data in memory, a
    Python object) by its repr.

    Examples
    --------
    >>> from streamlab.testing import ListSource
    >>> from streamlab import Pipeline
    >>> step_params_text(Pipeline(ListSource([{"x": 1}])).steps["source"])
    'ListSource(1 events)'
    """
    try:
        return params_text(step.params())
    except (TypeError, ValueError):  # e.g. ListSource: its events live in memory, not in a spec
        held = getattr(step, "source", None) or getattr(step, "sink", None) or getattr(step, "config", None)
        return repr(held) if held is not None else ""


def _empty(value: Any) -> bool:
    return value is None or value is False or (isinstance(value, (list, tuple, dict)) and not value)


def _compact(value: Any) -> str:
    if isinstance(value, Mapping):
        if "kind" in value:  # a window, aggregator, source or sink spec: its kind, then the rest
            rest = [
                _compact(v) if k in ("size", "every", "gap") else f"{k}={_compact(v)}"
                for k, v in value.items()
            ]
            rest = [r for (k, v), r in zip(value.items(), rest) if k != "kind" and not _empty(v)]
            return " ".join([str(value["kind"]), *rest]) if rest else str(value["kind"])
        return "{" + ", ".join(f"{k}: {_compact(v)}" for k, v in value.items() if not _empty(v)) + "}"
    if isinstance(value, (list, tuple)):
        items = [_compact(v) for v in value]
        return items[0] if len(items) == 1 else "[" + ", ".join(items) + "]"
    return str(value)


def _badge(status: str) -> str:
    colour = _STATUS_COLOURS.get(status, "#7f7f7f")
    return f"<span class='sl-status' style='background:{colour}'>{html.escape(status)}</span>"


def _fmt(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return str(value)


def run_html(
    name: str,
    metrics: Mapping[str, Any],
    collected: Mapping[str, int],
    sinks: Mapping[str, str] | None = None,
) -> str:
    """HTML for a run (a finished ``RunResult`` or a live ``RunHandle``).

    Parameters
    ----------
    name
        The pipeline's name.
    metrics
        The run's metrics (``status``, ``events_in``, ``watermark``, ``steps`` with counts per output).
    collected
        Rows held for each output without a sink.
    sinks
        Where each sink step writes (step id → the sink's repr), when known.

    Returns
    -------
    str
        An HTML fragment.

    Examples
    --------
    >>> m = {"status": "finished", "events_in": 3, "watermark": None,
    ...      "steps": {"parse": {"kind": "parse", "in": 3, "out": {"out": 2, "dead_letter": 1}}}}
    >>> page = run_html("demo", m, {"parse.dead_letter": 1})
    >>> "finished" in page and "dead_letter: 1" in page
    True
    """
    status = str(metrics.get("status", "?"))
    head = [
        ("events in", _fmt(metrics.get("events_in", 0))),
        ("watermark", _fmt(metrics.get("watermark")) if metrics.get("watermark") is not None else "—"),
    ]
    for key, label in (("late", "late"), ("dead_letter", "dead letters"), ("duplicates", "duplicates")):
        if metrics.get(key):
            head.append((label, _fmt(metrics[key])))
    dropped = {k: v for k, v in (metrics.get("collected_dropped") or {}).items() if v}
    if dropped:
        head.append(("dropped from collection", ", ".join(f"{k}: {_fmt(v)}" for k, v in dropped.items())))
    summary = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in head)
    rows = []
    for sid, m in (metrics.get("steps") or {}).items():
        outs = ", ".join(f"{o}: {_fmt(n)}" for o, n in (m.get("out") or {}).items())
        where = (sinks or {}).get(sid, "")
        rows.append(
            f"<tr><td><b>{html.escape(sid)}</b></td><td>{html.escape(str(m.get('kind', '')))}</td>"
            f"<td>{_fmt(m.get('in', 0))}</td><td>{html.escape(outs)}</td><td><code>{html.escape(where)}</code></td></tr>"
        )
    kept = "".join(
        f"<tr><td><code>{html.escape(ref)}</code></td><td>{_fmt(int(n))}</td></tr>"
        for ref, n in collected.items()
    )
    kept_table = (
        "<p>Collected outputs (no sink): <code>result[ref]</code></p>"
        f"<table class='sl-table'><tr><th>output</th><th>rows</th></tr>{kept}</table>"
        if kept
        else ""
    )
    return (
        f"{_STYLE}<div><b>Run of pipeline {html.escape(name)}</b> {_badge(status)}"
        f"<table class='sl-table'>{summary}</table>"
        "<table class='sl-table'><tr><th>step</th><th>kind</th><th>in</th><th>out</th><th>writes to</th></tr>"
        f"{''.join(rows)}</table>{kept_table}</div>"
    )
