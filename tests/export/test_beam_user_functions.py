"""User functions in the Beam export: the frame a ``map_many`` or ``filter_many`` function gets has the
dtypes streamlab's runtime gives it (a one-row ``pandas.DataFrame([row])`` typed a missing float64 as an
object None, so ``fillna(0) * 100`` gave the int 0 where streamlab gives 0.0, and a window keyed by it
split into two groups), and a function from the user's own module is shipped beside the module (copied,
with a ``setup.py`` for Dataflow's workers) rather than listed in requirements.txt, and ``verify`` runs
it (the child process gets the caller's Python path)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from streamlab import Pipeline, Stream, TumblingWindow, agg
from streamlab.export import to_beam, verify
from streamlab.export.verify import load_module
from streamlab.testing import ListSource

pytest.importorskip("apache_beam")

SCHEMA = {
    "timestamp": "timestamp",
    "n": "int64",
    "x": "float64",
    "b": "bool",
    "s": "string",
    "c": "category",
    "j": "json",
    "o": "object",
}
RECORDS = [
    {
        "timestamp": "2024-03-01T09:00:00Z",
        "n": 1,
        "x": 1.5,
        "b": True,
        "s": "a",
        "c": "k",
        "j": {"a": 1},
        "o": {"k": [1]},
    },
    {"timestamp": "2024-03-01T09:00:01Z"},
    {"timestamp": "2024-03-01T09:00:02Z", "n": 2, "x": 1, "b": False, "s": "b", "c": "k", "j": 3, "o": {}},
]
LINES = [json.dumps(r).encode() for r in RECORDS]


def _dtypes(frame: pd.DataFrame) -> dict[str, str]:
    return {c: str(d) for c, d in frame.dtypes.items()}


def test_a_map_many_frame_has_the_dtypes_streamlab_gives_it(tmp_path: Path) -> None:
    """Each record alone (Beam calls the function per row) gets streamlab's dtypes for a batch of that
    record: int64 / Int64 with a missing value, float64 with NaN, bool / objects, pandas' text dtype,
    category, datetime64[ns, UTC], objects for json and object fields."""
    seen: list[dict[str, str]] = []

    def probe(df: pd.DataFrame) -> pd.DataFrame:
        seen.append(_dtypes(df))
        return df

    p = Pipeline(ListSource(LINES), name="dtypes")
    p.parse(SCHEMA).map_many(probe, columns=list(SCHEMA), step_id="probe")
    p.run(batch_size=1)
    assert len(seen) == len(RECORDS)
    module = load_module(to_beam(p, tmp_path).module)
    for line, want in zip(LINES, seen, strict=True):
        row = module.parse_record(line, module.PARSE_FIELDS, module.PARSE_REQUIRED, 1 << 20)
        frame = module.typed_frame([row], module.PROBE_TYPES)
        assert _dtypes(frame) == want, line
    # the missing values as streamlab's frame holds them: NaN, <NA>, None, NaT
    missing = module.typed_frame(
        [module.parse_record(LINES[1], module.PARSE_FIELDS, (), 1 << 20)], module.PROBE_TYPES
    )
    assert pd.isna(missing.loc[0, "x"]) and pd.isna(missing.loc[0, "s"]) and missing.loc[0, "o"] is None


def test_a_missing_float_through_map_many_and_filter_many_gives_streamlabs_results(tmp_path: Path) -> None:
    def cents(df: pd.DataFrame) -> pd.DataFrame:
        out = df.copy()
        out["cents"] = out["amount"].fillna(0) * 100
        return out

    def floats_only(df: pd.DataFrame) -> Any:
        return df["amount"].fillna(0).map(lambda v: isinstance(v, float))

    lines = [
        json.dumps({"timestamp": f"2024-03-01T09:00:{i:02d}Z", "amount": [2.5, None, 0.0][i % 3]}).encode()
        for i in range(6)
    ]
    p, ev = _amounts("cents")
    charged = ev.map_many(cents, columns=["timestamp", "amount", "cents"], step_id="cents")
    charged.window(TumblingWindow("1m"), key="cents", step_id="w").agg(agg.count())
    ev.filter_many(floats_only, step_id="floats").window(TumblingWindow("1m"), step_id="kept").agg(
        agg.count()
    )
    report = verify(p, lines, "beam", workdir=tmp_path)
    assert report.equal, report.diff
    assert sorted(report.exported["w"]["count"]) == [2, 4]  # one group for 0.0, not 0 and 0.0 apart
    assert report.exported["kept"]["count"].tolist() == [6]


def _amounts(name: str) -> tuple[Pipeline, Stream]:
    """A pipeline ``name`` parsing events of a time and an ``amount``, and its parsed stream."""
    p = Pipeline(ListSource([b"{}"]), name=name)
    return p, p.parse({"timestamp": "timestamp", "amount": "float64"})


def _user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, text: str) -> Any:
    src = tmp_path / "src"
    src.mkdir(exist_ok=True)
    (src / f"{name}.py").write_text(text)
    monkeypatch.syspath_prepend(str(src))
    module = importlib.import_module(name)
    monkeypatch.setitem(sys.modules, name, module)  # removed again after the test
    return module


def test_a_users_module_is_copied_beside_the_module_and_never_a_requirement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    yaml = pytest.importorskip("yaml")
    from importlib.metadata import version

    fees = _user_module(
        tmp_path,
        monkeypatch,
        "slt_user_fees",
        "def cents(df):\n    return df.assign(cents=df['amount'] * 100)\n",
    )
    p, ev = _amounts("fees")
    ev = ev.filter_one(bool)
    ev.map_many(fees.cents, columns=["timestamp", "amount", "cents"]).map_one(yaml.safe_dump)
    out = to_beam(p, tmp_path / "export")
    reqs = out.read("requirements.txt").split()
    assert "slt_user_fees" not in out.read("requirements.txt")
    assert "builtins" not in reqs  # the standard library needs nothing
    assert f"PyYAML=={version('PyYAML')}" in reqs  # a real distribution, pinned as installed
    assert out.read("slt_user_fees.py") == (tmp_path / "src" / "slt_user_fees.py").read_text()
    assert 'py_modules=["slt_user_fees"]' in out.read("setup.py")
    assert "--setup_file ./setup.py" in out.read(out.module.name)


def test_verify_runs_a_function_whose_module_imports_the_callers_other_modules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The module the function comes from is copied beside the program; the one it imports is found on
    the caller's Python path, which the child process is given."""
    _user_module(tmp_path, monkeypatch, "slt_user_rates", "RATE = 100\n")
    fees = _user_module(
        tmp_path,
        monkeypatch,
        "slt_user_fees2",
        "from slt_user_rates import RATE\n\n\ndef cents(df):\n    return df.assign(cents=df['amount'] * RATE)\n",
    )
    p, ev = _amounts("fees2")
    ev.map_many(fees.cents, columns=["timestamp", "amount", "cents"], step_id="fees")
    lines = [json.dumps({"timestamp": f"2024-03-01T09:00:0{i}Z", "amount": i / 2}).encode() for i in range(3)]
    report = verify(p, lines, "beam", workdir=tmp_path / "verify")
    assert report.equal, report.diff
    assert report.exported["fees"]["cents"].tolist() == [0.0, 50.0, 100.0]


def test_a_spark_export_copies_a_users_module_and_requires_only_distributions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Spark export listed every user function's module in requirements.txt, the user's own and the
    standard library's too: now as the Beam export, with ``--py-files`` in its README."""
    from streamlab.export import to_spark

    keep = _user_module(
        tmp_path,
        monkeypatch,
        "slt_user_keep",
        "import math\n\n\ndef big(row):\n    return math.isfinite(row['amount'])\n",
    )
    p, ev = _amounts("keep")
    ev.filter_one(keep.big)
    out = to_spark(p, tmp_path / "spark")
    reqs = out.read("requirements.txt").split()
    assert not [r for r in reqs if r.startswith(("slt_user_keep", "math"))], reqs
    assert out.read("slt_user_keep.py") == (tmp_path / "src" / "slt_user_keep.py").read_text()
    readme = out.read("README.md")
    assert "`slt_user_keep`" in readme and "--py-files" in readme
