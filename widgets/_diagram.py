"""The pipeline graph as self-made SVG (no network, no JS library) with live counts per step."""

from __future__ import annotations

import html
import os
from typing import Any

from streamlab._step_kinds import label_of
from streamlab.clock import Clock
from streamlab.pipeline import Pipeline
from streamlab.runtime import RunHandle

from ._base import LiveWidget, require_plotly, require_widgets

__all__ = ["PipelineDiagram"]

_W, _H, _DX, _DY, _PAD = 170, 56, 230, 84, 16


class PipelineDiagram(LiveWidget):
    """Steps as boxes in flow order, edges labelled with the rows that crossed them so far.

    Outputs nothing reads (a dead-letter output without a sink, late events) are drawn as dashed
    "collected" boxes, so bad records stay visible. The live view is an HTML widget with the SVG.

    Parameters
    ----------
    source
        A running pipeline (live counts) or a :class:`~streamlab.Pipeline` (structure only).

    Examples
    --------
    >>> from streamlab import ListSource, Pipeline
    >>> p = Pipeline(ListSource([b'{"a": 1}', b"oops"]), name="demo")
    >>> _ = p.parse({"a": "int64"}, time=None)
    >>> diagram = PipelineDiagram(p)
    >>> [n["id"] for n in diagram.layout()["nodes"]]
    ['source', 'parse', 'parse.dead_letter']
    >>> diagram.svg().startswith("<svg")
    True
    """

    def __init__(
        self,
        source: RunHandle | Pipeline,
        *,
        max_fps: float = 2.0,
        clock: Clock | None = None,
        auto_refresh: bool = True,
    ) -> None:
        super().__init__(max_fps=max_fps, clock=clock, auto_refresh=auto_refresh)
        if isinstance(source, RunHandle):
            self.pipeline = source.pipeline
        elif isinstance(source, Pipeline):
            self.pipeline = source
        else:
            raise TypeError(f"PipelineDiagram: pass a RunHandle or a Pipeline, got {type(source).__name__}")
        self.source = source
        self.counts: dict[str, Any] = {}

    def _pull(self) -> bool:
        if not isinstance(self.source, RunHandle):
            return False
        steps = self.source.metrics["steps"]
        counts = {sid: (m["in"], dict(m["out"])) for sid, m in steps.items()}
        if counts == self.counts:
            return False
        self.counts = counts
        return True

    def layout(self) -> dict[str, Any]:
        """Node boxes (id, label, kind, x, y, counts) and edges (from, to, output, rows); a node's ``kind``
        is its step's registered label (``ReplaySource``, ``parse``, ``VelocityFeature``)."""
        p = self.pipeline
        depth: dict[str, int] = {}
        for sid, step in p.steps.items():  # steps are stored in build order: inputs come first
            depth[sid] = 1 + max((depth.get(ref.split(".")[0], 0) for ref in step.inputs), default=-1)
        rows: dict[int, int] = {}
        nodes: list[dict[str, Any]] = []
        pos: dict[str, tuple[float, float]] = {}

        def place(nid: str, col: int, label: str, kind: str, dashed: bool, text: str) -> None:
            row = rows.get(col, 0)
            rows[col] = row + 1
            x, y = _PAD + col * _DX, _PAD + row * _DY
            pos[nid] = (x, y)
            nodes.append(
                {"id": nid, "label": label, "kind": kind, "x": x, "y": y, "dashed": dashed, "text": text}
            )

        for sid, step in p.steps.items():
            n_in, outs = self.counts.get(sid, (None, {}))
            text = "" if n_in is None else f"in {n_in:,}" if step.inputs else f"read {outs.get('out', 0):,}"
            place(sid, depth[sid], sid, label_of(step), False, text)  # what the step is: its registered label
        edges: list[dict[str, Any]] = []
        for sid, step in p.steps.items():
            for ref in step.inputs:
                src, _, out = ref.partition(".")
                edges.append({"from": src, "to": sid, "output": out or "out", "rows": self._rows(src, out)})
        for ref in p.unattached_outputs():
            src, _, out = ref.partition(".")
            step = p.steps[src]
            if not out or (out == "early" and not getattr(step, "early", True)):
                continue
            n = self._rows(src, out)
            place(ref, depth[src] + 1, out, "collected", True, "" if n is None else f"{n:,} rows")
            edges.append({"from": src, "to": ref, "output": out, "rows": n})
        for e in edges:
            e["x0"], e["y0"] = pos[e["from"]][0] + _W, pos[e["from"]][1] + _H / 2
            e["x1"], e["y1"] = pos[e["to"]][0], pos[e["to"]][1] + _H / 2
        width = _PAD + max((n["x"] + _W for n in nodes), default=_W) + _PAD
        height = _PAD + max((n["y"] + _H for n in nodes), default=_H) + _PAD
        return {"nodes": nodes, "edges": edges, "width": width, "height": height}

    def _rows(self, sid: str, out: str) -> int | None:
        if sid not in self.counts:
            return None
        return int(self.counts[sid][1].get(out or "out", 0))

    def svg(self) -> str:
        """The diagram as an SVG string."""
        self._pull()
        lay = self.layout()
        parts = [
            f'<svg xmlns="http://www.w3.org/2000/svg" class="streamlab-diagram" width="{lay["width"]}" '
            f'height="{lay["height"]}" font-family="sans-serif" font-size="12">',
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" '
            'orient="auto"><path d="M0,0L10,5L0,10z" fill="#555"/></marker></defs>',
        ]
        for e in lay["edges"]:
            dash = ' stroke-dasharray="4 3"' if e["output"] != "out" else ""
            parts.append(
                f'<path d="M{e["x0"]},{e["y0"]} C{e["x0"] + 30},{e["y0"]} {e["x1"] - 30},{e["y1"]} {e["x1"]},{e["y1"]}" '
                f'fill="none" stroke="#555"{dash} marker-end="url(#arrow)"/>'
            )
            label = "" if e["output"] == "out" else e["output"] + " "
            if e["rows"] is not None:
                label += f"{e['rows']:,}"
            if label:
                mx, my = (e["x0"] + e["x1"]) / 2, (e["y0"] + e["y1"]) / 2 - 4
                parts.append(
                    f'<text class="edge-count" data-from="{html.escape(e["from"])}" data-to="{html.escape(e["to"])}" '
                    f'x="{mx}" y="{my}" text-anchor="middle" fill="#333">{html.escape(label.strip())}</text>'
                )
        for n in lay["nodes"]:
            dash = ' stroke-dasharray="5 3"' if n["dashed"] else ""
            fill = "#fff4e5" if n["dashed"] else "#eef3fb"
            parts.append(
                f'<g class="step" data-step="{html.escape(n["id"])}"><rect x="{n["x"]}" y="{n["y"]}" width="{_W}" '
                f'height="{_H}" rx="8" fill="{fill}" stroke="#4c78a8"{dash}/>'
                f'<text x="{n["x"] + 10}" y="{n["y"] + 18}" font-weight="bold">{html.escape(n["label"])}</text>'
                f'<text x="{n["x"] + 10}" y="{n["y"] + 33}" fill="#555">{html.escape(n["kind"])}</text>'
                f'<text class="count" x="{n["x"] + 10}" y="{n["y"] + 48}">{html.escape(n["text"])}</text></g>'
            )
        parts.append("</svg>")
        return "".join(parts)

    def _repr_html_(self) -> str:
        return self.svg()

    def to_html(self, path: str | os.PathLike[str]) -> None:
        """Write the diagram as a standalone HTML page."""
        title = html.escape(self.pipeline.name)
        page = f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body>{self.svg()}</body></html>"
        with open(os.fspath(path), "w", encoding="utf-8") as f:
            f.write(page)

    def figure(self) -> Any:
        """The same diagram as a static plotly figure (boxes as shapes, labels as annotations)."""
        go = require_plotly()
        self._pull()
        lay = self.layout()
        fig = go.Figure()
        shapes, notes = [], []
        for e in lay["edges"]:
            shapes.append({"type": "line", "x0": e["x0"], "y0": -e["y0"], "x1": e["x1"], "y1": -e["y1"]})
            if e["rows"] is not None:
                notes.append(
                    {"x": (e["x0"] + e["x1"]) / 2, "y": -(e["y0"] + e["y1"]) / 2, "text": f"{e['rows']:,}"}
                )
        for n in lay["nodes"]:
            shapes.append(
                {"type": "rect", "x0": n["x"], "y0": -n["y"], "x1": n["x"] + _W, "y1": -n["y"] - _H,
                 "line": {"dash": "dash" if n["dashed"] else "solid"}, "fillcolor": "#eef3fb", "layer": "below"}
            )  # fmt: skip
            text = f"<b>{html.escape(n['label'])}</b><br>{html.escape(n['kind'])}<br>{html.escape(n['text'])}"
            notes.append({"x": n["x"] + _W / 2, "y": -n["y"] - _H / 2, "text": text})
        fig.update_layout(
            shapes=shapes,
            annotations=[{**a, "showarrow": False} for a in notes],
            xaxis={"visible": False, "range": [0, lay["width"]]},
            yaxis={"visible": False, "range": [-lay["height"], 0]},
            height=lay["height"] + 40,
            margin={"l": 10, "r": 10, "t": 30, "b": 10},
            title=f"pipeline {self.pipeline.name}",
        )
        return fig

    def _make_view(self) -> Any:
        widgets = require_widgets()
        self._pull()
        return widgets.HTML(value=self.svg())

    def _redraw(self) -> None:
        self._view.value = self.svg()
