"""The per-record semantics of streamlab's detector, feature, rule and pattern steps, one event at a time.

Plain Python (and river, for the models and the quantile threshold, imported when a model is built):
no numpy or pandas, and of streamlab only ``streamlab._record`` (its ``typed_id`` and ``unreadable_time_reason``), so exporters carry
this module verbatim into generated code, after ``streamlab._record``'s code, which they carry too. The runtime's operators (``streamlab.detectors``) work on
batches with vectorized or compiled code; property tests prove that feeding their events here one by
one, in arrival order, gives the same columns (``tests/detectors/test_detector_record.py``).

Every state machine covers one step over all keys, as the runtime's operator does: the retention
horizon of the windowed features, ``max_keys`` and ``key_ttl`` are reckoned over the whole stream
(the largest event time seen), so a deployment must run each step's state machine on the events in
arrival order, not split by key. Event times are epoch nanoseconds (callers convert with ``to_ns``).

Keys are told apart by value and type (``typed_id``), as the windows and the exported jobs' grouping by
the key's JSON text tell them apart: a ``json`` field's ``true``, ``1`` and ``1.0`` are three keys,
although Python holds them equal. Values (a distinct count's, a pattern's ``differs_from``) compare as
Python compares them, as ``agg.count_distinct`` does: there ``true``, ``1`` and ``1.0`` are one value.

Examples
--------
>>> velocity = WindowEvents(window_ns=600 * 10**9, lateness_ns=3600 * 10**9)
>>> velocity.update("card1", 0, 10.0), velocity.update("card1", 60 * 10**9, 5.0)
((1, 10.0), (2, 15.0))
>>> zscore = ZScoreState(max_keys=10)
>>> [round(zscore.update("u", v), 2) for v in (10.0, 12.0, 11.0)][2]
0.0
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections import OrderedDict, deque
from typing import Any

from streamlab._record import typed_id, unreadable_time_reason

NAN = float("nan")


def as_number(value: Any) -> float:
    """A value as a float, NaN when missing or not a number (as ``pandas.to_numeric(errors="coerce")``),
    an int beyond a double's range as the infinity of its sign (``streamlab._floats.float_values``)."""
    if value is None:
        return NAN
    if isinstance(value, (bool, int, float)):
        try:
            return float(value)
        except OverflowError:  # an int beyond a double's range: the infinity of its sign, as "1e400"
            return math.inf if value > 0 else -math.inf
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return NAN
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return NAN


def unkeyable(value: Any) -> bool:
    """A value that cannot be a key: Python cannot hash it (a dict, a list)."""
    try:
        hash(value)
    except TypeError:
        return True
    return False


def unkeyable_reason(column: str) -> str:
    """Why a row whose key cannot be a key goes to dead letter (the runtime's text too)."""
    return f"key column {column!r} holds a dict or a list, which cannot be a key"


def unkeyable_value_reason(column: str, reader: str = "distinct count") -> str:
    """Why a row whose value cannot be told apart goes to dead letter (``reader``: what compares the
    values, a distinct count or a pattern step's ``differs_from``)."""
    return f"value column {column!r} holds a dict or a list, which {reader} cannot tell apart"


def missing_value(value: Any) -> bool:
    """None or NaN: what pandas' ``isna`` reports for a key or a value."""
    return value is None or (isinstance(value, float) and value != value)


def unjoinable(key: Any) -> bool:
    """A join key (the tuple of a row's key columns) that matches nothing: a part is missing (None,
    NaN), as SQL's NULL equals nothing, or a dict or a list. The runtime's ``join_interval`` and
    ``enrich`` (``streamlab._joins``) decide the same per batch.

    Examples
    --------
    >>> unjoinable(("a", 1)), unjoinable(("a", None)), unjoinable((float("nan"),)), unjoinable(([1],))
    (False, True, True, True)
    """
    return any(missing_value(v) for v in key) or unkeyable(key)


def shown_value(value: Any) -> str:
    """A value as a dead letter's reason quotes it: its type and its short repr."""
    return f"{type(value).__name__} {short_repr(value)}"


def unfit_key_reason(column: str, value: Any) -> str:
    """Why a window sets aside a row whose key column holds ``value`` (a dict, a list)."""
    return f"key column {column!r} holds {shown_value(value)}, which cannot be a key"


def unfit_value_reason(kind: str, column: str, numeric: bool, value: Any) -> str:
    """Why a window sets aside a row whose ``agg.<kind>(column)`` cannot take ``value``: a numeric
    aggregator needs a number, ``count_distinct`` values it can tell apart."""
    need = "a number" if numeric else "values it can tell apart (hashable: not a dict or a list)"
    return f"agg.{kind}({column!r}) needs {need}, got {shown_value(value)}"


def unfit_reason(row: dict[str, Any], keys: Any, checks: Any) -> str | None:
    """Why a window's aggregators cannot take ``row`` (None when they can), one row at a time as the
    runtime's ``streamlab._agg_inputs.split_unfit_values`` decides per batch: a key that cannot be a key
    first, then each aggregator of ``checks`` ((kind, column, numeric) triples) in order; a numeric one
    needs a present value to read as a number (``as_number``), ``count_distinct`` a hashable one.

    Examples
    --------
    >>> unfit_reason({"v": {"a": 1}}, (), [("sum", "v", True)])
    "agg.sum('v') needs a number, got dict {'a': 1}"
    >>> unfit_reason({"v": "2"}, (), [("sum", "v", True)]) is None
    True
    """
    for k in keys:
        value = row.get(k)
        if unkeyable(value):
            return unfit_key_reason(k, value)
    for kind, column, numeric in checks:
        value = row.get(column)
        if missing_value(value):
            continue
        if (as_number(value) != as_number(value)) if numeric else unkeyable(value):
            return unfit_value_reason(kind, column, numeric, value)
    return None


