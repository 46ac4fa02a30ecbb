"""Bundled datasets: where they are, how to read them, and their cards."""

from __future__ import annotations

import atexit
import contextlib
import gzip
import pathlib
from dataclasses import dataclass
from importlib import resources

import pandas as pd

from ._jsonl import parse_lines
from ._logs import LOG_SCHEMA

__all__ = ["DatasetInfo", "dataset_info", "dataset_path", "describe", "list_datasets", "load", "load_raw"]

_PACKAGE = "streamlab.datasets"


@dataclass(frozen=True)
class DatasetInfo:
    """What a bundled dataset holds.

    Parameters
    ----------
    name
        Name to pass to :func:`load`.
    filename
        File name under the package's ``data/`` folder.
    summary
        One line on what the data is.
    schema
        ``(field, type)`` pairs a well-formed line must have; types are ``str``, ``ts`` (ISO-8601 text),
        ``dict``, ``num``, ``int``, ``bool`` and ``int|null``.

    Examples
    --------
    >>> info = dataset_info("iot")
    >>> info.filename
    'iot.jsonl.gz'
    >>> [field for field, kind in info.schema if kind == "ts"]
    ['timestamp']
    """

    name: str
    filename: str
    summary: str
    schema: tuple[tuple[str, str], ...]


_DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in (
        DatasetInfo(
            "app_logs",
            "app_logs.jsonl.gz",
            "Raw JSON application log lines from six services, 3% malformed in seven ways.",
            LOG_SCHEMA,
        ),
        DatasetInfo(
            "clickstream",
            "clickstream.jsonl.gz",
            "Web shop clickstream with out-of-order, late and duplicate events, bursts and a few "
            "malformed lines.",
            (
                ("event_id", "str"),
                ("event_type", "str"),
                ("user_id", "str"),
                ("timestamp", "ts"),
                ("properties", "dict"),
                ("is_duplicate", "bool"),
                ("is_late", "bool"),
                ("is_burst", "bool"),
            ),
        ),
        DatasetInfo(
            "iot",
            "iot.jsonl.gz",
            "Sensor readings from 25 devices with point anomalies and a temperature drift.",
            (
                ("event_id", "str"),
                ("device_id", "str"),
                ("sensor", "str"),
                ("temperature", "num"),
                ("humidity", "num"),
                ("vibration", "num"),
                ("timestamp", "ts"),
                ("is_anomaly", "bool"),
                ("anomaly_metric", "str"),
                ("is_drift", "bool"),
            ),
        ),
        DatasetInfo(
            "transactions",
            "transactions.jsonl.gz",
            "Card transactions with labelled velocity, amount-spike and geo-jump fraud.",
            (
                ("event_id", "str"),
                ("card_id", "str"),
                ("user_id", "str"),
                ("merchant", "str"),
                ("merchant_category", "str"),
                ("country", "str"),
                ("amount", "num"),
                ("timestamp", "ts"),
                ("is_fraud", "bool"),
                ("fraud_pattern", "str"),
                ("fraud_burst_id", "int|null"),
            ),
        ),
    )
}

# Keeps resources extracted from a zipped install alive until the interpreter exits.
_EXTRACTED = contextlib.ExitStack()
atexit.register(_EXTRACTED.close)


def list_datasets() -> list[str]:
    """Names of the bundled datasets.

    Returns
    -------
    list of str
        Sorted names, each accepted by :func:`load`.

    Examples
    --------
    >>> list_datasets()
    ['app_logs', 'clickstream', 'iot', 'transactions']
    """
    return sorted(_DATASETS)


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of a bundled dataset.

    Parameters
    ----------
    name
        One of :func:`list_datasets`.

    Returns
    -------
    DatasetInfo

    Examples
    --------
    >>> dataset_info("transactions").schema[-1]
    ('fraud_burst_id', 'int|null')
    """
    try:
        return _DATASETS[name]
    except (KeyError, TypeError):
        from streamlab.errors import closest

        guess = closest(name, list_datasets())
        hint = f"did you mean {guess!r}? " if guess else ""
        raise ValueError(
            f"unknown dataset {name!r}; {hint}the bundled datasets are {', '.join(list_datasets())}"
        ) from None


def dataset_path(name: str) -> pathlib.Path:
    """Path of a bundled dataset's file (gzip-compressed JSON lines).

    Parameters
    ----------
    name
        One of :func:`list_datasets`.

    Returns
    -------
    pathlib.Path
        A real file, also when streamlab is installed as a zip.

    Examples
    --------
    >>> dataset_path("clickstream").name
    'clickstream.jsonl.gz'
    >>> dataset_path("clickstream").is_file()
    True
    """
    info = dataset_info(name)
    resource = resources.files(_PACKAGE).joinpath("data").joinpath(info.filename)
    if isinstance(resource, pathlib.Path):
        return resource
    return pathlib.Path(_EXTRACTED.enter_context(resources.as_file(resource)))


def load_raw(name: str) -> list[bytes]:
    """The raw lines of a bundled dataset, in the order a stream delivers them, malformed ones included.

    Parameters
    ----------
    name
        One of :func:`list_datasets`.

    Returns
    -------
    list of bytes
        One record per element, without newline.

    Examples
    --------
    >>> lines = load_raw("app_logs")
    >>> len(lines)
    20000
    >>> lines[0][:14]
    b'{"timestamp":"'
    """
    data = gzip.decompress(dataset_path(name).read_bytes())
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def load(name: str) -> pd.DataFrame:
    """A bundled dataset parsed into typed columns; malformed lines are left out and counted.

    Lines that are not UTF-8, not JSON objects, lack a field, have a field of the wrong type, carry a
    timestamp that is not a date, or exceed 1 MiB are excluded. Their number is in
    ``df.attrs["malformed"]`` and the reasons in ``df.attrs["malformed_reasons"]``.

    Parameters
    ----------
    name
        One of :func:`list_datasets`.

    Returns
    -------
    pandas.DataFrame
        Rows in stream order; ``timestamp`` as UTC datetimes.

    Examples
    --------
    >>> df = load("clickstream")
    >>> df.attrs["malformed"]
    100
    >>> str(df["timestamp"].dtype)
    'datetime64[ns, UTC]'
    """
    info = dataset_info(name)
    df, rejected = parse_lines(load_raw(name), info.schema)
    df.attrs["dataset"] = name
    df.attrs["malformed"] = int(sum(rejected.values()))
    df.attrs["malformed_reasons"] = dict(sorted(rejected.items()))
    return df


def describe(name: str) -> str:
    """The dataset card: schema, size, time span, what is injected and how much, and how to regenerate.

    Parameters
    ----------
    name
        One of :func:`list_datasets`.

    Returns
    -------
    str
        Markdown text.

    Examples
    --------
    >>> describe("iot").splitlines()[0]
    '# iot'
    """
    info = dataset_info(name)
    return resources.files(_PACKAGE).joinpath("cards").joinpath(f"{info.name}.md").read_text(encoding="utf-8")
