"""A self-contained HTML report (plotly) of a run: window results, late and dead-letter counts."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import pandas as pd


def write_report(
    path: str | Path,
    *,
    title: str,
    windows: pd.DataFrame,
    key: str,
    value: str,
    late: pd.DataFrame,
    dead_letter: pd.DataFrame,
    metrics: dict[str, Any],
    notes: list[str] | None = None,
) -> Path:
    """Write one HTML file with plotly.js embedded (opens offline, no CDN)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=2,
        cols=2,
        specs=[[{"colspan": 2}, None], [{}, {}]],
        vertical_spacing=0.14,
        horizontal_spacing=0.24,  # room for the dead-letter reasons, the right chart's labels
        subplot_titles=(
            f"{value} per 1-minute window, by {key}",
            "late events per window",
            "dead letters by reason",
        ),
    )
    if len(windows):
        for k, grp in windows.sort_values("window_start").groupby(key, observed=True):
            fig.add_trace(
                go.Scatter(x=grp["window_start"], y=grp[value], mode="lines", name=str(k), stackgroup="w"),
                1,
                1,
            )
    if len(late):
        per = late.groupby("window_start").size().reset_index(name="late")
        fig.add_trace(
            go.Bar(
                x=per["window_start"], y=per["late"], name="late", marker_color="#d62728", showlegend=False
            ),
            2,
            1,
        )
    if len(dead_letter):
        reasons = dead_letter["reason"].str.split(":").str[0].value_counts()
        fig.add_trace(
            go.Bar(
                x=reasons.values,
                y=[_wrap(str(r)) for r in reasons.index],
                orientation="h",
                name="dead letter",
                marker_color="#7f7f7f",
                showlegend=False,
            ),
            2,
            2,
        )
    # the legend names the event types of the top chart only; the two bottom charts have titles
    fig.update_layout(
        height=820,
        template="plotly_white",
        legend={"title": {"text": key}, "orientation": "v", "x": 1.02, "y": 1.0},
        margin={"l": 60, "r": 40, "t": 60, "b": 60},
    )
    fig.update_xaxes(title_text="window start (UTC)", row=1, col=1)
    fig.update_yaxes(title_text=f"{value} (stacked by {key})", row=1, col=1)
    fig.update_xaxes(title_text="window start (UTC)", row=2, col=1)
    fig.update_yaxes(title_text="late events", row=2, col=1)
    fig.update_xaxes(title_text="records", row=2, col=2)
    fig.update_yaxes(automargin=True, row=2, col=2)
    summary = {
        "events read": metrics.get("events_in"),
        "windows written": len(windows),
        "late events": metrics.get("late"),
        "dead letters": metrics.get("dead_letter"),
        "duplicates dropped": metrics.get("duplicates"),
        "final watermark": metrics.get("watermark"),
    }
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(f'{v:,}' if isinstance(v, int) else str(v))}</td></tr>"
        for k, v in summary.items()
    )
    extra = "".join(f"<li>{html.escape(n)}</li>" for n in notes or [])
    body = fig.to_html(full_html=False, include_plotlyjs=True)
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
        "th,td{padding:4px 12px;text-align:left;border-bottom:1px solid #ddd}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><table>{rows}</table><ul>{extra}</ul>{body}</body></html>"
    )
    out = Path(path)
    out.write_text(page, encoding="utf-8")
    return out


def _wrap(text: str, width: int = 28) -> str:
    """Break a long axis label into lines (plotly clips long category labels).

    Examples
    --------
    >>> _wrap("missing required field 'timestamp'")
    "missing required field<br>'timestamp'"
    """
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return "<br>".join(lines)
