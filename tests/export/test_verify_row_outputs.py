"""verify compares every output the Beam program writes: the rows of filter, map and select steps that no
step reads, and their dead letters (a pipeline of row steps alone was reported equal with none of its rows
compared), and a NaN or infinite value as every sink writes it (null)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.export import verify
from streamlab.export.verify import compare
from streamlab.testing import ListSource

pytest.importorskip("apache_beam")

SCHEMA = {"k": "string", "n": "int64", "x": "float64", "timestamp": "timestamp"}
LINES = [
    json.dumps({"k": k, "n": n, "x": x, "timestamp": f"2024-01-01T00:00:{s:02d}Z"}).encode()
    for s, (k, n, x) in enumerate([("a", 3, 1e308), ("b", None, 1e308), ("a", 0, 1e308), ("c", -7, None)])
]


def test_row_outputs_and_their_dead_letters_are_compared(tmp_path: Path) -> None:
    p = Pipeline(ListSource([b"{}"]), name="rows")
    p.parse(SCHEMA).with_columns(third="n // 3", k2="k + '!'", step_id="computed").filter(
        "10 // n > 1", step_id="kept"
    )
    report = verify(p, LINES, workdir=tmp_path)
    assert report.equal, report.diff
    assert report.counts["kept"] == {"streamlab": 2, "beam": 2}  # n == 3, and 0 (10 // 0 is inf)
    assert report.counts["kept.dead_letter"] == {"streamlab": 0, "beam": 0}
    assert report.counts["computed.dead_letter"] == {"streamlab": 0, "beam": 0}
    # a value the program got wrong in a row output is a difference
    wrong = {ref: frame.copy() for ref, frame in report.exported.items()}
    wrong["kept"].loc[0, "k2"] = "b!"
    equal, diff, _ = compare(p, report.local, wrong, "beam")
    assert not equal and set(diff["output"]) == {"kept"}


def tagging() -> Callable[[dict[str, Any]], dict[str, Any]]:
    """A map local to a function, so the export copies its source (the program cannot import this module)."""

    def tagged(row: dict[str, Any]) -> dict[str, Any]:
        return {**row, "tag": f"{row['k']}:{row['n']}"}

    return tagged


def test_the_rows_of_a_function_without_declared_columns_are_compared(tmp_path: Path) -> None:
    """map_one without ``columns=``: its columns are known when it runs, and none were compared."""
    p = Pipeline(ListSource([b"{}"]), name="fn")
    p.parse(SCHEMA).map_one(tagging(), step_id="tagged")
    report = verify(p, LINES, workdir=tmp_path)
    assert report.equal, report.diff
    assert report.counts["tagged"] == {"streamlab": 4, "beam": 4}
    wrong = {ref: frame.copy() for ref, frame in report.exported.items()}
    wrong["tagged"].loc[0, "tag"] = "?"
    equal, diff, _ = compare(p, report.local, wrong, "beam")
    assert not equal and set(diff["output"]) == {"tagged"}


def test_an_infinite_result_is_compared_as_the_null_every_sink_writes(tmp_path: Path) -> None:
    p = Pipeline(ListSource([b"{}"]), name="inf")
    p.parse(SCHEMA).window(TumblingWindow("1m"), key="k").agg(agg.sum("x"), agg.mean("x"))
    report = verify(p, LINES, workdir=tmp_path)
    assert report.local["window"]["sum_x"].max() == float("inf")  # key "a": 1e308 + 1e308
    assert report.equal, report.diff
