"""``verify(target="beam")`` without apache-beam raises the ImportError naming the extra before any work,
as ``run_beam`` does; it ran the pipeline, exported it and started the program, whose
ModuleNotFoundError came back wrapped in ``RuntimeError: the exported Beam program failed``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from streamlab import Pipeline
from streamlab.export import verify
from streamlab.testing import ListSource


def test_beam_without_apache_beam_names_the_extra_before_any_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec

    def find_spec(name: str, package: str | None = None) -> Any:
        return None if name.split(".")[0] == "apache_beam" else real(name, package)

    def run_local(*args: Any) -> Any:
        raise AssertionError("the local pipeline ran before the check")

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    monkeypatch.setattr(sys.modules["streamlab.export.verify"], "run_local", run_local)
    p = Pipeline(ListSource([b"{}"]), name="nobeam")
    p.parse({"timestamp": "timestamp", "x": "string"})
    with pytest.raises(ImportError, match=r"apache-beam: pip install 'streamlab\[beam\]'"):
        verify(p, [b'{"timestamp": 1, "x": "a"}'], "beam", workdir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # nothing exported
