"""Short constructors for the built-in aggregators, for ``.agg(...)``.

Import the module (``from streamlab import agg``) rather than its names, since ``sum``, ``min`` and
``max`` would shadow Python's builtins.

Examples
--------
>>> from streamlab import agg
>>> [a.name for a in (agg.count(), agg.sum("amount"), agg.quantile("amount", 0.95))]
['count', 'sum_amount', 'p95_amount']
"""

from __future__ import annotations

import builtins
import inspect
from collections.abc import Callable
from typing import Any

from streamlab.aggregators import (
    Aggregator,
    CountAggregator,
    CountDistinctAggregator,
    FirstAggregator,
    LastAggregator,
    MaxAggregator,
    MeanAggregator,
    MinAggregator,
    QuantileAggregator,
    SumAggregator,
)

__all__ = ["count", "count_distinct", "first", "from_spec", "last", "max", "mean", "min", "quantile", "sum"]


def count(column: str | None = None, *, name: str | None = None) -> CountAggregator:
    """Count events, or non-null values of ``column``.

    Examples
    --------
    >>> count().name, count('user_id').name
    ('count', 'count_user_id')
    """
    return CountAggregator(column, name=name)


def sum(column: str, *, name: str | None = None) -> SumAggregator:
    """Sum of ``column``.

    Examples
    --------
    >>> sum('amount', name='revenue').name
    'revenue'
    """
    return SumAggregator(column, name=name)


def mean(column: str, *, name: str | None = None) -> MeanAggregator:
    """Mean of ``column``.

    Examples
    --------
    >>> mean('amount').name
    'mean_amount'
    """
    return MeanAggregator(column, name=name)


def min(column: str, *, name: str | None = None) -> MinAggregator:
    """Smallest value of ``column``.

    Examples
    --------
    >>> min('amount').name
    'min_amount'
    """
    return MinAggregator(column, name=name)


def max(column: str, *, name: str | None = None) -> MaxAggregator:
    """Largest value of ``column``.

    Examples
    --------
    >>> max('amount').name
    'max_amount'
    """
    return MaxAggregator(column, name=name)


def count_distinct(column: str, *, name: str | None = None) -> CountDistinctAggregator:
    """Number of distinct values of ``column``.

    Examples
    --------
    >>> count_distinct('user_id').name
    'count_distinct_user_id'
    """
    return CountDistinctAggregator(column, name=name)


def quantile(
    column: str, q: float, *, relative_accuracy: float = 0.01, name: str | None = None
) -> QuantileAggregator:
    """Approximate ``q``-quantile of ``column`` (relative error ``relative_accuracy``).

    Examples
    --------
    >>> quantile('latency', 0.99).name
    'p99_latency'
    """
    return QuantileAggregator(column, q, relative_accuracy=relative_accuracy, name=name)


def first(column: str, *, name: str | None = None) -> FirstAggregator:
    """Value of ``column`` at the earliest event time.

    Examples
    --------
    >>> first('page').name
    'first_page'
    """
    return FirstAggregator(column, name=name)


def last(column: str, *, name: str | None = None) -> LastAggregator:
    """Value of ``column`` at the latest event time.

    Examples
    --------
    >>> last('page').name
    'last_page'
    """
    return LastAggregator(column, name=name)


_KINDS: dict[str, Callable[..., Aggregator]] = {
    "count": count,
    "sum": sum,
    "mean": mean,
    "min": min,
    "max": max,
    "count_distinct": count_distinct,
    "first": first,
    "last": last,
}


def __getattr__(name: str) -> Any:
    # agg.summ(...) or agg.avg(...): say which aggregator was meant
    from streamlab.errors import suggest

    if name.startswith("__"):
        raise AttributeError(name)
    aliases = {
        "avg": "mean",
        "average": "mean",
        "total": "sum",
        "nunique": "count_distinct",
        "distinct": "count_distinct",
        "median": "quantile",
        "p50": "quantile",
        "minimum": "min",
        "maximum": "max",
        "len": "count",
        "size": "count",
    }
    raise AttributeError(
        f"streamlab.agg has no aggregator {name!r}; "
        + suggest(name, [n for n in __all__ if n != "from_spec"], what="aggregators", aliases=aliases)
    )


def from_spec(spec: dict[str, Any]) -> Aggregator:
    """Rebuild a built-in aggregator from ``Aggregator.describe()``.

    Examples
    --------
    >>> from_spec({"kind": "sum", "column": "amount", "name": "total"}).name
    'total'
    """
    from streamlab.errors import ParameterError, suggest

    given = dict(spec)
    spec = dict(spec)
    if "kind" not in spec:
        raise ParameterError(
            "agg.from_spec", "kind", f"{given!r} has no 'kind'", 'name the aggregator, e.g. {"kind": "sum"}'
        )
    kind = spec.pop("kind")
    build = quantile if kind == "quantile" else _KINDS.get(kind)
    if build is None:
        known = builtins.sorted([*_KINDS, "quantile"])
        raise ValueError(
            f"unknown aggregator kind {kind!r}; " + suggest(str(kind), known, what="aggregators")
        )
    try:
        inspect.signature(build).bind(**spec)
    except TypeError as e:  # a missing column, an unknown key: said here, not as Python's TypeError
        params = ", ".join(inspect.signature(build).parameters)
        raise ParameterError(
            "agg.from_spec",
            str(kind),
            f"cannot build agg.{kind} from {given!r}: {e}",
            f"give the keys agg.{kind} takes ({params}) beside 'kind'",
        ) from None
    return build(**spec)
