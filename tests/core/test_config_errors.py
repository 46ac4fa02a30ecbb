"""Bad configuration fails at construction, naming the step, the problem and the fix."""

from __future__ import annotations

import pandas as pd
import pytest

from streamlab import (
    ListSource,
    Pipeline,
    PipelineConfigError,
    ReplaySource,
    SessionWindow,
    SlidingWindow,
    TumblingWindow,
    agg,
    runtime,
)
from streamlab.errors import ParameterError
from streamlab.runtime import RunOptions


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


# -- errors that teach: types the aggregator can see, did-you-mean, every problem at once -----------


def parsed(schema=None):
    p = Pipeline(ListSource([b"{}"]))
    return p.parse(
        schema
        or {
            "event_id": "string",
            "user_id": "string",
            "kind": "category",
            "amount": "float64",
            "n": "int64",
            "ok": "bool",
            "timestamp": "timestamp",
        }
    )


@pytest.mark.parametrize("make", [agg.sum, agg.mean, agg.min, agg.max, lambda c: agg.quantile(c, 0.9)])
def test_numeric_aggregator_on_a_string_column_fails_at_construction(make):
    stream = parsed().dedup("event_id").filter("amount > 0")
    with pytest.raises(PipelineConfigError) as e:
        stream.window(TumblingWindow("1m"), key="kind").agg(make("user_id"))
    msg = str(e.value)
    assert "'user_id' is string" in msg and "declared by step 'parse'" in msg
    assert f"agg.{make('user_id').kind}('user_id')" in msg
    assert "agg.count_distinct('user_id')" in msg and "float64" in msg


def test_type_is_traced_through_select_and_from_a_dataframe_source():
    s = parsed().select("kind", "timestamp", uid="user_id")
    with pytest.raises(PipelineConfigError, match="'uid' is string"):
        s.window(TumblingWindow("1m")).agg(agg.sum("uid"))
    frame = pd.DataFrame({"name": ["a"], "v": [1.0], "timestamp": pd.to_datetime(["2024-01-01"], utc=True)})
    p = Pipeline(ListSource(frame))
    with pytest.raises(PipelineConfigError, match="'name' is string.*declared by step 'source'"):
        p.window(TumblingWindow("1m")).agg(agg.mean("name"))
    with pytest.raises(PipelineConfigError, match="'timestamp' is timestamp"):
        p.window(TumblingWindow("1m")).agg(agg.sum("timestamp"))


def test_aggregators_that_fit_are_accepted():
    s = parsed()
    w = s.window(TumblingWindow("1m"), key="kind").agg(
        agg.sum("amount"),
        agg.mean("n"),
        agg.sum("ok"),
        agg.max("amount"),
        agg.count_distinct("user_id"),
        agg.first("user_id"),
        agg.count("user_id"),
    )
    assert "sum_amount" in w.columns
    # an unknown type (after a user function) is never an error
    m = s.map_many(lambda b: b, columns=["user_id", "timestamp"])
    assert m.window(TumblingWindow("1m")).agg(agg.sum("user_id")).columns is not None


def test_parse_types_get_did_you_mean_and_all_are_reported_at_once():
    p = Pipeline(ListSource([b"{}"]))
    with pytest.raises(PipelineConfigError) as e:
        p.parse({"event_id": "str", "timestamp": "datetime", "amount": {"type": "flaot", "path": "p.amount"}})
    msg = str(e.value)
    assert "3 schema fields" in msg and "'amount' has unknown type 'flaot'" in msg
    for wrong, right in (("str", "string"), ("datetime", "timestamp"), ("flaot", "float64")):
        assert f"{wrong!r} (did you mean {right!r}?)" in msg
    assert "Fix: use 'string' for 'event_id'" in msg


