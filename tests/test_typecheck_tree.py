"""scripts/typecheck_tree.py: the links that let mypy check connectors/ as streamlab.connectors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streamlab.export.verify import load_module

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "typecheck_tree.py"


def _project(root: Path, package_dir: str) -> None:
    (root / "pyproject.toml").write_text(f"[tool.setuptools]\npackage-dir = {{ {package_dir} }}\n")
    for d in ("pkg", "plugins/sub", "extra"):
        (root / d).mkdir(parents=True)


def test_links_each_renamed_package_once_and_again_idempotently(tmp_path: Path) -> None:
    _project(
        tmp_path,
        '"pkg" = "pkg", "pkg.plugins" = "plugins", "pkg.plugins.sub" = "plugins/sub", "pkg.extra" = "extra"',
    )
    tree = tmp_path / "build" / "typecheck"
    script = load_module(SCRIPT)
    first = script.link_tree(tmp_path, tree)
    again = script.link_tree(tmp_path, tree)
    # pkg.plugins.sub sits inside plugins/, which the pkg.plugins link already shows
    assert first == again == [tree / "pkg" / "extra", tree / "pkg" / "plugins"]
    assert os.readlink(tree / "pkg" / "plugins") == os.path.join("..", "..", "..", "plugins")
    assert (tree / "pkg" / "plugins" / "sub").resolve() == (tmp_path / "plugins" / "sub").resolve()


def test_a_subpackage_outside_its_renamed_parent_is_refused(tmp_path: Path) -> None:
    _project(tmp_path, '"pkg" = "pkg", "pkg.plugins" = "plugins", "pkg.plugins.sub" = "extra"')
    with pytest.raises(SystemExit, match="not inside its parent package's directory"):
        load_module(SCRIPT).link_tree(tmp_path, tmp_path / "build" / "typecheck")
    assert not (tmp_path / "plugins" / "sub").is_symlink()
