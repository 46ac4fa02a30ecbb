"""The Kinesis client's limits: retry budgets and timeouts (``streamlab.connectors.aws.bounded`` bounds each call)."""

from __future__ import annotations

from typing import Any

READ_ATTEMPTS = 2  # few client retries: a throttled shard is skipped for a while instead
WRITE_ATTEMPTS = 3  # aws_client's default


def check_timeout(where: str, timeout: Any) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"{where}: timeout must be a positive number of seconds, got {timeout!r}")
    return float(timeout)
