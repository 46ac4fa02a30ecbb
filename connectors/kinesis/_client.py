"""The Kinesis client's limits: retry budgets and timeouts (``streamlab.connectors.aws.bounded`` bounds each call)."""

from __future__ import annotations

from typing import Any

from streamlab.errors import ParameterError

READ_ATTEMPTS = 2  # few client retries: a throttled shard is skipped for a while instead
WRITE_ATTEMPTS = 3  # aws_client's default


def check_timeout(owner: str, timeout: Any) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ParameterError(
            owner,
            "timeout",
            f"expected a positive number of seconds, got {timeout!r}",
            "write a number of seconds such as timeout: 10 (timeout=10 in Python)",
        )
    return float(timeout)
