"""Live charts render while the pipeline runs on a busy machine, proven in a real browser.

Each test keeps both cores busy with two bounded busy loops it starts itself (killed on teardown),
then drives the shipped notebooks as a reader would: *Run All* in JupyterLab, or the page Voila serves.
Everything is read from the page: each plotly chart's ``data`` (traces and points the reader sees), its
axis type and tick labels, and the browser console. Screenshots go to ``test-artifacts/`` (or
``$STREAMLAB_TEST_ARTIFACTS``) for CI to keep.

Stated times (on a 2-core machine with both cores busy): the window chart shows traces within
``FIRST_TRACES_S`` of the control panel first reporting events (the first batch has reached the
widgets); it then grows between two samples taken while the run goes on.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ROOT / "notebooks"
ARTIFACTS = Path(os.environ.get("STREAMLAB_TEST_ARTIFACTS", ROOT / "test-artifacts"))
FIRST_TRACES_S = 30.0  # first batch in the widgets -> traces on screen, with both cores busy
HOG_SECONDS = 240  # each busy loop ends by itself even if teardown never runs

PLOTS = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(p => {
  const title = p.querySelector('.gtitle');
  const xaxis = p._fullLayout && p._fullLayout.xaxis;
  return {
    title: title ? title.textContent : '',
    traces: (p.data || []).length,
    points: (p.data || []).reduce((n, t) => n + (t.x ? t.x.length : 0), 0),
    newest: (p.data || []).map(t => (t.x && t.x.length ? String(t.x[t.x.length - 1]) : '')).join('|'),
    xtype: xaxis ? xaxis.type : null,
    ticks: Array.from(p.querySelectorAll('.xtick text')).map(t => t.textContent),
  };
})"""

KERNEL_READY = """() => {
  const nb = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  const k = nb && nb.sessionContext && nb.sessionContext.session && nb.sessionContext.session.kernel;
  return !!k && k.connectionStatus === 'connected' && k.status === 'idle';
}"""

# Raw epoch numbers on a date axis look like "1.7092836T" or "1,709,283,600,000".
EPOCH_TICK = re.compile(r"^\s*[\d.,]+\s*[kMGT]?\s*$")
CLOCK_TICK = re.compile(r"\d\d:\d\d")


