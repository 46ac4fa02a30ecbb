"""Errors the Kafka connector raises (source, commit, delivery)."""

from __future__ import annotations


class KafkaSourceError(RuntimeError):
    """A Kafka error (other than end-of-partition) reported while consuming.

    Examples
    --------
    >>> issubclass(KafkaSourceError, RuntimeError)
    True
    """


class KafkaUnreachableError(KafkaSourceError):
    """No broker answered for longer than the source allows (``connect_timeout`` / ``broker_timeout``).

    The message names the bootstrap servers, what the reader was doing and for how long it waited.
    Nothing is lost: a restart reads again everything after the last commit.

    Examples
    --------
    >>> issubclass(KafkaUnreachableError, KafkaSourceError)
    True
    """


class KafkaCommitError(RuntimeError):
    """Committing offsets failed for a reason other than losing the partitions in a rebalance.

    Examples
    --------
    >>> issubclass(KafkaCommitError, RuntimeError)
    True
    """


class KafkaDeliveryError(RuntimeError):
    """Some produced records were not delivered; the runtime must not commit the source.

    Examples
    --------
    >>> issubclass(KafkaDeliveryError, RuntimeError)
    True
    """
