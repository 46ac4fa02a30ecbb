"""Topic administration: create/delete/list topics, committed and end offsets."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from streamlab._polling import wait_for
from streamlab._secrets import resolve_config
from streamlab.errors import ParameterError

from .._params import whole_number
from ._client import (
    CONNECTIVITY_ERRORS,
    check_settings,
    import_admin_types,
    import_confluent,
    new_client,
    plaintext_listener_hint,
)
from ._config import check_bootstrap, check_config

# ---------------------------------------------------------------------------------------------------
# Admin


class KafkaAdmin:
    """Small admin helper: create/delete/list topics, committed and end offsets.

    Parameters
    ----------
    bootstrap_servers
        ``host:port[,host:port]``.
    config
        Extra librdkafka settings (security, timeouts).

    Examples
    --------
    >>> admin = KafkaAdmin("127.0.0.1:9092")
    >>> admin
    KafkaAdmin('127.0.0.1:9092')
    >>> admin.create_topic("events", partitions=3)  # doctest: +SKIP
    """

    def __init__(
        self, bootstrap_servers: str | Sequence[str], config: Mapping[str, Any] | None = None
    ) -> None:
        self.bootstrap_servers = check_bootstrap("KafkaAdmin", bootstrap_servers)
        self.config = check_config("KafkaAdmin", config or {}, {}, "admin")
        # an admin client is a producer's handle
        check_settings("KafkaAdmin", "producer", {"bootstrap.servers": self.bootstrap_servers, **self.config})
        self._client: Any = None

    def close(self) -> None:
        """Release the admin client now (otherwise librdkafka logs about purged requests when it is collected)."""
        if self._client is not None:
            self._client.poll(0)
            self._client = None

    def __enter__(self) -> KafkaAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _admin(self) -> Any:
        # One long-lived client: a temporary one is destroyed before its futures resolve.
        if self._client is None:
            import_confluent()
            from confluent_kafka.admin import AdminClient

            self._client = new_client(
                AdminClient,
                {"bootstrap.servers": self.bootstrap_servers, **resolve_config(self.config, "KafkaAdmin")},
                "KafkaAdmin",
            )
        return self._client

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        *,
        replication_factor: int = 1,
        config: Mapping[str, str] | None = None,
        exist_ok: bool = True,
        timeout: float = 20.0,
    ) -> None:
        """Create ``name`` and wait until metadata shows all its partitions.

        Parameters
        ----------
        name
            Topic name.
        partitions
            Number of partitions (tansu cannot add partitions later).
        replication_factor
            Replicas; 1 for a local broker.
        config
            Topic configs such as ``{"retention.ms": "3600000"}``.
        exist_ok
            Do not fail when the topic already exists.
        timeout
            Seconds to wait for creation and metadata.

        Examples
        --------
        >>> KafkaAdmin("127.0.0.1:9092").create_topic("t", partitions=0)
        Traceback (most recent call last):
        ...
        streamlab.errors.ParameterError: KafkaAdmin.create_topic(partitions=...): expected a positive number of partitions for topic 't', got 0. Fix: pass partitions=1 or more
        """
        if not whole_number(partitions, 1):
            raise ParameterError(
                "KafkaAdmin.create_topic",
                "partitions",
                f"expected a positive number of partitions for topic {name!r}, got {partitions!r}",
                "pass partitions=1 or more",
            )
        if not name or not isinstance(name, str):
            raise ParameterError(
                "KafkaAdmin.create_topic",
                "name",
                f"expected a topic name (a non-empty text), got {name!r}",
                "pass the topic's name, e.g. create_topic('events')",
            )
        ck = import_confluent()
        admin_types = import_admin_types()

        futures = self._admin().create_topics(
            [
                admin_types.NewTopic(
                    name,
                    num_partitions=partitions,
                    replication_factor=replication_factor,
                    config=dict(config or {}),
                )
            ],
            operation_timeout=timeout,
            request_timeout=timeout,
        )
        for fut in futures.values():
            try:
                self._result(fut, timeout, f"creating topic {name!r}")
            except ck.KafkaException as exc:
                err = exc.args[0]
                if not (exist_ok and err.code() == ck.KafkaError.TOPIC_ALREADY_EXISTS):
                    raise
        wait_for(
            lambda: self.partition_count(name) == partitions,
            timeout=timeout,
            interval=0.05,
            what=f"topic {name!r} to show {partitions} partitions",
        )

    def partition_count(self, name: str) -> int:
        """Number of partitions of ``name`` in the cluster metadata (0 when it does not exist)."""
        md = self._admin().list_topics(name, timeout=10)
        topic = md.topics.get(name)
        if topic is None or topic.error is not None:
            return 0
        return len(topic.partitions)

    def list_topics(self) -> dict[str, int]:
        """All topics with their partition counts."""
        md = self._admin().list_topics(timeout=10)
        return {n: len(t.partitions) for n, t in md.topics.items() if t.error is None}

    def delete_topic(self, name: str, *, timeout: float = 20.0) -> None:
        """Delete ``name``."""
        for fut in self._admin().delete_topics([name], operation_timeout=timeout).values():
            self._result(fut, timeout, f"deleting topic {name!r}")

    def committed_offsets(self, group_id: str, topic: str) -> dict[int, int]:
        """Committed offset per partition of ``topic`` for ``group_id`` (partitions without one left out)."""
        ck = import_confluent()
        n = self.partition_count(topic)
        req = [ck.ConsumerGroupTopicPartitions(group_id, [ck.TopicPartition(topic, p) for p in range(n)])]
        res = self._admin().list_consumer_group_offsets(req, request_timeout=10)[group_id]
        res = self._result(res, 10, f"the committed offsets of group {group_id!r}")
        return {tp.partition: tp.offset for tp in res.topic_partitions if tp.offset >= 0}

    def end_offsets(self, topic: str) -> dict[int, int]:
        """High watermark per partition via ListOffsets(latest).

        On tansu this is *wrong* when the last produce batch held more than one record (it returns the
        last batch's base offset + 1); use :meth:`KafkaSourceReader.lag` for lag instead.
        """
        ck = import_confluent()
        latest = import_admin_types().OffsetSpec.latest()

        n = self.partition_count(topic)
        req = {ck.TopicPartition(topic, p): latest for p in range(n)}
        res = self._admin().list_offsets(req, request_timeout=10)
        what = f"the end offsets of {topic!r}"
        return {tp.partition: self._result(fut, 10, what).offset for tp, fut in res.items()}

    def _result(self, future: Any, timeout: float, what: str) -> Any:
        """The answer of an admin request, or a TimeoutError naming the cluster after ``timeout`` s."""
        import concurrent.futures

        ck = import_confluent()
        try:
            return future.result(timeout=timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(self._no_answer(what, timeout, "")) from None
        except ck.KafkaException as exc:
            # The client's own request timeout may fire first (a loaded machine): the same silence,
            # which a bare "Failed while waiting for controller: Local: Timed out" does not say.
            err: Any = exc.args[0] if exc.args else None
            if err is not None and err.name() in CONNECTIVITY_ERRORS:
                raise TimeoutError(self._no_answer(what, timeout, f" ({err.str()})")) from exc
            raise

    def _no_answer(self, what: str, timeout: float, detail: str) -> str:
        return (
            f"{self!r}: asking the Kafka cluster at {self.bootstrap_servers} for {what} got no answer "
            f"within {timeout:g} s{detail}; is the broker running and reachable?"
            + plaintext_listener_hint(self.bootstrap_servers, self.config)
        )

    def __repr__(self) -> str:
        return f"KafkaAdmin({self.bootstrap_servers!r})"


def create_topic(
    bootstrap_servers: str,
    name: str,
    partitions: int = 1,
    *,
    config: Mapping[str, Any] | None = None,
    topic_config: Mapping[str, str] | None = None,
    exist_ok: bool = True,
) -> None:
    """Create a topic and wait until it is visible (see :meth:`KafkaAdmin.create_topic`).

    Parameters
    ----------
    bootstrap_servers
        ``host:port``.
    name
        Topic name.
    partitions
        Partition count.
    config
        Client settings (security).
    topic_config
        Topic settings.
    exist_ok
        Accept an existing topic.

    Examples
    --------
    >>> create_topic("127.0.0.1:9092", "events", partitions=3)  # doctest: +SKIP
    >>> create_topic("nonsense", "events")
    Traceback (most recent call last):
    ...
    streamlab.errors.ParameterError: create_topic(bootstrap_servers=...): bootstrap server 'nonsense' is not 'host:port'. Fix: write e.g. '127.0.0.1:9092' (several separated by commas)
    """
    check_bootstrap("create_topic", bootstrap_servers)
    KafkaAdmin(bootstrap_servers, config).create_topic(
        name, partitions, config=topic_config, exist_ok=exist_ok
    )
