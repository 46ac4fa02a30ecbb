"""The pattern step's per-event matcher as it was before the compiled kernel: the reference in tests.

``ReferencePatternOperator(Pattern(...))`` buffers, releases and matches events one at a time with
Python lists of candidates (``_Run``); ``PatternOperator`` must give the same outputs.
"""

from __future__ import annotations

import bisect
from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd

from streamlab._time import NAT_NS, unreadable_time_reason
from streamlab.detectors._common import (
    PickledStateOperator,
    check_duration,
    dead_letter,
    event_time_ns,
    require_columns,
)
from streamlab.detectors._pattern import MAX_RUNS_PER_KEY, Pattern, PatternStep
from streamlab.operators import Outputs


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


class ReferencePatternOperator(PickledStateOperator):
    """The per-event matcher ``PatternOperator`` replaced: one Python step per released event."""

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
        reasons[(times == NAT_NS) & (reasons == None)] = unreadable_time_reason(p.time)  # noqa: E711
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
