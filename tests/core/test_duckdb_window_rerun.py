"""``DuckDBSink(key="auto")`` upserts window results by the window columns and key, also after steps that
keep their rows (tester4 finding 43): written after a ``filter``, ``with_columns`` or ``select`` they were
appended, so every re-run doubled them. After a step that may reshape rows they are appended, and the
sink says so when it is attached."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamlab import DuckDBSink, Pipeline, Stream, TumblingWindow, agg
from streamlab.pipeline import window_rows
from streamlab.testing import ListSource

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def frame(keys: list[str | None], seconds: list[int]) -> pd.DataFrame:
    return pd.DataFrame({"k": keys, "timestamp": [T0 + pd.Timedelta(seconds=s) for s in seconds]})


ROW_PRESERVING: dict[str, Callable[[Stream], Stream]] = {
    "results": lambda w: w,
    "filter": lambda w: w.filter("count >= 1"),
    "with_columns": lambda w: w.with_columns(double="count * 2"),
    "select": lambda w: w.select("k", "window_start", "window_end", "count"),
    "select_renaming_the_key": lambda w: w.select("window_start", "window_end", "count", user="k"),
    "key_by_then_filter": lambda w: w.key_by("k").filter("count > 0"),
    "chain": lambda w: (
        w.filter("count >= 1").with_columns(x="count + 1").select("k", "window_start", "window_end", "x")
    ),
}


def run_into(
    path: Path, df: pd.DataFrame, after: Callable[[Stream], Stream], key: str | list[str] | None = "auto"
) -> None:
    p = Pipeline(ListSource(df))
    w = p.stream.window(TumblingWindow("1m"), key="k").agg(agg.count())
    after(w).to(DuckDBSink(path, "t", key=key))
    p.run()


def table(path: Path) -> pd.DataFrame:
    sink = DuckDBSink(path, "t")
    try:
        if "t" not in set(sink.query("SELECT table_name FROM information_schema.tables")["table_name"]):
            return pd.DataFrame()  # every window filtered out: no run created the table
        rows = sink.read()
        return rows.sort_values(list(rows.columns), na_position="first").reset_index(drop=True)
    finally:
        sink.close()


@pytest.mark.parametrize("case", list(ROW_PRESERVING))
def test_rerunning_window_results_after_row_preserving_steps_doubles_nothing(
    tmp_path: Path, case: str
) -> None:
    df = frame(["a", "a", "b", None], [0, 1, 2, 3])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "appends" warning: these rows are upserted
        for _ in range(3):
            run_into(tmp_path / "out.duckdb", df, ROW_PRESERVING[case])
    once = tmp_path / "once.duckdb"
    run_into(once, df, ROW_PRESERVING[case])
    assert len(table(once)) == 3  # a, b and the key None
    pd.testing.assert_frame_equal(table(tmp_path / "out.duckdb"), table(once))


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    keys=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=12),
    threshold=st.integers(0, 4),
    runs=st.integers(2, 3),
)
def test_reruns_of_filtered_window_results_equal_one_run(
    tmp_path_factory: pytest.TempPathFactory, keys: list[str], threshold: int, runs: int
) -> None:
    df = frame(list(keys), [7 * i for i in range(len(keys))])  # several windows per key

    def after(w: Stream) -> Stream:
        return w.filter(f"count >= {threshold}").with_columns(double="count * 2")

    d = tmp_path_factory.mktemp("rerun")
    for _ in range(runs):
        run_into(d / "many.duckdb", df, after)
    run_into(d / "one.duckdb", df, after)
    pd.testing.assert_frame_equal(table(d / "many.duckdb"), table(d / "one.duckdb"))


RESHAPING: dict[str, tuple[Callable[[Stream], Stream], str]] = {
    "map_one": (lambda w: w.map_one(lambda r: r), "map"),
    "with_columns_assigning_the_key": (lambda w: w.with_columns(k="'x'"), "with_columns"),
    "select_dropping_window_end": (lambda w: w.select("k", "window_start", "count"), "select"),
    "select_renaming_window_start": (
        lambda w: w.select("k", "window_end", "count", start="window_start"),
        "select",
    ),
    "union": (lambda w: w.union(w.filter("count > 1")), "union"),
}


@pytest.mark.parametrize("case", list(RESHAPING))
def test_window_results_after_a_reshaping_step_are_appended_with_a_warning(tmp_path: Path, case: str) -> None:
    after, step = RESHAPING[case]
    p = Pipeline(ListSource(frame(["a"], [0])))
    w = p.stream.window(TumblingWindow("1m"), key="k").agg(agg.count())
    stream = after(w)
    keys, reshaped_by = window_rows(p, stream.ref)
    assert keys is None and reshaped_by == step
    with pytest.warns(UserWarning, match=rf"appends these window results .*step {step!r}.*key=\[\.\.\.\]"):
        stream.to(DuckDBSink(tmp_path / "out.duckdb", "t"))
    with warnings.catch_warnings():  # an explicit key (or key=None) says what the user wants
        warnings.simplefilter("error")
        stream.to(DuckDBSink(tmp_path / "out.duckdb", "t2", key=None))
        stream.to(DuckDBSink(tmp_path / "out.duckdb", "t3", key=["k"]))


def test_rows_that_are_no_longer_window_results_get_no_warning(tmp_path: Path) -> None:
    p = Pipeline(ListSource(frame(["a"], [0])))
    w = p.stream.window(TumblingWindow("1m"), key="k").agg(agg.count())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w.select("k", "count").to(DuckDBSink(tmp_path / "out.duckdb", "t"))


def test_side_outputs_of_a_window_are_not_window_results() -> None:
    p = Pipeline(ListSource(frame(["a"], [0])))
    w = p.stream.window(TumblingWindow("1m"), key="k").agg(agg.count())
    assert window_rows(p, w.ref) == (("k",), None)
    assert window_rows(p, w.late.ref) == (None, None)
    assert window_rows(p, w.late.filter("k == 'a'").ref) == (None, None)
