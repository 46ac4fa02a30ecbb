"""A ``json`` field holding an escaped lone surrogate (``"\\ud800"``, valid JSON with no UTF-8 form) as a
window key or a dedup id: the key is kept as the Python string it is (in the key table's object part, as
no string of its UTF-8 pool equals it), so the pipeline neither fails nor loses the row, whatever the
batch size. It failed every batch with "UnicodeEncodeError: surrogates not allowed"."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.testing import ListSink, ListSource

KEYS = ["\ud800", "\udfff", "a\ud800b", "a", "", "é", 1, None]
T0 = pd.Timestamp("2024-01-01", tz="UTC")


def lines(rows: list[tuple[int, object]]) -> list[bytes]:
    """JSON lines as a producer writes them: lone surrogates escaped (``ensure_ascii``)."""
    return [
        json.dumps({"timestamp": (T0 + pd.Timedelta(seconds=s)).isoformat(), "id": f"e{i}", "j": k}).encode()
        for i, (s, k) in enumerate(rows)
    ]


def key_of(v: object) -> object:
    return ("<missing>",) if v is None else (type(v).__name__, v)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 179), st.sampled_from(KEYS)), min_size=1, max_size=30),
    st.sampled_from([1, 3, 64]),
)
def test_windows_keyed_by_lone_surrogates_count_every_row(rows: list[tuple[int, object]], batch: int) -> None:
    rows = sorted(rows, key=lambda r: r[0])
    p = Pipeline(ListSource(lines(rows), batch_size=batch))
    sink = ListSink()
    p.parse({"timestamp": "timestamp", "j": "json"}).window(TumblingWindow("1m"), key="j").agg(
        agg.count()
    ).to(sink)
    result = p.run()
    got = sink.frame()
    counted = {
        (key_of(None if pd.isna(k) else k), s): int(c)
        for k, s, c in zip(got["j"].tolist(), got["window_start"].tolist(), got["count"].tolist())
    } if len(got) else {}  # fmt: skip
    want: dict[tuple[object, pd.Timestamp], int] = {}
    for s, k in rows:
        start = (T0 + pd.Timedelta(seconds=s)).floor("1min")
        want[(key_of(k), start)] = want.get((key_of(k), start), 0) + 1
    assert counted == want
    assert result.metrics.get("dead_letter", 0) == 0


@pytest.mark.parametrize("batch", [1, 2, 100])
def test_dedup_on_lone_surrogate_ids_keeps_the_first_of_each(batch: int) -> None:
    rows = [
        (0, "\ud800"),
        (1, "a"),
        (2, "\ud800"),
        (3, "\udfff"),
        (4, "a\ud800b"),
        (5, "\udfff"),
        (6, "a\ud800b"),
    ]
    p = Pipeline(ListSource(lines(rows), batch_size=batch))
    sink = ListSink()
    deduped = p.parse({"timestamp": "timestamp", "id": "string", "j": "json"}).dedup("j")
    deduped.to(sink)
    result = p.run()
    assert sink.frame()["id"].tolist() == ["e0", "e1", "e3", "e4"]
    assert result.outputs["dedup.duplicates"]["id"].tolist() == ["e2", "e5", "e6"]


@pytest.mark.parametrize("batch", [1, 2, 100])
def test_aggregators_read_lone_surrogate_values(batch: int) -> None:
    rows = [(0, "\ud800"), (1, None), (2, "a"), (3, "\ud800"), (4, "\udfff")]
    p = Pipeline(ListSource(lines(rows), batch_size=batch))
    sink = ListSink()
    p.parse({"timestamp": "timestamp", "j": "json"}).window(TumblingWindow("1m")).agg(
        agg.count("j"), agg.count_distinct("j"), agg.first("j"), agg.last("j")
    ).to(sink)
    p.run()
    got = sink.frame().drop(columns=["window_start", "window_end"]).to_dict("records")
    assert got == [{"count_j": 4, "count_distinct_j": 3, "first_j": "\ud800", "last_j": "\udfff"}]


@pytest.mark.parametrize("batch", [1, 10])
def test_an_interval_join_on_lone_surrogate_keys_pairs_equal_keys(batch: int) -> None:
    left_rows = [(1, "\ud800"), (2, "a"), (2, "\udfff")]
    right_rows = [(1, "\ud800"), (2, "a"), (2, "\ud800")]
    p = Pipeline(ListSource(lines(left_rows), batch_size=batch))
    left = p.parse({"timestamp": "timestamp", "id": "string", "j": "json"})
    right = p.add_source(ListSource(lines(right_rows), batch_size=batch), step_id="b").parse(
        {"timestamp": "timestamp", "id": "string", "j": "json"}, step_id="parse_b"
    )
    sink = ListSink()
    left.join_interval(right, on="j", lower="-5s", upper="5s").to(sink)
    p.run()
    got = sorted(map(tuple, sink.frame()[["j", "id", "id_right"]].to_numpy().tolist()))
    assert got == [("a", "e1", "e1"), ("\ud800", "e0", "e0"), ("\ud800", "e0", "e2")]


@pytest.mark.parametrize("batch", [1, 2, 10])
def test_per_key_features_key_and_count_lone_surrogates(batch: int) -> None:
    from streamlab.detectors import DistinctCountFeature, TimeSinceLastFeature, VelocityFeature

    rows = [(1, "\ud800", "\udfff"), (2, "a", "b"), (3, "\ud800", "\ud800"), (4, "\ud800", "\udfff")]
    data = [
        json.dumps({"timestamp": (T0 + pd.Timedelta(seconds=s)).isoformat(), "j": k, "c": c}).encode()
        for s, k, c in rows
    ]
    p = Pipeline(ListSource(data, batch_size=batch))
    sink = ListSink()
    (
        p.parse({"timestamp": "timestamp", "j": "json", "c": "json"})
        .apply(VelocityFeature("j", window="1m"))
        .apply(TimeSinceLastFeature("j"))
        .apply(DistinctCountFeature("j", "c", window="1m"))
        .to(sink)
    )
    p.run()
    got = sink.frame()
    assert got["count_1m"].tolist() == [1, 1, 2, 3]
    assert got["seconds_since_last"].fillna(-1).tolist() == [-1, -1, 2.0, 1.0]
    assert got["distinct_c_1m"].tolist() == [1, 1, 2, 2]


@pytest.mark.parametrize("batch", [1, 2, 10])
def test_a_model_per_lone_surrogate_key_scores_as_with_plain_keys(batch: int) -> None:
    from streamlab.detectors import GaussianScorerDetector

    keys = ["\ud800", "a", "\ud800", "\udfff", "a", "\ud800", "\udfff", "\ud800"]
    plain = dict(zip(["\ud800", "\udfff", "a"], ["s1", "s2", "a"]))

    def scores(ks: list[str]) -> tuple[list[str], list[float]]:
        data = [
            json.dumps(
                {"timestamp": (T0 + pd.Timedelta(seconds=s)).isoformat(), "j": k, "x": float(s % 3)}
            ).encode()
            for s, k in enumerate(ks)
        ]
        p = Pipeline(ListSource(data, batch_size=batch))
        sink = ListSink()
        p.parse({"timestamp": "timestamp", "j": "json", "x": "float64"}).detect(
            GaussianScorerDetector(), ["x"], key="j"
        ).to(sink)
        p.run()
        got = sink.frame()
        return got["j"].tolist(), got["score"].tolist()

    got_keys, got_scores = scores(keys)
    want_keys, want_scores = scores([plain[k] for k in keys])
    assert got_keys == keys and want_keys == [plain[k] for k in keys]
    assert got_scores == want_scores
