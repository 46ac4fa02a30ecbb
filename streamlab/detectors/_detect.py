"""The detect step: score each event with an online detector, then learn from it."""

from __future__ import annotations

import functools
import heapq
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np
import pandas as pd

from streamlab import _step_codecs as codec
from streamlab._compat import PANDAS_3, factorize, object_index
from streamlab._detector_record import unkeyable_reason
from streamlab._floats import float_values
from streamlab._keytable import object_array, typed_key_column, unhashable_rows
from streamlab._step_kinds import param, step_kind
from streamlab._time import NAT_NS, Duration, unreadable_time_reason
from streamlab.detectors._common import (
    PickledStateOperator,
    StepConfig,
    _with_columns,
    check_all,
    check_columns,
    check_duration,
    check_name,
    check_positive_int,
    dead_letter,
    event_time_ns,
    kernels,
    reject,
    require_columns,
)
from streamlab.detectors._models import Detector, as_detector
from streamlab.detectors._thresholds import ThresholdFilter, ThresholdOperator, _QuantileOperator
from streamlab.detectors._vectorized import ModelBank
from streamlab.detectors._windowcount import index_with, positions_in
from streamlab.operators import Outputs

__all__ = ["Detect", "DetectOperator"]

_LEARN_MODES = ("all", "unflagged")


def _detector_class(step: Detect) -> str:
    """A detect step is called by its detector (``HalfSpaceTreesDetector``): what tells it apart."""
    return type(step.detector).__name__


