"""Evaluate detectors against labels that arrive later than the events (chargebacks, analyst review).

Scored events and labels are joined by event id whenever both have arrived; metrics cover the
labelled events only. ``DelayedLabelEvaluation(...).build()`` returns an operator fed with scored
events on port 0 and labels on port 1; its ``metrics`` output is a per-window table to plot live.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from streamlab._floats import float_values
from streamlab._keytable import typed_key_column
from streamlab._time import NAT_NS, Duration, format_duration
from streamlab.detectors._common import check_duration, check_name, event_time_ns, require_columns
from streamlab.operators import Operator, Outputs

log = logging.getLogger("streamlab")

__all__ = [
    "DelayedLabelEvaluation",
    "DelayedLabelEvaluator",
    "classification_metrics",
    "detection_latency",
    "roc_auc",
    "threshold_sweep",
]


#: the texts a label or alert flag may be, read as the booleans they name (case and spaces ignored)
_WORDS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def _read_bools(values: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(value, known, unreadable)`` of labels or alert flags read as booleans, one rule for every
    evaluation function: bools and numbers by their truth (0 is False), the texts ``"1"``, ``"0"``,
    ``"true"``, ``"false"``, ``"yes"``, ``"no"`` (any case, spaces around ignored) as the booleans they
    name, missing values (None, NaN, ``pd.NA``) not known, and any other text unreadable: Python's truth
    of a non-empty text made ``"0"`` and ``"false"`` True.

    Examples
    --------
    >>> y, known, bad = _read_bools([1, None, "0", " False ", "YES", "maybe", 0.0])
    >>> y.tolist(), known.tolist(), bad.tolist()
    ([True, False, False, False, True, False, False], [True, False, True, True, True, False, True], [False, False, False, False, False, True, False])
    """
    values = np.asarray(values)
    if values.dtype == bool:
        return values, np.ones(values.shape, dtype=bool), np.zeros(values.shape, dtype=bool)
    if values.dtype.kind not in "iuf":
        values = values.astype(object)
    known = ~np.asarray(pd.isna(values), dtype=bool).reshape(values.shape)
    y = np.zeros(values.shape, dtype=bool)
    bad = np.zeros(values.shape, dtype=bool)
    if values.dtype == object:
        text = np.fromiter(
            (isinstance(v, (str, bytes)) for v in values.ravel()), dtype=bool, count=values.size
        ).reshape(values.shape)
        if text.any():
            named = [
                _WORDS.get((v.decode("utf-8", "replace") if isinstance(v, bytes) else v).strip().lower())
                for v in values[text].tolist()
            ]
            y[text] = [n is True for n in named]
            bad[text] = [n is None for n in named]
            known &= ~bad
        rest = known & ~text
        y[rest] = values[rest].astype(bool)
    else:
        y[known] = values[known].astype(bool)
    return y, known, bad


def _refuse_unreadable(values: Any, bad: np.ndarray, where: str, what: str) -> None:
    """Raise naming the texts of ``values`` (at ``bad``) that name no boolean, and the fix."""
    if not bad.any():
        return
    shown = list(dict.fromkeys(np.asarray(values, dtype=object)[bad].tolist()))
    raise ValueError(
        f"{where}: {int(bad.sum())} {what} are text that names no boolean: "
        f"{', '.join(repr(v) for v in shown[:5])}{', ...' if len(shown) > 5 else ''}. {what.capitalize()} "
        "are read as booleans: True/False, numbers (0 is False), or the texts '1', '0', 'true', "
        "'false', 'yes', 'no' (any case). Fix: map the others first, e.g. "
        "labels.map({'fraud': True, 'ok': False}), or make them missing (None) to leave their events out"
    )


def _labels(labels: Any, where: str = "labels") -> tuple[np.ndarray, np.ndarray]:
    """Labels as bools, and which are known: a missing label (None, NaN, ``pd.NA``: one that has not
    arrived, as a left merge leaves it) is neither a positive nor a negative. Text is read by
    :func:`_read_bools`; text naming no boolean is refused (``ValueError``).

    Examples
    --------
    >>> y, known = _labels([1, None, float("nan"), 0, True, "false"])
    >>> y.tolist(), known.tolist()
    ([True, False, False, False, True, False], [True, False, False, True, True, True])
    """
    y, known, bad = _read_bools(labels)
    _refuse_unreadable(labels, bad, where, "labels")
    return y, known


