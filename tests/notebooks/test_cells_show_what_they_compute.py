"""A notebook shows a value only as the last expression of a cell: a bare name or expression in the middle
of a cell computes it and throws it away, so the table the text goes on to discuss never appears (notebook
03's window table, which its "why one watermark makes events late" paragraph reads, did that)."""

from __future__ import annotations

import ast
import pathlib

import nbformat
import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def unshown_values(source: str) -> list[str]:
    """Expression statements before a cell's last statement that only produce a value (calls, awaits and
    docstring-like constants have effects or intent of their own)."""
    body = ast.parse(source).body
    return [
        ast.unparse(node)
        for node in body[:-1]
        if isinstance(node, ast.Expr) and not isinstance(node.value, (ast.Call, ast.Await, ast.Constant))
    ]


def test_a_value_in_the_middle_of_a_cell_is_found() -> None:
    cell = "table = make()\ntable\nassert len(table) > 1\n"
    assert unshown_values(cell) == ["table"]
    assert unshown_values("table = make()\nassert len(table) > 1\ntable\n") == []
    assert unshown_values("fig.show()\nawait asyncio.sleep(1)\nx\n") == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_value_a_cell_computes_for_show_is_shown(path: pathlib.Path) -> None:
    nb = nbformat.read(path, as_version=4)
    lost = {
        i: unshown_values(cell.source)
        for i, cell in enumerate(c for c in nb.cells if c.cell_type == "code")
        if unshown_values(cell.source)
    }
    assert lost == {}, f"code cells whose values are never displayed (move them last): {lost}"
