"""The redis-py client (imported when a sink opens), URL and timeout checks, ``{column}`` key templates."""

from __future__ import annotations

import logging
import string
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd

from streamlab._secrets import redact_url, resolve
from streamlab.errors import ParameterError
from streamlab.serde import key_texts


def import_redis() -> Any:
    try:
        import redis
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("Redis sinks need redis-py: pip install 'streamlab[redis]'") from exc
    return redis


#: how text the sinks write is made bytes: UTF-8, where a lone surrogate (``"\\ud800"``, not valid
#: Unicode, which UTF-8 cannot encode) becomes the escape ``\\ud800``, the six characters JSON writes for it
TEXT_ERRORS = "backslashreplace"


def connect(sink: Any) -> Any:
    """A client for ``sink.url`` (``${ENV}`` references resolved) whose every call is bounded by
    ``sink.timeout``, and which writes text as UTF-8 with lone surrogates escaped (``TEXT_ERRORS``):
    with redis-py's strict encoding one such character failed the whole batch on every retry."""
    redis = import_redis()
    return redis.Redis.from_url(
        resolve(sink.url, f"{type(sink).__name__} url"),
        socket_timeout=sink.timeout,
        socket_connect_timeout=sink.timeout,
        encoding_errors=TEXT_ERRORS,
    )


def escaped_rows(*columns: Sequence[Any]) -> int:
    """How many rows hold text that UTF-8 cannot encode (a lone surrogate) in any of ``columns`` (one
    value per row each): the rows the client writes with such characters escaped.

    Examples
    --------
    >>> escaped_rows(["a", "\\ud800", None], ["x", "y", "\\udcff"])
    2
    """
    rows: set[int] = set()
    for values in columns:
        texts = [v for v in values if isinstance(v, str)]
        try:
            "".join(texts).encode("utf-8")
            continue
        except UnicodeEncodeError:
            pass
        for i, v in enumerate(values):
            if isinstance(v, str) and not v.isascii():
                try:
                    v.encode("utf-8")
                except UnicodeEncodeError:
                    rows.add(i)
    return len(rows)


def log_escaped(sink: Any, n: int, total: int) -> None:
    """Log that ``n`` rows were written with lone surrogates escaped (``total`` so far)."""
    if n:
        logging.getLogger("streamlab.connectors.redis").warning(
            "%r: %d row(s) hold text with a lone surrogate (such as '\\ud800': not valid Unicode, which "
            "UTF-8 cannot encode); written with it as the escape \\uXXXX, as JSON writes it (%d so far)",
            sink,
            n,
            total,
        )


def _where(client: Any) -> str:
    kw = client.connection_pool.connection_kwargs
    return str(
        kw.get("path") or f"{kw.get('host')}:{kw.get('port')}"
    )  # never the URL: it may hold a password


def refused(sink: Any, client: Any, what: str, exc: BaseException) -> RuntimeError:
    """A command Redis refused (``exc``, a ``ResponseError``) as an error naming the sink and the fix."""
    fix = (
        "; a key the sink writes already holds another kind of value: write to other keys "
        "(change the sink's key or stream template) or delete the old ones"
        if "WRONGTYPE" in str(exc)
        else ""
    )
    return RuntimeError(f"{type(sink).__name__}: Redis at {_where(client)} refused {what}: {exc}{fix}")


def execute(sink: Any, client: Any, pipe: Any, what: str, *, raise_on_error: bool = True) -> Any:
    """Run a pipeline; every failure is an error naming the sink, the server, what went wrong and the fix.

    A server that does not answer within the sink's timeout, one that refuses the connection, one that
    refuses the url's credentials and one that refuses a command (a key holding another type) are told
    apart: each needs a different fix. ``raise_on_error=False``: a command Redis refused inside the
    transaction (the others were applied) is its ``ResponseError`` in the results, for the caller to judge.
    """
    redis = import_redis()
    errors = redis.exceptions
    kw = client.connection_pool.connection_kwargs
    where = _where(client)
    owner = type(sink).__name__
    try:
        return pipe.execute(raise_on_error=raise_on_error)
    except errors.AuthenticationError as exc:
        user = kw.get("username")
        raise RuntimeError(
            f"{owner}: Redis at {where} refused the credentials in the url "
            f"({'user ' + repr(user) if user else 'no user'}, "
            f"{'a password' if kw.get('password') else 'no password'}): {exc}. Put the right ones in "
            "the url, e.g. 'redis://USER:${REDIS_PASSWORD}@host:6379/0' (the password alone: "
            "'redis://:${REDIS_PASSWORD}@host:6379/0')"
        ) from exc
    except errors.TimeoutError as exc:
        raise RuntimeError(
            f"{owner}: Redis at {where} did not complete {what} within {sink.timeout:g} s "
            f"(timeout): {exc}. Is the server running and reachable, or stalled?"
        ) from exc
    except errors.ConnectionError as exc:
        raise RuntimeError(
            f"{owner}: Redis at {where} could not be reached for {what}: {exc}. Is the server running, "
            "and is that the host and port of the url?"
        ) from exc
    except errors.ResponseError as exc:
        raise refused(sink, client, what, exc) from exc


