"""The notebooks teach the public API: every name they import from streamlab is in its module's ``__all__``,
from a module without a private (``_``) part. 05, 08 and 09 imported ``load_module``, ``sample_lines``
(``streamlab.export.verify``) and ``kinesis_event`` (``streamlab.export.aws_lambda``), helpers of the
verifier that no ``__all__`` lists: a reader copying them would depend on internals."""

from __future__ import annotations

import ast
import importlib
import pathlib

import nbformat
import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def non_public_imports(source: str) -> list[str]:
    """``module.name`` for every streamlab import of ``source`` outside the documented surface."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "streamlab":
            modules, names = [node.module], [(node.module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            modules, names = [a.name for a in node.names if a.name.split(".")[0] == "streamlab"], []
        else:
            continue
        found += [m for m in modules if any(part.startswith("_") for part in m.split("."))]
        for module_name, name in names:
            module = importlib.import_module(module_name)
            submodule = f"{module_name}.{name}"
            if name not in getattr(module, "__all__", ()) and not _is_public_module(submodule):
                found.append(submodule)
    return found


def _is_public_module(name: str) -> bool:
    if any(part.startswith("_") for part in name.split(".")):
        return False
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def test_internals_are_found() -> None:
    source = "from streamlab.export.verify import sample_lines, verify\nimport streamlab._lines\n"
    assert sorted(non_public_imports(source)) == ["streamlab._lines", "streamlab.export.verify.sample_lines"]
    assert non_public_imports("from streamlab import Pipeline\nfrom streamlab import detectors\n") == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebooks_import_only_public_names(path: pathlib.Path) -> None:
    nb = nbformat.read(path, as_version=4)
    found = [name for c in nb.cells if c.cell_type == "code" for name in non_public_imports(c.source)]
    assert found == [], f"not in their module's __all__: {found}"
