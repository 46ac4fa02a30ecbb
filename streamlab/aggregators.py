"""Aggregators: what a window computes per key.

The contract for custom aggregators is four methods on one group's values (documented on
:class:`Aggregator`): ``initial() -> state``, ``add(state, values) -> state`` where ``values`` is a numpy
array holding this group's values from one micro-batch, ``merge(a, b) -> state`` and
``result(state) -> value``. Built-in aggregators also provide a vectorized store that updates every open
window and key of a batch at once (one ``numpy.bincount`` per batch instead of a Python call per group).
"""

from __future__ import annotations

import copy
import math
import sys
from typing import Any, ClassVar, TypedDict, cast

import numpy as np
import numpy.typing as npt

from streamlab.errors import ParameterError

IntArray = npt.NDArray[np.intp]
"""Slot numbers, group numbers or row positions: an integer numpy array."""

__all__ = [
    "Aggregator",
    "AggregatorStore",
    "CountAggregator",
    "CountDistinctAggregator",
    "FirstAggregator",
    "LastAggregator",
    "MaxAggregator",
    "MeanAggregator",
    "MinAggregator",
    "QuantileAggregator",
    "QuantileState",
    "SumAggregator",
]


class AggregatorStore:
    """Vectorized state of one aggregator over many slots (one slot = one open window and key).

    ``add`` receives, for the rows of one batch admitted to windows, ``group`` (a dense group number per
    row, ``0..n_groups-1``), the group's ``slots``, the aggregated column's ``values`` and the rows'
    event times ``ts``.

    Examples
    --------
    >>> import numpy as np
    >>> store = SumAggregator('x').store()
    >>> store.grow(2)
    >>> store.add(np.array([0, 1, 0]), 2, np.array([0, 1]), np.array([1.0, 2.0, 3.0]), np.zeros(3, dtype=np.int64))
    >>> store.results(np.array([0, 1])).tolist()
    [4.0, 2.0]
    """

    #: whether ``add`` runs user code that may raise (a custom aggregator): the window then adds its
    #: rows first and sets aside the rows it fails on (:attr:`failed`) before the other aggregators
    user_code: ClassVar[bool] = True

    def __init__(self, agg: Aggregator) -> None:
        self.agg = agg
        self.states: list[Any] = []
        #: positions (in the ``group`` array of the last :meth:`add`) on which ``agg.add`` raised, and why
        self.failed: list[tuple[int, str]] = []

    def grow(self, n_slots: int) -> None:
        """Make room for slots ``0..n_slots-1``."""
        while len(self.states) < n_slots:
            self.states.append(self.agg.initial())

    def add(
        self,
        group: IntArray,
        n_groups: int,
        slots: IntArray,
        values: np.ndarray | None,
        ts: npt.NDArray[np.int64],
    ) -> None:
        """Add each group's values to its slot's state. Where ``agg.add`` raises on a group, its values
        are added one at a time, from the state before, and those it raises on are left out and listed
        in :attr:`failed`: a failing row fails alone, however the stream was cut into batches."""
        self.failed = []
        order = np.argsort(group, kind="stable")
        bounds = np.searchsorted(group[order], np.arange(n_groups + 1))
        vals = values[order] if values is not None else np.empty(len(group))
        for g in range(n_groups):
            s = int(slots[g])
            lo, hi = int(bounds[g]), int(bounds[g + 1])
            before = copy.deepcopy(self.states[s]) if self.user_code else None
            try:
                self.states[s] = self.agg.add(self.states[s], vals[lo:hi])
                continue
            except Exception:
                if not self.user_code:
                    raise
            state = before  # add may have changed the state it was given before raising
            for i in range(lo, hi):
                kept = copy.deepcopy(state)
                try:
                    state = self.agg.add(state, vals[i : i + 1])
                except Exception as e:
                    state = kept
                    self.failed.append((int(order[i]), f"{self.agg!r}.add raised {type(e).__name__}: {e}"))
            self.states[s] = state

    def merge(self, dst: int, src: int) -> None:
        """Fold slot ``src`` into slot ``dst`` (session windows merging)."""
        self.states[dst] = self.agg.merge(self.states[dst], self.states[src])

    def results(self, slots: IntArray) -> np.ndarray | list[Any]:
        return [self.agg.result(self.states[int(s)]) for s in slots]

    def reduce(self, targets: IntArray, slots: IntArray, n_targets: int) -> np.ndarray | list[Any]:
        """Results of merging the states of ``slots`` into ``n_targets`` groups (``targets`` per slot).

        Used by sliding windows, whose results merge the partial states of their panes.
        """
        acc: list[Any] = [None] * n_targets
        for t, s in zip(targets.tolist(), slots.tolist()):
            st = self.states[s]
            # never merge into a pane's own state object: merge may update its first argument
            acc[t] = copy.deepcopy(st) if acc[t] is None else self.agg.merge(acc[t], st)
        return [self.agg.result(a if a is not None else self.agg.initial()) for a in acc]

    def clear(self, slots: IntArray) -> None:
        for s in slots:
            self.states[int(s)] = self.agg.initial()


