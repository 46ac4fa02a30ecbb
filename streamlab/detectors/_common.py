"""Helpers shared by the detector, feature, rule and pattern operators."""

from __future__ import annotations

import copy
import functools
import math
import pickle
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from streamlab._compat import PANDAS_3
from streamlab._dead_letter import reason_last_columns, reason_last_frame
from streamlab._step_kinds import params_of
from streamlab._time import Duration, parse_duration, to_utc_ns
from streamlab.errors import PipelineConfigError
from streamlab.operators import Operator

#: an example value of each parameter the checks below name, for the fix of their errors
_EXAMPLES = {
    "key": "'user_id'",
    "value": "'amount'",
    "column": "'amount'",
    "score": "'score'",
    "time": "'timestamp'",
    "id_column": "'event_id'",
    "name": "'big_amount'",
    "expr": "'amount > 1000'",
    "where": "\"event_type == 'login_failed'\"",
    "max_keys": "100_000",
    "history": "101",
    "times": "2",
}


def _example(what: str, default: str) -> str:
    return f"{what}={_EXAMPLES.get(what, default)}"


def check_name(value: object, *, where: str, what: str) -> str:
    """Return ``value`` if it is a non-empty string, else raise a ValueError saying where, what and the
    fix (``"<where>: <problem>; <fix>"``, as the configs' checks write them).

    Examples
    --------
    >>> check_name(["user_id"], where="VelocityFeature", what="key")
    Traceback (most recent call last):
    ...
    ValueError: VelocityFeature: key must be a non-empty column or step name (a str), got ['user_id']; pass one name as text, e.g. key='user_id'
    """
    if not isinstance(value, str) or not value:
        raise ValueError(
            f"{where}: {what} must be a non-empty column or step name (a str), got {value!r}; "
            f"pass one name as text, e.g. {_example(what, repr('<column>'))}"
        )
    return value


def check_columns(value: object, *, where: str, what: str) -> tuple[str, ...]:
    """Return a non-empty tuple of column names."""
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, Iterable):
        raise ValueError(f"{where}: {what} must be a list of column names, got {value!r}")
    cols = tuple(value)
    if not cols or not all(isinstance(c, str) and c for c in cols):
        raise ValueError(f"{where}: {what} must be a non-empty list of column names, got {value!r}")
    if len(set(cols)) != len(cols):
        raise ValueError(f"{where}: {what} lists a column twice: {list(cols)!r}; list each column once")
    return cols


def check_duration(value: Duration, *, where: str, what: str, allow_zero: bool = False) -> int:
    """Parse a duration and require it to be positive (or zero when allowed)."""
    ns = parse_duration(value, what=f"{where}: {what}")
    if ns < 0 or (ns == 0 and not allow_zero):
        bound = "zero or more" if allow_zero else "positive"
        raise ValueError(f"{where}: {what} must be {bound}, got {value!r}; write it like '10s' or '5m'")
    return ns