@pytest.mark.parametrize(
    "path, says, meant",
    [
        ("properties..amount", "two dots in a row", "properties.amount"),
        (".properties.amount", "a leading dot", "properties.amount"),
        ("properties.amount.", "a trailing dot", "properties.amount"),
        ("", "names no key", "amount"),
    ],
)
def test_a_nested_path_with_an_empty_key_is_refused_with_the_path_meant(path, says, meant):
    """Read as written, the empty key gave silent all-null columns ('properties..amount') or sent every
    record to dead letter with a reason naming the wrong segment ('properties.amount.')."""
    p = Pipeline(ListSource([b"{}"]))
    with pytest.raises(PipelineConfigError) as e:
        p.parse({"timestamp": "timestamp", "amount": {"type": "float64", "path": path}}, step_id="orders")
    msg = str(e.value)
    assert msg.startswith("step 'orders' (parse): field 'amount': path ") and says in msg, msg
    assert f"Fix: a path is dot-separated names: {meant!r}" in msg and "list of keys" in msg, msg
    assert "the types are" not in msg  # the type is fine


def test_a_key_holding_a_dot_is_read_by_a_list_path():
    rec = b'{"timestamp": "2024-01-01T00:00:00Z", "p": {"user.id": "u1", "": 2}}'
    p = Pipeline(ListSource([rec]))
    schema = {"uid": {"type": "string", "path": ["p", "user.id"]}, "e": {"type": "int64", "path": ["p", ""]}}
    p.parse({"timestamp": "timestamp", **schema})
    out = p.run()["parse"]
    assert out[["uid", "e"]].values.tolist() == [["u1", 2]]


def test_misspelled_aggregators_and_datasets_get_did_you_mean():
    with pytest.raises(AttributeError, match="did you mean 'sum'"):
        agg.summ("amount")  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="did you mean 'mean'"):
        agg.avg("amount")  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="did you mean 'count_distinct'"):
        agg.from_spec({"kind": "count_distinc", "column": "x"})
    from streamlab.datasets import dataset_path

    with pytest.raises(ValueError, match="did you mean 'clickstream'"):
        dataset_path("clikstream")


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"kind": "sum"}, "missing a required argument: 'column'"),
        ({"kind": "quantile", "column": "x"}, "missing a required argument: 'q'"),
        ({"kind": "mean", "column": "x", "colour": "red"}, "unexpected keyword argument 'colour'"),
        ({"column": "x"}, "has no 'kind'"),
    ],
)
def test_an_aggregator_spec_missing_a_key_says_which_and_what_the_kind_takes(spec, says):
    """Was Python's TypeError ("sum() missing 1 required positional argument") or a KeyError."""
    with pytest.raises(ParameterError) as e:
        agg.from_spec(spec)
    assert says in str(e.value) and "Fix:" in str(e.value)
    if "kind" in spec:
        assert "column" in e.value.fix


def test_misspelled_output_name_gets_did_you_mean():
    from streamlab.detectors import DriftDetector

    s = Pipeline(ListSource([{"score": 1.0, "timestamp": 0}])).apply(DriftDetector(column="score"))
    with pytest.raises(PipelineConfigError, match="did you mean 'drift'"):
        s.output("drfit")  # type: ignore[attr-defined]


def test_negative_dedup_ttl():
    with pytest.raises(PipelineConfigError, match=r"ttl='-1h' is not positive.*ttl='1h'"):
        events().dedup("event_type", ttl="-1h")


def test_a_list_sink_read_before_its_pipeline_ran_says_so():
    from streamlab import ListSink

    sink = ListSink()
    events().to(sink)
    with pytest.warns(UserWarning, match=r"not run.*p\.run\(\)"):
        assert sink.frame().empty


def test_every_fix_says_what_to_do():
    """Fix texts in PipelineConfigError calls are actions, not 'fix the entry'."""
    import ast
    from pathlib import Path

    import streamlab

    vague = []
    root = Path(streamlab.__file__).parent
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "PipelineConfigError":
                if len(node.args) < 4:
                    continue
                fix = node.args[3]
                text = fix.value if isinstance(fix, ast.Constant) else None
                if isinstance(text, str) and (
                    len(text.split()) < 2
                    or text.lower().startswith(("fix ", "check the config", "correct it"))
                ):
                    vague.append(f"{path.name}:{node.lineno}: {text!r}")
    assert not vague, vague


def test_misspelled_collected_output_gets_did_you_mean():
    p = Pipeline(ListSource([b"not json", b'{"timestamp": "2024-01-01T00:00:00Z"}']))
    p.parse({"timestamp": "timestamp"})
    result = p.run()
    with pytest.raises(KeyError, match="did you mean 'parse.dead_letter'"):
        result["parse.dead_leter"]


