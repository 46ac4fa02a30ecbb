"""Per-key features computed incrementally on event time, and rules that raise alerts.

Every feature of event ``i`` is computed from the events of the same key that *arrived before*
``i`` (plus ``i`` itself for window counts), so values are causal, match what a live system would
have seen, and do not depend on how the stream is cut into batches. Rows whose key or event time is
missing go to the ``dead_letter`` output with a ``reason``; a missing ``value`` gives a NaN feature.
"""

from __future__ import annotations

import datetime
import functools
import itertools
import numbers
import operator
import pickle
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np
import pandas as pd

from streamlab import _pyast
from streamlab import _step_codecs as codec
from streamlab._compat import object_index
from streamlab._detector_record import (
    compare_values,
    reads_text_as_number,
    unkeyable_reason,
    unkeyable_value_reason,
)
from streamlab._expr import expression_names
from streamlab._floats import float_values
from streamlab._intcols import numpy_ints
from streamlab._keytable import typed_key_column, unhashable_rows
from streamlab._step_kinds import param, step_kind
from streamlab._time import NAT_NS, Duration, format_duration, unreadable_time_reason
from streamlab.detectors._common import (
    PickledStateOperator,
    StepConfig,
    _appended,
    _with_columns,
    check_all,
    check_duration,
    check_name,
    check_positive_int,
    dead_letter,
    event_time_ns,
    kernels,
    reject,
    require_columns,
)
from streamlab.detectors._conditions import condition_rows
from streamlab.detectors._windowcount import (
    DistinctCounter,
    WindowCounter,
    factorize,
    hash_table,
    index_with,
    plain_kernel,
    positions_in,
)
from streamlab.operators import Outputs

__all__ = [
    "DistinctCountFeature",
    "FeatureOperator",
    "RatioToMedianFeature",
    "ThresholdRule",
    "TimeSinceLastFeature",
    "VelocityFeature",
    "VelocityRule",
    "ZScoreFeature",
]


_UTC_NS = pd.DatetimeTZDtype("ns", "UTC")


def _values(batch: pd.DataFrame, column: str) -> np.ndarray:
    """A column as float64, non-numbers as NaN."""
    col = batch[column]
    if col.dtype == np.float64:
        return col.to_numpy()
    return float_values(col)


def _may_miss(col: pd.Series) -> bool:
    """Whether ``col`` may hold missing values: False for an Arrow-backed column without nulls."""
    chunked = getattr(col.array, "_pa_array", None)
    return chunked is None or chunked.null_count > 0 or col.dtype.kind == "f"


def _plain_column(batch: pd.DataFrame, name: str) -> Any:
    """The array stored for column ``name`` (read only), or None when the batch has no such column or
    several (``process`` then says so)."""
    try:
        loc = batch.columns.get_loc(name)
        # (pandas' own read of a column's array, without building a Series)
        return batch._get_column_array(loc) if isinstance(loc, int) else None  # type: ignore[operator]
    except (KeyError, TypeError, AttributeError):
        return None


def _utc_ns_column(batch: pd.DataFrame, name: str) -> np.ndarray | None:
    """Column ``name`` of UTC timestamps as its int64 nanoseconds (NaT: ``NAT_NS``), read in place, or
    None when it is of another type (or missing, or several)."""
    try:
        loc = batch.columns.get_loc(name)
        if not isinstance(loc, int):
            return None
        mgr = batch._mgr
        values = mgr.blocks[mgr.blknos[loc]].values  # (the block's, without a DatetimeArray per read)
        if values.dtype != _UTC_NS:
            return None
        return np.ascontiguousarray(values._ndarray[mgr.blklocs[loc]].view(np.int64))
    except (KeyError, TypeError, AttributeError, IndexError):  # pragma: no cover - other pandas
        return None


def _float_column(batch: pd.DataFrame, name: str) -> np.ndarray | None:
    """Column ``name`` as a contiguous float64 array when it is stored as one, else None."""
    col = _plain_column(batch, name)
    if not isinstance(col, np.ndarray) or col.dtype != np.float64:
        return None
    return np.ascontiguousarray(col)


def _group_starts(sorted_codes: np.ndarray) -> np.ndarray:
    """For each position of a key-sorted array, the index where its key's run starts."""
    n = len(sorted_codes)
    new = np.ones(n, dtype=bool)
    new[1:] = sorted_codes[1:] != sorted_codes[:-1]
    return np.maximum.accumulate(np.where(new, np.arange(n), 0))


def _trim_lru(state: dict[Any, Any], max_keys: int) -> int:
    """Drop the least recently updated keys (dict order = update order) beyond ``max_keys``."""
    excess = len(state) - max_keys
    if excess <= 0:
        return 0
    for k in list(itertools.islice(state, excess)):
        del state[k]
    return excess


class FeatureOperator(PickledStateOperator):
    """Shared runtime of keyed event-time steps: checks columns, sets bad rows aside, adds columns."""

    output_names = ("out", "dead_letter")
    #: whether ``value`` is told apart (distinct count), so a dict or a list in it is a dead letter
    distinct_value: ClassVar[bool] = False

    def __init__(self, where: str, key: str, time: str | None, value: str | None) -> None:
        self.where = where
        self.key = key
        self.time = time
        self.value = value

    def _compute(self, batch: pd.DataFrame, keys: pd.Series, times: np.ndarray) -> dict[str, Any]:
        raise NotImplementedError

    def _more_columns(self, clean: pd.DataFrame, index: pd.Index, columns: dict[str, Any]) -> dict[str, Any]:
        """Columns derived from ``_compute``'s (on the output's ``index``), added with them; none here."""
        return columns

    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        cols = [self.key] + [c for c in (self.time, self.value) if c is not None]
        require_columns(batch, cols, where=self.where)
        n = len(batch)
        key_col = batch[self.key]
        checks = []
        if not (isinstance(key_col.dtype, np.dtype) and key_col.dtype.kind in "iub") and _may_miss(key_col):
            # (numpy integers and booleans cannot be missing, nor an Arrow column without nulls)
            checks.append((key_col.isna().to_numpy(), f"key column {self.key!r} is missing"))
        unhashable = unhashable_rows(key_col)
        if unhashable is not None:
            checks.append((unhashable, unkeyable_reason(self.key)))
        if self.distinct_value and self.value is not None:
            unhashable = unhashable_rows(batch[self.value])
            if unhashable is not None:
                checks.append((unhashable, unkeyable_value_reason(self.value)))
        times = np.zeros(n, dtype=np.int64)
        if self.time is not None:
            time_col = batch[self.time]
            if time_col.dtype == _UTC_NS and n:
                # int64 ns underneath (NaT is NAT_NS), read in place: the steps only read it
                times = time_col.array.asi8
            else:
                times = event_time_ns(batch, self.time, where=self.where)
            if n and int(times.min()) == NAT_NS:  # (NAT_NS is the smallest int64)
                checks.append((times == NAT_NS, unreadable_time_reason(self.time)))
        good, reasons = reject(n, checks)
        clean = batch if reasons is None else batch.loc[good]
        # the key column as it is (pandas and the vocabularies factorize it without boxing each value),
        # but a json field's true, 1 and 1.0 tagged as three keys, as windows and the exports tell them
        keys = typed_key_column(clean[self.key])
        columns = self._compute(clean, keys, times if reasons is None else times[good])
        out = clean.reset_index(drop=True)
        columns = self._more_columns(clean, out.index, columns)
        # appended as blocks (one insert per column rebuilds pandas 3's string column index each time)
        result: Outputs = {"out": _with_columns(out, columns, batch.columns)}
        if reasons is not None:
            result["dead_letter"] = dead_letter(batch, ~good, reasons)
        return result