def check_positive_int(value: object, *, where: str, what: str) -> int:
    """Require a positive ``int`` (not a bool)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(
            f"{where}: {what} must be a positive integer, got {value!r}; "
            f"pass a whole number of 1 or more without quotes, e.g. {_example(what, '10')}"
        )
    return int(value)


def check_all(name: str, checks: Iterable[Callable[[], object]]) -> None:
    """Run every one of ``checks`` (each raising ``ValueError("<where>: <problem>; <fix>")``): the error
    of the one that fails, or, when several do, one error listing every problem and every fix, so a
    config with two mistakes is not reported in two stages (one error, fix it, then the next).
    ``name`` is the config's class name, which begins each check's ``where``.

    Examples
    --------
    >>> check_all("VelocityFeature", [
    ...     lambda: check_name(3, where="VelocityFeature", what="key"),
    ...     lambda: check_duration("-5m", where="VelocityFeature", what="window"),
    ... ])
    Traceback (most recent call last):
    ...
    ValueError: VelocityFeature: 2 problems: (1) key must be a non-empty column or step name (a str), got 3; (2) window must be positive, got '-5m'; (1) pass one name as text, e.g. key='user_id'. (2) write it like '10s' or '5m'
    """
    errors: list[ValueError] = []
    for check in checks:
        try:
            check()
        except ValueError as error:
            errors.append(error)
    if len(errors) == 1:
        raise errors[0]
    if not errors:
        return
    where = name
    parts: list[tuple[str, str]] = []
    for failed in errors:
        text = str(failed)
        head, sep, rest = text.partition(": ")
        if sep and head.startswith(name):
            where, text = head, rest
        problem, sep, fix = text.rpartition("; ")
        parts.append((problem, fix) if sep else (text, ""))
    problems = "; ".join(f"({i}) {p}" for i, (p, _) in enumerate(parts, 1))
    fixes = ". ".join(f"({i}) {f.replace('; ', ', ')}" for i, (_, f) in enumerate(parts, 1) if f)
    raise ValueError(f"{where}: {len(parts)} problems: {problems}; {fixes or 'correct each of them'}")


def require_columns(batch: pd.DataFrame, columns: Sequence[str], *, where: str) -> None:
    """Raise a KeyError that names the step and the missing columns."""
    missing = [c for c in columns if c not in batch.columns]
    if missing:
        raise KeyError(
            f"{where}: the batch has no column(s) {missing!r}; it has {list(batch.columns)!r}. "
            "Add a parse or features step that creates them, or fix the column names in the step."
        )


def event_time_ns(batch: pd.DataFrame, column: str, *, where: str) -> np.ndarray:
    """Event times of a batch as int64 ns (``NAT_NS`` where missing or unreadable)."""
    require_columns(batch, [column], where=where)
    if len(batch) == 0:
        return np.empty(0, dtype=np.int64)
    col = batch[column]
    if col.dtype == _UTC_NS:
        # already int64 ns underneath (NaT is NAT_NS): skip the general conversion on the hot path
        return np.array(col.array.asi8)  # a copy: callers may keep it beyond the batch
    return to_utc_ns(col)


_UTC_NS = pd.DatetimeTZDtype("ns", "UTC")


def reject(n: int, checks: Sequence[tuple[np.ndarray, str]]) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows passing every check, and each failing row's reason (the first failed check), or None.

    Each check is ``(bad_mask, reason)``; the reasons array is only built when some row fails.
    """
    bad = np.zeros(n, dtype=bool)
    for mask, _ in checks:
        bad |= mask
    if not bad.any():
        return ~bad, None
    reasons = np.full(n, None, dtype=object)
    for mask, reason in reversed(checks):
        reasons[mask] = reason
    return ~bad, reasons


def dead_letter(batch: pd.DataFrame, bad: np.ndarray, reasons: np.ndarray | str) -> pd.DataFrame:
    """The rows of ``batch`` selected by ``bad``, with a ``reason`` column saying why they were set aside
    (detectors' order, ``streamlab._dead_letter.reason_last_frame``)."""
    return reason_last_frame(batch, bad, reasons)


class PickledStateOperator(Operator):
    """An operator whose whole state is its ``__dict__``: snapshots are pickled copies of it.

    Pickling (rather than sharing references) makes a snapshot independent of the running operator,
    so continuing to process after ``snapshot()`` cannot change a checkpoint already taken.
    """

    def snapshot(self) -> Any:
        return pickle.dumps(self.__dict__, protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, state: Any) -> None:
        self.__dict__.clear()
        self.__dict__.update(pickle.loads(state))


Columns = tuple[str, ...] | None


