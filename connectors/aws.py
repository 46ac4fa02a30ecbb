"""A boto3 client factory shared by the AWS connectors (Kinesis, Timestream), for AWS or a local endpoint.

Examples
--------
>>> aws_client("kinesis", region="eu-west-1", endpoint_url="http://127.0.0.1:1").meta.region_name
'eu-west-1'
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["DUMMY_CREDENTIALS", "aws_client", "bounded", "configuration_error"]

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


# Error codes meaning "these credentials are not accepted", not "the service is down".
_CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidSignatureException",
        "ExpiredTokenException",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "MissingAuthenticationToken",
    }
)


def configuration_error(
    exc: BaseException, *, owner: str, target: str, region: str, endpoint_url: str | None
) -> RuntimeError | None:
    """A botocore error that comes from configuration (no credentials, refused credentials, a missing
    stream, database or table), as an error naming the connector, what was wrong and the fix; else None.

    Parameters
    ----------
    exc
        What botocore raised.
    owner
        The connector, as its repr names it.
    target
        What it reads or writes, e.g. ``"stream 'events'"``.
    region, endpoint_url
        Where it was looked for.

    Returns
    -------
    RuntimeError or None
        The error to raise (``from exc``), or None for an error configuration does not explain.

    Examples
    --------
    >>> from botocore.exceptions import NoCredentialsError
    >>> err = configuration_error(
    ...     NoCredentialsError(), owner="KinesisSink('s')", target="stream 's'", region="eu-west-1", endpoint_url=None
    ... )
    >>> str(err).split(":")[0]
    "KinesisSink('s')"
    >>> "AWS_ACCESS_KEY_ID" in str(err)
    True
    """
    from botocore.exceptions import ClientError, NoCredentialsError, PartialCredentialsError

    where = endpoint_url or f"AWS region {region}"
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return RuntimeError(
            f"{owner}: no usable AWS credentials for {where} ({exc}). Set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, or run with a role), or pass endpoint_url= to use a "
            "local stand-in"
        )
    if not isinstance(exc, ClientError):
        return None
    error = exc.response.get("Error", {})
    code, message = str(error.get("Code", "")), str(error.get("Message", ""))
    if code == "ResourceNotFoundException":
        return RuntimeError(
            f"{owner}: {target} does not exist at {where} ({message}). Create it first, or check the "
            "name, region and endpoint_url"
        )
    if code in _CREDENTIAL_CODES:
        return RuntimeError(
            f"{owner}: {where} refused the AWS credentials ({code}: {message}). Check AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN (or AWS_PROFILE), and that region is the "
            "resource's"
        )
    if code in ("AccessDeniedException", "AccessDenied"):
        return RuntimeError(
            f"{owner}: the AWS credentials may not use {target} at {where} ({message}). Grant them that "
            "permission (IAM), or use credentials that have it"
        )
    return None


@contextlib.contextmanager
def bounded(
    owner: str,
    service: str,
    operation: str,
    *,
    timeout: float,
    attempts: int,
    target: str,
    region: str,
    endpoint_url: str | None,
) -> Iterator[None]:
    """Turn botocore's connection and read timeouts into one error saying what was tried, for how long,
    and its configuration errors (:func:`configuration_error`) into one saying what to fix; other
    service errors (throttling, an expired iterator) pass unchanged to the caller.

    Examples
    --------
    >>> from botocore.exceptions import EndpointConnectionError
    >>> try:
    ...     with bounded("Sink('s')", "Kinesis", "put_records", timeout=1, attempts=3, target="stream 's'",
    ...                  region="us-east-1", endpoint_url="http://127.0.0.1:1"):
    ...         raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    ... except RuntimeError as e:
    ...     print(str(e).split(" (")[0])
    Sink('s'): Kinesis at http://127.0.0.1:1 did not answer put_records
    """
    from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    started = time.monotonic()
    try:
        yield
    except (BotoConnectionError, HTTPClientError) as exc:
        where = endpoint_url or f"AWS {service} in {region}"
        raise RuntimeError(
            f"{owner}: {service} at {where} did not answer {operation} ({attempts} attempts, timeout={timeout:g} s "
            f"each, {time.monotonic() - started:.1f} s in all): {exc}. Check endpoint_url/region and that the "
            "service runs"
        ) from exc
    except (ClientError, BotoCoreError) as exc:
        explained = configuration_error(
            exc, owner=owner, target=target, region=region, endpoint_url=endpoint_url
        )
        if explained is None:
            raise
        raise explained from exc