def _check_lateness(value: Duration, where: str) -> int:
    return check_duration(value, where=where, what="allowed_lateness", allow_zero=True)


class _KeyedStep(StepConfig):
    """Validation, column hooks and description shared by the keyed feature and rule configs."""

    output_names: ClassVar[tuple[str, ...]] = ("out", "dead_letter")
    #: fields holding durations: validated, and written as text such as "10m" by ``describe``
    _durations: ClassVar[tuple[str, ...]] = ()
    #: fields that may be None
    _optional: ClassVar[tuple[str, ...]] = ("name",)
    #: added columns a later step of the same role writes again on purpose (a rule's alert columns)
    _shared_outputs: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        where = type(self).__name__
        checks: list[Callable[[], object]] = []
        for f in ("name", "key", "value", "time"):
            if hasattr(self, f) and not (f in self._optional and getattr(self, f) is None):
                checks.append(functools.partial(check_name, getattr(self, f), where=where, what=f))
        for f in ("max_keys", "history"):
            if hasattr(self, f):
                checks.append(functools.partial(check_positive_int, getattr(self, f), where=where, what=f))
        for f in self._durations:
            checks.append(
                functools.partial(
                    check_duration, getattr(self, f), where=where, what=f, allow_zero=f == "allowed_lateness"
                )
            )
        # every problem at once, not one per attempt
        check_all(where, [*checks, functools.partial(self._validate, where)])
        reads = {getattr(self, f): f for f in ("key", "value", "time") if getattr(self, f, None) is not None}
        clash = [c for c in self.added_columns() if c in reads]
        if clash:  # ZScoreFeature('user', 'x', name='user') replaced every key with its z-score, silently
            raise ValueError(
                f"{where}: its output column {clash[0]!r} is the {reads[clash[0]]} column it reads, which it "
                f"would overwrite in every row; give the output another name (name=...), or rename that "
                f"column first, e.g. .with_columns({clash[0]}_in={clash[0]!r})"
            )

    def _validate(self, where: str) -> None:
        """Checks specific to one step (run after the shared ones)."""

    def check_columns(self, columns: Sequence[str]) -> tuple[str, str] | None:
        """Missing inputs, or an output column the stream has already (the feature would overwrite it).

        Examples
        --------
        >>> ZScoreFeature("user_id", "amount", name="amount_z").check_columns(["user_id", "amount"]) is None
        True
        >>> ZScoreFeature("user_id", "amount", name="label").check_columns(["user_id", "amount", "label"])[0]
        "its output column 'label' is a column the stream has already, which it would overwrite in every row"
        """
        problem = super().check_columns(columns)
        if problem is not None:
            return problem
        clash = [c for c in self.added_columns() if c in columns and c not in self._shared_outputs]
        if not clash:
            return None
        return (
            f"its output column {clash[0]!r} is a column the stream has already, which it would overwrite "
            "in every row",
            "give the output another name (name=...), or rename that column first, e.g. "
            f".with_columns({clash[0]}_in={clash[0]!r})",
        )

    def required_columns(self) -> tuple[str, ...]:
        """Input columns the step reads."""
        return tuple(getattr(self, f) for f in ("key", "value", "time") if getattr(self, f, None) is not None)

    def column_name(self) -> str:
        """Name of the output column."""
        raise NotImplementedError

    def added_columns(self) -> tuple[str, ...]:
        """Columns the step adds."""
        return (self.column_name(),)


# --- velocity


class _VelocityOperator(FeatureOperator):
    def __init__(self, step: VelocityFeature) -> None:
        super().__init__("VelocityFeature", step.key, step.time, step.value)
        self.step = step
        self.names = step.column_names()
        window = check_duration(step.window, where="", what="")
        self.counter = WindowCounter(window, _check_lateness(step.allowed_lateness, ""))

    def _compute(self, batch: pd.DataFrame, keys: pd.Series, times: np.ndarray) -> dict[str, Any]:
        values = _values(batch, self.value) if self.value is not None else None
        counts, sums = self.counter.update(keys, times, values)
        count_name, sum_name = self.names
        cols: dict[str, Any] = {count_name: counts}
        if sums is not None:
            cols[sum_name] = sums
        return cols

    def open_state(self) -> dict[str, Any]:
        return {"retained_events": len(self.counter)}


@step_kind(config=True)
@dataclass(frozen=True)
class VelocityFeature(_KeyedStep):
    """Count (and sum of ``value``) of the key's events in the last ``window`` of event time.

    For event ``i`` at time ``t``: the events of the same key with time in ``(t - window, t]`` that
    arrived no later than ``i`` (``i`` included). Vectorized: each batch is sorted by key and time
    against the carried events; events up to ``allowed_lateness`` behind the newest event get exact
    values (later ones see only the history still retained). The state holds the events of the last
    ``window + allowed_lateness`` and each batch costs time linear in it, so lower
    ``allowed_lateness`` on high-rate streams. Missing values count as events but add nothing to
    the sum.

    Parameters
    ----------
    key
        Entity column (user, card, IP).
    window
        Look-back window, e.g. ``"10m"``.
    value
        Optional numeric column to sum.
    time
        Event-time column.
    allowed_lateness
        How far behind the newest event an event may be and still get exact values.
    name
        Output column prefix; default ``count_<window>`` / ``sum_<value>_<window>``.

    Examples
    --------
    >>> import pandas as pd
    >>> batch = pd.DataFrame({
    ...     "user_id": ["a", "a", "b", "a"],
    ...     "amount": [10.0, 5.0, 1.0, 2.0],
    ...     "timestamp": pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:05",
    ...                                  "2024-01-01 00:06", "2024-01-01 00:12"], utc=True)})
    >>> out = VelocityFeature("user_id", window="10m", value="amount").build().process(batch)["out"]
    >>> out[["count_10m", "sum_amount_10m"]].values.tolist()
    [[1.0, 10.0], [2.0, 15.0], [1.0, 1.0], [2.0, 7.0]]
    """

    key: str
    window: Duration = param(codec=codec.DURATION_TEXT, default="10m")
    value: str | None = None
    time: str = "timestamp"
    allowed_lateness: Duration = param(codec=codec.DURATION_TEXT, default="1h")
    name: str | None = None

    kind: ClassVar[str] = "velocity_feature"
    _durations: ClassVar[tuple[str, ...]] = ("window", "allowed_lateness")
    _optional: ClassVar[tuple[str, ...]] = ("name", "value")

    def numeric_columns(self) -> tuple[str, ...]:
        """The summed ``value`` column, if any."""
        return (self.value,) if self.value is not None else ()

    def added_columns(self) -> tuple[str, ...]:
        """Columns the step adds."""
        return self.column_names() if self.value else self.column_names()[:1]

    def column_names(self) -> tuple[str, str]:
        """Names of the count and sum columns."""
        w = format_duration(check_duration(self.window, where="", what=""))
        if self.name is not None:
            return f"{self.name}_count", f"{self.name}_sum"
        return f"count_{w}", f"sum_{self.value}_{w}"

    def build(self) -> FeatureOperator:
        """Return the runtime state."""
        return _VelocityOperator(self)


