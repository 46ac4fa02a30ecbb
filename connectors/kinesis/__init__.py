"""Amazon Kinesis Data Streams source and sink (boto3).

:class:`KinesisSource` reads every shard with shard iterators, follows resharding (a child shard is read
only after its parents are fully consumed, so per-key order survives splits and merges) and checkpoints one
sequence number per shard. The checkpoint lives in the runtime's snapshot and, when ``checkpoint_path`` is
given, in a local JSON file written on each commit (a DynamoDB lease table, as the KCL uses, is not needed
for one reader). :class:`KinesisSink` writes rows as JSON with ``PutRecords`` and retries only the records
that failed.

Modules: ``source`` (the source and its shard reader), ``sink``, ``checkpoint`` (the checkpoint file) and
the private ``_client`` (retry budgets, timeouts). The client itself comes from
:func:`streamlab.connectors.aws.aws_client`; a local endpoint from :class:`streamlab.local.LocalAWS`.

Examples
--------
>>> from streamlab.connectors.kinesis import KinesisSource
>>> KinesisSource("clicks", endpoint_url="http://127.0.0.1:1").stream
'clicks'
"""

from __future__ import annotations

from .checkpoint import SHARD_END, load_checkpoint
from .sink import KinesisSink
from .source import KinesisSource

__all__ = ["SHARD_END", "KinesisSink", "KinesisSource", "load_checkpoint"]
