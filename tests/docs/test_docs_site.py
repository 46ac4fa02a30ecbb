"""The documentation site: built from the docstrings and the executed notebook suite, opened in Chromium.

The build (``scripts/build_docs.py``: notebooks executed, live charts snapshotted, ``mkdocs build
--strict`` so a broken internal link or an unreadable docstring fails it) runs once for this module;
``scripts/test.sh`` runs it in the background with notebooks 01 and 10 executed (every kind of output it
turns into static HTML; the others run under nbval), a run without it builds with all of them. The
pages are served on 127.0.0.1 and opened in Debian's Chromium; every request that leaves the machine is
aborted and counted, so the site is proven to need no network. Screenshots go to ``test-artifacts/docs``.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "docs"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # a site built before (scripts/docs.sh build), tested as it is; or the one scripts/test.sh builds in
    # the background while the other tests run; else build it here
    built = os.environ.get("STREAMLAB_DOCS_SITE")
    background = os.environ.get("STREAMLAB_DOCS_BUILD")
    if built:
        out = Path(built)
    elif background:
        out = wait_for_build(Path(background))
    else:
        out = build_site(tmp_path_factory.mktemp("site"))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(out))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined,method-assign]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.outside = []  # requests that would leave the machine

    def route(r: Any) -> None:
        host = r.request.url.split("/")[2].split(":")[0] if "://" in r.request.url else ""
        if r.request.url.startswith(("http://127.0.0.1", "data:", "blob:")) or host == "127.0.0.1":
            r.continue_()
        else:
            pg.outside.append(r.request.url)
            r.abort()

    pg.route("**/*", route)
    pg.errors = []
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    yield pg
    context.close()


def build_site(out: Path) -> Path:
    log = out.parent / "docs-build.log"
    with log.open("w") as f:
        code = subprocess.call(
            [sys.executable, str(ROOT / "scripts" / "build_docs.py"), "--site", str(out)],
            cwd=ROOT,
            stdout=f,
            stderr=subprocess.STDOUT,
            timeout=1500,
        )
    text = log.read_text(errors="replace")
    # mkdocs --strict exits non-zero on any warning (broken link, unreadable docstring, missing page)
    assert code == 0, f"the documentation build failed (exit {code}):\n{text[-6000:]}"
    assert not re.search(r"^(WARNING|ERROR)\s+-", text, flags=re.M), text[-6000:]
    return out


def wait_for_build(build: Path, timeout: float = 1800) -> Path:
    """The site scripts/test.sh builds in the background: wait for its status file, then check its log."""
    status = build / "docs-status"
    done = threading.Event()
    deadline = threading.Timer(timeout, done.set)
    deadline.start()
    try:
        while not status.exists() and not done.wait(1.0):
            pass
    finally:
        deadline.cancel()
    log_file = build / "docs-build.log"
    log = log_file.read_text(errors="replace") if log_file.exists() else ""
    assert status.exists(), f"the documentation build did not finish within {timeout} s:\n{log[-6000:]}"
    code = int(status.read_text().strip() or 1)
    assert code == 0, f"the documentation build failed (exit {code}):\n{log[-6000:]}"
    assert not re.search(r"^(WARNING|ERROR)\s+-", log, flags=re.M), log[-6000:]
    return build / "site"


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def plots(page: Any) -> list[int]:
    """Trace counts of the plotly charts drawn on the page."""
    return page.evaluate(
        "() => [...document.querySelectorAll('.js-plotly-plot')].map(d => (d._fullData || []).length)"
    )


def test_home_page_links_every_section(site: str, page: Any) -> None:
    page.goto(f"{site}/index.html")
    text = page.inner_text("body")
    for section in ("Getting started", "Semantics", "Architectures", "Notebooks", "API reference"):
        assert section in text, section
    shot(page, "home")
    assert not page.outside and not page.errors, (page.outside, page.errors)


def test_notebook_page_shows_the_executed_charts(site: str, page: Any) -> None:
    page.goto(f"{site}/notebooks/01_quickstart.html")
    page.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length >= 3", timeout=30_000)
    drawn = plots(page)
    assert sum(1 for n in drawn if n > 0) >= 3, drawn  # the live dashboard's charts, with their traces
    text = page.inner_text("body")
    assert "Out[" in text and "finished" in text  # executed, to the end of the run
    shot(page, "notebook-01-quickstart")
    assert not page.outside and not page.errors, (page.outside, page.errors)


def test_api_page_renders_docstrings_with_examples(site: str, page: Any) -> None:
    page.goto(f"{site}/api/pipeline.html")
    text = page.inner_text("body")
    assert "Pipeline" in text and "Stream" in text and "Examples" in text
    assert page.locator("h2#streamlab.pipeline.Pipeline, [id='streamlab.pipeline.Pipeline']").count() >= 1
    shot(page, "api-pipeline")
    assert not page.outside and not page.errors, (page.outside, page.errors)
