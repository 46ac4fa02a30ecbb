"""Evaluation metrics against scikit-learn and hand-computed cases; delayed-label joins."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from streamlab.detectors.evaluation import (
    DelayedLabelEvaluation,
    classification_metrics,
    detection_latency,
    roc_auc,
    threshold_sweep,
)

T0 = pd.Timestamp("2024-01-01", tz="UTC")

scores_and_labels = st.integers(2, 60).flatmap(
    lambda n: st.tuples(
        st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9, 1.0]), min_size=n, max_size=n),
        st.lists(st.booleans(), min_size=n, max_size=n),
    )
)


@settings(max_examples=100, deadline=None)
@given(scores_and_labels)
def test_roc_auc_matches_sklearn_with_ties(data: tuple[list[float], list[bool]]) -> None:
    scores, labels = data
    got = roc_auc(scores, labels)
    if len(set(labels)) < 2:
        assert np.isnan(got)
    else:
        assert got == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(
    scores_and_labels,
    st.lists(st.sampled_from([-1.0, 0.0, 0.1, 0.3, 0.5, 0.95, 2.0]), min_size=1, max_size=5),
)
def test_threshold_sweep_and_metrics_match_sklearn(
    data: tuple[list[float], list[bool]], thresholds: list[float]
) -> None:
    scores, labels = data
    sweep = threshold_sweep(scores, labels, thresholds)
    assert sweep["threshold"].tolist() == thresholds
    for row in sweep.itertuples():
        pred = np.asarray(scores) > row.threshold
        expected = {
            "precision": precision_score(labels, pred, zero_division=np.nan),
            "recall": recall_score(labels, pred, zero_division=np.nan),
            "f1": f1_score(labels, pred, zero_division=np.nan),
        }
        direct = classification_metrics(pred, labels)
        for name, value in expected.items():
            for got in (getattr(row, name), direct[name]):
                if np.isnan(value):
                    assert np.isnan(got)
                else:
                    assert got == pytest.approx(value)
        assert row.tp + row.fp + row.fn + row.tn == len(scores)


def test_detection_latency_hand_computed() -> None:
    t = [T0 + pd.Timedelta(minutes=m) for m in (0, 2, 4, 3, 30, 31, 60)]
    keys = ["a", "a", "a", "b", "a", "a", "b"]
    labels = [1, 1, 1, 1, 1, 1, 0]
    alerts = [0, 0, 1, 1, 0, 0, 1]
    out = detection_latency(t, labels, alerts, keys=keys, burst_gap="10m")
    assert out["key"].tolist() == ["a", "a", "b"]
    assert out["n_events"].tolist() == [3, 2, 1]
    assert out["detected"].tolist() == [True, False, True]
    assert out["latency_s"].iloc[0] == 240.0
    assert np.isnan(out["latency_s"].iloc[1])
    assert out["latency_s"].iloc[2] == 0.0


def scored_events(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    label = rng.random(n) < 0.1
    score = np.where(label, rng.normal(0.7, 0.2, n), rng.normal(0.3, 0.2, n))
    return pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "user_id": rng.choice(["a", "b", "c"], n),
            "timestamp": T0 + pd.to_timedelta(np.arange(n) * 30, unit="s"),
            "score": score,
            "is_anomaly": score > 0.5,
            "label": label,
        }
    )


def test_delayed_labels_join_in_any_order_and_match_sklearn_per_window() -> None:
    df = scored_events()
    ev = DelayedLabelEvaluation(window="1h", key="user_id").build()
    labels = df[["event_id", "label"]].sample(frac=1.0, random_state=1)
    # some labels arrive before their events, most after, and the last 50 never arrive
    ev.process(labels.iloc[:100], port=1)
    for a in range(0, len(df), 100):
        ev.process(df.drop(columns="label").iloc[a : a + 100], port=0)
    metrics = ev.process(labels.iloc[100:350], port=1)["metrics"]
    report = ev.report()
    assert report["n"] == 350
    assert report["pending"] == 50
    assert report["unmatched_labels"] == 0
    labelled = df[df["event_id"].isin(labels["event_id"].iloc[:350])]
    assert report["roc_auc"] == pytest.approx(roc_auc_score(labelled["label"], labelled["score"]))
    assert report["f1"] == pytest.approx(f1_score(labelled["label"], labelled["is_anomaly"]))
    windows = labelled["timestamp"].dt.floor("1h")
    assert metrics["window_start"].tolist() == sorted(windows.unique())
    for row in metrics.itertuples():
        part = labelled[windows == row.window_start]
        assert row.n == len(part)
        assert row.precision == pytest.approx(
            precision_score(part["label"], part["is_anomaly"], zero_division=np.nan)
        )
        assert row.recall == pytest.approx(
            recall_score(part["label"], part["is_anomaly"], zero_division=np.nan)
        )
        assert row.roc_auc == pytest.approx(roc_auc_score(part["label"], part["score"]))
    assert metrics["bursts"].sum() == report["bursts"]


def test_label_before_event_and_snapshot_restore() -> None:
    ev = DelayedLabelEvaluation().build()
    ev.process(pd.DataFrame({"event_id": ["x"], "label": [True]}), port=1)
    assert ev.report()["unmatched_labels"] == 1
    snap = pickle.loads(pickle.dumps(ev.snapshot()))
    batch = pd.DataFrame({"event_id": ["x"], "timestamp": [T0], "score": [0.9], "is_anomaly": [True]})
    ev.process(batch, port=0)
    restored = DelayedLabelEvaluation().build()
    restored.restore(snap)
    restored.process(batch, port=0)
    assert pd.Series(restored.report()).equals(pd.Series(ev.report()))  # NaN-aware comparison
    assert ev.report()["tp"] == 1 and ev.report()["mean_latency_s"] == 0.0


def test_bad_port_and_config() -> None:
    with pytest.raises(ValueError, match="port must be 0"):
        DelayedLabelEvaluation().build().process(pd.DataFrame(), port=2)
    with pytest.raises(ValueError, match="window"):
        DelayedLabelEvaluation(window="0s")


@pytest.mark.parametrize("missing", [None, float("nan"), pd.NA])
def test_a_missing_label_leaves_its_event_out_of_every_metric(missing):
    # NaN was a positive (np.asarray(...).astype(bool)) and None a negative: a label that had not
    # arrived yet (a left merge's NaN) changed AUC from 1.0 to 0.667 and added a false negative
    scores = [0.5, 0.1, 0.8, 0.9]
    labels = pd.Series([0, missing, 1, 1], dtype=object)
    assert roc_auc(scores, labels) == roc_auc([0.5, 0.8, 0.9], [0, 1, 1]) == 1.0
    got = classification_metrics([False, False, True, True], [0, missing, 1, 0])
    assert (got["tp"], got["fp"], got["fn"], got["tn"]) == (1, 1, 0, 1)
    pd.testing.assert_frame_equal(
        threshold_sweep(scores, labels, [0.3, 0.85]), threshold_sweep([0.5, 0.8, 0.9], [0, 1, 1], [0.3, 0.85])
    )


def test_events_without_an_id_or_a_time_are_skipped_and_counted() -> None:
    # an id-less event joined the label of another id-less event (None and NaN merge as equal), and an
    # event without a time made a window starting in 2262 (NaT's int64 floored to the window)
    ev = DelayedLabelEvaluation(window="1h").build()
    events = pd.DataFrame(
        {
            "event_id": ["a", "b", None, float("nan")],
            "score": [0.9, 0.1, 0.5, 0.4],
            "is_anomaly": [True, False, False, True],
            "timestamp": [T0, None, T0, T0],
        }
    )
    ev.process(events, port=0)
    metrics = ev.process(pd.DataFrame({"event_id": ["a", "b", None], "label": [1, 0, 1]}), port=1)["metrics"]
    assert metrics["window_start"].tolist() == [T0]
    report = ev.report()
    assert (report["n"], report["tp"], report["fn"], report["fp"]) == (1, 1, 0, 0)
    assert report["skipped_events"] == 3 and report["unmatched_labels"] == 1  # b's label: b has no time
    restored = DelayedLabelEvaluation(window="1h").build()
    restored.restore(pickle.loads(pickle.dumps(ev.snapshot())))
    assert restored.report()["skipped_events"] == 3


def test_a_missing_score_is_above_no_threshold_and_ranks_lowest() -> None:
    # the sweep counted a NaN score as above every threshold (np.sort puts NaN last), and roc_auc gave
    # NaN its own rank: 0.5 where every positive outscores every negative
    nan = float("nan")
    sweep = threshold_sweep([nan, 0.1, 0.9], [1, 0, 1], [0.5, -np.inf]).to_dict("records")
    assert (sweep[0]["tp"], sweep[0]["fn"], sweep[0]["tn"]) == (1, 1, 1)
    want = classification_metrics(np.array([nan, 0.1, 0.9]) > -np.inf, [1, 0, 1])
    assert (sweep[1]["tp"], sweep[1]["fn"], sweep[1]["fp"]) == (want["tp"], want["fn"], want["fp"])
    assert roc_auc([0.1, nan, 0.9, 0.2], [0, 0, 1, 1]) == 1.0
    assert roc_auc([nan, 0.1], [1, 0]) == 0.0


def test_burst_keys_are_told_apart_as_the_keyed_steps_do() -> None:
    # consecutive NaN keys each started a burst (NaN != NaN), and 1, 1.0 and True were one card
    t = [T0 + pd.Timedelta(seconds=i) for i in range(4)]
    out = detection_latency(t, [1, 1, 1, 1], [0, 1, 1, 0], keys=["a", None, float("nan"), "a"])
    assert out["n_events"].tolist() == [2, 2] and out["latency_s"].tolist()[1] == 0.0
    out = detection_latency(t, [1, 1, 1, 1], [0, 1, 1, 0], keys=[1, "1", 1.0, True])
    assert sorted(map(repr, out["key"])) == ["'1'", "1", "1.0", "True"]
    assert out["n_events"].tolist() == [1, 1, 1, 1]


def test_a_missing_alert_flag_is_no_alert() -> None:
    # NaN was read as True (an alert) and pd.NA raised TypeError, in classification_metrics and
    # detection_latency; DelayedLabelEvaluator already read a missing flag as no alert
    m = classification_metrics([1.0, float("nan")], [1, 0])
    assert (m["tp"], m["fp"], m["tn"]) == (1, 0, 1)
    flags = pd.Series([True, pd.NA, False], dtype="boolean")
    assert classification_metrics(flags, [1, 1, 0]) == classification_metrics([True, False, False], [1, 1, 0])
    t = [T0, T0 + pd.Timedelta(seconds=1)]
    out = detection_latency(t, [1, 1], pd.Series([pd.NA, True], dtype="boolean"))
    assert out["latency_s"].tolist() == [1.0]


# --- labels and flags as text -------------------------------------------------------------------------

_TEXT = {True: ["1", "true", "True", " TRUE ", "yes", "Yes\n"], False: ["0", "false", "False", " no", "NO"]}


@settings(max_examples=60, deadline=None)
@given(
    scores_and_labels.flatmap(
        lambda d: st.tuples(
            st.just(d),
            st.tuples(*[st.sampled_from(_TEXT[b]) for b in d[1]]),
            st.tuples(*[st.sampled_from(_TEXT[s > 0.3] + [s > 0.3]) for s in d[0]]),
        )
    )
)
def test_text_labels_and_flags_are_the_booleans_they_name_in_every_function(
    data: tuple[tuple[list[float], list[bool]], tuple[str, ...], tuple[object, ...]],
) -> None:
    """Labels were read by Python's truth: the texts "0" and "false" were positives (all of them here)."""
    (scores, labels), text, flag_text = data
    flags = [s > 0.3 for s in scores]
    text_labels = list(text)
    got = roc_auc(scores, text_labels)
    want = roc_auc(scores, labels)
    assert (np.isnan(got) and np.isnan(want)) or got == want
    pd.testing.assert_frame_equal(
        threshold_sweep(scores, text_labels, [0.2, 0.6]), threshold_sweep(scores, labels, [0.2, 0.6])
    )
    assert pd.Series(classification_metrics(list(flag_text), text_labels)).equals(
        pd.Series(classification_metrics(flags, labels))
    )
    times = pd.date_range(T0, periods=len(scores), freq="1min")
    pd.testing.assert_frame_equal(
        detection_latency(times, text_labels, list(flag_text)), detection_latency(times, labels, flags)
    )
    # the operator reads them the same way, from a column of text (object or pandas' string dtype)
    for dtype in (object, "string"):
        ev = DelayedLabelEvaluation(window="1h").build()
        ids = [f"e{i}" for i in range(len(scores))]
        ev.process(
            pd.DataFrame(
                {
                    "event_id": ids,
                    "score": scores,
                    "is_anomaly": pd.Series(flag_text, dtype=object),
                    "timestamp": times,
                }
            ),
            port=0,
        )
        ev.process(pd.DataFrame({"event_id": ids, "label": pd.Series(text_labels, dtype=dtype)}), port=1)
        report = ev.report()
        want_m = classification_metrics(flags, labels)
        assert {k: report[k] for k in ("tp", "fp", "fn", "tn")} == {
            k: want_m[k] for k in ("tp", "fp", "fn", "tn")
        }
        assert report["skipped_labels"] == 0 and report["skipped_events"] == 0


