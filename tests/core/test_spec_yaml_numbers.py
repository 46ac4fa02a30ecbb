"""A spec's texts that YAML 1.1 read as numbers: ``group_id: 0755`` was the group 493 (octal), ``topics:
2024_01`` the topic 202401 and ``12:30`` the number 750 (sexagesimal). The loader reads as numbers only
what YAML 1.1 and 1.2 read alike; the rest is the text as written. What ``to_yaml`` writes (it quotes
such texts) reads back unchanged."""

from __future__ import annotations

import re

import pytest
from streamlab.connectors.kafka import KafkaSource

from streamlab import Pipeline
from streamlab._spec_check import load_yaml
from streamlab.errors import SpecError

TRICKY = [
    "-.5",
    "+.5",
    "0755",
    "0x1F",
    "1_000",
    "yes",
    "on",
    "null",
    "1e3",
    "12:30",
    "0o17",
    "0b101",
    "2024_01",
    "~",
    "1.5",
]


@pytest.mark.parametrize("text", TRICKY)
def test_a_group_id_and_a_topic_round_trip_through_the_spec(text: str) -> None:
    # a topic name holds only letters, digits, '.', '_' and '-'; a group id anything
    topics = (text, "plain") if re.fullmatch(r"[A-Za-z0-9._-]+", text) else ("plain",)
    source = KafkaSource(list(topics), bootstrap_servers="127.0.0.1:9092", group_id=text)
    written = Pipeline(source, name="p").to_yaml()
    [step] = Pipeline.from_yaml(written).steps.values()
    assert (step.source.group_id, step.source.topics) == (text, topics)  # type: ignore[attr-defined]


@pytest.mark.parametrize("written", ["0755", "2024_01", "007", "0b101", "1_000"])
def test_a_hand_written_group_id_and_topic_keep_their_text(written: str) -> None:
    spec = (
        "streaming:\n  sources:\n"
        f"    - {{step_id: events, kind: kafka, topics: {written}, group_id: {written}, "
        "bootstrap_servers: '127.0.0.1:9092'}\n"
    )
    source = Pipeline.from_yaml(spec).steps["events"].source  # type: ignore[attr-defined]
    assert (source.group_id, source.topics) == (written, (written,))


def test_a_hand_written_time_of_day_is_text() -> None:
    assert load_yaml("group_id: 12:30") == {"group_id": "12:30"}  # YAML 1.1 read 750


def test_numbers_both_yaml_versions_read_alike_stay_numbers() -> None:
    assert load_yaml("[0, 8, -3, +1, 0x1F, 1.5, -0.5, .5, 1.0e+3, .inf, true, false, null]") == [
        0,
        8,
        -3,
        1,
        31,
        1.5,
        -0.5,
        0.5,
        1000.0,
        float("inf"),
        True,
        False,
        None,
    ]


def test_a_number_written_as_yaml_1_1_read_it_is_refused_where_it_is_checked() -> None:
    # batch_size: 0100 was silently 64 events; now it is the text '0100', which the check names
    spec = "streaming:\n  sources:\n    - {step_id: events, kind: replay, path: e.jsonl, batch_size: 0100}\n"
    with pytest.raises(SpecError, match="batch_size must be a positive number of events, got '0100'"):
        Pipeline.from_yaml(spec)