def _alerts(alerts: Any, where: str = "alerts") -> np.ndarray:
    """Alert flags as bools; a missing flag (None, NaN, ``pd.NA``) is no alert, as in
    :class:`DelayedLabelEvaluator` (NaN read as True, ``pd.NA`` raised TypeError). Text is read by
    :func:`_read_bools`; text naming no boolean is refused (``ValueError``).

    Examples
    --------
    >>> _alerts([1.0, float("nan"), None, 0, "0", "true"]).tolist()
    [True, False, False, False, False, True]
    """
    y, _, bad = _read_bools(alerts)
    _refuse_unreadable(alerts, bad, where, "alert flags")
    return y


def _as_arrays(scores: Any, labels: Any, where: str) -> tuple[np.ndarray, np.ndarray]:
    """Scores and labels of the labelled events (see :func:`_labels`); a missing (NaN) score is the
    lowest, as no threshold flags it."""
    s = np.asarray(scores, dtype="float64")
    if np.isnan(s).any():  # (it counted as above every threshold in the sweep, and broke the ranks)
        s = np.where(np.isnan(s), -np.inf, s)
    y, known = _labels(labels, where)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"scores and labels must be 1-D and of equal length, got {s.shape} and {y.shape}")
    return (s, y) if known.all() else (s[known], y[known])


def roc_auc(scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray) -> float:
    """Area under the ROC curve (ties count one half); NaN when only one class is present.

    Parameters
    ----------
    scores
        Anomaly scores, higher = more anomalous; a missing (NaN) score ranks below every other.
    labels
        True for positives (fraud); a missing label (None, NaN) leaves its event out; the texts '1', '0', 'true', 'false',
        'yes', 'no' (any case) are the booleans they name, other text is refused (``ValueError``).

    Returns
    -------
    float
        Probability that a random positive scores above a random negative.

    Examples
    --------
    >>> roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    """
    s, y = _as_arrays(scores, labels, "roc_auc")
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = pd.Series(s).rank(method="average").to_numpy()
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def classification_metrics(
    predicted: Sequence[bool] | np.ndarray, labels: Sequence[bool] | np.ndarray
) -> dict[str, float]:
    """Counts, precision, recall and F1 of binary alerts; undefined ratios (0/0) are NaN.

    Parameters
    ----------
    predicted
        True where an alert was raised; a missing flag (None, NaN) is no alert.
    labels
        True for positives; a missing label (None, NaN) leaves its event out; the texts '1', '0', 'true', 'false',
        'yes', 'no' (any case) are the booleans they name, other text is refused (``ValueError``).

    Returns
    -------
    dict
        ``tp``, ``fp``, ``fn``, ``tn``, ``precision``, ``recall``, ``f1``.

    Examples
    --------
    >>> m = classification_metrics([1, 1, 0, 0], [1, 0, 1, 0])
    >>> m["precision"], m["recall"], m["f1"]
    (0.5, 0.5, 0.5)
    """
    p = _alerts(predicted, "classification_metrics")
    y, known = _labels(labels, "classification_metrics")
    if p.shape != y.shape:
        raise ValueError(f"predicted and labels must be of equal length, got {p.shape} and {y.shape}")
    p, y = (p, y) if known.all() else (p[known], y[known])
    tp = int((p & y).sum())
    fp = int((p & ~y).sum())
    fn = int((~p & y).sum())
    tn = int((~p & ~y).sum())
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
        "recall": tp / (tp + fn) if tp + fn else float("nan"),
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan"),
    }


