"""Pattern detection (CEP): a sequence of conditions per key within a time bound, on event time."""

from __future__ import annotations

import pickle
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from streamlab import _step_codecs as codec
from streamlab._dead_letter import reason_last_columns
from streamlab._step_kinds import param, params_of, step_kind
from streamlab._time import NAT_NS, Duration
from streamlab.detectors._common import (
    Columns,
    PickledStateOperator,
    StepConfig,
    check_duration,
    check_name,
    check_positive_int,
    dead_letter,
    event_time_ns,
    kernels,
    require_columns,
)
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
        try:
            compile(self.where, "<where>", "eval")
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
    original row); rows without key or event time go to ``dead_letter``.

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
        """Input columns the step reads (columns inside ``where`` conditions are checked per batch)."""
        steps: tuple[PatternStep, ...] = tuple(self.steps)  # type: ignore[arg-type]
        values = sorted({c for s in steps for c in s.differs_from})
        return (self.key, self.time, self.id_column, *values)

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
        check_name(self.key, where=where, what="key")
        check_name(self.time, where=where, what="time")
        check_name(self.id_column, where=where, what="id_column")
        check_duration(self.within, where=where, what="within")
        check_duration(self.delay, where=where, what="delay", allow_zero=True)
        if isinstance(self.steps, (str, bytes)) or not isinstance(self.steps, Sequence) or not self.steps:
            raise ValueError(
                f"{where}: steps must be a non-empty list of PatternStep or (name, where[, times]) tuples"
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

    Both are column arrays. Each release groups the released events by key and advances every key's
    runs over them in one compiled loop (:func:`streamlab.detectors._kernels.pattern_advance`, plain
    Python without numba), with keys, values and event ids as integer codes: the matching rules are
    those of the docstring of :class:`Pattern`, event by event.
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
        self.max_seen_ns = NAT_NS
        self.seq = 0
        n_steps, n_cols, length = len(self.steps), len(self.value_columns), int(self.cum[-1])
        # pending events (those satisfying some step), as columns
        self.b_time = np.empty(0, dtype=np.int64)
        self.b_seq = np.empty(0, dtype=np.int64)
        self.b_mask = np.empty((0, n_steps), dtype=bool)
        self.b_key = np.empty(0, dtype=object)
        self.b_id = np.empty(0, dtype=object)
        self.b_val = np.empty((0, n_cols), dtype=object)
        # open runs, grouped by key, in creation order within a key: the step each waits for, the
        # number taken at that step, the first event's time, the ids and values of the events taken
        self.r_key = np.empty(0, dtype=object)
        self.r_step = np.empty(0, dtype=np.int64)
        self.r_count = np.empty(0, dtype=np.int64)
        self.r_first = np.empty(0, dtype=np.int64)
        self.r_id = np.empty((0, length), dtype=object)
        self.r_val = np.empty((0, length, n_cols), dtype=object)

    def watermark_ns(self) -> int | None:
        return None if self.max_seen_ns == NAT_NS else self.max_seen_ns - self.delay_ns

    def _conditions(self, batch: pd.DataFrame) -> np.ndarray:
        masks = np.zeros((len(batch), len(self.steps)), dtype=bool)
        done: dict[str, int] = {}  # steps often share a condition: evaluate each one once
        for j, s in enumerate(self.steps):
            if s.where in done:
                masks[:, j] = masks[:, done[s.where]]
                continue
            try:
                res = batch.eval(s.where, engine="python")
            except Exception as exc:
                raise ValueError(
                    f"Pattern(name={self.pattern.name!r}) step {s.name!r}: cannot evaluate {s.where!r} on "
                    f"columns {list(batch.columns)!r}: {exc}"
                ) from exc
            masks[:, j] = np.asarray(pd.Series(res, index=batch.index).fillna(False), dtype=bool)
            done[s.where] = j
        return masks

    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        p = self.pattern
        where = f"Pattern(name={p.name!r})"
        require_columns(batch, [p.key, p.time, p.id_column, *self.value_columns], where=where)
        n = len(batch)
        times = event_time_ns(batch, p.time, where=where)
        no_key = batch[p.key].isna().to_numpy()
        no_time = (times == NAT_NS) & ~no_key
        good = ~(no_key | no_time)
        result: Outputs = {}
        if not good.all():
            reasons = np.full(n, None, dtype=object)
            reasons[no_key] = f"key column {p.key!r} is missing"
            reasons[no_time] = f"event time {p.time!r} is missing or unreadable"
            result["dead_letter"] = dead_letter(batch, ~good, reasons)
        # Lateness is judged against events that arrived earlier (not later rows of this batch),
        # so the split into late and on-time events does not depend on batch boundaries.
        t_good = times[good]
        running = np.maximum.accumulate(t_good) if len(t_good) else t_good
        prev_max = np.concatenate([[self.max_seen_ns], running[:-1]]) if len(t_good) else t_good
        prev_max = np.maximum(prev_max, self.max_seen_ns)
        late_good = (prev_max != NAT_NS) & (t_good < prev_max - self.delay_ns)
        good_idx = np.flatnonzero(good)
        late = np.zeros(n, dtype=bool)
        late[good_idx[late_good]] = True
        if late.any():
            result["late"] = batch.loc[late].reset_index(drop=True)
        on_time = good & ~late
        if on_time.any():
            masks = self._conditions(batch)
            rel = np.flatnonzero(on_time & masks.any(axis=1))
            self.b_time = np.concatenate([self.b_time, times[rel]])
            self.b_seq = np.concatenate([self.b_seq, self.seq + rel])
            self.b_mask = np.concatenate([self.b_mask, masks[rel]])
            self.b_key = np.concatenate([self.b_key, batch[p.key].to_numpy(dtype=object)[rel]])
            self.b_id = np.concatenate([self.b_id, batch[p.id_column].to_numpy(dtype=object)[rel]])
            vals = np.empty((len(rel), len(self.value_columns)), dtype=object)
            for c, column in enumerate(self.value_columns):
                vals[:, c] = batch[column].to_numpy(dtype=object)[rel]
            self.b_val = np.concatenate([self.b_val, vals])
            self.max_seen_ns = max(self.max_seen_ns, int(times[on_time].max()))
        self.seq += n
        result["out"] = self._release(
            self.max_seen_ns - self.delay_ns if self.max_seen_ns != NAT_NS else NAT_NS
        )
        return result

    def on_end(self) -> Outputs:
        return {"out": self._release(None)}

    def _release(self, watermark: int | None) -> pd.DataFrame:
        """Match the buffered events at or before ``watermark`` (all with None), in event-time order."""
        order = np.lexsort((self.b_seq, self.b_time))
        cut = (
            len(order)
            if watermark is None
            else int(np.searchsorted(self.b_time[order], watermark, side="right"))
        )
        ready, rest = order[:cut], order[cut:]
        frame = self._frame(*self._advance(ready)) if len(ready) else self._frame()
        for name in ("b_time", "b_seq", "b_mask", "b_key", "b_id", "b_val"):
            setattr(self, name, getattr(self, name)[rest])
        if watermark is not None and watermark != NAT_NS:
            # every event still to be matched is at or after the watermark, so a run that opened more
            # than ``within`` before it can never complete (also on keys that went quiet)
            keep = self.r_first >= watermark - self.within_ns
            if not keep.all():
                for name in ("r_key", "r_step", "r_count", "r_first", "r_id", "r_val"):
                    setattr(self, name, getattr(self, name)[keep])
        return frame

    def _advance(self, ready: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Run the matcher over the ready events (buffer rows in time order); the matches' columns."""
        n, n_runs, length = len(ready), len(self.r_key), int(self.cum[-1])
        n_cols = len(self.value_columns)
        codes, keys = pd.factorize(np.concatenate([self.b_key[ready], self.r_key]))
        e_code, r_code = codes[:n], codes[n:]
        # values as codes (-1: missing), the runs' taken values and the events' in one table per column
        e_val = np.empty((n, n_cols), dtype=np.int64)
        r_val = np.empty((n_runs, length, n_cols), dtype=np.int64)
        uniques = []
        for c in range(n_cols):
            vc, vu = pd.factorize(np.concatenate([self.b_val[ready, c], self.r_val[:, :, c].ravel()]))
            e_val[:, c] = vc[:n]
            r_val[:, :, c] = vc[n:].reshape(n_runs, length)
            uniques.append(np.asarray(vu, dtype=object))
        # event ids by reference: the runs' ids first, then the events'
        ids = np.concatenate([self.r_id.ravel(), self.b_id[ready]])
        r_ev = np.arange(n_runs * length, dtype=np.int64).reshape(n_runs, length)
        by_run = np.argsort(r_code, kind="stable")  # stable: a key's runs stay in creation order
        by_key = np.argsort(e_code, kind="stable")  # stable: a key's events stay in time order
        cap = n_runs + n
        o_key, o_step, o_count, o_first = (np.empty(cap, dtype=np.int64) for _ in range(4))
        o_ev = np.empty((cap, length), dtype=np.int64)
        o_val = np.empty((cap, length, n_cols), dtype=np.int64)
        m_key, m_first, m_last, m_pos = (np.empty(n, dtype=np.int64) for _ in range(4))
        m_ev = np.empty((n, length), dtype=np.int64)
        k = kernels()
        advance = k.pattern_advance if k is not None else _plain_advance()
        w, nm = advance(
            np.ascontiguousarray(e_code[by_key], dtype=np.int64),
            np.ascontiguousarray(self.b_time[ready][by_key]),
            np.ascontiguousarray(self.b_mask[ready][by_key]),
            np.ascontiguousarray(e_val[by_key]),
            np.ascontiguousarray(n_runs * length + by_key, dtype=np.int64),
            np.ascontiguousarray(by_key, dtype=np.int64),
            np.ascontiguousarray(r_code[by_run], dtype=np.int64),
            np.ascontiguousarray(self.r_step[by_run]),
            np.ascontiguousarray(self.r_count[by_run]),
            np.ascontiguousarray(self.r_first[by_run]),
            np.ascontiguousarray(r_ev[by_run]),
            np.ascontiguousarray(r_val[by_run]),
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
            m_pos,
        )
        key_objects = np.asarray(keys, dtype=object)
        self.r_key = key_objects[o_key[:w]]
        self.r_step, self.r_count, self.r_first = o_step[:w], o_count[:w], o_first[:w]
        # slots a run has not filled yet hold None (they are never read)
        self.r_id = np.full((w, length), None, dtype=object)
        taken = o_ev[:w] >= 0
        self.r_id[taken] = ids[o_ev[:w][taken]]
        self.r_val = np.full((w, length, n_cols), None, dtype=object)
        for c in range(n_cols):
            code = o_val[:w, :, c]
            self.r_val[:, :, c][code >= 0] = uniques[c][code[code >= 0]]
        in_order = np.argsort(m_pos[:nm], kind="stable")
        return (
            key_objects[m_key[:nm][in_order]],
            m_first[:nm][in_order],
            m_last[:nm][in_order],
            ids[m_ev[:nm][in_order]],
        )

    def _frame(
        self,
        keys: np.ndarray | None = None,
        first: np.ndarray | None = None,
        last: np.ndarray | None = None,
        event_ids: np.ndarray | None = None,
    ) -> pd.DataFrame:
        p = self.pattern
        m = 0 if keys is None else len(keys)
        length = int(self.cum[-1])
        out: pd.DataFrame = pd.DataFrame(
            {
                p.key: pd.Series(keys if keys is not None else [], dtype=object),
                "pattern": pd.Series([p.name] * m, dtype=object),
                "first_time": pd.to_datetime(
                    np.asarray(first if first is not None else [], dtype=np.int64), utc=True
                ),
                "last_time": pd.to_datetime(
                    np.asarray(last if last is not None else [], dtype=np.int64), utc=True
                ),
                "event_ids": pd.Series(event_ids.tolist() if event_ids is not None else [], dtype=object),
                "n_events": np.full(m, length, dtype=np.int64),
            }
        )
        return out

    def restore(self, state: Any) -> None:
        old = pickle.loads(state)
        if "runs" not in old or "buffer" not in old:
            super().restore(state)
            return
        # a snapshot of the per-event matcher: its buffer and candidates become columns
        self.__init__(old["pattern"])  # type: ignore[misc]
        self.max_seen_ns, self.seq = old["max_seen_ns"], old["seq"]
        buffer = old["buffer"]  # (time, seq, key, step mask, event id, {column: value})
        n, n_cols, length = len(buffer), len(self.value_columns), int(self.cum[-1])
        self.b_time = np.array([e[0] for e in buffer], dtype=np.int64).reshape(n)
        self.b_seq = np.array([e[1] for e in buffer], dtype=np.int64).reshape(n)
        self.b_mask = np.array([e[3] for e in buffer], dtype=bool).reshape(n, len(self.steps))
        self.b_key = _objects([e[2] for e in buffer])
        self.b_id = _objects([e[4] for e in buffer])
        self.b_val = np.full((n, n_cols), None, dtype=object)
        for i, e in enumerate(buffer):
            for c, column in enumerate(self.value_columns):
                self.b_val[i, c] = e[5].get(column)
        runs = [(k, r) for k, key_runs in old["runs"].items() for r in key_runs]
        self.r_key = _objects([k for k, _ in runs])
        self.r_step = np.array([r.step for _, r in runs], dtype=np.int64)
        self.r_count = np.array([r.count for _, r in runs], dtype=np.int64)
        self.r_first = np.array([r.first_ns for _, r in runs], dtype=np.int64)
        self.r_id = np.full((len(runs), length), None, dtype=object)
        self.r_val = np.full((len(runs), length, n_cols), None, dtype=object)
        for i, (_, r) in enumerate(runs):
            for j, eid in enumerate(r.event_ids):
                self.r_id[i, j] = eid
            for s, step in enumerate(self.steps):
                taken = r.values.get(step.name, {})
                for c, column in enumerate(self.value_columns):
                    for j, v in enumerate(taken.get(column, [])):
                        self.r_val[i, int(self.cum[s]) + j, c] = v

    def open_state(self) -> dict[str, Any]:
        wm = self.watermark_ns()
        return {
            "buffered_events": len(self.b_time),
            "keys_with_open_matches": len(pd.unique(self.r_key)) if len(self.r_key) else 0,
            "watermark": None if wm is None else pd.Timestamp(wm, tz="UTC"),
        }


class _Run:
    """A candidate of the per-event matcher this operator replaced: kept so that its snapshots load."""

    __slots__ = ("count", "event_ids", "first_ns", "step", "values")

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.step, self.count, self.first_ns, self.event_ids, self.values = state


def _objects(values: list[Any]) -> np.ndarray:
    """A 1-d object array of ``values`` (tuples stay elements)."""
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


def _plain_advance() -> Any:
    """The matcher as plain Python (no numba): same code, uncompiled."""
    from streamlab.detectors import _kernels

    return _kernels.plain(_kernels.pattern_advance)
