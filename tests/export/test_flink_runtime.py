"""Flink export: main.tf's Managed Service for Apache Flink runtime matches the Flink the job is written for.

The DataStream job (and the SQL job) pin ``apache-flink==2.3.0`` and 2.x connector jars
(``flink-sql-connector-kafka:4.0.1-2.0``), while main.tf deployed them on ``FLINK-1_20``, where a 2.x jar
does not load. The runtime now follows ``flink_version`` (:func:`managed_flink_runtime`): the same major
version, the version itself when the service offers it, and the README says when it is not.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.errors import PipelineConfigError
from streamlab.export import to_flink
from streamlab.export.flink import MANAGED_FLINK_RUNTIMES, managed_flink_runtime
from streamlab.testing import ListSource

from ._tf import parse


def datastream_only() -> Pipeline:
    """A filter expression: the export is datastream.py alone."""
    p = Pipeline(ListSource([b"{}"]), name="ds_runtime")
    p.parse().filter("event_type == 'click'").window(TumblingWindow("1m")).agg(agg.count())
    return p


def runtime_of(directory: Path) -> tuple[int, int]:
    app = parse((directory / "main.tf").read_text())["resource"][
        ("aws_kinesisanalyticsv2_application", "job")
    ]
    found = re.fullmatch(r"FLINK-(\d+)_(\d+)", app["runtime_environment"])
    assert found is not None, app["runtime_environment"]
    return int(found.group(1)), int(found.group(2))


def test_the_datastream_jobs_runtime_is_a_flink_2_runtime(tmp_path: Path) -> None:
    out = to_flink(datastream_only(), tmp_path, source="kafka")
    assert sorted(out.files) == ["README.md", "datastream.py", "main.tf", "requirements.txt"]
    pinned = re.search(r"apache-flink==(\d+)\.(\d+)", out.read("requirements.txt"))
    written = re.search(r"exported from streamlab \(Flink (\d+)\.(\d+)", out.read("datastream.py"))
    jar = re.search(r"flink-sql-connector-kafka:[\d.]+-(\d+)\.(\d+)", out.read("README.md"))
    assert pinned and written and jar
    runtime = runtime_of(out.directory)
    assert runtime == (2, 2) and runtime in MANAGED_FLINK_RUNTIMES
    # the job, its pin and its connector jar are Flink 2: so is the runtime, and never newer than the job
    assert runtime[0] == int(pinned.group(1)) == int(written.group(1)) == int(jar.group(1))
    assert runtime <= (int(pinned.group(1)), int(pinned.group(2)))
    readme = out.read("README.md")
    assert "runtime `FLINK-2_2` (the newest Flink 2 runtime the service offers" in readme
    assert 'flink_version="2.2"' in readme  # how to match the service exactly


def test_an_offered_version_is_its_own_runtime(tmp_path: Path) -> None:
    for version, runtime in (("2.2", (2, 2)), ("1.20", (1, 20)), ("1.18", (1, 18))):
        out = to_flink(datastream_only(), tmp_path / version, flink_version=version)
        assert runtime_of(out.directory) == runtime
        assert f"the job is written for Flink {version})." in out.read("README.md")
        assert "verified for Flink" not in out.read("README.md")


def test_a_major_version_the_service_does_not_offer_is_refused(tmp_path: Path) -> None:
    with pytest.raises(PipelineConfigError, match=r"no Flink 3 runtime .*flink_version='2.2'"):
        to_flink(datastream_only(), tmp_path / "out", flink_version="3.0")
    assert not (tmp_path / "out").exists()  # refused before anything is written
    assert managed_flink_runtime("2.0") == (
        "FLINK-2_2",
        "the oldest Flink 2 runtime the service offers: the job is written for Flink 2.0",
    )
