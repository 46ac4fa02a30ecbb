"""Voila serves the suite's dashboard notebooks: every cell runs server-side and the page shows no error."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


@pytest.mark.browser
@pytest.mark.parametrize(
    ("name", "marker"),
    [("06_kafka_redis_dashboard.ipynb", ".js-plotly-plot")],
)
def test_voila_serves_the_dashboard_notebook(page, servers, tmp_path, name, marker):
    nb = tmp_path / name
    shutil.copy(NOTEBOOKS / name, nb)
    with servers.voila(nb, tmp_path / "voila") as base:
        # Voila executes every cell before the page finishes loading
        page.goto(base + "/", timeout=240_000, wait_until="load")
        page.wait_for_selector(marker, state="attached", timeout=120_000)
        body = page.inner_text("body")
        assert "Traceback" not in body and "Error" not in body.split("\n")[0], body[:2000]
        assert page.locator(".jp-OutputArea-output").count() > 3