def check_url(owner: str, url: str) -> str:
    if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
        raise ParameterError(
            owner,
            "url",
            f"expected a Redis URL, got {redact_url(url) if isinstance(url, str) else url!r}",
            "write a URL such as 'redis://127.0.0.1:6379/0' (rediss:// for TLS, unix:///path.sock for a "
            "socket)",
        )
    if url.startswith("unix://"):
        return url
    parts = urlsplit(url)
    shown = redact_url(url)
    if "${" not in parts.netloc:  # a port given as a ${ENV} reference is read when connecting
        try:
            parts.port  # noqa: B018 - parsing it is the check
        except ValueError:
            raise ParameterError(
                owner,
                "url",
                f"the port of {shown!r} is not a number from 1 to 65535",
                "write the port as a number, as in 'redis://127.0.0.1:6379/0'",
            ) from None
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ParameterError(
            owner,
            "url",
            f"the path of {shown!r} is the database number, got {db!r}",
            "end the URL with the database number, as in 'redis://127.0.0.1:6379/0'",
        )
    return url


def parse_template(owner: str, what: str, template: str) -> tuple[tuple[str, str | None], ...]:
    """Split ``"metrics:{event_type}"`` into ``(literal, column)`` pairs; only plain ``{column}`` fields."""
    if not isinstance(template, str) or not template:
        example = "metrics:{event_type}" if what == "key_template" else "alerts:{event_type}"
        raise ParameterError(
            owner,
            what,
            f"expected a non-empty name or template, got {template!r}",
            f"give a name, or a template such as {example!r} (quote it in YAML)",
        )
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ParameterError(
            owner, what, f"{template!r} is not a template: {exc}", "write literal braces as '{{' and '}}'"
        ) from exc
    out: list[tuple[str, str | None]] = []
    for literal, name, spec, conv in parts:
        if name is not None and (not name or spec or conv):
            raise ParameterError(
                owner,
                what,
                f"{template!r} has a field that is not a plain column name like {{event_type}}",
                "name plain columns in the template, and format the column in a step before the sink",
            )
        out.append((literal, name))
    return tuple(out)


def template_columns(parts: tuple[tuple[str, str | None], ...]) -> list[str]:
    """The columns a parsed template names, each once."""
    return list(dict.fromkeys(c for _, c in parts if c is not None))


#: the text of a missing value in a key or stream name: the key ``None``, as windows name a missing key
MISSING_TEXT = "None"


def render(owner: str, parts: tuple[tuple[str, str | None], ...], batch: pd.DataFrame) -> np.ndarray:
    """The template filled in for every row, column by column. A value is every sink's key text
    (:func:`streamlab.serde.key_texts`), the same in every batch: ``7.0`` as ``7`` (pandas makes an
    integer column float64 once it meets a missing value, and ``metrics:7.0`` was another hash than
    ``metrics:7``), a boolean ``true`` / ``false``, a time ISO-8601 UTC text (pandas' text of a time has
    the precision of the most precise time in its batch). A missing value (None, NaN, NaT) is ``None``,
    the name of a missing key.

    Examples
    --------
    >>> parts = parse_template("RedisMetricsSink", "key_template", "m:{user_id}")
    >>> render("RedisMetricsSink", parts, pd.DataFrame({"user_id": [7, None]})).tolist()
    ['m:7', 'm:None']
    """
    missing = [c for _, c in parts if c is not None and c not in batch.columns]
    if missing:
        raise KeyError(
            f"{owner}: the template needs column(s) {missing}; the batch has {list(batch.columns)}"
        )
    out = np.full(len(batch), "", dtype=object)
    for literal, column in parts:
        if literal:
            out = out + literal
        if column is not None:
            texts = [MISSING_TEXT if t is None else t for t in key_texts(batch[column])]
            out = out + np.array(texts, dtype=object)
    return out
