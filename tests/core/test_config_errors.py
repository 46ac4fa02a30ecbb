"""Bad configuration fails at construction, naming the step, the problem and the fix."""

from __future__ import annotations

import pandas as pd
import pytest

from streamlab import (
    ListSource,
    Pipeline,
    PipelineConfigError,
    SessionWindow,
    SlidingWindow,
    TumblingWindow,
    agg,
)


def events() -> Pipeline:
    return Pipeline(
        ListSource([{"event_type": "a", "amount": 1.0, "timestamp": pd.Timestamp("2024-01-01", tz="UTC")}])
    )


def test_slide_larger_than_window():
    with pytest.raises(ValueError, match="`every` must not exceed `size`.*TumblingWindow"):
        SlidingWindow("1m", every="5m")


@pytest.mark.parametrize("bad", ["", "5 parsecs", "-1m", 0])
def test_bad_durations_say_how_to_write_them(bad):
    with pytest.raises(ValueError, match="TumblingWindow"):
        TumblingWindow(bad)


def test_unknown_key_column_names_step_and_suggests():
    with pytest.raises(PipelineConfigError) as e:
        events().window(TumblingWindow("1m"), key="evnt_type")
    msg = str(e.value)
    assert (
        "step 'window' (window)" in msg
        and "unknown column 'evnt_type'" in msg
        and "did you mean 'event_type'" in msg
    )


def test_unknown_column_in_filter_expression():
    with pytest.raises(
        PipelineConfigError, match=r"step 'filter' \(filter\): unknown column 'amout'.*'amount'"
    ):
        events().filter("amout > 5")


def test_unknown_aggregated_column():
    with pytest.raises(PipelineConfigError, match="unknown column 'price' in aggregator"):
        events().window(TumblingWindow("1m"), key="event_type").agg(agg.sum("price"))


def test_colliding_aggregator_names():
    with pytest.raises(PipelineConfigError, match="collide.*name="):
        events().window(TumblingWindow("1m")).agg(agg.count(), agg.count())


def test_no_aggregators():
    with pytest.raises(PipelineConfigError, match=r"agg\.count\(\)"):
        events().window(TumblingWindow("1m")).agg()


def test_duplicate_step_id():
    p = events()
    p.filter("amount > 0", step_id="big")
    with pytest.raises(PipelineConfigError, match="already used"):
        p.filter("amount > 1", step_id="big")


def test_parse_schema_without_time_field():
    p = Pipeline(ListSource([b"{}"]))
    with pytest.raises(PipelineConfigError, match="event-time field 'timestamp' is not in the schema"):
        p.parse({"event_id": "string"})


def test_parse_unknown_type():
    p = Pipeline(ListSource([b"{}"]))
    with pytest.raises(PipelineConfigError, match="unknown type 'float'.*float64"):
        p.parse({"timestamp": "timestamp", "x": "float"})


def test_early_results_not_for_sessions():
    with pytest.raises(PipelineConfigError, match="early"):
        events().window(SessionWindow("5m"), early=True)


def test_join_bounds_in_wrong_order():
    p = events()
    with pytest.raises(PipelineConfigError, match="swap them"):
        p.stream.join_interval(p.stream, "event_type", lower="5m", upper="-5m")


def test_sink_that_is_not_a_sink():
    with pytest.raises(PipelineConfigError, match="is not a streamlab Sink"):
        events().to(print)  # type: ignore[arg-type]


def test_dedup_ttl_needs_time():
    p = Pipeline(ListSource([{"event_id": "x"}]))
    with pytest.raises(PipelineConfigError, match="ttl=None"):
        p.dedup("event_id")
