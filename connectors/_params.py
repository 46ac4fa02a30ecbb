"""Checks of parameters that several connectors share; each failure is a ``ParameterError`` naming the
connector, the parameter and the fix."""

from __future__ import annotations

import math
import re
from typing import Any
from urllib.parse import urlsplit

from streamlab._time import Duration, parse_duration
from streamlab.errors import ParameterError
from streamlab.io import Sink


def duration_ns(owner: str, parameter: str, value: Duration) -> int:
    """``value`` in nanoseconds; text that is not a duration, a bool or a negative duration (a backoff or
    an interval of '-1s' would sleep a negative time or poll without pause) raises
    :class:`ParameterError`.

    Examples
    --------
    >>> duration_ns("KinesisSink", "backoff", "100ms")
    100000000
    >>> duration_ns("KinesisSink", "backoff", "soon")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: KinesisSink(backoff=...): cannot read 'soon' as a duration... Fix: write a duration such as backoff: 10s (backoff='10s' in Python), or a number of seconds
    """
    fix = f"write a duration such as {parameter}: 10s ({parameter}='10s' in Python), or a number of seconds"
    try:
        ns = parse_duration(value, what=f"{owner}({parameter}=...)")
    except (TypeError, ValueError) as exc:
        text = str(exc).removeprefix(f"{owner}({parameter}=...): ")
        problem = text.partition("; write it like")[0].partition(". Fix: ")[0]
        raise ParameterError(owner, parameter, problem, fix) from exc
    if ns < 0:
        raise ParameterError(owner, parameter, f"expected a duration of 0 or more, got {value!r}", fix)
    return ns


def whole_number(value: Any, low: int, high: int | None = None) -> bool:
    """Whether ``value`` is an int (not a bool: YAML's ``yes`` is True, which Python counts as 1) from
    ``low`` to ``high`` (no bound: None), the check of every count a connector takes.

    Examples
    --------
    >>> whole_number(3, 1), whole_number(True, 1), whole_number(0, 1), whole_number("3", 1), whole_number(601, 10, 600)
    (True, False, False, False, False)
    """
    if isinstance(value, bool) or not isinstance(value, int):
        return False
    return value >= low and (high is None or value <= high)


