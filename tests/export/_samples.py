"""Samples for export tests: raw records in arrival order with disorder, late records, repeats and bad ones."""

from __future__ import annotations

import json

from hypothesis import strategies as st

# The seed's event shape, with the amount read from the nested ``properties`` object.
SCHEMA = {
    "event_id": "string",
    "event_type": "category",
    "user_id": "string",
    "timestamp": "timestamp",
    "amount": {"type": "float64", "path": "properties.amount"},
}
BASE_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
KEYS = ("click", "view", "buy")
USERS = ("u1", "u2", "u3", "u4")
BAD_RECORDS = (
    b"not json",
    b"",
    b"[1, 2]",
    b'{"event_id": "x", "event_type": "click", "user_id": "u1"}',
    b'{"event_id": "y", "event_type": 7, "user_id": "u1", "timestamp": "2024-01-01T00:00:01Z"}',
    b'{"event_id": "z", "event_type": "view", "user_id": "u2", "timestamp": "not-a-time"}',
)


def iso(ms: int) -> str:
    """ISO-8601 UTC with milliseconds, as producers write it."""
    seconds, milli = divmod(ms, 1000)
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{milli:03d}Z"


def record(i: int, ms: int, key: str, user: str, amount: float | None) -> bytes:
    props = {} if amount is None else {"amount": amount}
    event = {
        "event_id": f"e{i}",
        "event_type": key,
        "user_id": user,
        "timestamp": iso(ms),
        "properties": props,
    }
    return json.dumps(event).encode()


@st.composite
def samples(draw: st.DrawFn, max_events: int = 40, span_s: int = 400) -> list[bytes]:
    """Raw records: mostly in order, some shuffled locally, a few very late, repeats and bad records."""
    n = draw(st.integers(5, max_events))
    times = sorted(draw(st.lists(st.integers(0, span_s * 1000), min_size=n, max_size=n)))
    events = [
        record(
            i,
            BASE_MS + t,
            draw(st.sampled_from(KEYS)),
            draw(st.sampled_from(USERS)),
            draw(st.one_of(st.none(), st.integers(-500, 5000).map(lambda c: c / 100))),
        )
        for i, t in enumerate(times)
    ]
    # local disorder: swap some neighbours
    for _ in range(draw(st.integers(0, n // 2))):
        j = draw(st.integers(0, n - 2))
        events[j], events[j + 1] = events[j + 1], events[j]
    # very late records: move a few early events towards the end
    for _ in range(draw(st.integers(0, 3))):
        j = draw(st.integers(0, len(events) // 2))
        events.append(events.pop(j))
    # repeats (at-least-once delivery) and bad records at random places
    for _ in range(draw(st.integers(0, 3))):
        events.insert(draw(st.integers(0, len(events))), events[draw(st.integers(0, len(events) - 1))])
    for bad in draw(st.lists(st.sampled_from(BAD_RECORDS), max_size=3)):
        events.insert(draw(st.integers(0, len(events))), bad)
    return events


FIXED_SAMPLE = [
    record(1, BASE_MS + 5_000, "click", "u1", 2.5),
    record(2, BASE_MS + 50_000, "view", "u2", None),
    b"not json",
    record(3, BASE_MS + 70_000, "click", "u3", 1.0),
    record(4, BASE_MS + 30_000, "click", "u4", 4.0),  # out of order, still on time with delay 5s? no: late
    record(1, BASE_MS + 5_000, "click", "u1", 2.5),  # a repeat
    record(5, BASE_MS + 130_000, "click", "u1", 3.0),
    record(6, BASE_MS + 60_000, "click", "u2", 1.5),  # late: the watermark passed 2:05
    b'{"event_id": "x", "event_type": "click", "user_id": "u1"}',
    record(7, BASE_MS + 180_000, "view", "u3", 0.5),
    record(8, BASE_MS + 181_000, "view", "u1", None),
]