@pytest.mark.parametrize(
    "options",
    [
        {"max_events": -5},
        {"max_events": 0},
        {"duration": "-5s"},
        {"batch_size": 0},
        {"batch_size": -1},
        {"batch_size": 1.5},
        {"batch_size": True},
        {"commit_every": "-1s"},
        {"idle_wait": -1},
    ],
)
def test_run_options_that_cannot_work_fail_before_the_run(options):
    # batch_size=0 or -1 used to spin forever waiting for data; 1.5 failed mid-run inside pandas
    for go in (lambda: events().run(**options), lambda: runtime.run(events(), RunOptions(**options))):
        with pytest.raises(PipelineConfigError, match="not positive|positive number|seconds >= 0|negative"):
            go()


@pytest.mark.parametrize(
    "source", [ListSource, lambda events, batch_size: ReplaySource(events, batch_size=batch_size)]
)
@pytest.mark.parametrize("size", [0, -3, 2.5])
def test_a_source_batch_size_that_cannot_work_fails_at_construction(source, size):
    with pytest.raises(ValueError, match="batch_size must be a positive number of events"):
        source(pd.DataFrame({"x": [1]}), batch_size=size)


@pytest.mark.parametrize(
    ("expr", "problem", "fix"),
    [
        ("len(event_type)", "calls len()", "event_type.str.len()"),
        ("str(amount)", "calls str()", "amount.astype(str)"),
        ("event_type.upper() == 'A'", "reads 'upper', which a column does not have", "event_type.str.upper("),
        ("event_type.str.uper() == 'A'", "the .str accessor does not have", "x.str.upper()"),
    ],
)
def test_an_expression_calling_what_pandas_cannot_evaluate_fails_at_construction(expr, problem, fix):
    # these were accepted, then every row went to dead letter ('"len" is not a supported function')
    for build in (lambda p: p.filter(expr), lambda p: p.with_columns(r=expr)):
        with pytest.raises(PipelineConfigError) as e:
            build(events())
        msg = str(e.value)
        assert repr(expr) in msg and problem in msg and fix in msg and "map_many(fn)" in msg, msg


@pytest.mark.parametrize(
    "expr",
    [
        "amount - amount.mean()",
        "amount > amount.quantile(0.9)",
        "amount.isna().sum() > 0",
        "(amount * 2).shift() > 1",
        "event_type.str.len().max() > 3",
        "timestamp.dt.hour.mean() > 1",
        "amount.fillna(amount.median())",
        "amount.cumsum()",
        "event_type.duplicated()",
    ],
)
def test_an_expression_reading_other_rows_of_the_batch_fails_at_construction(expr):
    """``x - x.mean()`` gave 0 at batch_size=1, +-0.5 at 2, other values at the default, and the exported
    code (a row at a time) another: an expression's row must not depend on how rows are cut into batches."""
    for build in (lambda p: p.filter(expr), lambda p: p.with_columns(r=expr)):
        with pytest.raises(PipelineConfigError) as e:
            build(events())
        msg = str(e.value)
        assert repr(expr) in msg and "depends on the other rows of the micro-batch" in msg, msg
        assert "window" in msg and "ZScoreFeature" in msg, msg


def test_row_wise_methods_of_accessors_are_not_batch_reads():
    out = events().with_columns(c="event_type.str.count('a')", m="amount.where(amount > 1)")
    assert out.columns is not None and {"c", "m"} <= set(out.columns)


def test_a_rule_or_pattern_expression_calling_what_pandas_cannot_evaluate_fails_at_construction():
    from streamlab.detectors import Pattern, ThresholdRule

    with pytest.raises(
        PipelineConfigError, match=r"step 'rule' .*ThresholdRule expr='len\(event_type\) > 1'"
    ):
        events().apply(ThresholdRule("big", expr="len(event_type) > 1"), step_id="rule")
    with pytest.raises(PipelineConfigError, match=r"Pattern steps\[1\]\.where=.*reads 'lower'"):
        events().apply(
            Pattern("event_type", [("a", "amount > 0"), ("b", "event_type.lower() == 'a'")], within="1m"),
            step_id="pattern",
        )