def positive_seconds(
    owner: str, parameter: str, value: Any, example: float, *, about: str = "", none: str = ""
) -> float:
    """``value`` as seconds if it is a positive, finite number; anything else (0, a negative or NaN
    number, the text ``'30'`` of a quoted YAML value, a bool, and ``inf``, which socket, gRPC and
    librdkafka timeouts cannot hold) raises :class:`ParameterError`. ``about`` names what the owner works
    on (``"table 'p.d.t'"``); ``none`` says what None means where the caller takes it (the caller returns
    None itself), for the message.

    Examples
    --------
    >>> positive_seconds("KafkaSink", "flush_timeout", 30, 30)
    30.0
    >>> positive_seconds("KafkaSource", "broker_timeout", "30", 30, none="wait forever")
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: KafkaSource(broker_timeout=...): expected a positive number of seconds or None (wait forever), got '30'. Fix: write a number of seconds such as broker_timeout: 30 (broker_timeout=30 in Python), or null (None in Python) to wait forever
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        expected = "a positive number of seconds" + (f" or None ({none})" if none else "")
        raise ParameterError(
            owner,
            parameter,
            f"expected {expected}{f' for {about}' if about else ''}, got {value!r}",
            f"write a number of seconds such as {parameter}: {example:g} ({parameter}={example:g} in Python)"
            + (f", or null (None in Python) to {none}" if none else ""),
        )
    if math.isinf(value):  # a socket refuses it (OverflowError), librdkafka reads it as a negative wait
        raise ParameterError(
            owner,
            parameter,
            f"expected a finite number of seconds{f' for {about}' if about else ''}, got {value!r}",
            f"write a number of seconds such as {parameter}: {example:g} ({parameter}={example:g} in Python)"
            + (f", or null (None in Python) to {none}" if none else ""),
        )
    return float(value)


def sink_or_none(owner: str, parameter: str, value: Any, *, about: str = "") -> Sink | None:
    """``value`` if it is a sink or None; anything else (a path written where a sink belongs) raises
    :class:`ParameterError` now, not an ``AttributeError`` when the sink is opened or written to YAML.

    Examples
    --------
    >>> sink_or_none("BigQuerySink", "dead_letter", None) is None
    True
    >>> sink_or_none("BigQuerySink", "dead_letter", "dead.jsonl")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: BigQuerySink(dead_letter=...): expected a sink or None, got 'dead.jsonl'. Fix: ...
    """
    if value is None or isinstance(value, Sink):
        return value
    raise ParameterError(
        owner,
        parameter,
        f"expected a sink or None{f' for {about}' if about else ''}, got {value!r}",
        f"write a sink's spec with its kind, e.g. {parameter}: {{kind: jsonl, path: dead.jsonl}} "
        f"({parameter}=JsonLinesSink('dead.jsonl') in Python), or leave it out",
    )


#: botocore's check of a region name (``validate_region_name``), which it makes only when a client is made
_REGION = re.compile(r"^[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")


def check_region(owner: str, value: Any) -> str:
    """``value`` if it is an AWS region name (what botocore takes); anything else (a number, '', a name
    with spaces or dots) raises :class:`ParameterError` when the connector is made, not when its first
    client is.

    Examples
    --------
    >>> check_region("KinesisSink", "eu-west-1")
    'eu-west-1'
    >>> check_region("KinesisSink", "eu west 1")
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: KinesisSink(region=...): expected an AWS region name such as 'us-east-1', got 'eu west 1'. Fix: write the region's code, e.g. region: eu-west-1 (region='eu-west-1' in Python)
    """
    if not isinstance(value, str) or not _REGION.match(value):
        raise ParameterError(
            owner,
            "region",
            f"expected an AWS region name such as 'us-east-1', got {value!r}",
            "write the region's code, e.g. region: eu-west-1 (region='eu-west-1' in Python)",
        )
    return value


def check_endpoint_url(owner: str, value: Any) -> str | None:
    """``value`` if it is None (the AWS service itself) or an ``http://`` or ``https://`` URL with a host
    (a local stand-in such as moto); anything else raises :class:`ParameterError`.

    Examples
    --------
    >>> check_endpoint_url("KinesisSource", "http://127.0.0.1:4567")
    'http://127.0.0.1:4567'
    >>> check_endpoint_url("KinesisSource", "127.0.0.1:4567")
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: KinesisSource(endpoint_url=...): expected None or an http:// or https:// URL with a host, got '127.0.0.1:4567'. Fix: write the stand-in's URL, e.g. endpoint_url: http://127.0.0.1:5000 (endpoint_url='http://127.0.0.1:5000' in Python), or leave it out for AWS itself
    """
    if value is None:
        return None
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
        good = parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname)
        if good and parts is not None:
            parts.port  # noqa: B018 (raises ValueError for a port that is no number from 0 to 65535)
    except ValueError:
        good = False
    if not good:
        raise ParameterError(
            owner,
            "endpoint_url",
            f"expected None or an http:// or https:// URL with a host, got {value!r}",
            "write the stand-in's URL, e.g. endpoint_url: http://127.0.0.1:5000 "
            "(endpoint_url='http://127.0.0.1:5000' in Python), or leave it out for AWS itself",
        )
    return str(value)


def check_emulator_host(owner: str, value: Any) -> str | None:
    """``value`` if it is None (Google Cloud Pub/Sub itself) or a Pub/Sub emulator's ``'host:port'`` (as
    ``PUBSUB_EMULATOR_HOST`` holds it: no scheme); anything else raises :class:`ParameterError`.

    Examples
    --------
    >>> check_emulator_host("PubSubSource", "127.0.0.1:8085")
    '127.0.0.1:8085'
    >>> check_emulator_host("PubSubSource", "http://127.0.0.1:8085")
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: PubSubSource(emulator_host=...): expected None or the emulator's 'host:port', got 'http://127.0.0.1:8085'. Fix: write it as PUBSUB_EMULATOR_HOST holds it, e.g. emulator_host: 127.0.0.1:8085 (emulator_host='127.0.0.1:8085' in Python), or leave it out for Google Cloud Pub/Sub
    """
    if value is None:
        return None
    host, sep, port = value.rpartition(":") if isinstance(value, str) else ("", "", "")
    spaced = isinstance(value, str) and any(ch.isspace() for ch in value)
    if spaced or not (sep and host and "/" not in host and port.isdigit() and 0 < int(port) < 65536):
        raise ParameterError(
            owner,
            "emulator_host",
            f"expected None or the emulator's 'host:port', got {value!r}",
            "write it as PUBSUB_EMULATOR_HOST holds it, e.g. emulator_host: 127.0.0.1:8085 "
            "(emulator_host='127.0.0.1:8085' in Python), or leave it out for Google Cloud Pub/Sub",
        )
    return str(value)