class Aggregator:
    """Base class and contract of aggregators.

    Subclass and implement ``initial``, ``add``, ``merge`` and ``result``; set ``column`` (the input
    column, or ``None``) and ``name`` (the output column). ``add`` receives a numpy array with the
    values of one group (one window and key) from one micro-batch and returns the new state; states must
    be picklable. ``merge`` must be associative and commutative: it combines partial states (session
    windows, exporters' combiners).

    Examples
    --------
    >>> class RangeAggregator(Aggregator):
    ...     def __init__(self, column):
    ...         super().__init__(column, name=f"range_{column}")
    ...     def initial(self):
    ...         return (math.inf, -math.inf)
    ...     def add(self, state, values):
    ...         return (min(state[0], values.min()), max(state[1], values.max()))
    ...     def merge(self, a, b):
    ...         return (min(a[0], b[0]), max(a[1], b[1]))
    ...     def result(self, state):
    ...         return float(state[1] - state[0])
    >>> agg = RangeAggregator("x")
    >>> agg.result(agg.add(agg.initial(), np.array([3.0, 9.0, 4.0])))
    6.0
    """

    kind = "custom"
    #: whether the aggregator reads a column (every built-in but ``count``): without one it would fail
    #: on its first batch, so the constructor refuses it
    needs_column: ClassVar[bool] = False

    def __init__(self, column: str | None = None, *, name: str | None = None) -> None:
        owner = type(self).__name__
        if column is None and self.needs_column:
            raise ParameterError(
                owner,
                "column",
                "no column given",
                f"name the column it reads, e.g. agg.{self.kind}('amount'{', 0.95' if self.kind == 'quantile' else ''})",
            )
        for parameter, value in (("column", column), ("name", name)):
            if value is not None and not (isinstance(value, str) and value.strip()):
                raise ParameterError(
                    owner,
                    parameter,
                    f"expected a column name (text), got {type(value).__name__} {value!r}",
                    f"pass {parameter}='amount'"
                    if parameter == "column"
                    else "pass name='total', or leave it out for the default name",
                )
        self.column = column
        self.name = name or (f"{self.kind}_{column}" if column else self.kind)

    # -- per-group contract -------------------------------------------------------------------
    def initial(self) -> Any:
        raise NotImplementedError

    def add(self, state: Any, values: np.ndarray) -> Any:
        raise NotImplementedError

    def merge(self, a: Any, b: Any) -> Any:
        raise NotImplementedError

    def result(self, state: Any) -> Any:
        raise NotImplementedError

    def result_type(self, column_type: str | None) -> str | None:
        """The type of the results (a parse type: ``"int64"``, ``"float64"``, ``"string"``, ...) when
        the input column's is ``column_type`` (``None``: unknown), or ``None`` when not known.

        Sinks type an output column by it when a batch holds none of its values, so every commit
        stores the column the same. A custom aggregator may override it; the default is unknown.

        Examples
        --------
        >>> SumAggregator('x').result_type('int64'), FirstAggregator('x').result_type('string')
        ('float64', 'string')
        >>> Aggregator('x').result_type('int64') is None
        True
        """
        return None

    # -- runtime ------------------------------------------------------------------------------
    def store(self) -> AggregatorStore:
        """A fresh store for many slots; built-ins override it with a vectorized one."""
        return AggregatorStore(self)

    def describe(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind}
        if self.column is not None:
            d["column"] = self.column
        d["name"] = self.name
        return d

    def __repr__(self) -> str:
        col = repr(self.column) if self.column is not None else ""
        return f"{type(self).__name__}({col})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.__dict__ == self.__dict__

    def __hash__(self) -> int:
        return hash((type(self), self.column, self.name))


