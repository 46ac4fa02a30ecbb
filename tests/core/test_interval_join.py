"""The interval join follows a per-event rule: its pairs and late rows are those of rows arriving one at a
time, whatever the batches, compared with a one-row-at-a-time reference written from the rule."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab._joins import IntervalJoinOperator

from ._keys import KEY_VALUES, key_column, same_key

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


def batch_bounds(events: list[tuple[Any, ...]], cuts: list[int]) -> list[tuple[int, int]]:
    """The batches of ``events`` as ``(start, stop)``: runs of one side's rows, cut at the given lengths."""
    bounds = []
    i = 0
    while i < len(events):
        j = i + 1
        while j < len(events) and events[j][0] == events[i][0] and j - i < cuts[i % len(cuts)]:
            j += 1
        bounds.append((i, j))
        i = j
    return bounds


def run(events: list[tuple[int, str, int | None]], cuts: list[int]) -> tuple[list[Any], list[Any]]:
    op = IntervalJoinOperator("j", ["k"], "t", "t", LOWER * 10**9, UPPER * 10**9, DELAY * 10**9, ("_l", "_r"))
    pairs: list[tuple[Any, ...]] = []
    late: list[tuple[Any, ...]] = []
    for i, j in batch_bounds(events, cuts):
        side = events[i][0]
        out = op.process(frame(events[i:j]), side)
        if "out" in out:
            m = out["out"]
            pairs += [
                (k, int(lt.timestamp()), int(rt.timestamp())) for k, lt, rt in zip(m["k"], m["t_l"], m["t_r"])
            ]
        if "late" in out:
            for s, k, t in zip(out["late"]["join_side"], out["late"]["k"], out["late"]["t"]):
                late.append((int(s == "right"), k, None if pd.isna(t) else int(t.timestamp())))
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


# A missing key (None, NaN, pd.NA) never matches, as SQL's NULL: in every key dtype, single and multi-column.


def keyed_reference(events: list[tuple[int, tuple[Any, ...], int]]) -> tuple[list[Any], list[Any]]:
    """Pairs (left row, right row) and late rows (side, row), one row at a time (rows by position)."""
    maxes: list[int | None] = [None, None]
    held: list[list[tuple[int, tuple[Any, ...], int]]] = [[], []]
    pairs, late = [], []
    for i, (side, key, ts) in enumerate(events):
        watermark = None if None in maxes else min(m for m in maxes if m is not None) - DELAY
        if watermark is not None and ts < watermark:
            late.append((side, i))
            continue
        mine = maxes[side]
        maxes[side] = ts if mine is None else max(mine, ts)
        for other_ts, other_key, j in held[1 - side]:
            (lts, li), (rts, ri) = ((ts, i), (other_ts, j)) if side == 0 else ((other_ts, j), (ts, i))
            if same_key(key, other_key) and LOWER <= rts - lts <= UPPER:
                pairs.append((li, ri))
        held[side].append((ts, key, i))
    return sorted(pairs), sorted(late)


def keyed_run(
    events: list[tuple[int, tuple[Any, ...], int]], dtype: str, cuts: list[int]
) -> tuple[list[Any], list[Any]]:
    on = [f"k{n}" for n in range(len(events[0][1]))] if events else ["k0"]
    op = IntervalJoinOperator("j", on, "t", "t", LOWER * 10**9, UPPER * 10**9, DELAY * 10**9, ("_l", "_r"))
    pairs: list[Any] = []
    late: list[Any] = []
    for i, j in batch_bounds(events, cuts):
        side, rows = events[i][0], events[i:j]
        batch = pd.DataFrame({c: key_column([k[n] for _, k, _ in rows], dtype) for n, c in enumerate(on)})
        batch["t"] = pd.to_datetime([ts for _, _, ts in rows], unit="s", utc=True)
        batch["i"] = range(i, j)
        out = op.process(batch, side)
        if "out" in out:
            pairs += zip(out["out"]["i_l"].tolist(), out["out"]["i_r"].tolist())
        if "late" in out:
            late += [(int(s == "right"), n) for s, n in zip(out["late"]["join_side"], out["late"]["i"])]
    return sorted(pairs), sorted(late)


@pytest.mark.parametrize("width", [1, 2])
@pytest.mark.parametrize("dtype", list(KEY_VALUES))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_missing_key_joins_nothing_in_any_dtype_and_batching(dtype: str, width: int, data: Any) -> None:
    key = st.tuples(*[st.sampled_from(KEY_VALUES[dtype])] * width)
    events = data.draw(st.lists(st.tuples(st.integers(0, 1), key, st.integers(0, 20)), max_size=30))
    cuts = data.draw(st.lists(st.integers(1, 8), min_size=1, max_size=4))
    assert keyed_run(events, dtype, cuts) == keyed_reference(events)


@pytest.mark.parametrize("dtype", list(KEY_VALUES))
def test_rows_whose_keys_are_both_missing_make_no_pair(dtype: str) -> None:
    # the finding: L(k=null) and R(k=null) paired; so did (null, a) with (null, a) in a two-column key
    missing, present = KEY_VALUES[dtype][-1], KEY_VALUES[dtype][0]
    single = [(0, (missing,), 0), (1, (missing,), 1), (0, (present,), 2), (1, (present,), 3)]
    double = [(0, (missing, present), 0), (1, (missing, present), 1), (0, (present, missing), 2)]
    double += [(1, (present, missing), 3), (0, (present, present), 4), (1, (present, present), 5)]
    for cuts in ([1], [8]):
        assert keyed_run(single, dtype, cuts) == ([(2, 3)], [])
        assert keyed_run(double, dtype, cuts) == ([(4, 5)], [])
