"""The Pub/Sub client: imported lazily, pointed at an emulator or Google, resource paths checked."""

from __future__ import annotations

import os
from typing import Any

from streamlab._compat import without_python_support_notices
from streamlab._time import Duration, parse_duration
from streamlab.errors import ParameterError

EXTRA = "pip install 'streamlab[pubsub]'"


def import_pubsub() -> Any:
    try:
        with without_python_support_notices():
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


def resource_path(name: str, project: str, kind: str, owner: str, parameter: str) -> str:
    """``projects/PROJECT/KIND/NAME`` for a short ``name`` (with ``project``) or a full path; anything else
    is a :class:`ParameterError` of ``owner``'s ``parameter``."""
    one = kind[:-1]
    full = f"projects/PROJECT/{kind}/NAME"
    if not isinstance(name, str) or not name:
        raise ParameterError(
            owner,
            parameter,
            f"expected a {one} name (a non-empty text), got {name!r}",
            f"write the {one}'s short name (with project:) or its full path {full}",
        )
    if name.startswith("projects/"):
        parts = name.split("/")
        if len(parts) != 4 or parts[2] != kind:
            raise ParameterError(
                owner, parameter, f"{name!r} is not a {one} path", f"write {full} (or a short name)"
            )
        return name
    if "/" in name:
        raise ParameterError(
            owner, parameter, f"{name!r} contains '/'", f"write a short name or the full path {full}"
        )
    if project is not None and not isinstance(project, str):
        raise ParameterError(
            owner,
            "project",
            f"expected the Google Cloud project's id as text, got {type(project).__name__} {project!r}",
            "write the project's id, e.g. project: my-project (project='my-project' in Python; quote one "
            "that YAML would read as a number)",
        )
    if not project:
        raise ParameterError(
            owner,
            "project",
            f"a project is required with a short {one} name such as {name!r}",
            f"write the Google Cloud project, e.g. project: my-project (project='my-project' in Python), "
            f"or the full path {full} as {parameter}",
        )
    return f"projects/{project}/{kind}/{name}"


def duration_pb(value: Duration, owner: str, parameter: str) -> dict[str, int]:
    ns = parse_duration(value, what=f"{owner}({parameter}=...)")
    if not 0 <= ns <= 600 * 1_000_000_000:
        raise ParameterError(
            owner,
            parameter,
            f"expected a duration between 0s and 600s (Pub/Sub's limits), got {value!r}",
            f"write a duration such as {parameter}='10s' within 0s..600s",
        )
    return {"seconds": ns // 1_000_000_000, "nanos": ns % 1_000_000_000}