@pytest.mark.parametrize(
    "call",
    [
        lambda labels: roc_auc([0.1, 0.9, 0.5], labels),
        lambda labels: threshold_sweep([0.1, 0.9, 0.5], labels, [0.5]),
        lambda labels: classification_metrics([True, False, True], labels),
        lambda labels: detection_latency(pd.date_range(T0, periods=3, freq="1min"), labels, [1, 0, 1]),
        lambda labels: classification_metrics(labels, [True, False, True]),  # as alert flags
    ],
)
def test_text_naming_no_boolean_is_refused_by_every_function(call: object) -> None:
    with pytest.raises(ValueError, match=r"text that names no boolean: 'fraud'.*'1', '0', 'true'.*Fix:"):
        call(["fraud", "0", "1"])  # type: ignore[operator]


def test_the_evaluator_skips_and_counts_labels_and_flags_naming_no_boolean(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A stream's bad records are data: the operator leaves them out, counts and logs them (a function
    called on a list refuses them)."""
    ev = DelayedLabelEvaluation(window="1h").build()
    events = pd.DataFrame(
        {
            "event_id": ["a", "b", "c", "d"],
            "score": [0.9, 0.1, 0.5, 0.7],
            "is_anomaly": ["true", "false", "maybe", "0"],
            "timestamp": [T0] * 4,
        }
    )
    with caplog.at_level("WARNING", logger="streamlab"):
        ev.process(events, port=0)
        ev.process(
            pd.DataFrame({"event_id": ["a", "b", "c", "d"], "label": ["1", "0", "0", "fraud"]}), port=1
        )
    report = ev.report()
    assert (report["n"], report["tp"], report["tn"], report["fp"], report["fn"]) == (2, 1, 1, 0, 0)
    assert report["skipped_events"] == 1 and report["skipped_labels"] == 1  # c's flag, d's label
    assert report["pending"] == 1  # d: its label was left out
    assert "'maybe'" in caplog.text and "'fraud'" in caplog.text and "Fix:" in caplog.text
    restored = DelayedLabelEvaluation(window="1h").build()
    restored.restore(pickle.loads(pickle.dumps(ev.snapshot())))
    assert restored.report()["skipped_labels"] == 1


def test_a_report_without_labelled_windows_has_the_types_of_one_with_them() -> None:
    # it was a frame of objects: concatenated with reports that had rows, pandas 2 warned (a notebook's
    # cell showed it) and a sink would have typed its table from objects
    ev = DelayedLabelEvaluation(window="1h").build()
    empty = ev.window_report()
    t = pd.to_datetime(["2024-01-01 00:10", "2024-01-01 00:20"], utc=True)
    frame = pd.DataFrame(
        {"event_id": ["a", "b"], "score": [0.9, 0.1], "is_anomaly": [True, False], "timestamp": t}
    )
    ev.process(frame, port=0)
    full = ev.process(pd.DataFrame({"event_id": ["a", "b"], "label": [1, 0]}), port=1)["metrics"]
    assert empty.empty and len(full) == 1
    assert list(empty.columns) == list(full.columns) and dict(empty.dtypes) == dict(full.dtypes)