def test_expressions_with_math_functions_and_column_methods_are_accepted():
    out = (
        events()
        .filter("sqrt(abs(amount)) >= 0 and amount.fillna(0).abs() >= 0 and event_type.isin(['a'])")
        .with_columns(n="event_type.str.len()", t="timestamp.dt.hour", r="arctan2(amount, amount)")
    )
    assert out.columns is not None and {"n", "t", "r"} <= set(out.columns)


def test_a_duckdb_key_the_stream_lacks_fails_at_construction(tmp_path):
    # it passed construction and from_yaml; the run failed at the first write with a ValueError naming no step
    from streamlab import DuckDBSink

    counts = events().window(TumblingWindow("1m"), key="event_type").agg(agg.count())
    with pytest.raises(PipelineConfigError) as e:
        counts.to(DuckDBSink(str(tmp_path / "out.duckdb"), "counts", key=["event_typ", "nope"]), step_id="db")
    msg = str(e.value)
    assert msg.startswith("step 'db' (DuckDBSink): DuckDBSink('counts')"), msg
    assert "['event_typ', 'nope']" in msg and "'window_start'" in msg and "did you mean ['event_type']" in msg
    for i, key in enumerate(("auto", None, ["event_type", "window_start"], "event_type")):
        counts.to(DuckDBSink(str(tmp_path / "ok.duckdb"), f"counts{i}", key=key))  # one table each


@pytest.mark.parametrize("window", [TumblingWindow("1m"), SessionWindow("1m")])
@pytest.mark.parametrize("dropped", ["timestamp", "k"])
def test_a_column_a_function_dropped_stops_the_window_with_the_fix(window, dropped):
    # a map_many dropping the event-time column failed with a bare KeyError: 'timestamp'
    from streamlab import StepFailedError

    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    p = Pipeline(ListSource([{"timestamp": t0 + pd.Timedelta(seconds=i), "k": "a"} for i in range(3)]))
    p.stream.map_many(lambda df: df.drop(columns=[dropped])).window(window, key="k").agg(agg.count())
    with pytest.raises(
        StepFailedError, match=rf"has no (event-time|key) column '{dropped}'.*Fix: keep '{dropped}'"
    ):
        p.run()


def test_run_options_take_numpy_integers_and_refuse_durations_that_are_not_numbers():
    import numpy as np

    result = events().run(max_events=np.int64(1), batch_size=np.int64(5))  # max_events was refused
    assert result.metrics["events_in"] == 1
    for options in ({"commit_every": float("nan")}, {"duration": float("inf")}):
        with pytest.raises(ValueError, match="is not a duration"):  # was a raw float-to-int error
            events().run(**options)


def test_an_enrich_table_column_the_stream_already_has_is_refused_when_built():
    # pandas' merge renamed both to amount_x / amount_y: every later step naming `amount` then failed
    # at run time (a window stopped the run, a filter dead-lettered every row)
    p = events()
    table = pd.DataFrame({"event_type": ["a"], "amount": [2.0], "label": ["A"]})
    with pytest.raises(PipelineConfigError, match=r"enrich.*'amount' is also a column of the stream") as e:
        p.stream.enrich(table, on="event_type")
    assert "table.rename(columns={'amount': 'amount_table'})" in str(e.value)
    ok = p.stream.enrich(table.rename(columns={"amount": "table_amount"}), on="event_type")
    assert ok.columns == ("event_type", "amount", "timestamp", "table_amount", "label")


def test_an_enrich_clash_on_a_stream_of_unknown_columns_stops_the_run_saying_so():
    from streamlab import ManualClock
    from streamlab.errors import StepFailedError
    from streamlab.io import Source

    class Unknown(ListSource):  # a source that does not declare its columns
        @property
        def columns(self) -> None:
            return None

        @columns.setter
        def columns(self, value: object) -> None:
            pass

    assert issubclass(Unknown, Source)
    p = Pipeline(Unknown([{"k": 1, "v": 1.0}]))
    p.stream.enrich(pd.DataFrame({"k": [1], "v": [2.0]}), on="k")
    with pytest.raises(StepFailedError, match="'v' is also a column of the stream"):
        p.run(clock=ManualClock(0))


