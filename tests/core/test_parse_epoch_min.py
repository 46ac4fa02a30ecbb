"""Epoch numbers at int64's extremes: a batch arrow reads (more than 48 records, times all integers)
decides every record as the per-record rule (``streamlab._record.read_record``) does. -2**63 is its
own negative in int64, so a range check through ``np.abs`` let it through as 1970-01-01."""

from __future__ import annotations

import json

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import ListSink, ListSource, Pipeline
from streamlab._parse import _SMALL_CHUNK, FieldSpec, ParseOperator
from streamlab._record import BadRecordError, read_record

FIELDS = [FieldSpec.of("event_id", "string"), FieldSpec.of("timestamp", "timestamp")]
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
S_MAX, MS_MAX = 9_223_372_036, 9_223_372_036_854  # the largest epoch seconds / milliseconds in range
EXTREMES = [
    INT64_MIN, INT64_MIN + 1, INT64_MIN + 2, INT64_MAX, INT64_MAX - 1, -(2**62), 2**62,
    S_MAX, S_MAX + 1, -S_MAX, -S_MAX - 1, MS_MAX, MS_MAX + 1, -MS_MAX, -MS_MAX - 1,
    10**11, 10**11 + 1, -(10**11), -(10**11) - 1, 0, -1,
]  # fmt: skip


def record(i: int, t: int) -> bytes:
    return json.dumps({"event_id": f"e{i}", "timestamp": t}).encode()


def expected(records: list[bytes]) -> list[tuple[str, object]]:
    """Each record's decision by the per-record rule: its time in nanoseconds, or the dead-letter reason."""
    out: list[tuple[str, object]] = []
    for r in records:
        try:
            out.append(
                (
                    "ok",
                    read_record(r, tuple((f.name, f.type, f.path) for f in FIELDS), ("timestamp",), 1 << 20)[
                        "timestamp"
                    ],
                )
            )
        except BadRecordError as e:
            out.append(("dead", str(e)))
    return out


def decided(records: list[bytes], batch_size: int) -> list[tuple[str, object]]:
    """Each record's decision by the parse step, fed batches of ``batch_size`` records."""
    op = ParseOperator("parse", FIELDS, "value", ("timestamp",), 1 << 20)
    found: dict[int, tuple[str, object]] = {}
    for lo in range(0, len(records), batch_size):
        chunk = records[lo : lo + batch_size]
        out = op.process(pd.DataFrame({"value": chunk, "i": range(lo, lo + len(chunk))}))
        ok = out["out"]
        found.update(zip(ok["i"].tolist(), (("ok", int(t.value)) for t in ok["timestamp"])))
        if "dead_letter" in out:
            dead = out["dead_letter"]
            found.update(zip(dead["i"].tolist(), (("dead", r) for r in dead["reason"])))
    return [found[i] for i in range(len(records))]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.one_of(st.sampled_from(EXTREMES), st.integers(INT64_MIN, INT64_MAX), st.integers(-S_MAX, MS_MAX)),
        min_size=1,
        max_size=3,
    ),
    st.integers(0, 60),
)
def test_epoch_integers_at_int64_extremes_decide_as_the_per_record_rule(odd, at):
    # ordinary epoch seconds around them: the batch is one arrow read of integer times
    records = [record(i, 1_704_067_205 + i) for i in range(_SMALL_CHUNK + 12)]
    drawn = [record(1000 + j, t) for j, t in enumerate(odd)]
    for j, r in enumerate(drawn):
        records.insert((at + 17 * j) % len(records), r)
    want = expected(records)
    assert decided(drawn, 1) == expected(drawn)  # one by one: the checked path
    for batch_size in (_SMALL_CHUNK + 1, len(records)):  # arrow's reads of more than 48 records
        assert decided(records, batch_size) == want, batch_size


def test_int64_min_epoch_is_a_dead_letter_at_every_batch_size():
    records = [record(i, 1_704_067_205 + i) for i in range(60)]
    records[30] = b'{"event_id": "bad", "timestamp": -9223372036854775808}'
    for batch_size in (1, 7, 48, 49, 1000):
        p = Pipeline(ListSource(records, batch_size=batch_size))
        parsed = p.parse({"event_id": "string", "timestamp": "timestamp"})
        ok, dead = ListSink(), ListSink()
        parsed.to(ok)
        parsed.dead_letter.to(dead)
        p.run()
        assert "bad" not in ok.frame()["event_id"].tolist(), batch_size
        reasons = dead.frame()["reason"].tolist()
        assert len(reasons) == 1 and "a number is read as epoch seconds" in reasons[0], batch_size
