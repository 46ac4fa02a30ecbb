"""The environment of an exported Lambda handler run against the local AWS stand-in (moto)."""

from __future__ import annotations

from typing import Any

import pytest


def handler_env(aws: Any, monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    """Point the handler's clients at ``aws`` (``LocalAWS``) with test credentials, and set ``variables``
    (``TIMESTREAM_DATABASE``, ``WINDOW_TABLE``, ...)."""
    for key, value in {
        "AWS_ENDPOINT_URL": aws.endpoint_url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": aws.region,
        **variables,
    }.items():
        monkeypatch.setenv(key, value)


def dedup_handler_env(aws: Any, monkeypatch: pytest.MonkeyPatch, ids_table: str, database: str) -> Any:
    """Create an idempotency table ``ids_table`` (keyed by ``event_id``) and a Timestream database with a
    ``window`` table, point the handler at them (:func:`handler_env`); return the DynamoDB client."""
    dynamodb = aws.client("dynamodb")
    dynamodb.create_table(
        TableName=ids_table,
        KeySchema=[{"AttributeName": "event_id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "event_id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    ts = aws.client("timestream-write")
    ts.create_database(DatabaseName=database)
    ts.create_table(DatabaseName=database, TableName="window")
    handler_env(
        aws, monkeypatch, TIMESTREAM_DATABASE=database, TIMESTREAM_TABLE="window", IDEMPOTENCY_TABLE=ids_table
    )
    return dynamodb