def _config_error(config: StepConfig, error: ValueError) -> PipelineConfigError:
    """A config's argument error as a PipelineConfigError: the config (``VelocityRule(name='burst')``)
    in place of the step id it does not have yet, and the id ``Stream.apply`` gives it by default (its
    kind), the problem and the fix.

    The checks write ``"<where>: <problem>; <fix>"`` (the helpers above); the fix, when a message has
    none, points at the config's parameters.
    """
    text = str(error)
    name = type(config).__name__
    where, sep, rest = text.partition(": ")
    if sep and where.startswith(name):
        text = rest
    else:
        where = name
    problem, sep, fix = text.rpartition("; ")
    if not sep:
        problem, fix = text, f"give {name} the parameters its documentation lists (help({name}))"
    return PipelineConfigError(where, config.kind, problem, fix, config=True)


def _checked(check: Callable[[Any], None]) -> Callable[[Any], None]:
    @functools.wraps(check)
    def post_init(self: StepConfig) -> None:
        try:
            check(self)
        except PipelineConfigError:
            raise
        except ValueError as error:
            raise _config_error(self, error) from None

    return post_init


class StepConfig:
    """Hooks the pipeline uses to check a step against its input columns at construction.

    ``kind`` names the step type, ``output_names`` its outputs; ``check_columns`` reports missing
    input columns as ``(problem, fix)``; ``out_columns`` tells later steps what each output holds.
    A config checks its arguments in ``__post_init__``; a bad one raises
    :class:`~streamlab.errors.PipelineConfigError` (a ``ValueError``) naming the config, its kind,
    the problem and the fix, as a step does.

    Examples
    --------
    >>> from streamlab.detectors import VelocityFeature
    >>> VelocityFeature("card_id", window="-5m")
    Traceback (most recent call last):
    ...
    streamlab.errors.PipelineConfigError: VelocityFeature (config of step 'velocity_feature': the id Stream.apply gives it unless step_id= is passed): window must be positive, got '-5m'. Fix: write it like '10s' or '5m'
    """

    kind: ClassVar[str] = "step"
    output_names: ClassVar[tuple[str, ...]] = ("out",)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        check = cls.__dict__.get("__post_init__")
        if check is not None:  # every config's own checks raise PipelineConfigError
            cls.__post_init__ = _checked(check)  # type: ignore[attr-defined]

    def required_columns(self) -> tuple[str, ...]:
        """Input columns the step reads."""
        return ()

    def numeric_columns(self) -> tuple[str, ...]:
        """Input columns the step reads as numbers: one declared text or timestamp upstream (by a parse
        schema or a source's frame) is refused when the step is added, where it would otherwise score
        nothing, or give NaN or 0 for every row, at run time."""
        return ()

    def text_columns(self) -> tuple[str, ...]:
        """Input columns the step compares with a text: one declared a number upstream (int64, float64
        or bool, by a parse schema or a source's frame) is refused when the step is added, where it would
        otherwise compare unequal on every row at run time."""
        return ()

    def added_columns(self) -> tuple[str, ...]:
        """Columns the step adds to its ``out`` rows."""
        return ()

    def added_column_types(self) -> dict[str, str]:
        """Types of the added columns that are known (parse types: ``"float64"``, ``"bool"``,
        ``"string"``, ...), so a sink types such a column the same in a batch holding none of its
        values (a rule's ``rule`` before any row alerts). The default: none known.

        Examples
        --------
        >>> from streamlab.detectors import ThresholdRule
        >>> ThresholdRule("big", column="amount", op=">", value=10).added_column_types()
        {'rule': 'string', 'is_alert': 'bool'}
        """
        return {}

    def check_columns(self, columns: Sequence[str]) -> tuple[str, str] | None:
        """``(problem, fix)`` when required input columns are missing, else ``None``."""
        missing = [c for c in self.required_columns() if c not in columns]
        if not missing:
            return None
        return (
            f"the stream has no column(s) {missing!r}",
            f"add a step that creates them, or fix the names (available: {list(columns)!r})",
        )

    def describe(self) -> dict[str, Any]:
        """Parameters as plain data: ``kind`` and the config's fields (``streamlab._step_kinds``)."""
        return {"kind": self.kind, **params_of(self)}

    def out_columns(self, columns_in: list[Columns]) -> dict[str, Columns]:
        """Columns of each output, when the input columns are known."""
        cols = columns_in[0] if columns_in else None
        if cols is None:
            return {name: None for name in self.output_names}
        out: dict[str, Columns] = {"out": tuple(dict.fromkeys((*cols, *self.added_columns())))}
        if "dead_letter" in self.output_names:
            out["dead_letter"] = reason_last_columns(cols)
        if "late" in self.output_names:
            out["late"] = tuple(cols)
        return out