def _column(values: np.ndarray | None) -> np.ndarray:
    if values is None:  # the runtime passes no values only to a column-less count
        raise TypeError("this aggregator needs a column: only agg.count() works without one")
    return values


def _as_float(values: np.ndarray | None) -> npt.NDArray[np.float64]:
    return np.asarray(_column(values), dtype=np.float64)


class _ArrayStore(AggregatorStore):
    """Store with one or more float/int numpy arrays indexed by slot."""

    user_code = False

    fills: tuple[tuple[Any, Any], ...] = ()

    def __init__(self, agg: Aggregator) -> None:
        super().__init__(agg)
        self.arrays: list[np.ndarray] = [np.full(0, fill, dtype=dtype) for dtype, fill in self.fills]

    def grow(self, n_slots: int) -> None:
        cur = len(self.arrays[0])
        if n_slots <= cur:
            return
        new = max(n_slots, 2 * cur, 64)
        for i, (dtype, fill) in enumerate(self.fills):
            arr = np.full(new, fill, dtype=dtype)
            arr[:cur] = self.arrays[i]
            self.arrays[i] = arr

    def clear(self, slots: IntArray) -> None:
        for arr, (_, fill) in zip(self.arrays, self.fills):
            arr[slots] = fill


class _CountStore(_ArrayStore):
    fills = ((np.int64, 0),)

    def add(
        self,
        group: IntArray,
        n_groups: int,
        slots: IntArray,
        values: np.ndarray | None,
        ts: npt.NDArray[np.int64],
    ) -> None:
        if values is None:
            part = np.bincount(group, minlength=n_groups)
        else:
            ok = _notnull(values)
            part = np.bincount(group[ok], minlength=n_groups)
        self.arrays[0][slots] += part

    def merge(self, dst: int, src: int) -> None:
        self.arrays[0][dst] += self.arrays[0][src]

    def results(self, slots: IntArray) -> np.ndarray:
        return self.arrays[0][slots]  # indexing with an array copies

    def reduce(self, targets: IntArray, slots: IntArray, n_targets: int) -> np.ndarray:
        # float weights are exact: counts stay far below 2**53
        return np.bincount(targets, weights=self.arrays[0][slots], minlength=n_targets).astype(np.int64)


def _notnull(values: np.ndarray) -> npt.NDArray[np.bool_]:
    if values.dtype.kind == "f":
        return ~np.isnan(values.astype(np.float64, copy=False))
    if values.dtype.kind in "iub":
        return np.ones(len(values), dtype=bool)
    import pandas as pd

    return np.asarray(pd.notna(values), dtype=bool)


class _SumStore(_ArrayStore):
    fills = ((np.float64, 0.0), (np.int64, 0))
    needs_count = True

    def add(
        self,
        group: IntArray,
        n_groups: int,
        slots: IntArray,
        values: np.ndarray | None,
        ts: npt.NDArray[np.int64],
    ) -> None:
        # each value is added to its slot's sum in arrival order (``np.add.at`` adds one at a time, in
        # order), as a batch of one event would: a sum of per-batch partial sums would round otherwise,
        # so the last bits of a window's sum would depend on how the stream was cut into batches (and
        # on where a run was stopped and resumed)
        v = _as_float(values)
        rows = slots[group]
        missing = np.isnan(v)
        if not missing.any():
            with np.errstate(over="ignore", invalid="ignore"):  # a sum past 1.8e308 is inf, inf - inf NaN
                np.add.at(self.arrays[0], rows, v)
            if self.needs_count:
                self.arrays[1][slots] += np.bincount(group, minlength=n_groups)
        else:  # missing values are left out of the sum and of the count
            ok = ~missing
            with np.errstate(over="ignore", invalid="ignore"):
                np.add.at(self.arrays[0], rows[ok], v[ok])
            self.arrays[1][slots] += np.bincount(group[ok], minlength=n_groups)

    def merge(self, dst: int, src: int) -> None:
        self.arrays[0][dst] += self.arrays[0][src]
        self.arrays[1][dst] += self.arrays[1][src]