@pytest.mark.parametrize(
    ("left", "suffixes", "repeated"),
    [
        ({"k": 1, "v": 1}, ("", ""), "'timestamp', 'v'"),
        ({"k": 1, "v": 1, "v_right": 2}, ("", "_right"), "'v_right'"),
        ({"k": 1, "v": 1}, ("_x", "_x"), "'timestamp_x', 'v_x'"),
    ],
)
def test_join_interval_suffixes_that_repeat_a_column_name_are_refused_when_built(left, suffixes, repeated):
    ts = pd.Timestamp("2024-01-01", tz="UTC")
    p = Pipeline(ListSource([{**left, "timestamp": ts}]))
    right = p.stream.select("k", "v", "timestamp")
    with pytest.raises(PipelineConfigError, match=f"two columns named {repeated}") as e:
        p.stream.join_interval(right, "k", lower="-1m", upper="1m", suffixes=suffixes)
    assert "suffixes=('_left', '_right')" in str(e.value)


def test_a_rule_or_pattern_condition_naming_an_unknown_column_is_refused_when_built():
    from streamlab.detectors import ThresholdRule

    p = Pipeline(ListSource([{"k": 1, "v": 1.0, "event_id": "e", "timestamp": pd.Timestamp(0, tz="UTC")}]))
    with pytest.raises(PipelineConfigError, match=r"threshold_rule.*no column\(s\) \['nope'\]"):
        p.stream.apply(ThresholdRule("r", expr="nope > 1 and v > 0"))
    with pytest.raises(PipelineConfigError, match=r"pattern.*no column\(s\) \['nope'\]"):
        p.stream.pattern("k", [("a", "v > 0"), ("b", "nope > 0")], within="1m")
    # functions and methods are no columns
    p.stream.apply(ThresholdRule("r", expr="abs(v) > 1 and v.abs() > 0"))
    p.stream.pattern("k", [("a", "abs(v) > 0")], within="1m")


def test_detect_and_window_arguments_users_get_wrong_are_refused_or_read_as_meant():
    from streamlab.detectors import GaussianScorerDetector

    p = events()
    with pytest.raises(
        PipelineConfigError,
        match=r"got the class GaussianScorerDetector\. Fix: pass GaussianScorerDetector\(\)",
    ):
        p.stream.detect(GaussianScorerDetector, ["amount"])
    det = p.stream.detect(GaussianScorerDetector(), "amount")  # one column, not its letters
    assert p.steps[det.step_id].config.features == ("amount",)
    with pytest.raises(PipelineConfigError, match="key lists a column twice"):
        p.stream.window(TumblingWindow("1m"), key=["event_type", "event_type"]).agg(agg.count())


def test_a_parse_field_named_as_a_source_metadata_column_is_refused_with_the_renaming():
    # a payload field "partition" replaced Kafka's partition in parsed rows and dead letters, and a
    # window's watermark_by="auto" then kept one watermark per payload value
    source = ListSource(pd.DataFrame({"value": [b"{}"], "topic": ["t"], "partition": [0], "offset": [1]}))
    p = Pipeline(source)
    with pytest.raises(
        PipelineConfigError, match=r"field 'partition' has the name of a column the source gives"
    ) as e:
        p.parse({"partition": "string", "timestamp": "timestamp"})
    assert "{'partition_field': {'type': 'string', 'path': 'partition'}}" in str(e.value)
    parsed = p.parse({"region": {"type": "string", "path": "partition"}, "timestamp": "timestamp"})
    assert parsed.columns == ("region", "timestamp", "topic", "partition", "offset")


@pytest.mark.parametrize(
    "make",
    [
        lambda: TumblingWindow(2**40),  # seconds: it crashed the window step on its first batch
        lambda: TumblingWindow(1e300),  # a bare OverflowError naming nothing
        lambda: SessionWindow("200000d"),
        lambda: (
            events().window(TumblingWindow("1m"), delay=2**40).agg(agg.count())
        ),  # crashed the run's metrics
        lambda: events().window(TumblingWindow("1m"), lateness=-(2**40)).agg(agg.count()),
        lambda: events().dedup("event_type", ttl=1e20),
    ],
)
def test_a_duration_beyond_what_nanosecond_timestamps_hold_fails_at_construction(make):
    with pytest.raises(ValueError, match=r"longer than the 53,375 days .*Fix: use a shorter duration"):
        make()


