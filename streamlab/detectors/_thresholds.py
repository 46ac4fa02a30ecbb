"""Thresholds as separate filters: they turn a ``score`` column into an ``is_anomaly`` column."""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from river import stats

from streamlab import _step_codecs as codec
from streamlab._detector_record import unkeyable_reason
from streamlab._floats import float_values
from streamlab._keytable import typed_key_column, unhashable_rows
from streamlab._step_kinds import param, step_kind
from streamlab.detectors._common import (
    PickledStateOperator,
    StepConfig,
    check_name,
    check_positive_int,
    dead_letter,
    require_columns,
)
from streamlab.operators import Outputs

__all__ = [
    "AdaptiveThresholdFilter",
    "FixedThresholdFilter",
    "QuantileThresholdFilter",
    "ThresholdFilter",
    "ThresholdOperator",
]


class ThresholdOperator(PickledStateOperator):
    """Runtime state of a threshold filter.

    ``classify_one(score, key)`` decides one event and then updates the state with its score (the
    decision never sees the score it judges). ``process(batch)`` does the same for a batch, in row
    order, and returns the batch with an ``is_anomaly`` column. A score is anomalous when it is
    strictly above the threshold; NaN scores are never anomalous.
    """

    def __init__(self, score: str, key: str | None) -> None:
        self.score_column = score
        self.key = key

    def classify_one(self, score: float, key: Hashable = None) -> bool:
        """Decide whether ``score`` is anomalous, then learn from it."""
        raise NotImplementedError

    def classify_many(self, scores: np.ndarray, keys: np.ndarray | None = None) -> np.ndarray:
        """``classify_one`` over a batch of scores (and keys), in order; returns a bool array."""
        if keys is None:
            return np.fromiter((self.classify_one(s) for s in scores.tolist()), dtype=bool, count=len(scores))
        return np.fromiter(
            (self.classify_one(s, k) for s, k in zip(scores.tolist(), keys.tolist())),
            dtype=bool,
            count=len(scores),
        )

    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        where = type(self).__name__
        cols = [self.score_column] + ([self.key] if self.key else [])
        require_columns(batch, cols, where=where)
        letters = None
        unhashable = unhashable_rows(batch[self.key]) if self.key else None
        if unhashable is not None:  # (a dict or a list in a json key field: it raised TypeError)
            letters = dead_letter(batch, unhashable, unkeyable_reason(str(self.key)))
            batch = batch[~unhashable]
        scores = float_values(batch[self.score_column])
        # a json field's true, 1 and 1.0 are three keys (tagged), as in Detect and the exported code
        keys = typed_key_column(batch[self.key]).to_numpy(dtype=object) if self.key else None
        if keys is not None:
            missing = pd.isna(keys)
            if missing.any():  # NaN, None, NaT: one missing key (each NaN was a key of its own)
                keys = keys.copy()  # (to_numpy may be a view of the batch's own column)
                keys[missing] = None
        out = batch.copy()
        out["is_anomaly"] = self.classify_many(scores, keys)
        return {"out": out} if letters is None else {"out": out, "dead_letter": letters}


class ThresholdFilter(StepConfig):
    """Base of threshold filter configurations: ``build(key=None) -> ThresholdOperator``.

    Examples
    --------
    >>> isinstance(FixedThresholdFilter(0.5), ThresholdFilter)
    True
    """

    def required_columns(self) -> tuple[str, ...]:
        """Input columns the filter reads."""
        key = getattr(self, "key", None)
        return (getattr(self, "score", "score"),) + ((key,) if key else ())

    def added_columns(self) -> tuple[str, ...]:
        """Columns the filter adds."""
        return ("is_anomaly",)

    def added_column_types(self) -> dict[str, str]:
        """Types of the added columns: ``is_anomaly`` is bool."""
        return {"is_anomaly": "bool"}

    def build(self, key: str | None = None) -> ThresholdOperator:
        """Return the runtime state; ``key`` overrides the filter's own key column (used by ``Detect``)."""
        raise NotImplementedError


class _FixedOperator(ThresholdOperator):
    def __init__(self, value: float, score: str) -> None:
        super().__init__(score, None)
        self.value = value

    def classify_one(self, score: float, key: Hashable = None) -> bool:
        return bool(score > self.value)

    def classify_many(self, scores: np.ndarray, keys: np.ndarray | None = None) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return scores > self.value


