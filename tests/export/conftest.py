"""Fixtures of the export tests."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def flink_python() -> str:
    """PyFlink's Python (built once into ``$STREAMLAB_CACHE``). The jobs the tests start themselves (their
    own command lines) get the options ``verify`` gives its short runs, with PyFlink's class-data archive
    (``streamlab._jvm``), unless the environment sets ``JVM_ARGS``."""
    from streamlab._jvm import short_run_options
    from streamlab.export.flink import ensure_flink_python, flink_class_archive

    try:
        python = ensure_flink_python()
    except RuntimeError as e:  # never a skip: the export's verification is the feature under test
        pytest.fail(f"PyFlink is not available, so the Flink export cannot be verified: {e}")
    options = short_run_options(archive=flink_class_archive())
    if options:
        os.environ.setdefault("JVM_ARGS", options)
    return python
