"""JVM options for the short local runs ``verify`` starts (Spark's local session, PyFlink's jobs).

A verification runs a JVM for seconds to a minute, on a sample: most of its time is the JVM's start and
the code it compiles once. The client compiler alone (``-XX:TieredStopAtLevel=1``) and the serial
collector (``-XX:+UseSerialGC``, no collector threads competing for a laptop's cores) are the usual
settings for such runs: they change no result, and on the project's two-core machine a local Spark
session with a small job took about 10 s with them against 19 s without (``spark.driver.extraJavaOptions``),
a small PyFlink SQL job 39 s against 49 s. Long-running jobs (the exported programs as deployed) keep
their engine's defaults: nothing here is written into an export.

``STREAMLAB_JVM_OPTIONS`` replaces the options (empty: none). PyFlink reads them from ``JVM_ARGS``; a
``JVM_ARGS`` of the user's own is kept as it is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

__all__ = ["SHORT_RUN_OPTIONS", "short_run_env", "short_run_options"]

#: The client compiler only, and the serial collector: for JVMs that live seconds to a minute.
SHORT_RUN_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def short_run_options(environ: Mapping[str, str] | None = None) -> str:
    """The JVM options of a short local run: ``STREAMLAB_JVM_OPTIONS`` if set, else
    :data:`SHORT_RUN_OPTIONS`.

    Examples
    --------
    >>> short_run_options({})
    '-XX:TieredStopAtLevel=1 -XX:+UseSerialGC'
    >>> short_run_options({"STREAMLAB_JVM_OPTIONS": ""})
    ''
    """
    environ = os.environ if environ is None else environ
    return environ.get("STREAMLAB_JVM_OPTIONS", SHORT_RUN_OPTIONS).strip()


def short_run_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``environ`` (the process's by default) whose ``JVM_ARGS``, which PyFlink's gateway adds
    to its JVM's command line, holds :func:`short_run_options`; a ``JVM_ARGS`` already set is kept.

    Examples
    --------
    >>> short_run_env({"PATH": "/bin"})["JVM_ARGS"]
    '-XX:TieredStopAtLevel=1 -XX:+UseSerialGC'
    >>> short_run_env({"JVM_ARGS": "-Xmx2g"})["JVM_ARGS"]
    '-Xmx2g'
    """
    env = dict(os.environ if environ is None else environ)
    options = short_run_options(env)
    if options and "JVM_ARGS" not in env:
        env["JVM_ARGS"] = options
    return env
