"""``PubSubSink``: publish rows as JSON messages (optionally ordered by a key column)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from streamlab._dead_letter import fit_payload
from streamlab._timestream_values import utf8_size
from streamlab.clock import Clock
from streamlab.errors import ParameterError
from streamlab.io import Sink, SinkWriter, Upstream, missing_columns_problem, publish_now
from streamlab.local.pubsub import (
    ATTRIBUTE_KEY_MAX_BYTES,
    ATTRIBUTE_VALUE_MAX_BYTES,
    ATTRIBUTES_MAX,
    ORDERING_KEY_MAX_BYTES,
)
from streamlab.serde import encode_rows, text_values

from .._params import check_emulator_host, positive_seconds, sink_or_none
from ._client import client_kwargs, describe_service, import_pubsub, resource_path

REASON_COLUMN = "reject_reason"
MESSAGE_LIMIT = 9_900_000
"""Largest payload published: the Pub/Sub client refuses a request over 10,000,000 bytes, which would fail
the batch on every retry. A larger row is published cut to fit (``streamlab._dead_letter.fit_message``)."""

# Pub/Sub's per-message limits, defined with the emulator that enforces them as Google's service does: a
# publish breaking one is refused (INVALID_ARGUMENT), failing the flush of every batch on every retry.


def _first_too_long(attributes: Iterable[tuple[str, str]], limit: int) -> tuple[str, int] | None:
    """The first attribute (name, text) whose text is over ``limit`` bytes in UTF-8, as its name and that
    size, or None: the one rule for the name and value limits, at construction and for each row.

    Examples
    --------
    >>> _first_too_long([("a", "x"), ("b", "é" * 3), ("c", "yyyyyyy")], 5)
    ('b', 6)
    """
    for name, text in attributes:
        size = utf8_size(text)
        if size > limit:
            return name, size
    return None


def _check_attribute_limits(
    where: str, topic: str, constants: Mapping[str, str], columns: Sequence[str]
) -> None:
    """Refuse attributes that no message can carry: more than 100, a name over 256 bytes, a constant
    value over 1,024 bytes (Pub/Sub's per-message limits)."""
    names = [*constants, *columns]
    if len(set(names)) > ATTRIBUTES_MAX:
        raise ParameterError(
            where,
            "attributes",
            f"{len(set(names))} attributes for topic {topic!r}; Pub/Sub takes at most {ATTRIBUTES_MAX} per "
            "message, so every publish would be refused",
            f"name at most {ATTRIBUTES_MAX} attributes; the row's other columns travel in the message body",
        )
    long_name = _first_too_long(((name, name) for name in names), ATTRIBUTE_KEY_MAX_BYTES)
    if long_name is not None:
        name, size = long_name
        raise ParameterError(
            where,
            "attributes",
            f"attribute name {name[:40]!r}... is {size} bytes long for topic {topic!r}; Pub/Sub takes "
            f"attribute names of at most {ATTRIBUTE_KEY_MAX_BYTES} bytes",
            f"use a name of at most {ATTRIBUTE_KEY_MAX_BYTES} bytes (rename the column in a step before "
            "the sink)",
        )
    long_value = _first_too_long(constants.items(), ATTRIBUTE_VALUE_MAX_BYTES)
    if long_value is not None:
        name, size = long_value
        raise ParameterError(
            where,
            "attributes",
            f"constant attribute {name!r} is {size} bytes long for topic {topic!r}; Pub/Sub takes "
            f"attribute values of at most {ATTRIBUTE_VALUE_MAX_BYTES} bytes",
            f"shorten the value to at most {ATTRIBUTE_VALUE_MAX_BYTES} bytes, or send it in the message "
            "body (a column) instead",
        )


class PubSubSink(Sink):
    """Publish each row as a JSON message to a Pub/Sub topic.

    Parameters
    ----------
    topic
        Topic name, short (with ``project``) or ``projects/P/topics/T``.
    project
        Google Cloud project id.
    ordering_key
        Column whose values become ordering keys (turns on ordered publishing); ``None`` for none. A
        missing value is no ordering key.
    attributes
        Message attributes: a mapping of constant attributes, or a sequence of column names whose values
        (as text) become attributes of the same names. Pub/Sub takes at most 100 attributes per message,
        names of at most 256 bytes and values of at most 1,024 bytes. Values (and ordering keys) are
        sent as text, as every sink's keys (:func:`streamlab.serde.text_values`): a float that is a whole
        number as that integer (``7.0`` as ``"7"``, the text of the integer ``7``: pandas makes an integer
        column float64 once it meets a missing value), a boolean as ``true`` / ``false``, a time as
        ISO-8601 UTC text, a missing value empty; a lone surrogate (``"\\ud800"``) as the escape
        ``\\ud800``, as JSON writes it.
    emulator_host
        ``"HOST:PORT"`` of a Pub/Sub emulator; default: ``PUBSUB_EMULATOR_HOST`` or Google Cloud.
    timeout
        Seconds ``flush()`` waits, in all, for the messages written so far to be confirmed; past it,
        it raises an error naming the service.
    dead_letter
        Sink receiving, with a ``reject_reason`` column, the rows no message can carry: an attribute
        column's value or an ordering key over 1,024 bytes, which Pub/Sub refuses. ``None``: ``flush()``
        raises and names them (the other rows are published).

    Examples
    --------
    >>> sink = PubSubSink("alerts", project="demo", ordering_key="user_id", attributes=["event_type"])
    >>> sink.spec()["topic"]
    'projects/demo/topics/alerts'
    """

    def __init__(
        self,
        topic: str,
        *,
        project: str = "",
        ordering_key: str | None = None,
        attributes: Mapping[str, str] | Sequence[str] | None = None,
        emulator_host: str | None = None,
        timeout: float = 60.0,
        dead_letter: Sink | None = None,
    ) -> None:
        where = type(self).__name__
        self.topic = resource_path(topic, project, "topics", where, "topic")
        if ordering_key is not None and (not isinstance(ordering_key, str) or not ordering_key):
            raise ParameterError(
                where,
                "ordering_key",
                f"expected a column name or None for topic {topic!r}, got {ordering_key!r}",
                "name the column whose values order the messages, or leave ordering_key out (None)",
            )
        self.ordering_key = ordering_key
        self.static_attributes: dict[str, str] = {}
        self.attribute_columns: tuple[str, ...] = ()
        if isinstance(attributes, Mapping):
            bad = {k: v for k, v in attributes.items() if not isinstance(k, str) or not isinstance(v, str)}
            if bad:
                raise ParameterError(
                    where,
                    "attributes",
                    f"constant attributes must map text to text for topic {topic!r}; got {bad!r}",
                    "quote each attribute's name and value as text, e.g. attributes: {source: 'web'}",
                )
            self.static_attributes = dict(attributes)
        elif attributes is not None:
            if isinstance(attributes, str) or not all(isinstance(c, str) for c in attributes):
                raise ParameterError(
                    where,
                    "attributes",
                    f"expected a list of column names or a mapping of constants for topic {topic!r}, got "
                    f"{attributes!r}",
                    "write a list of columns, e.g. attributes: [event_type] (attributes=['event_type'] in "
                    "Python; wrap a single column in a list), or a mapping of constant texts",
                )
            self.attribute_columns = tuple(attributes)
        _check_attribute_limits(where, topic, self.static_attributes, self.attribute_columns)
        self.emulator_host = check_emulator_host(where, emulator_host)
        self.timeout = positive_seconds(where, "timeout", timeout, 60, about=f"topic {topic!r}")
        self.dead_letter = sink_or_none(where, "dead_letter", dead_letter, about=f"topic {topic!r}")

    def columns_problem(self, columns: list[str], upstream: Upstream) -> tuple[str, str] | None:
        """The ``ordering_key`` and attribute columns the stream lacks (the first write failed on them),
        as ``(problem, fix)``, else None.

        Examples
        --------
        >>> PubSubSink("t", project="p", ordering_key="user").columns_problem(["user_id"], Upstream())[1]
        "did you mean ['user_id']? name columns of the stream in ordering_key and attributes"
        """
        return missing_columns_problem(
            repr(self),
            [*self.attribute_columns, *([self.ordering_key] if self.ordering_key else [])],
            columns,
            "name columns of the stream in ordering_key and attributes",
        )

    def open(self, clock: Clock | None = None) -> _PubSubWriter:
        """Create the publisher client."""
        return _PubSubWriter(self, clock)

    def spec(self) -> dict[str, Any]:
        """YAML-ready description.

        Examples
        --------
        >>> PubSubSink("t", project="p").spec()["kind"]
        'pubsub'
        """
        attributes: Any = (
            dict(self.static_attributes) if self.static_attributes else list(self.attribute_columns)
        )
        return {
            "kind": "pubsub",
            "topic": self.topic,
            "ordering_key": self.ordering_key,
            "attributes": attributes,
            "emulator_host": self.emulator_host,
            "timeout": self.timeout,
            "dead_letter": None if self.dead_letter is None else self.dead_letter.spec(),
        }

    def __repr__(self) -> str:
        return f"PubSubSink({self.topic!r}, ordering_key={self.ordering_key!r})"


class _PubSubWriter(SinkWriter):
    """Open publisher of a :class:`PubSubSink`."""

    def __init__(self, sink: PubSubSink, clock: Clock | None = None) -> None:
        pubsub_v1 = import_pubsub()
        self._sink = sink
        options = pubsub_v1.types.PublisherOptions(enable_message_ordering=sink.ordering_key is not None)
        self._client = pubsub_v1.PublisherClient(
            publisher_options=options, **client_kwargs(sink.emulator_host, "publisher")
        )
        self._futures: list[tuple[Any, str]] = []
        self._dead_letter = sink.dead_letter.open(clock) if sink.dead_letter is not None else None
        self._refused: list[pd.DataFrame] = []
        self._closed = False
        self._failed = False

    def write_batch(self, batch: pd.DataFrame) -> None:
        """Publish every row (asynchronously; :meth:`flush` waits for confirmation)."""
        if batch.empty:
            return
        needed = self._missing_columns(batch)
        if needed:
            raise KeyError(
                f"{self._sink!r}: the batch has no column(s) {needed}; it has {list(batch.columns)}"
            )
        batch = self._refuse_unfit_rows(batch)
        if batch.empty:
            return
        payloads = encode_rows(batch)
        keys = self._ordering_keys(batch)
        columns = self._attribute_texts(batch)
        static = self._sink.static_attributes
        for i, payload in enumerate(payloads):
            if len(payload) > MESSAGE_LIMIT:
                payload = fit_payload(payload, MESSAGE_LIMIT, repr(self._sink), "Pub/Sub's message limit")
            attrs = {**static, **{c: values[i] for c, values in columns.items()}}
            future = self._client.publish(self._sink.topic, payload, ordering_key=keys[i], **attrs)
            self._futures.append((future, keys[i]))

    def _refuse_unfit_rows(self, batch: pd.DataFrame) -> pd.DataFrame:
        """The rows Pub/Sub can take; the others (an attribute value or an ordering key over 1,024 bytes,
        which the service refuses, failing the flush) go to the dead-letter sink with the reason, or wait
        for flush to raise."""
        columns = self._attribute_texts(batch)
        key = self._sink.ordering_key
        if not columns and not key:
            return batch
        keys = self._ordering_keys(batch)
        reasons = [""] * len(batch)
        for i in range(len(batch)):
            found = _first_too_long(
                ((c, texts[i]) for c, texts in columns.items()), ATTRIBUTE_VALUE_MAX_BYTES
            )
            if found is not None:
                reasons[i] = (
                    f"attribute {found[0]!r} is {found[1]} bytes long; Pub/Sub takes attribute values of at "
                    f"most {ATTRIBUTE_VALUE_MAX_BYTES} bytes"
                )
            elif (found := _first_too_long([(key or "", keys[i])], ORDERING_KEY_MAX_BYTES)) is not None:
                reasons[i] = (
                    f"ordering key (column {key!r}) is {found[1]} bytes long; Pub/Sub takes ordering keys of "
                    f"at most {ORDERING_KEY_MAX_BYTES} bytes"
                )
        bad = np.array([bool(r) for r in reasons], dtype=bool)
        if not bad.any():
            return batch
        refused = batch[bad].assign(**{REASON_COLUMN: np.asarray(reasons, dtype=object)[bad]})
        refused = refused.reset_index(drop=True)
        if self._dead_letter is not None:
            publish_now(self._dead_letter, refused)
        else:
            self._refused.append(refused)
        return batch[~bad]

    def _ordering_keys(self, batch: pd.DataFrame) -> list[str]:
        """Each row's ordering key as the message carries it: text, a missing value empty (no key)."""
        if not self._sink.ordering_key:
            return [""] * len(batch)
        return text_values(batch[self._sink.ordering_key])

    def _attribute_texts(self, batch: pd.DataFrame) -> dict[str, list[str]]:
        """Each attribute column's values as the messages carry them: text, a missing value empty."""
        return {c: text_values(batch[c]) for c in self._sink.attribute_columns}

    def _missing_columns(self, batch: pd.DataFrame) -> list[str]:
        wanted = list(self._sink.attribute_columns) + (
            [self._sink.ordering_key] if self._sink.ordering_key else []
        )
        return [c for c in wanted if c not in batch.columns]

    def flush(self) -> None:
        """Wait until every message written so far is confirmed; raise if any publish failed."""
        pending, self._futures = self._futures, []
        errors: list[BaseException] = []
        refused, self._refused = self._refused, []
        # One deadline for the whole flush: a per-message timeout would add up over a stalled service.
        deadline = time.monotonic() + self._sink.timeout
        for future, key in pending:
            try:
                future.result(timeout=max(deadline - time.monotonic(), 0.0))
            except Exception as exc:
                errors.append(exc)
                if key:
                    # An ordered publish failure pauses its key until told to resume.
                    self._client.resume_publish(self._sink.topic, key)
        if errors:
            import concurrent.futures

            self._failed = True
            if isinstance(errors[0], (TimeoutError, concurrent.futures.TimeoutError)):
                first = (
                    f"no confirmation from {describe_service(self._sink.emulator_host)} within "
                    f"{self._sink.timeout:g} s (timeout); is the service running and reachable?"
                )
            else:
                first = f"first error: {errors[0]!r}. Check that the topic exists and the credentials can publish."
            raise RuntimeError(
                f"{self._sink!r}: {len(errors)} of {len(pending)} messages were not published; {first}"
            ) from errors[0]
        if refused:
            rows = pd.concat(refused, ignore_index=True)
            raise RuntimeError(
                f"{self._sink!r}: {len(rows)} row(s) were not published: {rows[REASON_COLUMN].iloc[0]} (first "
                "of them); give the sink a dead_letter sink to keep such rows, or shorten the column's values "
                "in a step before the sink"
            )

    def close(self) -> None:
        """Flush, stop the publisher's batching thread and close its channel."""
        if self._closed:
            return
        self._closed = True
        try:
            self.flush()
        finally:
            if self._dead_letter is not None:
                self._dead_letter.close()
            self._client.stop()
            if not self._failed:
                # After a failed flush the client's publish threads still retry (for their own bounded
                # time); closing the channel under them would only turn that into thread tracebacks.
                self._client.transport.grpc_channel.close()
