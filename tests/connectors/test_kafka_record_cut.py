"""A Kafka record's key and headers are cut to fit ``message.max.bytes`` when they alone leave no room.

Before, only the value was cut: a record whose key (a window's key from one hostile event) or headers (a
dead letter's source metadata) nearly filled ``message.max.bytes`` was refused by the producer on every
retry, and the run failed at each commit. The broker-side behaviour is tested in ``test_kafka.py``; here
the sharing of the room, against its contract, on random records.
"""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st
from streamlab.connectors.kafka.sink import _facts, _size, cut_key_and_headers

_NAMES = st.text(st.characters(min_codepoint=97, max_codepoint=122), min_size=1, max_size=12)
_BYTES = st.one_of(st.none(), st.binary(max_size=3000))


@settings(max_examples=400, deadline=None)
@given(
    key=_BYTES,
    headers=st.one_of(st.none(), st.lists(st.tuples(_NAMES, _BYTES), max_size=5, unique_by=lambda h: h[0])),
    room=st.integers(0, 8000),
)
def test_key_and_headers_fit_the_room_and_say_what_was_cut(
    key: bytes | None, headers: list[tuple[str, bytes | None]] | None, room: int
) -> None:
    cut_key, cut_headers = cut_key_and_headers(key, headers, room)
    if _size(key, headers) <= room:
        assert (cut_key, cut_headers) == (key, headers)  # a record that fits is not touched
        return
    parts = [("key", key), *(headers or [])]
    # the room can always be met once it holds the header names and the facts of every part
    if room >= sum(len(n) for n, _ in headers or []) + sum(
        _size(None, _facts(n, v or b"")) for n, v in parts
    ):
        assert _size(cut_key, cut_headers) <= room
    given_names = [n for n, _ in headers or []]
    kept = list(cut_headers or [])
    assert [n for n, _ in kept[: len(given_names)]] == given_names  # names and order kept
    got = [("key", cut_key), *kept[: len(given_names)]]
    facts = dict(kept[len(given_names) :])
    for (name, whole), (_, now) in zip(parts, got):
        if whole is None:
            assert now is None
            continue
        assert whole.startswith(now)  # a prefix: the same cut of the same key, the same partition
        if now == whole:
            assert f"{name}_truncated" not in facts
        else:
            assert facts[f"{name}_truncated"] == b"true"
            assert facts[f"{name}_bytes"] == str(len(whole)).encode()
            assert facts[f"{name}_sha256"] == hashlib.sha256(whole).hexdigest().encode()
    assert len(facts) == 3 * sum(1 for (_, w), (_, n) in zip(parts, got) if w is not None and n != w)


def test_a_small_key_stays_whole_beside_a_huge_header() -> None:
    key, headers = cut_key_and_headers(b"user-1", [("note", b"n" * 1_000_000), ("kind", b"click")], 10_000)
    assert key == b"user-1" and headers[1] == ("kind", b"click")
    assert len(headers[0][1]) > 9_000 and dict(headers)["note_bytes"] == b"1000000"
    assert "key_truncated" not in dict(headers) and _size(key, headers) <= 10_000