@step_kind(config=True, label=_detector_class)
@dataclass(frozen=True, eq=False)
class Detect(StepConfig):
    """Score every event with an online anomaly detector, then learn from it (score-then-learn).

    Results are those of handling events one by one in arrival order, so they are deterministic
    for a given stream and do not depend on how it is cut into batches. Detectors with a vectorized
    twin (:meth:`Detector.vectorized`: ``HalfSpaceTreesDetector``, ``GaussianScorerDetector`` without
    ``window_size``, ``StandardAbsoluteDeviationDetector``) score a whole micro-batch at once with
    those same results: bit for bit for Half-Space Trees; for the running-moment scorers bit for bit
    with numba installed (the ``fast`` extra: river's update compiled, event by event) and within
    1e-9 (relative) without it, as their sequential update has no exact vectorized form (see
    ``MomentsBank``). With numba and a ``QuantileThresholdFilter`` under ``learn="unflagged"``,
    scoring, the threshold's P² update and learning run in one compiled loop. Any other detector is
    called event by event. With ``key``, each key gets its own
    model (a clone of ``detector``) held in an LRU of at most ``max_keys`` models; a key idle for
    more than ``key_ttl`` behind the newest event time is dropped after the event that makes it so
    (from then on it holds no place among the ``max_keys``) and starts over with a fresh model.
    Without ``key`` one model sees every event.

    Output ``out``: the input rows plus ``score``, ``is_anomaly`` (only with a threshold) and
    ``detector`` (the detector's name). Output ``dead_letter``: rows whose features are missing or
    not numbers, whose key is missing, or (with a TTL) whose event time is missing, with a ``reason``.

    The output columns have these fixed names (one score per event, as river's ``score_one``
    returns). To combine detectors, keep each one's results under names of your own before the next
    ``detect`` (``.with_columns(gauss_score='score', gauss_is_anomaly='is_anomaly')``), or run them on
    branches of the stream; a ``detect`` that would overwrite the ``score``/``is_anomaly`` of a
    ``detect`` before it, unread, is refused when it is added (``PipelineConfigError``).

    Parameters
    ----------
    detector
        A streamlab :class:`Detector` or any river anomaly detector (wrapped in ``RiverDetector``).
    features
        Numeric columns passed to the detector as ``{column: value}``.
    key
        Column holding the entity (user, card) to model separately; ``None`` for one global model.
    learn
        ``"all"``: learn from every event; ``"unflagged"``: skip events flagged as anomalies, so
        fraud does not teach the model that fraud is normal (needs ``threshold``).
    threshold
        A threshold filter producing ``is_anomaly``, or ``None``.
    max_keys
        Most per-key models kept; the least recently used is evicted beyond it.
    key_ttl
        Event-time idleness after which a key's model is dropped (``None``: never).
    time
        Event-time column (used for the TTL only).

    Examples
    --------
    >>> import pandas as pd
    >>> from streamlab.detectors import FixedThresholdFilter, GaussianScorerDetector
    >>> step = Detect(GaussianScorerDetector(grace_period=4), features=["amount"], key="user_id",
    ...               threshold=FixedThresholdFilter(0.99), key_ttl=None)
    >>> batch = pd.DataFrame({"user_id": ["u1"] * 6, "amount": [10.0, 11.0, 9.0, 10.0, 10.5, 90.0]})
    >>> out = step.build().process(batch)["out"]
    >>> out["is_anomaly"].tolist()
    [False, False, False, False, False, True]
    >>> out["detector"].iloc[0]
    'gaussian_scorer'
    """

    detector: Any = param(codec=codec.DETECTOR)
    features: Sequence[str] = param(codec=codec.NAMES)
    key: str | None = None
    learn: str = "all"
    threshold: ThresholdFilter | None = param(codec=codec.NESTED_CONFIG, default=None)
    max_keys: int = 10_000
    key_ttl: Duration | None = param(codec=codec.OPTIONAL_DURATION_TEXT, default="1h")
    time: str = "timestamp"

    kind: ClassVar[str] = "detect"
    output_names: ClassVar[tuple[str, ...]] = ("out", "dead_letter")

    def check_columns(self, columns: Sequence[str]) -> tuple[str, str] | None:
        """Missing inputs, or a ``score``/``is_anomaly`` column no detector wrote (a label, say)."""
        problem = super().check_columns(columns)
        if problem is not None:
            return problem
        # an upstream Detect also writes "detector": the pipeline refuses it when nothing read its score
        # in between (Pipeline._check, streamlab.pipeline.unread_detect: it needs the graph)
        clash = [c for c in ("score", "is_anomaly") if c in columns and "detector" not in columns]
        if clash:
            return (
                f"the step would overwrite the input column(s) {clash!r}, which no detector wrote (a label, perhaps)",
                "rename them before this step, e.g. .select(...) keeping the label under another name",
            )
        return None

    def numeric_columns(self) -> tuple[str, ...]:
        """The features the detector scores."""
        return tuple(self.features)

    def required_columns(self) -> tuple[str, ...]:
        """Input columns the step reads."""
        keyed = (self.key,) + ((self.time,) if self.key_ttl is not None else ()) if self.key else ()
        return (*self.features, *keyed)

    def added_columns(self) -> tuple[str, ...]:
        """Columns the step adds."""
        return ("score", "is_anomaly", "detector") if self.threshold is not None else ("score", "detector")

    def added_column_types(self) -> dict[str, str]:
        """Types of the added columns: ``score`` is float64, ``is_anomaly`` bool, ``detector`` text."""
        return {"score": "float64", "is_anomaly": "bool", "detector": "string"}

    def __post_init__(self) -> None:
        where = "Detect"
        object.__setattr__(self, "detector", as_detector(self.detector, where=where))
        object.__setattr__(self, "features", check_columns(self.features, where=where, what="features"))
        try:
            self.detector.check_features(self.features)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None

        def check_key() -> None:
            if self.key is not None:
                check_name(self.key, where=where, what="key")
                if self.key in self.features:
                    raise ValueError(
                        f"{where}: key {self.key!r} is also listed in features; remove it from features"
                    )

        def check_learn() -> None:
            if self.learn not in _LEARN_MODES:
                raise ValueError(
                    f"{where}: learn must be 'all' or 'unflagged', got {self.learn!r}; pass learn='all' (learn "
                    "from every event) or learn='unflagged' (only from events the threshold did not flag)"
                )

        # every problem of these arguments at once, not one per attempt
        check_all(
            where,
            [
                check_key,
                check_learn,
                functools.partial(check_positive_int, self.max_keys, where=where, what="max_keys"),
                functools.partial(
                    lambda ttl: ttl is None or check_duration(ttl, where=where, what="key_ttl"), self.key_ttl
                ),
                functools.partial(check_name, self.time, where=where, what="time"),
            ],
        )
        if self.threshold is not None and not isinstance(self.threshold, ThresholdFilter):
            raise TypeError(
                f"{where}: threshold must be a threshold filter such as FixedThresholdFilter(0.9) or "
                f"QuantileThresholdFilter(q=0.99), got {type(self.threshold).__name__}"
            )
        if self.learn == "unflagged" and self.threshold is None:
            raise ValueError(
                f"{where}: learn='unflagged' needs a threshold to know which events are flagged; "
                "pass threshold=QuantileThresholdFilter(q=0.99) or use learn='all'"
            )
        if self.threshold is not None:
            self.threshold.build(self.key)  # surfaces a threshold/key mismatch now, not on the first batch
            score = getattr(self.threshold, "score", "score")
            if score != "score":  # the threshold judges the scores Detect computes, never that column
                raise ValueError(
                    f"{where}: threshold={self.threshold!r} reads the column {score!r}, but inside Detect it "
                    "judges the scores Detect computes, so score= would be silently unused; drop score= "
                    f"from the threshold, or apply it after Detect as its own step (.apply({type(self.threshold).__name__}"
                    f"(..., score={score!r})))"
                )

    def build(self) -> DetectOperator:
        """Return the runtime state (fresh models)."""
        return DetectOperator(self)


