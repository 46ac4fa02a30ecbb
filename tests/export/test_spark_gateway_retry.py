"""A Spark verification failed in CI with PySpark's ``JAVA_GATEWAY_EXITED`` ("Java gateway process exited
before sending its port number"), the JVM silent, gRPC's "epoll_wait error: Bad file descriptor" beside it.

PySpark launches its JVM with ``Popen(preexec_fn=...)``, a real ``fork()``; where gRPC is busy in the
process (a Pub/Sub client's threads, earlier in the same test worker or notebook), gRPC's fork handler
aborts about one forked child in fifty before it runs ``spark-submit`` (SIGABRT, reproduced here with a
gRPC server and channel in traffic: 2-6 of 200 such forks). Nothing has started then, so the session's
start tries the launch again. These tests make the forked child die the same way (between ``fork`` and
``exec``) from an at-fork hook, deterministically, in a fresh process (the session is one per process).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# the forked child of the first `deaths` forks that run Python's at-fork hooks (PySpark's preexec_fn
# Popen does, a plain Popen does not) exits at once, as gRPC's handler makes it abort
PROGRAM = """
import os, sys
deaths = int(sys.argv[1])
forks = [0]
os.register_at_fork(before=lambda: forks.__setitem__(0, forks[0] + 1),
                    after_in_child=lambda: forks[0] <= deaths and os._exit(134))
from streamlab.export.spark import spark_session
try:
    print(spark_session().range(3).count())
except Exception as e:
    print(type(e).__name__, e)
print("forks", forks[0])
"""


def start(deaths: int, tmp_path: Path) -> list[str]:
    env = dict(os.environ, STREAMLAB_CACHE=str(tmp_path / "cache"))
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM, str(deaths)], capture_output=True, text=True, timeout=300, env=env
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout.splitlines()


def test_a_jvm_launcher_killed_in_the_fork_is_launched_again(tmp_path: Path) -> None:
    out = start(2, tmp_path)
    # the third launch ran: the session counts, after three forks (two children killed)
    assert out == ["3", "forks 3"], out


def test_a_launcher_that_never_starts_says_what_to_check(tmp_path: Path) -> None:
    from streamlab.export.spark import GATEWAY_ATTEMPTS

    out = start(99, tmp_path)
    assert out[-1] == f"forks {GATEWAY_ATTEMPTS}", out
    said = out[0]
    assert said.startswith("RuntimeError Spark's JVM exited before it started, 3 times"), said
    assert "java -version" in said and "GRPC_ENABLE_FORK_SUPPORT=0" in said and "JAVA_GATEWAY_EXITED" in said


def test_a_jvm_that_cannot_start_is_quoted(tmp_path: Path) -> None:
    """The JVM's stderr goes to a file (its start-up notice stays out of a notebook cell): when it does
    not start, the error quotes what it wrote there."""
    env = dict(os.environ, STREAMLAB_CACHE=str(tmp_path / "cache"), STREAMLAB_JVM_OPTIONS="-Xss1k")
    run = subprocess.run(
        [sys.executable, "-c", PROGRAM, "0"], capture_output=True, text=True, timeout=300, env=env
    )
    assert run.returncode == 0, run.stderr[-2000:]
    said = run.stdout.splitlines()[0]
    assert said.startswith("RuntimeError Spark's JVM exited before it started"), said
    assert "what the JVM said:" in said and "stack size" in said, said  # "thread stack size ... too small"