def truthy(value: Any) -> bool:
    """A condition's result on one row as the runtime reads it (missing is False)."""
    return False if missing_value(value) else bool(value)


class KeyedLRU:
    """Per-key state, at most ``max_keys`` keys: the least recently updated one is forgotten beyond it.

    ``touch(key, fresh)`` returns the key's state (``fresh()`` for a new or forgotten key) and makes it
    the most recent; ``trim()`` forgets the oldest keys beyond ``max_keys`` (after the event, as the
    runtime does after each batch).
    """

    def __init__(self, max_keys: int) -> None:
        self.max_keys = max_keys
        self.keys: OrderedDict[Any, Any] = OrderedDict()
        self.evictions = 0

    def touch(self, key: Any, fresh: Any) -> Any:
        key = typed_id(key)
        state = self.keys.get(key)
        if state is None:
            state = self.keys[key] = fresh()
        else:
            self.keys.move_to_end(key)
        return state

    def trim(self) -> None:
        while len(self.keys) > self.max_keys:
            self.keys.popitem(last=False)
            self.evictions += 1


# --- features


class WindowEvents:
    """Count and sum of a key's events in ``(t - window, t]`` that arrived no later than this one.

    ``VelocityFeature`` and ``VelocityRule``: events of the key are kept (time-sorted, ties in arrival
    order) while they are newer than ``largest event time seen - window - lateness``; a missing value
    counts as an event and adds nothing to the sum. Sums add the window's values in time order.
    """

    def __init__(self, window_ns: int, lateness_ns: int) -> None:
        self.window_ns = window_ns
        self.lateness_ns = lateness_ns
        self.events: dict[Any, tuple[list[int], list[float]]] = {}
        self.max_seen: int | None = None
        self.since_sweep = 0

    def update(self, key: Any, t: int, value: Any = None) -> tuple[int, float]:
        times, values = self.events.setdefault(typed_id(key), ([], []))
        if self.max_seen is not None:  # what the runtime retained after the previous event
            cut = bisect.bisect_right(times, self.max_seen - self.window_ns - self.lateness_ns)
            if cut:
                del times[:cut], values[:cut]
        v = as_number(value)
        at = bisect.bisect_right(times, t)
        times.insert(at, t)
        values.insert(at, 0.0 if v != v else v)
        lo = bisect.bisect_right(times, t - self.window_ns)
        total = 0.0
        for x in values[lo : at + 1]:
            total += x
        self.max_seen = t if self.max_seen is None else max(self.max_seen, t)
        self._sweep()
        return at + 1 - lo, total

    def _sweep(self) -> None:
        """Forget keys whose events all left the horizon (memory only: results read a key's own events)."""
        self.since_sweep += 1
        if self.since_sweep < 4096 or self.max_seen is None:
            return
        self.since_sweep = 0
        horizon = self.max_seen - self.window_ns - self.lateness_ns
        for k in [k for k, (ts, _) in self.events.items() if not ts or ts[-1] <= horizon]:
            del self.events[k]


class DistinctValues:
    """Distinct non-missing values of a key's events in ``(t - window, t]`` that arrived no later (``DistinctCountFeature``)."""

    def __init__(self, window_ns: int, lateness_ns: int) -> None:
        self.window_ns = window_ns
        self.lateness_ns = lateness_ns
        self.seen: dict[Any, dict[Any, list[int]]] = {}
        self.max_seen: int | None = None
        self.since_sweep = 0

    def update(self, key: Any, t: int, value: Any) -> int:
        per_key = self.seen.setdefault(typed_id(key), {})
        if self.max_seen is not None:
            horizon = self.max_seen - self.window_ns - self.lateness_ns
            for v in list(per_key):
                ts = per_key[v]
                cut = bisect.bisect_right(ts, horizon)
                if cut == len(ts):
                    del per_key[v]
                elif cut:
                    del ts[:cut]
        if not missing_value(value):
            bisect.insort_right(per_key.setdefault(value, []), t)
        lo = t - self.window_ns
        count = 0
        for ts in per_key.values():
            at = bisect.bisect_right(ts, lo)
            if at < len(ts) and ts[at] <= t:
                count += 1
        self.max_seen = t if self.max_seen is None else max(self.max_seen, t)
        self.since_sweep += 1
        if self.since_sweep >= 4096:
            self.since_sweep = 0
            horizon = self.max_seen - self.window_ns - self.lateness_ns
            for k in [k for k, d in self.seen.items() if all(ts[-1] <= horizon for ts in d.values())]:
                del self.seen[k]
        return count


class ZScoreState:
    """``(v - mean) / std`` of the key's earlier values (river's ``stats.Var``, ddof 1); NaN until two values
    or while the std is 0. A value that is not finite gives NaN and leaves the key untouched (``ZScoreFeature``)."""

    def __init__(self, max_keys: int) -> None:
        self.lru = KeyedLRU(max_keys)

    def update(self, key: Any, value: Any) -> float:
        x = as_number(value)
        if not math.isfinite(x):
            return NAN
        state = self.lru.touch(key, lambda: [0.0, 0.0, 0.0])
        n, mean, m2 = state
        out = NAN
        if n >= 2.0:
            std = math.sqrt(m2 / (n - 1.0))
            if std > 0:
                out = (x - mean) / std
        n = n + 1.0
        new_mean = mean + (1.0 / n) * (x - mean)
        state[0], state[1], state[2] = n, new_mean, m2 + 1.0 * (x - mean) * (x - new_mean)
        self.lru.trim()
        return out