class DetectOperator(PickledStateOperator):
    """Runtime state of :class:`Detect`: the models (global or per key) and the threshold state."""

    output_names = ("out", "dead_letter")

    def __init__(self, step: Detect) -> None:
        self.step = step
        self.prototype: Detector = step.detector
        self.name = self.prototype.name
        self.threshold: ThresholdOperator | None = (
            None if step.threshold is None else step.threshold.build(step.key)
        )
        self.ttl_ns: int | None = (
            None
            if step.key is None or step.key_ttl is None
            else check_duration(step.key_ttl, where="", what="")
        )
        # the vectorized twin of the detector, when it has one: models are slots of the bank
        self.bank: ModelBank | None = self.prototype.vectorized(tuple(step.features))
        self.global_model: Detector | None = (
            self.prototype.clone() if step.key is None and self.bank is None else None
        )
        self.global_slot = self.bank.allocate() if step.key is None and self.bank is not None else -1
        # key -> [model (or bank slot), last event time ns]; insertion order is recency (LRU). On the
        # vectorized path the keys live in ``table`` (arrays) between batches instead
        self.models: OrderedDict[Hashable, list[Any]] = OrderedDict()
        self.table: _KeyTable | None = _KeyTable() if step.key is not None and self.bank is not None else None
        self.max_seen_ns = NAT_NS
        self.evictions = {"lru": 0, "ttl": 0}
        self.dropped: list[int] = []  # bank slots of models dropped during the current batch
        # the keys' latest times as a heap, within a batch from its first full LRU on (None between batches)
        self.expiry: _Expiry | None = None

    def _bad_rows(self, batch: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """Feature matrix, event times, good-row mask and rejection reasons (None when all are good).

        The event times are only read with a TTL; without one they are all ``NAT_NS`` (and, without
        a key, where nothing reads them, an empty array).
        """
        step = self.step
        n = len(batch)
        values = np.empty((n, len(step.features)), dtype="float64")
        for j, col in enumerate(step.features):
            # numpy numbers are read as they are (ints rounded to float64 as pandas would)
            values[:, j] = float_values(batch[col])
        missing_key = None if step.key is None else batch[step.key].isna().to_numpy()
        unhashable = None if step.key is None else unhashable_rows(batch[step.key])
        if self.ttl_ns is not None:
            times = event_time_ns(batch, step.time, where="Detect")
        else:
            times = np.full(n if step.key is not None else 0, NAT_NS, dtype=np.int64)
        # the usual batch: every feature a finite number, every key present (one pass, no masks)
        if (
            bool(np.isfinite(values).all())
            and (missing_key is None or not missing_key.any())
            and unhashable is None
            and (self.ttl_ns is None or not (times == NAT_NS).any())
        ):
            return values, times, np.ones(n, dtype=bool), None
        checks: list[tuple[np.ndarray, str]] = [
            (~np.isfinite(values[:, j]), f"feature {col!r} is missing or not a finite number")
            for j, col in enumerate(step.features)
        ]
        if missing_key is not None:
            checks.append((missing_key, f"key column {step.key!r} is missing"))
        if unhashable is not None:
            checks.append((unhashable, unkeyable_reason(str(step.key))))
        if self.ttl_ns is not None:
            checks.append((times == NAT_NS, unreadable_time_reason(step.time, "key_ttl")))
        good, reasons = reject(n, checks)
        return values, times, good, reasons

    def _model_for(self, key: Hashable, t: int) -> Any:
        """The key's model (a bank slot on the vectorized path), fresh if the key is new or was dropped.

        Advances the newest event time to ``t``. The rule is that of handling events one by one
        (``streamlab._detector_record.DetectState``): after each event, the keys idle for more than
        ``key_ttl`` behind the newest event time are dropped. Here they are dropped at the end of the
        batch (``_expire``), or, when a new key finds the LRU full, before it is added: the keys the
        previous event's sweep would have dropped hold no place, so the batch cut cannot change
        which key the LRU evicts.
        """
        before = self.max_seen_ns
        if t > before:
            self.max_seen_ns = t
        entry = self.models.get(key)
        if entry is not None and self.ttl_ns is not None and entry[1] < self.max_seen_ns - self.ttl_ns:
            del self.models[key]
            self._dropped(entry[0])
            self.evictions["ttl"] += 1
            entry = None
        if entry is None and self.ttl_ns is not None and t < self.max_seen_ns - self.ttl_ns:
            # a new key already idle past key_ttl: a fresh model, dropped after the event as the sweep
            # would drop it, so it takes no place among the max_keys (it evicts no live key)
            if self.bank is None:
                return self.prototype.clone()
            slot = self.bank.allocate()
            self._dropped(slot)
            return slot
        if entry is None:
            max_keys = self.step.max_keys
            if len(self.models) >= max_keys and self.ttl_ns is not None and before != NAT_NS:
                self._drop_stale(before - self.ttl_ns)
            entry = [self.prototype.clone() if self.bank is None else self.bank.allocate(), t]
            self.models[key] = entry
            if len(self.models) > max_keys:
                self._dropped(self.models.popitem(last=False)[1][0])
                self.evictions["lru"] += 1
        else:
            self.models.move_to_end(key)
            if t <= entry[1]:
                return entry[0]
            entry[1] = t
        if self.expiry is not None:
            self.expiry.push(entry[1], key)
        return entry[0]

    def _drop_stale(self, horizon: int) -> None:
        """Drop the models whose latest event is before ``horizon`` (found with the batch's heap)."""
        if self.expiry is None:
            self.expiry = _Expiry(self.models)
        for model in self.expiry.pop_stale(self.models, horizon):
            self._dropped(model)
            self.evictions["ttl"] += 1

    def _dropped(self, model: Any) -> None:
        # a dropped slot is released after the batch, so no later event of the batch can reuse it
        if self.bank is not None:
            self.dropped.append(model)

    def _expire(self) -> None:
        self.expiry = None  # the sweep below covers every key
        if self.table is not None:
            if self.ttl_ns is not None and self.max_seen_ns != NAT_NS:
                stale_slots = self.table.expire(self.max_seen_ns - self.ttl_ns)
                self.dropped.extend(stale_slots)
                self.evictions["ttl"] += len(stale_slots)
            cast(ModelBank, self.bank).release(self.dropped)
            self.dropped = []
            return
        if self.ttl_ns is not None and self.max_seen_ns != NAT_NS:
            horizon = self.max_seen_ns - self.ttl_ns
            stale = [k for k, (_, last) in self.models.items() if last < horizon]
            for k in stale:
                self._dropped(self.models.pop(k)[0])
            self.evictions["ttl"] += len(stale)
        if self.bank is not None:
            self.bank.release(self.dropped)
            self.dropped = []

    def _slots_without_eviction(self, keys: pd.Series, times: np.ndarray) -> np.ndarray | None:
        """Each event's bank slot, decided per key rather than per event, or None when that is not exact.

        Exact when the batch evicts nothing: its new keys fit under ``max_keys`` and no key's model
        goes stale (``key_ttl``) before one of its events. Then the per-event bookkeeping reduces to:
        known keys keep their model, new keys get a fresh one, each key's time is its latest, and
        the batch's keys become the most recent in the order of their last events. Done with arrays
        on the key table: no Python work per known key.
        """
        bank = cast(ModelBank, self.bank)
        table = cast(_KeyTable, self.table)
        codes, uniques = _factorize(keys, table.live)
        u = object_index(uniques)  # typed (no boxing per key): the table's lookups stay in that dtype
        if len(table.index):  # keys compared as Python compares them, as the per-event path's dict does
            table.index, pos = positions_in(table.index, u)
        else:
            pos = np.full(len(u), -1, dtype=np.int64)
        known = pos >= 0
        known[known] = table.slot[pos[known]] >= 0
        n_new = len(u) - int(known.sum())
        if table.live + n_new > self.step.max_keys:
            return None
        carried = np.full(len(u), NAT_NS, dtype=np.int64)
        carried[known] = table.last[pos[known]]
        if self.ttl_ns is None:
            # no TTL, no event times (all NaT): a key's time stays what it was; only the batch
            # position of each key's last event (its recency) is needed, without sorting
            latest = carried
            last_event = np.full(len(u), -1, dtype=np.int64)
            np.maximum.at(last_event, codes, np.arange(len(codes), dtype=np.int64))
        else:
            codes_s = codes.astype(np.uint16) if len(u) <= 65535 else codes  # a radix sort
            order = np.argsort(codes_s, kind="stable")
            sc, st = codes[order], times[order]
            starts = np.flatnonzero(np.r_[True, sc[1:] != sc[:-1]])
            incl = np.maximum(pd.Series(st).groupby(sc).cummax().to_numpy(), carried[sc])
            before = np.empty_like(incl)
            before[1:] = incl[:-1]
            before[starts] = carried[sc[starts]]
            newest = np.maximum.accumulate(np.maximum(times, self.max_seen_ns))[order]
            if ((before != NAT_NS) & (before < newest - self.ttl_ns)).any():
                return None
            latest = np.maximum(np.maximum.reduceat(st, starts), carried)
            last_event = order[np.r_[starts[1:], len(sc)] - 1]  # batch position of each key's last event
        slot_of = np.empty(len(u), dtype=np.int64)
        slot_of[known] = table.slot[pos[known]]
        fresh = np.flatnonzero(~known)
        if len(fresh):
            slot_of[fresh] = bank.allocate_many(len(fresh))
            pos[fresh] = table.add(u[fresh], pos[fresh])
        table.slot[pos] = slot_of
        table.last[pos] = latest
        table.tick[pos] = table.next_tick + last_event
        table.next_tick += len(times)
        newest_t = int(times.max())
        if newest_t > self.max_seen_ns:
            self.max_seen_ns = newest_t
        each: np.ndarray = slot_of[codes]
        return each

    def _score_vectorized(
        self,
        values: np.ndarray,
        key_col: pd.Series | None,
        keys: list[Any] | None,
        times: np.ndarray,
        flags: list[bool],
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores from the bank; with ``learn="unflagged"`` flagged events are not learned.

        With the compiled judge, its flags come back as the second element (a bool array);
        otherwise they are appended to ``flags`` and the second element is None.

        The slot of every event is decided first, by the same LRU/TTL bookkeeping as the per-event
        path. With ``learn="unflagged"``, a chunk is scored and learned speculatively while the
        threshold classifies its scores one by one; at the first flagged event the chunk's slots are
        put back and only the events before it are learned again, so the result is the per-event one.
        """
        bank = cast(ModelBank, self.bank)
        n = len(values)
        if key_col is None:
            slots = np.full(n, self.global_slot, dtype=np.int64)
        else:
            fast = self._slots_without_eviction(key_col, times) if n else None
            if fast is None:
                if keys is None:
                    keys = key_col.to_numpy(dtype=object).tolist()
                table = cast(_KeyTable, self.table)
                self.models = table.to_models()
                fast = np.empty(n, dtype=np.int64)
                model_for = self._model_for
                for i, (k, t) in enumerate(zip(keys, times.tolist())):
                    fast[i] = model_for(k, t)
                table.from_models(self.models)
                self.models = OrderedDict()
            slots = fast
        threshold = self.threshold
        if threshold is None or self.step.learn == "all":
            return bank.score_learn_many(values, slots), None
        judged = self._judge_compiled(bank, values, slots)
        if judged is not None:
            return judged
        scores = np.empty(n)
        pos, chunk = 0, 256
        while pos < n:
            end = min(n, pos + chunk)
            touched = np.unique(slots[pos:end])
            saved = bank.save(touched)
            sc = bank.score_learn_many(values[pos:end], slots[pos:end])
            flagged_at = -1
            for j, s in enumerate(sc.tolist()):
                flag = threshold.classify_one(s) if keys is None else threshold.classify_one(s, keys[pos + j])
                flags.append(flag)
                if flag:
                    flagged_at = j
                    break
            if flagged_at < 0:
                scores[pos:end] = sc
                pos, chunk = end, min(2 * chunk, 16_384)
                continue
            bank.restore(saved)
            bank.score_learn_many(values[pos : pos + flagged_at], slots[pos : pos + flagged_at])
            scores[pos : pos + flagged_at + 1] = sc[: flagged_at + 1]
            pos += flagged_at + 1
            chunk = max(32, 2 * flagged_at)
        return scores, None

    def _judge_compiled(
        self, bank: ModelBank, values: np.ndarray, slots: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Score, judge and learn event by event in one compiled loop (the quantile threshold only).

        The threshold's river ``Quantile`` is read into the kernel's P² state and written back after,
        so the threshold object stays the one state (and snapshot) of the threshold.
        """
        k = kernels()
        threshold = self.threshold
        if k is None or type(threshold) is not _QuantileOperator:
            return None
        try:
            p2 = k.p2_from_river(threshold.quantile)
        except (AttributeError, ValueError):  # another river's Quantile: keep the chunked path
            return None
        seen = np.array([threshold.seen], dtype=np.int64)
        out = bank.score_judge_learn(values, slots, p2, threshold.warmup, seen)
        if out is not None:
            k.p2_into_river(p2, threshold.quantile)
            threshold.seen = int(seen[0])
        return out

    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        step = self.step
        required = list(step.features) + ([step.key] if step.key else [])
        require_columns(batch, required, where="Detect")
        values, times, good, reasons = self._bad_rows(batch)
        features = step.features
        # river's API takes one dict per event; build them lazily rather than a list per batch
        # (the vectorized path takes the matrix as it is)
        rows = [] if self.bank is not None else (values if reasons is None else values[good]).tolist()
        xs = (dict(zip(features, r)) for r in rows)
        scores: list[float] | np.ndarray = []
        flags: list[bool] = []
        threshold = self.threshold
        # With learn="all" flags never feed back into learning, so the threshold runs over the
        # batch's scores afterwards (same result: its state depends on the scores only).
        inline = threshold is not None and step.learn == "unflagged"
        classify = threshold.classify_one if threshold is not None and inline else None
        keys: list[Any] | None = None
        judged: np.ndarray | None = None  # the compiled judge's flags
        # a json field's true, 1 and 1.0 are three keys (tagged), as windows and the exports tell them
        key_col = None if step.key is None else batch[step.key]
        if key_col is not None:
            key_col = typed_key_column(key_col if reasons is None else key_col[good])
        if self.bank is not None:
            # the keys as Python objects only for a per-key threshold (the slots take the column)
            keys = None if key_col is None or threshold is None else key_col.to_numpy(dtype=object).tolist()
            scores, judged = self._score_vectorized(
                values if reasons is None else values[good],
                key_col,
                keys,
                times if reasons is None or key_col is None else times[good],
                flags,
            )
            if key_col is not None:
                self._expire()
        elif step.key is None:
            # the hot loop of a single-model detector: keep per-event work minimal
            score_one, learn_one = cast(Detector, self.global_model).bound_methods()
            if classify is None:
                append = cast(list[float], scores).append
                for x in xs:
                    s = score_one(x)
                    learn_one(x)
                    append(s)
            else:
                for x in xs:
                    s = score_one(x)
                    cast(list[float], scores).append(s)
                    flag = classify(s)
                    flags.append(flag)
                    if not flag:
                        learn_one(x)
        else:
            keys = cast(pd.Series, key_col).to_numpy(dtype=object).tolist()
            ts = (times if reasons is None else times[good]).tolist()
            for x, k, t in zip(xs, keys, ts):
                m = self._model_for(k, t)
                s = m.score_one(x)
                cast(list[float], scores).append(s)
                if classify is None:
                    m.learn_one(x)
                    continue
                flag = classify(s, k)
                flags.append(flag)
                if not flag:
                    m.learn_one(x)
            self._expire()
        out = (batch if reasons is None else batch.loc[good]).reset_index(drop=True)
        score_arr = np.asarray(scores, dtype="float64")
        added: dict[str, Any] = {"score": score_arr}
        if threshold is not None:
            added["is_anomaly"] = (
                np.asarray(flags if judged is None else judged, dtype=bool)
                if inline
                else threshold.classify_many(score_arr, None if keys is None else object_array(keys))
            )
        added["detector"] = _constant_strings(self.name, len(out))
        result: Outputs = {"out": _with_columns(out, added, batch.columns)}
        if reasons is not None:
            result["dead_letter"] = dead_letter(batch, ~good, reasons)
        return result

    def restore(self, state: Any) -> None:
        super().restore(state)
        self.expiry = None  # not in a snapshot taken before the heap existed (and None between batches)
        if "table" not in self.__dict__:  # a snapshot taken before per-key slots moved to the key table
            self.table = None
            if self.step.key is not None and self.bank is not None:
                self.table = _KeyTable()
                self.table.from_models(self.models)
                self.models = OrderedDict()

    def open_state(self) -> dict[str, Any]:
        return {
            "keys": len(self.models) if self.table is None else self.table.live,
            "evictions": dict(self.evictions),
            "max_event_time": None
            if self.max_seen_ns == NAT_NS
            else pd.Timestamp(self.max_seen_ns, tz="UTC"),
        }


def _factorize(keys: pd.Series, expected: int = 0) -> tuple[np.ndarray, Any]:
    """``pd.factorize(keys)`` for a column without missing values: codes in order of first appearance.

    Integer keys go through the compiled hash table of the per-key features (``key_rows``) when
    numba is installed: the same codes and uniques, without pandas' hash table setup per batch.
    """
    k = kernels()
    dtype = keys.dtype
    if k is None or not isinstance(dtype, np.dtype) or dtype.kind not in "iu" or len(keys) == 0:
        return factorize(keys)  # in the column's own dtype: fast for ints and strings
    values = keys.to_numpy()
    if dtype.kind == "u" and dtype.itemsize == 8 and int(values.max()) > np.iinfo(np.int64).max:
        return pd.factorize(keys)
    ints = np.ascontiguousarray(values, dtype=np.int64)
    n = len(ints)
    ok = np.ones(n, dtype=bool)
    rows = np.empty(n, dtype=np.int64)
    new_keys = np.empty(n, dtype=np.int64)
    size = 1 << max(10, (2 * min(n, max(expected, 256))).bit_length())  # ``expected`` keys fill under half
    table = np.full((size, 2), -1, dtype=np.int64)
    at, n_new = k.key_rows(ints, ok, 0, table, 0, rows, new_keys, 0)
    while at < n:  # more than half full: a table twice as large, with the keys so far in their rows
        size *= 2
        table = np.full((size, 2), -1, dtype=np.int64)
        seen = new_keys[:n_new].copy()
        k.key_rows(seen, ok[:n_new], 0, table, 0, np.empty(n_new, np.int64), np.empty(n_new, np.int64), 0)
        at, n_new = k.key_rows(ints, ok, at, table, 0, rows, new_keys, n_new)
    return rows, new_keys[:n_new].astype(values.dtype, copy=False)


def _string_dtype() -> Any:
    """The dtype pandas gives a column of Python strings (``str`` on pandas 3, ``object`` before,
    where the ``future.infer_string`` option can change it: asked every time there)."""
    if _STRING_DTYPE:
        return _STRING_DTYPE[0]
    dtype = pd.Series(["x"]).dtype
    if PANDAS_3:
        _STRING_DTYPE.append(dtype)
    return dtype


_STRING_DTYPE: list[Any] = []


def _constant_strings(value: str, n: int) -> Any:
    """A column of ``n`` times ``value``, as pandas would store the scalar ``value`` assigned to a column.

    With pandas' Arrow-backed strings (pandas 3) the array is built with Arrow's ``repeat`` (a copy of
    one string), several times faster than the scalar assignment's ``take``; otherwise the scalar.
    """
    dtype = _string_dtype()
    if n == 0 or not isinstance(dtype, pd.StringDtype) or dtype.storage != "pyarrow":
        return value
    from pandas.arrays import ArrowStringArray

    return ArrowStringArray(_repeated(value, n), dtype=dtype)  # type: ignore[call-arg]


@functools.lru_cache(maxsize=16)
def _repeated(value: str, n: int) -> Any:
    """An Arrow array of ``n`` times ``value``, kept for the next batches of the same size.

    Arrow arrays are immutable (pandas replaces, never writes into, the array of an Arrow-backed
    column), so every batch's column can wrap the same one: building it is most of the cost of
    the ``detector`` column (a copy of the string per row).
    """
    import pyarrow as pa

    return pa.chunked_array([pa.repeat(pa.scalar(value, pa.large_string()), n)])


class _Expiry:
    """The per-key models' latest event times (``OrderedDict`` entries ``[model, time]``) as a min-heap.

    Finds the keys the TTL has expired without a pass over every key: a key has an item for its
    current time (pushed whenever that time is set) and maybe older ones, which are skipped. The
    insertion counter breaks ties, so keys (possibly of types that do not compare) are never compared.
    """

    def __init__(self, models: OrderedDict[Hashable, list[Any]]) -> None:
        self.heap: list[tuple[int, int, Hashable]] = [(e[1], i, k) for i, (k, e) in enumerate(models.items())]
        heapq.heapify(self.heap)
        self.tie = len(self.heap)

    def push(self, t: int, key: Hashable) -> None:
        """Note the key's new latest time ``t``."""
        heapq.heappush(self.heap, (t, self.tie, key))
        self.tie += 1

    def pop_stale(self, models: OrderedDict[Hashable, list[Any]], horizon: int) -> list[Any]:
        """Remove from ``models`` the entries whose time is before ``horizon``; their models."""
        heap, dropped = self.heap, []
        while heap and heap[0][0] < horizon:
            key = heapq.heappop(heap)[2]
            entry = models.get(key)
            if entry is not None and entry[1] < horizon:  # times only grow: older items are stale too
                del models[key]
                dropped.append(entry[0])
        return dropped


class _KeyTable:
    """The per-key models of a vectorized detect step as arrays: one row per key ever seen.

    ``index`` maps a key to its row; ``slot`` is the key's bank slot (-1: no model, e.g. evicted),
    ``last`` its latest event time, ``tick`` its recency (the LRU order is ascending ``tick``, as an
    ``OrderedDict`` moved to the end on every use). Dropped keys keep their row until compaction.
    """

    def __init__(self) -> None:
        self.index: pd.Index = pd.Index([], dtype=object)
        self.slot = np.empty(0, dtype=np.int64)
        self.last = np.empty(0, dtype=np.int64)
        self.tick = np.empty(0, dtype=np.int64)
        self.next_tick = 0
        self.live = 0

    def add(self, keys: pd.Index, pos: np.ndarray) -> np.ndarray:
        """Rows for keys without a model: their old row when they had one, else a new row."""
        out = pos.copy()
        new = out < 0
        if new.any():
            start = len(self.index)
            added = object_index(keys[new])
            self.index = added if start == 0 else index_with(self.index, added)
            extra = int(new.sum())
            self.slot = np.r_[self.slot, np.full(extra, -1, dtype=np.int64)]
            self.last = np.r_[self.last, np.full(extra, NAT_NS, dtype=np.int64)]
            self.tick = np.r_[self.tick, np.zeros(extra, dtype=np.int64)]
            out[new] = np.arange(start, start + extra)
        self.live += len(keys)
        return out

    def expire(self, horizon: int) -> list[int]:
        """Drop the models whose latest event is before ``horizon``; their slots."""
        stale = np.flatnonzero((self.slot >= 0) & (self.last < horizon))
        slots: list[int] = self.slot[stale].tolist()
        self.slot[stale] = -1
        self.live -= len(stale)
        if len(self.index) > 2 * self.live + 1024:  # compact: forget long-dropped keys
            self.from_models(self.to_models())
        return slots

    def to_models(self) -> OrderedDict[Hashable, list[Any]]:
        """The per-event path's ``OrderedDict`` (key -> [slot, last time]) in LRU order."""
        rows = np.flatnonzero(self.slot >= 0)
        rows = rows[np.argsort(self.tick[rows], kind="stable")]
        keys = self.index[rows].tolist()
        return OrderedDict(
            zip(keys, ([s, t] for s, t in zip(self.slot[rows].tolist(), self.last[rows].tolist())))
        )

    def from_models(self, models: OrderedDict[Hashable, list[Any]]) -> None:
        """Replace the table by ``models`` (an ``OrderedDict`` in LRU order)."""
        n = len(models)
        # keys as elements: pd.Index of a list whose keys are all tuples (TypedKey: every key a bool or
        # a json float) is a MultiIndex, whose levels merge (float, 1.0) with (bool, True)
        self.index = pd.Index(object_array(list(models)), dtype=object, tupleize_cols=False)
        entries = list(models.values())
        self.slot = np.array([e[0] for e in entries], dtype=np.int64).reshape(n)
        self.last = np.array([e[1] for e in entries], dtype=np.int64).reshape(n)
        self.tick = np.arange(n, dtype=np.int64)
        self.next_tick = n
        self.live = n
