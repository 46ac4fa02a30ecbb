"""JVM options for the short local runs ``verify`` starts (Spark's local session, PyFlink's jobs).

A verification runs a JVM for seconds to a minute, on a sample: most of its time is the JVM's start and
the code it compiles once. The client compiler alone (``-XX:TieredStopAtLevel=1``) and the serial
collector (``-XX:+UseSerialGC``, no collector threads competing for a laptop's cores) are the usual
settings for such runs: they change no result, and on the project's two-core machine a local Spark
session with a small job took about 10 s with them against 19 s without (``spark.driver.extraJavaOptions``),
a small PyFlink SQL job 39 s against 49 s. Long-running jobs (the exported programs as deployed) keep
their engine's defaults: nothing here is written into an export.

Where an engine's classes were archived once (JDK 13+'s dynamic class-data sharing: the classes one short
job loaded, parsed and verified, written at its JVM's exit; :func:`streamlab.export.flink.ensure_flink_python`
archives PyFlink's), a short run maps that archive instead of loading each class from its jar: a small
PyFlink SQL job took 10 CPU-seconds with it against 14 without. An archive the JVM cannot use (another
Java, other jars) is ignored silently: the run loads its classes as usual.

``STREAMLAB_JVM_OPTIONS`` replaces the options (empty: none). PyFlink reads them from ``JVM_ARGS``; a
``JVM_ARGS`` of the user's own is kept as it is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["SHORT_RUN_OPTIONS", "class_data_options", "short_run_env", "short_run_options"]

#: The client compiler only, and the serial collector: for JVMs that live seconds to a minute.
SHORT_RUN_OPTIONS = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"


def class_data_options(archive: Path | None) -> str:
    """The options that map the class-data ``archive`` when it exists (``""`` otherwise), with the JVM's
    class-data messages off: an archive it cannot use is skipped without a word on the job's output.

    Examples
    --------
    >>> class_data_options(None), class_data_options(Path("/nonexistent/classes.jsa"))
    ('', '')
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile(suffix=".jsa") as f:
    ...     class_data_options(Path(f.name)).split()[1]
    '-Xlog:cds*=off'
    """
    if archive is None or not archive.is_file() or any(c.isspace() for c in str(archive)):
        return ""  # (JVM_ARGS and SPARK_SUBMIT_OPTS are split at white space)
    return f"-XX:SharedArchiveFile={archive} -Xlog:cds*=off"


def short_run_options(environ: Mapping[str, str] | None = None, archive: Path | None = None) -> str:
    """The JVM options of a short local run: ``STREAMLAB_JVM_OPTIONS`` if set, else
    :data:`SHORT_RUN_OPTIONS` and the options that map the engine's class-data ``archive``, if it exists.

    Examples
    --------
    >>> short_run_options({})
    '-XX:TieredStopAtLevel=1 -XX:+UseSerialGC'
    >>> short_run_options({"STREAMLAB_JVM_OPTIONS": ""})
    ''
    """
    environ = os.environ if environ is None else environ
    if "STREAMLAB_JVM_OPTIONS" in environ:
        return environ["STREAMLAB_JVM_OPTIONS"].strip()
    return f"{SHORT_RUN_OPTIONS} {class_data_options(archive)}".strip()


def short_run_env(environ: Mapping[str, str] | None = None, archive: Path | None = None) -> dict[str, str]:
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
    options = short_run_options(env, archive)
    if options and "JVM_ARGS" not in env:
        env["JVM_ARGS"] = options
    return env