#: False turns the compiled kernels off (tests use it to run the numpy paths on a machine with numba)
use_kernels = True
_kernels_module: Any = None


def _gaussian_z_scales() -> tuple[float, float]:
    """``(a, b)``: river's Gaussian CDF takes the erf of ``(x - mean) / (std * a) / b``.

    river 0.26 divides by sigma, then by sqrt(2) (``utils.math.norm_cdf``); river 0.22 (the newest for
    Python 3.10) by ``sigma * sqrt(2)`` at once. The two differ in the last bit for some values, and the
    vectorized Gaussian scorer is bit-identical to the installed river's: asked of river on a value where
    the two differ.

    Examples
    --------
    >>> GAUSSIAN_Z_SCALES in ((1.0, math.sqrt(2.0)), (math.sqrt(2.0), 1.0))
    True
    """
    from river import proba

    gaussian = proba.Gaussian()
    for v in (0.0, 1.0):
        gaussian.update(v)
    mu, sigma, sqrt2 = gaussian.mu, gaussian.sigma, math.sqrt(2.0)
    for i in range(1, 1000):
        x = i / 97.0
        once = 0.5 * (1.0 + math.erf((x - mu) / (sigma * sqrt2)))
        if once != 0.5 * (1.0 + math.erf((x - mu) / sigma / sqrt2)):
            return (sqrt2, 1.0) if gaussian.cdf(x) == once else (1.0, sqrt2)
    return (1.0, sqrt2)  # pragma: no cover - some value always tells them apart


GAUSSIAN_Z_SCALES = _gaussian_z_scales()


def kernels() -> Any:
    """``streamlab.detectors._kernels`` when numba is installed (the ``fast`` extra) and ``use_kernels``; else None.

    Imported on first use, so importing streamlab does not import numba.

    Examples
    --------
    >>> k = kernels()
    >>> k is None or callable(k.p2_update)
    True
    """
    global _kernels_module
    if not use_kernels:
        return None
    if _kernels_module is None:
        from streamlab.detectors import _kernels

        _kernels_module = _kernels if _kernels.COMPILED else False
    return _kernels_module or None


def _with_columns(frame: pd.DataFrame, columns: dict[str, Any], source: pd.Index) -> pd.DataFrame:
    """``frame`` (the step's own copy of the batch) with ``columns`` set, as ``frame[name] = values``.

    ``source`` is the batch's column index, which ``frame``'s equals (``frame``'s own is a new view
    of it at every batch, so lookups and the cache go to ``source``, whose hash table is built once).

    New columns of a plain frame are appended as blocks of a new block manager (the frame's own
    blocks shared, copy-on-write as in any shallow copy; the new arrays owned by the result), with
    the column index built once per input index: one ``insert`` per column costs about 0.1 ms on
    pandas 3 (a new string column index and its hash table each time), about as much as the whole
    scoring of a 50,000-event batch by the running-moment scorers. Arrays and Series aligned with
    ``frame`` are taken as they are (a Series keeps its dtype, e.g. ``object``, where ``[]=`` of an
    object array would infer strings). Anything else (an existing column, a scalar, a Series with
    another index, a frame subclass, a pandas without these internals) takes ``insert``/``[]=``.
    """
    n = len(frame)
    if (
        type(frame) is pd.DataFrame
        and n > 0
        and len(frame.columns) == len(source)
        and not any(name in source for name in columns)
    ):
        arrays = {name: _own_array(v, frame) for name, v in columns.items()}
        if all(v is not None and v.ndim == 1 and len(v) == n for v in arrays.values()):
            try:
                return _appended(frame, arrays, source)
            except (ImportError, AttributeError, TypeError, ValueError):  # pragma: no cover - other pandas
                pass
    for name, values in columns.items():
        _set_column(frame, name, values)
    return frame


