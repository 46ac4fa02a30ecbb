"""`import streamlab` and its subpackages load none of the optional clients, even when they are installed."""

import subprocess
import sys

OPTIONAL = (
    "confluent_kafka",
    "boto3",
    "botocore",
    "apache_beam",
    "google.cloud",
    "redis",
    "azure",
    "plotly",
    "ipywidgets",
    "anywidget",
    "river",
)


def test_import_pulls_no_optional_client() -> None:
    code = (
        "import sys, streamlab, streamlab.connectors, streamlab.widgets, streamlab.datasets\n"
        f"print([m for m in {OPTIONAL!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_api_is_declared() -> None:
    import streamlab

    for name in streamlab.__all__:
        assert hasattr(streamlab, name), name