# --- z-score


#: the index of a step that has no key yet (an Index is immutable, so one serves every step: a new one
#: costs ~0.1 ms on a cold cache, as a step built just before its first batch finds it)
_NO_KEYS = pd.Index([], dtype=object)


class _KeyRowsOperator(FeatureOperator):
    """Per-key state as rows of arrays (one row per key), advanced by one compiled loop per batch.

    ``index`` maps a key to its row; ``tick`` is the key's recency (the position in the stream of
    its last event that updated it), so beyond ``max_keys`` the least recently updated keys are
    forgotten, as a dict kept in update order would; a forgotten key that comes back starts over.
    Subclasses name their per-row arrays in ``_arrays`` and give a new row's value in ``_fresh``.
    """

    _arrays: ClassVar[tuple[str, ...]] = ()

    def __init__(self, where: str, step: Any, time: str | None, value: str | None) -> None:
        super().__init__(where, step.key, time, value)
        self.step = step
        self.index: pd.Index = _NO_KEYS
        self.tick = np.empty(0, dtype=np.int64)
        self.alive = np.empty(0, dtype=bool)
        self.next_tick = 0
        self.evictions = 0
        #: integer keys: a hash table of ``index`` (key, row entries) for :meth:`_int_rows`, or None
        self.hashed: np.ndarray | None = None
        #: or (keys in a narrow range) the rows of the keys from ``dense_low`` on, -1 where none
        self.dense: np.ndarray | None = None
        self.dense_low = 0

    def _fresh(self, name: str, rows: int) -> np.ndarray:
        raise NotImplementedError

    def _column(self) -> str:
        """The output column's name."""
        return cast(str, self.step.column_name())

    def _inputs(self, batch: pd.DataFrame, times: np.ndarray) -> np.ndarray:
        """The per-event input the kernel reads (values, or event times), contiguous."""
        return np.ascontiguousarray(_values(batch, cast(str, self.value)))

    def _ok(self, data: np.ndarray) -> np.ndarray:
        """Events that update their key (the others get NaN and leave the state as it is)."""
        return cast(np.ndarray, ~np.isnan(data))

    def _advance(self, rows: np.ndarray, data: np.ndarray, out: np.ndarray) -> None:
        """Run the feature's kernel: each event's output into ``out`` (every entry written), the rows'
        state advanced and marked used (``tick`` from ``next_tick``), forgotten rows started over."""
        raise NotImplementedError

    def _compute(self, batch: pd.DataFrame, keys: pd.Series, times: np.ndarray) -> dict[str, Any]:
        data = self._inputs(batch, times)
        return {self._column(): self._outputs(self._rows(keys, self._ok(data)), data)}

    def _outputs(self, rows: np.ndarray, data: np.ndarray) -> np.ndarray:
        """Each event's output, its key's state advanced (the batch's events counted in ``next_tick``)
        and the least recently updated keys beyond ``max_keys`` forgotten."""
        out = np.empty(len(data))
        self._advance(rows, data, out)
        self.next_tick += len(rows)
        self._forget()
        return out

    def _fast_inputs(self, batch: pd.DataFrame) -> np.ndarray | None:
        """:meth:`_inputs` read in place from a batch that needs none of ``process``'s checks, or None."""
        return _float_column(batch, cast(str, self.value))

    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        """:meth:`FeatureOperator.process`; a batch of int64 keys with nothing to set aside (and compiled
        kernels) skips its checks and copies, with the same result."""
        k = kernels()
        if k is None or type(batch) is not pd.DataFrame or len(batch) == 0:
            return super().process(batch, port)
        keys = _plain_column(batch, self.key)
        if (
            keys is None
            or keys.dtype != np.int64
            or not (len(self.index) == 0 or self.index.dtype == np.int64)
            or self._column() in batch.columns
        ):
            return super().process(batch, port)
        data = self._fast_inputs(batch)
        if data is None:
            return super().process(batch, port)
        rows = self._int_rows(k, np.ascontiguousarray(keys), self._ok(data))
        columns = {self._column(): self._outputs(rows, data)}
        try:
            return {"out": _appended(batch, columns, batch.columns, reset=True)}
        except (ImportError, AttributeError, TypeError, ValueError):  # pragma: no cover - other pandas
            return {"out": _with_columns(batch.reset_index(drop=True), columns, batch.columns)}

    def _rows(self, keys: pd.Series, ok: np.ndarray) -> np.ndarray:
        """Each event's row (-1 where ``ok`` is False); new keys get fresh rows (the kernels mark the
        rows used, and start forgotten ones over)."""
        keys = numpy_ints(keys)  # an int64 field of a batch that had a missing key (set aside): Int64
        if not ok.any():
            return np.full(len(keys), -1, dtype=np.int64)
        k = kernels()
        if (
            k is not None
            and keys.dtype == np.int64
            and (len(self.index) == 0 or self.index.dtype == np.int64)
        ):
            return self._int_rows(k, keys.to_numpy(), ok)
        rows = np.full(len(keys), -1, dtype=np.int64)
        self.hashed = self.dense = None  # the index changes below: the maps are rebuilt when next needed
        # (remembered per Arrow column: the pipeline's other keyed steps factorize the same one)
        codes, uniques = factorize(keys if ok.all() else keys[ok])
        u = object_index(uniques)  # typed (no boxing per key): lookups stay in the column's dtype
        if len(self.index):
            self.index, pos = positions_in(self.index, u)
        else:
            pos = np.full(len(u), -1, dtype=np.int64)
        new = pos < 0
        if new.any():
            start, extra = len(self.index), int(new.sum())
            self.index = u[new] if start == 0 else index_with(self.index, u[new])
            self._new_rows(start, extra)
            pos[new] = np.arange(start, start + extra)
        rows[np.flatnonzero(ok)] = pos[codes]
        return rows

    def _new_rows(self, start: int, extra: int) -> None:
        """Rows ``start .. start + extra`` for new keys (``start`` is the index's length): fresh state,
        alive.

        The per-row arrays keep spare rows beyond the index (fresh, not alive), doubling when full:
        a batch with a few new keys then does not copy every key's state (the median's is ~1.6 kB a
        key), and a grown array's new rows are left as allocated (fresh already).
        """
        if not extra:
            return
        end = start + extra
        for name in (*self._arrays, "tick", "alive"):
            arr = getattr(self, name)
            if len(arr) < end:
                grown = self._blank(name, max(end, 2 * len(arr)))
                grown[:start] = arr[:start]
                setattr(self, name, grown)
            else:
                arr[start:end] = self._blank(name, extra)
        self.alive[start:end] = True

    def _blank(self, name: str, rows: int) -> np.ndarray:
        """A per-row array of ``rows`` rows, fresh and not alive."""
        if name == "tick":
            return np.zeros(rows, dtype=np.int64)
        if name == "alive":
            return np.zeros(rows, dtype=bool)
        return self._fresh(name, rows)

    def _int_rows(self, k: Any, keys: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """:meth:`_rows` for integer keys: one compiled pass through a map of the index.

        The map mirrors ``index``: ``dense`` (the rows of the keys from ``dense_low`` on, a key's row at
        its offset) while the keys fit in a range of up to four slots a key, else ``hashed`` (keys and
        rows, linear probing). Either is built from the index when both are missing (after a restore,
        a compaction or a batch of other keys).
        """
        n_rows = len(self.index)
        new_keys = np.empty(len(keys), dtype=np.int64)
        if self.hashed is None and self.dense is None:
            self._dense_map(keys[ok] if not ok.all() else keys, len(keys))
        rows, n_new = self._key_rows(k, keys, ok, 0, new_keys, 0)
        self._new_rows(n_rows, n_new)
        self._add_keys(new_keys[:n_new])
        return rows

    def _key_rows(
        self, k: Any, keys: np.ndarray, ok: np.ndarray, at: int, new_keys: np.ndarray, n_new: int
    ) -> tuple[np.ndarray, int]:
        """The rows of events ``at ..`` (the others' are not set) through the map, and the number of
        new keys (``new_keys``, rows from the index's length on; ``n_new`` of them found before)."""
        n, n_rows = len(keys), len(self.index)
        rows = np.empty(n, dtype=np.int64)
        while self.dense is not None:
            at, n_new = k.dense_rows(keys, ok, at, self.dense_low, self.dense, n_rows, rows, new_keys, n_new)
            if at == n or not self._widen_dense(int(keys[at]), n_rows + n_new + 1):
                break
        if at < n:
            if self.hashed is None:
                self.dense = None
                capacity = 1024  # room for the batch's keys (up to 8192) without growing
                while capacity < 4 * min(n, 8192):
                    capacity *= 2
                known = np.r_[self.index.to_numpy(dtype=np.int64), new_keys[:n_new]]
                self.hashed = hash_table(k, known, capacity)
            at, n_new = k.key_rows(keys, ok, at, self.hashed, n_rows, rows, new_keys, n_new)
            while at < n:  # the table is half full: double it and go on
                known = np.r_[self.index.to_numpy(dtype=np.int64), new_keys[:n_new]]
                self.hashed = hash_table(k, known, 2 * len(self.hashed))
                at, n_new = k.key_rows(keys, ok, at, self.hashed, n_rows, rows, new_keys, n_new)
        return rows, n_new

    def _add_keys(self, keys: np.ndarray) -> None:
        """Append new keys (int64, whose rows follow the index's) to the index (int64, or empty)."""
        if len(keys):
            values = np.concatenate([self.index.to_numpy(dtype=np.int64), keys])
            self.index = _int_index(values)

    #: the dense map's largest size (4 bytes a slot)
    _DENSE_MAX: ClassVar[int] = 1 << 22

    def _dense_limit(self, n_keys: int) -> int:
        return min(max(1024, 4 * n_keys), self._DENSE_MAX)

    def _dense_map(self, keys: np.ndarray, n: int) -> None:
        """Make ``dense`` for the index and a batch's ``keys`` (of ``n`` events) if their range is
        small enough (at most four slots per key the index and the batch may hold)."""
        known = self.index.to_numpy(dtype=np.int64)
        if not len(keys) and not len(known):
            return
        low = min(int(keys.min()) if len(keys) else 2**63, int(known.min()) if len(known) else 2**63)
        high = max(int(keys.max()) if len(keys) else -(2**63), int(known.max()) if len(known) else -(2**63))
        span = high - low + 1
        if span > self._dense_limit(len(known) + n) or len(known) + n >= 2**31:
            return
        self.dense = np.full(span, -1, dtype=np.int32)
        self.dense_low = low
        self.dense[known - low] = np.arange(len(known), dtype=np.int32)

    def _widen_dense(self, key: int, n_keys: int) -> bool:
        """Widen ``dense`` to hold ``key`` (and ``n_keys`` keys in all), doubling it; False when the
        range would be too wide for a map (the caller drops it and takes the hash table)."""
        dense = cast(np.ndarray, self.dense)
        low, size = self.dense_low, len(dense)
        need = max(low + size, key + 1) - min(low, key)
        limit = self._dense_limit(n_keys)
        if need > limit or n_keys >= 2**31:
            return False
        size_new = min(max(need, 2 * size), limit)
        low_new = low if key >= low else low + size - size_new
        grown = np.full(size_new, -1, dtype=np.int32)
        grown[low - low_new : low - low_new + size] = dense
        self.dense, self.dense_low = grown, low_new
        return True

    def _forget(self) -> None:
        """Drop the least recently updated keys beyond ``max_keys``; compact when many rows are dropped."""
        n_live = int(np.count_nonzero(self.alive))
        excess = n_live - self.step.max_keys
        if excess > 0:
            live = np.flatnonzero(self.alive)
            oldest = live[np.argsort(self.tick[live], kind="stable")[:excess]]
            self.alive[oldest] = False
            self.evictions += excess
            n_live -= excess
        if len(self.index) > 2 * n_live + 1024:
            live = np.flatnonzero(self.alive)
            self.hashed = self.dense = None
            self.index = self.index[live]
            for name in (*self._arrays, "tick", "alive"):
                setattr(self, name, getattr(self, name)[live])

    def open_state(self) -> dict[str, Any]:
        return {"keys": int(self.alive.sum()), "evictions": self.evictions}

    #: the attribute holding the per-key dict in snapshots taken before the key rows
    _old_state: ClassVar[str] = ""

    def _old_rows(self, key: Any, value: Any) -> None:
        """Fill the last added row from one entry of the old per-key dict."""
        raise NotImplementedError

    def restore(self, state: Any) -> None:
        old = pickle.loads(state)
        if self._old_state not in old or not isinstance(old[self._old_state], dict):
            super().restore(state)
            self.__dict__.setdefault("hashed", None)  # a snapshot taken before the hash table
            self.__dict__.setdefault("dense", None)  # or before the dense map
            self.__dict__.setdefault("dense_low", 0)
            return
        self.hashed = self.dense = None
        self.dense_low = 0
        # a snapshot of the dict version: its keys in recency order become rows, oldest first
        entries = old.pop(self._old_state)
        self.__dict__.update(old)
        keys = list(entries)
        self.index = pd.Index(keys, dtype=object)
        n = len(keys)
        for name in self._arrays:
            setattr(self, name, self._fresh(name, n))
        self.tick = np.arange(n, dtype=np.int64) - n
        self.alive = np.ones(n, dtype=bool)
        self.next_tick = 0
        for row, k in enumerate(keys):
            self._old_rows(row, entries[k])


def _int_index(values: np.ndarray) -> pd.Index:
    """``pd.Index(values)`` of a new int64 array, made without pandas' checks and copy.

    ``pd.Index`` and ``Index.append`` take 60-90 us each on a cold cache, as a step finds it on its
    first batches after the runtime's (or the benchmark's) garbage collection, against ~12 us here.
    """
    try:
        return cast(pd.Index, pd.Index._simple_new(values))  # type: ignore[attr-defined]
    except (AttributeError, TypeError):  # pragma: no cover - other pandas
        return cast(pd.Index, pd.Index(values, dtype=np.int64))


def _kernel(name: str) -> Any:
    """A compiled kernel, or its plain-Python twin without numba."""
    k = kernels()
    return getattr(k, name) if k is not None else plain_kernel(name)


class _ZScoreOperator(_KeyRowsOperator):
    _arrays = ("state",)

    def __init__(self, step: ZScoreFeature) -> None:
        super().__init__("ZScoreFeature", step, None, step.value)
        self.state = np.empty((0, 3))  # n, mean, S: river's stats.Var per key

    def _fresh(self, name: str, rows: int) -> np.ndarray:
        return np.zeros((rows, 3))

    _old_state = "stats"

    def _old_rows(self, key: Any, value: Any) -> None:
        self.state[key] = value

    def _ok(self, data: np.ndarray) -> np.ndarray:
        return cast(np.ndarray, np.isfinite(data))

    def _advance(self, rows: np.ndarray, data: np.ndarray, out: np.ndarray) -> None:
        # (the plain-Python twin computes with numpy scalars: 0 / 0 where the z-score is NaN anyway,
        # and an overflow to inf as the compiled kernel's, without a warning)
        with np.errstate(all="ignore"):
            _kernel("zscore")(rows, data, self.state, self.alive, self.tick, self.next_tick, out)


@step_kind(config=True)
@dataclass(frozen=True)
class ZScoreFeature(_KeyedStep):
    """z-score of ``value`` against the key's own earlier values: ``(v - mean) / std`` (sample std).

    Welford statistics per key, before adding the event; NaN until the key has two values or while
    its values are all equal. river's ``stats.Var`` update event by event in one compiled loop per
    batch (numba; plain Python without it), so values are river's bit for bit. State is one triple
    per key kept.

    Parameters
    ----------
    key
        Entity column.
    value
        Numeric column.
    name
        Output column; default ``zscore_<value>``.
    max_keys
        Keys kept; beyond it the least recently updated key is forgotten (its history restarts).

    Examples
    --------
    >>> import pandas as pd
    >>> batch = pd.DataFrame({"user_id": ["a"] * 4, "amount": [10.0, 12.0, 11.0, 30.0]})
    >>> out = ZScoreFeature("user_id", "amount").build().process(batch)["out"]
    >>> [round(v, 2) for v in out["zscore_amount"].fillna(-1)]
    [-1.0, -1.0, 0.0, 19.0]
    """

    key: str
    value: str
    name: str | None = None
    max_keys: int = 100_000

    kind: ClassVar[str] = "zscore_feature"

    def numeric_columns(self) -> tuple[str, ...]:
        """The ``value`` column."""
        return (self.value,)

    def column_name(self) -> str:
        """Name of the output column."""
        return self.name or f"zscore_{self.value}"

    def build(self) -> FeatureOperator:
        """Return the runtime state."""
        return _ZScoreOperator(self)


# --- time since last


class _TimeSinceLastOperator(_KeyRowsOperator):
    _arrays = ("last",)

    def __init__(self, step: TimeSinceLastFeature) -> None:
        super().__init__("TimeSinceLastFeature", step, step.time, None)
        self.last = np.empty(0, dtype=np.int64)  # the key's latest event time

    def _fresh(self, name: str, rows: int) -> np.ndarray:
        return np.full(rows, NAT_NS, dtype=np.int64)

    _old_state = "last"

    def _old_rows(self, key: Any, value: Any) -> None:
        self.last[key] = value

    def _inputs(self, batch: pd.DataFrame, times: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(times, dtype=np.int64)

    def _ok(self, data: np.ndarray) -> np.ndarray:
        return np.ones(len(data), dtype=bool)

    def _fast_inputs(self, batch: pd.DataFrame) -> np.ndarray | None:
        times = _utc_ns_column(batch, cast(str, self.time))
        if times is None or int(times.min()) == NAT_NS:  # (a missing time: a dead letter)
            return None
        return times

    def _advance(self, rows: np.ndarray, data: np.ndarray, out: np.ndarray) -> None:
        state = (self.last, NAT_NS, self.alive, self.tick, self.next_tick)
        _kernel("time_since_last")(rows, data, *state, out)


@step_kind(config=True)
@dataclass(frozen=True)
class TimeSinceLastFeature(_KeyedStep):
    """Seconds since the key's latest earlier-arrived event (in event time); NaN for a key's first event.

    Negative when the event is older than one the key already had (it arrived out of order).

    Parameters
    ----------
    key
        Entity column.
    time
        Event-time column.
    name
        Output column; default ``seconds_since_last``.
    max_keys
        Keys kept; beyond it the least recently updated key is forgotten (its history restarts).

    Examples
    --------
    >>> import pandas as pd
    >>> batch = pd.DataFrame({"user_id": ["a", "b", "a"], "timestamp": pd.to_datetime(
    ...     ["2024-01-01 00:00:00", "2024-01-01 00:00:05", "2024-01-01 00:00:30"], utc=True)})
    >>> TimeSinceLastFeature("user_id").build().process(batch)["out"]["seconds_since_last"].tolist()
    [nan, nan, 30.0]
    """

    key: str
    time: str = "timestamp"
    name: str | None = None
    max_keys: int = 100_000

    kind: ClassVar[str] = "time_since_last_feature"

    def column_name(self) -> str:
        """Name of the output column."""
        return self.name or "seconds_since_last"

    def build(self) -> FeatureOperator:
        """Return the runtime state."""
        return _TimeSinceLastOperator(self)


# --- distinct count


class _DistinctOperator(FeatureOperator):
    distinct_value = True

    def __init__(self, step: DistinctCountFeature) -> None:
        super().__init__("DistinctCountFeature", step.key, step.time, step.value)
        self.step = step
        window = check_duration(step.window, where="", what="")
        self.counter = DistinctCounter(window, _check_lateness(step.allowed_lateness, ""))

    def _compute(self, batch: pd.DataFrame, keys: pd.Series, times: np.ndarray) -> dict[str, Any]:
        counts = self.counter.update(keys, times, batch[self.step.value])
        return {self.step.column_name(): counts}

    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        """:meth:`FeatureOperator.process`; a batch of int64 keys and UTC times, none missing, whose
        values can all be told apart (compiled kernels) skips its checks and copies, with the same
        result (as :meth:`_KeyRowsOperator.process` does)."""
        name = self.step.column_name()
        if kernels() is None or type(batch) is not pd.DataFrame or len(batch) == 0 or name in batch.columns:
            return super().process(batch, port)
        keys = _plain_column(batch, self.key)
        times = _utc_ns_column(batch, cast(str, self.time))
        if (
            keys is None
            or keys.dtype != np.int64
            or times is None
            or int(times.min()) == NAT_NS  # (a missing time: a dead letter)
            or _plain_column(batch, cast(str, self.value)) is None
        ):
            return super().process(batch, port)
        values = batch[cast(str, self.value)]
        if unhashable_rows(values) is not None:
            return super().process(batch, port)
        columns = {name: self.counter.update(np.ascontiguousarray(keys), times, values)}
        try:
            return {"out": _appended(batch, columns, batch.columns, reset=True)}
        except (ImportError, AttributeError, TypeError, ValueError):  # pragma: no cover - other pandas
            return {"out": _with_columns(batch.reset_index(drop=True), columns, batch.columns)}

    def open_state(self) -> dict[str, Any]:
        return {"keys": self.counter.n_keys()}

    def restore(self, state: Any) -> None:
        old = pickle.loads(state)
        if "seen" not in old:
            super().restore(state)
            return
        # a snapshot of the dict version (key -> value -> retained times): its entries become rows
        seen: dict[Hashable, dict[Hashable, list[int]]] = old.pop("seen")
        max_seen: int = old.pop("max_seen_ns")
        for name in ("window_ns", "lateness_ns"):
            old.pop(name, None)
        self.__dict__.update(old)
        window = check_duration(self.step.window, where="", what="")
        self.counter = DistinctCounter(window, _check_lateness(self.step.allowed_lateness, ""))
        entries = [(k, v, t) for k, per_key in seen.items() for v, ts in per_key.items() for t in ts]
        if entries:
            frame = pd.DataFrame(entries, columns=["key", "value", "time"])
            # the carried entries are the batch of an empty state, dated before any retained horizon
            self.counter.update(frame["key"], frame["time"].to_numpy(dtype=np.int64), frame["value"])
        self.counter.max_seen_ns = max_seen


@step_kind(config=True)
@dataclass(frozen=True)
class DistinctCountFeature(_KeyedStep):
    """Number of distinct ``value``s of the key within ``(t - window, t]`` (e.g. countries per card).

    Same causal, arrival-order semantics as :class:`VelocityFeature`; missing values are not counted.
    Vectorized over a batch when every key's events arrive in event-time order (the usual case);
    otherwise one pass over each key's time-sorted events (compiled with numba, plain Python
    without it).

    Parameters
    ----------
    key
        Entity column.
    value
        Column whose distinct values are counted.
    window
        Look-back window.
    time
        Event-time column.
    allowed_lateness
        How far behind the newest event an event may be and still get exact values.
    name
        Output column; default ``distinct_<value>_<window>``.

    Examples
    --------
    >>> import pandas as pd
    >>> batch = pd.DataFrame({"card": ["c1"] * 3, "country": ["FR", "FR", "US"],
    ...     "timestamp": pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:10", "2024-01-01 00:20"],
    ...                                 utc=True)})
    >>> DistinctCountFeature("card", "country").build().process(batch)["out"]["distinct_country_1h"].tolist()
    [1, 1, 2]
    """

    key: str
    value: str
    window: Duration = param(codec=codec.DURATION_TEXT, default="1h")
    time: str = "timestamp"
    allowed_lateness: Duration = param(codec=codec.DURATION_TEXT, default="1h")
    name: str | None = None

    kind: ClassVar[str] = "distinct_count_feature"
    _durations: ClassVar[tuple[str, ...]] = ("window", "allowed_lateness")

    def column_name(self) -> str:
        """Name of the output column."""
        return (
            self.name
            or f"distinct_{self.value}_{format_duration(check_duration(self.window, where='', what=''))}"
        )

    def build(self) -> FeatureOperator:
        """Return the runtime state."""
        return _DistinctOperator(self)


# --- ratio to median

#: The most values a :class:`RatioToMedianFeature` keeps per key: each key holds two arrays of
#: ``history`` floats from its first event on, so ``history=10**12`` failed on the first batch
#: (MemoryError) long after the pipeline was built.
MAX_MEDIAN_HISTORY = 1_000_000


class _RatioToMedianOperator(_KeyRowsOperator):
    """A key's row holds its last ``history`` values in arrival order (a ring) and sorted."""

    _arrays = ("ring", "ordered", "length", "head")

    def __init__(self, step: RatioToMedianFeature) -> None:
        super().__init__("RatioToMedianFeature", step, None, step.value)
        size = step.history
        self.ring = np.empty((0, size))
        self.ordered = np.empty((0, size + 1))
        self.length = np.empty(0, dtype=np.int64)
        self.head = np.empty(0, dtype=np.int64)

    def _fresh(self, name: str, rows: int) -> np.ndarray:
        size = self.step.history
        if name == "ring":
            return np.zeros((rows, size))
        if name == "ordered":
            return np.zeros((rows, size + 1))
        return np.zeros(rows, dtype=np.int64)

    def _blank(self, name: str, rows: int) -> np.ndarray:
        """:meth:`_KeyRowsOperator._blank`; the values' arrays made for the first keys have twice
        the rows asked for.

        A key's values take ~1.6 kB: growing the arrays copies every key's (16 MB for 10k keys), and
        arrays sized for the first batch's keys grew at the next batch with a few new keys. The
        spare rows cost nothing until used (zeros the system maps when first written), and
        snapshots leave them out.
        """
        if name in ("ring", "ordered") and len(getattr(self, name)) == 0:
            return self._fresh(name, 2 * rows)
        return super()._blank(name, rows)

    def snapshot(self) -> Any:
        """The pickled state, without the values' spare rows (those beyond the index's keys: never
        used, zeros)."""
        state = dict(self.__dict__)
        for name in ("ring", "ordered"):
            state[name] = state[name][: len(self.index)]
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    _old_state = "recent"

    def _old_rows(self, key: Any, value: Any) -> None:
        fifo, ordered = value  # the values in arrival order, and sorted
        self.ring[key, : len(fifo)] = list(fifo)
        self.ordered[key, : len(ordered)] = ordered
        self.length[key] = len(ordered)
        self.head[key] = 0

    def _advance(self, rows: np.ndarray, data: np.ndarray, out: np.ndarray) -> None:
        state = (self.ring, self.ordered, self.length, self.head, self.alive, self.tick, self.next_tick)
        with np.errstate(all="ignore"):  # (the plain-Python twin's inf / inf: NaN, as compiled)
            _kernel("ratio_to_median")(rows, data, *state, out)


@step_kind(config=True)
@dataclass(frozen=True)
class RatioToMedianFeature(_KeyedStep):
    """``value`` divided by the median of the key's previous ``history`` values.

    The running median is exact over the last ``history`` values of the key (a bounded sliding
    window), which approximates the median of the key's whole history. NaN for a key's first value
    or when the median is 0. Computed event by event in one compiled loop per batch (numba; plain
    Python without it), with the arithmetic of a sorted list per key, so results do not depend on
    batching.

    Parameters
    ----------
    key
        Entity column.
    value
        Numeric column.
    history
        Number of recent values per key the median is taken over.
    name
        Output column; default ``ratio_to_median_<value>``.
    max_keys
        Keys kept; beyond it the least recently updated key is forgotten (its history restarts).

    Examples
    --------
    >>> import pandas as pd
    >>> batch = pd.DataFrame({"user_id": ["a"] * 4, "amount": [10.0, 20.0, 30.0, 200.0]})
    >>> out = RatioToMedianFeature("user_id", "amount").build().process(batch)["out"]
    >>> out["ratio_to_median_amount"].tolist()
    [nan, 2.0, 2.0, 10.0]
    """

    key: str
    value: str
    history: int = 101
    name: str | None = None
    max_keys: int = 100_000

    kind: ClassVar[str] = "ratio_to_median_feature"

    def _validate(self, where: str) -> None:
        history = self.history
        if isinstance(history, int) and not isinstance(history, bool) and history > MAX_MEDIAN_HISTORY:
            raise ValueError(
                f"{where}: history={history:,} is more than the {MAX_MEDIAN_HISTORY:,} values a key's median "
                "can keep (each key holds 16 bytes per value, made when its first event arrives: the run "
                "failed on its first batch for want of memory); pass a history of at most "
                f"{MAX_MEDIAN_HISTORY:,}, e.g. history=101"
            )

    def numeric_columns(self) -> tuple[str, ...]:
        """The ``value`` column."""
        return (self.value,)

    def column_name(self) -> str:
        """Name of the output column."""
        return self.name or f"ratio_to_median_{self.value}"

    def build(self) -> FeatureOperator:
        """Return the runtime state."""
        return _RatioToMedianOperator(self)


# --- rules

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}


def _alert_columns(batch: pd.DataFrame, index: pd.Index, name: str, alert: np.ndarray) -> dict[str, Any]:
    """``rule`` and ``is_alert`` combined with the alerts of earlier rules (``batch``'s columns, on the
    output's ``index``): any rule alerting raises ``is_alert``, the first one names it."""
    if "is_alert" in batch.columns:
        col = batch["is_alert"]
        prev = col.to_numpy() if col.dtype == np.bool_ else col.fillna(False).to_numpy(dtype=bool)
        prev_rule = (
            batch["rule"].to_numpy(dtype=object)
            if "rule" in batch.columns
            else np.full(len(batch), None, object)
        )
    else:
        prev = np.zeros(len(batch), dtype=bool)
        prev_rule = np.full(len(batch), None, dtype=object)
    rule = np.full(len(batch), None, dtype=object)
    rule[alert] = name
    rule[prev] = prev_rule[prev]
    # object dtype keeps None for "no rule" (a string dtype would turn it into NaN)
    return {"rule": pd.Series(rule, index=index, dtype="object"), "is_alert": prev | alert}


class _ThresholdRuleOperator(PickledStateOperator):
    def __init__(self, step: ThresholdRule) -> None:
        self.step = step

    def _by_comparison(self, batch: pd.DataFrame) -> np.ndarray:
        """``column op value`` as the exported rule's ``compare_values`` reads it: compared with a number,
        a text is the number it writes (``"5000"`` is 5000.0, as features read it); a value that does not
        compare with ``value`` (a text that writes no number, against a number) is no alert (``!=``: an
        alert)."""
        step = self.step
        column, op = cast(str, step.column), cast(str, step.op)  # both checked in __post_init__
        require_columns(batch, [column], where=f"ThresholdRule(name={step.name!r})")
        col = batch[column]
        dtype = col.dtype.categories.dtype if isinstance(col.dtype, pd.CategoricalDtype) else col.dtype
        if not (reads_text_as_number(step.value) and pd.api.types.is_string_dtype(dtype)):
            try:
                with np.errstate(invalid="ignore"):
                    return np.asarray(_OPS[op](col, step.value).fillna(False), dtype=bool)
            except TypeError:
                pass
        values = col.tolist()  # text read as a number, or values of several types: one at a time
        return np.fromiter((compare_values(v, op, step.value) for v in values), dtype=bool, count=len(values))

    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        step = self.step
        if len(batch) == 0:
            out = batch.copy()
            out["rule"] = pd.Series(dtype=object)
            out["is_alert"] = pd.Series(dtype=bool)
            return {"out": out}
        why = None
        if step.expr is not None:
            where = f"ThresholdRule(name={step.name!r})"
            alert, why = condition_rows(batch, step.expr, f"rule {step.name!r}", where)
        else:
            alert = self._by_comparison(batch)
        result: Outputs = {}
        if why is not None:
            bad = pd.notna(why)  # the rows with a reason
            result["dead_letter"] = dead_letter(batch, bad, why)
            batch, alert = batch[~bad], alert[~bad]
        out = batch.reset_index(drop=True)
        result["out"] = _with_columns(out, _alert_columns(batch, out.index, step.name, alert), batch.columns)
        return result


def _check_expression(expr: str, where: str) -> None:
    """Refuse an ``expr`` that is not an expression (``'amount >'``): every row would go to dead letter.
    (One calling what pandas cannot evaluate is refused by the step that holds it, naming the step.)"""
    try:
        _pyast.parse(_pyast.unquote_backticks(expr)[0], mode="eval")
    except SyntaxError as e:
        raise ValueError(
            f"{where}: cannot read expression {expr!r}: {e.msg}; write a pandas expression such as "
            '"amount > 100"'
        ) from None


def _check_op(op: object, where: str) -> None:
    if op not in _OPS:
        raise ValueError(
            f"{where}: op must be one of {sorted(_OPS)!r}, got {op!r}; write e.g. op='>' (in YAML quoted: op: '>')"
        )


def _check_rule_value(value: Any, column: str, where: str) -> None:
    """Refuse a ``value`` no row can be compared with: missing (None, NaN: ``column > value`` would never
    alert, ``!=`` always) or several values (a list: the comparison failed on the first batch)."""
    col = column if isinstance(column, str) else "amount"
    missing = f"to alert on a missing value write expr='{col}.isna()'"
    if value is None:
        raise ValueError(
            f"{where}: value is missing, so column={column!r} would be compared with nothing; pass the "
            f"value to compare with, e.g. value=1000 (a number, a text or true/false), or {missing}"
        )
    if isinstance(value, (float, np.floating)) and value != value:
        raise ValueError(
            f"{where}: value=nan never compares equal, greater or less, so the rule would never alert "
            f"(with op='!=' always); pass a number, or {missing}"
        )
    if not isinstance(value, (numbers.Number, str, bytes, datetime.date, datetime.timedelta, np.generic)):
        raise ValueError(
            f"{where}: value={value!r} is a {type(value).__name__}, not one value to compare with; pass "
            f"one number, text or true/false, or for one of several values write expr='{col}.isin([1, 2])'"
        )


@step_kind(config=True)
@dataclass(frozen=True)
class ThresholdRule(StepConfig):
    """A hand-written rule: alert where a condition holds.

    Give either ``expr`` (a pandas expression over the batch's columns) or ``column``/``op``/``value``.
    Adds ``rule`` (name of the first rule that alerted, else None) and ``is_alert`` (any rule
    alerted), combining with columns of rules applied earlier.

    Output ``dead_letter``: rows whose ``expr`` cannot be evaluated (a text compared with a number),
    with the error as ``reason``; the rest of the batch goes on. An ``expr`` naming a column the stream
    lacks is refused when the pipeline is built (where the stream's columns are known; otherwise it
    stops the run with a ValueError, as it would fail on every row). With
    ``column``/``op``/``value`` and a number ``value``, a text is read as the number it writes
    (``"5000"`` is 5000.0), as the features and detectors read numbers and as the exported rule does; a
    value that does not compare with ``value`` (a text that writes no number) is no alert (with ``!=``,
    an alert), as a missing one.

    Parameters
    ----------
    name
        Rule name written to ``rule``.
    expr
        Condition, e.g. ``"amount > 1000 and country != 'FR'"``.
    column, op, value
        Condition ``column op value`` with ``op`` in ``> >= < <= == !=``.

    Examples
    --------
    >>> import pandas as pd
    >>> batch = pd.DataFrame({"amount": [5.0, 5000.0], "country": ["FR", "US"]})
    >>> rule = ThresholdRule("big_abroad", expr="amount > 1000 and country != 'FR'")
    >>> out = rule.build().process(batch)["out"]
    >>> out[["rule", "is_alert"]].values.tolist()
    [[None, False], ['big_abroad', True]]
    >>> out = ThresholdRule("big", column="amount", op=">", value=10).build().process(batch)["out"]
    >>> out["is_alert"].tolist()
    [False, True]
    >>> texts = pd.DataFrame({"amount": pd.Series(["5000", "5", "n/a"], dtype=object)})
    >>> ThresholdRule("big", column="amount", op=">", value=1000).build().process(texts)["out"]["is_alert"].tolist()
    [True, False, False]
    """

    name: str
    expr: str | None = param(codec=codec.EXPRESSION, default=None)
    column: str | None = None
    op: str | None = None
    value: Any = None

    kind: ClassVar[str] = "threshold_rule"
    output_names: ClassVar[tuple[str, ...]] = ("out", "dead_letter")

    def required_columns(self) -> tuple[str, ...]:
        """Input columns the step reads (those ``expr`` names: a missing one is a configuration error)."""
        if self.expr is not None:
            from streamlab.steps import named_columns

            return named_columns(self.expr)
        return () if self.column is None else (self.column,)

    def condition_columns(self) -> list[str]:
        """The columns the condition names (those a dead letter's reason shows), in order of appearance."""
        if self.expr is None:
            return [cast(str, self.column)]
        return list(expression_names(self.expr) or ())

    def added_columns(self) -> tuple[str, ...]:
        """Columns the step adds."""
        return ("rule", "is_alert")

    def added_column_types(self) -> dict[str, str]:
        """Types of the added columns: ``rule`` (the name, or missing) is text, ``is_alert`` bool."""
        return {"rule": "string", "is_alert": "bool"}

    def __post_init__(self) -> None:
        where = f"ThresholdRule(name={self.name!r})"
        check_name(self.name, where="ThresholdRule", what="name")
        by_column = self.column is not None or self.op is not None or self.value is not None
        if (self.expr is None) == (not by_column):
            given = "both expr and column/op/value are given" if by_column else "no condition is given"
            raise ValueError(
                f"{where}: {given}, and a rule has one condition; give either expr='amount > 1000' or "
                "column='amount', op='>', value=1000 (not both)"
            )
        if self.expr is not None:
            check_name(self.expr, where=where, what="expr")
            _check_expression(self.expr, where)
            return
        check_all(
            "ThresholdRule",
            [
                functools.partial(check_name, self.column, where=where, what="column"),
                functools.partial(_check_op, self.op, where),
                functools.partial(_check_rule_value, self.value, cast(str, self.column), where),
            ],
        )

    def numeric_columns(self) -> tuple[str, ...]:
        """The ``column`` compared with a number: one declared text upstream is refused when the step is
        added, as for the features (declare it a number: the rule reads undeclared text as the number it
        writes, where a declared number column compares its values exactly)."""
        number = reads_text_as_number(self.value)
        return (self.column,) if self.column is not None and number else ()

    def text_columns(self) -> tuple[str, ...]:
        """The ``column`` compared with a text (a declared number column would never alert with ``==``,
        ``<``, ``>``, and always with ``!=``: ``value='10'`` from a quoted YAML number)."""
        return (self.column,) if self.column is not None and isinstance(self.value, str) else ()

    def build(self) -> PickledStateOperator:
        """Return the runtime state (stateless)."""
        return _ThresholdRuleOperator(self)


class _VelocityRuleOperator(FeatureOperator):
    def __init__(self, step: VelocityRule) -> None:
        super().__init__(f"VelocityRule(name={step.name!r})", step.key, step.time, None)
        self.step = step
        self.counter = WindowCounter(
            check_duration(step.window, where="", what=""), _check_lateness(step.allowed_lateness, "")
        )

    def _compute(self, batch: pd.DataFrame, keys: pd.Series, times: np.ndarray) -> dict[str, Any]:
        counts, _ = self.counter.update(keys, times, None)
        return {f"{self.step.name}_count": counts}

    def _more_columns(self, clean: pd.DataFrame, index: pd.Index, columns: dict[str, Any]) -> dict[str, Any]:
        alert = np.asarray(columns[f"{self.step.name}_count"]) > self.step.max_count
        return columns | _alert_columns(clean, index, self.step.name, alert)

    def open_state(self) -> dict[str, Any]:
        return {"retained_events": len(self.counter)}


@step_kind(config=True)
@dataclass(frozen=True)
class VelocityRule(_KeyedStep):
    """Alert when a key has more than ``max_count`` events within ``window`` of event time.

    Counts as :class:`VelocityFeature` (vectorized; the batch's event included). Adds
    ``<name>_count``, ``rule`` and ``is_alert`` (combined with earlier rules' columns).

    Parameters
    ----------
    key
        Entity column.
    window
        Look-back window.
    max_count
        Largest allowed count; more raises an alert.
    name
        Rule name.
    time
        Event-time column.
    allowed_lateness
        How far behind the newest event an event may be and still be counted exactly.

    Examples
    --------
    >>> import pandas as pd
    >>> batch = pd.DataFrame({"user_id": ["a"] * 4, "timestamp": pd.to_datetime(
    ...     ["2024-01-01 00:00:00", "2024-01-01 00:00:10", "2024-01-01 00:00:20", "2024-01-01 00:05:00"],
    ...     utc=True)})
    >>> rule = VelocityRule("user_id", window="1m", max_count=2, name="burst")
    >>> rule.build().process(batch)["out"][["burst_count", "is_alert"]].values.tolist()
    [[1, False], [2, False], [3, True], [1, False]]
    """

    key: str
    window: Duration = param(codec=codec.DURATION_TEXT)
    # mypy reads param() as a default; it is a field without one (dataclasses.field)
    max_count: int  # type: ignore[misc]
    name: str  # type: ignore[misc]
    time: str = "timestamp"
    allowed_lateness: Duration = param(codec=codec.DURATION_TEXT, default="1h")

    kind: ClassVar[str] = "velocity_rule"
    _durations: ClassVar[tuple[str, ...]] = ("window", "allowed_lateness")
    _optional: ClassVar[tuple[str, ...]] = ()
    _shared_outputs: ClassVar[tuple[str, ...]] = ("rule", "is_alert")

    def _validate(self, where: str) -> None:
        if isinstance(self.max_count, bool) or not isinstance(self.max_count, int) or self.max_count < 0:
            raise ValueError(
                f"{where}: max_count must be an integer >= 0, got {self.max_count!r}; pass a whole number "
                "without quotes, e.g. max_count=5 (alert on the 6th event within the window)"
            )

    def added_columns(self) -> tuple[str, ...]:
        """Columns the step adds."""
        return (f"{self.name}_count", "rule", "is_alert")

    def added_column_types(self) -> dict[str, str]:
        """Types of the added columns: the count is an integer, ``rule`` text, ``is_alert`` bool."""
        return {f"{self.name}_count": "int64", "rule": "string", "is_alert": "bool"}

    def build(self) -> FeatureOperator:
        """Return the runtime state."""
        return _VelocityRuleOperator(self)
