"""A union of streams split from one source passes the rows of each source batch in arrival order, so
the order-dependent steps after it (dedup's first copy, first/last on ties of event time, lateness,
sessions, patterns) give the same results for every batch size, as batches of one event do."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import ManualClock, Pipeline, SessionWindow, TumblingWindow, agg
from streamlab.sources import ListSource

from ._streams import BASE

SHAPES = ("dedup", "first_last", "lateness", "session", "pattern")


def events(amounts: list[int], gaps: list[int]) -> pd.DataFrame:
    """Events in event-time order (gaps of 0 are ties), ids repeating every seventh event."""
    n = len(amounts)
    return pd.DataFrame(
        {
            "event_id": [f"e{i % 7}" for i in range(n)],
            "key": [f"k{i % 2}" for i in range(n)],
            "amount": [float(a) for a in amounts],
            "timestamp": BASE + pd.to_timedelta(np.cumsum(gaps[:n]), unit="s"),
        }
    )


def build(frame: pd.DataFrame, shape: str, batch_size: int) -> Pipeline:
    p = Pipeline(ListSource(frame, batch_size=batch_size))
    big = p.stream.filter("amount > 10", step_id="big")
    small = p.stream.filter("amount <= 10", step_id="small").with_columns(tenth="amount / 10")
    u = big.union(small, step_id="u")
    if shape == "dedup":
        u.dedup("event_id", step_id="out")
    elif shape == "first_last":
        u.window(TumblingWindow("5s"), key="key", step_id="out").agg(agg.first("amount"), agg.last("amount"))
    elif shape == "lateness":
        u.window(TumblingWindow("3s"), key="key", step_id="out").agg(agg.count(), agg.sum("amount"))
    elif shape == "session":
        u.window(SessionWindow("2s"), key="key", step_id="out").agg(agg.count(), agg.first("amount"))
    else:
        u.pattern("key", [("big", "amount > 10"), ("small", "amount <= 10")], within="4s", step_id="out")
    return p


def outputs(frame: pd.DataFrame, shape: str, batch_size: int) -> dict[str, pd.DataFrame]:
    result = build(frame, shape, batch_size).run(clock=ManualClock(0))
    return {ref: result[ref] for ref in result.outputs if ref.startswith("out")}


def canonical(df: pd.DataFrame) -> pd.DataFrame:
    """Rows in a fixed order: a window's rows are emitted as the watermark passes them, which batches move
    in steps; which rows there are, and their values, must not depend on the batch size."""
    if len(df) == 0:
        return df.reset_index(drop=True)
    keys = [df[c].map(repr).to_numpy() for c in reversed(df.columns)]
    return df.iloc[np.lexsort(keys)].reset_index(drop=True)


def assert_same(frame: pd.DataFrame, shape: str, batch_size: int) -> None:
    reference = outputs(frame, shape, 1)
    got = outputs(frame, shape, batch_size)
    assert sorted(got) == sorted(reference)
    for ref, want in reference.items():
        pd.testing.assert_frame_equal(
            canonical(got[ref]), canonical(want), obj=f"{shape} {ref} b={batch_size}"
        )


AMOUNTS = [15, 3, 12, 7, 20, 1, 11, 9, 14, 2, 18, 5, 13, 8, 16, 4, 19, 6, 17, 10, 3, 12]
GAPS = [0, 0, 1, 0, 1, 1, 0, 2, 0, 1, 0, 1, 1, 0, 3, 0, 1, 0, 1, 0, 2, 0]


def test_each_order_dependent_step_after_a_split_and_union_matches_batches_of_one() -> None:
    frame = events(AMOUNTS, GAPS)
    reference = outputs(frame, "lateness", 1)
    assert len(reference["out.late"]) == 0  # the source is in event-time order
    for shape in SHAPES:
        for batch_size in (2, 5, len(frame)):
            assert_same(frame, shape, batch_size)


def test_dedup_after_the_union_keeps_the_copy_that_arrived_first() -> None:
    frame = pd.DataFrame(
        {
            "event_id": ["x", "x", "y", "y"],
            "amount": [1.0, 50.0, 60.0, 2.0],
            "timestamp": [BASE] * 4,
        }
    )
    for batch_size in (1, 4):
        got = outputs(frame, "dedup", batch_size)
        assert got["out"]["amount"].tolist() == [1.0, 60.0], batch_size
        assert got["out.duplicates"]["amount"].tolist() == [50.0, 2.0], batch_size


def test_the_union_emits_one_batch_in_arrival_order_per_source_batch() -> None:
    frame = events(AMOUNTS[:6], GAPS[:6])
    p = build(frame, "dedup", 6)
    seen: list[list[float]] = []
    from streamlab.runtime._executor import Executor

    ex = Executor(p, clock=ManualClock(0))
    ex.router.subscribers["u"] = [lambda b: seen.append(b["amount"].tolist())]
    ex.open()
    try:
        ex.poll_once()
    finally:
        ex.close()
    assert seen == [[15.0, 3.0, 12.0, 7.0, 20.0, 1.0]]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 20), min_size=1, max_size=40),
    st.lists(st.integers(0, 2), min_size=40, max_size=40),
    st.sampled_from(SHAPES),
    st.integers(2, 41),
)
def test_results_after_a_split_and_union_do_not_depend_on_the_batch_size(
    amounts: list[int], gaps: list[int], shape: str, batch_size: int
) -> None:
    assert_same(events(amounts, gaps), shape, batch_size)


def test_a_stream_unioned_with_itself_passes_each_row_twice_in_a_row() -> None:
    frame = events(AMOUNTS[:5], GAPS[:5])
    for batch_size in (1, 2, 5):
        p = Pipeline(ListSource(frame, batch_size=batch_size))
        p.stream.union(p.stream, step_id="u")
        got = p.run(clock=ManualClock(0))["u"]
        assert got["amount"].tolist() == [a for a in frame["amount"].tolist() for _ in range(2)], batch_size


def test_a_row_reaching_a_union_by_several_inputs_comes_first_by_the_first_input() -> None:
    # the inner union passes its rows after the source's reached the outer one: by input all the same
    frame = pd.DataFrame({"event_id": ["a", "b", "c"], "amount": [1.0, 9.0, 20.0], "timestamp": [BASE] * 3})
    for batch_size in (1, 2, 3):
        p = Pipeline(ListSource(frame, batch_size=batch_size))
        inner = p.stream.filter("amount > 5", step_id="big").union(
            p.stream.filter("amount > 10", step_id="huge").with_columns(tag="'huge'"), step_id="inner"
        )
        inner.union(p.stream, step_id="outer")
        got = p.run(clock=ManualClock(0))["outer"]
        assert got["event_id"].tolist() == ["a", "b", "b", "c", "c", "c"], batch_size
        assert got["tag"].fillna("-").tolist() == ["-", "-", "-", "-", "huge", "-"], batch_size


@pytest.mark.parametrize("batch_size", [1, 3, 5000])
def test_branches_split_after_a_parse_and_unioned_twice_keep_arrival_order(batch_size: int) -> None:
    # the parse works ahead in a worker for batches of 4096 rows and more: its rows are numbered at
    # its output, where the branches split (small batches: fewer rows, each batch a pass of every step)
    n = 5000 if batch_size >= 4096 else 400
    amounts = [(i * 7) % 23 for i in range(n)]
    raw = [json.dumps({"event_id": f"e{i}", "amount": a}).encode() for i, a in enumerate(amounts)]
    p = Pipeline(ListSource(pd.DataFrame({"value": raw}), batch_size=batch_size))
    parsed = p.parse({"event_id": "string", "amount": "float64"}, time=None)
    big = parsed.filter("amount > 15").select("event_id", "amount")
    middle = parsed.filter("amount > 5 and amount <= 15").with_columns(mid="amount > 0")
    u = big.union(middle, step_id="u1").union(parsed.filter("amount <= 5"), step_id="u2")
    u.map_one(lambda e: {"event_id": e["event_id"]}, step_id="ids")
    got = p.run(clock=ManualClock(0))["ids"]
    assert got["event_id"].tolist() == [f"e{i}" for i in range(n)]


def test_branches_of_a_window_s_results_merge_in_the_order_the_window_emitted_them() -> None:
    # a window emits on a batch and at the end of input: its rows, numbered as it emits them, are merged
    # back in that order either way
    frame = events(AMOUNTS, GAPS)
    for batch_size in (1, 4, len(frame)):
        p = Pipeline(ListSource(frame, batch_size=batch_size))
        counts = p.stream.window(TumblingWindow("2s"), key="key", step_id="w").agg(agg.count())
        odd = counts.filter("count % 2 == 1", step_id="odd")
        odd.union(counts.filter("count % 2 == 0", step_id="even"), step_id="u")
        got = p.run(clock=ManualClock(0))["u"]
        pd.testing.assert_frame_equal(got, counts_alone(frame, batch_size), obj=f"batch_size={batch_size}")


def counts_alone(frame: pd.DataFrame, batch_size: int) -> pd.DataFrame:
    p = Pipeline(ListSource(frame, batch_size=batch_size))
    p.stream.window(TumblingWindow("2s"), key="key", step_id="w").agg(agg.count())
    return p.run(clock=ManualClock(0))["w"]


def test_a_branch_through_a_batch_function_ends_the_order_there() -> None:
    # map_many may return any rows: the union passes that branch's rows after the other's (documented)
    frame = events(AMOUNTS[:6], GAPS[:6])
    p = Pipeline(ListSource(frame, batch_size=6))
    big = p.stream.filter("amount > 10")
    small = p.stream.filter("amount <= 10").map_many(lambda b: b, step_id="same")
    big.union(small, step_id="u")
    got = p.run(clock=ManualClock(0))["u"]
    assert got["amount"].tolist() == [15.0, 12.0, 20.0, 3.0, 7.0, 1.0]


BRANCH_STEPS = ("filter", "with_columns", "select", "map_one", "key_by", "dedup", "none")


def branch(stream, step: str, lo: int):  # type: ignore[no-untyped-def]
    """A branch keeping the events with amount >= lo, through one more step that keeps rows."""
    kept = stream.filter(f"amount >= {lo}")
    if step == "filter":
        return kept.filter("amount == amount")
    if step == "with_columns":
        return kept.with_columns(double="amount * 2")
    if step == "select":
        return kept.select("event_id", "amount")
    if step == "map_one":
        return kept.map_one(lambda e: {"event_id": e["event_id"], "amount": e["amount"]})
    if step == "key_by":
        return kept.key_by("key")
    if step == "dedup":
        return kept.dedup("event_id")
    return kept


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 20), min_size=1, max_size=30),
    st.lists(st.tuples(st.sampled_from(BRANCH_STEPS), st.integers(0, 20)), min_size=2, max_size=4),
    st.booleans(),
    st.integers(2, 31),
)
def test_the_union_of_branches_passes_the_rows_batches_of_one_pass(
    amounts: list[int], branches: list[tuple[str, int]], nested: bool, batch_size: int
) -> None:
    """Any branches of one source through steps that keep rows (a row may reach the union by several),
    in one union or in unions of unions: the union's rows, in order, as with batches of one event."""
    frame = events(amounts, [1] * len(amounts))

    def union_rows(size: int) -> pd.DataFrame:
        p = Pipeline(ListSource(frame, batch_size=size))
        streams = [branch(p.stream, step, lo) for step, lo in branches]
        if nested:
            u = streams[0]
            for s in streams[1:]:
                u = u.union(s)
            u.filter("amount >= 0", step_id="u")
        else:
            streams[0].union(*streams[1:], step_id="u")
        return p.run(clock=ManualClock(0))["u"]

    # (with a map_one's columns unknown, the union's columns come in the order batches first show them)
    pd.testing.assert_frame_equal(union_rows(batch_size), union_rows(1), check_like=True)
