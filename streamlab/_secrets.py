"""Secrets in connector parameters: written to specs as environment references, never as values.

A secret (a password in a URL, a webhook URL, a routing key, a Kafka ``sasl.password``) is given either
as its value or as a reference ``"${NAME}"`` to an environment variable. ``spec()`` writes references
only: a reference stays as given, a value is replaced by ``"${<DEFAULT_NAME>}"`` (each connector
documents the name), so a saved spec or exported file never holds the secret; set that variable where
the spec runs. References are resolved when the connector connects, not when the spec is loaded, so
a spec can be inspected and exported without them. ``repr`` shows ``***`` in their place.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "MASK",
    "env_name",
    "is_reference",
    "redact_url",
    "resolve",
    "resolve_config",
    "secret_reference",
    "stand_in",
    "url_with_reference",
]

MASK = "***"
_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def is_reference(value: Any) -> bool:
    """Whether ``value`` is exactly one ``${NAME}`` environment reference.

    Examples
    --------
    >>> is_reference("${KAFKA_PASSWORD}"), is_reference("hunter2")
    (True, False)
    """
    return isinstance(value, str) and _REF.fullmatch(value) is not None


def resolve(value: Any, what: str = "a setting") -> Any:
    """``value`` with every ``${NAME}`` replaced by that environment variable (other values as given).

    Raises
    ------
    ValueError
        Naming the variable and what needs it, when it is not set.

    Examples
    --------
    >>> os.environ["STREAMLAB_DOC_SECRET"] = "s3cret"
    >>> resolve("redis://:${STREAMLAB_DOC_SECRET}@localhost:6379/0")
    'redis://:s3cret@localhost:6379/0'
    >>> resolve(5)
    5
    """
    if not isinstance(value, str) or "${" not in value:
        return value

    def env(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in os.environ:
            raise ValueError(
                f"{what} refers to the environment variable {name}, which is not set; "
                f"set it where the pipeline runs (export {name}=...) — specs hold references, not secrets"
            )
        return os.environ[name]

    return _REF.sub(env, value)


def resolve_config(config: Mapping[str, Any], owner: str) -> dict[str, Any]:
    """A client config with its ``${NAME}`` references resolved.

    Examples
    --------
    >>> os.environ["STREAMLAB_DOC_SECRET"] = "s3cret"
    >>> resolve_config({"sasl.password": "${STREAMLAB_DOC_SECRET}", "linger.ms": 5}, "KafkaSink")
    {'sasl.password': 's3cret', 'linger.ms': 5}
    """
    return {k: resolve(v, f"{owner} config {k!r}") for k, v in config.items()}


def stand_in(value: str, text: str = "x") -> str:
    """``value`` with every ``${NAME}`` replaced by ``text``: a setting judged before its secret is known.

    Examples
    --------
    >>> stand_in("https://app:${TOKEN_URL_PASSWORD}@idp/token")
    'https://app:x@idp/token'
    """
    return _REF.sub(text, value)


def secret_reference(value: Any, default_name: str) -> str:
    """What a spec writes for a secret: its reference if it is one, else ``${default_name}``.

    Examples
    --------
    >>> secret_reference("hunter2", "KAFKA_SASL_PASSWORD")
    '${KAFKA_SASL_PASSWORD}'
    >>> secret_reference("${MY_PASSWORD}", "KAFKA_SASL_PASSWORD")
    '${MY_PASSWORD}'
    """
    return value if is_reference(value) else "${" + default_name + "}"


def env_name(*parts: str) -> str:
    """An environment variable name from parts: ``env_name("kafka", "sasl.password")``.

    Examples
    --------
    >>> env_name("kafka", "sasl.oauthbearer.config")
    'KAFKA_SASL_OAUTHBEARER_CONFIG'
    """
    return re.sub(r"[^A-Za-z0-9]+", "_", "_".join(parts)).strip("_").upper()


#: query parameters of a URL that hold a secret (redis-py reads ``?password=``, as many clients do; an
#: OAuth token endpoint ``?client_secret=``)
_SECRET_PARAMETERS = frozenset(
    {"password", "passwd", "pwd", "pass", "secret", "client_secret", "token", "access_token", "api_key"}
)


def _with_password(url: str, replace: Any) -> str:
    """``url`` with the password of its ``user:password@`` part, and the value of each query parameter
    that holds a secret (``?password=...``), replaced by ``replace(value)``; the rest as it is written."""
    parts = urlsplit(url)
    out = url
    if "@" in parts.netloc:
        userinfo, _, host = parts.netloc.rpartition("@")
        user, colon, password = userinfo.partition(":")
        if colon and password:
            out = out.replace(parts.netloc, f"{user}:{replace(password)}@{host}", 1)
    if parts.query:

        def parameter(m: re.Match[str]) -> str:
            key, value = m.group(2), m.group(3)
            secret = key.lower() in _SECRET_PARAMETERS and value
            return f"{m.group(1)}{key}={replace(value)}" if secret else m.group(0)

        query = re.sub(r"(^|[&;])([^&;=]+)=([^&;]*)", parameter, parts.query)
        head, mark, _ = out.rpartition("?" + parts.query)
        if mark:
            out = head + "?" + query + out[len(head) + len(mark) :]
    return out


def url_with_reference(url: str, default_name: str) -> str:
    """``url`` with its password (``scheme://user:password@host``) replaced by a reference.

    Examples
    --------
    >>> url_with_reference("redis://:hunter2@cache:6379/0", "REDIS_PASSWORD")
    'redis://:${REDIS_PASSWORD}@cache:6379/0'
    >>> url_with_reference("redis://cache:6379/0", "REDIS_PASSWORD")
    'redis://cache:6379/0'
    >>> url_with_reference("rediss://cache:6380/0?username=app&password=hunter2", "REDIS_PASSWORD")
    'rediss://cache:6380/0?username=app&password=${REDIS_PASSWORD}'
    """
    return _with_password(url, lambda password: secret_reference(password, default_name))


def redact_url(url: str) -> str:
    """``url`` for display: a password (value or reference) becomes ``***``.

    Examples
    --------
    >>> redact_url("redis://user:hunter2@cache:6379/0")
    'redis://user:***@cache:6379/0'
    >>> redact_url("unix:///run/redis.sock?db=0&password=hunter2")
    'unix:///run/redis.sock?db=0&password=***'
    """
    return _with_password(url, lambda _password: MASK)
