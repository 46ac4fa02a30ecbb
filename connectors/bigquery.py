"""Google BigQuery sink (streaming inserts with insert ids, or load jobs) and the events table layout.

``mode="stream"`` uses ``tabledata.insertAll``; with ``insert_id=`` a column's values are sent as insert
ids, so BigQuery drops a row retried after a restart (best-effort dedup, about a minute on Google Cloud).
``mode="load"`` runs one NDJSON load job per ``flush()``: all or nothing, free of charge, no insert ids;
a job refused for its data is split in halves until each refused row is alone, and a job failed by the
service makes ``flush()`` raise. Rows a streaming insert or a load refuses (a value of another type than
its column's, a row over the 9 MB a request can carry, text with a lone surrogate, which no streaming
insert can carry; an insert BigQuery refuses whole, naming no row, is sent again in halves until each
refused row is alone) are never lost and never fail the flush: they go to
``dead_letter`` with a ``reject_reason`` column, or, without one, to the table ``<table>_rejected`` beside
the sink's (the reason and the whole row as JSON text). For a local server (``client_options={"api_endpoint": "http://127.0.0.1:9050"}``,
e.g. ``local-bigquery``) anonymous credentials are used. A secret of ``client_options`` (``api_key``) is
written to a spec as an environment reference, ``${BIGQUERY_API_KEY}`` unless given as one.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from streamlab._compat import without_python_support_notices
from streamlab._secrets import (
    MASK,
    env_name,
    redact_url,
    resolve,
    resolve_config,
    secret_reference,
    url_with_reference,
)
from streamlab._serde_values import is_utf8_text
from streamlab.clock import Clock
from streamlab.errors import ParameterError
from streamlab.io import Sink, SinkWriter, Upstream, missing_columns_problem, publish_now
from streamlab.serde import dump_json, encode_rows, rows_to_json, text_values

from ._params import positive_seconds, sink_or_none

__all__ = ["BigQuerySink", "create_events_table", "events_table", "make_client", "stream_requests"]

_EXTRA = "pip install 'streamlab[bigquery]'"
REASON_COLUMN = "reject_reason"
# insertAll: Google recommends at most 500 rows per request and allows 10 MB.
_STREAM_ROWS = 500
_STREAM_BYTES = 9 * 1024 * 1024
_MODES = ("stream", "load")
#: words that make a ``client_options`` key a credential (``api_key``, ``credentials_file``), as one of its
#: ``_``-separated parts: its value is written to a spec as ``${BIGQUERY_<KEY>}``
_SECRET_WORDS = frozenset({"key", "secret", "token", "password", "credentials"})
_LONE_SURROGATE = (
    "a text value holds a lone surrogate (such as an escaped '\\ud800' in JSON), which has no UTF-8 form: "
    "BigQuery's insertAll refuses the whole request holding it as malformed JSON (the row's JSON here "
    "escapes it)"
)
log = logging.getLogger("streamlab")


def _bigquery() -> Any:
    try:
        with without_python_support_notices():
            from google.cloud import bigquery
    except ImportError as exc:
        raise ImportError(f"BigQuery connectors need google-cloud-bigquery: {_EXTRA}") from exc
    return bigquery


def _retry(timeout: float) -> Any:
    """BigQuery's retry of transient errors, for at most ``timeout`` seconds in all: its default keeps
    trying an unreachable endpoint for 600 s whatever per-request ``timeout`` is given."""
    from google.cloud.bigquery import DEFAULT_RETRY

    return DEFAULT_RETRY.with_timeout(timeout)


def _unanswered() -> tuple[type[BaseException], ...]:
    """The errors of an endpoint that did not answer in time (its retries included) or refused to connect."""
    import requests
    from google.api_core import exceptions

    return (exceptions.RetryError, requests.exceptions.ConnectionError, requests.exceptions.Timeout)


@contextlib.contextmanager
def _answered(sink: BigQuerySink, what: str) -> Iterator[None]:
    """Missing credentials and an endpoint that does not answer, as errors naming the sink and the fix."""
    with _answered_by(repr(sink), sink.client_options, sink.timeout, what):
        yield


@contextlib.contextmanager
def _answered_by(who: str, client_options: Mapping[str, Any], timeout: float, what: str) -> Iterator[None]:
    """:func:`_answered` for ``who`` (a sink, or ``create_events_table(...)``) connecting with
    ``client_options`` and ``timeout``; a password of the endpoint never shows in the message."""
    _bigquery()  # without the extra: the error naming it, not google.auth's bare ModuleNotFoundError
    from google.auth import exceptions as auth_exceptions

    started = time.monotonic()
    try:
        yield
    except auth_exceptions.DefaultCredentialsError as exc:
        raise RuntimeError(
            f"{who}: no Google credentials to {what} ({exc}). Run 'gcloud auth application-default "
            "login', set GOOGLE_APPLICATION_CREDENTIALS, pass credentials=, or for a local server "
            "client_options={'api_endpoint': 'http://127.0.0.1:9050'}"
        ) from exc
    except _unanswered() as exc:
        endpoint = client_options.get("api_endpoint")
        where = redact_url(endpoint) if isinstance(endpoint, str) else "the BigQuery API"
        message = (
            f"{who}: BigQuery at {where} did not answer within timeout={timeout:g} s when asked to {what} "
            f"({time.monotonic() - started:.1f} s with retries): {exc}. Check client_options' "
            "api_endpoint and that the service is reachable, or raise timeout"
        )
        raise RuntimeError(_without_password(message, endpoint)) from exc


def _without_password(text: str, endpoint: Any) -> str:
    """``text`` with the password of the ``endpoint`` URL (its value, resolved) masked wherever it shows.

    Examples
    --------
    >>> _without_password("no answer from http://u:s3cret@h:1 (s3cret)", "http://u:s3cret@h:1")
    'no answer from http://u:***@h:1 (***)'
    """
    try:
        password = urlsplit(str(resolve(endpoint))).password if isinstance(endpoint, str) else None
    except ValueError:  # an unset ${NAME}: no password to hide
        password = None
    return text.replace(password, MASK) if password else text


def _secret_option(key: str) -> bool:
    """Whether the ``client_options`` key ``key`` holds a credential (:data:`_SECRET_WORDS`).

    Examples
    --------
    >>> _secret_option("api_key"), _secret_option("credentials_file"), _secret_option("api_endpoint")
    (True, True, False)
    """
    return not _SECRET_WORDS.isdisjoint(re.split(r"[^a-z0-9]+", str(key).lower()))


def _spec_option(key: str, value: Any) -> Any:
    """What a spec writes for the ``client_options`` entry ``key``: a credential as ``${BIGQUERY_<KEY>}``,
    a URL's password (``http://user:secret@host``) as ``${BIGQUERY_<KEY>_PASSWORD}``, the rest as it is.

    Examples
    --------
    >>> _spec_option("api_key", "AIza..."), _spec_option("api_endpoint", "http://u:s3cret@h:9050")
    ('${BIGQUERY_API_KEY}', 'http://u:${BIGQUERY_API_ENDPOINT_PASSWORD}@h:9050')
    """
    if _secret_option(key):
        return secret_reference(value, env_name("bigquery", key))
    if isinstance(value, str):
        return url_with_reference(value, env_name("bigquery", key, "password"))
    return value


def _table_id(table: str, project: str, owner: str) -> str:
    parts = table.split(".") if isinstance(table, str) else []
    if len(parts) == 2 and project and all(parts):
        return f"{project}.{table}"
    if len(parts) == 3 and all(parts):
        return table
    missing = " without a project" if len(parts) == 2 and all(parts) else ""
    raise ParameterError(
        owner,
        "table",
        f"expected 'dataset.table' (with project) or 'project.dataset.table', got {table!r}{missing}",
        "write the table as 'project.dataset.table', or as 'dataset.table' with project: my-project "
        "(project='my-project' in Python)",
    )


def make_client(
    project: str, client_options: Mapping[str, Any] | None = None, credentials: Any = None
) -> Any:
    """Create a ``bigquery.Client``; an ``http://`` endpoint (a local server) gets anonymous credentials.

    Parameters
    ----------
    project
        Google Cloud project id.
    client_options
        e.g. ``{"api_endpoint": "http://127.0.0.1:9050"}``; a value may be a ``${NAME}`` reference to an
        environment variable (``{"api_key": "${BIGQUERY_API_KEY}"}``), resolved here.
    credentials
        Explicit credentials; default: the ``api_key`` or ``credentials_file`` of ``client_options`` if
        given, else anonymous for ``http://`` endpoints, else Application Default.

    Returns
    -------
    google.cloud.bigquery.Client
        The client.

    Examples
    --------
    >>> make_client("demo", {"api_endpoint": "http://127.0.0.1:9050"}).project
    'demo'
    """
    bigquery = _bigquery()
    options = resolve_config(client_options or {}, "BigQuery client_options")
    # an API key or a key file are credentials: Google's client refuses them beside anonymous ones
    own = "api_key" in options or "credentials_file" in options
    if credentials is None and not own and str(options.get("api_endpoint", "")).startswith("http://"):
        from google.auth.credentials import AnonymousCredentials

        credentials = AnonymousCredentials()
    return bigquery.Client(project=project, credentials=credentials, client_options=options or None)


def events_table(table_id: str, *, partition_expiration_days: int | None = None) -> Any:
    """The product's events table: day-partitioned on ``timestamp``, clustered on ``event_type, user_id``.

    Parameters
    ----------
    table_id
        ``project.dataset.table``.
    partition_expiration_days
        Drop partitions older than this many days; ``None`` keeps them.

    Returns
    -------
    google.cloud.bigquery.Table
        The table definition (nothing is created).

    Examples
    --------
    >>> table = events_table("demo.analytics.events")
    >>> table.time_partitioning.field, table.clustering_fields
    ('timestamp', ['event_type', 'user_id'])
    >>> [(f.name, f.field_type, f.mode) for f in table.schema][:2]
    [('event_id', 'STRING', 'REQUIRED'), ('event_type', 'STRING', 'REQUIRED')]
    """
    bigquery = _bigquery()
    schema = [
        bigquery.SchemaField("event_id", "STRING", mode="REQUIRED", description="Unique id (insert id)"),
        bigquery.SchemaField("event_type", "STRING", mode="REQUIRED"),
        bigquery.SchemaField("user_id", "STRING"),
        bigquery.SchemaField("timestamp", "TIMESTAMP", mode="REQUIRED", description="Event time, UTC"),
        bigquery.SchemaField("properties", "JSON"),
    ]
    table = bigquery.Table(table_id, schema=schema)
    expiration_ms = None if partition_expiration_days is None else int(partition_expiration_days) * 86_400_000
    table.time_partitioning = bigquery.TimePartitioning(
        type_=bigquery.TimePartitioningType.DAY, field="timestamp", expiration_ms=expiration_ms
    )
    table.clustering_fields = ["event_type", "user_id"]
    return table


def create_events_table(
    table: str,
    *,
    project: str = "",
    client_options: Mapping[str, Any] | None = None,
    credentials: Any = None,
    partition_expiration_days: int | None = None,
    exists_ok: bool = True,
    timeout: float = 120.0,
) -> Any:
    """Create the dataset (if needed) and the events table laid out by :func:`events_table`.

    Parameters
    ----------
    table
        ``dataset.table`` (with ``project``) or ``project.dataset.table``.
    project
        Google Cloud project id.
    client_options, credentials
        As for :func:`make_client`.
    partition_expiration_days
        Drop partitions older than this many days; ``None`` keeps them.
    exists_ok
        Keep an existing table instead of raising ``Conflict``.
    timeout
        Seconds to wait for each request, its retries of transient errors included.

    Returns
    -------
    google.cloud.bigquery.Table
        The table as BigQuery reports it.

    Examples
    --------
    >>> create_events_table("analytics.events", project="demo")  # doctest: +SKIP
    >>> events_table("demo.analytics.events").table_id
    'events'
    """
    table_id = _table_id(table, project, "create_events_table")
    timeout = positive_seconds("create_events_table", "timeout", timeout, 120, about=f"table {table!r}")
    client = make_client(table_id.split(".")[0], client_options, credentials)
    who = f"create_events_table({table!r})"
    dataset = table_id.rsplit(".", 1)[0]
    try:
        with _answered_by(who, client_options or {}, timeout, f"create the dataset {dataset!r}"):
            client.create_dataset(dataset, exists_ok=True, retry=_retry(timeout), timeout=timeout)
        with _answered_by(who, client_options or {}, timeout, f"create the table {table_id!r}"):
            return client.create_table(
                events_table(table_id, partition_expiration_days=partition_expiration_days),
                exists_ok=exists_ok,
                retry=_retry(timeout),
                timeout=timeout,
            )
    finally:
        client.close()


class BigQuerySink(Sink):
    """Write rows to an existing BigQuery table by streaming inserts or load jobs.

    Parameters
    ----------
    table
        ``dataset.table`` (with ``project``) or ``project.dataset.table``.
    project
        Google Cloud project id.
    mode
        ``"stream"`` (insertAll, rows visible at once) or ``"load"`` (one load job per flush).
    insert_id
        Column whose values become insert ids (stream mode), e.g. ``"event_id"``; ``None``: none.
    client_options, credentials
        As for :func:`make_client`. ``spec()`` writes a credential of ``client_options`` (``api_key``,
        ``credentials_file``, a key naming a key, secret, token or password) as an environment reference,
        ``${BIGQUERY_<KEY>}`` unless given as one, resolved when the sink connects: set that variable
        where the spec runs.
    dead_letter
        Sink receiving rows a streaming insert refused, with a ``reject_reason`` column. ``None``: they
        are appended to the BigQuery table ``<table>_rejected`` (:meth:`rejected_table`, created when
        first needed) as ``reject_reason`` and the whole ``row`` as JSON text (streamlab's encoding), by
        a load job, which takes a row too large for a streaming insert; a warning says so. Either way
        the flush goes on, so a refused row does not fail every retry of its batch. Like inserts without
        ``insert_id``, a rejected row may be appended again when its batch is replayed after a crash.
        With ``mode="load"``, a load job BigQuery refuses for its data (it writes nothing) is loaded
        again in halves until each refused row is alone: those are rejected the same way. A job that
        fails for the service (a timeout, a server error) makes the flush raise.
    extra_columns
        Batch columns the table does not have (e.g. a source's ``message_id``): ``"drop"`` them, or
        ``"error"`` to raise ``KeyError`` naming them.
    timeout
        Seconds to wait for each request (its retries of transient errors included; a load job's upload
        is one) or load job; an endpoint that does not answer in that time fails the call with an error
        naming it.

    Examples
    --------
    >>> sink = BigQuerySink("analytics.events", project="demo", insert_id="event_id")
    >>> sink.spec()["table"]
    'demo.analytics.events'
    """

    def __init__(
        self,
        table: str,
        *,
        project: str = "",
        mode: str = "stream",
        insert_id: str | None = None,
        client_options: Mapping[str, Any] | None = None,
        credentials: Any = None,
        dead_letter: Sink | None = None,
        extra_columns: str = "drop",
        timeout: float = 120.0,
    ) -> None:
        where = type(self).__name__
        if extra_columns not in ("drop", "error"):
            raise ParameterError(
                where,
                "extra_columns",
                f"expected 'drop' or 'error' for table {table!r}, got {extra_columns!r}",
                "write extra_columns: drop (leave out columns the table lacks) or extra_columns: error",
            )
        self.table = _table_id(table, project, where)
        if mode not in _MODES:
            raise ParameterError(
                where,
                "mode",
                f"expected 'stream' or 'load' for table {table!r}, got {mode!r}",
                "write mode: stream (streaming inserts) or mode: load (load jobs)",
            )
        if insert_id is not None and mode == "load":
            raise ParameterError(
                where,
                "insert_id",
                f"insert_id={insert_id!r} works with mode='stream' only; load jobs have no insert ids",
                "remove insert_id, or write mode: stream",
            )
        if insert_id is not None and (not isinstance(insert_id, str) or not insert_id):
            raise ParameterError(
                where,
                "insert_id",
                f"expected a column name or None for table {table!r}, got {insert_id!r}",
                "name the column whose values deduplicate rows, or leave insert_id out (None)",
            )
        self.mode = mode
        self.insert_id = insert_id
        self.client_options = dict(client_options or {})
        self.credentials = credentials
        self.dead_letter = sink_or_none(where, "dead_letter", dead_letter, about=f"table {table!r}")
        self.extra_columns = extra_columns
        self.timeout = positive_seconds(where, "timeout", timeout, 120, about=f"table {table!r}")

    def columns_problem(self, columns: list[str], upstream: Upstream) -> tuple[str, str] | None:
        """The ``insert_id`` column, when the stream lacks it (the first write failed on it).

        Examples
        --------
        >>> BigQuerySink("d.t", project="p", insert_id="eid").columns_problem(["event_id"], Upstream())[0]
        "BigQuerySink(insert_id='eid') names column(s) ['eid'] that the stream does not have (its columns: ['event_id']); the first write would fail"
        """
        return missing_columns_problem(
            f"BigQuerySink(insert_id={self.insert_id!r})",
            [self.insert_id] if self.insert_id is not None else [],
            columns,
            "name the column whose values identify a row (event_id), or leave insert_id out",
        )

    def open(self, clock: Clock | None = None) -> _BigQueryWriter:
        """Connect and read the table's schema (a missing table fails here)."""
        return _BigQueryWriter(self, clock)

    def rejected_table(self) -> str:
        """Where refused rows go without ``dead_letter``: ``project.dataset.<table>_rejected``, with
        ``reject_reason`` and the whole ``row`` as JSON text (a table any row fits).

        Examples
        --------
        >>> BigQuerySink("analytics.events", project="demo").rejected_table()
        'demo.analytics.events_rejected'
        """
        return f"{self.table}_rejected"

    def spec(self) -> dict[str, Any]:
        """YAML-ready description.

        Examples
        --------
        >>> BigQuerySink("p.d.t", mode="load").spec()["mode"]
        'load'

        Credentials given as an object cannot be saved:

        >>> BigQuerySink("p.d.t", credentials=object()).spec()
        Traceback (most recent call last):
        ...
        streamlab.errors.ParameterError: BigQuerySink(credentials=...): a Python object, which a YAML spec or exported code cannot carry: the pipeline read back would connect with other credentials. Fix: leave credentials= out and give them where the pipeline runs (GOOGLE_APPLICATION_CREDENTIALS, or client_options={'credentials_file': '${BIGQUERY_CREDENTIALS_FILE}'})
        """
        if self.credentials is not None:
            raise ParameterError(
                "BigQuerySink",
                "credentials",
                "a Python object, which a YAML spec or exported code cannot carry: the pipeline read back "
                "would connect with other credentials",
                "leave credentials= out and give them where the pipeline runs (GOOGLE_APPLICATION_CREDENTIALS, "
                "or client_options={'credentials_file': '${BIGQUERY_CREDENTIALS_FILE}'})",
            )
        return {
            "kind": "bigquery",
            "table": self.table,
            "mode": self.mode,
            "insert_id": self.insert_id,
            "client_options": {k: _spec_option(k, v) for k, v in self.client_options.items()},
            "dead_letter": None if self.dead_letter is None else self.dead_letter.spec(),
            "extra_columns": self.extra_columns,
            "timeout": self.timeout,
        }

    def __repr__(self) -> str:
        return f"BigQuerySink({self.table!r}, mode={self.mode!r})"


def stream_requests(
    batch: pd.DataFrame,
    insert_id: str | None,
    json_columns: tuple[str, ...] = (),
    *,
    oversized: list[int] | None = None,
    unreadable: list[int] | None = None,
) -> list[tuple[list[dict[str, Any]], list[str] | None, list[int]]]:
    """Build insertAll requests: ``(rows, insert ids, batch positions)`` of at most 500 rows / 9 MB each.

    Parameters
    ----------
    batch
        Rows to insert.
    insert_id
        Column with the insert ids, or ``None``.
    json_columns
        Columns of BigQuery type JSON; streaming inserts take their values as JSON text.
    oversized
        Where the positions of rows over 9 MB go, left out of every request (BigQuery refuses a request
        over 10 MB whole, on every retry); ``None``: they get a request of their own.
    unreadable
        Where the positions of rows holding text with a lone surrogate (``"\\ud800"``, which a ``json``
        field or a user function can hold: it has no UTF-8 form) go, left out of every request (BigQuery
        refuses a request holding one whole, as malformed JSON, on every retry); ``None``: they are sent.

    Returns
    -------
    list of tuple
        One entry per request.

    Examples
    --------
    >>> rows = pd.DataFrame({"event_id": ["a", "b"], "properties": [{"x": 1}, None]})
    >>> [(r, ids) for r, ids, _ in stream_requests(rows, "event_id", ("properties",))]
    [([{'event_id': 'a', 'properties': '{"x":1}'}, {'event_id': 'b', 'properties': None}], ['a', 'b'])]
    >>> lone: list[int] = []
    >>> texts = pd.DataFrame({"u": pd.Series(["a", "b\\ud800"], dtype=object)})
    >>> [p for _, _, p in stream_requests(texts, None, unreadable=lone)], lone
    ([[0]], [1])
    """
    if insert_id is not None and insert_id not in batch.columns:
        raise KeyError(f"insert_id column {insert_id!r} is not in the batch; it has {list(batch.columns)}")
    encoded = encode_rows(batch)
    rows = [json.loads(line) for line in encoded]
    for column in json_columns:
        if column in batch.columns:
            for row in rows:
                value = row.get(column)
                if value is not None and not isinstance(value, str):
                    row[column] = dump_json(value)
    ids = text_values(batch[insert_id]) if insert_id is not None else None
    requests: list[tuple[list[dict[str, Any]], list[str] | None, list[int]]] = []
    size = 0
    positions: list[int] = []
    for i, line in enumerate(encoded):
        if oversized is not None and len(line) > _STREAM_BYTES:
            oversized.append(i)
            continue
        if unreadable is not None and _lone_surrogate(line):
            unreadable.append(i)
            continue
        if positions and (len(positions) >= _STREAM_ROWS or size + len(line) > _STREAM_BYTES):
            requests.append(_request(rows, ids, positions))
            positions, size = [], 0
        positions.append(i)
        size += len(line)
    if positions:
        requests.append(_request(rows, ids, positions))
    return requests


def _lone_surrogate(line: bytes) -> bool:
    """Whether the row of the JSON ``line`` (which escapes every character outside ASCII) holds text with
    a lone surrogate, in a value or a key at any depth."""
    return b"\\ud" in line and not is_utf8_text(json.dumps(json.loads(line), ensure_ascii=False))


def _request(
    rows: list[dict[str, Any]], ids: list[str] | None, positions: list[int]
) -> tuple[list[dict[str, Any]], list[str] | None, list[int]]:
    """One insertAll request of the rows at ``positions``."""
    return [rows[i] for i in positions], [ids[i] for i in positions] if ids is not None else None, positions


class _RowsRefusedError(RuntimeError):
    """A load job failed for its rows' data (nothing was written): ``reason`` says why."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _refused_data(exc: BaseException, errors: list[dict[str, Any]] | None) -> bool:
    """Whether a load job failed for its data (BigQuery's ``invalid`` reason, a 400), not for the
    service (a timeout, a 5xx, a permission), which a retry of the same rows may get past."""
    if any(e.get("reason") == "invalid" for e in errors or []):
        return True
    return getattr(exc, "code", None) == 400


class _BigQueryWriter(SinkWriter):
    """Open writer of a :class:`BigQuerySink`."""

    def __init__(self, sink: BigQuerySink, clock: Clock | None) -> None:
        self._sink = sink
        with _answered(sink, f"read the table {sink.table!r}"):
            self._client = make_client(sink.table.split(".")[0], sink.client_options, sink.credentials)
            table = self._client.get_table(sink.table, retry=_retry(sink.timeout), timeout=sink.timeout)
        self._schema = table.schema
        self._json_columns = tuple(f.name for f in table.schema if f.field_type == "JSON")
        self._table_columns = [f.name for f in table.schema]
        self._dead_letter = sink.dead_letter.open(clock) if sink.dead_letter is not None else None
        self._buffer: list[pd.DataFrame] = []
        self._rejected: list[pd.DataFrame] = []
        self._rejected_ready = False  # the rejected table exists (created on the first refused row)
        self.written = 0

    def write_batch(self, batch: pd.DataFrame) -> None:
        """Buffer rows (only the table's columns) until :meth:`flush`."""
        if batch.empty:
            return
        extra = [c for c in batch.columns if c not in self._table_columns]
        if extra and self._sink.extra_columns == "error":
            raise KeyError(
                f"{self._sink!r}: the table has no column(s) {extra}; select the table's columns "
                f"{self._table_columns} before the sink, or pass extra_columns='drop'"
            )
        self._buffer.append(batch[[c for c in batch.columns if c in self._table_columns]] if extra else batch)

    def flush(self) -> None:
        """Insert (or load) everything buffered; route refused rows, or raise without a dead-letter sink."""
        if self._buffer:
            rows = pd.concat(self._buffer, ignore_index=True)
            self._buffer = []
            if self._sink.mode == "stream":
                self._stream(rows)
            else:
                self._load(rows)
        if not self._rejected:
            return
        rejected = pd.concat(self._rejected, ignore_index=True)
        self._rejected = []
        if self._dead_letter is not None:
            publish_now(self._dead_letter, rejected)
            return
        self._reject(rejected)

    def _reject(self, rejected: pd.DataFrame) -> None:
        """Refused rows to :meth:`BigQuerySink.rejected_table`: the reason and each whole row as JSON text."""
        bigquery = _bigquery()
        table = self._sink.rejected_table()
        reasons = rejected[REASON_COLUMN].tolist()
        log.warning(
            "%r: %d row(s) written to table %r, first: %s", self._sink, len(rejected), table, reasons[0]
        )
        texts = rows_to_json(rejected.drop(columns=[REASON_COLUMN]).reset_index(drop=True))
        lines = [
            dump_json({REASON_COLUMN: r, "row": t}).encode() for r, t in zip(reasons, texts, strict=True)
        ]
        schema = [
            bigquery.SchemaField(REASON_COLUMN, "STRING", mode="REQUIRED"),
            bigquery.SchemaField("row", "STRING", mode="REQUIRED"),
        ]
        if not self._rejected_ready:
            with _answered(self._sink, f"create the table {table!r}"):
                self._client.create_table(
                    bigquery.Table(table, schema=schema),
                    exists_ok=True,
                    retry=_retry(self._sink.timeout),
                    timeout=self._sink.timeout,
                )
            self._rejected_ready = True
        self._load_lines(lines, table, schema)

    def _stream(self, rows: pd.DataFrame) -> None:
        reasons: dict[int, str] = {}
        too_big: list[int] = []
        unreadable: list[int] = []
        requests = stream_requests(
            rows, self._sink.insert_id, self._json_columns, oversized=too_big, unreadable=unreadable
        )
        for i in too_big:
            reasons[i] = (
                f"row over {_STREAM_BYTES:,} bytes as JSON: BigQuery's insertAll refuses a request over 10 MB "
                "(load jobs take larger rows: mode='load')"
            )
        for i in unreadable:
            reasons[i] = _LONE_SURROGATE
        for payload, ids, positions in requests:
            self._insert(payload, ids, positions, reasons)
        if reasons:
            index = sorted(reasons)
            self._rejected.append(rows.iloc[index].assign(**{REASON_COLUMN: [reasons[i] for i in index]}))

    def _insert(
        self,
        payload: list[dict[str, Any]],
        ids: list[str] | None,
        positions: list[int],
        reasons: dict[int, str],
        *,
        half: bool = False,
    ) -> None:
        """One insertAll request; the rows it refuses get their reason in ``reasons`` (by batch position).

        A request refused whole (a 400 naming no row, such as local-bigquery's 'Malformed JSON' for some
        requests of bad rows only) wrote nothing: it is sent again in halves until each refused row is
        alone and rejected with BigQuery's message, so the other rows are written (at most ``2n - 1``
        requests for ``n`` rows, a few for a few bad rows); a warning says so once per request."""
        from google.api_core import exceptions

        bigquery = _bigquery()
        try:
            with _answered(self._sink, f"insert {len(payload)} rows"):
                errors = self._client.insert_rows_json(
                    self._sink.table,
                    payload,
                    row_ids=ids if ids is not None else bigquery.AutoRowIDs.DISABLED,
                    skip_invalid_rows=True,
                    retry=_retry(self._sink.timeout),
                    timeout=self._sink.timeout,
                )
        except exceptions.BadRequest as exc:
            if len(payload) == 1:
                reasons[positions[0]] = f"insertAll refused the request of this row alone: {exc.message}"
                return
            if not half:
                log.warning(
                    "%r: insertAll refused a request of %d rows whole, naming no row (%s); sending it again "
                    "in halves to find the refused row(s), which are rejected",
                    self._sink,
                    len(payload),
                    exc.message,
                )
            mid = len(payload) // 2
            for part in (slice(None, mid), slice(mid, None)):
                part_ids = None if ids is None else ids[part]
                self._insert(payload[part], part_ids, positions[part], reasons, half=True)
            return
        for error in errors:
            messages = "; ".join(
                f"{e.get('reason', 'invalid')}: {e.get('message', '')}" for e in error.get("errors", [])
            )
            reasons[positions[int(error["index"])]] = messages or "rejected"
        self.written += len(payload) - len(errors)

    def _load(self, rows: pd.DataFrame) -> None:
        """Load ``rows`` by one job; when BigQuery refuses their data, the job wrote nothing, and the
        rows are loaded in halves until each refused row is alone: it goes to the rejected rows with
        the job's reason, the others are written (a load per half: a few jobs for a few bad rows)."""
        try:
            self._load_lines(encode_rows(rows), self._sink.table, self._schema)
        except _RowsRefusedError as refused:
            if len(rows) == 1:
                self._rejected.append(rows.assign(**{REASON_COLUMN: [refused.reason]}))
                return
            mid = len(rows) // 2
            self._load(rows.iloc[:mid])
            self._load(rows.iloc[mid:])
            return
        self.written += len(rows)

    def _load_lines(self, lines: list[bytes], table: str, schema: Any) -> None:
        """Append NDJSON ``lines`` to ``table`` by one load job, or raise (it wrote nothing):
        :class:`_RowsRefusedError` when BigQuery refused the data, ``RuntimeError`` otherwise."""
        from google.api_core import exceptions

        bigquery = _bigquery()
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            schema=schema,
        )
        data = b"\n".join(lines)
        timeout = self._sink.timeout
        # one job id for every attempt: an attempt whose answer was lost made the job, which the next one
        # then finds (409) instead of loading the rows a second time
        job_id = f"streamlab_{uuid.uuid4().hex}"
        with _answered(self._sink, f"load {len(lines)} rows into {table!r}"):
            try:
                # the client's own upload retries (num_retries) know no deadline: about a minute against
                # an endpoint that refuses connections, forever against one that does not answer
                job = _retry(timeout)(self._client.load_table_from_file)(
                    io.BytesIO(data),
                    table,
                    job_config=config,
                    rewind=True,
                    size=len(data),
                    num_retries=0,
                    job_id=job_id,
                    timeout=timeout,
                )
            except exceptions.Conflict:
                job = self._client.get_job(job_id, retry=_retry(timeout), timeout=timeout)
        with _answered(self._sink, f"wait for the load job {job_id} into {table!r}"):
            try:
                job.result(retry=_retry(timeout), timeout=timeout)
            except _unanswered():
                raise
            except Exception as exc:
                # A load job is all or nothing: nothing was written, so the data is not durable and the
                # runtime must not commit. Bad rows should be dead-lettered by the parse step before this sink.
                details = "; ".join(str(e.get("message", e)) for e in (job.errors or [])[:3])
                message = f"{self._sink!r}: load job {job.job_id} into {table!r} of {len(lines)} rows failed: {exc}. {details}"
                if _refused_data(exc, job.errors) and table == self._sink.table:
                    raise _RowsRefusedError(message, f"load job refused the row: {details or exc}") from exc
                raise RuntimeError(message) from exc

    def close(self) -> None:
        """Flush, close the dead-letter sink and the client."""
        try:
            self.flush()
        finally:
            if self._dead_letter is not None:
                self._dead_letter.close()
            self._client.close()
