"""Runtime of joins: stream-stream interval join and stream-table enrichment."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from streamlab._intcols import nullable_int_dtypes
from streamlab._keytable import typed_key_column, unhashable_rows
from streamlab._serde_values import is_utf8_text
from streamlab._time import NAT_NS, to_utc_ns
from streamlab._windowing import _NO_WATERMARK
from streamlab.operators import Operator, Outputs


def _unkeyed(batch: pd.DataFrame, on: list[str]) -> npt.NDArray[np.bool_] | None:
    """Rows whose key columns hold a value that cannot be a key (a dict, a list), or None."""
    found = [m for m in (unhashable_rows(batch[c]) for c in on) if m is not None]
    if not found:
        return None
    out: npt.NDArray[np.bool_] = np.logical_or.reduce(found)
    return out


def _keyless(frame: pd.DataFrame, on: list[str]) -> npt.NDArray[np.bool_]:
    """Rows that join nothing: a key column holds a missing value (None, NaN, ``pd.NA``, NaT), as SQL's
    NULL equals nothing (pandas' merge would pair missing keys), or a value that cannot be a key."""
    keyless: npt.NDArray[np.bool_] = np.any(frame[on].isna().to_numpy(), axis=1)
    unkeyed = _unkeyed(frame, on)
    return keyless if unkeyed is None else keyless | unkeyed


def repeated_keys(table: pd.DataFrame, on: list[str], limit: int = 3) -> tuple[list[tuple[Any, ...]], int]:
    """Keys (up to ``limit``, as tuples of the key columns' values) that more than one of ``table``'s
    rows hold, and how many keys repeat; rows with a missing key match nothing and are not counted.
    Keys are told apart as the join matches them (an object column's ``True``, ``1`` and ``1.0`` are
    three keys).

    Examples
    --------
    >>> repeated_keys(pd.DataFrame({"k": ["a", "b", "a", None, None]}), ["k"])
    ([('a',)], 1)
    >>> repeated_keys(pd.DataFrame({"k": pd.Series([True, 1, 1.0], dtype=object)}), ["k"])
    ([], 0)
    """
    keyed = table[on][~_keyless(table, on)]
    if len(keyed) < 2:
        return [], 0
    tagged = keyed.apply(lambda c: typed_key_column(c, every_float=True).astype(object))
    try:
        repeated = tagged.duplicated(keep=False)
    except TypeError:  # keys pandas cannot hash together (a lone surrogate): left to the join
        return [], 0
    firsts = keyed[repeated & ~tagged.duplicated(keep="first")]
    return [tuple(row) for row in firsts.head(limit).itertuples(index=False)], len(firsts)


def _merge(left: pd.DataFrame, right: pd.DataFrame, on: list[str], how: str, **kw: Any) -> pd.DataFrame:
    """``left.merge(right, on=on, how=how)`` with keys matched by value and type: where either side's key
    column holds Python objects (a ``json`` field), ``true``, ``1`` and ``1.0`` are three keys (Python
    holds them equal), as windows tell them apart and the exported joins compare them (their JSON text,
    ``typed_id``). Those columns are matched through tagged copies (:func:`typed_key_column`) and the
    output keeps ``left``'s own values; other key columns (int64, float64, text) merge as they are.
    """
    typed = [c for c in on if left[c].dtype == object or right[c].dtype == object]
    if not typed:
        try:
            # the ignore: how is a str checked by the join step ("left" or "inner"), not pandas' Literal
            return left.merge(right, on=on, how=how, **kw)  # type: ignore[arg-type]
        except ValueError:  # key columns pandas will not compare (a date with an int): as objects below
            typed = list(on)
    hidden = {c: f"__streamlab_key{i}" for i, c in enumerate(typed)}

    def tagged(col: pd.Series) -> pd.Series:
        # as objects on both sides: pandas refuses to merge an object key with an int64 or a datetime
        # one ("1" with 1), where a key of another type simply matches nothing, as in SQL
        return typed_key_column(col, every_float=True).astype(object)

    tagged_left = left.assign(**{h: tagged(left[c]) for c, h in hidden.items()})
    tagged_right = right.drop(columns=typed).assign(**{h: tagged(right[c]) for c, h in hidden.items()})
    keys = [hidden.get(c, c) for c in on]
    try:
        merged = tagged_left.merge(tagged_right, on=keys, how=how, **kw)  # type: ignore[arg-type]
    except UnicodeEncodeError:  # a key with a lone surrogate ("\ud800" of a json field): pandas made the
        # keys an arrow string index, which cannot hold it; such keys are matched as tagged tuples
        tagged_left = tagged_left.assign(**{h: _surrogates_tagged(tagged_left[h]) for h in hidden.values()})
        tagged_right = tagged_right.assign(
            **{h: _surrogates_tagged(tagged_right[h]) for h in hidden.values()}
        )
        merged = tagged_left.merge(tagged_right, on=keys, how=how, **kw)  # type: ignore[arg-type]
    return merged.drop(columns=list(hidden.values()))


def _surrogates_tagged(col: pd.Series) -> pd.Series:
    """``col`` with each string UTF-8 cannot encode (a lone surrogate) as the tuple ``(str, value)``.

    Examples
    --------
    >>> _surrogates_tagged(pd.Series(["a", "\\ud800", 1], dtype=object)).tolist()
    ['a', (<class 'str'>, '\\ud800'), 1]
    """
    tagged = [(str, v) if isinstance(v, str) and not is_utf8_text(v) else v for v in col.tolist()]
    return pd.Series(tagged, index=col.index, dtype=object)


class IntervalJoinOperator(Operator):
    """Inner join of two streams on keys where ``right.time - left.time`` lies in ``[lower, upper]``.

    Both sides are buffered until no future row can match them: the join's watermark is the smaller of
    the two sides' largest event times minus ``delay``; a row older than that watermark when it arrives
    goes to ``late`` (it could have missed partners that were already dropped), and so does a row
    without event time (NaT): the join has no dead-letter output, so such a row is in ``late`` with its
    ``join_side`` and its time column missing (``docs/semantics.md``). Each row is judged
    against the watermark just before it, as if rows arrived one at a time, so the outputs do not
    depend on how each input is cut into batches. (When both inputs come from one source, the rows of
    one source batch arrive one side at a time: see "Batch boundaries" in ``docs/semantics.md``.)

    Examples
    --------
    >>> import pandas as pd
    >>> op = IntervalJoinOperator("j", ["k"], "t", "t", 0, 10**9, 0, ("_l", "_r"))
    >>> _ = op.process(pd.DataFrame({"k": ["a"], "t": pd.to_datetime([5], unit="s", utc=True)}), 1)
    >>> left = pd.DataFrame({"k": ["a", "a", "a"], "t": pd.to_datetime([4, 9, 2], unit="s", utc=True)})
    >>> out = op.process(left, 0)
    >>> len(out["out"]), out["late"]["t"].dt.second.tolist()  # 2 is behind min(9, 5): late
    (1, [2])
    """

    output_names = ("out", "late")
    _TS = ("__lts", "__rts")

    def __init__(
        self,
        step_id: str,
        on: list[str],
        left_time: str,
        right_time: str,
        lower_ns: int,
        upper_ns: int,
        delay_ns: int,
        suffixes: tuple[str, str],
    ) -> None:
        self.step_id = step_id
        self.on = on
        self.times = (left_time, right_time)
        self.lower = lower_ns
        self.upper = upper_ns
        self.delay = delay_ns
        self.suffixes = suffixes
        self.buffers: list[pd.DataFrame | None] = [None, None]
        self.max_ts = [_NO_WATERMARK, _NO_WATERMARK]

    def snapshot(self) -> Any:
        return copy.deepcopy({"buffers": self.buffers, "max_ts": self.max_ts})

    def restore(self, state: Any) -> None:
        self.__dict__.update(copy.deepcopy(state))

    def watermark_ns(self) -> int | None:
        if _NO_WATERMARK in self.max_ts:
            return None
        return min(self.max_ts) - self.delay

    def open_state(self) -> dict[str, Any]:
        return {
            "buffered_left": 0 if self.buffers[0] is None else len(self.buffers[0]),
            "buffered_right": 0 if self.buffers[1] is None else len(self.buffers[1]),
        }

    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        side = 1 if port else 0
        ts = to_utc_ns(batch[self.times[side]])
        late_mask = self._late(ts, side)
        out: Outputs = {}
        if np.any(late_mask):
            late = batch[late_mask].reset_index(drop=True)
            late.insert(0, "join_side", "right" if side else "left")
            out["late"] = late
            batch, ts = batch[~late_mask].reset_index(drop=True), ts[~late_mask]
        if len(batch):
            self.max_ts[side] = max(self.max_ts[side], int(ts.max()))
            fresh = batch.assign(**{self._TS[side]: ts})
            keyless = _keyless(batch, self.on)
            if keyless.any():  # a missing key, a dict or a list matches nothing: never held, no partner
                fresh = fresh[~keyless].reset_index(drop=True)
            other = self.buffers[1 - side]
            if other is not None and len(other):
                left, right = (fresh, other) if side == 0 else (other, fresh)
                m = _merge(left, right, self.on, "inner", suffixes=self.suffixes)
                d = m["__rts"].to_numpy() - m["__lts"].to_numpy()
                m = m[(d >= self.lower) & (d <= self.upper)].drop(columns=["__lts", "__rts"])
                if len(m):
                    out["out"] = m.reset_index(drop=True)
            mine = self.buffers[side]
            self.buffers[side] = fresh if mine is None else pd.concat([mine, fresh], ignore_index=True)
        self._expire()
        return out

    def _late(self, ts: npt.NDArray[np.int64], side: int) -> npt.NDArray[np.bool_]:
        """Which rows are late by the per-event rule: each row is judged against the watermark just
        before it, which the batch's earlier rows of this side have already raised. (Rows of a batch all
        come from one side; the other side's largest time is fixed within it. A late row cannot raise
        this side's largest time, so a running maximum over every row of the batch gives the rule.)"""
        other = self.max_ts[1 - side]
        nat: npt.NDArray[np.bool_] = ts == NAT_NS
        if other == _NO_WATERMARK or len(ts) == 0:
            return nat
        before = np.empty_like(ts)
        before[0] = self.max_ts[side]
        np.maximum.accumulate(ts[:-1], out=before[1:])
        np.maximum(before, self.max_ts[side], out=before)
        known = before != _NO_WATERMARK
        watermark = np.minimum(np.where(known, before, other), other) - self.delay
        late: npt.NDArray[np.bool_] = nat | (known & (ts < watermark))
        return late

    def _expire(self) -> None:
        wm = self.watermark_ns()
        if wm is None:
            return
        left, right = self.buffers
        if left is not None:
            self.buffers[0] = left[left["__lts"].to_numpy() + self.upper >= wm].reset_index(drop=True)
        if right is not None:
            self.buffers[1] = right[right["__rts"].to_numpy() - self.lower >= wm].reset_index(drop=True)


class EnrichOperator(Operator):
    """Join each batch with a table (a pandas DataFrame or a DuckDB query result) on key columns.

    A row whose key is missing in any key column matches nothing, as in SQL: the table's rows with a
    missing key are left out, so pandas' merge (which pairs missing keys) cannot pair them.

    Examples
    --------
    >>> import pandas as pd
    >>> table = pd.DataFrame({"k": ["a", None], "name": ["A", "NULLROW"]})
    >>> op = EnrichOperator(table, ["k"], "left")
    >>> op.process(pd.DataFrame({"k": ["a", None]}))["out"]["name"].tolist()
    ['A', nan]
    """

    def __init__(self, table: pd.DataFrame, on: list[str], how: str) -> None:
        keyless = _keyless(table, on)
        if keyless.any():
            table = table[~keyless].reset_index(drop=True)
        if how == "left":  # a row without a match gets missing values: integers kept as nullable ints
            table = table.astype(nullable_int_dtypes(table, exclude=on))
        self.table = table
        self.on = on
        self.how = how

    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        from streamlab.steps import table_clash

        clash = table_clash(self.table, self.on, tuple(batch.columns))
        if clash is not None:  # (checked when the pipeline is built, where the stream's columns are known)
            raise ValueError(f"{clash[0]}: {clash[1]}")
        unkeyed = _unkeyed(batch, self.on)
        if unkeyed is not None:  # a dict or a list as key matches no row of the table
            return {"out": self._merge_unkeyed(batch, unkeyed)}
        return {"out": _merge(batch, self.table, self.on, self.how)}

    def _merge_unkeyed(self, batch: pd.DataFrame, unkeyed: npt.NDArray[np.bool_]) -> pd.DataFrame:
        """The merge when some rows' keys cannot be keys: those match nothing (kept with missing table
        columns by a left join, dropped by an inner one, as any key the table lacks), in batch order."""
        rows = "__streamlab_row"
        keyed = batch.assign(**{rows: np.arange(len(batch))})
        merged = _merge(keyed[~unkeyed], self.table, self.on, self.how)
        if self.how == "left":
            alone = keyed[unkeyed]
            merged = pd.concat([merged, alone], ignore_index=True).sort_values(rows, kind="stable")
        return merged.drop(columns=[rows]).reset_index(drop=True)