class RatioToMedianState:
    """``value / median`` of the key's previous ``history`` values (NaN for its first value or a zero
    median); a NaN value gives NaN and leaves the key untouched (``RatioToMedianFeature``)."""

    def __init__(self, history: int, max_keys: int) -> None:
        self.history = history
        self.lru = KeyedLRU(max_keys)

    def update(self, key: Any, value: Any) -> float:
        v = as_number(value)
        if v != v:
            return NAN
        fifo, ordered = self.lru.touch(key, lambda: ([], []))
        out = NAN
        m = len(ordered)
        if m:
            h = m // 2
            med = ordered[h] if m % 2 else 0.5 * (ordered[h - 1] + ordered[h])
            if med != 0:
                out = v / med
        bisect.insort_right(ordered, v)
        fifo.append(v)
        if len(fifo) > self.history:
            del ordered[bisect.bisect_left(ordered, fifo.pop(0))]
        self.lru.trim()
        return out


class TimeSinceLastState:
    """Seconds since the key's latest earlier event time; NaN for its first event (``TimeSinceLastFeature``)."""

    def __init__(self, max_keys: int) -> None:
        self.lru = KeyedLRU(max_keys)

    def update(self, key: Any, t: int) -> float:
        state = self.lru.touch(key, lambda: [None])
        last = state[0]
        out = NAN
        if last is None:
            state[0] = t
        else:
            out = (t - last) / 1e9
            if t > last:
                state[0] = t
        self.lru.trim()
        return out


# --- rules


def merge_alert(row: dict[str, Any], name: str, alert: bool) -> None:
    """Add a rule's verdict to a row: ``is_alert`` if any rule alerted, ``rule`` names the first one."""
    before = truthy(row.get("is_alert"))
    if before:
        row["rule"] = row.get("rule")
    else:
        row["rule"] = name if alert else None
    row["is_alert"] = before or bool(alert)


COMPARE = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def compare_values(value: Any, op: str, bound: Any) -> bool:
    """``value op bound`` as ``ThresholdRule(column=, op=, value=)`` reads it: missing is no alert
    (except ``!=``, where pandas says a missing value differs). Compared with a number, a text is read as
    the number it writes (``as_number``, as features and detectors read it: ``"5000"`` is 5000.0); a
    text that writes no number is no alert, as a missing value.

    Examples
    --------
    >>> compare_values("5000", ">", 1000), compare_values(" 10 ", "==", 10), compare_values("x", ">", 1)
    (True, True, False)
    >>> compare_values("x", "!=", 1), compare_values("10", "==", "10"), compare_values(None, ">", 1)
    (True, True, False)
    """
    if isinstance(value, str) and reads_text_as_number(bound):
        value = as_number(value)
    if missing_value(value):
        return op == "!="
    try:
        return bool(COMPARE[op](value, bound))
    except TypeError:
        return op == "!="


def reads_text_as_number(bound: Any) -> bool:
    """Whether ``ThresholdRule(column=, op=, value=bound)`` reads a text as a number: ``bound`` is a number
    (an int, a float or a numpy number; not a bool, which compares with true and false)."""
    if isinstance(bound, (int, float)):
        return not isinstance(bound, bool)
    return getattr(getattr(bound, "dtype", None), "kind", "") in ("i", "u", "f")


def condition_failure(what: str, expr: str, columns: Any, row: dict[str, Any]) -> str:
    """Why a condition (``what``: a rule, a pattern's step) could not be evaluated on ``row``: the
    condition and the values it read (the same text in streamlab and in exported code, whose
    evaluators word their errors differently).

    Examples
    --------
    >>> condition_failure("rule 'big'", "amount > 100", ["amount"], {"amount": "7"})
    "rule 'big' cannot evaluate 'amount > 100' on amount='7'"
    """
    shown = ", ".join(f"{c}={short_repr(row.get(c))}" for c in columns)
    return f"{what} cannot evaluate {expr!r}" + (f" on {shown}" if shown else "")


