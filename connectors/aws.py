"""A boto3 client factory shared by the AWS connectors (Kinesis, Timestream), for AWS or a local endpoint.

Examples
--------
>>> aws_client("kinesis", region="eu-west-1", endpoint_url="http://127.0.0.1:1").meta.region_name
'eu-west-1'
"""

from __future__ import annotations

from typing import Any

__all__ = ["DUMMY_CREDENTIALS", "aws_client"]

_EXTRA_KINESIS = "pip install 'streamlab[kinesis]'"
#: Credentials given to clients of a local endpoint (moto, kinesalite), which accept any.
DUMMY_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def aws_client(
    service: str,
    *,
    region: str = "us-east-1",
    endpoint_url: str | None = None,
    max_attempts: int = 3,
    timeout: float = 10.0,
    **kwargs: Any,
) -> Any:
    """Create a boto3 client; with ``endpoint_url`` (a local stand-in) it uses dummy credentials.

    Parameters
    ----------
    service
        boto3 service name, e.g. ``"kinesis"``.
    region
        AWS region.
    endpoint_url
        Endpoint of a local stand-in (moto, kinesalite); ``None`` for AWS itself with the usual
        credential chain.
    max_attempts
        botocore's retry budget for throttling and transient errors.
    timeout
        Seconds a connection attempt and each read may take (botocore's default read timeout is 60 s,
        retried ``max_attempts`` times): a stalled endpoint fails a call after about
        ``max_attempts * timeout`` seconds with botocore's error naming the endpoint.
    **kwargs
        Passed on to ``boto3.client``.

    Returns
    -------
    botocore.client.BaseClient
        The client.

    Examples
    --------
    >>> aws_client("kinesis", endpoint_url="http://127.0.0.1:1").meta.region_name
    'us-east-1'
    """
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise ImportError(f"AWS connectors need boto3: {_EXTRA_KINESIS}") from exc
    options: dict[str, Any] = {"region_name": region}
    if endpoint_url is not None:
        options.update(endpoint_url=endpoint_url, **DUMMY_CREDENTIALS)
    options["config"] = Config(
        retries={"max_attempts": max_attempts, "mode": "standard"},
        connect_timeout=min(timeout, 5.0),
        read_timeout=timeout,
    )
    options.update(kwargs)
    return boto3.client(service, **options)