class _SumResultStore(_SumStore):
    needs_count = False

    def results(self, slots: IntArray) -> np.ndarray:
        return self.arrays[0][slots]  # indexing with an array copies

    def reduce(self, targets: IntArray, slots: IntArray, n_targets: int) -> np.ndarray:
        return np.bincount(targets, weights=self.arrays[0][slots], minlength=n_targets)


class _MeanStore(_SumStore):
    def results(self, slots: IntArray) -> np.ndarray:
        n = self.arrays[1][slots]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, self.arrays[0][slots] / np.maximum(n, 1), np.nan)

    def reduce(self, targets: IntArray, slots: IntArray, n_targets: int) -> np.ndarray:
        total = np.bincount(targets, weights=self.arrays[0][slots], minlength=n_targets)
        n = np.bincount(targets, weights=self.arrays[1][slots], minlength=n_targets)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, total / np.maximum(n, 1), np.nan)


class _ExtremeStore(_ArrayStore):
    """Smallest or largest value per slot: NaN until a number arrives, so a window whose only values
    are -inf has the maximum -inf (``fmin``/``fmax`` pass over NaN, missing values included)."""

    ufunc: np.ufunc = np.fmin
    fills = ((np.float64, np.nan),)

    def add(
        self,
        group: IntArray,
        n_groups: int,
        slots: IntArray,
        values: np.ndarray | None,
        ts: npt.NDArray[np.int64],
    ) -> None:
        part = np.full(n_groups, np.nan, dtype=np.float64)
        self.ufunc.at(part, group, _as_float(values))
        arr = self.arrays[0]
        arr[slots] = self.ufunc(arr[slots], part)

    def merge(self, dst: int, src: int) -> None:
        arr = self.arrays[0]
        arr[dst] = self.ufunc(arr[dst], arr[src])

    def results(self, slots: IntArray) -> np.ndarray:
        return self.arrays[0][slots]  # indexing with an array copies

    def reduce(self, targets: IntArray, slots: IntArray, n_targets: int) -> np.ndarray:
        out = np.full(n_targets, np.nan, dtype=np.float64)
        self.ufunc.at(out, targets, self.arrays[0][slots])
        return out


class _MinStore(_ExtremeStore):
    ufunc = np.fmin


class _MaxStore(_ExtremeStore):
    ufunc = np.fmax


