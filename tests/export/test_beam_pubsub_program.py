"""The generated Beam module run as deployed on Pub/Sub: ``--subscription`` in, ``--dead_letter_topic`` out.

The program runs as its own process on Beam's DirectRunner (streaming), against streamlab's Pub/Sub
emulator (``PUBSUB_EMULATOR_HOST``), with its own command line, reads and dead-letter publishing.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.cloud import pubsub_v1

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.export import to_beam
from streamlab.local.pubsub import PubSubEmulator, emulator_client_kwargs
from streamlab.testing import ListSource, wait_for

from ._samples import BASE_MS, SCHEMA, record

pytest.importorskip("apache_beam")
pytestmark = pytest.mark.services
PROJECT = "projects/streamlab-test"  # Beam checks that it is a valid project id


@pytest.fixture
def pubsub() -> Iterator[tuple[str, Any, Any]]:
    with PubSubEmulator() as emu:
        pub = pubsub_v1.PublisherClient(**emulator_client_kwargs(emu.host, "publisher"))
        sub = pubsub_v1.SubscriberClient(**emulator_client_kwargs(emu.host, "subscriber"))
        yield emu.host, pub, sub
        pub.stop()
        sub.close()


def test_a_dead_letter_over_pubsubs_limit_is_sent_cut_to_fit_and_the_program_goes_on(
    tmp_path: Path, pubsub: tuple[str, Any, Any]
) -> None:
    host, pub, sub = pubsub
    topic_in = pub.create_topic(request={"name": f"{PROJECT}/topics/events"}).name
    events = sub.create_subscription(
        request={"name": f"{PROJECT}/subscriptions/events", "topic": topic_in}
    ).name
    topic_dl = pub.create_topic(request={"name": f"{PROJECT}/topics/dead"}).name
    dead = sub.create_subscription(request={"name": f"{PROJECT}/subscriptions/dead", "topic": topic_dl}).name

    p = Pipeline(ListSource([b"{}"]), name="pubsub")
    p.parse(SCHEMA).window(TumblingWindow("1m"), key="event_type").agg(agg.count())
    module = to_beam(p, tmp_path / "export", runner_source="file").module
    # 3.9 MB of "é": its dead letter's JSON escapes it to 11.7 MB, over Pub/Sub's 10 MB message limit.
    # (The Pub/Sub client that Beam reads with caps messages at 4 MiB when it talks to an emulator.)
    big = b'{"event_type": "' + "é".encode() * 1_950_000 + b'"}'
    for payload in [record(0, BASE_MS, "click", "u1", 1.0), b"not json", big, b"\xff{"]:
        pub.publish(topic_in, payload).result(timeout=30)

    cmd = [sys.executable, str(module), "--subscription", events, "--dead_letter_topic", topic_dl]
    cmd += ["--output", str(tmp_path / "out"), "--runner", "DirectRunner"]
    log = tmp_path / "program.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env={**os.environ, "PUBSUB_EMULATOR_HOST": host}, stdout=out, stderr=out)
    got: list[bytes] = []

    def received(n: int) -> bool:
        assert proc.poll() is None, f"the program exited ({proc.returncode}): {log.read_text()[-3000:]}"
        reply = sub.pull(
            request={"subscription": dead, "max_messages": 10, "return_immediately": True}, timeout=30
        )
        if reply.received_messages:
            got.extend(m.message.data for m in reply.received_messages)
            sub.acknowledge(
                request={"subscription": dead, "ack_ids": [m.ack_id for m in reply.received_messages]}
            )
        return len(got) >= n

    try:
        wait_for(lambda: received(3), timeout=240, what="three dead letters from the Beam program")
        # a record published after the oversized one still reaches its dead letter: nothing is stuck
        pub.publish(topic_in, b"[1]").result(timeout=30)
        wait_for(lambda: received(4), timeout=120, what="the fourth dead letter")
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert all(len(m) <= 9_900_000 for m in got)
    letters = {json.loads(m).get("raw", "")[:8]: json.loads(m) for m in got}
    assert letters["not json"]["reason"].startswith("invalid JSON")
    assert letters["\ufffd{"]["reason"].startswith("invalid UTF-8")
    assert letters["[1]"]["step_id"] == "parse"
    cut = letters['{"event_']
    assert cut["raw_truncated"] is True and cut["reason"].startswith("record is 3,900,0")
    assert (cut["raw_bytes"], cut["raw_sha256"]) == (len(big), hashlib.sha256(big).hexdigest())
    assert big.decode().startswith(cut["raw"]) and len(cut["raw"]) > 1_000_000
    assert "sent truncated" in log.read_text()
