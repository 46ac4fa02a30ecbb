"""The JVMs verify() starts for seconds to a minute run with the options of a short run
(``streamlab._jvm``: the client compiler, the serial collector), which halved a small Spark job's time
and cut a fifth of a PyFlink one's on two cores; a user's own ``JVM_ARGS`` and ``STREAMLAB_JVM_OPTIONS``
win.

The Flink job's command is recorded instead of run (its engine runs in tests/export/test_flink_*.py, with
these options); the Spark session is the real one the Spark export tests share.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from streamlab import Pipeline
from streamlab._jvm import SHORT_RUN_OPTIONS, short_run_options
from streamlab.export import flink, to_flink
from streamlab.testing import ListSource


class _RecordedError(Exception):
    pass


def _flink_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    p = Pipeline(ListSource([b"{}"]), name="short")
    p.parse({"event_id": "string", "timestamp": "timestamp"}).dedup("event_id", ttl="1m", step_id="d")
    files = to_flink(p, tmp_path / "export", source="files")
    seen: dict[str, Any] = {}

    def record(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        seen.update(kwargs)
        raise _RecordedError

    monkeypatch.setattr(subprocess, "run", record)
    with pytest.raises(_RecordedError):
        flink.run_flink(files, [b"{}"], python="/usr/bin/python3")
    return dict(seen["env"])


def test_verify_runs_a_flink_job_with_the_short_run_options(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("JVM_ARGS", raising=False)
    monkeypatch.delenv("STREAMLAB_JVM_OPTIONS", raising=False)
    options = _flink_env(monkeypatch, tmp_path)["JVM_ARGS"]
    assert options == short_run_options({}, flink.flink_class_archive())
    assert options.startswith(SHORT_RUN_OPTIONS)


def test_pyflinks_classes_are_archived_once_and_its_short_runs_map_them(
    flink_python: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``ensure_flink_python`` archives the classes of a short SQL and DataStream job (JDK class-data
    sharing), and verify's Flink runs map the archive: a small SQL job took 10 CPU-seconds against 14."""
    archive = flink.flink_class_archive()
    failed = flink._class_archive_failure()
    assert archive.is_file(), failed.read_text() if failed.exists() else archive
    monkeypatch.delenv("JVM_ARGS", raising=False)
    monkeypatch.delenv("STREAMLAB_JVM_OPTIONS", raising=False)
    # -Xshare:on: a JVM that cannot map the archive (other jars, another Java) refuses to start
    options = short_run_options(archive=archive).replace("-Xlog:cds*=off", "") + " -Xshare:on"
    gateway = "from pyflink.java_gateway import get_gateway; print(get_gateway().jvm.java.lang.System.exit)"
    done = subprocess.run(
        [flink_python, "-c", gateway],
        env={**os.environ, "JVM_ARGS": options},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:] + done.stdout[-2000:]
    assert _flink_env(monkeypatch, tmp_path)["JVM_ARGS"] == (
        f"{SHORT_RUN_OPTIONS} -XX:SharedArchiveFile={archive} -Xlog:cds*=off"
    )


def test_no_archive_is_built_where_its_path_holds_white_space(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """JVM_ARGS is split at white space, so such an archive could never be mapped: the builder says so
    and starts no JVM (the python given does not exist)."""
    monkeypatch.setenv("STREAMLAB_CACHE", str(tmp_path / "a cache"))
    flink.flink_env_dir().mkdir(parents=True)
    flink._archive_flink_classes(tmp_path / "no-python")
    assert not flink.flink_class_archive().exists()
    assert "white space" in flink._class_archive_failure().read_text()


def test_a_users_jvm_args_and_streamlab_jvm_options_win(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("JVM_ARGS", "-Xmx3g")
    assert _flink_env(monkeypatch, tmp_path / "a")["JVM_ARGS"] == "-Xmx3g"
    monkeypatch.delenv("JVM_ARGS")
    monkeypatch.setenv("STREAMLAB_JVM_OPTIONS", "")
    assert "JVM_ARGS" not in _flink_env(monkeypatch, tmp_path / "b")


def test_the_spark_session_verify_shares_runs_with_the_short_run_options() -> None:
    from streamlab.export.spark import spark_session

    session = spark_session()
    conf = session.sparkContext.getConf().get("spark.driver.extraJavaOptions")
    assert SHORT_RUN_OPTIONS in conf  # set by the session, not only by scripts/test.sh's environment
    jvm = session.sparkContext._jvm
    arguments = list(jvm.java.lang.management.ManagementFactory.getRuntimeMXBean().getInputArguments())
    assert {"-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"} <= set(arguments), arguments
