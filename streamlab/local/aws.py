"""Local AWS endpoints (Kinesis, Timestream-write, SQS, S3, ...) served in-process by moto.

:class:`LocalAWS` runs moto's ``ThreadedMotoServer`` on a free loopback port and hands out boto3 clients
with dummy credentials pointed at it. moto keeps its data in process-wide backends, so two ``LocalAWS``
objects in one process see the same streams and tables; give each test its own resource names (or call
:meth:`LocalAWS.reset`).
"""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from streamlab.connectors.aws import aws_client

__all__ = ["LocalAWS"]


class LocalAWS:
    """moto's AWS stand-in on ``127.0.0.1`` in a thread owned by this object.

    Parameters
    ----------
    region
        Region of the clients it creates.
    host
        Interface to bind; keep the loopback default.

    Examples
    --------
    >>> with LocalAWS() as aws:
    ...     kinesis = aws.client("kinesis")
    ...     _ = kinesis.create_stream(StreamName="doc-demo", ShardCount=1)
    ...     kinesis.describe_stream_summary(StreamName="doc-demo")["StreamDescriptionSummary"]["OpenShardCount"]
    1
    >>> aws.running
    False
    """

    def __init__(self, region: str = "us-east-1", *, host: str = "127.0.0.1") -> None:
        if not region:
            raise ValueError("LocalAWS(region=''): pass a region such as 'us-east-1'")
        self.region = region
        self._host = host
        self._server: Any = None

    def start(self) -> LocalAWS:
        """Start serving on a free port; returns ``self``."""
        if self._server is not None:
            raise RuntimeError("LocalAWS.start: already started")
        try:
            from moto.server import ThreadedMotoServer
        except ImportError as exc:
            raise ImportError(f"LocalAWS needs moto's server: pip install 'moto[server]' ({exc})") from exc
        server = ThreadedMotoServer(ip_address=self._host, port=0, verbose=False)
        # werkzeug logs every request to stderr, which floods notebooks
        import logging

        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        server.start()
        self._server = server
        return self

    @property
    def running(self) -> bool:
        """True between ``start()`` and ``stop()``."""
        return self._server is not None

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:PORT`` for ``endpoint_url=`` of boto3 clients and streamlab's AWS connectors."""
        if self._server is None:
            raise RuntimeError("LocalAWS.endpoint_url: start() it first")
        host, port = self._server.get_host_and_port()
        return f"http://{host}:{port}"

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for ``service`` on this endpoint, with dummy credentials and this region.

        Parameters
        ----------
        service
            boto3 service name (``"kinesis"``, ``"timestream-write"``, ``"sqs"``, ...).
        **kwargs
            Passed on to ``boto3.client``.

        Returns
        -------
        botocore.client.BaseClient
            The client.

        Examples
        --------
        >>> with LocalAWS() as aws:
        ...     sqs = aws.client("sqs")
        ...     url = sqs.create_queue(QueueName="doc-example")["QueueUrl"]
        ...     url in sqs.list_queues()["QueueUrls"]
        True
        """
        return aws_client(service, region=self.region, endpoint_url=self.endpoint_url, **kwargs)

    def reset(self) -> None:
        """Forget every resource moto holds (all ``LocalAWS`` objects in this process share them)."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            json.loads(response.read() or b"{}")

    def stop(self) -> None:
        """Stop the server thread and close its socket."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.stop()
        wsgi = getattr(server, "_server", None)
        if wsgi is not None:
            wsgi.server_close()

    def __enter__(self) -> LocalAWS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalAWS({self.endpoint_url if self.running else 'stopped'}, region={self.region!r})"
