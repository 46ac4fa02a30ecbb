"""Link the directories that ship under another name into build/typecheck/ so mypy checks them by that name.

pyproject's ``package-dir`` installs ``connectors/`` as ``streamlab.connectors`` (likewise ``widgets/`` and
``datasets/``). The editable install maps them with an import hook that mypy cannot follow, and mypy names a
file after the directory it sits in, so ``mypy connectors`` would check a package called ``connectors``.
This script makes ``build/typecheck/streamlab/connectors`` a link to ``connectors/`` (and so on), read from
``package-dir`` so the mapping is written down once; ``[tool.mypy] mypy_path`` points at
``build/typecheck``. mypy then finds ``streamlab`` itself in the repository and ``streamlab.connectors``
through the link, and reports errors in those files as ``build/typecheck/streamlab/connectors/...``.

Run it before ``mypy`` (scripts/test.sh does); it is quick and idempotent::

    python scripts/typecheck_tree.py && mypy
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # mypy itself depends on tomli before 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "typecheck"


def renamed_dirs(pyproject: Path) -> dict[str, str]:
    """Return ``{dotted package: directory}`` for each package whose directory is not its dotted path,
    leaving out subpackages that sit where their renamed parent's link already shows them."""
    with pyproject.open("rb") as f:
        package_dir: dict[str, str] = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    dirs = {name: d.strip("/") for name, d in package_dir.items()}
    renamed = {name: d for name, d in dirs.items() if d != name.replace(".", "/")}

    def covered(name: str) -> bool:
        parts = name.split(".")
        for i in range(len(parts) - 1, 0, -1):
            parent = ".".join(parts[:i])
            if parent in dirs:
                return dirs[name] == "/".join([dirs[parent], *parts[i:]])
        return False

    return {name: d for name, d in renamed.items() if not covered(name)}


def link_tree(root: Path = ROOT, tree: Path = TREE) -> list[Path]:
    """Create (or refresh) one relative link per renamed package under ``tree``; return the links."""
    links = []
    for name, directory in sorted(renamed_dirs(root / "pyproject.toml").items()):
        link = tree.joinpath(*name.split("."))
        if any(parent.is_symlink() for parent in link.parents if tree in parent.parents):
            sys.exit(f"typecheck_tree: {name} ({directory}) is not inside its parent package's directory")
        link.parent.mkdir(parents=True, exist_ok=True)
        target = os.path.relpath(root / directory, link.parent)
        if link.is_symlink() and os.readlink(link) == target:
            links.append(link)
            continue
        if link.is_symlink() or link.is_file():
            link.unlink()
        elif link.exists():
            sys.exit(f"typecheck_tree: {link} is a directory, not a link; remove it and run again")
        link.symlink_to(target, target_is_directory=True)
        links.append(link)
    return links


if __name__ == "__main__":
    for made in link_tree():
        print(f"{made.relative_to(ROOT)} -> {os.readlink(made)}")
