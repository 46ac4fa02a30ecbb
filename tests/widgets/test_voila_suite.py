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
        servers.open_voila(page, base, marker, tmp_path / "voila")
        body = page.inner_text("body")
        assert "Traceback" not in body and "Error" not in body.split("\n")[0], body[:2000]
        assert page.locator(".jp-OutputArea-output").count() > 3


@pytest.mark.browser
def test_voila_shows_the_quickstart_dashboard_with_its_final_data(page, servers, tmp_path):
    """The quickstart ends with stop_refresh(), not close(): served by Voila it shows the finished run."""
    nb = tmp_path / "01_quickstart.ipynb"
    shutil.copy(NOTEBOOKS / "01_quickstart.ipynb", nb)
    with servers.voila(nb, tmp_path / "voila") as base:
        servers.open_voila(page, base, ".streamlab-dashboard .js-plotly-plot", tmp_path / "voila")
        points = page.wait_for_function(
            "() => { const n = document.querySelectorAll("
            "'.streamlab-dashboard .js-plotly-plot .points path.point').length; return n > 0 && n; }",
            timeout=60_000,
            polling=200,
        ).json_value()
        body = page.inner_text("body")
        assert points > 0 and "Loading widget" not in body and "Traceback" not in body, body[:2000]
        assert "status=finished" in body  # every cell ran server-side
