"""Bundled datasets: loaders, cards, byte-for-byte regeneration, and access from a zipped install."""

from __future__ import annotations

import pathlib
import subprocess
import sys
import zipfile

import pandas as pd
import pytest
import streamlab.datasets as ds
from streamlab.datasets import _generate as gen
from streamlab.datasets import generate_app_logs, generate_clickstream, generate_iot, generate_transactions
from streamlab.datasets._jsonl import check_line

import streamlab
from streamlab._time import NAT_NS, to_utc_ns

PACKAGE_DIR = pathlib.Path(ds.__file__).resolve().parent


def test_list_datasets_and_paths() -> None:
    assert ds.list_datasets() == ["app_logs", "clickstream", "iot", "transactions"]
    for name in ds.list_datasets():
        path = ds.dataset_path(name)
        assert path.is_file() and path.parent == PACKAGE_DIR / "data"
        assert path.read_bytes()[:2] == b"\x1f\x8b"
        assert ds.dataset_info(name).name == name
    total = sum(ds.dataset_path(n).stat().st_size for n in ds.list_datasets())
    assert total < 6_000_000, "bundled data should stay a few MB"


@pytest.mark.parametrize("call", [ds.load, ds.load_raw, ds.describe, ds.dataset_path, ds.dataset_info])
def test_unknown_name_lists_the_available_ones(call) -> None:
    with pytest.raises(
        ValueError, match=r"unknown dataset 'clicks'.*app_logs, clickstream, iot, transactions"
    ):
        call("clicks")


def test_clickstream_raw_lines_hold_the_malformed_ones_and_load_drops_them() -> None:
    raw = ds.load_raw("clickstream")
    assert len(raw) == 50_100
    schema = ds.dataset_info("clickstream").schema
    checked = [check_line(line, schema) for line in raw]
    bad = [reason for obj, reason in checked if obj is None]
    stamps = pd.Series([obj["timestamp"] for obj, _ in checked if obj is not None], dtype=object)
    dates_bad = to_utc_ns(stamps) == NAT_NS
    assert len(bad) + int(dates_bad.sum()) == 100
    df = ds.load("clickstream")
    assert df.attrs["malformed"] == 100
    assert sum(df.attrs["malformed_reasons"].values()) == 100
    expected = generate_clickstream(gen.CLICKSTREAM_N, **gen.CLICKSTREAM_PARAMS)
    pd.testing.assert_frame_equal(df, expected)
    assert df["is_duplicate"].any() and df["is_late"].any()
    assert not df["timestamp"].is_monotonic_increasing


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("transactions", lambda: generate_transactions(gen.TRANSACTIONS_N, **gen.TRANSACTIONS_PARAMS)),
        ("iot", lambda: generate_iot(gen.IOT_N, **gen.IOT_PARAMS)),
    ],
)
def test_load_equals_the_generator(name: str, make) -> None:
    df = ds.load(name)
    assert df.attrs["malformed"] == 0
    pd.testing.assert_frame_equal(df, make())


def test_app_logs_raw_lines_equal_the_generator_and_load_parses_the_good_ones() -> None:
    truth = generate_app_logs(gen.APP_LOGS_N, **gen.APP_LOGS_PARAMS)
    raw = ds.load_raw("app_logs")
    assert raw == list(truth["value"])
    df = ds.load("app_logs")
    assert df.attrs["malformed"] == int(truth["is_malformed"].sum()) == 600
    assert len(df) == 19_400
    assert list(df.columns) == [f for f, _ in ds.dataset_info("app_logs").schema]
    assert str(df["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert df["status"].dtype == "int64"


@pytest.mark.parametrize("name", ["app_logs", "clickstream", "iot", "transactions"])
def test_cards_document_schema_size_span_and_regeneration(name: str) -> None:
    card = ds.describe(name)
    assert card.startswith(f"# {name}\n")
    for field, _ in ds.dataset_info(name).schema:
        assert f"`{field}`" in card
    assert f"{ds.dataset_path(name).stat().st_size:,} bytes" in card
    assert "time span" in card.lower()
    assert "python -m streamlab.datasets._generate" in card


def test_regenerating_gives_identical_bytes_for_a_dataset_and_its_card(tmp_path: pathlib.Path) -> None:
    assert gen.main(["--out", str(tmp_path), "iot"]) == 0
    assert (tmp_path / "data" / "iot.jsonl.gz").read_bytes() == ds.dataset_path("iot").read_bytes()
    assert (tmp_path / "cards" / "iot.md").read_text() == ds.describe("iot")
    (tmp_path / "data" / "iot.jsonl.gz").write_bytes(b"stale")
    assert gen.main(["--check", "--out", str(tmp_path), "iot"]) == 1


def test_datasets_load_from_a_zipped_install(tmp_path: pathlib.Path) -> None:
    # Mimic an install that is not a plain folder: streamlab imported from a zip file.
    archive = tmp_path / "streamlab.zip"
    core = pathlib.Path(streamlab.__file__).resolve().parent
    with zipfile.ZipFile(archive, "w") as z:
        for path in core.glob("*.py"):
            z.write(path, f"streamlab/{path.name}")
        for path in PACKAGE_DIR.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts:
                z.write(path, f"streamlab/datasets/{path.relative_to(PACKAGE_DIR)}")
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "import streamlab.datasets as d; "
        "assert '.zip' in d.__file__, d.__file__; "
        "p = d.dataset_path('iot'); "
        "print(p.is_file(), len(d.load_raw('iot')), d.describe('iot').splitlines()[0])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(archive)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "50000", "#", "iot"]
