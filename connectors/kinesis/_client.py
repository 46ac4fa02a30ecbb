"""The Kinesis client's limits: retry budgets and timeouts (``streamlab.connectors.aws.bounded`` bounds each call)."""

from __future__ import annotations

READ_ATTEMPTS = 2  # few client retries: a throttled shard is skipped for a while instead
WRITE_ATTEMPTS = 3  # aws_client's default
