"""Pattern detection (CEP): a sequence of conditions per key within a time bound, on event time."""

from __future__ import annotations

import bisect
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from streamlab._dead_letter import reason_last_columns
from streamlab._time import NAT_NS, Duration, format_duration
from streamlab.detectors._common import (
    Columns,
    PickledStateOperator,
    StepConfig,
    check_duration,
    check_name,
    check_positive_int,
    dead_letter,
    event_time_ns,
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
    where: str
    times: int = 1
    differs_from: Mapping[str, str] = field(default_factory=dict)

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
        return {
            "name": self.name,
            "where": self.where,
            "times": self.times,
            "differs_from": dict(self.differs_from),
        }


StepLike = PatternStep | tuple[str, str] | tuple[str, str, int]


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
    steps: Sequence[StepLike]
    within: Duration
    time: str = "timestamp"
    delay: Duration = "0s"
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

    def describe(self) -> dict[str, Any]:
        """Parameters as plain data."""
        steps: tuple[PatternStep, ...] = tuple(self.steps)  # type: ignore[arg-type]
        return {
            "kind": self.kind,
            "name": self.name,
            "key": self.key,
            "steps": [s.describe() for s in steps],
            "within": format_duration(check_duration(self.within, where="", what="")),
            "time": self.time,
            "delay": format_duration(check_duration(self.delay, where="", what="", allow_zero=True)),
            "id_column": self.id_column,
        }


class _Run:
    """A candidate match: the step it waits for, events taken so far, values per step."""

    __slots__ = ("count", "event_ids", "first_ns", "step", "values")

    def __init__(self, first_ns: int) -> None:
        self.step = 0
        self.count = 0
        self.first_ns = first_ns
        self.event_ids: list[Any] = []
        self.values: dict[str, dict[str, list[Any]]] = {}

    def __getstate__(self) -> tuple[Any, ...]:
        return (self.step, self.count, self.first_ns, self.event_ids, self.values)

    def __setstate__(self, state: tuple[Any, ...]) -> None:
        self.step, self.count, self.first_ns, self.event_ids, self.values = state


class PatternOperator(PickledStateOperator):
    """Runtime state of :class:`Pattern`: the event buffer, the watermark and open candidates per key."""

    output_names = ("out", "late", "dead_letter")

    def __init__(self, step: Pattern) -> None:
        self.pattern = step
        self.steps: tuple[PatternStep, ...] = tuple(step.steps)  # type: ignore[arg-type]
        self.within_ns = check_duration(step.within, where="", what="")
        self.delay_ns = check_duration(step.delay, where="", what="", allow_zero=True)
        self.value_columns = sorted({c for s in self.steps for c in s.differs_from})
        self.max_seen_ns = NAT_NS
        self.seq = 0
        # pending events: (time ns, arrival seq, key, step mask, event id, {column: value})
        self.buffer: list[tuple[int, int, Hashable, tuple[bool, ...], Any, dict[str, Any]]] = []
        self.runs: dict[Hashable, list[_Run]] = {}

    def watermark_ns(self) -> int | None:
        return None if self.max_seen_ns == NAT_NS else self.max_seen_ns - self.delay_ns

    def _conditions(self, batch: pd.DataFrame) -> np.ndarray:
        masks = np.zeros((len(batch), len(self.steps)), dtype=bool)
        for j, s in enumerate(self.steps):
            try:
                res = batch.eval(s.where, engine="python")
            except Exception as exc:
                raise ValueError(
                    f"Pattern(name={self.pattern.name!r}) step {s.name!r}: cannot evaluate {s.where!r} on "
                    f"columns {list(batch.columns)!r}: {exc}"
                ) from exc
            masks[:, j] = np.asarray(pd.Series(res, index=batch.index).fillna(False), dtype=bool)
        return masks

    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        p = self.pattern
        where = f"Pattern(name={p.name!r})"
        require_columns(batch, [p.key, p.time, p.id_column, *self.value_columns], where=where)
        n = len(batch)
        times = event_time_ns(batch, p.time, where=where)
        reasons = np.full(n, None, dtype=object)
        reasons[batch[p.key].isna().to_numpy()] = f"key column {p.key!r} is missing"
        reasons[(times == NAT_NS) & (reasons == None)] = f"event time {p.time!r} is missing or unreadable"  # noqa: E711
        good = reasons == None  # noqa: E711
        result: Outputs = {}
        if not good.all():
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
            relevant = np.flatnonzero(on_time & masks.any(axis=1))
            keys = batch[p.key].to_numpy(dtype=object)
            ids = batch[p.id_column].to_numpy(dtype=object)
            vals = {c: batch[c].to_numpy(dtype=object) for c in self.value_columns}
            seqs = self.seq + np.arange(n)
            for i in relevant.tolist():
                self.buffer.append(
                    (
                        int(times[i]),
                        int(seqs[i]),
                        keys[i],
                        tuple(masks[i].tolist()),
                        ids[i],
                        {c: v[i] for c, v in vals.items()},
                    )
                )
            self.max_seen_ns = max(self.max_seen_ns, int(times[on_time].max()))
        self.seq += n
        result["out"] = self._release(
            self.max_seen_ns - self.delay_ns if self.max_seen_ns != NAT_NS else NAT_NS
        )
        return result

    def on_end(self) -> Outputs:
        return {"out": self._release(None)}

    def _release(self, watermark: int | None) -> pd.DataFrame:
        self.buffer.sort(key=lambda e: (e[0], e[1]))
        if watermark is None:
            ready, self.buffer = self.buffer, []
        else:
            cut = bisect.bisect_right([e[0] for e in self.buffer], watermark)
            ready, self.buffer = self.buffer[:cut], self.buffer[cut:]
        matches = [m for e in ready if (m := self._advance(*e)) is not None]
        if watermark is not None and watermark != NAT_NS:
            self._drop_expired(watermark)
        return self._frame(matches)

    def _drop_expired(self, watermark: int) -> None:
        """Forget candidates that can no longer complete, also on keys that went quiet.

        Every event still to be matched is at or after the watermark, so a candidate that opened
        more than ``within`` before it can never be completed.
        """
        horizon = watermark - self.within_ns
        for key in list(self.runs):
            alive = [r for r in self.runs[key] if r.first_ns >= horizon]
            if alive:
                self.runs[key] = alive
            else:
                del self.runs[key]

    def _advance(
        self, t: int, seq: int, key: Hashable, mask: tuple[bool, ...], eid: Any, vals: dict[str, Any]
    ) -> tuple[Hashable, int, int, list[Any]] | None:
        horizon = t - self.within_ns
        runs = [r for r in self.runs.get(key, ()) if r.first_ns >= horizon]
        steps = self.steps
        done: _Run | None = None
        # a missing value differs from nothing: decided once per event, not per candidate
        missing = {c for c, v in vals.items() if pd.isna(v)} if vals else set()
        for run in runs:
            s = steps[run.step]
            if mask[run.step] and (not s.differs_from or self._differs(run, s, vals, missing)):
                self._take(run, s, eid, vals)
                if run.step == len(steps) and done is None:
                    done = run
        if done is None and mask[0]:
            run = _Run(t)
            self._take(run, steps[0], eid, vals)
            if run.step == len(steps):
                done = run
            else:
                runs.append(run)
                if len(runs) > MAX_RUNS_PER_KEY:
                    del runs[0]
        if done is not None:
            self.runs.pop(key, None)
            return key, done.first_ns, t, done.event_ids
        if runs:
            self.runs[key] = runs
        else:
            self.runs.pop(key, None)
        return None

    @staticmethod
    def _differs(run: _Run, step: PatternStep, vals: dict[str, Any], missing: set[str]) -> bool:
        for column, earlier in step.differs_from.items():
            if column in missing or vals[column] in run.values.get(earlier, {}).get(column, ()):
                return False
        return True

    def _take(self, run: _Run, step: PatternStep, eid: Any, vals: dict[str, Any]) -> None:
        run.event_ids.append(eid)
        if self.value_columns:
            per_step = run.values.setdefault(step.name, {})
            for c, v in vals.items():
                per_step.setdefault(c, []).append(v)
        run.count += 1
        if run.count == step.times:
            run.step += 1
            run.count = 0

    def _frame(self, matches: list[tuple[Hashable, int, int, list[Any]]]) -> pd.DataFrame:
        p = self.pattern
        return pd.DataFrame(
            {
                p.key: pd.Series([m[0] for m in matches], dtype=object),
                "pattern": pd.Series([p.name] * len(matches), dtype=object),
                "first_time": pd.to_datetime(np.array([m[1] for m in matches], dtype=np.int64), utc=True),
                "last_time": pd.to_datetime(np.array([m[2] for m in matches], dtype=np.int64), utc=True),
                "event_ids": pd.Series([list(m[3]) for m in matches], dtype=object),
                "n_events": np.array([len(m[3]) for m in matches], dtype=np.int64),
            }
        )

    def open_state(self) -> dict[str, Any]:
        wm = self.watermark_ns()
        return {
            "buffered_events": len(self.buffer),
            "keys_with_open_matches": len(self.runs),
            "watermark": None if wm is None else pd.Timestamp(wm, tz="UTC"),
        }