class _FirstLastStore(AggregatorStore):
    """Keeps the value with the smallest (first) or largest (last) event time per slot."""

    user_code = False

    def __init__(self, agg: Aggregator, last: bool) -> None:
        super().__init__(agg)
        self.last = last
        self.ts: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self.has: npt.NDArray[np.bool_] = np.zeros(0, dtype=bool)
        self.values: npt.NDArray[np.object_] = np.empty(0, dtype=object)

    def grow(self, n_slots: int) -> None:
        cur = len(self.ts)
        if n_slots <= cur:
            return
        new = max(n_slots, 2 * cur, 64)
        self.ts = np.concatenate([self.ts, np.zeros(new - cur, dtype=np.int64)])
        self.has = np.concatenate([self.has, np.zeros(new - cur, dtype=bool)])
        self.values = np.concatenate([self.values, np.full(new - cur, None, dtype=object)])

    def add(
        self,
        group: IntArray,
        n_groups: int,
        slots: IntArray,
        values: np.ndarray | None,
        ts: npt.NDArray[np.int64],
    ) -> None:
        values = _column(values)
        pos = np.arange(len(group))
        # first: earliest time, earliest arrival; last: latest time, latest arrival
        key_ts = -ts if self.last else ts
        key_pos = -pos if self.last else pos
        order = np.lexsort((key_pos, key_ts, group))
        g_sorted = group[order]
        head = np.ones(len(order), dtype=bool)
        head[1:] = g_sorted[1:] != g_sorted[:-1]
        pick = order[head]
        groups = group[pick]
        for g, i in zip(groups.tolist(), pick.tolist()):
            s = int(slots[g])
            t = int(ts[i])
            better = (t >= self.ts[s]) if self.last else (t < self.ts[s])
            if not self.has[s] or better:
                self.has[s] = True
                self.ts[s] = t
                self.values[s] = values[i]

    def merge(self, dst: int, src: int) -> None:
        if not self.has[src]:
            return
        better = self.ts[src] >= self.ts[dst] if self.last else self.ts[src] < self.ts[dst]
        if not self.has[dst] or better:
            self.has[dst], self.ts[dst], self.values[dst] = True, self.ts[src], self.values[src]

    def results(self, slots: IntArray) -> np.ndarray:
        return self.values[slots]  # indexing with an array copies

    def reduce(self, targets: IntArray, slots: IntArray, n_targets: int) -> np.ndarray:
        best_ts = np.zeros(n_targets, dtype=np.int64)
        have = np.zeros(n_targets, dtype=bool)
        out = np.full(n_targets, None, dtype=object)
        # slots arrive in pane order, so ties keep the earlier pane for first and the later for last
        for t, s in zip(targets.tolist(), slots.tolist()):
            if not self.has[s]:
                continue
            ts = self.ts[s]
            if not have[t] or (ts >= best_ts[t] if self.last else ts < best_ts[t]):
                have[t], best_ts[t], out[t] = True, ts, self.values[s]
        return out

    def clear(self, slots: IntArray) -> None:
        self.has[slots] = False
        self.values[slots] = None


class _BuiltinStore(AggregatorStore):
    """The per-group store of a built-in aggregator: its ``add`` does not raise on the values a window
    gives it, so it is not watched for failures (nor its states copied before each add)."""

    user_code = False


class _DistinctStore(_BuiltinStore):
    def add(
        self,
        group: IntArray,
        n_groups: int,
        slots: IntArray,
        values: np.ndarray | None,
        ts: npt.NDArray[np.int64],
    ) -> None:
        import pandas as pd

        from streamlab._compat import duplicated_rows

        # values of Python objects stay objects: pandas would make text an arrow string column, which no lone
        # surrogate (an escaped "\ud800" of a json field) fits in
        v = (
            pd.Series(values, dtype=object, copy=False)
            if values is not None and values.dtype == object
            else values
        )
        frame = pd.DataFrame({"g": group, "v": v}).dropna()
        frame = frame[~duplicated_rows(frame)]
        for g, vals in frame.groupby("g", sort=False)["v"]:
            # the keys are the int group numbers; pandas-stubs types a groupby key as any scalar
            self.states[int(slots[cast(int, g)])].update(vals.tolist())

    def results(self, slots: IntArray) -> np.ndarray:
        return np.array([len(self.states[int(s)]) for s in slots], dtype=np.int64)


# ---------------------------------------------------------------------------------------------------
class CountAggregator(Aggregator):
    """Number of events (or of non-null values of ``column``).

    Examples
    --------
    >>> a = CountAggregator()
    >>> a.result(a.add(a.initial(), np.array([1, 2, 3])))
    3
    """

    kind = "count"

    def initial(self) -> int:
        return 0

    def add(self, state: int, values: np.ndarray) -> int:
        return state + (len(values) if self.column is None else int(_notnull(values).sum()))

    def merge(self, a: int, b: int) -> int:
        return a + b

    def result(self, state: int) -> int:
        return state

    def result_type(self, column_type: str | None) -> str | None:
        return "int64"

    def store(self) -> AggregatorStore:
        return _CountStore(self)