def threshold_sweep(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[bool] | np.ndarray,
    thresholds: Sequence[float] | np.ndarray,
) -> pd.DataFrame:
    """Precision, recall and F1 of ``score > threshold`` for each threshold (vectorized).

    Parameters
    ----------
    scores
        Anomaly scores; a missing (NaN) score is above no threshold.
    labels
        True for positives; a missing label (None, NaN) leaves its event out; the texts '1', '0', 'true', 'false',
        'yes', 'no' (any case) are the booleans they name, other text is refused (``ValueError``).
    thresholds
        Thresholds to try.

    Returns
    -------
    pandas.DataFrame
        One row per threshold: ``threshold``, ``tp``, ``fp``, ``fn``, ``tn``, ``precision``,
        ``recall``, ``f1`` (NaN where undefined).

    Examples
    --------
    >>> threshold_sweep([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1], [0.3, 0.5])[["threshold", "precision", "recall"]]
       threshold  precision  recall
    0        0.3   0.666667     1.0
    1        0.5   1.000000     0.5
    """
    s, y = _as_arrays(scores, labels, "threshold_sweep")
    thr = np.asarray(thresholds, dtype="float64")
    pos, neg = np.sort(s[y]), np.sort(s[~y])
    tp = len(pos) - np.searchsorted(pos, thr, side="right")
    fp = len(neg) - np.searchsorted(neg, thr, side="right")
    fn = len(pos) - tp
    tn = len(neg) - fp
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1), np.nan)
        recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), np.nan)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), np.nan)
    return pd.DataFrame(
        {
            "threshold": thr,
            "tp": tp,
            "fp": fp,
            "fn": fn,
            "tn": tn,
            "precision": precision,
            "recall": recall,
            "f1": f1,
        }
    )


def detection_latency(
    times: Sequence[Any] | pd.Series | pd.Index | np.ndarray,
    labels: Sequence[bool] | np.ndarray,
    alerts: Sequence[bool] | np.ndarray,
    keys: Sequence[Any] | np.ndarray | None = None,
    burst_gap: Duration = "10m",
) -> pd.DataFrame:
    """Fraud bursts and how long each took to be alerted on, in event time.

    A burst is a run of positive events of one key, each within ``burst_gap`` of the previous one.
    Its latency is the time from its first positive event to its first alerted positive event;
    NaN when no positive event of the burst raised an alert (a missed burst).

    Parameters
    ----------
    times
        Event times.
    labels
        True for positive (fraudulent) events; the texts '1', '0', 'true', 'false',
        'yes', 'no' (any case) are the booleans they name, other text is refused (``ValueError``).
    alerts
        True where the detector alerted.
    keys
        Entity of each event (``None``: one entity); told apart as the keyed steps do (``1``, ``1.0``
        and ``True`` are three entities), and every missing key (None, NaN) is one.
    burst_gap
        Largest gap between positives of one burst.

    Returns
    -------
    pandas.DataFrame
        One row per burst: ``key``, ``start``, ``n_events``, ``detected``, ``latency_s``.

    Examples
    --------
    >>> t = pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:01", "2024-01-01 00:02", "2024-01-01 05:00"], utc=True)
    >>> detection_latency(t, [1, 1, 1, 1], [0, 0, 1, 0])[["n_events", "detected", "latency_s"]].values.tolist()
    [[3, True, 120.0], [1, False, nan]]
    """
    gap = check_duration(burst_gap, where="detection_latency", what="burst_gap")
    t = event_time_ns(pd.DataFrame({"t": times}), "t", where="detection_latency")
    y = _labels(labels, "detection_latency")[0]  # a missing label is no positive
    a = _alerts(alerts, "detection_latency")
    k = np.zeros(len(t), dtype=np.int64) if keys is None else np.asarray(keys, dtype=object)
    # keys told apart as the keyed steps do (1, 1.0 and True are three; every missing key is one)
    codes = pd.factorize(typed_key_column(pd.Series(k, dtype=object)))[0]
    sel = np.flatnonzero(y)
    cols = {"key": [], "start": [], "n_events": [], "detected": [], "latency_s": []}  # type: dict[str, list[Any]]
    if len(sel):
        df = pd.DataFrame({"k": k[sel], "c": codes[sel], "t": t[sel], "a": a[sel]})
        df = df.sort_values(["k", "c", "t"], kind="stable").reset_index(drop=True)
        new_key = df["c"].ne(df["c"].shift())
        new_burst = new_key | (df["t"].diff() > gap)
        df["burst"] = new_burst.cumsum()
        for _, g in df.groupby("burst", sort=True):
            start = int(g["t"].iloc[0])
            hit = g.loc[g["a"], "t"]
            cols["key"].append(g["k"].iloc[0] if keys is not None else None)
            cols["start"].append(pd.Timestamp(start, tz="UTC"))
            cols["n_events"].append(len(g))
            cols["detected"].append(bool(len(hit)))
            cols["latency_s"].append((int(hit.min()) - start) / 1e9 if len(hit) else float("nan"))
    out = pd.DataFrame(cols)
    out["start"] = pd.to_datetime(out["start"], utc=True)
    out["n_events"] = out["n_events"].astype(np.int64)
    out["detected"] = out["detected"].astype(bool)
    out["latency_s"] = out["latency_s"].astype("float64")
    return out


