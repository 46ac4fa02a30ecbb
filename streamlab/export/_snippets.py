"""Code that exporters copy verbatim into generated modules.

Everything here is plain Python with no Beam or boto3 import (and no streamlab import that is copied), so
a generated module deploys alone. The parse step's per-record rules are not here: generated modules carry
``streamlab._record`` itself, the code of streamlab's own checked parse path; nor is the row encoding:
they carry ``streamlab._serde_values``, the code of ``streamlab.serde``. These functions mirror the
runtime's semantics row by row: the aggregators' null handling (``streamlab.aggregators``) and the
tumbling/sliding window assignment (``streamlab.windows``). Tests run them against the runtime.
"""

from __future__ import annotations

import json
import math
from typing import Any

from streamlab._serde_values import json_default  # generated modules carry it with streamlab._serde_values


def is_null(value: Any) -> bool:
    """None or NaN: what the aggregators skip."""
    return value is None or (isinstance(value, float) and value != value)


def window_starts(ts_ns: int, size_ns: int, slide_ns: int, offset_ns: int) -> list[int]:
    """Starts (ns) of the tumbling (slide == size) or sliding windows holding an event."""
    base = (ts_ns - offset_ns) // slide_ns
    n = -(-size_ns // slide_ns)
    starts = [(base - j) * slide_ns + offset_ns for j in range(n)]
    return [s for s in starts if s + size_ns > ts_ns]


class CountCombine:
    """Number of rows, or of non-null values of ``column``."""

    def __init__(self, column: str | None) -> None:
        self.column = column

    def create_accumulator(self) -> int:
        return 0

    def add_input(self, acc: int, row: dict[str, Any], ts_ns: int) -> int:
        return acc + (1 if self.column is None or not is_null(row.get(self.column)) else 0)

    def merge_accumulators(self, accs: Any) -> int:
        return sum(accs)

    def extract_output(self, acc: Any) -> Any:
        return acc

    def to_json(self, acc: Any) -> Any:
        return acc

    def from_json(self, data: Any) -> Any:
        return data


class SumCombine(CountCombine):
    """Sum of a numeric column, skipping nulls; also counts values so that mean can share it."""

    def create_accumulator(self) -> Any:
        return [0.0, 0]

    def add_input(self, acc: Any, row: dict[str, Any], ts_ns: int) -> Any:
        value: Any = row.get(self.column) if self.column else None
        if not is_null(value):
            acc = [acc[0] + float(value), acc[1] + 1]
        return acc

    def merge_accumulators(self, accs: Any) -> Any:
        accs = list(accs)
        return [sum(a[0] for a in accs), sum(a[1] for a in accs)]

    def extract_output(self, acc: Any) -> float:
        return float(acc[0])


class MeanCombine(SumCombine):
    """Mean of a numeric column, skipping nulls; NaN without values."""

    def extract_output(self, acc: Any) -> float:
        return acc[0] / acc[1] if acc[1] else math.nan


class MinCombine(CountCombine):
    """Smallest value of a numeric column, skipping nulls; NaN without values."""

    pick = staticmethod(min)

    def create_accumulator(self) -> Any:
        return None

    def add_input(self, acc: Any, row: dict[str, Any], ts_ns: int) -> Any:
        value: Any = row.get(self.column) if self.column else None
        if is_null(value):
            return acc
        return float(value) if acc is None else self.pick(acc, float(value))

    def merge_accumulators(self, accs: Any) -> Any:
        best = None
        for a in accs:
            if a is not None:
                best = a if best is None else self.pick(best, a)
        return best

    def extract_output(self, acc: Any) -> float:
        return math.nan if acc is None else acc


class MaxCombine(MinCombine):
    """Largest value of a numeric column, skipping nulls; NaN without values."""

    pick = staticmethod(max)


class CountDistinctCombine(CountCombine):
    """Exact number of distinct non-null values."""

    def create_accumulator(self) -> Any:
        return set()

    def add_input(self, acc: Any, row: dict[str, Any], ts_ns: int) -> Any:
        value: Any = row.get(self.column) if self.column else None
        if not is_null(value):
            acc.add(value)
        return acc

    def merge_accumulators(self, accs: Any) -> Any:
        out: set[Any] = set()
        for a in accs:
            out |= a
        return out

    def extract_output(self, acc: Any) -> int:
        return len(acc)

    def to_json(self, acc: Any) -> Any:
        return list(acc)

    def from_json(self, data: Any) -> Any:
        return set(data)


class FirstCombine(CountCombine):
    """Value at the earliest event time (earliest arrival among ties)."""

    last = False

    def create_accumulator(self) -> Any:
        return None

    def add_input(self, acc: Any, row: dict[str, Any], ts_ns: int) -> Any:
        value: Any = row.get(self.column) if self.column else None
        if acc is None or (ts_ns >= acc[0] if self.last else ts_ns < acc[0]):
            return [ts_ns, value]
        return acc

    def merge_accumulators(self, accs: Any) -> Any:
        best = None
        for a in accs:
            if a is not None and (best is None or (a[0] >= best[0] if self.last else a[0] < best[0])):
                best = a
        return best

    def extract_output(self, acc: Any) -> Any:
        return None if acc is None else acc[1]


class LastCombine(FirstCombine):
    """Value at the latest event time (latest arrival among ties)."""

    last = True


class QuantileCombine(CountCombine):
    """Approximate quantile with a relative-error guarantee (a DDSketch, as streamlab's)."""

    def __init__(self, column: str | None, q: float, relative_accuracy: float) -> None:
        super().__init__(column)
        self.q = q
        self.gamma = (1 + relative_accuracy) / (1 - relative_accuracy)
        self.log_gamma = math.log(self.gamma)

    def create_accumulator(self) -> Any:
        return {"pos": {}, "neg": {}, "zero": 0, "n": 0}

    def add_input(self, acc: Any, row: dict[str, Any], ts_ns: int) -> Any:
        value: Any = row.get(self.column) if self.column else None
        if is_null(value):
            return acc
        value = float(value)
        acc["n"] += 1
        if value == 0:
            acc["zero"] += 1
        else:
            part = acc["pos" if value > 0 else "neg"]
            bucket = math.ceil(math.log(abs(value)) / self.log_gamma)
            part[bucket] = part.get(bucket, 0) + 1
        return acc

    def merge_accumulators(self, accs: Any) -> Any:
        out = self.create_accumulator()
        for a in accs:
            out["zero"] += a["zero"]
            out["n"] += a["n"]
            for part in ("pos", "neg"):
                for k, c in a[part].items():
                    out[part][k] = out[part].get(k, 0) + c
        return out

    def extract_output(self, acc: Any) -> float:
        n = acc["n"]
        if n == 0:
            return math.nan
        rank = self.q * (n - 1)
        seen = 0
        for k in sorted(acc["neg"], reverse=True):
            seen += acc["neg"][k]
            if seen > rank:
                return float(-2 * self.gamma**k / (self.gamma + 1))
        seen += acc["zero"]
        if seen > rank:
            return 0.0
        for k in sorted(acc["pos"]):
            seen += acc["pos"][k]
            if seen > rank:
                return float(2 * self.gamma**k / (self.gamma + 1))
        return float(2 * self.gamma ** max(acc["pos"]) / (self.gamma + 1))

    def to_json(self, acc: Any) -> Any:
        return {**acc, "pos": list(acc["pos"].items()), "neg": list(acc["neg"].items())}

    def from_json(self, data: Any) -> Any:
        return {**data, "pos": dict(data["pos"]), "neg": dict(data["neg"])}


class RowCombine:
    """Several aggregators over the same rows: one accumulator list, one output dict."""

    def __init__(self, aggregators: list[tuple[str, Any]]) -> None:
        self.aggregators = aggregators

    def create_accumulator(self) -> list[Any]:
        return [fn.create_accumulator() for _, fn in self.aggregators]

    def add_input(self, acc: list[Any], row: dict[str, Any], ts_ns: int) -> list[Any]:
        return [fn.add_input(a, row, ts_ns) for a, (_, fn) in zip(acc, self.aggregators)]

    def merge_accumulators(self, accs: Any) -> list[Any]:
        columns = list(zip(*accs))
        if not columns:
            return self.create_accumulator()
        return [fn.merge_accumulators(col) for col, (_, fn) in zip(columns, self.aggregators)]

    def extract_output(self, acc: list[Any]) -> dict[str, Any]:
        return {name: fn.extract_output(a) for a, (name, fn) in zip(acc, self.aggregators)}

    def to_json(self, acc: list[Any]) -> list[Any]:
        return [fn.to_json(a) for a, (_, fn) in zip(acc, self.aggregators)]

    def from_json(self, data: list[Any]) -> list[Any]:
        return [fn.from_json(a) for a, (_, fn) in zip(data, self.aggregators)]


def group_key(row: dict[str, Any], keys: tuple[str, ...]) -> str:
    """A deterministic text key of a row's key columns (JSON list), for grouping and state."""
    return json.dumps([row.get(k) for k in keys], default=json_default)


def eval_expr(expr: str, row: dict[str, Any]) -> Any:
    """A pandas expression (as streamlab's filter/with_columns) evaluated on one row.

    A missing value (None) is first left as it is (``x > 0`` is False, ``x.str.len()`` is null); when
    that is a type error, as arithmetic on None is, it is read as NaN, which is what a missing number is
    in streamlab's columns (``amount * 100`` of a missing amount is NaN there, not an error).
    """
    import pandas as pd

    frame = pd.DataFrame([row])
    try:
        value = frame.eval(expr)
    except TypeError:
        missing = [c for c, v in row.items() if v is None]
        if not missing:
            raise
        value = frame.astype({c: "float64" for c in missing}).eval(expr)
    value = value.iloc[0] if hasattr(value, "iloc") else value
    return value.item() if hasattr(value, "item") else value


def assign_exprs(row: dict[str, Any], columns: Any) -> dict[str, Any]:
    """``row`` with the columns of streamlab's ``with_columns``: (name, expression) pairs evaluated in
    order, each seeing the columns set before it."""
    out = dict(row)
    for name, expr in columns:
        out[name] = eval_expr(expr, out)
    return out