class SumAggregator(Aggregator):
    """Sum of a numeric column, skipping nulls (as ``pandas.Series.sum``).

    A window whose rows have no value in the column sums to ``0.0``: pandas' rule (``min_count=0``),
    kept by the Beam and Lambda exports; SQL engines return NULL there. To tell "no values" from a
    zero total, add ``agg.mean(column)`` (NaN without values) or ``agg.count_distinct``/``agg.count``.

    Examples
    --------
    >>> a = SumAggregator("amount")
    >>> a.result(a.add(a.initial(), np.array([1.5, np.nan, 2.0])))
    3.5
    """

    kind = "sum"
    needs_column = True

    def initial(self) -> float:
        return 0.0

    def add(self, state: float, values: np.ndarray) -> float:
        return state + float(np.nansum(_as_float(values)))

    def merge(self, a: float, b: float) -> float:
        return a + b

    def result(self, state: float) -> float:
        return state

    def result_type(self, column_type: str | None) -> str | None:
        return "float64"

    def store(self) -> AggregatorStore:
        return _SumResultStore(self)


class MeanAggregator(Aggregator):
    """Mean of a numeric column, skipping nulls; NaN for a window without values.

    Examples
    --------
    >>> a = MeanAggregator("x")
    >>> a.result(a.add(a.initial(), np.array([1.0, 2.0, 6.0])))
    3.0
    """

    kind = "mean"
    needs_column = True

    def initial(self) -> tuple[float, int]:
        return (0.0, 0)

    def add(self, state: tuple[float, int], values: np.ndarray) -> tuple[float, int]:
        v = _as_float(values)
        v = v[~np.isnan(v)]
        return (state[0] + float(v.sum()), state[1] + len(v))

    def merge(self, a: tuple[float, int], b: tuple[float, int]) -> tuple[float, int]:
        return (a[0] + b[0], a[1] + b[1])

    def result(self, state: tuple[float, int]) -> float:
        return state[0] / state[1] if state[1] else math.nan

    def result_type(self, column_type: str | None) -> str | None:
        return "float64"

    def store(self) -> AggregatorStore:
        return _MeanStore(self)


class MinAggregator(Aggregator):
    """Smallest value of a numeric column, skipping nulls.

    Examples
    --------
    >>> a = MinAggregator("x")
    >>> a.result(a.add(a.initial(), np.array([4.0, 2.0])))
    2.0
    """

    kind = "min"
    needs_column = True

    def initial(self) -> float:
        return math.inf

    def add(self, state: float, values: np.ndarray) -> float:
        v = _as_float(values)
        v = v[~np.isnan(v)]
        return min(state, float(v.min())) if len(v) else state

    def merge(self, a: float, b: float) -> float:
        return min(a, b)

    def result(self, state: float) -> float:
        return math.nan if state == math.inf else state

    def result_type(self, column_type: str | None) -> str | None:
        return "float64"

    def store(self) -> AggregatorStore:
        return _MinStore(self)


class MaxAggregator(Aggregator):
    """Largest value of a numeric column, skipping nulls.

    Examples
    --------
    >>> a = MaxAggregator("x")
    >>> a.result(a.add(a.initial(), np.array([4.0, 2.0])))
    4.0
    """

    kind = "max"
    needs_column = True

    def initial(self) -> float:
        return -math.inf

    def add(self, state: float, values: np.ndarray) -> float:
        v = _as_float(values)
        v = v[~np.isnan(v)]
        return max(state, float(v.max())) if len(v) else state

    def merge(self, a: float, b: float) -> float:
        return max(a, b)

    def result(self, state: float) -> float:
        return math.nan if state == -math.inf else state

    def result_type(self, column_type: str | None) -> str | None:
        return "float64"

    def store(self) -> AggregatorStore:
        return _MaxStore(self)