@dataclass(frozen=True)
class DelayedLabelEvaluation:
    """Configuration of a delayed-label evaluation (see :class:`DelayedLabelEvaluator`).

    Parameters
    ----------
    id_column
        Event id, present in both scored events and labels.
    score
        Score column of scored events.
    flag
        Alert column of scored events (e.g. ``is_anomaly``).
    label
        Label column of label batches (true/1 = fraud).
    time
        Event-time column of scored events.
    key
        Entity column for burst latency (``None``: one entity).
    window
        Width of the tumbling event-time windows of the per-window report.
    burst_gap
        Largest gap between frauds of one burst (latency).

    Examples
    --------
    >>> DelayedLabelEvaluation(window="1h").describe()["window"]
    '1h'
    """

    id_column: str = "event_id"
    score: str = "score"
    flag: str = "is_anomaly"
    label: str = "label"
    time: str = "timestamp"
    key: str | None = None
    window: Duration = "1h"
    burst_gap: Duration = "10m"

    kind: ClassVar[str] = "delayed_label_evaluation"
    output_names: ClassVar[tuple[str, ...]] = ("metrics",)

    def __post_init__(self) -> None:
        where = "DelayedLabelEvaluation"
        for what in ("id_column", "score", "flag", "label", "time"):
            check_name(getattr(self, what), where=where, what=what)
        if self.key is not None:
            check_name(self.key, where=where, what="key")
        check_duration(self.window, where=where, what="window")
        check_duration(self.burst_gap, where=where, what="burst_gap")

    def build(self) -> DelayedLabelEvaluator:
        """Return the runtime state."""
        return DelayedLabelEvaluator(self)

    def describe(self) -> dict[str, Any]:
        """Parameters as plain data."""
        return {
            "kind": self.kind,
            "id_column": self.id_column,
            "score": self.score,
            "flag": self.flag,
            "label": self.label,
            "time": self.time,
            "key": self.key,
            "window": format_duration(check_duration(self.window, where="", what="")),
            "burst_gap": format_duration(check_duration(self.burst_gap, where="", what="")),
        }


def _warn_unreadable(values: np.ndarray, column: str, what: str) -> None:
    shown = list(dict.fromkeys(values.tolist()))
    log.warning(
        "DelayedLabelEvaluator: %d of the %s have text in column %r that names no boolean (%s): left out "
        "and counted in report()['skipped_%s']. Fix: map them to True/False in a step before, or use "
        "'1', '0', 'true', 'false', 'yes', 'no'",
        len(values),
        what,
        column,
        ", ".join(repr(v) for v in shown[:5]),
        "labels" if what == "labels" else "events",
    )


