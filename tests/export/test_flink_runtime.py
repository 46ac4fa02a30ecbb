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


def sql_job() -> Pipeline:
    """A window Flink SQL says: job.sql and main.py (and datastream.py beside them)."""
    p = Pipeline(ListSource([b"{}"]), name="sql_runtime")
    p.parse().window(TumblingWindow("1m"), key="event_type").agg(agg.count())
    return p


@pytest.mark.parametrize("build", [sql_job, datastream_only])
def test_requirements_pin_the_pyflink_of_the_runtime_main_tf_deploys(build, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # requirements.txt pinned apache-flink==2.3.0 while main.tf deployed the job on FLINK-2_2: a PyFlink
    # client of another version than its cluster. The pin now follows the runtime, and says why.
    for version, pin in (("2.3.0", "2.2.*"), ("2.2", "2.2.*"), ("1.20", "1.20.*"), ("1.18", "1.18.*")):
        out = to_flink(build(), tmp_path / version, source="kinesis", flink_version=version)
        lines = out.read("requirements.txt").splitlines()
        assert [x for x in lines if not x.startswith("#")] == [f"apache-flink=={pin}"]
        assert f"{runtime_of(out.directory)[0]}.{runtime_of(out.directory)[1]}.*" == pin
        comment = " ".join(x.lstrip("# ") for x in lines if x.startswith("#"))
        if version == "2.3.0":  # the service has no 2.3: which combination this is, and why
            assert "the PyFlink of FLINK-2_2, the Managed Flink runtime main.tf deploys" in comment
            assert "verified on Flink 2.3.0" in comment and "pip install apache-flink==2.3.0" in comment
        else:
            assert comment == ""


@pytest.mark.parametrize("build", [sql_job, datastream_only])
def test_connector_jars_and_the_kinesis_reader_are_the_jobs_flink_major(build, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    # A job for Flink 2 listed the Flink 1.20 build of the Kinesis connector (5.0.0-1.20) and read Kinesis
    # with the FlinkKinesisConsumer, a SourceFunction Flink 2 removed: no Flink 2 jar has that class.
    for version, major in (("2.3.0", "2"), ("1.20", "1")):
        for source, sink in (("kinesis", "files"), ("kafka", "kafka")):
            out = to_flink(
                build(), tmp_path / version / source, source=source, sink=sink, flink_version=version
            )
            readme = out.read("README.md")
            jars = re.findall(r"^\* `org\.apache\.flink:([\w-]+):([\d.]+)-(\d+)\.(\d+)", readme, re.M)
            assert jars and {j[2] for j in jars} == {major}, jars
            scripts = [out.read(name) for name in ("main.py", "datastream.py") if name in out.files]
            for text in scripts:
                assert text.count("def raw_stream(") == 1
                if major == "2":
                    assert "FlinkKinesisConsumer" not in text.replace("the FlinkKinesisConsumer;", "")
                    assert "'connector': 'kinesis'" in text.replace('"', "'") and "KINESIS_STREAM_ARN" in text
                else:
                    assert "env.add_source(FlinkKinesisConsumer(" in text
            if source == "kinesis":
                wanted = (
                    "flink-sql-connector-aws-kinesis-streams"
                    if major == "2"
                    else "flink-sql-connector-kinesis"
                )
                assert wanted in {j[0] for j in jars}


@pytest.mark.parametrize(
    ("version", "kafka", "kinesis", "jdbc"),
    [
        ("1.20", "3.3.0-1.20", "5.0.0-1.20", "3.3.0-1.20"),
        ("1.19.2", "3.3.0-1.19", "5.0.0-1.19", "3.2.0-1.19"),
        ("1.18", "3.2.0-1.18", "4.3.0-1.18", "3.2.0-1.18"),
        ("1.17", "3.1.0-1.17", "4.2.0-1.17", "3.1.2-1.17"),
        ("1.15", "1.15.4", "1.15.4", "1.15.4"),
        ("2.3.0", "4.0.1-2.0", "6.0.0-2.0", "4.0.0-2.0"),
    ],
)
def test_connector_jars_are_the_builds_for_the_jobs_flink_minor_version(
    version: str, kafka: str, kinesis: str, jdbc: str
) -> None:
    # a job for Flink 1.18 or 1.19 listed the 1.20 builds (3.3.0-1.20, 5.0.0-1.20): a connector is built
    # against one minor version (AWS's table of connectors per Managed Flink version lists these)
    from streamlab.export.flink import connector_jars

    jars = " ".join(connector_jars(version, ("kafka", "kinesis", "jdbc")))
    for artifact, build in (("kafka", kafka), ("kinesis", kinesis), ("jdbc", jdbc)):
        assert re.search(rf"flink-(sql-)?connector-[\w-]*{artifact}[\w-]*:{re.escape(build)}\b", jars), (
            artifact,
            jars,
        )
