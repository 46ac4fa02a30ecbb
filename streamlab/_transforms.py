"""Runtime of stateless steps: filter, map, with_columns, and pass-through steps."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd

from streamlab._compat import PANDAS_3, concat_rows
from streamlab._dead_letter import dead_letter_frame
from streamlab._expr import eval_expression, fails_alike, kind_groups, number_kinds_differ, typed_result
from streamlab._intcols import frame_of_rows, inferred_series
from streamlab.functions import UserFunction
from streamlab.operators import Operator, Outputs

# pandas >= 3 copies on write: a shallow copy of a batch, or the batch itself handed to a function,
# is independent of it for column assignment
_COPY_ON_WRITE = PANDAS_3


class WholeBatchError(ValueError):
    """A failure of the whole call, not of some rows: every row of the part goes to dead letter at once
    (halving the part would only find parts where the same mistake happens to fit, e.g. a mask of the
    wrong length that fits a part of one row)."""


def udf_error_frame(batch: pd.DataFrame, rows: list[int], reasons: list[str], step_id: str) -> pd.DataFrame:
    return dead_letter_frame(batch.iloc[rows], reasons, step_id)


def _describe_error(step_id: str, what: str, e: BaseException) -> str:
    if isinstance(e, WholeBatchError):  # the call returned something unfit: say what, not an exception
        return f"{what} {e}"
    return f"{what} raised {type(e).__name__}: {e}"


def isolate_failures(
    batch: pd.DataFrame,
    call: Callable[[pd.DataFrame], Any],
    what: str,
    step_id: str,
    alike: Callable[[], bool] | None = None,
    groups: Callable[[], list[np.ndarray] | None] | None = None,
) -> tuple[list[tuple[np.ndarray, Any]], list[int], list[str]]:
    """Apply a per-batch function; when it raises, split the batch until the failing rows are isolated.

    ``alike``: asked once the whole batch has failed, whether every part would fail too (an expression
    over typed columns, ``streamlab._expr.fails_alike``); then every row fails with the batch's reason at
    once, instead of after two calls per row. ``groups``: asked next, groups of rows on which the
    function fails or not alike (an expression over columns of Python objects,
    ``streamlab._expr.kind_groups``), or None; then each group is one call, and a group that fails
    gives all its rows the reason its first row gives alone.

    Returns the successful (row positions, result) parts and the failing rows, in batch order, with
    their reasons.
    """
    good: list[tuple[np.ndarray, Any]] = []
    bad_rows: list[int] = []
    reasons: list[str] = []

    def go(pos: np.ndarray) -> None:
        # the whole batch first: itself under copy-on-write (iloc would copy every column)
        whole = len(pos) == len(batch)
        part = batch if _COPY_ON_WRITE and whole else batch.iloc[pos]
        try:
            good.append((pos, call(part)))
        except Exception as e:
            if len(pos) == 1 or isinstance(e, WholeBatchError) or (whole and alike is not None and alike()):
                bad_rows.extend(pos.tolist())
                reasons.extend([_describe_error(step_id, what, e)] * len(pos))
                return
            if whole and groups is not None and by_kind(groups()):
                return
            mid = len(pos) // 2
            go(pos[:mid])
            go(pos[mid:])

    def by_kind(found: list[np.ndarray] | None) -> bool:
        if found is None:
            return False
        for rows in found:
            if len(rows) < len(batch):  # (one group of every row: it failed already)
                try:
                    good.append((rows, call(batch.iloc[rows])))
                    continue
                except Exception:
                    pass
            try:
                call(batch.iloc[rows[:1]])
            except Exception as e:  # as every row of the group would alone
                bad_rows.extend(rows.tolist())
                reasons.extend([_describe_error(step_id, what, e)] * len(rows))
                continue
            # never expected (a group failed where its first row does not): halve it as before
            mid = len(rows) // 2
            go(rows[:mid])
            go(rows[mid:])
        return True

    go(np.arange(len(batch)))
    if len(bad_rows) > 1 and bool((np.diff(bad_rows) < 0).any()):  # (by kind: group by group)
        order = np.argsort(bad_rows, kind="stable")
        bad_rows, reasons = [bad_rows[i] for i in order], [reasons[i] for i in order]
    return good, bad_rows, reasons


def _truth(value: Any, n: int) -> np.ndarray:
    """Which of ``n`` rows a filter expression's value keeps: a true value (a scalar holds for every row);
    a missing one (None, NaN, NA) drops the row, as the exported filters do (``_snippets.filter_keeps``)."""
    if isinstance(value, pd.Series) and value.dtype == bool:
        return value.to_numpy()
    if np.ndim(value) == 0:
        value = [value] * n
    values = list(value)
    present = pd.notna(pd.Series(values, dtype=object)).to_numpy()
    return np.array([bool(v) if ok else False for v, ok in zip(values, present)], dtype=bool)


class FilterOperator(Operator):
    """Keep rows for which a vectorized expression, batch function or per-event function is true."""

    output_names = ("out", "dead_letter")

    def __init__(self, step_id: str, expr: str | None, fn: UserFunction | None, per_event: bool) -> None:
        self.step_id = step_id
        self.expr = expr
        self.fn = fn
        self.per_event = per_event
        self.what = (
            f"filter {expr!r}"
            if expr
            else f"{'filter_one' if per_event else 'filter_many'}({fn.name if fn else ''})"
        )

    def _mask(self, part: pd.DataFrame) -> np.ndarray:
        m: Any
        if self.expr is not None:
            # the compiled form runs the pandas operations of DataFrame.eval's Python engine, with or
            # without numexpr installed: one meaning everywhere (numexpr's engine reads values
            # otherwise and walks the interpreter's stack for every operation)
            m = eval_expression(part, self.expr)
            return _truth(m, len(part))
        elif self.per_event:
            assert self.fn is not None
            fn = self.fn.fn
            m = [bool(fn(r)) for r in part.to_dict("records")]
        else:
            assert self.fn is not None
            m = self.fn(part)
        mask = np.asarray(m, dtype=bool)
        if mask.shape != (len(part),):
            raise WholeBatchError(
                f"returned {mask.size} values (shape {mask.shape}) for a batch of {len(part)} rows; "
                "return one boolean per row, e.g. df['amount'] > 100"
            )
        return mask

    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        return self._filter(batch)[0]

    def process_rows(self, batch: pd.DataFrame, port: int = 0) -> tuple[Outputs, np.ndarray | None]:
        out, keep = self._filter(batch)
        return out, np.arange(len(batch)) if keep is None else np.flatnonzero(keep)

    def _filter(self, batch: pd.DataFrame) -> tuple[Outputs, np.ndarray | None]:
        """The outputs, and which rows ``"out"`` keeps (None: all of them)."""
        expr = self.expr
        alike = None if expr is None else lambda: fails_alike(batch, expr)
        groups = None if expr is None else lambda: kind_groups(batch, [expr])
        good, bad, reasons = isolate_failures(batch, self._mask, self.what, self.step_id, alike, groups)
        if len(good) == 1 and not bad:
            mask = good[0][1]
            if mask.all():
                return {"out": batch}, None
            return {"out": batch[mask].reset_index(drop=True)}, mask
        keep = np.zeros(len(batch), dtype=bool)
        for pos, m in good:
            keep[pos] = m
        out: Outputs = {"out": batch[keep].reset_index(drop=True)}
        if bad:
            out["dead_letter"] = udf_error_frame(batch, bad, reasons, self.step_id)
        return out, keep


def records_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """The rows a per-event function returned as a frame, a column of integers with missing values
    (a key some rows lack or hold None) as ``Int64``: ``DataFrame.from_records`` makes it float64,
    which rounds integers beyond 2**53 (an int64 field passed through ``map_one`` beside a missing
    value lost its last digits) and writes ``3`` as ``3.0``, where a batch without a missing value,
    and the exported code, keep the integers.

    Examples
    --------
    >>> records_frame([{"n": 2**60 + 1}, {"n": None}, {}])["n"].tolist()
    [1152921504606846977, <NA>, <NA>]
    >>> str(records_frame([{"x": 1.5}, {"x": None}])["x"].dtype)
    'float64'
    """
    frame = frame_of_rows(rows)
    for c in frame.columns:
        if frame[c].dtype.kind != "f":
            continue
        values = [r.get(c) for r in rows]
        if pd.api.types.infer_dtype(values, skipna=True) == "integer":
            frame[c] = inferred_series(values).set_axis(frame.index)
    return frame


class MapOperator(Operator):
    """Transform rows with a per-batch function, a per-event function, or column expressions."""

    output_names = ("out", "dead_letter")

    def __init__(
        self,
        step_id: str,
        fn: UserFunction | None,
        per_event: bool,
        columns: dict[str, str] | None = None,
        declared: tuple[str, ...] | None = None,
    ) -> None:
        self.step_id = step_id
        self.fn = fn
        self.per_event = per_event
        self.columns = columns
        self.declared = declared
        if columns:
            self.what = "with_columns(" + ", ".join(f"{k}={v!r}" for k, v in columns.items()) + ")"
        else:
            self.what = f"{'map_one' if per_event else 'map_many'}({fn.name if fn else ''})"

    def _apply(self, part: pd.DataFrame) -> pd.DataFrame:
        if self.columns:
            new = part.copy(deep=not _COPY_ON_WRITE)
            for name, expr in self.columns.items():
                # the compiled form runs the pandas operations of DataFrame.eval's Python engine
                new[name] = typed_result(eval_expression(new, expr))
            return new
        assert self.fn is not None
        if self.per_event:
            fn = self.fn.fn
            rows = [fn(r) for r in part.to_dict("records")]
            bad = [type(r).__name__ for r in rows if not isinstance(r, dict)]
            if bad:
                raise TypeError(f"must return a dict per event, returned {bad[0]}")
            if self.declared is not None:  # per event, so the row that breaks the promise goes alone
                for r in rows:
                    missing = [c for c in self.declared if c not in r]
                    if missing:
                        raise ValueError(
                            f"returned keys {list(r)}, declared {list(self.declared)}: missing {missing}; "
                            "return every declared column, or declare the columns it returns"
                        )
            return records_frame(rows) if rows else part.iloc[:0]
        res = self.fn(part)
        if not isinstance(res, pd.DataFrame):
            raise TypeError(f"must return a pandas DataFrame, returned {type(res).__name__}")
        if not res.columns.is_unique:  # later steps would read a frame where they expect a column
            repeated = sorted({str(c) for c in res.columns[res.columns.duplicated()]})
            raise ValueError(
                f"returned a DataFrame with repeated column names {repeated}: give each column one name"
            )
        return self._as_declared(res)

    def _as_declared(self, res: pd.DataFrame) -> pd.DataFrame:
        """``res`` when it has every declared column: later steps were checked against them, and would
        fail on the whole batch (a bare KeyError naming their step, not this function) otherwise."""
        if self.declared is None:
            return res
        missing = [c for c in self.declared if c not in res.columns]
        if missing:
            raise WholeBatchError(
                f"returned columns {[str(c) for c in res.columns]}, declared {list(self.declared)}: "
                f"missing {missing}; return every declared column, or declare the columns it returns"
            )
        return res

    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        return self._map(batch)[0]

    def process_rows(self, batch: pd.DataFrame, port: int = 0) -> tuple[Outputs, np.ndarray | None]:
        # a batch function (map_many) may return any rows; columns and per-event functions give a row
        # for each row they did not fail on
        out, rows = self._map(batch)
        return out, rows if self.columns or self.per_event else None

    def _map(self, batch: pd.DataFrame) -> tuple[Outputs, np.ndarray]:
        """The outputs, and the rows of ``batch`` that did not fail, in batch order."""
        exprs = list(self.columns.values()) if self.columns else None
        alike = None if exprs is None else lambda: all(fails_alike(batch, e) for e in exprs)
        groups = None if exprs is None else lambda: kind_groups(batch, exprs)
        good, bad, reasons = isolate_failures(batch, self._apply, self.what, self.step_id, alike, groups)
        parts = [g[1] for g in good]
        frame = (
            parts[0] if len(parts) == 1 else concat_rows(_numbers_kept(parts)) if parts else batch.iloc[:0]
        )
        rows = np.concatenate([g[0] for g in good]) if good else np.zeros(0, dtype=np.int64)
        if len(good) > 1 and (rows[1:] < rows[:-1]).any():  # groups of rows by kind: back in batch order
            order = np.argsort(rows, kind="stable")
            frame, rows = frame.take(order), rows[order]
        out: Outputs = {"out": frame.reset_index(drop=True)}
        if bad:
            out["dead_letter"] = udf_error_frame(batch, bad, reasons, self.step_id)
        return out, rows


def _numbers_kept(parts: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """``parts`` (rows of a batch computed apart) with each column that holds numbers of different kinds
    in different parts (ints in one, floats or bools in another: a json field's values, evaluated by
    type) as objects, so each value keeps the type its part gave it, as a row alone (and the exported
    code) gives it: pandas' concat makes such ints floats, and bools ints. A part whose column is only
    missing values (NaN) counts for nothing.

    Examples
    --------
    >>> parts = [pd.DataFrame({"x": [6]}), pd.DataFrame({"x": [5.0]}), pd.DataFrame({"x": [False]})]
    >>> pd.concat(_numbers_kept(parts), ignore_index=True)["x"].tolist()
    [6, 5.0, False]
    """
    if not parts[0].columns.is_unique:
        return parts
    mixed = [c for c in parts[0].columns if number_kinds_differ([p[c] for p in parts if c in p.columns])]
    if not mixed:
        return parts
    return [p.astype({c: object for c in mixed if c in p.columns}) for p in parts]


class PassOperator(Operator):
    """Forward batches unchanged (key_by, union: they change how later steps read the stream)."""

    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        return {"out": batch}

    def process_rows(self, batch: pd.DataFrame, port: int = 0) -> tuple[Outputs, np.ndarray | None]:
        return self.process(batch, port), np.arange(len(batch))


class UnionOperator(Operator):
    """Forward batches of several streams, each with the union's columns in the union's order: a column
    one input lacks is missing in its rows (as SQL's UNION BY NAME), so later steps, checked against the
    union's columns, read every batch alike.

    Examples
    --------
    >>> import pandas as pd
    >>> op = UnionOperator(("k", "v", "w"))
    >>> op.process(pd.DataFrame({"w": [2.0], "k": ["b"]}), port=1)["out"].to_dict("records")
    [{'k': 'b', 'v': nan, 'w': 2.0}]
    """

    def __init__(self, columns: tuple[str, ...] | None) -> None:
        self.columns = columns

    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        cols = self.columns
        if cols is None or tuple(batch.columns) == cols:
            return {"out": batch}
        return {"out": batch.reindex(columns=list(cols))}

    def process_rows(self, batch: pd.DataFrame, port: int = 0) -> tuple[Outputs, np.ndarray | None]:
        return self.process(batch, port), np.arange(len(batch))


class SelectOperator(Operator):
    """Keep some columns, optionally renamed: ``(input name, output name)`` pairs, in output order; one
    input may give several outputs (``select('a', b='a')``)."""

    def __init__(self, columns: Iterable[tuple[str, str]]) -> None:
        self.columns = tuple(columns)

    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        out = batch[[i for i, _ in self.columns]]
        out.columns = pd.Index([o for _, o in self.columns])
        return {"out": out}

    def process_rows(self, batch: pd.DataFrame, port: int = 0) -> tuple[Outputs, np.ndarray | None]:
        return self.process(batch, port), np.arange(len(batch))
