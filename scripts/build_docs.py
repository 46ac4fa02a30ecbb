"""Build the documentation site: execute the notebook suite, snapshot its live charts, run MkDocs.

Usage: ``python scripts/build_docs.py [--site DIR] [--only 01,08] [--jobs 2]`` (``scripts/docs.sh`` wraps it).

Each notebook is executed top to bottom in its own kernel. Live widgets need a running kernel, which a
static page has not: before the kernel stops, every widget view in the outputs is replaced by a static
snapshot of its final state (plotly figures as HTML drawn by the plotly.js the site ships, tables and
controls as plain HTML). A live run the notebook left going is waited for first (bounded: a run still going
after ``SNAPSHOT_WAIT_S`` fails the build, naming it, rather than publish it half drawn), and every live view is
refreshed once. plotly figures shown as figures become HTML the same way. Then ``mkdocs build
--strict`` turns warnings (a broken link, a missing page, a docstring mkdocstrings cannot read) into errors.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BUILT_NOTEBOOKS = DOCS / "notebooks"  # generated, git-ignored
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
PLOTLY_MIME = "application/vnd.plotly.v1+json"

# Seconds the snapshot waits, in all, for live runs still going after the last cell to end by themselves.
SNAPSHOT_WAIT_S = 120.0
SNAPSHOTS_MARK = "STREAMLAB-SNAPSHOTS "

# Runs in the notebook's kernel after its last cell; ``_streamlab_snapshots(wait_s)`` returns JSON:
# "unfinished", the names of the runs still going after the wait, and "views", model id -> static HTML of
# that widget view.
SNAPSHOT_CODE = r"""
def _streamlab_snapshots(wait_s):
    import gc, html, json, time
    import ipywidgets
    from streamlab.runtime import RunHandle
    from streamlab.widgets._base import LiveWidget

    live, runs = {}, []
    for obj in gc.get_objects():
        try:
            if isinstance(obj, LiveWidget) and getattr(obj, "_view", None) is not None:
                live[getattr(obj._view, "model_id", None)] = obj
            elif isinstance(obj, RunHandle):
                runs.append(obj)
        except ReferenceError:  # a weak proxy whose object is gone
            continue

    # The page is read long after the notebook ran: a view of a run the notebook left going (a live
    # replay its last cell did not wait for) would show the few events of its first second. Wait for
    # such runs to end by themselves (a paused run waits for a reader: it is shown as it is), then
    # redraw every view once, so each shows what its run ended with.
    deadline = time.monotonic() + wait_s
    for run in runs:
        if run.status == "running":
            try:
                run.wait(timeout=max(0.0, deadline - time.monotonic()))
            except Exception:  # a failed run: its views show the failure
                pass
    unfinished = sorted({run.pipeline.name for run in runs if run.status == "running"})
    for widget in live.values():
        try:
            widget.refresh(force=True)
        except Exception:  # the snapshot below says what failed
            pass

    def figure_html(fig):
        if not fig.data:  # a status-only view (the control panel): its title as text, not empty axes
            title = fig.layout.title.text or ""
            return f"<p><b>{html.escape(str(title))}</b></p>" if title else ""
        fig.update_layout(width=None, autosize=True)  # fit the page's column, whatever the live view had
        return fig.to_html(
            full_html=False, include_plotlyjs=False, config={"displaylogo": False, "responsive": True}
        )

    def render(w, depth=0):
        if depth > 20 or w is None:
            return ""
        mid = getattr(w, "model_id", None)
        if mid in live:
            try:
                return figure_html(live[mid].figure())
            except Exception as e:  # a snapshot must not fail the build silently: say so on the page
                return f"<p><em>snapshot of {type(live[mid]).__name__} failed: {html.escape(repr(e))}</em></p>"
        if hasattr(w, "to_plotly_json") and hasattr(w, "data"):  # a plotly FigureWidget
            import plotly.graph_objects as go
            return figure_html(go.Figure(w))
        if isinstance(w, ipywidgets.Box):
            if isinstance(w, ipywidgets.HBox):  # side by side while there is room, then wrapped
                cells = "".join(f"<div style='flex:1 1 300px;min-width:300px'>{render(c, depth + 1)}</div>" for c in w.children)
                return f"<div style='display:flex;flex-wrap:wrap;gap:8px'>{cells}</div>"
            return "".join(f"<div>{render(c, depth + 1)}</div>" for c in w.children)
        if isinstance(w, ipywidgets.HTML):
            return w.value
        if isinstance(w, ipywidgets.Output):
            parts = []
            for out in w.outputs:
                data = out.get("data", {})
                if "text/html" in data:
                    parts.append(data["text/html"])
                elif "text/plain" in data or "text" in out:
                    parts.append(f"<pre>{html.escape(data.get('text/plain', out.get('text', '')))}</pre>")
            return "".join(parts)
        if isinstance(w, ipywidgets.Label):
            return f"<p>{html.escape(str(w.value))}</p>"
        desc = html.escape(str(getattr(w, "description", "") or ""))
        if isinstance(w, ipywidgets.Button):
            return f"<button disabled>{desc}</button>"
        if hasattr(w, "value"):
            return f"<p><b>{desc}</b> {html.escape(str(w.value))}</p>"
        return ""

    views = {mid: render(w) for mid, w in ipywidgets.Widget.widgets.items()}
    return json.dumps({"unfinished": unfinished, "views": views})
