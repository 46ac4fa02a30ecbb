"""Windows over columns of Python objects (records from a ListSource, a ``json`` field): a value a numeric
aggregator cannot read as a number, or one ``count_distinct`` cannot hash, sends its row to the window's
dead letters with the reason; every other row is aggregated as pandas would, in every window kind."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import Pipeline, SessionWindow, SlidingWindow, TumblingWindow, agg
from streamlab._agg_inputs import split_unfit_values
from streamlab.testing import ListSource

T0 = pd.Timestamp("2024-01-01", tz="UTC")
HUGE = 10**400

values = st.one_of(
    st.none(),
    st.integers(-100, 100),
    st.floats(-100, 100),
    st.sampled_from(["3", "x", "", HUGE, -HUGE, True, {"a": 1}, [1], math.nan]),
)


def as_number(v: Any) -> float | None:
    """What the window should add: None for a missing value, else the number (inf beyond a double)."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, int) and abs(v) > 2**1023:
        return math.inf if v > 0 else -math.inf
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan  # not a number: a dead letter


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("ab"), st.integers(0, 179), values), max_size=40))
def test_tumbling_sums_and_counts_equal_pandas_without_the_unreadable_rows(rows: list[Any]) -> None:
    # a number and a text first, so the column holds Python objects whatever is drawn (a column of text
    # alone is declared text, and a sum over it refused when the pipeline is built)
    rows = [("a", 0, 1), ("b", 0, "x"), *sorted(rows, key=lambda r: r[1])]
    records = [{"k": k, "v": v, "timestamp": T0 + pd.Timedelta(seconds=s)} for k, s, v in rows]
    p = Pipeline(ListSource(records))
    p.window(TumblingWindow("1m"), key="k", step_id="w").agg(agg.count(), agg.sum("v"), agg.max("v"))
    result = p.run()
    frame = pd.DataFrame(records)
    numbers = [as_number(v) for _, _, v in rows]
    unreadable = pd.Series([n is not None and math.isnan(n) for n in numbers])
    frame["n"] = pd.Series([math.nan if n is None else n for n in numbers], dtype="float64")
    dead = result.outputs["w.dead_letter"]
    assert len(dead) == int(unreadable.sum())
    assert dead["reason"].str.startswith("agg.sum('v') needs a number, got").all()
    good = frame[~unreadable].assign(start=lambda f: f["timestamp"].dt.floor("1min"))
    want = (
        good.groupby(["k", "start"])
        .agg(count=("k", "size"), sum_v=("n", "sum"), max_v=("n", lambda s: s.max(skipna=True)))
        .reset_index()
    )
    got = result.outputs["w"].rename(columns={"window_start": "start"})
    merged = want.merge(got, on=["k", "start"], suffixes=("", "_got"), how="outer")
    assert len(merged) == len(want) == len(got)
    assert (merged["count"] == merged["count_got"]).all()
    for col in ("sum_v", "max_v"):
        a, b = merged[col].to_numpy(), merged[f"{col}_got"].to_numpy()
        assert all(
            (x != x and y != y) or x == y or math.isclose(x, y, rel_tol=1e-12) for x, y in zip(a, b)
        ), (
            col,
            merged,
        )