def short_repr(value: Any, limit: int = 40) -> str:
    """``repr(value)`` cut to ``limit`` characters (dead letters' reasons quote values with it)."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


# --- thresholds


class FixedThreshold:
    """``score > value``; NaN is never anomalous."""

    def __init__(self, value: float) -> None:
        self.value = value

    def classify(self, score: float, key: Any = None) -> bool:
        return score > self.value


class QuantileThreshold:
    """``score >`` the running ``q``-quantile (river ``stats.Quantile``, P²) of earlier scores, after ``warmup``."""

    def __init__(self, q: float, warmup: int) -> None:
        from river import stats

        self.quantile = stats.Quantile(q)
        self.warmup = warmup
        self.seen = 0

    def classify(self, score: float, key: Any = None) -> bool:
        if score != score:
            return False
        current = self.quantile.get() if self.seen >= self.warmup else None
        flag = current is not None and score > current
        if score in (math.inf, -math.inf):  # judged, not learned: an infinity would disable the rule
            return bool(flag)
        self.quantile.update(score)
        self.seen += 1
        return bool(flag)


class AdaptiveThreshold:
    """``score > mean + k * std`` of the key's (or all) earlier scores, after ``warmup`` (at least 2)."""

    def __init__(self, k: float, warmup: int, per_key: bool, max_keys: int) -> None:
        self.k = k
        self.warmup = warmup
        self.per_key = per_key
        self.lru = KeyedLRU(max_keys)

    def classify(self, score: float, key: Any = None) -> bool:
        if score != score:
            return False
        if (
            isinstance(key, float) and key != key
        ):  # NaN: the missing key, as None (each NaN was a key of its own)
            key = None
        state = self.lru.touch(key if self.per_key else None, lambda: [0.0, 0.0, 0.0])
        self.lru.trim()
        n, mean, m2 = state
        flag = False
        if n >= max(self.warmup, 2):
            flag = score > mean + self.k * math.sqrt(m2 / (n - 1))
        if score in (math.inf, -math.inf):  # judged, not learned: an infinity would disable the rule
            return bool(flag)
        n += 1
        delta = score - mean
        mean += delta / n
        state[0], state[1], state[2] = n, mean, m2 + delta * (score - mean)
        return bool(flag)


def make_threshold(spec: dict[str, Any] | None, key: str | None) -> Any:
    """A threshold's state from its description (``ThresholdFilter.describe()``); None without one."""
    if spec is None:
        return None
    kind = spec["kind"]
    if kind == "fixed_threshold":
        return FixedThreshold(float(spec["value"]))
    if kind == "quantile_threshold":
        return QuantileThreshold(float(spec["q"]), int(spec["warmup"]))
    if kind == "adaptive_threshold":
        per_key = bool(spec["per_key"]) and (key or spec.get("key")) is not None
        return AdaptiveThreshold(float(spec["k"]), int(spec["warmup"]), per_key, int(spec["max_keys"]))
    raise ValueError(f"unknown threshold kind {kind!r}")


# --- detectors


def local_outlier_factor(n_neighbors: int, window_size: int) -> Any:
    """river's ``anomaly.LocalOutlierFactor`` over the last ``window_size`` learned events.

    river 0.23 and later take the window as ``engine=neighbors.LazySearch(window_size=...)``; river 0.22
    (the newest with a wheel for Python 3.10) has no ``engine`` and keeps every event it learned, so
    there :class:`WindowedLocalOutlierFactor`, the same algorithm on the window, stands in.
    """
    import inspect

    from river import anomaly, neighbors

    if "engine" in inspect.signature(anomaly.LocalOutlierFactor).parameters:
        return anomaly.LocalOutlierFactor(
            n_neighbors=n_neighbors, engine=neighbors.LazySearch(window_size=window_size)
        )
    return WindowedLocalOutlierFactor(n_neighbors, window_size)


class WindowedLocalOutlierFactor:
    """Local Outlier Factor of a sample against the last ``window_size`` learned samples, as river's
    ``anomaly.LocalOutlierFactor`` with ``engine=neighbors.LazySearch(window_size)`` computes it (river
    0.26): exact Euclidean neighbours (ties to the earlier sample), a sample is never its own neighbour,
    reachability densities with scikit-learn's ``1e-10``, and 0.0 where the window cannot judge.
    """

    def __init__(self, n_neighbors: int, window_size: int) -> None:
        self.n_neighbors = n_neighbors
        self.window_size = window_size
        self.window: Any = deque(maxlen=window_size)

    def learn_one(self, x: dict[str, Any]) -> None:
        self.window.append(dict(x))

    def score_one(self, x: dict[str, Any]) -> float:
        neighbors, distances = self._search(dict(x))
        if distances and distances[0] == 0.0:  # x itself, or a sample equal to it
            neighbors, distances = neighbors[1:], distances[1:]
        else:
            neighbors, distances = neighbors[: self.n_neighbors], distances[: self.n_neighbors]
        if not neighbors:
            return 0.0
        cache: dict[int, tuple[list[Any], list[float]]] = {}
        lrd_x = self._density(neighbors, distances, cache)
        lrd_neighbors = [self._density(*self._neighborhood(o, cache), cache) for o in neighbors]
        score = sum(lrd_neighbors) / (len(lrd_neighbors) * lrd_x)
        return score if math.isfinite(score) else 0.0

    def _search(self, x: dict[str, Any]) -> tuple[list[Any], list[float]]:
        nearest = heapq.nsmallest(
            self.n_neighbors + 1, ((_euclidean(x, p), i, p) for i, p in enumerate(self.window))
        )
        return [p for _, _, p in nearest], [d for d, _, _ in nearest]

    def _neighborhood(
        self, x: dict[str, Any], cache: dict[int, tuple[list[Any], list[float]]]
    ) -> tuple[list[Any], list[float]]:
        if id(x) not in cache:
            neighbors, distances = self._search(x)
            cache[id(x)] = (neighbors[1:], distances[1:])
        return cache[id(x)]

    def _density(
        self, neighbors: list[Any], distances: list[float], cache: dict[int, tuple[list[Any], list[float]]]
    ) -> float:
        if not neighbors:
            return math.inf
        # the builtin sum, as river's LocalOutlierFactor: from Python 3.12 it adds floats with compensation,
        # so a `+=` loop differs from river's scores in the last bit there
        total = sum(max(d, self._k_distance(o, cache)) for o, d in zip(neighbors, distances))
        return 1.0 / (total / len(neighbors) + 1e-10)

    def _k_distance(self, x: Any, cache: dict[int, tuple[list[Any], list[float]]]) -> float:
        k_distances = self._neighborhood(x, cache)[1]
        return k_distances[-1] if k_distances else 0.0


