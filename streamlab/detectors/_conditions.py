"""Conditions of rules and pattern steps over a batch: where they hold, and the rows they cannot take.

A condition that fails on a batch for a reason of its own (a column the batch lacks, a text column
compared with a number: ``streamlab._expr.fails_alike``) would fail on every row: the run stops with the
fix. One that fails on some values (a text among numbers in a column of Python objects, a text column
with missing values, where a missing text compares as False) sends those rows to dead letter with :func:`streamlab._detector_record.condition_failure`'s reason, the text the
exported per-record code writes for the same row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from streamlab._detector_record import condition_failure
from streamlab._expr import eval_condition, expression_names, fails_alike, kind_groups
from streamlab._transforms import isolate_failures

__all__ = ["condition_rows"]


def _holds(part: pd.DataFrame, expr: str) -> np.ndarray:
    res = eval_condition(part, expr)
    if isinstance(res, pd.Series) and res.dtype == np.bool_ and res.index.equals(part.index):
        return res.to_numpy()  # nothing to align or fill
    return np.asarray(pd.Series(res, index=part.index).fillna(False), dtype=bool)


def condition_rows(
    batch: pd.DataFrame, expr: str, what: str, where: str
) -> tuple[np.ndarray, np.ndarray | None]:
    """Where ``expr`` holds on ``batch`` (missing is False), and why it could not be evaluated on each row
    (None for the rows it could; the whole array None when it could on every row).

    ``what`` names the condition in a dead letter's reason (``"rule 'big'"``); ``where`` names the step
    in a configuration error (``"ThresholdRule(name='big')"``).

    Examples
    --------
    >>> batch = pd.DataFrame({"amount": pd.Series([5, "7", 500], dtype=object)})
    >>> holds, why = condition_rows(batch, "amount > 100", "rule 'big'", "ThresholdRule(name='big')")
    >>> holds.tolist(), why.tolist()
    ([False, False, True], [None, "rule 'big' cannot evaluate 'amount > 100' on amount='7'", None])
    """
    try:
        return _holds(batch, expr), None
    except Exception as exc:
        names = expression_names(expr)
        missing = [n for n in names or () if n not in batch.columns]
        if missing:
            raise ValueError(
                f"{where}: cannot evaluate {expr!r}: no column {', '.join(map(repr, missing))} among "
                f"{list(batch.columns)!r}: {exc}. Fix: name columns the batch has (an earlier step may have "
                "renamed or dropped them)"
            ) from exc
        if fails_alike(batch, expr):
            raise ValueError(
                f"{where}: cannot evaluate {expr!r} on columns of types "
                f"{ {n: str(batch[n].dtype) for n in names or ()} }: {exc}. Fix: compare each column with "
                "values of its type (a text column with 'text', a number column with numbers)"
            ) from exc
    # found as the filter finds them (by kind of values, else halving the batch); the exported code
    # meets them one row at a time
    good, bad_rows, _ = isolate_failures(
        batch, lambda part: _holds(part, expr), "", "", groups=lambda: kind_groups(batch, [expr])
    )
    holds = np.zeros(len(batch), dtype=bool)
    for pos, mask in good:
        holds[pos] = mask
    columns = list(expression_names(expr) or ())
    rows = batch.iloc[bad_rows][columns].to_dict("records")
    why = np.full(len(batch), None, dtype=object)
    why[bad_rows] = [condition_failure(what, expr, columns, {str(c): v for c, v in r.items()}) for r in rows]
    return holds, why
