"""The Pub/Sub client: imported lazily, pointed at an emulator or Google, resource paths checked."""

from __future__ import annotations

import os
from typing import Any

from streamlab._time import Duration, parse_duration

EXTRA = "pip install 'streamlab[pubsub]'"


def import_pubsub() -> Any:
    try:
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]
    except ImportError as exc:
        raise ImportError(f"Pub/Sub connectors need google-cloud-pubsub: {EXTRA}") from exc
    return pubsub_v1


def describe_service(emulator_host: str | None) -> str:
    """The service a client talks to, for error messages."""
    host = emulator_host or os.environ.get("PUBSUB_EMULATOR_HOST")
    return f"the Pub/Sub emulator at {host}" if host else "Google Cloud Pub/Sub (pubsub.googleapis.com)"


def bounded_retry(timeout: float) -> Any:
    """Retry transient errors with backoff for at most ``timeout`` seconds in all.

    The client's default retry of acknowledge/modify_ack_deadline keeps trying an unreachable service
    for 60 s whatever per-call ``timeout`` is given.
    """
    from google.api_core import retry as retries

    return retries.Retry(
        predicate=retries.if_transient_error, initial=0.1, maximum=2.0, multiplier=2.0, timeout=timeout
    )


def client_kwargs(emulator_host: str | None, kind: str) -> dict[str, Any]:
    if emulator_host is None:
        return {}
    from streamlab.local.pubsub import emulator_client_kwargs

    return emulator_client_kwargs(emulator_host, kind)


def resource_path(name: str, project: str, kind: str, where: str) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: the {kind[:-1]} name must be a non-empty string, got {name!r}")
    if name.startswith("projects/"):
        parts = name.split("/")
        if len(parts) != 4 or parts[2] != kind:
            raise ValueError(
                f"{where}: {name!r} is not a {kind[:-1]} path; write projects/PROJECT/{kind}/NAME"
            )
        return name
    if "/" in name:
        raise ValueError(f"{where}: {name!r} contains '/'; pass a short name or projects/PROJECT/{kind}/NAME")
    if not project:
        raise ValueError(f"{where}: project= is required with a short {kind[:-1]} name such as {name!r}")
    return f"projects/{project}/{kind}/{name}"


def duration_pb(value: Duration, where: str) -> dict[str, int]:
    ns = parse_duration(value, what=where)
    if not 0 <= ns <= 600 * 1_000_000_000:
        raise ValueError(f"{where}: must be between 0s and 600s (Pub/Sub's limits), got {value!r}")
    return {"seconds": ns // 1_000_000_000, "nanos": ns % 1_000_000_000}