"""


def _plotly_html(spec: dict[str, Any]) -> str:
    import plotly.io as pio

    fig = pio.from_json(json.dumps(spec), skip_invalid=True)
    return pio.to_html(fig, full_html=False, include_plotlyjs=False, config={"displaylogo": False})


def execute(
    path: Path, out_dir: Path, timeout: int, wait_s: float = SNAPSHOT_WAIT_S
) -> tuple[str, float, str | None]:
    """Execute one notebook and write it with static outputs; (name, seconds, error or None).

    Live runs still going after the last cell are waited for, ``wait_s`` seconds in all; one still going
    after that is an error (its page would show it unfinished).
    """
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    started = time.perf_counter()
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    error = None
    snapshots: dict[str, str] = {}
    with client.setup_kernel(cwd=str(path.parent)):
        try:
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)
        except CellExecutionError as e:
            # the exception and the end of its traceback: the first line of str(e) only says "an error
            # occurred while executing the following cell"
            lines = str(e).splitlines()
            error = f"{getattr(e, 'ename', type(e).__name__)}: {getattr(e, 'evalue', '')}\n" + "\n".join(
                lines[-25:]
            )
        call = f"print({SNAPSHOTS_MARK!r} + _streamlab_snapshots({float(wait_s)!r}))"
        probe = nbformat.v4.new_code_cell(f"{SNAPSHOT_CODE}\n{call}\n")
        nb.cells.append(probe)  # nbclient writes the executed cell back into the notebook
        try:
            client.execute_cell(probe, len(nb.cells) - 1)
        except CellExecutionError:
            pass  # reported below: no snapshot line
        finally:
            nb.cells.pop()
        text = "".join(o.get("text", "") for o in probe.outputs if o.get("output_type") == "stream")
        marked = [line for line in text.splitlines() if line.startswith(SNAPSHOTS_MARK)]
        if not marked:  # the probe failed: say why rather than publish pages with empty charts
            error = error or f"chart snapshots failed: {probe.outputs}"[:2000]
        else:
            probed = json.loads(marked[-1][len(SNAPSHOTS_MARK) :])
            snapshots = probed["views"]
            if probed["unfinished"]:
                error = error or (
                    f"live run(s) {probed['unfinished']} still running {wait_s:g} s after the last cell: "
                    "the page would show them unfinished. End the notebook as notebook 01 does: await the "
                    "run's end, then stop the dashboard's refresh"
                )
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data")
            if not data:
                continue
            if WIDGET_MIME in data:
                mid = data[WIDGET_MIME].get("model_id")
                static = snapshots.get(mid)
                out["data"] = {"text/html": static} if static else {"text/plain": data.get("text/plain", "")}
            elif PLOTLY_MIME in data:
                out["data"] = {"text/html": _plotly_html(data[PLOTLY_MIME])}
    nb.metadata.pop("widgets", None)
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_dir / path.name)
    return path.name, time.perf_counter() - started, error


def source_tree() -> Path:
    """The package as it is installed (connectors/ as streamlab/connectors, ...), for mkdocstrings.

    The repository keeps connectors/, widgets/ and datasets/ beside streamlab/; mkdocstrings reads
    sources by module path, so it gets a tree of links in the installed layout (``build/docs-src``).
    """
    tree = ROOT / "build" / "docs-src" / "streamlab"
    shutil.rmtree(tree.parent, ignore_errors=True)
    tree.mkdir(parents=True)
    for entry in (ROOT / "streamlab").iterdir():
        if entry.name != "__pycache__":
            (tree / entry.name).symlink_to(entry)
    for name in ("connectors", "widgets", "datasets"):
        (tree / name).symlink_to(ROOT / name)
    return tree.parent


def build(site: Path, only: list[str] | None, jobs: int, timeout: int) -> int:
    # the notebooks' kernels keep default checkpoints here, not in the user's state directory, so a
    # build never resumes what an earlier build or a notebook session left
    os.environ["STREAMLAB_STATE_DIR"] = tempfile.mkdtemp(prefix="streamlab-docs-state-")
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    shutil.rmtree(BUILT_NOTEBOOKS, ignore_errors=True)
    BUILT_NOTEBOOKS.mkdir(parents=True)
    if only:  # the others are shown without outputs, so every page of the navigation exists
        for p in notebooks:
            if p.name[:2] not in only:
                shutil.copy(p, BUILT_NOTEBOOKS / p.name)
        notebooks = [p for p in notebooks if p.name[:2] in only]
    failed = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        for name, seconds, error in pool.map(lambda p: execute(p, BUILT_NOTEBOOKS, timeout), notebooks):
            print(f"docs: executed {name} in {seconds:.0f} s" + (f" - FAILED: {error}" if error else ""))
            if error:
                failed.append(name)
    if failed:
        print(f"docs: notebooks failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    source_tree()
    assets = DOCS / "assets"
    assets.mkdir(exist_ok=True)
    import plotly

    shutil.copy(Path(plotly.__file__).parent / "package_data" / "plotly.min.js", assets / "plotly.min.js")
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--clean", "--site-dir", str(site)]
    return subprocess.call(cmd, cwd=ROOT, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--site", default=str(ROOT / "site"), help="where to write the site (default: %(default)s)"
    )
    ap.add_argument("--only", help="comma-separated notebook numbers to execute, e.g. 01,08 (default: all)")
    ap.add_argument("--jobs", type=int, default=2, help="notebooks executed at once (default: %(default)s)")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per cell (default: %(default)s)")
    ap.add_argument(
        "--status", help="write the exit status to this file when done (for a build run in the background)"
    )
    args = ap.parse_args(argv)
    only = args.only.split(",") if args.only else None
    code = 1
    try:
        code = build(Path(args.site), only, args.jobs, args.timeout)
    finally:
        if args.status:
            Path(args.status).write_text(f"{code}\n")
    return code


if __name__ == "__main__":
    sys.exit(main())
