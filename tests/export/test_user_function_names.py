"""A user function is reached under a name of the export's own: named like its step (whose stream the
Beam module names after the step) or like a generated function (``build``, ``process_row``), it was
shadowed by, or shadowed, the generated code's name, and every row went to dead letter or the module
broke."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.export import verify
from streamlab.testing import ListSource

pytest.importorskip("apache_beam")

SCHEMA = {"k": "string", "n": "int64", "timestamp": "timestamp"}
LINES = [
    json.dumps({"k": k, "n": n, "timestamp": f"2024-01-01T00:00:{s:02d}Z"}).encode()
    for s, (k, n) in enumerate([("a", 3), ("b", None), ("a", 5)])
]


def named(name: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A map called ``name``, local so that the export copies its source."""

    def tagged(row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "k": f"{row['k']}!"}

    def build(row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "k": f"{row['k']}!"}

    def process_row(row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "k": f"{row['k']}!"}

    return {"tagged": tagged, "build": build, "process_row": process_row}[name]


@pytest.mark.parametrize("target", ["beam", "lambda"])
@pytest.mark.parametrize("name", ["tagged", "build", "process_row"])
def test_a_function_named_like_its_step_or_a_generated_function(
    name: str, target: str, tmp_path: Path
) -> None:
    p = Pipeline(ListSource([b"{}"]), name="names")
    mapped = p.parse(SCHEMA).map_one(named(name), step_id=name, columns=list(SCHEMA))
    mapped.window(TumblingWindow("1m"), key="k").agg(agg.count())
    report = verify(p, LINES, target, workdir=tmp_path)
    assert report.equal, report.diff
    assert sorted(report.exported["window"]["k"]) == ["a!", "b!"]
    assert report.counts[f"{name}.dead_letter"] == {"streamlab": 0, target: 0}
