"""The environment of an exported Lambda handler run against the local AWS stand-in (moto)."""

from __future__ import annotations

from typing import Any

import pytest


def handler_env(aws: Any, monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    """Point the handler's clients at ``aws`` (``LocalAWS``) with test credentials, and set ``variables``
    (``TIMESTREAM_DATABASE``, ``WINDOW_TABLE``, ...)."""
    for key, value in {
        "AWS_ENDPOINT_URL": aws.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": aws.region,
        **variables,
    }.items():
        monkeypatch.setenv(key, value)