def test_the_longest_duration_still_runs_and_a_window_plus_lateness_beyond_it_is_refused():
    p = events()
    p.window(TumblingWindow("53375d"), key="event_type", delay="53375d").agg(agg.count())
    out = p.run()["window"]
    assert out["count"].tolist() == [1] and out["window_end"].iloc[0] > out["window_start"].iloc[0]
    with pytest.raises(
        PipelineConfigError, match=r"size plus its lateness \(53376d\) is longer.*Fix: use a shorter"
    ):
        events().window(TumblingWindow("53375d"), lateness="1d").agg(agg.count())


def test_a_parse_field_inside_another_fields_scalar_value_is_refused_when_built():
    # {'a': 'string', 'b': a.x} failed the run with a bare "ValueError: field 'b': path a.x conflicts with
    # another field"; in the other order every record went to dead letter
    for schema in (
        {"a": "string", "b": {"type": "int64", "path": "a.x"}, "timestamp": "timestamp"},
        {"b": {"type": "int64", "path": "a.x"}, "a": "string", "timestamp": "timestamp"},
    ):
        with pytest.raises(
            PipelineConfigError, match=r"field 'a' is a string at 'a', and field 'b' reads 'a.x'"
        ):
            Pipeline(ListSource([b"{}"])).parse(schema)
    # keeping the whole object beside one of its values is fine
    Pipeline(ListSource([b"{}"])).parse(
        {"a": "object", "b": {"type": "int64", "path": "a.x"}, "timestamp": "timestamp"}
    )


def test_a_parse_schema_that_is_not_a_mapping_names_the_step_and_the_fix():
    # a list of field names raised "dictionary update sequence element #0 has length 1; 2 is required"
    with pytest.raises(PipelineConfigError, match=r"step 'parse' .*the schema is list .*Fix: pass a dict"):
        Pipeline(ListSource([b"{}"])).parse(["user_id", "timestamp"])  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "source",
    [
        lambda: ListSource([{"user": "a", "t": "2024-01-01T00:00:00Z"}]),
        lambda: ListSource(pd.DataFrame({"user": ["a"], "t": ["2024-01-01T00:00:00Z"]})),
    ],
)
def test_a_parse_of_events_already_in_columns_says_parse_reads_raw_records(source):
    # the default raw column is missing because the events are already columns: "did you mean 't'?"
    # (the old advice, the closest column name) would have sent the user to parse a timestamp
    p = Pipeline(source())
    with pytest.raises(PipelineConfigError) as e:
        p.parse({"user": "string", "t": "timestamp"}, time="t")
    text = str(e.value)
    assert "step 'parse'" in text and "parse reads raw records" in text and "'user', 't'" in text
    assert "raw=True" in text and "drop the parse" in text
    assert "did you mean" not in text


def test_a_parse_naming_its_own_raw_column_gets_did_you_mean():
    p = Pipeline(ListSource([{"payload": '{"x": 1}'}]))
    with pytest.raises(
        PipelineConfigError, match=r"unknown column 'paylod' in value_column.*did you mean 'payload'"
    ):
        p.parse({"x": "int64"}, value_column="paylod", time=None)


def test_select_takes_a_list_of_names_as_pandas_does_and_refuses_what_is_no_name():
    # select(["a", "b"]) raised TypeError: unhashable type: 'list' from inside the step
    p = Pipeline(ListSource([{"a": 1, "b": 2, "c": 3}]))
    assert p.stream.select(["a", "b"]).columns == ("a", "b")
    assert p.stream.select(("a",), "b", z="c").columns == ("a", "b", "z")
    for bad in (5, {"a"}, ""):
        with pytest.raises(
            PipelineConfigError, match=r"\(select\): .* is not a column name\. Fix: name columns as text"
        ):
            p.stream.select(bad)  # type: ignore[arg-type]
