"""Fixtures for the real-browser widget tests: JupyterLab and Voila on 127.0.0.1, Debian's Chromium via Playwright.

Servers get free ports, private settings/runtime dirs and are stopped by their PID (SIGTERM, so they shut
their kernels down). Chromium must be installed (the ``chromium`` fixture, tests/_chromium.py, says how); Playwright's own browser
download is never used. Every non-loopback request from the page is aborted, so the tests are hermetic.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "streamlab-widgets-test"


def poll(
    cond: Callable[[], Any],
    timeout: float,
    what: str,
    log: Path | None = None,
    pause: Callable[[float], Any] | None = None,
) -> Any:
    """Poll ``cond`` until truthy (returns its value) or fail after ``timeout`` seconds.

    ``pause(seconds)`` waits between tries; pass ``lambda s: page.wait_for_timeout(s * 1000)`` when polling a
    page, so Playwright keeps serving the page's events while the test waits.
    """
    expired = threading.Event()
    timer = threading.Timer(timeout, expired.set)
    timer.start()
    try:
        while True:
            value = cond()
            if value:
                return value
            if pause is not None:
                pause(0.2)
            if expired.wait(0 if pause is not None else 0.2):
                tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
                raise AssertionError(f"{what} not reached within {timeout} s\n{tail}")
    finally:
        timer.cancel()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM our server's PID (it shuts its kernels down), SIGKILL only if it hangs."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def server_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        JUPYTERLAB_SETTINGS_DIR=str(tmp / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp / "workspaces"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        JUPYTER_CONFIG_DIR=str(tmp / "config"),
        JUPYTER_DATA_DIR=str(tmp / "data"),
        PYTHONUNBUFFERED="1",
        # a kernel that crashes writes its threads' tracebacks into the server's log (the kernel inherits it)
        PYTHONFAULTHANDLER="1",
    )
    settings = tmp / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text('{"fetchNews": "false", "checkForUpdates": false}')  # no news toast over the page
    return env


@contextlib.contextmanager
def log_on_failure(log: Path) -> Iterator[None]:
    """Print the end of a server's log when the test inside fails: a kernel that died and was restarted,
    or a traceback, shows there and nowhere else (the log lives in the test's tmp directory)."""
    try:
        yield
    except BaseException:
        print(f"--- {log.name} (last 6000 characters) ---\n{log.read_text(errors='replace')[-6000:]}")
        raise


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return bool(r.status == 200)
    except OSError:
        return False


@contextlib.contextmanager
def run_jupyterlab(root: Path, tmp: Path) -> Iterator[str]:
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    log = tmp / "jupyterlab.log"
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={TOKEN}",
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.expose_app_in_browser=True", "--LabApp.extension_manager=readonly",
    ]  # fmt: skip
    if os.geteuid() == 0:
        cmd.append("--allow-root")  # jupyter_server refuses root without it
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=server_env(tmp), cwd=root)
    try:
        base = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"jupyter lab exited rc={proc.returncode}:\n{log.read_text()[-3000:]}")
            return _up(f"{base}/api/status?token={TOKEN}")

        poll(ready, 90, "JupyterLab /api/status", log)
        with log_on_failure(log):
            yield base
    finally:
        stop_process(proc)


def voila_log(tmp: Path) -> Path:
    """The log of the Voila server that ``run_voila(notebook, tmp)`` started."""
    return tmp / "voila.log"


@contextlib.contextmanager
def run_voila(notebook: Path, tmp: Path) -> Iterator[str]:
    port = free_port()
    tmp.mkdir(parents=True, exist_ok=True)
    log = voila_log(tmp)
    # Voila is not a ServerApp: it rejects --allow-root and runs as root without it.
    cmd = [
        sys.executable, "-m", "voila", "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
        "--Voila.port_retries=0", "--show_tracebacks=True", f"--Voila.root_dir={notebook.parent}",
        str(notebook),
    ]  # fmt: skip
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            cmd, stdout=fh, stderr=subprocess.STDOUT, env=server_env(tmp), cwd=notebook.parent
        )
    try:

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"voila exited rc={proc.returncode}:\n{log.read_text()[-3000:]}")
            # "/" executes the notebook, other paths 403: wait for the banner instead of probing.
            return "is running at" in log.read_text(errors="replace")

        poll(ready, 90, "Voila banner", log)
        with log_on_failure(log):
            yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


# What a Voila page shows when a widget output can never render: the kernel that made the widgets is
# gone (restarted after dying: the restarted one has no widgets) or the page's widget manager restored
# without the output's model. Waiting longer cannot help, so the wait below fails at once and says which.
# jupyter_client's restarter logs this when the kernel process is gone (restarting it, or giving up)
RESTARTER = "KernelRestarter:"
DEAD_WIDGET = "() => [...document.querySelectorAll('.jupyter-widgets')].some(e => e.textContent.startsWith('Error displaying widget'))"


def open_voila(page: Any, base: str, selector: str, tmp: Path, timeout: float = 120.0) -> None:
    """Load the page of the Voila server ``run_voila(notebook, tmp)`` started at ``base`` (Voila executes
    the notebook before the page finishes loading) and wait until ``selector`` is in the page; fail as
    soon as the page or the server's log shows it never will be."""
    log = voila_log(tmp)
    page.goto(base + "/", timeout=300_000, wait_until="load")

    def rendered() -> bool:
        if RESTARTER in log.read_text(errors="replace"):
            raise AssertionError(f"Voila's kernel died ({RESTARTER!r} in {log.name})")
        if page.evaluate(DEAD_WIDGET):
            raise AssertionError(f"Voila shows 'Error displaying widget' instead of {selector}")
        return page.locator(selector).count() > 0

    poll(
        rendered,
        timeout,
        f"{selector} in the Voila page",
        log,
        pause=lambda s: page.wait_for_timeout(s * 1000),
    )


LOOPBACK_ONLY = re.compile(r"^(?!https?://(127\.0\.0\.1|localhost)[:/]|data:|blob:|about:)")


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the browser tests need Playwright for Python: pip install playwright", pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1300, "height": 1400})
    blocked: list[str] = []
    ctx.route(LOOPBACK_ONLY, lambda route: (blocked.append(route.request.url), route.abort()))
    pg = ctx.new_page()
    pg.page_errors = []
    pg.on("pageerror", lambda e: pg.page_errors.append(str(e)))
    yield pg
    ctx.close()


@pytest.fixture
def servers() -> SimpleNamespace:
    """Server helpers for the browser tests (a conftest cannot be imported under --import-mode=importlib)."""
    return SimpleNamespace(lab=run_jupyterlab, voila=run_voila, open_voila=open_voila, poll=poll, token=TOKEN)
