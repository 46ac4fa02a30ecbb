"""Every notebook of the suite is stored clean: nbval executes it (the README's test command) and the
documentation build renders the outputs, so stored outputs would only be stale ones from another run."""

from __future__ import annotations

import pathlib

import nbformat
import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_the_suite_is_found() -> None:
    assert len(NOTEBOOKS) >= 13


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_stored_without_outputs_or_run_metadata(path: pathlib.Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    stale = [i for i, c in enumerate(code) if c.outputs or c.execution_count is not None]
    assert stale == [], f"code cells {stale} carry outputs of an earlier run; clear them before committing"
    assert not [c for c in nb.cells if "execution" in c.metadata]