class DelayedLabelEvaluator(Operator):
    """Joins scored events (port 0) with labels (port 1) by event id, in whichever order they arrive.

    ``process`` returns ``{"metrics": window_report()}``. ``report()`` gives overall metrics.
    Events without a label yet are counted as ``pending`` and left out of every metric; scored events
    without an id or an event time (nothing to join them by, no window), or whose alert flag is text
    naming no boolean, are counted as ``skipped_events`` and left out, as are labels without an id;
    labels that are text naming no boolean (a label is read as :func:`classification_metrics` reads
    it: ``"0"`` and ``"false"`` are False) are counted as ``skipped_labels``, logged, and left out. Memory
    grows with the number of events kept (one small row each).

    Examples
    --------
    >>> ev = DelayedLabelEvaluation(window="1h").build()
    >>> t = pd.to_datetime(["2024-01-01 00:10", "2024-01-01 00:20", "2024-01-01 01:05"], utc=True)
    >>> _ = ev.process(pd.DataFrame({"event_id": ["a", "b", "c"], "score": [0.9, 0.1, 0.8],
    ...                              "is_anomaly": [True, False, True], "timestamp": t}), port=0)
    >>> ev.report()["pending"]
    3
    >>> metrics = ev.process(pd.DataFrame({"event_id": ["a", "b"], "label": [1, 0]}), port=1)["metrics"]
    >>> metrics[["window_start", "n", "precision", "recall"]].values.tolist()
    [[Timestamp('2024-01-01 00:00:00+0000', tz='UTC'), 2, 1.0, 1.0]]
    """

    output_names = ("metrics",)

    def __init__(self, config: DelayedLabelEvaluation) -> None:
        self.config = config
        self.window_ns = check_duration(config.window, where="", what="")
        self._preds: list[pd.DataFrame] = []
        self._labels: list[pd.DataFrame] = []
        #: scored events without an id or an event time, or with a flag that names no boolean: they can
        #: be neither joined nor windowed nor judged
        self.skipped = 0
        #: labels that are text naming no boolean ("fraud", "2"): left out, not guessed
        self.skipped_labels = 0

    def add_predictions(self, batch: pd.DataFrame) -> None:
        """Add scored events (id, time, score, flag and optional key)."""
        c = self.config
        cols = [c.id_column, c.time, c.score, c.flag] + ([c.key] if c.key else [])
        require_columns(batch, cols, where="DelayedLabelEvaluator (scored events)")
        ids = batch[c.id_column].to_numpy(dtype=object)
        t = event_time_ns(batch, c.time, where="DelayedLabelEvaluator")
        # a missing id would join a label of another id-less event; a missing time has no window
        flag, _, bad_flag = _read_bools(batch[c.flag].to_numpy())  # a missing flag is no alert
        ok = ~np.asarray(pd.isna(ids), dtype=bool) & (t != NAT_NS) & ~bad_flag
        if bad_flag.any():
            _warn_unreadable(batch[c.flag].to_numpy(dtype=object)[bad_flag], c.flag, "scored events")
        part = pd.DataFrame(
            {
                "id": ids,
                "t": t,
                "score": float_values(batch[c.score]),
                "flag": flag,
                "key": batch[c.key].to_numpy(dtype=object) if c.key else None,
            }
        )
        if not ok.all():
            self.skipped += int((~ok).sum())
            part = part[ok]
        self._preds.append(part)

    def add_labels(self, batch: pd.DataFrame) -> None:
        """Add labels (id and label); a later label for the same id replaces an earlier one."""
        c = self.config
        require_columns(batch, [c.id_column, c.label], where="DelayedLabelEvaluator (labels)")
        lab = batch[c.label].to_numpy()
        ids = batch[c.id_column].to_numpy(dtype=object)
        y, known, bad = _read_bools(lab)
        ok = known & ~np.asarray(pd.isna(ids), dtype=bool)  # (no id: nothing to join)
        if bad.any():
            self.skipped_labels += int(bad.sum())
            _warn_unreadable(np.asarray(lab, dtype=object)[bad], c.label, "labels")
        self._labels.append(pd.DataFrame({"id": ids[ok], "label": y[ok]}))

    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        if port == 0:
            self.add_predictions(batch)
        elif port == 1:
            self.add_labels(batch)
        else:
            raise ValueError(
                f"DelayedLabelEvaluator: port must be 0 (scored events) or 1 (labels), got {port}"
            )
        return {"metrics": self.window_report()}

    def _joined(self) -> tuple[pd.DataFrame, int, int]:
        # (empty parts left out: pandas 2 warns that it will stop ignoring their types in a concat)
        kept_preds = [f for f in self._preds if len(f)]
        kept_labels = [f for f in self._labels if len(f)]
        preds = (
            pd.concat(kept_preds, ignore_index=True)
            if kept_preds
            else pd.DataFrame(columns=["id", "t", "score", "flag", "key"])
        )
        labels = (
            pd.concat(kept_labels, ignore_index=True)
            if kept_labels
            else pd.DataFrame(columns=["id", "label"])
        )
        # compact: keep the last prediction and label per id, so repeated reports stay cheap
        preds = preds.drop_duplicates("id", keep="last")
        labels = labels.drop_duplicates("id", keep="last")
        self._preds, self._labels = [preds], [labels]
        joined = preds.merge(labels, on="id", how="inner")
        pending = len(preds) - len(joined)
        unmatched = len(labels) - len(joined)
        return joined.sort_values("t", kind="stable").reset_index(drop=True), pending, unmatched

    def _bursts(self, df: pd.DataFrame) -> pd.DataFrame:
        return detection_latency(
            pd.to_datetime(df["t"].to_numpy(dtype=np.int64), utc=True),
            df["label"].to_numpy(dtype=bool),
            df["flag"].to_numpy(dtype=bool),
            None if self.config.key is None else df["key"].to_numpy(dtype=object),
            self.config.burst_gap,
        )

    @staticmethod
    def _metrics(df: pd.DataFrame, bursts: pd.DataFrame) -> dict[str, Any]:
        m: dict[str, Any] = {"n": len(df), "positives": int(df["label"].sum()) if len(df) else 0}
        m.update(classification_metrics(df["flag"].to_numpy(dtype=bool), df["label"].to_numpy(dtype=bool)))
        m["roc_auc"] = roc_auc(df["score"].to_numpy(dtype="float64"), df["label"].to_numpy(dtype=bool))
        m["bursts"] = len(bursts)
        m["missed_bursts"] = int((~bursts["detected"]).sum())
        m["mean_latency_s"] = float(bursts["latency_s"].mean()) if bursts["detected"].any() else float("nan")
        return m

    def report(self) -> dict[str, Any]:
        """Overall metrics over every labelled event, plus ``pending`` (events without label),
        ``unmatched_labels`` (labels whose event has not arrived), ``skipped_events`` (scored events
        without an id or an event time, or whose flag is text naming no boolean, left out) and
        ``skipped_labels`` (labels that are text naming no boolean, left out)."""
        joined, pending, unmatched = self._joined()
        out = self._metrics(joined, self._bursts(joined))
        out["pending"] = pending
        out["unmatched_labels"] = unmatched
        out["skipped_events"] = self.skipped
        out["skipped_labels"] = self.skipped_labels
        return out

    def window_report(self) -> pd.DataFrame:
        """One row per tumbling event-time window holding labelled events: ``window_start`` and the
        metrics of :meth:`report` (a burst counts in the window of its first event)."""
        joined, _, _ = self._joined()
        rows = []
        if len(joined):
            bursts = self._bursts(joined)
            burst_starts = bursts["start"].array.asi8 // self.window_ns * self.window_ns
            starts = joined["t"].to_numpy(dtype=np.int64) // self.window_ns * self.window_ns
            for start in np.unique(starts).tolist():
                metrics = self._metrics(joined[starts == start], bursts[burst_starts == start])
                rows.append({"window_start": pd.Timestamp(start, tz="UTC"), **metrics})
        cols = [
            "window_start",
            "n",
            "positives",
            "tp",
            "fp",
            "fn",
            "tn",
            "precision",
            "recall",
            "f1",
            "roc_auc",
        ]
        cols += ["bursts", "missed_bursts", "mean_latency_s"]
        if rows:
            return pd.DataFrame(rows, columns=cols)
        # no labelled window yet: the same columns and types as a report with rows (objects, they made
        # pandas 2 warn when reports were concatenated, and a sink's table take the wrong types)
        floats = ("precision", "recall", "f1", "roc_auc", "mean_latency_s")
        empty = {c: np.zeros(0, dtype=np.float64 if c in floats else np.int64) for c in cols[1:]}
        return pd.DataFrame({"window_start": pd.array([], dtype="datetime64[ns, UTC]"), **empty})

    def snapshot(self) -> Any:
        self._joined()  # compacts the stored frames
        return {
            "preds": [p.copy() for p in self._preds],
            "labels": [lab.copy() for lab in self._labels],
            "skipped": self.skipped,
            "skipped_labels": self.skipped_labels,
        }

    def restore(self, state: Any) -> None:
        self._preds = [p.copy() for p in state["preds"]]
        self._labels = [lab.copy() for lab in state["labels"]]
        self.skipped = int(state.get("skipped", 0))  # (a snapshot taken before the count existed)
        self.skipped_labels = int(state.get("skipped_labels", 0))

    def open_state(self) -> dict[str, Any]:
        r = self.report()
        return {"labelled": r["n"], "pending": r["pending"], "unmatched_labels": r["unmatched_labels"]}
