"""Dedup, user functions, joins and enrichment against straightforward pandas recomputations."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamlab import ListSink, ListSource, ManualClock, Pipeline
from streamlab.errors import PipelineConfigError
from streamlab.steps import DedupStep, KeyByStep

from ._streams import BASE


def run(p: Pipeline):
    return p.run(clock=ManualClock(0))


@given(
    st.lists(st.tuples(st.integers(0, 15), st.integers(0, 300)), min_size=1, max_size=80),
    st.sampled_from([None, 1, 5]),
)
def test_dedup_without_ttl_keeps_first_occurrences(pairs, batch_size):
    frame = pd.DataFrame(
        {
            "event_id": [f"id{i}" for i, _ in pairs],
            "timestamp": [BASE + pd.Timedelta(seconds=t) for _, t in pairs],
        }
    )
    p = Pipeline(ListSource(frame, batch_size=batch_size))
    d = p.dedup("event_id", ttl=None)
    out, dups = ListSink(), ListSink()
    d.to(out)
    d.duplicates.to(dups)
    run(p)
    expected = frame.drop_duplicates("event_id")
    assert out.frame()["event_id"].tolist() == expected["event_id"].tolist()
    assert len(dups.frame()) == len(frame) - len(expected)


def test_dedup_ttl_forgets_ids_older_than_ttl_behind_the_newest_event():
    frame = pd.DataFrame(
        {"event_id": ["a", "b", "a", "a"], "timestamp": BASE + pd.to_timedelta([0, 100, 50, 700], unit="s")}
    )
    p = Pipeline(ListSource(frame))
    sink = ListSink()
    p.dedup("event_id", ttl="10m").to(sink)
    run(p)
    # the repeat at 50 s is within 10 minutes; at 700 s the first "a" (0 s) is more than 10 minutes behind
    assert sink.frame()["timestamp"].tolist() == list(BASE + pd.to_timedelta([0, 100, 700], unit="s"))


def test_dedup_capacity_is_bounded():
    frame = pd.DataFrame({"event_id": [f"x{i}" for i in range(5000)], "timestamp": BASE})
    p = Pipeline(ListSource(frame, batch_size=500))
    p.dedup("event_id", ttl=None, max_ids=1000).to(ListSink())
    from streamlab.runtime import Executor

    ex = Executor(p, clock=ManualClock(0))
    ex.open()
    while not ex.all_done():
        ex.poll_once()
    assert ex.operators["dedup"].open_state()["remembered_ids"] <= 1000


def test_per_event_function_errors_go_to_dead_letter_and_the_rest_flows():
    frame = pd.DataFrame({"x": [1, 2, 0, 4]})
    p = Pipeline(ListSource(frame))
    m = p.map_one(lambda e: {"x": e["x"], "inv": 1 / e["x"]})
    out, dead = ListSink(), ListSink()
    m.to(out)
    m.dead_letter.to(dead)
    run(p)
    assert out.frame()["x"].tolist() == [1, 2, 4]
    assert dead.frame()["x"].tolist() == [0]
    assert "ZeroDivisionError" in dead.frame()["reason"].iloc[0]


def test_batch_function_failing_on_some_rows_isolates_them():
    def check(batch: pd.DataFrame):
        if (batch["x"] < 0).any():
            raise ValueError("negative x")
        return batch["x"] > 1

    p = Pipeline(ListSource(pd.DataFrame({"x": [3, -1, 2, 1, 5]})))
    f = p.filter_many(check)
    out, dead = ListSink(), ListSink()
    f.to(out)
    f.dead_letter.to(dead)
    run(p)
    assert out.frame()["x"].tolist() == [3, 2, 5]
    assert dead.frame()["x"].tolist() == [-1]


@given(st.integers(0, 10**6))
def test_interval_join_equals_pandas_on_ordered_streams(seed):
    rng = np.random.default_rng(seed)
    n = 40
    left = pd.DataFrame(
        {
            "user": rng.choice(["a", "b", "c"], n),
            "lv": np.arange(n),
            "timestamp": BASE + pd.to_timedelta(np.sort(rng.integers(0, 600, n)), unit="s"),
        }
    )
    right = pd.DataFrame(
        {
            "user": rng.choice(["a", "b", "c"], n),
            "rv": np.arange(n),
            "timestamp": BASE + pd.to_timedelta(np.sort(rng.integers(0, 600, n)), unit="s"),
        }
    )
    p = Pipeline()
    ls = p.add_source(ListSource(left, batch_size=7), step_id="left")
    rs = p.add_source(ListSource(right, batch_size=5), step_id="right")
    joined = ls.join_interval(rs, "user", lower="-30s", upper="60s", delay="1h")
    sink = ListSink()
    joined.to(sink)
    run(p)
    m = left.merge(right, on="user", suffixes=("", "_right"))
    d = (m["timestamp_right"] - m["timestamp"]).dt.total_seconds()
    expected = m[(d >= -30) & (d <= 60)]
    got = sink.frame()
    key = ["lv", "rv"]
    assert sorted(map(tuple, got[key].values.tolist())) == sorted(map(tuple, expected[key].values.tolist()))


def test_enrich_with_a_table():
    users = pd.DataFrame({"user_id": ["u1", "u2"], "tier": ["gold", "free"]})
    p = Pipeline(ListSource(pd.DataFrame({"user_id": ["u2", "u1", "u3"], "x": [1, 2, 3]})))
    sink = ListSink()
    p.enrich(users, on="user_id").to(sink)
    run(p)
    assert sink.frame()["tier"].tolist() == ["free", "gold", None] or sink.frame()[
        "tier"
    ].isna().tolist() == [False, False, True]


def test_union_merges_streams():
    p = Pipeline()
    a = p.add_source(ListSource([{"x": 1}]), step_id="a")
    b = p.add_source(ListSource([{"x": 2}, {"x": 3}]), step_id="b")
    sink = ListSink()
    a.union(b).to(sink)
    run(p)
    assert sorted(sink.frame()["x"].tolist()) == [1, 2, 3]


def test_enrich_from_a_duckdb_table_round_trips_through_yaml(tmp_path):
    import duckdb

    from streamlab import DuckDBTable

    db = str(tmp_path / "ref.duckdb")
    con = duckdb.connect(db)
    con.execute(
        "create table users as select * from (values ('u1', 'gold'), ('u2', 'free')) t(user_id, tier)"
    )
    con.close()
    path = tmp_path / "events.csv"
    pd.DataFrame({"user_id": ["u2", "u1"], "x": [1, 2]}).to_csv(path, index=False)
    from streamlab import ReplaySource

    p = Pipeline(ReplaySource(str(path)))
    p.enrich(DuckDBTable(db, "select * from users"), on="user_id").to(ListSink())
    q = Pipeline.from_yaml(p.to_yaml())
    result = run(q)
    assert result.metrics["events_in"] == 2
    sink = q.steps["sink"].sink  # type: ignore[attr-defined]
    assert sink.frame()["tier"].tolist() == ["free", "gold"]


def test_replay_reads_csv_parquet_and_json_lines(tmp_path):
    from streamlab import ReplaySource

    frame = pd.DataFrame({"x": [1, 2, 3], "timestamp": pd.to_datetime(["2024-01-01T00:00:00Z"] * 3)})
    frame.to_csv(tmp_path / "e.csv", index=False)
    frame.to_parquet(tmp_path / "e.parquet")
    frame.to_json(tmp_path / "e.jsonl", orient="records", lines=True, date_format="iso")
    for name in ("e.csv", "e.parquet", "e.jsonl"):
        sink = ListSink()
        p = Pipeline(ReplaySource(str(tmp_path / name)))
        p.stream.to(sink)
        run(p)
        assert sink.frame()["x"].tolist() == [1, 2, 3], name


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: DedupStep("d", ("parse",), ttl_ns=0), "ttl='0s' is not positive"),
        (lambda: DedupStep("d", ("parse",), ttl_ns=-5), "is not positive"),
        (lambda: DedupStep("d", ("parse",), ttl_ns=10, time=None), "ttl needs an event-time column"),
        (lambda: DedupStep("d", ("parse",), max_ids=0), "max_ids=0 must be a positive integer"),
        (lambda: KeyByStep("k", ("parse",)), "no key column given"),
    ],
)
def test_a_step_built_directly_is_checked(make: Any, message: str) -> None:
    with pytest.raises(PipelineConfigError, match=message):
        make()


@pytest.mark.parametrize("mask", [[True], [True, False], [[True, False, True]]])
def test_a_filter_many_mask_of_the_wrong_length_sends_the_batch_to_dead_letter(mask) -> None:
    # [True] was broadcast (every row kept), and [True, False] on batches of 3 was "isolated" by halves,
    # where it fit a part of 2 rows: some rows kept, some dropped without a trace
    frame = pd.DataFrame({"x": range(6)})
    p = Pipeline(ListSource(frame, batch_size=3))
    kept, dead = ListSink(), ListSink()
    out = p.stream.filter_many(lambda df: mask)
    out.to(kept)
    out.dead_letter.to(dead)
    p.run(clock=ManualClock(0))
    assert kept.frame().empty
    d = dead.frame()
    assert d["x"].tolist() == list(range(6))
    assert (
        d["reason"]
        .str.contains(r"returned \d+ values \(shape .*\) for a batch of 3 rows; return one boolean")
        .all()
    )


def test_sliding_window_repr_shows_its_offset():
    from streamlab import SlidingWindow

    assert (
        repr(SlidingWindow("1m", every="20s", offset="10s"))
        == "SlidingWindow('1m', every='20s', offset='10s')"
    )
    assert repr(SlidingWindow("1m", every="20s")) == "SlidingWindow('1m', every='20s')"


def test_detect_after_key_by_keeps_one_model_per_declared_key():
    # key_by's docstring named detectors, but detect() built one global model
    from streamlab import PipelineConfigError
    from streamlab.detectors import GaussianScorerDetector
    from streamlab.testing import ListSource

    rows = [{"user_id": "a", "country": "FR", "amount": 1.0, "timestamp": pd.Timestamp(0, tz="UTC")}]
    p = Pipeline(ListSource(rows))
    det = p.stream.key_by("user_id").detect(GaussianScorerDetector(), ["amount"])
    assert p.steps[det.step_id].config.key == "user_id"
    other = p.stream.key_by("user_id").detect(GaussianScorerDetector(), ["amount"], key="country")
    assert p.steps[other.step_id].config.key == "country"
    with pytest.raises(PipelineConfigError, match="keys by one column"):
        p.stream.key_by("user_id", "country").detect(GaussianScorerDetector(), ["amount"])
