"""Pattern detection (CEP): a sequence of conditions per key within a time bound, on event time."""

from __future__ import annotations

import functools
import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from streamlab import _step_codecs as codec
from streamlab._dead_letter import reason_last_columns
from streamlab._detector_record import unkeyable_reason, unkeyable_value_reason
from streamlab._keytable import typed_key_column, unhashable_rows, untyped_keys
from streamlab._pyast import unquote_backticks
from streamlab._step_kinds import param, params_of, step_kind
from streamlab._time import NAT_NS, Duration, unreadable_time_reason
from streamlab.detectors._common import (
    Columns,
    PickledStateOperator,
    StepConfig,
    check_all,
    check_duration,
    check_name,
    check_positive_int,
    dead_letter,
    event_time_ns,
    kernels,
    require_columns,
)
from streamlab.detectors._conditions import condition_rows
from streamlab.detectors._windowcount import Vocabulary, n_keys_below, sort_by_key_time
from streamlab.operators import Outputs

__all__ = ["Pattern", "PatternOperator", "PatternStep"]

#: Most partial matches kept per key; the oldest is dropped beyond it (bounds memory on hot keys).
MAX_RUNS_PER_KEY = 1000


@dataclass(frozen=True)
class PatternStep:
    """One step of a :class:`Pattern`: ``times`` events satisfying ``where``.

    Parameters
    ----------
    name
        Step name (unique within the pattern).
    where
        Condition on one event, a pandas expression over the batch's columns,
        e.g. ``"event_type == 'login_failed'"``.
    times
        Number of matching events the step needs (not necessarily consecutive).
    differs_from
        ``{column: earlier_step}``: the event's ``column`` must differ from every value matched by
        ``earlier_step`` (e.g. ``{"country": "first"}`` for "a second country").

    Examples
    --------
    >>> PatternStep("second", "event_type == 'payment'", differs_from={"country": "first"}).times
    1
    """

    name: str
    where: str = param(codec=codec.EXPRESSION)
    times: int = 1
    differs_from: Mapping[str, str] = param(codec=codec.MAPPING, default_factory=dict)

    def __post_init__(self) -> None:
        where = f"PatternStep({self.name!r})"
        check_name(self.name, where="PatternStep", what="name")
        check_name(self.where, where=where, what="where")
        try:  # a column name that is no identifier is quoted in backticks, as filters and rules take it
            compile(unquote_backticks(self.where)[0], "<where>", "eval")
        except SyntaxError as exc:
            raise ValueError(
                f"{where}: where={self.where!r} is not a valid expression ({exc.msg}); "
                "write a condition such as \"event_type == 'login_failed'\""
            ) from None
        check_positive_int(self.times, where=where, what="times")
        if not isinstance(self.differs_from, Mapping):
            raise ValueError(
                f"{where}: differs_from must be a dict {{column: earlier_step}}, got {self.differs_from!r}"
            )
        object.__setattr__(self, "differs_from", dict(self.differs_from))

    def describe(self) -> dict[str, Any]:
        """Parameters as plain data."""
        return params_of(self)


StepLike = PatternStep | tuple[str, str] | tuple[str, str, int]


