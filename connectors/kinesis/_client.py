"""The Kinesis client's limits: retry budgets, timeouts, and one error for a service that does not answer."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from ..aws import configuration_error

READ_ATTEMPTS = 2  # few client retries: a throttled shard is skipped for a while instead
WRITE_ATTEMPTS = 3  # aws_client's default


def check_timeout(where: str, timeout: Any) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"{where}: timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)


@contextlib.contextmanager
def bounded(
    owner: str,
    endpoint: str | None,
    operation: str,
    timeout: float,
    attempts: int,
    *,
    stream: str,
    region: str,
) -> Iterator[None]:
    """Turn botocore's connection and read timeouts into one error saying what was tried, for how long,
    and its configuration errors (credentials, a missing stream) into one saying what to fix."""
    from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    started = time.monotonic()
    try:
        yield
    except (BotoConnectionError, HTTPClientError) as exc:
        where = endpoint or "AWS Kinesis"
        raise RuntimeError(
            f"{owner}: Kinesis at {where} did not answer {operation} ({attempts} attempts, timeout={timeout:g} s "
            f"each, {time.monotonic() - started:.1f} s in all): {exc}. Check endpoint_url/region and that the "
            "service runs"
        ) from exc
    except (ClientError, BotoCoreError) as exc:
        explained = configuration_error(
            exc, owner=owner, target=f"stream {stream!r}", region=region, endpoint_url=endpoint
        )
        if explained is None:
            raise  # throttling, an expired iterator: the callers handle those
        raise explained from exc
