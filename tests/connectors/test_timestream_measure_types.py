"""A Timestream measure's type does not depend on the batch its values arrive in.

An undeclared integer measure was ``BIGINT`` in a batch ``[7]`` and ``DOUBLE`` in ``[7, None]`` (pandas
makes the column float64 once it meets a missing value), and Timestream refuses a measure whose type
changes. Now a float column with a missing value and otherwise whole numbers is ``BIGINT``, and a
writer keeps the type it gave a measure for the run's later batches; a genuine ``7.5`` stays ``DOUBLE``.
Written to moto's Timestream-write (in process, so its stored records are readable).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest
from streamlab.connectors.timestream import TimestreamSink, build_records

from streamlab.local import LocalAWS
from streamlab.testing import ListSink

pytestmark = pytest.mark.services

T0 = pd.Timestamp("2026-01-01", tz="UTC")


@pytest.fixture(scope="module")
def aws() -> Iterator[LocalAWS]:
    with LocalAWS() as local:
        yield local


def stored(database: str, table: str) -> list[dict[str, Any]]:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.timestreamwrite.models import timestreamwrite_backends

    backend = timestreamwrite_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    return list(backend.describe_database(database).describe_table(table).records)


def write(aws: LocalAWS, batches: list[dict[str, list[Any]]]) -> tuple[dict[str, set[str]], list[Any]]:
    """Each measure's types as stored, and the reasons of the rows sent to the dead letter, for rows
    written in ``batches`` (each a frame pandas builds from its own values, as a user function's)."""
    client = aws.client("timestream-write")
    database = f"db_{uuid.uuid4().hex[:8]}"
    client.create_database(DatabaseName=database)
    client.create_table(DatabaseName=database, TableName="m")
    client.close()
    dead = ListSink()
    sink = TimestreamSink(
        database,
        "m",
        dimensions=["host"],
        measures=["n", "x"],
        time="timestamp",
        endpoint_url=aws.endpoint_url,
        dead_letter=dead,
    )
    writer = sink.open()
    at = 0
    for columns in batches:
        frame = pd.DataFrame(columns)
        frame.insert(0, "timestamp", [T0 + pd.Timedelta(seconds=at + i) for i in range(len(frame))])
        frame.insert(0, "host", "a")
        at += len(frame)
        writer.write_batch(frame)
        writer.flush()  # a batch's rows are sent as one request, typed as that batch has them
    writer.close()
    types: dict[str, set[str]] = {}
    for record in stored(database, "m"):
        for m in record["MeasureValues"]:
            types.setdefault(m["Name"], set()).add(m["Type"])
    reasons = [r for b in dead.batches for r in b["reject_reason"]]
    return types, reasons


N = [7, None, 8, 9]
X = [7.5, 3.0, None, 2.25]


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_an_integer_measure_with_missing_values_is_bigint_in_every_batch(aws: LocalAWS, size: int) -> None:
    batches = [{"n": N[i : i + size], "x": X[i : i + size]} for i in range(0, len(N), size)]
    types, reasons = write(aws, batches)
    assert types == {"n": {"BIGINT"}, "x": {"DOUBLE"}} and reasons == []


def test_a_bigint_measure_keeps_its_type_in_later_batches_and_a_fraction_is_not_cut(aws: LocalAWS) -> None:
    """[7] makes n BIGINT; [8.0] (float64, no missing value) stays BIGINT; 8.5 cannot be: the row goes
    to the dead letter with the reason, rather than being written as 8 or as a DOUBLE Timestream
    refuses. [9, None] is still BIGINT, and x, DOUBLE from its first batch, stays DOUBLE for [None, 2.0]."""
    types, reasons = write(
        aws, [{"n": [7], "x": [0.5]}, {"n": [8.0, 8.5], "x": [1.0, 1.5]}, {"n": [9, None], "x": [None, 2.0]}]
    )
    assert types == {"n": {"BIGINT"}, "x": {"DOUBLE"}}
    assert (
        len(reasons) == 1 and "['n'] are BIGINT" in reasons[0] and "8.5 is not a whole number" in reasons[0]
    )


def test_build_records_types_a_measure_alike_with_and_without_missing_values() -> None:
    sink = TimestreamSink("d", "t", dimensions=["host"], measures=["n", "x"], time="timestamp")
    kinds = []
    for n, x in (([7], [7.5]), ([7, None], [7.5, None]), ([None, 7], [None, 7.5])):
        frame = pd.DataFrame({"host": "a", "n": n, "x": x, "timestamp": T0})
        records, _, _ = build_records(sink, frame)
        kinds.append({(m["Name"], m["Type"], m["Value"]) for r in records for m in r["MeasureValues"]})
    assert kinds == [{("n", "BIGINT", "7"), ("x", "DOUBLE", "7.5")}] * 3