@step_kind(config=True)
@dataclass(frozen=True, eq=False)
class Pattern(StepConfig):
    """Detect, per key, a sequence of steps completed within ``within`` of event time.

    Events are buffered until the watermark (largest event time seen minus ``delay``) passes them,
    then matched per key in event-time order, so disorder up to ``delay`` does not change the
    result. An event older than the watermark when it arrives goes to the ``late`` output (the
    original row); rows without key or event time, or whose key or ``differs_from`` value cannot be
    hashed (a dict, a list), go to ``dead_letter``.

    Matching: every event satisfying the first step opens a candidate; each event advances every
    open candidate whose current step it satisfies (at most one step per candidate; events that
    satisfy nothing are skipped). Candidates older than ``within`` are dropped. When one completes,
    the earliest-opened complete candidate is emitted and all of the key's candidates are cleared
    (matches do not overlap). ``out`` holds one row per match: the key, ``pattern``,
    ``first_time``, ``last_time``, ``event_ids`` (in match order) and ``n_events``.

    Parameters
    ----------
    key
        Column the sequence is tracked per (user, card).
    steps
        :class:`PatternStep` objects or tuples ``(name, where)`` / ``(name, where, times)``.
    within
        Largest event-time span from the first to the last event of a match.
    time
        Event-time column.
    delay
        How long to wait for out-of-order events before matching.
    name
        Pattern name written to the ``pattern`` column.
    id_column
        Column identifying events in ``event_ids``.

    Examples
    --------
    Three failed logins followed by a success within 5 minutes:

    >>> import pandas as pd
    >>> pattern = Pattern(key="user_id", name="takeover", within="5m", delay="10s", steps=[
    ...     ("failed", "event_type == 'login_failed'", 3),
    ...     ("success", "event_type == 'login_success'")])
    >>> batch = pd.DataFrame({
    ...     "event_id": ["e1", "e2", "e3", "e4"], "user_id": ["u1"] * 4,
    ...     "event_type": ["login_failed"] * 3 + ["login_success"],
    ...     "timestamp": pd.to_datetime(["2024-01-01 00:00:00", "2024-01-01 00:00:20",
    ...                                  "2024-01-01 00:00:10", "2024-01-01 00:01:00"], utc=True)})
    >>> op = pattern.build()
    >>> op.process(batch)["out"].empty  # the success is within the 10s delay: still buffered
    True
    >>> op.on_end()["out"][["user_id", "pattern", "event_ids"]].values.tolist()
    [['u1', 'takeover', ['e1', 'e3', 'e2', 'e4']]]

    A card used in two countries within an hour (the second payment's ``country`` must differ
    from the first's):

    >>> two_countries = Pattern(key="card_id", name="two_countries", within="1h", steps=[
    ...     PatternStep("first", "event_type == 'payment'"),
    ...     PatternStep("second", "event_type == 'payment'", differs_from={"country": "first"})])
    >>> pays = pd.DataFrame({"event_id": ["p1", "p2", "p3"], "card_id": ["c1"] * 3,
    ...     "event_type": ["payment"] * 3, "country": ["FR", "FR", "US"],
    ...     "timestamp": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 10:05", "2024-01-01 10:30"], utc=True)})
    >>> two_countries.build().process(pays)["out"]["event_ids"].tolist()
    [['p1', 'p3']]
    """

    key: str
    steps: Sequence[StepLike] = param(codec=codec.dataclass_list(PatternStep))
    within: Duration = param(codec=codec.DURATION_TEXT)
    time: str = "timestamp"
    delay: Duration = param(codec=codec.DURATION_TEXT, default="0s")
    name: str = "pattern"
    id_column: str = "event_id"

    kind: ClassVar[str] = "pattern"
    output_names: ClassVar[tuple[str, ...]] = ("out", "late", "dead_letter")

    def required_columns(self) -> tuple[str, ...]:
        """Input columns the step reads: the key, time and id, those of ``differs_from`` and those the
        ``where`` conditions name (a missing one is a configuration error)."""
        steps: tuple[PatternStep, ...] = tuple(self.steps)  # type: ignore[arg-type]
        values = sorted({c for s in steps for c in s.differs_from})
        from streamlab.steps import named_columns

        named = [c for s in steps for c in named_columns(s.where)]
        return tuple(dict.fromkeys((self.key, self.time, self.id_column, *values, *named)))

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        """Matches have fixed columns; late and dead-letter rows keep the input's."""
        cols = columns_in[0] if columns_in else None
        return {
            "out": (self.key, "pattern", "first_time", "last_time", "event_ids", "n_events"),
            "late": cols,
            "dead_letter": reason_last_columns(cols),
        }

    def __post_init__(self) -> None:
        where = f"Pattern(name={self.name!r})"
        check_name(self.name, where="Pattern", what="name")

        def check_steps() -> None:
            if isinstance(self.steps, (str, bytes)) or not isinstance(self.steps, Sequence) or not self.steps:
                raise ValueError(
                    f"{where}: steps must be a non-empty list of PatternStep or (name, where[, times]) tuples; "
                    "pass e.g. steps=[PatternStep('login', \"event_type == 'login'\"), ...]"
                )

        # every problem of the arguments at once, not one per attempt
        check_all(
            "Pattern",
            [
                functools.partial(check_name, self.key, where=where, what="key"),
                functools.partial(check_name, self.time, where=where, what="time"),
                functools.partial(check_name, self.id_column, where=where, what="id_column"),
                functools.partial(check_duration, self.within, where=where, what="within"),
                functools.partial(check_duration, self.delay, where=where, what="delay", allow_zero=True),
                check_steps,
            ],
        )
        steps: list[PatternStep] = []
        for s in self.steps:
            if isinstance(s, PatternStep):
                steps.append(s)
            elif isinstance(s, tuple) and len(s) in (2, 3):
                steps.append(PatternStep(*s))
            else:
                raise ValueError(
                    f"{where}: step {s!r} is neither a PatternStep nor a (name, where[, times]) tuple"
                )
        seen: list[str] = []
        for s in steps:
            if s.name in seen:
                raise ValueError(f"{where}: two steps are named {s.name!r}; give each step its own name")
            for column, earlier in s.differs_from.items():
                if earlier not in seen:
                    raise ValueError(
                        f"{where}: step {s.name!r} has differs_from={{{column!r}: {earlier!r}}} but {earlier!r} "
                        f"is not an earlier step (earlier steps: {seen!r})"
                    )
            seen.append(s.name)
        object.__setattr__(self, "steps", tuple(steps))

    def build(self) -> PatternOperator:
        """Return the runtime state."""
        return PatternOperator(self)