def _euclidean(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Euclidean distance of two feature dicts, a feature missing from one counting 0."""
    total = 0.0
    for k, v in a.items():
        total += (v - b.get(k, 0.0)) ** 2
    for k, v in b.items():
        if k not in a:
            total += v**2
    return math.sqrt(total)


class Model:
    """A river anomaly model for one detector description (``Detector.describe()``), in river's
    vocabulary: ``score_one(x)`` then ``learn_one(x)`` with ``x = {feature: value}``."""

    def __init__(self, spec: dict[str, Any]) -> None:
        from river import anomaly, feature_extraction, preprocessing

        self.spec = spec
        kind = spec["kind"]
        self.feature = spec.get("feature")
        self.grace = None
        self.seen = 0
        self.sign = 1.0
        self.univariate = False
        self.model: Any
        if kind == "half_space_trees":
            self.model = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(
                n_trees=spec["n_trees"],
                height=spec["height"],
                window_size=spec["window_size"],
                seed=spec["seed"],
            )
        elif kind == "one_class_svm":
            self.model = (
                preprocessing.StandardScaler()
                | feature_extraction.RBFSampler(
                    gamma=spec["gamma"], n_components=spec["n_components"], seed=spec["seed"]
                )
                | anomaly.OneClassSVM(nu=spec["nu"])
            )
            self.sign = -1.0
        elif kind == "local_outlier_factor":
            self.model = local_outlier_factor(spec["n_neighbors"], spec["window_size"])
        elif kind == "gaussian_scorer":
            self.model = anomaly.GaussianScorer(
                window_size=spec["window_size"], grace_period=spec["grace_period"]
            )
            self.univariate = True
        elif kind == "standard_absolute_deviation":
            self.model = anomaly.StandardAbsoluteDeviation()
            self.univariate = True
            self.grace = spec["grace_period"]
        else:
            raise ValueError(f"detector kind {kind!r} has no per-record form")

    def _value(self, x: dict[str, float]) -> float:
        return float(x[self.feature]) if self.feature is not None else float(next(iter(x.values())))

    def score_one(self, x: dict[str, float]) -> float:
        if self.univariate:
            if self.grace is not None and self.seen < self.grace:
                return 0.0
            return float(self.model.score_one(None, self._value(x)))
        return self.sign * float(self.model.score_one(x))

    def learn_one(self, x: dict[str, float]) -> None:
        if self.univariate:
            self.model.learn_one(None, self._value(x))
            self.seen += 1
        else:
            self.model.learn_one(x)


class DetectState:
    """The detect step's state: a model per key (LRU of ``max_keys``, dropped after ``ttl_ns`` of event-time
    idleness) or one model, and the threshold; score-then-learn, in arrival order.

    ``process(values, key, t)`` takes the event's feature values (in ``features`` order), its key (None
    without one) and event time (ns, or None when ``ttl_ns`` is None) and returns ``(score, flag)``
    (``flag`` None without a threshold), or a dead-letter reason string for an event it rejects.
    """

    def __init__(
        self,
        detector: dict[str, Any],
        features: list[str],
        key: str | None,
        learn: str,
        threshold: dict[str, Any] | None,
        max_keys: int,
        ttl_ns: int | None,
        time: str,
    ) -> None:
        self.detector = detector
        self.features = list(features)
        self.key = key
        self.learn = learn
        self.threshold = make_threshold(threshold, key)
        self.max_keys = max_keys
        self.ttl_ns = ttl_ns if key is not None else None
        self.time = time
        self.name = detector["kind"]
        self.model = Model(detector) if key is None else None
        self.models: OrderedDict[Any, list[Any]] = OrderedDict()  # key -> [model, latest time]
        self.expiry: list[tuple[int, int, Any]] = []  # heap of (time, tie, key) for the TTL
        self.tie = 0
        self.max_seen: int | None = None

    def reject(self, values: list[Any], key: Any, t: int | None) -> str | None:
        """Why an event goes to dead letter, or None (the runtime's checks, first failing one)."""
        for column, v in zip(self.features, values):
            if not math.isfinite(as_number(v)):
                return f"feature {column!r} is missing or not a finite number"
        if self.key is not None and missing_value(key):
            return f"key column {self.key!r} is missing"
        if self.key is not None and unkeyable(key):
            return unkeyable_reason(self.key)
        if self.ttl_ns is not None and t is None:
            return unreadable_time_reason(self.time, "key_ttl")
        return None

    def _model_for(self, key: Any, t: int | None) -> Model:
        key = typed_id(key)
        entry = self.models.get(key)
        if (
            entry is not None
            and self.ttl_ns is not None
            and self.max_seen is not None
            and entry[1] < self.max_seen - self.ttl_ns
        ):
            del self.models[key]
            entry = None
        if entry is None and self._stale(t):
            # a new key already idle past key_ttl: a fresh model, dropped after the event as the sweep
            # would drop it, so it takes no place among the max_keys (it evicts no live key)
            return Model(self.detector)
        if entry is None:
            entry = self.models[key] = [Model(self.detector), t]
            if len(self.models) > self.max_keys:
                self.models.popitem(last=False)
        else:
            self.models.move_to_end(key)
            if t is not None and (entry[1] is None or t > entry[1]):
                entry[1] = t
        if self.ttl_ns is not None and t is not None:
            self.tie += 1
            heapq.heappush(self.expiry, (entry[1], self.tie, key))
        model: Model = entry[0]
        return model

    def _stale(self, t: int | None) -> bool:
        """Whether an event at ``t`` is more than ``ttl_ns`` behind the largest event time."""
        return (
            self.ttl_ns is not None
            and t is not None
            and self.max_seen is not None
            and t < self.max_seen - self.ttl_ns
        )

    def _expire(self) -> None:
        """Drop the models idle for more than ``ttl_ns`` behind the largest event time (after each event)."""
        if self.ttl_ns is None or self.max_seen is None:
            return
        horizon = self.max_seen - self.ttl_ns
        while self.expiry and self.expiry[0][0] < horizon:
            t, _, key = heapq.heappop(self.expiry)
            entry = self.models.get(key)
            if entry is not None and entry[1] == t:
                del self.models[key]

    def process(
        self, values: list[Any], key: Any = None, t: int | None = None
    ) -> tuple[float, bool | None] | str:
        reason = self.reject(values, key, t)
        if reason is not None:
            return reason
        x = dict(zip(self.features, (as_number(v) for v in values)))
        if self.model is not None:
            model = self.model
        else:
            if t is not None and (self.max_seen is None or t > self.max_seen):
                self.max_seen = t
            model = self._model_for(key, t)
        score = model.score_one(x)
        flag = None if self.threshold is None else self.threshold.classify(score, key)
        if not (self.learn == "unflagged" and flag):
            model.learn_one(x)
        self._expire()
        return score, flag


# --- drift


class DriftState:
    """river's drift detector (``ADWIN``, ``PageHinkley``) on one column's values in arrival order;
    ``update(v)`` returns the number of values seen when drift is detected, else None (missing and
    infinite values are skipped: one infinity would turn river's running mean to inf or NaN for good)."""

    def __init__(self, method: str, params: dict[str, Any]) -> None:
        from river import drift

        self.detector = {"adwin": drift.ADWIN, "page_hinkley": drift.PageHinkley}[method](**params)
        self.seen = 0

    def update(self, value: Any) -> int | None:
        v = as_number(value)
        if v != v or v in (math.inf, -math.inf):
            return None
        self.detector.update(v)
        self.seen += 1
        return self.seen if self.detector.drift_detected else None


# --- patterns


class PatternState:
    """A pattern's matching (``Pattern``): events wait until the watermark (largest event time seen minus
    ``delay_ns``) passes them, then advance each key's candidates in event-time order (ties in arrival order).

    ``steps`` are ``(times, {column index: earlier step index})``; ``add(key, t, masks, event_id, values)``
    takes an on-time event's step conditions and its ``differs_from`` values (one per value column) and
    returns the matches released: ``(key, first time, last time, event ids)``. ``is_late(t)`` says whether
    an event arrives behind the watermark (it goes to the ``late`` output instead); ``finish()`` releases
    everything at the end of a bounded stream.
    """

    MAX_RUNS = 1000

    def __init__(self, steps: list[tuple[int, dict[int, int]]], within_ns: int, delay_ns: int) -> None:
        self.times = [t for t, _ in steps]
        self.differs = [dict(d) for _, d in steps]
        self.within_ns = within_ns
        self.delay_ns = delay_ns
        self.max_seen: int | None = None
        self.buffer: list[tuple[int, int, Any, list[bool], Any, list[Any]]] = []
        self.seq = 0
        self.runs: dict[Any, list[list[Any]]] = {}  # key -> [step, count, first time, ids, values per step]
        self.since_sweep = 0

    def is_late(self, t: int) -> bool:
        self.seq += 1
        return self.max_seen is not None and t < self.max_seen - self.delay_ns

    def add(
        self, key: Any, t: int, masks: list[bool], event_id: Any, values: list[Any]
    ) -> list[tuple[Any, int, int, list[Any]]]:
        if any(masks):
            heapq.heappush(self.buffer, (t, self.seq, key, masks, event_id, values))
        self.max_seen = t if self.max_seen is None else max(self.max_seen, t)
        return self._release(self.max_seen - self.delay_ns)

    def finish(self) -> list[tuple[Any, int, int, list[Any]]]:
        return self._release(None)

    def _release(self, watermark: int | None) -> list[tuple[Any, int, int, list[Any]]]:
        out = []
        while self.buffer and (watermark is None or self.buffer[0][0] <= watermark):
            t, _, key, masks, event_id, values = heapq.heappop(self.buffer)
            match = self._advance(key, t, masks, event_id, values)
            if match is not None:
                out.append(match)
        self.since_sweep += 1
        if watermark is not None and self.since_sweep >= 1024:
            self.since_sweep = 0
            horizon = watermark - self.within_ns
            for k in [k for k, runs in self.runs.items() if not runs or runs[-1][2] < horizon]:
                del self.runs[k]  # no later event can complete them (their runs are in creation order)
        return out

    def _advance(self, key: Any, t: int, masks: list[bool], event_id: Any, values: list[Any]) -> Any:
        n_steps = len(self.times)
        slot = typed_id(key)
        runs = [r for r in self.runs.get(slot, []) if r[2] >= t - self.within_ns]
        done = None
        for r in runs:
            s = r[0]
            if not masks[s] or not self._differs(r, s, values):
                continue
            self._take(r, event_id, values)
            if r[0] == n_steps and done is None:
                done = r
        if done is None and masks[0]:
            r = [0, 0, t, [], [[] for _ in self.times]]
            self._take(r, event_id, values)
            if r[0] == n_steps:
                done = r
            else:
                runs.append(r)
                if len(runs) > self.MAX_RUNS:
                    del runs[0]
        if done is not None:
            self.runs[slot] = []
            return key, done[2], t, list(done[3])
        self.runs[slot] = runs
        return None

    def _differs(self, run: list[Any], step: int, values: list[Any]) -> bool:
        for column, earlier in self.differs[step].items():
            v = values[column]
            if missing_value(v):
                return False
            if any(v == taken[column] for taken in run[4][earlier]):
                return False
        return True

    def _take(self, run: list[Any], event_id: Any, values: list[Any]) -> None:
        s = run[0]
        run[3].append(event_id)
        run[4][s].append(values)
        run[1] += 1
        if run[1] == self.times[s]:
            run[0], run[1] = s + 1, 0


# --- steps on rows: what an exported job runs per record


class RowStep:
    """One step on rows (dicts), in arrival order: ``process(row)`` and, at the end of a bounded stream,
    ``finish()`` return ``(output, row)`` pairs (``"out"``, ``"dead_letter"``, ``"late"``, ``"drift"``).

    Built by :func:`make_step` from a plain-data spec (the exporter writes it from the step's config).
    ``evaluate(expr, row)`` evaluates a rule's or a pattern step's condition on one row (exports pass
    the pandas evaluation of their filters); ``to_ns``/``from_ns`` convert event times (those of
    ``streamlab._record``, which generated modules carry too).
    """

    def __init__(self, spec: dict[str, Any], evaluate: Any, to_ns: Any, from_ns: Any) -> None:
        self.spec = spec
        self.bind(evaluate, to_ns, from_ns)

    def bind(self, evaluate: Any, to_ns: Any, from_ns: Any) -> None:
        """Set the helpers; a pickled step leaves them out (they belong to the running program), so a
        step read back from a checkpoint is bound again before use."""
        self.evaluate = evaluate
        self.to_ns = to_ns
        self.from_ns = from_ns

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("evaluate", "to_ns", "from_ns")}

    def time_ns(self, row: dict[str, Any], column: str) -> int | None:
        value = row.get(column)
        if missing_value(value):
            return None
        try:
            return int(self.to_ns(value))
        except (TypeError, ValueError, OverflowError):
            return None

    def keyed(self, row: dict[str, Any]) -> tuple[int | None, str | None]:
        """The event time of a keyed feature or rule, or why the row goes to dead letter."""
        key, time = self.spec["key"], self.spec.get("time")
        if missing_value(row.get(key)):
            return None, f"key column {key!r} is missing"
        if unkeyable(row.get(key)):
            return None, unkeyable_reason(key)
        if time is None:
            return 0, None
        t = self.time_ns(row, time)
        return t, None if t is not None else unreadable_time_reason(time)

    def process(self, row: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        raise NotImplementedError

    def finish(self) -> list[tuple[str, dict[str, Any]]]:
        return []


class FeatureStep(RowStep):
    """The keyed features and the velocity rule: one or two columns computed from the key's history."""

    def __init__(self, spec: dict[str, Any], evaluate: Any, to_ns: Any, from_ns: Any) -> None:
        super().__init__(spec, evaluate, to_ns, from_ns)
        kind = spec["kind"]
        if kind in ("velocity_feature", "velocity_rule"):
            self.state: Any = WindowEvents(spec["window_ns"], spec["lateness_ns"])
        elif kind == "distinct_count_feature":
            self.state = DistinctValues(spec["window_ns"], spec["lateness_ns"])
        elif kind == "zscore_feature":
            self.state = ZScoreState(spec["max_keys"])
        elif kind == "ratio_to_median_feature":
            self.state = RatioToMedianState(spec["history"], spec["max_keys"])
        elif kind == "time_since_last_feature":
            self.state = TimeSinceLastState(spec["max_keys"])
        else:
            raise ValueError(f"step kind {kind!r} is not a feature")

    def process(self, row: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        spec = self.spec
        t, reason = self.keyed(row)
        if reason is not None or t is None:
            return [("dead_letter", {**row, "reason": reason})]
        key, kind, out = row[spec["key"]], spec["kind"], dict(row)
        if kind == "distinct_count_feature" and unkeyable(row.get(spec["value"])):
            return [("dead_letter", {**row, "reason": unkeyable_value_reason(spec["value"])})]
        if kind == "velocity_feature":
            count, total = self.state.update(key, t, row.get(spec["value"]) if spec["value"] else None)
            out[spec["count_column"]] = count
            if spec["value"]:
                out[spec["sum_column"]] = total
        elif kind == "velocity_rule":
            count, _ = self.state.update(key, t, None)
            out[spec["name"] + "_count"] = count
            merge_alert(out, spec["name"], count > spec["max_count"])
        elif kind == "distinct_count_feature":
            out[spec["column"]] = self.state.update(key, t, row.get(spec["value"]))
        elif kind == "time_since_last_feature":
            out[spec["column"]] = self.state.update(key, t)
        else:
            out[spec["column"]] = self.state.update(key, row.get(spec["value"]))
        return [("out", out)]


class RuleStep(RowStep):
    """``ThresholdRule``: alert where a condition holds (an expression, or ``column op value``)."""

    def process(self, row: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        spec = self.spec
        if spec["expr"] is not None:
            try:
                alert = truthy(self.evaluate(spec["expr"], row))
            except Exception:  # a value the condition cannot take: the row goes to dead letter
                reason = condition_failure(
                    f"rule {spec['name']!r}", spec["expr"], spec.get("columns") or (), row
                )
                return [("dead_letter", {**row, "reason": reason})]
        else:
            alert = compare_values(row.get(spec["column"]), spec["op"], spec["value"])
        out = dict(row)
        merge_alert(out, spec["name"], alert)
        return [("out", out)]


class DetectStep(RowStep):
    """The detect step on rows: adds ``score``, ``is_anomaly`` (with a threshold) and ``detector``."""

    def __init__(self, spec: dict[str, Any], evaluate: Any, to_ns: Any, from_ns: Any) -> None:
        super().__init__(spec, evaluate, to_ns, from_ns)
        self.state = DetectState(
            spec["detector"],
            spec["features"],
            spec["key"],
            spec["learn"],
            spec["threshold"],
            spec["max_keys"],
            spec["ttl_ns"],
            spec["time"],
        )

    def process(self, row: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        spec = self.spec
        key = row.get(spec["key"]) if spec["key"] is not None else None
        t = self.time_ns(row, spec["time"]) if self.state.ttl_ns is not None else None
        result = self.state.process([row.get(f) for f in spec["features"]], key, t)
        if isinstance(result, str):
            return [("dead_letter", {**row, "reason": result})]
        score, flag = result
        out = {**row, "score": score}
        if spec["threshold"] is not None:
            out["is_anomaly"] = bool(flag)
        out["detector"] = self.state.name
        return [("out", out)]


class DriftStep(RowStep):
    """``DriftDetector``: rows pass through; each detected change is a row of the ``drift`` output."""

    def __init__(self, spec: dict[str, Any], evaluate: Any, to_ns: Any, from_ns: Any) -> None:
        super().__init__(spec, evaluate, to_ns, from_ns)
        self.state = DriftState(spec["method"], spec["params"])

    def process(self, row: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        spec = self.spec
        value = as_number(row.get(spec["column"]))
        seen = self.state.update(value)
        out: list[tuple[str, dict[str, Any]]] = [("out", row)]
        if seen is not None:
            t = self.time_ns(row, spec["time"]) if spec["time"] is not None else None
            drift = {"time": None if t is None else self.from_ns(t), "value": value}
            out.append(
                ("drift", {**drift, "method": spec["method"], "column": spec["column"], "n_seen": seen})
            )
        return out


class PatternRowStep(RowStep):
    """``Pattern`` on rows: late rows to ``late``, matches (released by the watermark) to ``out``."""

    def __init__(self, spec: dict[str, Any], evaluate: Any, to_ns: Any, from_ns: Any) -> None:
        super().__init__(spec, evaluate, to_ns, from_ns)
        steps = [(s["times"], {int(c): int(e) for c, e in s["differs_from"].items()}) for s in spec["steps"]]
        self.state = PatternState(steps, spec["within_ns"], spec["delay_ns"])
        self.n_events = sum(s["times"] for s in spec["steps"])

    def process(self, row: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
        spec = self.spec
        t, reason = self.keyed(row)
        if reason is not None or t is None:
            return [("dead_letter", {**row, "reason": reason})]
        for c in spec["value_columns"]:  # differs_from tells values apart by hashing them
            if unkeyable(row.get(c)):
                return [("dead_letter", {**row, "reason": unkeyable_value_reason(c, "differs_from")})]
        if self.state.is_late(t):
            return [("late", row)]
        masks = []
        for s in spec["steps"]:
            try:
                masks.append(truthy(self.evaluate(s["where"], row)))
            except Exception:  # a value the condition cannot take: the row goes to dead letter
                what = f"pattern {spec['name']!r} step {s['name']!r}"
                return [
                    ("dead_letter", {**row, "reason": condition_failure(what, s["where"], s["columns"], row)})
                ]
        values = [row.get(c) for c in spec["value_columns"]]
        return self.matches(self.state.add(row[spec["key"]], t, masks, row.get(spec["id_column"]), values))

    def finish(self) -> list[tuple[str, dict[str, Any]]]:
        return self.matches(self.state.finish())

    def matches(self, found: list[tuple[Any, int, int, list[Any]]]) -> list[tuple[str, dict[str, Any]]]:
        spec = self.spec
        return [
            (
                "out",
                {
                    spec["key"]: key,
                    "pattern": spec["name"],
                    "first_time": self.from_ns(first),
                    "last_time": self.from_ns(last),
                    "event_ids": ids,
                    "n_events": self.n_events,
                },
            )
            for key, first, last, ids in found
        ]


STEP_KINDS = {
    "velocity_feature": FeatureStep,
    "velocity_rule": FeatureStep,
    "distinct_count_feature": FeatureStep,
    "zscore_feature": FeatureStep,
    "ratio_to_median_feature": FeatureStep,
    "time_since_last_feature": FeatureStep,
    "threshold_rule": RuleStep,
    "detect": DetectStep,
    "drift_detector": DriftStep,
    "pattern": PatternRowStep,
}


def make_step(spec: dict[str, Any], evaluate: Any, to_ns: Any, from_ns: Any) -> RowStep:
    """The row-level state machine of a step from its spec (``spec["kind"]`` picks it)."""
    step: RowStep = STEP_KINDS[spec["kind"]](spec, evaluate, to_ns, from_ns)
    return step