class CountDistinctAggregator(Aggregator):
    """Exact number of distinct non-null values (memory grows with the distinct values per window).

    Examples
    --------
    >>> a = CountDistinctAggregator("country")
    >>> a.result(a.add(a.initial(), np.array(["DE", "FR", "DE"], dtype=object)))
    2
    """

    kind = "count_distinct"
    needs_column = True

    def initial(self) -> set[Any]:
        return set()

    def add(self, state: set[Any], values: np.ndarray) -> set[Any]:
        return state | {v for v in values.tolist() if v is not None and v == v}

    def merge(self, a: set[Any], b: set[Any]) -> set[Any]:
        return a | b

    def result(self, state: set[Any]) -> int:
        return len(state)

    def result_type(self, column_type: str | None) -> str | None:
        return "int64"

    def store(self) -> AggregatorStore:
        return _DistinctStore(self)


class FirstAggregator(Aggregator):
    """Value of the event with the earliest event time (earliest arrival among ties).

    Examples
    --------
    >>> FirstAggregator("page").name
    'first_page'
    """

    kind = "first"
    needs_column = True

    def initial(self) -> tuple[int, Any] | None:
        return None

    def add(self, state: Any, values: np.ndarray) -> Any:  # per-group path has no times: arrival order
        return state if state is not None or len(values) == 0 else (0, values[0])

    def merge(self, a: Any, b: Any) -> Any:
        return a if a is not None else b

    def result(self, state: Any) -> Any:
        return None if state is None else state[1]

    def result_type(self, column_type: str | None) -> str | None:
        return column_type  # one of the column's values

    def store(self) -> AggregatorStore:
        return _FirstLastStore(self, last=False)


class LastAggregator(Aggregator):
    """Value of the event with the latest event time (latest arrival among ties).

    Examples
    --------
    >>> LastAggregator("page").name
    'last_page'
    """

    kind = "last"
    needs_column = True

    def initial(self) -> Any:
        return None

    def add(self, state: Any, values: np.ndarray) -> Any:
        return (0, values[-1]) if len(values) else state

    def merge(self, a: Any, b: Any) -> Any:
        return b if b is not None else a

    def result(self, state: Any) -> Any:
        return None if state is None else state[1]

    def result_type(self, column_type: str | None) -> str | None:
        return column_type  # one of the column's values

    def store(self) -> AggregatorStore:
        return _FirstLastStore(self, last=True)


class QuantileState(TypedDict):
    """State of :class:`QuantileAggregator`: counts per log-spaced bucket of positive and negative values,
    the number of zeros, and the number of values.

    Examples
    --------
    >>> QuantileAggregator("x", 0.5).add(QuantileAggregator("x", 0.5).initial(), np.array([0.0, 1.0]))
    {'pos': {0: 1}, 'neg': {}, 'zero': 1, 'n': 2}
    """

    pos: dict[int, int]
    neg: dict[int, int]
    zero: int
    n: int