def _appended(
    frame: pd.DataFrame, columns: dict[str, Any], source: pd.Index, *, reset: bool = False
) -> pd.DataFrame:
    """:func:`_with_columns`'s block path (pandas internals; any failure falls back to ``insert``).

    ``reset``: ``frame`` is the batch itself (not the step's copy) and the result is
    ``_appended(frame.reset_index(drop=True), columns, source)`` made in one step: the batch's blocks
    shallow-copied (copy-on-write references, as ``reset_index``'s copy takes them) under a new
    ``RangeIndex``, and its ``attrs`` deep-copied as that copy does.
    """
    from pandas._libs.internals import BlockPlacement
    from pandas.core.internals.blocks import new_block, new_block_2d
    from pandas.core.internals.managers import BlockManager

    mgr = frame._mgr
    if reset:
        # pandas 2 has no copy-on-write: there reset_index copies the data, so the output written into
        # (a user's map, a sink) does not write into the batch another step reads
        blocks = [blk.copy(deep=not PANDAS_3) for blk in mgr.blocks]
        rows: pd.Index = pd.RangeIndex(len(frame))
    else:
        blocks = list(mgr.blocks)
        rows = mgr.axes[1]
    names = tuple(columns)
    entry = _COLUMNS.get(id(source))
    if entry is None or entry[0] is not source or entry[1] != names:
        if len(_COLUMNS) > 64:
            _COLUMNS.clear()
        entry = (source, names, source.append(pd.Index(list(names))))
        _COLUMNS[id(source)] = entry
    k = len(source)
    for j, values in enumerate(columns.values()):
        at = BlockPlacement(slice(k + j, k + j + 1))
        if isinstance(values, np.ndarray):
            blocks.append(new_block_2d(values.reshape(1, -1), at))
        else:
            blocks.append(new_block(values, at, ndim=2))
    new = BlockManager(tuple(blocks), [entry[2], rows], verify_integrity=False)
    out: pd.DataFrame = pd.DataFrame._from_mgr(new, axes=new.axes)  # type: ignore[attr-defined]
    # what pandas' own operations carry over (``__finalize__``); ``frame`` is the step's copy, or
    # with ``reset`` the batch, whose attrs the copy would have deep-copied
    out.attrs = copy.deepcopy(frame.attrs) if reset and frame.attrs else frame.attrs
    out.flags.allows_duplicate_labels = frame.flags.allows_duplicate_labels  # type: ignore[attr-defined]
    return out


#: column index of the output per input column index (held, so its ``id`` cannot be reused)
_COLUMNS: dict[int, tuple[pd.Index, tuple[str, ...], pd.Index]] = {}


def _set_column(frame: pd.DataFrame, name: str, values: Any) -> None:
    """``frame[name] = values``; a new column goes in with ``insert`` at the end (the same frame).

    ``DataFrame.__setitem__`` first looks the name up in the column index, which builds that index's
    hash table: on pandas 3's string column index, about 0.1 ms per column for every batch (each
    insert makes a new index). The name's absence is checked on the batch's index instead, whose
    table is built once.
    """
    if name in frame.columns:
        frame[name] = values
    else:
        frame.insert(len(frame.columns), name, values, allow_duplicates=True)


def _own_array(values: Any, frame: pd.DataFrame) -> Any:
    """The array behind ``values`` as ``frame[name] = values`` would store it, or None when unsure."""
    if isinstance(values, (np.ndarray, pd.api.extensions.ExtensionArray)):
        return values
    if isinstance(values, pd.Series) and values.index.equals(frame.index):
        return values.array if not isinstance(values.dtype, np.dtype) else values.to_numpy()
    return None
