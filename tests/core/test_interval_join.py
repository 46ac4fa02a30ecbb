"""The interval join follows a per-event rule: its pairs and late rows are those of rows arriving one at a
time, whatever the batches, compared with a one-row-at-a-time reference written from the rule."""

from __future__ import annotations

from typing import Any

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab._joins import IntervalJoinOperator

LOWER, UPPER, DELAY = -2, 3, 1  # seconds


def reference(
    events: list[tuple[int, str, int | None]],
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """Pairs (key, left time, right time) and late rows (side, key, time), one row at a time."""
    maxes: list[int | None] = [None, None]
    held: list[list[tuple[int, str]]] = [[], []]
    pairs, late = [], []
    for side, key, ts in events:
        watermark = None if None in maxes else min(m for m in maxes if m is not None) - DELAY
        if ts is None or (watermark is not None and ts < watermark):
            late.append((side, key, ts))
            continue
        mine = maxes[side]
        maxes[side] = ts if mine is None else max(mine, ts)
        for other_ts, other_key in held[1 - side]:
            lts, rts = (ts, other_ts) if side == 0 else (other_ts, ts)
            if other_key == key and LOWER <= rts - lts <= UPPER:
                pairs.append((key, lts, rts))
        held[side].append((ts, key))
    return sorted(pairs), sorted(late, key=repr)


def frame(rows: list[tuple[int, str, int | None]]) -> pd.DataFrame:
    seconds = pd.array([ts for _, _, ts in rows], dtype="Int64")
    return pd.DataFrame({"k": [k for _, k, _ in rows], "t": pd.to_datetime(seconds, unit="s", utc=True)})


def run(events: list[tuple[int, str, int | None]], cuts: list[int]) -> tuple[list[Any], list[Any]]:
    op = IntervalJoinOperator("j", ["k"], "t", "t", LOWER * 10**9, UPPER * 10**9, DELAY * 10**9, ("_l", "_r"))
    pairs: list[tuple[Any, ...]] = []
    late: list[tuple[Any, ...]] = []
    i = 0
    while i < len(events):  # a batch: a run of one side's rows, cut at the given lengths
        side = events[i][0]
        j = i + 1
        while j < len(events) and events[j][0] == side and j - i < cuts[i % len(cuts)]:
            j += 1
        out = op.process(frame(events[i:j]), side)
        if "out" in out:
            m = out["out"]
            pairs += [
                (k, int(lt.timestamp()), int(rt.timestamp())) for k, lt, rt in zip(m["k"], m["t_l"], m["t_r"])
            ]
        if "late" in out:
            for s, k, t in zip(out["late"]["join_side"], out["late"]["k"], out["late"]["t"]):
                late.append((int(s == "right"), k, None if pd.isna(t) else int(t.timestamp())))
        i = j
    return sorted(pairs), sorted(late, key=repr)


event = st.tuples(
    st.integers(0, 1),
    st.sampled_from(["a", "b"]),
    st.one_of(st.none(), st.integers(0, 30), st.integers(0, 30)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(event, max_size=40), st.lists(st.integers(1, 8), min_size=1, max_size=5))
def test_every_batching_gives_the_one_row_at_a_time_pairs_and_late_rows(events, cuts):
    assert run(events, cuts) == reference(events)


def test_a_row_behind_what_earlier_rows_of_its_own_batch_raised_is_late():
    # right holds 5; the left batch 4, 9, 2: after 9 the watermark is min(9, 5) - 1 = 4, so 2 is late
    events = [(1, "a", 5), (0, "a", 4), (0, "a", 9), (0, "a", 2)]
    got = run(events, [8])
    assert got == reference(events) == ([("a", 4, 5)], [(0, "a", 2)])
    assert run(events, [1]) == got