class QuantileAggregator(Aggregator):
    """Approximate quantile with a relative-error guarantee (a DDSketch).

    The result is within ``relative_accuracy`` (relative) of a value whose rank is the requested one,
    using bounded memory (log-spaced buckets) and merging exactly across partial states.

    Parameters
    ----------
    column
        Numeric column.
    q
        Quantile in ``[0, 1]``.
    relative_accuracy
        Relative error bound, e.g. ``0.01`` for 1 %.

    Examples
    --------
    >>> a = QuantileAggregator("latency", 0.5)
    >>> round(a.result(a.add(a.initial(), np.arange(1.0, 102.0))), 0)
    51.0
    """

    kind = "quantile"
    needs_column = True

    def __init__(
        self, column: str, q: float, *, relative_accuracy: float = 0.01, name: str | None = None
    ) -> None:
        for param, value in (("q", q), ("relative_accuracy", relative_accuracy)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
                raise ParameterError(
                    "QuantileAggregator",
                    param,
                    f"{param} must be a number, got {type(value).__name__} {value!r}",
                    f"pass e.g. {param}={0.95 if param == 'q' else 0.01}",
                )
        if not 0.0 <= q <= 1.0:
            raise ParameterError(
                "QuantileAggregator", "q", f"q must be within [0, 1], got {q}", "pass e.g. q=0.95"
            )
        if not 0.0 < relative_accuracy < 1.0:
            raise ParameterError(
                "QuantileAggregator",
                "relative_accuracy",
                f"relative_accuracy must be within (0, 1), got {relative_accuracy}",
                "pass e.g. relative_accuracy=0.01",
            )
        super().__init__(column, name=name or f"p{round(q * 100, 3):g}_{column}")
        self.q = q
        self.relative_accuracy = relative_accuracy
        self._gamma = (1 + relative_accuracy) / (1 - relative_accuracy)
        self._log_gamma = math.log(self._gamma)

    #: The bucket of an infinite value (above every finite double's, whatever the accuracy).
    INFINITE_BUCKET = 2**62

    def _buckets(self, v: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
        a = np.abs(v)
        finite = a < np.inf
        out = np.full(len(a), self.INFINITE_BUCKET, dtype=np.int64)
        out[finite] = np.ceil(np.log(a[finite]) / self._log_gamma)
        return out

    def _value(self, k: int, sign: float) -> float:
        """The value a bucket stands for (an infinity for the infinite bucket)."""
        if k == self.INFINITE_BUCKET:
            return sign * math.inf
        # a bucket's middle, 2 * gamma**k / (gamma + 1), divided before doubling: doubling first overflowed
        # to inf for values near 1e308 (the same value otherwise, doubling being exact); the top finite
        # bucket's bound may pass the largest double: it stands for the middle of its finite part
        try:
            middle = 2 * (self._gamma**k / (self._gamma + 1))
        except OverflowError:
            middle = math.inf
        if middle > sys.float_info.max:
            try:
                middle = 2 / (1 / self._gamma ** (k - 1) + 1 / sys.float_info.max)
            except OverflowError:  # pragma: no cover - no finite value is in such a bucket
                middle = sys.float_info.max
        if middle < sys.float_info.min:  # subnormal: gamma**k lost its digits (5e-324 read as 0.0)
            t = k * self._log_gamma / math.log(2)
            middle = math.ldexp(2 / (self._gamma + 1) * 2 ** (t - math.floor(t)), math.floor(t))
        return sign * min(middle, sys.float_info.max)

    def result_type(self, column_type: str | None) -> str | None:
        return "float64"

    def initial(self) -> QuantileState:
        return {"pos": {}, "neg": {}, "zero": 0, "n": 0}

    def add(self, state: QuantileState, values: np.ndarray) -> QuantileState:
        v = _as_float(values)
        v = v[~np.isnan(v)]
        state["n"] += len(v)
        state["zero"] += int((v == 0).sum())
        for d, sel in ((state["pos"], v > 0), (state["neg"], v < 0)):
            if sel.any():
                b, c = np.unique(self._buckets(v[sel]), return_counts=True)
                for bi, ci in zip(b.tolist(), c.tolist()):
                    d[bi] = d.get(bi, 0) + ci
        return state

    def merge(self, a: QuantileState, b: QuantileState) -> QuantileState:
        out: QuantileState = {
            "pos": dict(a["pos"]),
            "neg": dict(a["neg"]),
            "zero": a["zero"] + b["zero"],
            "n": a["n"] + b["n"],
        }
        for dst, src in ((out["pos"], b["pos"]), (out["neg"], b["neg"])):
            for k, c in src.items():
                dst[k] = dst.get(k, 0) + c
        return out

    def result(self, state: QuantileState) -> float:
        n = state["n"]
        if n == 0:
            return math.nan
        rank = self.q * (n - 1)
        seen = 0
        # negatives from most negative (largest bucket index) to least
        for k in sorted(state["neg"], reverse=True):
            seen += state["neg"][k]
            if seen > rank:
                return self._value(k, -1.0)
        seen += state["zero"]
        if seen > rank:
            return 0.0
        for k in sorted(state["pos"]):
            seen += state["pos"][k]
            if seen > rank:
                return self._value(k, 1.0)
        return self._value(max(state["pos"]), 1.0)  # pragma: no cover - rounding

    def store(self) -> AggregatorStore:
        return _BuiltinStore(self)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "q": self.q, "relative_accuracy": self.relative_accuracy}

    def __repr__(self) -> str:
        return f"QuantileAggregator({self.column!r}, {self.q})"