@step_kind(config=True)
@dataclass(frozen=True)
class FixedThresholdFilter(ThresholdFilter):
    """``is_anomaly = score > value``.

    Parameters
    ----------
    value
        The threshold: a finite number. ``inf`` and ``-inf`` are refused rather than read as "off" and
        "all": ``inf`` would flag no score and ``-inf`` every score but ``-inf`` itself, a filter that
        decides nothing (leave the filter out, or compare ``score`` in a ``with_columns`` expression).
    score
        Column holding the score.

    Examples
    --------
    >>> import pandas as pd
    >>> op = FixedThresholdFilter(0.8).build()
    >>> op.process(pd.DataFrame({"score": [0.1, 0.9, 0.8]}))["out"]["is_anomaly"].tolist()
    [False, True, False]
    >>> FixedThresholdFilter(float("inf"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    streamlab.errors.PipelineConfigError: FixedThresholdFilter (config of step 'fixed_threshold'...): value must be a finite number, got inf, which flags no score...
    """

    value: float = param(codec=codec.FLOAT)
    score: str = "score"

    kind: ClassVar[str] = "fixed_threshold"

    def __post_init__(self) -> None:
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)) or math.isnan(self.value):
            raise ValueError(
                f"FixedThresholdFilter: value must be a number, got {self.value!r}; pass a finite number "
                "without quotes, e.g. FixedThresholdFilter(0.9) (flag score > 0.9)"
            )
        if math.isinf(self.value):
            flags = "no score" if self.value > 0 else "every score (but -inf)"
            raise ValueError(
                f"FixedThresholdFilter: value must be a finite number, got {self.value!r}, which flags "
                f"{flags}; pass the score above which an event is anomalous, e.g. FixedThresholdFilter(0.9), "
                "or leave the filter out"
            )
        check_name(self.score, where="FixedThresholdFilter", what="score")

    def build(self, key: str | None = None) -> ThresholdOperator:
        return _FixedOperator(float(self.value), self.score)


_INFINITIES = frozenset((math.inf, -math.inf))


class _QuantileOperator(ThresholdOperator):
    def __init__(self, q: float, warmup: int, score: str) -> None:
        super().__init__(score, None)
        self.quantile = stats.Quantile(q)
        self.warmup = warmup
        self.seen = 0

    def classify_one(self, score: float, key: Hashable = None) -> bool:
        if math.isnan(score):
            return False
        current = self.quantile.get() if self.seen >= self.warmup else None
        flag = current is not None and score > current
        if math.isinf(score):  # judged, not learned: one infinity would hold the quantile at inf for good
            return bool(flag)
        self.quantile.update(score)
        self.seen += 1
        return bool(flag)

    def classify_many(self, scores: np.ndarray, keys: np.ndarray | None = None) -> np.ndarray:
        # same as classify_one per score, with the lookups hoisted out of the loop
        quantile, warmup, seen = self.quantile, self.warmup, self.seen
        get, update = quantile.get, quantile.update
        flags = []
        for s in scores.tolist():
            if s != s:  # NaN
                flags.append(False)
                continue
            current = get() if seen >= warmup else None
            flags.append(current is not None and s > current)
            if s in _INFINITIES:  # judged, not learned (as classify_one)
                continue
            update(s)
            seen += 1
        self.seen = seen
        return np.array(flags, dtype=bool)


@step_kind(config=True)
@dataclass(frozen=True)
class QuantileThresholdFilter(ThresholdFilter):
    """``is_anomaly = score > running q-quantile of the previous scores``.

    The quantile is a P² estimate (river ``stats.Quantile``).

    Nothing is flagged during the first ``warmup`` scores, while the estimate settles. A missing score
    is no anomaly and is not learned; an infinite one is judged (``+inf`` is an anomaly after the
    warm-up) but not learned, so it cannot hold the quantile at infinity for good.

    Parameters
    ----------
    q
        Quantile in (0, 1), e.g. 0.99 flags about 1% of events.
    warmup
        Number of scores seen before anything can be flagged.
    score
        Column holding the score.

    Examples
    --------
    >>> import pandas as pd
    >>> op = QuantileThresholdFilter(q=0.9, warmup=10).build()
    >>> out = op.process(pd.DataFrame({"score": [float(i % 10) for i in range(30)] + [100.0]}))["out"]
    >>> bool(out["is_anomaly"].iloc[-1]), int(out["is_anomaly"].iloc[:10].sum())
    (True, 0)
    """

    q: float = param(codec=codec.FLOAT, default=0.99)
    warmup: int = 100
    score: str = "score"

    kind: ClassVar[str] = "quantile_threshold"

    def __post_init__(self) -> None:
        if isinstance(self.q, bool) or not isinstance(self.q, (int, float)) or not 0 < self.q < 1:
            raise ValueError(
                f"QuantileThresholdFilter: q must be in (0, 1), got {self.q!r}; pass a fraction without "
                "quotes, e.g. q=0.99 (flag the top 1% of scores)"
            )
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(
                f"QuantileThresholdFilter: warmup must be an integer >= 0, got {self.warmup!r}; pass a whole "
                "number of scores to see before flagging, e.g. warmup=100"
            )
        check_name(self.score, where="QuantileThresholdFilter", what="score")

    def build(self, key: str | None = None) -> ThresholdOperator:
        return _QuantileOperator(float(self.q), self.warmup, self.score)