@pytest.mark.parametrize("window", [TumblingWindow("1m"), SlidingWindow("1m", "20s"), SessionWindow("10s")])
def test_every_window_kind_sets_unreadable_rows_aside(window: Any) -> None:
    amounts = ["1", HUGE, -HUGE, 2.0, None, "x", math.inf, 5, {"a": 1}, [2], True]
    records = [{"k": "a", "v": a, "timestamp": T0 + pd.Timedelta(seconds=i)} for i, a in enumerate(amounts)]
    p = Pipeline(ListSource(records))
    p.window(window, key="k", step_id="w").agg(
        agg.count(),
        agg.sum("v"),
        agg.mean("v"),
        agg.min("v"),
        agg.quantile("v", 0.0),
        agg.quantile("v", 1.0),
        agg.count_distinct("v"),
    )
    result = p.run()
    dead = result.outputs["w.dead_letter"]
    assert sorted(map(repr, dead["v"])) == sorted(["'x'", "{'a': 1}", "[2]"])
    assert dead["step_id"].eq("w").all()
    totals = result.outputs["w"]
    if isinstance(window, TumblingWindow):
        [row] = totals.to_dict("records")
        assert row["count"] == len(amounts) - 3 and row["sum_v"] != row["sum_v"]  # inf + -inf
        assert row["min_v"] == -math.inf and (row["p0_v"], row["p100_v"]) == (-math.inf, math.inf)


def test_typed_columns_pass_through_untouched() -> None:
    batch = pd.DataFrame({"v": [1.0, 2.0], "s": ["a", "b"]})
    read, dead = split_unfit_values(batch, [agg.sum("v"), agg.count_distinct("s")], "w")
    assert read is batch and dead is None


@pytest.mark.parametrize("window", [TumblingWindow("1m"), SlidingWindow("1m", "20s"), SessionWindow("10s")])
def test_rows_whose_key_cannot_be_a_key_are_set_aside(window: Any) -> None:
    keys = ["a", {"id": 1}, "b", [1], ("t", 1), "a"]
    records = [{"k": k, "v": 1.0, "timestamp": T0 + pd.Timedelta(seconds=i)} for i, k in enumerate(keys)]
    p = Pipeline(ListSource(records))
    p.window(window, key="k", step_id="w").agg(agg.count())
    result = p.run()
    dead = result.outputs["w.dead_letter"]
    assert sorted(map(repr, dead["k"])) == ["[1]", "{'id': 1}"]
    assert dead["reason"].str.endswith("which cannot be a key").all()
    if isinstance(window, TumblingWindow):
        assert result.outputs["w"]["count"].sum() == 4


@pytest.mark.parametrize("window", [TumblingWindow("1m"), SessionWindow("1m")])
def test_first_and_last_keep_a_json_columns_values_beside_a_sum_of_it(window: Any) -> None:
    # the window replaced the column by its numbers for every aggregator: last of a 401-digit int was
    # inf, and the late output showed floats, when a sum read the same column
    huge = 10**400
    lines = [
        b'{"timestamp": "2024-01-01T00:00:0%dZ", "x": %s}' % (i, v)
        for i, v in enumerate([b"2", b"3", b"%d" % huge])
    ]
    lines.append(b'{"timestamp": "2023-01-01T00:00:00Z", "x": "7"}')  # late
    p = Pipeline(ListSource(lines, batch_size=2))
    windows = p.parse({"timestamp": "timestamp", "x": "json"}).window(window, delay="0s")
    windows.agg(agg.sum("x"), agg.first("x"), agg.last("x"))
    result = p.run()
    got = result["window"]
    assert got["sum_x"].tolist() == [math.inf]
    assert got["first_x"].tolist() == [2] and got["last_x"].tolist() == [huge]
    assert result["window.late"]["x"].tolist() == ["7"]


def test_a_sum_that_overflows_or_adds_opposite_infinities_warns_of_nothing() -> None:
    import warnings

    t = pd.Timestamp("2024-01-01", tz="UTC")
    rows = [{"timestamp": t, "v": 1e308}, {"timestamp": t, "v": 1e308}]
    rows += [
        {"timestamp": t + pd.Timedelta("1m"), "v": math.inf},
        {"timestamp": t + pd.Timedelta("1m"), "v": -math.inf},
    ]
    p = Pipeline(ListSource(rows))
    p.stream.window(TumblingWindow("1m")).agg(agg.sum("v"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # np.add.at warned once per batch
        got = p.run()["window"]["sum_v"].tolist()
    assert got[0] == math.inf and math.isnan(got[1])
