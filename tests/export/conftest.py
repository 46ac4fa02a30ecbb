"""Fixtures of the export tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def flink_python() -> str:
    from streamlab.export.flink import ensure_flink_python

    try:
        return ensure_flink_python()
    except RuntimeError as e:  # never a skip: the export's verification is the feature under test
        pytest.fail(f"PyFlink is not available, so the Flink export cannot be verified: {e}")
