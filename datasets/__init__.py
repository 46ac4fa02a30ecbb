"""Bundled datasets and synthetic generators.

Generators return pandas frames in arrival order with ground-truth label columns and are deterministic
by ``seed``; bundled datasets load with :func:`load` (parsed) or :func:`load_raw` (raw lines); and
:class:`SyntheticSource` streams the generators live, paced by an injected clock.
"""

from ._generators import generate_clickstream, generate_iot, generate_transactions
from ._jsonl import to_json_lines
from ._loader import DatasetInfo, dataset_info, dataset_path, describe, list_datasets, load, load_raw
from ._logs import generate_app_logs
from ._nexmark import NexmarkConfig, NexmarkSource, generate_nexmark
from ._source import SyntheticSource, SyntheticSourceReader, register_spec_kinds

__all__ = [
    "DatasetInfo",
    "NexmarkConfig",
    "NexmarkSource",
    "SyntheticSource",
    "SyntheticSourceReader",
    "dataset_info",
    "dataset_path",
    "describe",
    "generate_app_logs",
    "generate_clickstream",
    "generate_iot",
    "generate_nexmark",
    "generate_transactions",
    "list_datasets",
    "load",
    "load_raw",
    "register_spec_kinds",
    "to_json_lines",
]
