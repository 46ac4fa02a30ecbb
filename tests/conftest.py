"""Shared test settings: hypothesis profiles sized for a 2-core CI machine."""

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")

# Checkpoint keys and default checkpoint directories (runs of broker sources without checkpoint_dir) go
# to a directory of this test session, never to the user's home; subprocesses inherit it. Each xdist
# worker gets its own (pipelines of two workers may share a name), under the one its controller made.
_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if "STREAMLAB_STATE_DIR" not in os.environ or "STREAMLAB_TESTS_HOME" in os.environ:
    import tempfile

    _home = os.environ.get("STREAMLAB_TESTS_HOME") or tempfile.mkdtemp(prefix="streamlab-tests-")
    os.environ["STREAMLAB_TESTS_HOME"] = _home
    os.environ["STREAMLAB_STATE_DIR"] = os.path.join(_home, _worker, "state")
    os.environ["STREAMLAB_CONFIG_DIR"] = os.path.join(_home, _worker, "config")
