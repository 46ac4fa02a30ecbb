"""Tester findings on windows, unions and maps: nullable columns, failing custom aggregators, a union of
streams with different columns, a map that breaks its declared columns, an unhashable watermark partition."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlab import Pipeline, ReplaySource, SessionWindow, SlidingWindow, TumblingWindow, agg
from streamlab.aggregators import Aggregator
from streamlab.errors import PipelineConfigError
from streamlab.testing import ListSource

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def _at(*seconds: int) -> list[pd.Timestamp]:
    return [T0 + pd.Timedelta(seconds=s) for s in seconds]


# -- nullable columns (finding 44) ----------------------------------------------------------------

NULLABLE = {
    "boolean": st.one_of(st.none(), st.booleans()),
    "Int64": st.one_of(st.none(), st.integers(-1000, 1000)),
    "Float64": st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)),
}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    dtype=st.sampled_from(sorted(NULLABLE)),
    data=st.data(),
    batch_size=st.sampled_from([1, 2, None]),
)
def test_aggregators_over_nullable_columns_match_pandas(
    dtype: str, data: st.DataObject, batch_size: int | None
) -> None:
    values = data.draw(st.lists(NULLABLE[dtype], min_size=1, max_size=8))
    col = pd.array([pd.NA if v is None else v for v in values], dtype=dtype)
    df = pd.DataFrame({"k": "a", "x": col, "timestamp": T0})
    aggs = [agg.sum("x"), agg.mean("x"), agg.min("x"), agg.max("x"), agg.count("x")]
    p = Pipeline(ListSource(df, batch_size=batch_size))
    p.stream.window(TumblingWindow("1m"), key="k").agg(*aggs)
    out = p.run()["window"]
    present = df["x"].dropna().astype(float)
    expected = {
        "sum_x": float(present.sum()),
        "mean_x": float(present.mean()) if len(present) else math.nan,
        "min_x": float(present.min()) if len(present) else math.nan,
        "max_x": float(present.max()) if len(present) else math.nan,
        "count_x": len(present),
    }
    got = out.iloc[0]
    for name, want in expected.items():
        if isinstance(want, float) and math.isnan(want):
            assert math.isnan(float(got[name])), name
        else:
            assert float(got[name]) == pytest.approx(want), name


def test_sum_of_a_nullable_boolean_column_replayed_from_parquet(tmp_path: object) -> None:
    path = f"{tmp_path}/flags.parquet"
    flags = pd.array([True, pd.NA, False], dtype="boolean")
    pd.DataFrame({"k": ["a"] * 3, "is_fraud": flags, "timestamp": [T0] * 3}).to_parquet(path)
    p = Pipeline(ReplaySource(path))
    p.stream.window(TumblingWindow("1m"), key="k").agg(agg.sum("is_fraud"), agg.mean("is_fraud"))
    out = p.run()["window"]
    assert out[["sum_is_fraud", "mean_is_fraud"]].values.tolist() == [[1.0, 0.5]]


# -- custom aggregators (findings 39, 40) --------------------------------------------------------


class RangeAggregator(Aggregator):
    def __init__(self, column: str) -> None:
        super().__init__(column, name=f"range_{column}")

    def initial(self) -> tuple[float, float]:
        return (math.inf, -math.inf)

    def add(self, state: tuple[float, float], values: np.ndarray) -> tuple[float, float]:
        return (min(state[0], values.min()), max(state[1], values.max()))

    def merge(self, a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
        return (min(a[0], b[0]), max(a[1], b[1]))

    def result(self, state: tuple[float, float]) -> float:
        return float(state[1] - state[0])


class Boom(RangeAggregator):
    def add(self, state: tuple[float, float], values: np.ndarray) -> tuple[float, float]:
        if (values > 40).any():
            raise ValueError("boom")
        return super().add(state, values)


EVENTS = pd.DataFrame(
    {"k": ["a", "a", "b", "a", "b"], "x": [1.0, 5.0, 3.0, 50.0, 7.0], "timestamp": _at(0, 5, 7, 8, 9)}
)


@pytest.mark.parametrize(
    "window", [TumblingWindow("1m"), SlidingWindow("1m", every="30s"), SessionWindow("10s")]
)
@pytest.mark.parametrize("batch_size", [1, 2, None])
def test_a_failing_custom_aggregator_sends_its_rows_to_dead_letter(
    window: object, batch_size: int | None
) -> None:
    p = Pipeline(ListSource(EVENTS, batch_size=batch_size))
    p.stream.window(window, key="k").agg(Boom("x"), agg.count(), agg.sum("x"))  # type: ignore[arg-type]
    r = p.run()
    dead = r["window.dead_letter"]
    assert dead["reason"].tolist() == ["Boom('x').add raised ValueError: boom"]
    assert dead["x"].tolist() == [50.0]
    out = r["window"].drop_duplicates("k").sort_values("k")
    # the failing row is in no aggregator: the others go on as if it had not come
    assert out[["k", "range_x", "count", "sum_x"]].values.tolist() == [
        ["a", 4.0, 2, 6.0],
        ["b", 4.0, 2, 10.0],
    ]


def test_a_custom_aggregator_is_refused_by_to_yaml(tmp_path: object) -> None:
    path = f"{tmp_path}/e.parquet"
    EVENTS.to_parquet(path)
    p = Pipeline(ReplaySource(path))
    p.stream.window(TumblingWindow("1m"), key="k").agg(RangeAggregator("x"), agg.quantile("x", 0.5))
    with pytest.raises(PipelineConfigError, match=r"step 'window'.*RangeAggregator.*Fix: use the built-in"):
        p.to_yaml()
    q = Pipeline(ReplaySource(path))
    q.stream.window(TumblingWindow("1m"), key="k").agg(agg.quantile("x", 0.5), agg.count(), agg.last("x"))
    assert Pipeline.from_yaml(q.to_yaml()).to_yaml() == q.to_yaml()


# -- union of streams with different columns (finding 31) -----------------------------------------


def _two_streams(batch_size: int | None = None) -> tuple[Pipeline, object]:
    p = Pipeline()
    a = p.add_source(
        ListSource(pd.DataFrame({"k": ["x"], "v": [1.0], "timestamp": _at(0)}), batch_size=batch_size)
    )
    b = p.add_source(
        ListSource(
            pd.DataFrame({"w": [2.0, 0.5], "k": ["x", "y"], "timestamp": _at(1, 2)}), batch_size=batch_size
        )
    )
    return p, a.union(b)


def test_union_aligns_every_batch_to_its_declared_columns() -> None:
    p, u = _two_streams()
    assert u.columns == ("k", "v", "timestamp", "w")  # type: ignore[attr-defined]
    u.window(TumblingWindow("1m"), key="k").agg(agg.sum("w"), agg.sum("v"))  # type: ignore[attr-defined]
    u.filter("w > 1")  # type: ignore[attr-defined]
    r = p.run()
    assert len(r["window.dead_letter"]) == 0 and len(r["filter.dead_letter"]) == 0
    out = r["window"].sort_values("k")
    assert out[["k", "sum_w", "sum_v"]].values.tolist() == [["x", 2.0, 1.0], ["y", 0.5, 0.0]]
    kept = r["filter"]
    assert list(kept.columns) == ["k", "v", "timestamp", "w"]
    assert kept["k"].tolist() == ["x"] and kept["w"].tolist() == [2.0]


# -- map_many's declared columns (finding 32) -----------------------------------------------------


def test_map_many_result_without_a_declared_column_goes_to_dead_letter() -> None:
    df = pd.DataFrame({"k": ["x", "y"], "v": [1.0, 2.0], "timestamp": _at(0, 0)})
    p = Pipeline(ListSource(df))
    m = p.stream.map_many(lambda d: d.rename(columns={"v": "value"}), columns=["k", "v", "timestamp"])
    m.window(TumblingWindow("1m"), key="k").agg(agg.sum("v"))
    r = p.run()
    dead = r["map.dead_letter"]
    assert len(dead) == 2
    assert (
        "missing ['v']" in dead["reason"].iloc[0]
        and "declared ['k', 'v', 'timestamp']" in dead["reason"].iloc[0]
    )
    assert len(r["window"]) == 0


@pytest.mark.parametrize("batch_size", [1, None])
def test_map_one_row_without_a_declared_column_goes_alone(batch_size: int | None) -> None:
    df = pd.DataFrame({"k": ["x", "y"], "v": [1.0, 2.0], "timestamp": _at(0, 0)})
    p = Pipeline(ListSource(df, batch_size=batch_size))

    def drop_v_of_y(row: dict) -> dict:
        return {k: v for k, v in row.items() if not (k == "v" and row["k"] == "y")}

    m = p.stream.map_one(drop_v_of_y, columns=["k", "v", "timestamp"])
    m.window(TumblingWindow("1m"), key="k").agg(agg.sum("v"))
    r = p.run()
    dead = r["map.dead_letter"]
    assert dead["k"].tolist() == ["y"] and "missing ['v']" in dead["reason"].iloc[0]
    assert r["window"][["k", "sum_v"]].values.tolist() == [["x", 1.0]]


# -- watermark_by (finding 24) --------------------------------------------------------------------


@pytest.mark.parametrize(
    "window", [TumblingWindow("1m"), SlidingWindow("1m", every="30s"), SessionWindow("10s")]
)
@pytest.mark.parametrize("batch_size", [1, None])
def test_an_unhashable_watermark_partition_goes_to_dead_letter(
    window: object, batch_size: int | None
) -> None:
    parts = pd.Series([0, None, 1, {"a": 1}, 0], dtype=object)
    ev = pd.DataFrame({"part": parts, "v": 1, "timestamp": _at(0, 70, 130, 200, 10)})
    p = Pipeline(ListSource(ev, batch_size=batch_size))
    p.stream.window(window, watermark_by="part").agg(agg.count())  # type: ignore[arg-type]
    r = p.run()
    dead = r["window.dead_letter"]
    assert dead["reason"].tolist() == [
        "watermark_by column 'part' holds dict {'a': 1}, which cannot be a partition"
    ]
    assert int(r["window"]["count"].sum()) >= 4


# -- join_interval without event time (finding 37: documented, not changed) -------------------------


def test_a_join_row_without_event_time_is_reported_in_late_with_its_side() -> None:
    p = Pipeline()
    a = p.add_source(ListSource(pd.DataFrame({"k": ["x", "x"], "id": [1, 2], "timestamp": [T0, pd.NaT]})))
    b = p.add_source(ListSource(pd.DataFrame({"k": ["x"], "rid": [9], "timestamp": [T0]})))
    j = a.join_interval(b, "k", lower="-5s", upper="5s")
    r = p.run()
    assert p.outputs_of(j.step_id) == ("out", "late")  # as docs/semantics.md says: no dead letter
    late = r["join.late"]
    assert late[["join_side", "id"]].values.tolist() == [["left", 2]] and late["timestamp"].isna().all()
    assert r["join"]["id"].tolist() == [1]