class PatternOperator(PickledStateOperator):
    """Runtime state of :class:`Pattern`: the event buffer, the watermark and open candidates (runs).

    All state is integer arrays: keys and the ``differs_from`` columns' values are codes of
    persistent vocabularies (:class:`~streamlab.detectors._windowcount.Vocabulary`), event ids are
    references into an :class:`_IdStore` that keeps the id columns as they came (ids become Python
    objects only in the matches written out). The buffer is kept in arrival order; each release
    sorts the ready events by key and event time and advances every key's runs over them in one
    compiled loop (:func:`streamlab.detectors._pattern_match.match_release`, plain Python without
    numba): the matching rules are those of the docstring of :class:`Pattern`, event by event. Runs
    are kept sorted by key code, in creation order within a key.
    """

    output_names = ("out", "late", "dead_letter")

    def __init__(self, step: Pattern) -> None:
        self.pattern = step
        self.steps: tuple[PatternStep, ...] = tuple(step.steps)  # type: ignore[arg-type]
        self.within_ns = check_duration(step.within, where="", what="")
        self.delay_ns = check_duration(step.delay, where="", what="", allow_zero=True)
        self.value_columns = sorted({c for s in self.steps for c in s.differs_from})
        names = [s.name for s in self.steps]
        self.times = np.array([s.times for s in self.steps], dtype=np.int64)
        self.cum = np.concatenate([[0], np.cumsum(self.times)]).astype(np.int64)
        # differs_from[s, c]: the earlier step whose values of column c step s must differ from
        self.differs_from = np.array(
            [
                [names.index(s.differs_from[c]) if c in s.differs_from else -1 for c in self.value_columns]
                for s in self.steps
            ],
            dtype=np.int64,
        ).reshape(len(self.steps), len(self.value_columns))
        # steps sharing a condition evaluate it once: the first step with each condition
        wheres = [s.where for s in self.steps]
        self.condition_of = np.array([wheres.index(w) for w in wheres], dtype=np.int64)
        self.max_seen_ns = NAT_NS
        self.seq = 0
        n_steps, n_cols, length = len(self.steps), len(self.value_columns), int(self.cum[-1])
        self.keys = Vocabulary()
        self.vocabs = [Vocabulary() for _ in self.value_columns]
        self.ids = _IdStore()
        # pending events (those satisfying some step), in arrival order
        self.b_time = np.empty(0, dtype=np.int64)
        self.b_seq = np.empty(0, dtype=np.int64)
        self.b_mask = np.empty((0, n_steps), dtype=bool)
        self.b_key = np.empty(0, dtype=np.int64)
        self.b_ref = np.empty(0, dtype=np.int64)
        self.b_val = np.empty((0, n_cols), dtype=np.int64)
        # open runs, sorted by key code, in creation order within a key: the step each waits for,
        # the number taken at that step, the first event's time, the id references and value codes
        # of the events taken (-1 in slots not filled yet)
        self.r_key = np.empty(0, dtype=np.int64)
        self.r_step = np.empty(0, dtype=np.int64)
        self.r_count = np.empty(0, dtype=np.int64)
        self.r_first = np.empty(0, dtype=np.int64)
        self.r_ev = np.empty((0, length), dtype=np.int64)
        self.r_val = np.empty((0, length, n_cols), dtype=np.int64)

    def watermark_ns(self) -> int | None:
        return None if self.max_seen_ns == NAT_NS else self.max_seen_ns - self.delay_ns

    def _conditions(self, batch: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
        """Each step's condition on each row, and why a row's could not be evaluated (None: all could)."""
        masks = np.zeros((len(batch), len(self.steps)), dtype=bool)
        why: np.ndarray | None = None
        p = self.pattern
        for j, s in enumerate(self.steps):
            first = int(self.condition_of[j])
            if first != j:
                masks[:, j] = masks[:, first]
                continue
            what = f"pattern {p.name!r} step {s.name!r}"
            masks[:, j], step_why = condition_rows(
                batch, s.where, what, f"Pattern(name={p.name!r}) step {s.name!r}"
            )
            if step_why is not None:  # the first step that cannot take a row says why
                why = step_why if why is None else np.where(pd.isna(why), step_why, why)
        return masks, why

    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        p = self.pattern
        where = f"Pattern(name={p.name!r})"
        require_columns(batch, [p.key, p.time, p.id_column, *self.value_columns], where=where)
        n = len(batch)
        times = event_time_ns(batch, p.time, where=where)
        no_key = batch[p.key].isna().to_numpy()
        unhashable = unhashable_rows(batch[p.key])
        if unhashable is not None:
            unkeyable = unhashable & ~no_key
            no_key = no_key | unhashable
        no_time = (times == NAT_NS) & ~no_key
        bad = no_key | no_time
        # a differs_from value that cannot be hashed (a dict, a list) cannot be told apart: as the
        # per-record code, after the key and the time, the first such column says why
        value_why: list[tuple[np.ndarray, str]] = []
        for c in self.value_columns:
            wrong = unhashable_rows(batch[c])
            if wrong is not None and (wrong & ~bad).any():
                value_why.append((wrong & ~bad, unkeyable_value_reason(c, "differs_from")))
                bad = bad | wrong
        good = ~bad
        result: Outputs = {}
        all_good = bool(good.all())
        if not all_good:
            reasons = np.full(n, None, dtype=object)
            reasons[no_key] = f"key column {p.key!r} is missing"
            if unhashable is not None:
                reasons[unkeyable] = unkeyable_reason(p.key)
            reasons[no_time] = unreadable_time_reason(p.time)
            for rows, column_why in value_why:
                reasons[rows] = column_why
            result["dead_letter"] = dead_letter(batch, ~good, reasons)
        # Lateness is judged against events that arrived earlier (not later rows of this batch),
        # so the split into late and on-time events does not depend on batch boundaries.
        masks, why = self._conditions(batch) if good.any() else (None, None)
        unreadable = None if why is None else pd.notna(why)
        # a row whose conditions cannot be evaluated is set aside unless it is late (the per-record
        # code judges lateness first), and moves no watermark
        counted = good if unreadable is None else good & ~unreadable
        t_good = times if all_good else times[good]
        t_counted = t_good if counted is good else np.where(counted, times, NAT_NS)[good]
        running = np.maximum.accumulate(t_counted) if len(t_good) else t_good
        prev_max = np.concatenate([[self.max_seen_ns], running[:-1]]) if len(t_good) else t_good
        prev_max = np.maximum(prev_max, self.max_seen_ns)
        late_good = (prev_max != NAT_NS) & (t_good < prev_max - self.delay_ns)
        if late_good.any():
            late = np.zeros(n, dtype=bool)
            late[np.flatnonzero(good)[late_good]] = True
            result["late"] = batch.loc[late].reset_index(drop=True)
            on_time = good & ~late
        else:
            on_time = good
        if why is not None and unreadable is not None and (on_time & unreadable).any():
            aside = on_time & unreadable
            letters = dead_letter(batch, aside, why)
            earlier = result.get("dead_letter")
            result["dead_letter"] = (
                letters if earlier is None else pd.concat([earlier, letters], ignore_index=True)
            )
            on_time = on_time & ~unreadable
        if on_time.any():
            assert masks is not None
            any_step = masks[:, 0].copy()
            for j in range(1, masks.shape[1]):  # (masks.any(axis=1) is ~10x slower on a few columns)
                any_step |= masks[:, j]
            rel = np.flatnonzero(on_time & any_step)
            if len(rel) == n:  # every event: the arrays as they are
                self._buffer(batch, rel, times, masks)
            else:
                self._buffer(batch, rel, times[rel], _take_rows(masks, rel))
            self.max_seen_ns = max(self.max_seen_ns, int(times[on_time].max()))
        self.seq += n
        result["out"] = self._release(
            self.max_seen_ns - self.delay_ns if self.max_seen_ns != NAT_NS else NAT_NS
        )
        return result

    def _buffer(self, batch: pd.DataFrame, rel: np.ndarray, times: np.ndarray, masks: np.ndarray) -> None:
        """Append the batch rows ``rel`` to the buffer: keys and values as codes, ids by reference."""
        p = self.pattern
        whole = len(rel) == len(batch)

        def column(name: str) -> Any:
            col = batch[name]
            return col if whole else col.iloc[rel]

        vals = np.empty((len(rel), len(self.value_columns)), dtype=np.int64)
        for c, name in enumerate(self.value_columns):
            vals[:, c] = self.vocabs[c].encode(column(name))
        ids = batch[p.id_column].array
        base = self.ids.add(ids.copy() if whole else ids.take(rel))
        self.b_time = np.concatenate([self.b_time, times])
        self.b_seq = np.concatenate([self.b_seq, self.seq + rel])
        self.b_mask = np.concatenate([self.b_mask, masks])
        # a json field's true, 1 and 1.0 are three keys (tagged), as windows and the exports tell them
        self.b_key = np.concatenate([self.b_key, self.keys.encode(typed_key_column(column(p.key)))])
        self.b_ref = np.concatenate([self.b_ref, base + np.arange(len(rel), dtype=np.int64)])
        self.b_val = np.concatenate([self.b_val, vals])

    def on_end(self) -> Outputs:
        return {"out": self._release(None)}

    def _release(self, watermark: int | None) -> pd.DataFrame:
        """Match the buffered events at or before ``watermark`` (all with None), in event-time order."""
        if watermark is None:
            ready = np.arange(len(self.b_time))
        else:
            ready = np.flatnonzero(self.b_time <= watermark)
        frame = self._frame(*self._advance(ready)) if len(ready) else self._frame()
        if len(ready):
            rest = np.ones(len(self.b_time), dtype=bool)
            rest[ready] = False
            for name in ("b_time", "b_seq", "b_mask", "b_key", "b_ref", "b_val"):
                setattr(self, name, _take_rows(getattr(self, name), rest))
        if watermark is not None and watermark != NAT_NS:
            # every event still to be matched is at or after the watermark, so a run that opened more
            # than ``within`` before it can never complete (also on keys that went quiet)
            keep = self.r_first >= watermark - self.within_ns
            if not keep.all():
                for name in ("r_key", "r_step", "r_count", "r_first", "r_ev", "r_val"):
                    setattr(self, name, _take_rows(getattr(self, name), keep))
        if len(ready):
            self._compact()
        return frame

    def _advance(self, ready: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Run the matcher over the ready events (buffer rows); the matches' columns, in event-time order."""
        n, n_runs, length = len(ready), len(self.r_key), int(self.cum[-1])
        # by key, then event time; ties stay in arrival order (the buffer's)
        order = ready[_key_time_order(self.b_key[ready], self.b_time[ready])]
        cap = n_runs + n
        o_key, o_step, o_count, o_first = (np.empty(cap, dtype=np.int64) for _ in range(4))
        o_ev = np.empty((cap, length), dtype=np.int64)
        o_val = np.empty((cap, length, len(self.value_columns)), dtype=np.int64)
        m_key, m_first, m_last, m_event = (np.empty(n, dtype=np.int64) for _ in range(4))
        m_ev = np.empty((n, length), dtype=np.int64)
        w, nm = matcher()(
            self.b_key[order],
            self.b_time[order],
            _take_rows(self.b_mask, order),
            _take_rows(self.b_val, order),
            self.b_ref[order],
            self.r_key,
            self.r_step,
            self.r_count,
            self.r_first,
            np.ascontiguousarray(self.r_ev),
            np.ascontiguousarray(self.r_val),
            self.times,
            self.cum,
            self.differs_from,
            self.within_ns,
            MAX_RUNS_PER_KEY,
            o_key,
            o_step,
            o_count,
            o_first,
            o_ev,
            o_val,
            m_key,
            m_first,
            m_last,
            m_ev,
            m_event,
            np.empty(cap, dtype=np.int64),
        )
        self.r_key, self.r_step, self.r_count, self.r_first = o_key[:w], o_step[:w], o_count[:w], o_first[:w]
        self.r_ev, self.r_val = o_ev[:w], o_val[:w]
        # matches in the order of their completing events: event time, then arrival
        done = order[m_event[:nm]]
        in_order = np.lexsort((self.b_seq[done], self.b_time[done]))
        refs = m_ev[:nm][in_order]
        ids = self.ids.objects(refs.ravel()).reshape(refs.shape)
        keys = untyped_keys(self.keys.values(m_key[:nm][in_order]))
        return keys, m_first[:nm][in_order], m_last[:nm][in_order], ids

    def _compact(self) -> None:
        """Forget id columns, keys and values no pending event or open run holds any more (when they pile up)."""
        live = (len(self.b_ref), self.r_ev.size)
        if self.ids.size > 2 * sum(live) + 4096:
            # the references still held, marked in one pass (-1, an unfilled slot, marks the extra
            # last entry, cleared after); a held reference's new value is its rank among them
            size = self.ids.size
            mark = np.zeros(size + 1, dtype=bool)
            mark[self.b_ref] = True
            mark[self.r_ev] = True
            mark[size] = False
            held = np.flatnonzero(mark)
            rank = np.cumsum(mark, dtype=np.int64) - 1
            rank[size] = -1
            self.ids = self.ids.keep(held)
            self.b_ref = rank[self.b_ref]
            self.r_ev = rank[self.r_ev]
        self.b_key, self.r_key = self.keys.compact(self.b_key, self.r_key)
        for c, vocab in enumerate(self.vocabs):
            b_val, r_val = vocab.compact(self.b_val[:, c], self.r_val[:, :, c].ravel())
            self.b_val[:, c] = b_val
            self.r_val[:, :, c] = r_val.reshape(self.r_val.shape[:2])

    def _frame(
        self,
        keys: np.ndarray | None = None,
        first: np.ndarray | None = None,
        last: np.ndarray | None = None,
        event_ids: np.ndarray | None = None,
    ) -> pd.DataFrame:
        p = self.pattern
        length = int(self.cum[-1])
        if keys is None or first is None or last is None or event_ids is None or not len(keys):
            # most releases match nothing: a shallow copy of the step's empty frame (copy-on-write)
            return _no_matches(p.key, p.name, length).copy(deep=False)
        return _matches_frame(p.key, p.name, length, keys, first, last, event_ids)

    def snapshot(self) -> Any:
        if len(self.b_ref) or len(self.r_ev):
            self._compact()
        return super().snapshot()

    def restore(self, state: Any) -> None:
        old = pickle.loads(state)
        if "runs" in old and "buffer" in old:
            self._restore_per_event(old)
        elif "b_id" in old:
            self._restore_object_columns(old)
        else:
            super().restore(state)

    def _restore_per_event(self, old: dict[str, Any]) -> None:
        """A snapshot of the per-event matcher: its buffer and candidates as Python objects."""
        pattern = old["pattern"]
        steps: tuple[PatternStep, ...] = tuple(pattern.steps)
        value_columns = sorted({c for s in steps for c in s.differs_from})
        cum = np.concatenate([[0], np.cumsum([s.times for s in steps])]).astype(np.int64)
        buffer = old["buffer"]  # (time, seq, key, step mask, event id, {column: value})
        n, n_cols, length = len(buffer), len(value_columns), int(cum[-1])
        b_val = np.full((n, n_cols), None, dtype=object)
        for i, e in enumerate(buffer):
            for c, column in enumerate(value_columns):
                b_val[i, c] = e[5].get(column)
        runs = [(k, r) for k, key_runs in old["runs"].items() for r in key_runs]
        r_id = np.full((len(runs), length), None, dtype=object)
        r_val = np.full((len(runs), length, n_cols), None, dtype=object)
        for i, (_, r) in enumerate(runs):
            for j, eid in enumerate(r.event_ids):
                r_id[i, j] = eid
            for s, step in enumerate(steps):
                taken = r.values.get(step.name, {})
                for c, column in enumerate(value_columns):
                    for j, v in enumerate(taken.get(column, [])):
                        r_val[i, int(cum[s]) + j, c] = v
        self._restore_object_columns(
            {
                "pattern": pattern,
                "max_seen_ns": old["max_seen_ns"],
                "seq": old["seq"],
                "b_time": np.array([e[0] for e in buffer], dtype=np.int64).reshape(n),
                "b_seq": np.array([e[1] for e in buffer], dtype=np.int64).reshape(n),
                "b_mask": np.array([e[3] for e in buffer], dtype=bool).reshape(n, len(steps)),
                "b_key": _objects([e[2] for e in buffer]),
                "b_id": _objects([e[4] for e in buffer]),
                "b_val": b_val,
                "r_key": _objects([k for k, _ in runs]),
                "r_step": np.array([r.step for _, r in runs], dtype=np.int64),
                "r_count": np.array([r.count for _, r in runs], dtype=np.int64),
                "r_first": np.array([r.first_ns for _, r in runs], dtype=np.int64),
                "r_id": r_id,
                "r_val": r_val,
            }
        )

    def _restore_object_columns(self, old: dict[str, Any]) -> None:
        """A snapshot whose keys, ids and values were object arrays (the matcher before codes)."""
        self.__init__(old["pattern"])  # type: ignore[misc]
        self.max_seen_ns, self.seq = old["max_seen_ns"], old["seq"]
        by_seq = np.argsort(old["b_seq"], kind="stable")  # the buffer is kept in arrival order now
        n, n_runs = len(by_seq), len(old["r_key"])
        self.b_time = np.asarray(old["b_time"], dtype=np.int64)[by_seq]
        self.b_seq = np.asarray(old["b_seq"], dtype=np.int64)[by_seq]
        self.b_mask = np.asarray(old["b_mask"], dtype=bool).reshape(n, len(self.steps))[by_seq]
        self.b_key = self.keys.encode(
            typed_key_column(pd.Series(_objects(list(old["b_key"][by_seq])), dtype=object))
        )
        r_key = self.keys.encode(typed_key_column(pd.Series(_objects(list(old["r_key"])), dtype=object)))
        n_cols, length = len(self.value_columns), int(self.cum[-1])
        b_val = np.asarray(old["b_val"], dtype=object).reshape(n, n_cols)[by_seq]
        r_val = np.asarray(old["r_val"], dtype=object).reshape(n_runs, length, n_cols)
        self.b_val = np.empty(b_val.shape, dtype=np.int64)
        self.r_val = np.empty(r_val.shape, dtype=np.int64)
        for c, vocab in enumerate(self.vocabs):
            codes = vocab.encode(_objects([*b_val[:, c], *r_val[:, :, c].ravel()]))
            self.b_val[:, c] = codes[:n]
            self.r_val[:, :, c] = codes[n:].reshape(r_val.shape[:2])
        r_id = np.asarray(old["r_id"], dtype=object).reshape(n_runs, length)
        # unfilled slots hold None: they are the slots at and after the run's next one
        filled = np.arange(r_id.shape[1]) < (self.cum[old["r_step"]] + old["r_count"])[:, None]
        b_id = np.asarray(old["b_id"], dtype=object)[by_seq]
        base = self.ids.add(_objects([*b_id, *r_id[filled]]))
        self.b_ref = base + np.arange(n, dtype=np.int64)
        self.r_ev = np.full(r_id.shape, -1, dtype=np.int64)
        self.r_ev[filled] = base + n + np.arange(int(filled.sum()), dtype=np.int64)
        # runs sorted by key code, creation order kept within a key
        by_key = np.argsort(r_key, kind="stable")
        self.r_key = r_key[by_key]
        self.r_step = np.asarray(old["r_step"], dtype=np.int64)[by_key]
        self.r_count = np.asarray(old["r_count"], dtype=np.int64)[by_key]
        self.r_first = np.asarray(old["r_first"], dtype=np.int64)[by_key]
        self.r_ev, self.r_val = self.r_ev[by_key], self.r_val[by_key]

    def open_state(self) -> dict[str, Any]:
        wm = self.watermark_ns()
        return {
            "buffered_events": len(self.b_time),
            "keys_with_open_matches": len(np.unique(self.r_key)),
            "watermark": None if wm is None else pd.Timestamp(wm, tz="UTC"),
        }


class _IdStore:
    """Event ids as their columns came (one array per batch, numpy or Arrow), addressed by reference.

    References are consecutive integers over the arrays in order; ids become Python objects only when
    looked up, as ``Series.to_numpy(dtype=object)`` gives them (object ndarrays, from a restored
    snapshot, are kept as they are).
    """

    def __init__(self) -> None:
        self.chunks: list[Any] = []
        self.starts = np.empty(0, dtype=np.int64)
        self.size = 0

    def add(self, ids: Any) -> int:
        """Keep an array of ids; the reference of its first."""
        base = self.size
        if len(ids):
            self.chunks.append(ids)
            self.starts = np.append(self.starts, np.int64(base))
            self.size += len(ids)
        return base

    def objects(self, refs: np.ndarray) -> np.ndarray:
        """The ids at ``refs`` as an object array."""
        out = np.empty(len(refs), dtype=object)
        if not len(refs):
            return out
        chunk = np.searchsorted(self.starts, refs, side="right") - 1
        for c in np.unique(chunk).tolist():
            at = np.flatnonzero(chunk == c)
            taken = self.chunks[c].take(refs[at] - self.starts[c])
            # as Series.to_numpy(dtype=object) gives them (a Series around them would infer a dtype anew)
            out[at] = taken if isinstance(taken, np.ndarray) else taken.to_numpy(dtype=object)
        return out

    def keep(self, held: np.ndarray) -> _IdStore:
        """A store of the ids at ``held`` (sorted, unique) only: ``held[i]`` becomes reference ``i``."""
        out = _IdStore()
        chunk = np.searchsorted(self.starts, held, side="right") - 1
        bounds = np.searchsorted(chunk, np.arange(len(self.chunks) + 1))
        for c in range(len(self.chunks)):
            a, b = int(bounds[c]), int(bounds[c + 1])
            if b > a:
                out.add(self.chunks[c].take(held[a:b] - self.starts[c]))
        return out


def _matches_frame(
    key: str,
    name: str,
    length: int,
    keys: np.ndarray,
    first: np.ndarray,
    last: np.ndarray,
    event_ids: np.ndarray,
) -> pd.DataFrame:
    """The ``out`` frame of matches: keys, pattern ``name``, first/last event times (int64 ns, UTC) and
    each match's ``length`` event ids (rows of ``event_ids``)."""
    m = len(keys)
    ids = np.empty(m, dtype=object)
    for i, row in enumerate(event_ids.tolist()):  # one list per match
        ids[i] = row
    names = np.empty(m, dtype=object)
    names[:] = name
    columns = {
        key: np.asarray(keys, dtype=object),
        "pattern": names,
        # int64 ns since the epoch, read as UTC
        "first_time": pd.DatetimeIndex(np.asarray(first, dtype=np.int64).view("M8[ns]"), tz="UTC").array,
        "last_time": pd.DatetimeIndex(np.asarray(last, dtype=np.int64).view("M8[ns]"), tz="UTC").array,
        "event_ids": ids,
        "n_events": np.full(m, length, dtype=np.int64),
    }
    return _frame_of(columns, m)


@functools.lru_cache(maxsize=64)
def _no_matches(key: str, name: str, length: int) -> pd.DataFrame:
    """:func:`_matches_frame` of no matches, built once per (key, name, length); callers take a
    shallow copy (about 0.2 ms a release saved, most of them matching nothing)."""
    empty = np.empty(0, dtype=np.int64)
    return _matches_frame(
        key, name, length, np.empty(0, dtype=object), empty, empty, np.empty((0, length), dtype=object)
    )


def _frame_of(columns: dict[str, Any], n: int) -> pd.DataFrame:
    """A frame of ``columns`` (arrays of length ``n``, object arrays kept as object), as
    ``pd.DataFrame`` of Series of them builds it; about 4x faster for the small frames of matches."""
    try:
        return pd.DataFrame._from_arrays(  # type: ignore[attr-defined,no-any-return]
            list(columns.values()),
            columns=pd.Index(list(columns)),
            index=pd.RangeIndex(n),
            verify_integrity=False,
        )
    except (AttributeError, TypeError):  # pragma: no cover - a pandas without this constructor
        return pd.DataFrame({name: pd.Series(values, dtype=values.dtype) for name, values in columns.items()})


def _objects(values: list[Any]) -> np.ndarray:
    """A 1-d object array of ``values`` (tuples stay elements)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def _take_rows(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``a[rows]`` (integer positions or a boolean mask over the first axis), C-contiguous.

    A row of a 2-d or 3-d array is gathered as one fixed-size item (a view of the row's bytes),
    several times faster than numpy's gather of a row of a few elements.
    """
    if a.ndim == 1:
        out: np.ndarray = a[rows]
        return out
    width = a.itemsize * int(np.prod(a.shape[1:]))
    if width == 0 or len(a) == 0:
        return np.ascontiguousarray(a[rows])
    items = np.ascontiguousarray(a).reshape(len(a), -1).view(np.dtype((np.void, width))).ravel()
    out = items[rows].view(a.dtype).reshape((-1, *a.shape[1:]))
    return out


def _key_time_order(key: np.ndarray, time: np.ndarray) -> np.ndarray:
    """The stable sort by (key, time), equal to ``np.lexsort((time, key))``, faster.

    With the compiled kernels: a counting sort by key, then an insertion sort by time of each key's
    run (:func:`streamlab.detectors._windowcount.sort_by_key_time`). Otherwise by time first (nearly
    sorted: timsort's runs), then by key (a radix sort when the codes fit in 16 bits).
    """
    k = kernels()
    if k is not None:
        return sort_by_key_time(k, key, time)
    by_time = np.argsort(time, kind="stable")
    by_key = key[by_time]
    if n_keys_below(by_key, 1 << 16):
        by_key = by_key.astype(np.uint16)
    return by_time[np.argsort(by_key, kind="stable")]


def matcher() -> Any:
    """The compiled matcher (plain Python without numba); imported on first use."""
    from streamlab.detectors._pattern_match import matcher as loaded

    return loaded()
