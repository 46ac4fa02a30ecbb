"""Concept-drift detection on one numeric column (river ``drift``)."""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from river import drift

from streamlab import _step_codecs as codec
from streamlab._floats import float_values
from streamlab._step_kinds import param, step_kind
from streamlab._time import NAT_NS
from streamlab.detectors._common import (
    Columns,
    PickledStateOperator,
    StepConfig,
    check_name,
    event_time_ns,
    require_columns,
)
from streamlab.errors import suggest
from streamlab.operators import Outputs

__all__ = ["DriftDetector", "DriftOperator"]

_METHODS: dict[str, Any] = {"adwin": drift.ADWIN, "page_hinkley": drift.PageHinkley}


def _number(v: Any) -> bool:
    return (
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and not math.isnan(v)
    )


def _whole(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


#: river's parameters whose bad values it takes and then never detects (NaN, a confidence of 0), always
#: detects (a negative threshold) or panics on the first value (clock=0, max_buckets=0): what each must
#: be, and an example
_PARAM_RULES: dict[str, dict[str, tuple[Any, str, float]]] = {
    "adwin": {
        "delta": (lambda v: _number(v) and 0 < v <= 1, "a confidence above 0 and at most 1", 0.002),
        "clock": (lambda v: _whole(v) and v >= 1, "a whole number of values >= 1 between checks", 32),
        "max_buckets": (lambda v: _whole(v) and v >= 1, "a whole number >= 1", 5),
    },
    "page_hinkley": {
        "threshold": (lambda v: _number(v) and 0 < v < math.inf, "a positive finite number", 50),
        "delta": (lambda v: _number(v) and 0 <= v < math.inf, "a finite number >= 0", 0.005),
        "alpha": (lambda v: _number(v) and 0 < v <= 1, "a forgetting factor above 0 and at most 1", 0.9999),
    },
}


@functools.cache
def _adwin_divides_by_zero_with_one_bucket() -> bool:
    """Whether this river's ``ADWIN(max_buckets=1)`` raises ``ZeroDivisionError`` at its first check.

    river's Cython ADWIN up to 0.23 (Python 3.10's river 0.22 among them) empties its only bucket
    row when it merges at one bucket, then divides by a window of length 0, whatever the values;
    later rivers (0.24 divides as C does, 0.25 on is Rust) take it. Asked of river itself, once, and
    only for ``max_buckets=1``.
    """
    probe = drift.ADWIN(max_buckets=1, clock=1)
    try:
        for _ in range(64):  # the Cython one fails after 11 values, its grace period and bucket merges
            probe.update(0.0)
    except ZeroDivisionError:
        return True
    return False


def _make(method: str, params: Mapping[str, Any]) -> Any:
    return _METHODS[method](**params)


@step_kind(config=True)
@dataclass(frozen=True, eq=False)
class DriftDetector(StepConfig):
    """Watch a column (by default the anomaly ``score``) for concept drift.

    Values are fed in arrival order to river's ``ADWIN`` (change in mean, adaptive window) or
    ``PageHinkley`` (sustained shift). ``out`` passes the batch through unchanged; ``drift`` gets one
    row per detection: ``time`` (event time of the value that triggered it), ``value``, ``method``,
    ``column`` and ``n_seen`` (values seen so far). Missing and infinite values are skipped (one
    infinity would turn river's running mean to infinity or NaN for good, and no drift would follow).

    Parameters
    ----------
    column
        Numeric column to watch.
    method
        ``"adwin"`` or ``"page_hinkley"``.
    time
        Event-time column copied into drift events (``None``: no time column).
    params
        Keyword arguments of the river detector, e.g. ``{"delta": 0.001}``.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> batch = pd.DataFrame({"score": np.r_[rng.normal(0, 0.1, 500), rng.normal(1, 0.1, 500)],
    ...                       "timestamp": pd.date_range("2024-01-01", periods=1000, freq="s", tz="UTC")})
    >>> res = DriftDetector(method="adwin").build().process(batch)
    >>> len(res["out"]) == 1000, bool(res["drift"]["time"].iloc[0] > pd.Timestamp("2024-01-01 00:08:20Z"))
    (True, True)
    """

    column: str = "score"
    method: str = "adwin"
    time: str | None = "timestamp"
    params: Mapping[str, Any] = param(codec=codec.MAPPING, default_factory=dict)

    kind: ClassVar[str] = "drift_detector"
    output_names: ClassVar[tuple[str, ...]] = ("out", "drift")

    def numeric_columns(self) -> tuple[str, ...]:
        """The monitored column."""
        return (self.column,)

    def required_columns(self) -> tuple[str, ...]:
        """Input columns the step reads."""
        return (self.column,) + ((self.time,) if self.time else ())

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        """``out`` passes the input through; ``drift`` has fixed columns."""
        return {
            "out": columns_in[0] if columns_in else None,
            "drift": ("time", "value", "method", "column", "n_seen"),
        }

    def __post_init__(self) -> None:
        where = "DriftDetector"
        check_name(self.column, where=where, what="column")
        if self.method not in _METHODS:
            raise ValueError(f"{where}: method must be one of {sorted(_METHODS)!r}, got {self.method!r}")
        if self.time is not None:
            check_name(self.time, where=where, what="time")
        if not isinstance(self.params, Mapping):
            raise ValueError(
                f"{where}: params must be a dict of river keyword arguments, got {self.params!r}"
            )
        object.__setattr__(self, "params", dict(self.params))
        for name, (ok, what, example) in _PARAM_RULES[self.method].items():
            if name in self.params and not ok(self.params[name]):
                raise ValueError(
                    f"{where}(method={self.method!r}): params {name}={self.params[name]!r} is not {what}: river "
                    "takes it, then detects no drift, drifts all the time or fails on the first value; pass "
                    f"e.g. params={{{name!r}: {example}}} (or leave it out for river's default)"
                )
        if (
            self.method == "adwin"
            and _whole(self.params.get("max_buckets"))
            and self.params["max_buckets"] == 1
            and _adwin_divides_by_zero_with_one_bucket()
        ):
            raise ValueError(
                f"{where}(method='adwin'): params max_buckets=1 makes this river's ADWIN (river "
                f"{importlib.metadata.version('river')}) divide by zero at its first check, which would "
                "stop the run; pass e.g. params={'max_buckets': 2} (or leave it out for river's default "
                "5), or use river 0.24 or later (Python 3.11+), whose ADWIN takes max_buckets=1"
            )
        try:
            _make(self.method, self.params)
        except TypeError as exc:
            river_cls = _METHODS[self.method]
            takes = [p for p in inspect.signature(river_cls).parameters if p not in ("self", "seed")]
            unknown = [k for k in self.params if k not in takes]
            hint = suggest(str(unknown[0]), takes, what="parameters") if unknown else ""
            raise ValueError(
                f"{where}(method={self.method!r}): params {dict(self.params)!r} are not accepted by "
                f"river.drift.{river_cls.__name__}: {exc}; "
                + (hint or f"give each a value of the type help(river.drift.{river_cls.__name__}) lists")
            ) from None

    def build(self) -> DriftOperator:
        """Return the runtime state."""
        return DriftOperator(self)


class DriftOperator(PickledStateOperator):
    """Runtime state of :class:`DriftDetector`: the river detector and the count of values seen."""

    output_names = ("out", "drift")

    def __init__(self, step: DriftDetector) -> None:
        self.step = step
        self.detector = _make(step.method, step.params)
        self.seen = 0

    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        step = self.step
        require_columns(batch, [step.column], where="DriftDetector")
        values = float_values(batch[step.column])
        times = (
            event_time_ns(batch, step.time, where="DriftDetector")
            if step.time is not None
            else np.full(len(batch), NAT_NS, dtype=np.int64)
        )
        hits_t: list[int] = []
        hits_v: list[float] = []
        hits_n: list[int] = []
        det = self.detector
        for t, v in zip(times.tolist(), values.tolist()):
            if not math.isfinite(v):  # (as DriftState: an infinity would disable river's detector)
                continue
            det.update(v)
            self.seen += 1
            if det.drift_detected:
                hits_t.append(t)
                hits_v.append(v)
                hits_n.append(self.seen)
        events = pd.DataFrame(
            {
                "time": pd.to_datetime(np.array(hits_t, dtype=np.int64), utc=True),
                "value": np.array(hits_v, dtype="float64"),
                "method": pd.Series([step.method] * len(hits_t), dtype=object),
                "column": pd.Series([step.column] * len(hits_t), dtype=object),
                "n_seen": np.array(hits_n, dtype=np.int64),
            }
        )
        return {"out": batch, "drift": events}

    def open_state(self) -> dict[str, Any]:
        return {"values_seen": self.seen}
