"""A saved Event Hubs spec names the secrets of its ``config`` as environment references and runs again.

It wrote ``'<redacted>'`` for them (repr's masking), so the pipeline rebuilt from its own YAML connected
with the literal password ``'<redacted>'``; Kafka's specs write ``${KAFKA_<KEY>}`` references, resolved
when the client connects, and Event Hubs' now do the same.
"""

from __future__ import annotations

import pytest
from streamlab.connectors.eventhub import EventHubSink, EventHubSource

from streamlab import Pipeline

CONNECTION = "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0"


def test_a_saved_spec_holds_references_and_runs_with_the_secrets_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EH_CONNECTION", CONNECTION)
    config = {"ssl.key.password": "key-pw-1", "linger.ms": 5}
    p = Pipeline(EventHubSource(eventhub="in", connection_string_env="EH_CONNECTION", config=config))
    p.parse().to(
        EventHubSink(eventhub="out", connection_string_env="EH_CONNECTION", config=config), step_id="hub"
    )
    text = p.to_yaml()
    assert "key-pw-1" not in text and "c2VjcmV0" not in text
    assert "${KAFKA_SSL_KEY_PASSWORD}" in text
    monkeypatch.setenv("KAFKA_SSL_KEY_PASSWORD", "key-pw-1")
    q = Pipeline.from_yaml(text)
    conf = q.steps["hub"].sink.producer_config()  # type: ignore[attr-defined]
    assert conf["ssl.key.password"] == "key-pw-1" and conf["linger.ms"] == 5
    assert "key-pw-1" not in repr(q.steps["hub"].sink)  # type: ignore[attr-defined]
    assert q.to_yaml() == text