@pytest.fixture
def busy_cores() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Two bounded busy loops, one per core, for the length of the test."""
    loop = f"import time\nt = time.monotonic()\nwhile time.monotonic() - t < {HOG_SECONDS}: pass\n"
    hogs = [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(2)]
    try:
        yield hogs
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait(10)


@pytest.fixture
def console(page: Any) -> Iterator[list[str]]:
    """Console errors of the page, except requests to other hosts (the test aborts those on purpose)."""
    errors: list[str] = []

    def on_console(msg: Any) -> None:
        if msg.type != "error":
            return
        url = (msg.location or {}).get("url", "")
        if msg.text.startswith("Failed to load resource") and (
            "net::ERR_FAILED" in msg.text or "404" in msg.text
        ):
            return  # blocked non-loopback requests; Lab's probe of optional server endpoints
        if "labextensions/jupyterlab-jupytext" in msg.text:
            return  # Voila 0.5 cannot load jupytext's Lab 4.6 extension (a dev tool, not the product)
        errors.append(f"{msg.text} ({url})")

    page.on("console", on_console)
    yield errors
    print("console errors:", errors, "page errors:", page.page_errors)  # shown when the test fails


def own_page_errors(page: Any) -> list[str]:
    """Uncaught errors (and unhandled rejections, e.g. anywidget's "Failed to initialize model") from
    the widgets; Voila's renderer of the notebooks' static plotly outputs is not ours."""
    ours = ("anywidget", "streamlab", "widget", "plotly.js")
    return [e for e in page.page_errors if any(word in e for word in ours)]


def plots(page: Any) -> list[dict[str, Any]]:
    return list(page.evaluate(PLOTS))


def chart(page: Any, title: str) -> dict[str, Any] | None:
    return next((p for p in plots(page) if p["title"].startswith(title)), None)


def wait(page: Any, cond: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s (charts: {plots(page)})")
        page.wait_for_timeout(250)  # Playwright keeps serving the page while the test waits


def events_reported(page: Any) -> int:
    """Events the control panel's status line reports (0 before the first batch)."""
    status = page.locator(".streamlab-status")
    if status.count() == 0:
        return 0
    m = re.search(r"([\d,]+) events", status.first.inner_text())
    return int(m.group(1).replace(",", "")) if m else 0


def status_text(page: Any) -> str:
    status = page.locator(".streamlab-status")
    return str(status.first.inner_text()) if status.count() else ""


def assert_dates(p: dict[str, Any]) -> None:
    assert p["xtype"] == "date", p
    assert p["ticks"] and not any(EPOCH_TICK.match(t) for t in p["ticks"]), p["ticks"]
    assert any(CLOCK_TICK.search(t) for t in p["ticks"]), p["ticks"]


def screenshot(page: Any, name: str) -> None:
    """The dashboard as the reader sees it (Playwright scrolls it into view), else the whole page."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    dashboard = page.locator(".streamlab-dashboard")
    if dashboard.count():
        dashboard.first.screenshot(path=str(ARTIFACTS / name))
    else:
        page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def run_all(page: Any, base: str, name: str, token: str) -> None:
    page.goto(f"{base}/lab/tree/{name}?token={token}&reset")
    page.wait_for_selector(".jp-Notebook", timeout=90_000)
    page.wait_for_function(KERNEL_READY, timeout=90_000, polling=200)
    # Not awaited: the promise resolves when every cell has run, and the test samples the page meanwhile.
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); return true; }")


def test_quickstart_run_all_is_live_under_load(page, servers, console, busy_cores, tmp_path):
    shutil.copy(NOTEBOOKS / "01_quickstart.ipynb", tmp_path / "01_quickstart.ipynb")
    with servers.lab(tmp_path, tmp_path / "lab") as base:
        run_all(page, base, "01_quickstart.ipynb", servers.token)
        wait(page, lambda: events_reported(page) > 0, 180, "the first batch reaches the widgets")
        first = wait(
            page,
            lambda: (p := chart(page, "count per event_type")) and p["points"] > 0 and p,
            FIRST_TRACES_S,
            "window chart traces after the first batch",
        )
        assert first["traces"] >= 1
        page.wait_for_timeout(3000)
        # Still during the run. The notebook itself pauses and plays about now (its cell 9), so the
        # status line may show that pause for one redraw: wait for it to say "running" again.
        wait(page, lambda: "running" in status_text(page), 10, "the status line back at 'running'")
        later = chart(page, "count per event_type")
        assert later is not None
        assert later["points"] > first["points"], (first, later)  # the chart grows while we watch
        assert_dates(later)
        screenshot(page, "quickstart_live_mid_run.png")
        debugger = chart(page, "watermark")
        assert debugger is not None and debugger["points"] > 0
        assert_dates(debugger)
    assert console == []
    assert own_page_errors(page) == []


def test_iot_notebook_run_all_live_anomaly_chart_and_threshold_slider_under_load(
    page, servers, console, busy_cores, tmp_path
):
    shutil.copy(NOTEBOOKS / "09_iot_anomalies.ipynb", tmp_path / "09_iot_anomalies.ipynb")
    with servers.lab(tmp_path, tmp_path / "lab") as base:
        run_all(page, base, "09_iot_anomalies.ipynb", servers.token)
        wait(page, lambda: events_reported(page) > 0, 240, "the live section's first batch")
        first = wait(
            page,
            lambda: (p := chart(page, "vibration score")) and p["points"] > 0 and p,
            FIRST_TRACES_S,
            "anomaly chart traces after the first batch",
        )
        page.wait_for_timeout(3000)
        later = chart(page, "vibration score")
        assert later is not None and moved(first, later), (first, later)
        assert_dates(later)
        wait(page, lambda: alert_share(page) is not None, 30, "an alert rate in the anomaly chart")
        before = alert_share(page)
        assert before is not None
        move_slider(page, ".streamlab-threshold-detect", "0.9")
        after = wait(
            page,
            lambda: (s := alert_share(page)) is not None and s > 1.5 * before + 0.01 and s,
            40,
            f"the alert rate rising from {before:.2%} after the threshold moved down",
        )
        screenshot(page, "iot_detector_dashboard.png")
        assert after > before
    assert console == []
    assert own_page_errors(page) == []


def test_voila_fraud_dashboard_is_live_under_load(page, servers, console, busy_cores, tmp_path):
    nb = tmp_path / "08_fraud_detection.ipynb"
    shutil.copy(NOTEBOOKS / "08_fraud_detection.ipynb", nb)
    with servers.voila(nb, tmp_path / "voila") as base:
        servers.open_voila(page, base, ".streamlab-dashboard", tmp_path / "voila")
        first = wait(
            page,
            lambda: (p := chart(page, "amount score")) and p["points"] > 0 and p,
            FIRST_TRACES_S + 30,
            "the live anomaly chart in Voila",
        )
        page.wait_for_timeout(3000)
        later = chart(page, "amount score")
        assert later is not None and moved(first, later), (first, later)
        assert_dates(later)
        wait(page, lambda: alert_share(page) is not None, 30, "an alert rate in the anomaly chart")
        before = alert_share(page)
        assert before is not None
        move_slider(page, ".streamlab-threshold-detect", "0.9")
        wait(
            page,
            lambda: (s := alert_share(page)) is not None and s > 1.5 * before + 0.01 and s,
            40,
            f"the alert rate rising from {before:.2%} after the threshold moved down",
        )
        screenshot(page, "fraud_detector_dashboard_voila.png")
        body = page.inner_text("body")
        assert "Traceback" not in body, body[:2000]
    assert console == []
    assert own_page_errors(page) == []


def moved(first: dict[str, Any], later: dict[str, Any]) -> bool:
    """Whether a chart drew new events between two samples: more points, or (once it holds its
    ``max_points``, as a chart first drawn late on a slow machine may already) a newer last point."""
    return bool(later["points"] != first["points"] or later["newest"] != first["newest"])


def alert_share(page: Any) -> float | None:
    """The flagged share of recent events that the anomaly chart's title reports (None before it does)."""
    for p in plots(page):
        m = re.search(r"alerts/s \(([\d.]+)%\)", p["title"])
        if m:
            return float(m.group(1)) / 100
    return None


def move_slider(page: Any, css: str, value: str) -> None:
    """Type a value into an ipywidgets slider's readout, as a reader can."""
    readout = page.locator(f"{css} .widget-readout")
    readout.click()
    page.keyboard.press("Control+A")
    page.keyboard.type(value)
    page.keyboard.press("Enter")
