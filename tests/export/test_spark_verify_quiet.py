"""verify(target="spark") in a notebook printed the JVM's start-up log (Spark's "default log4j profile",
"WARN Utils: Your hostname ... resolves to a loopback address", "WARN NativeCodeLoader", "Setting default log level to "WARN"") and PySpark's
FutureWarning about pandas 3 into the cell's output (notebook 12, found by the notebook review). The
verification session now starts its JVM with errors-only logging, unless the user has a Spark
configuration of their own (``SPARK_CONF_DIR``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROGRAM = "from streamlab.export.spark import spark_session; print(spark_session().range(3).count())"


def start_session(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=300, env=env
    )


def test_the_verification_session_starts_without_warnings_or_the_default_log_profile(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SPARK_CONF_DIR"}
    env["STREAMLAB_CACHE"] = str(tmp_path / "cache")
    run = start_session(env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["3"]
    said = run.stderr
    assert "default log4j profile" not in said
    # (Spark takes PySpark's JVM for a shell, which announced its log level in two lines)
    assert "Setting default log level" not in said and "setLogLevel" not in said, said
    assert " WARN " not in said and "FutureWarning" not in said, said
    # Spark 4's launcher adds jdk.incubator.vector, and the JVM announced it in every verifying cell
    assert "incubator" not in said, said
    assert (
        (tmp_path / "cache" / "spark-log4j2-errors.properties")
        .read_text()
        .startswith("rootLogger.level = error")
    )


def test_a_users_own_spark_configuration_keeps_its_logging(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    env = {**os.environ, "SPARK_CONF_DIR": str(conf), "STREAMLAB_CACHE": str(tmp_path / "cache")}
    run = start_session(env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert not (tmp_path / "cache" / "spark-log4j2-errors.properties").exists()
    assert "default log4j profile" in run.stderr  # (an empty conf dir: Spark's own default, as before)
    assert "Using incubator modules" in run.stderr  # the JVM's stderr as it is