class _AdaptiveOperator(ThresholdOperator):
    output_names = ("out", "dead_letter")  # rows whose key is a dict or a list

    def __init__(self, k: float, warmup: int, key: str | None, max_keys: int, score: str) -> None:
        super().__init__(score, key)
        self.k = k
        self.warmup = warmup
        self.max_keys = max_keys
        # key -> [count, mean, M2] (Welford); LRU order bounds memory to max_keys
        self.stats: OrderedDict[Hashable, list[float]] = OrderedDict()
        self.evictions = 0

    def classify_one(self, score: float, key: Hashable = None) -> bool:
        if math.isnan(score):
            return False
        if self.key is None:
            key = None
        state = self.stats.get(key)
        if state is None:
            state = [0.0, 0.0, 0.0]
            self.stats[key] = state
            if len(self.stats) > self.max_keys:
                self.stats.popitem(last=False)
                self.evictions += 1
        else:
            self.stats.move_to_end(key)
        n, mean, m2 = state
        flag = False
        if n >= max(self.warmup, 2):
            std = math.sqrt(m2 / (n - 1))
            flag = score > mean + self.k * std
        if math.isinf(score):  # judged, not learned: one infinity would make every later bound inf/NaN
            return bool(flag)
        n += 1
        delta = score - mean
        mean += delta / n
        state[0], state[1], state[2] = n, mean, m2 + delta * (score - mean)
        return bool(flag)

    def open_state(self) -> dict[str, Any]:
        return {"keys": len(self.stats), "evictions": self.evictions}


@step_kind(config=True)
@dataclass(frozen=True)
class AdaptiveThresholdFilter(ThresholdFilter):
    """``is_anomaly = score > mean + k·std`` of the key's own previous scores (or all scores).

    A missing score is no anomaly and is not learned; an infinite one is judged (``+inf`` is an
    anomaly after the warm-up) but not learned, so it cannot turn the bound to infinity for good.
    Used on its own, keys that are missing (None, NaN) share one state, and rows whose key is a dict
    or a list go to the ``dead_letter`` output with a ``reason``.

    Parameters
    ----------
    k
        Number of standard deviations (sample std) above the mean.
    per_key
        Keep statistics per key; inside ``Detect`` the step's key is used.
    key
        Key column when used standalone with ``per_key=True``.
    warmup
        Scores a key must have before it can be flagged (at least 2).
    max_keys
        Keys kept (least recently seen are evicted).
    score
        Column holding the score.

    Examples
    --------
    >>> import pandas as pd
    >>> op = AdaptiveThresholdFilter(k=3.0, key="user_id", warmup=3).build()
    >>> batch = pd.DataFrame({"user_id": ["a"] * 5 + ["b"], "score": [1.0, 1.1, 0.9, 1.0, 5.0, 5.0]})
    >>> op.process(batch)["out"]["is_anomaly"].tolist()
    [False, False, False, False, True, False]
    """

    k: float = param(codec=codec.FLOAT, default=3.0)
    per_key: bool = True
    key: str | None = None
    warmup: int = 10
    max_keys: int = 10_000
    score: str = "score"

    kind: ClassVar[str] = "adaptive_threshold"
    output_names: ClassVar[tuple[str, ...]] = ("out", "dead_letter")

    def __post_init__(self) -> None:
        where = "AdaptiveThresholdFilter"
        if isinstance(self.k, bool) or not isinstance(self.k, (int, float)) or not 0 <= self.k < math.inf:
            # k=inf flagged no score (and a key whose scores never varied got inf * 0 = NaN)
            raise ValueError(
                f"{where}: k must be a finite number >= 0 (standard deviations), got {self.k!r}; pass e.g. k=3.0"
            )
        if isinstance(self.warmup, bool) or not isinstance(self.warmup, int) or self.warmup < 0:
            raise ValueError(
                f"{where}: warmup must be an integer >= 0, got {self.warmup!r}; pass a whole number of "
                "scores to see before flagging, e.g. warmup=10"
            )
        check_positive_int(self.max_keys, where=where, what="max_keys")
        if self.key is not None:
            check_name(self.key, where=where, what="key")
        if self.key is not None and not self.per_key:
            raise ValueError(
                f"{where}: key={self.key!r} given with per_key=False; drop key or set per_key=True"
            )
        check_name(self.score, where=where, what="score")

    def build(self, key: str | None = None) -> ThresholdOperator:
        column = (key or self.key) if self.per_key else None
        if self.per_key and column is None:
            raise ValueError(
                "AdaptiveThresholdFilter(per_key=True): no key column; pass key='user_id', "
                "use it inside Detect(key=...), or set per_key=False"
            )
        return _AdaptiveOperator(float(self.k), self.warmup, column, self.max_keys, self.score)
