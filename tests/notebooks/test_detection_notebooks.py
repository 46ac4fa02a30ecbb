"""The fraud and IoT notebooks' shape (every notebook is stored clean: ``test_stored_clean.py``;
executing them is nbval's job, see the README command)."""

from __future__ import annotations

import ast
import pathlib

import nbformat
import pytest

NOTEBOOKS = pathlib.Path(__file__).resolve().parents[2] / "notebooks"
DETECTION = ["08_fraud_detection.ipynb", "09_iot_anomalies.ipynb"]


@pytest.fixture(params=DETECTION)
def notebook(request: pytest.FixtureRequest) -> nbformat.NotebookNode:
    nb = nbformat.read(NOTEBOOKS / request.param, as_version=4)
    nbformat.validate(nb)
    return nb


def test_opens_with_a_goal_and_checks_its_numbers(notebook: nbformat.NotebookNode) -> None:
    first = notebook.cells[0]
    assert first.cell_type == "markdown"
    assert "**Goal:**" in first.source
    asserts = 0
    for cell in notebook.cells:
        if cell.cell_type == "code":
            tree = ast.parse(cell.source)  # every code cell is plain Python (no magics)
            asserts += sum(isinstance(node, ast.Assert) for node in ast.walk(tree))
    assert asserts >= 5


def test_uses_only_bundled_data_and_a_manual_clock(notebook: nbformat.NotebookNode) -> None:
    source = "\n".join(c.source for c in notebook.cells if c.cell_type == "code")
    assert "ManualClock(0)" in source
    assert "time.sleep" not in source
    assert "http" not in source


def test_the_live_section_comes_last_so_run_all_keeps_its_charts_live(
    notebook: nbformat.NotebookNode,
) -> None:
    """Live views redraw from the kernel's event loop, between cells: a cell that runs after the live
    pipeline starts (Run All) holds the kernel and freezes the charts until it ends. So the cell that
    starts the live run is followed only by cells that read its handle."""
    code = [c.source for c in notebook.cells if c.cell_type == "code"]
    starts = [i for i, src in enumerate(code) if ".start(" in src and "Dashboard(" in src]
    assert len(starts) == 1, "one live section per notebook"
    after = code[starts[0] + 1 :]
    assert all(len(src.splitlines()) <= 3 and "handle." in src for src in after), after


def _detect_calls(notebook: nbformat.NotebookNode) -> list[ast.Call]:
    """The ``.detect(detector, features=...)`` calls of the notebook's code cells."""
    calls = []
    for cell in notebook.cells:
        if cell.cell_type == "code":
            for node in ast.walk(ast.parse(cell.source)):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "detect"
                ):
                    calls.append(node)
    return calls


def test_the_detectors_run_on_the_fast_path_the_text_promises(notebook: nbformat.NotebookNode) -> None:
    """Issue #17: the notebook's detect steps use the vectorized fast path by default, and its text says so.
    A detector built here as the notebook builds it has a vectorized twin (``Detector.vectorized``); a
    change to the notebook or the detector that drops it (a ``window_size``, another detector) fails here."""
    from streamlab import detectors

    text = "\n".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    assert "**fast path**" in text and "nothing to switch on" in text
    calls = _detect_calls(notebook)
    assert calls
    for call in calls:
        detector = eval(compile(ast.Expression(call.args[0]), "<notebook>", "eval"), vars(detectors))
        features = next(k.value for k in call.keywords if k.arg == "features")
        names = (
            ("x",)
            if not isinstance(features, ast.List)
            else tuple(f"f{i}" for i in range(len(features.elts)))
        )
        assert detector.vectorized(names) is not None, ast.unparse(call.args[0])


def test_the_text_says_which_detectors_have_a_grace_period(notebook: nbformat.NotebookNode) -> None:
    """The IoT notebook said ``StandardAbsoluteDeviationDetector`` "has no grace period" (its first
    readings scoring as anomalous): it has one (``grace_period``, 30 by default). A detector the text
    says has none must have no such parameter."""
    import inspect
    import re

    from streamlab import detectors

    text = " ".join(c.source for c in notebook.cells if c.cell_type == "markdown")
    sentences = re.split(r"(?<=[.?!])\s+", " ".join(text.split()))
    for i, sentence in enumerate(sentences):
        if "no grace period" not in sentence:
            continue
        context = " ".join(sentences[max(0, i - 1) : i + 1])
        for name in re.findall(r"`(\w+Detector)`", context):
            assert "grace_period" not in inspect.signature(getattr(detectors, name)).parameters, sentence
