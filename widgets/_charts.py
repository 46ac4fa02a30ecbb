"""Live charts over pipeline outputs: windows per key, anomaly scores, the latest rows."""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
import pandas as pd

from streamlab._floats import float_values
from streamlab._record import dedup_key, typed_id
from streamlab._time import NAT_NS
from streamlab.clock import Clock
from streamlab.runtime import RunHandle

from ._base import (
    LiveWidget,
    SourceLike,
    _check_columns,
    columns_of,
    plotly_times,
    require_plotly,
    times_ns,
)
from ._colours import KeyColours
from ._refresh import FrameBuffer

__all__ = ["AnomalyChart", "LiveTable", "WindowChart"]

_ALL = "all"


def window_key(value: Any) -> Any:
    """A chart key's identity: ``typed_id`` of the value as Python has it (numpy scalars as their Python
    values), the missing values (None, NaN, ``pd.NA``, NaT) as None.

    Examples
    --------
    >>> [window_key(v) for v in (1, np.int64(1), 1.0, True, "1", float("nan"), pd.NA)]
    [1, 1, ('float', 1.0), ('bool', True), '1', None, None]
    """
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    return typed_id(dedup_key(value))


# Key names a chart holds before it drops those of keys gone from its state (when most are).
_NAMES_KEPT = 1000


class WindowChart(LiveWidget):
    """Window results as one line (or stacked area) per key over window time, updated live.

    A window re-emitted later (early results, allowed lateness) replaces its earlier value. At most
    ``max_windows`` window starts and ``max_keys`` keys (largest totals first) are drawn, so each trace
    holds a fixed budget of points however fast the pipeline runs, and each redraw sends at most
    ``max_keys`` traces however many keys the run has. A key keeps its colour while it stays drawn.

    Parameters
    ----------
    source
        A running pipeline (:class:`~streamlab.RunHandle`) or a DataFrame of window results.
    ref
        Output to follow, e.g. ``"window"`` (a window step's results).
    value
        Aggregate column to plot, e.g. ``"count"``.
    key
        Key column giving one trace per key; ``None`` for a single trace.
    kind
        ``"line"`` or ``"area"`` (stacked).
    max_windows, max_keys
        Point budget per trace and trace budget.
    max_fps, clock, auto_refresh
        Redraw limit, the clock that limit is measured on, and whether display starts a refresher.

    Examples
    --------
    >>> df = pd.DataFrame({"event_type": ["a", "b", "a"], "count": [3, 1, 5],
    ...                    "window_start": pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:00",
    ...                                                    "2024-01-01 00:01"], utc=True)})
    >>> chart = WindowChart(df, value="count", key="event_type")
    >>> [(t.name, [int(v) for v in t.y]) for t in chart.figure().data]
    [('a', [3, 5]), ('b', [1])]
    """

    def __init__(
        self,
        source: SourceLike,
        ref: str = "window",
        *,
        value: str = "count",
        key: str | None = None,
        kind: str = "line",
        max_windows: int = 120,
        max_keys: int = 10,
        title: str | None = None,
        max_fps: float = 10.0,
        clock: Clock | None = None,
        auto_refresh: bool = True,
    ) -> None:
        super().__init__(max_fps=max_fps, clock=clock, auto_refresh=auto_refresh)
        if kind not in ("line", "area"):
            raise ValueError(f"WindowChart(kind={kind!r}): use 'line' or 'area'")
        if max_windows < 1 or max_keys < 1:
            raise ValueError("WindowChart: max_windows and max_keys must be at least 1")
        needed = ["window_start", value] + ([key] if key else [])
        if isinstance(source, RunHandle):
            _check_columns(source, ref, needed, "WindowChart")
        elif isinstance(source, pd.DataFrame):
            missing = [c for c in needed if c not in source.columns]
            if missing:
                raise ValueError(
                    f"WindowChart: the DataFrame has no column(s) {missing}; its columns are "
                    f"{list(source.columns)}"
                )
        self.source = source
        self.ref, self.value, self.key, self.kind = ref, value, key, kind
        self.max_windows, self.max_keys = max_windows, max_keys
        self.title = title or f"{value} per {key or 'window'}"
        # Bounded: the newest rows; at most keys x windows of them matter. All columns are kept (the
        # count bounds memory): selecting a few costs pandas more than the rest of a pull.
        self._buffer = FrameBuffer(max(10_000, 4 * max_windows * max_keys))
        # State as plain arrays, one row per (key, window), sorted by key code then window start:
        # key code, window start (int64 ns), value. Key codes index self._names.
        self._names: list[str] = []
        self._index: dict[Any, int] = {}  # key identity (window_key) -> code
        self._k = np.empty(0, dtype=np.int64)
        self._s = np.empty(0, dtype=np.int64)
        self._v = np.empty(0, dtype=np.float64)
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        self._colours: KeyColours | None = None  # made on the first draw, from the template's colourway
        self._feed(source, ref, self._buffer)

    def _codes(self, cols: dict[str, pd.Series], n: int, rows: slice | np.ndarray) -> np.ndarray:
        """The key codes (indexes into ``self._names``, which grows with new keys) of some of ``n`` rows."""
        if self.key is None:
            if not self._names:
                self._names.append(_ALL)
            return np.zeros(n, dtype=np.int64)[rows]
        # Factorize, then name only the few distinct keys (not every row).
        keys = cols[self.key].array[rows]
        if isinstance(
            keys, pd.arrays.NumpyExtensionArray
        ):  # pandas 2 warns that factorizing it is deprecated
            keys = keys.to_numpy()
        local, uniques = pd.factorize(keys, use_na_sentinel=False)
        codes = [self._code(u) for u in uniques]
        return np.array(codes, dtype=np.int64)[local] if codes else np.zeros(0, dtype=np.int64)

    def _code(self, value: Any) -> int:
        """The code of a key value: keys are told apart by value and type as window steps tell them apart
        (``1``, ``1.0``, ``True`` and ``"1"`` are four keys; None, NaN and ``pd.NA`` are the one missing
        key ``None``). A key is named by its text, or by its repr where another key has that text."""
        key = window_key(value)
        code = self._index.get(key)
        if code is None:
            name = "None" if key is None else str(value)
            taken = set(self._names)
            if name in taken:
                name = repr(value)
            while name in taken:
                name += "'"
            code = self._index[key] = len(self._names)
            self._names.append(name)
        return code

    def _pull(self) -> bool:
        frames = self._buffer.drain_frames()
        if not frames:
            return False
        # Column by column, frame by frame, into arrays: pandas' concat costs more than the rest of a
        # redraw. Only rows of the newest ``max_windows`` window starts are drawn: the others are cut
        # before their keys and values are read (a batch can close hundreds of windows).
        wanted = {"window_start", self.value, self.key or "window_start"}
        cols = [columns_of(f, wanted) for f in frames]
        starts = [times_ns(c["window_start"]) for c in cols]
        everything = np.unique(np.concatenate([self._s, *starts]))
        cut = everything[-min(self.max_windows, len(everything))]
        ks, ss, vs = [self._k], [self._s], [self._v]
        for col, start in zip(cols, starts):
            rows = np.flatnonzero(start >= cut)
            if not len(rows):
                continue
            # usually the newest rows: a slice, no copy
            sel = slice(rows[0], None) if rows[0] + len(rows) == len(start) else rows
            ks.append(self._codes(col, len(start), sel))
            ss.append(start[sel])
            vs.append(float_values(col[self.value])[sel])
        k, s, v = np.concatenate(ks), np.concatenate(ss), np.concatenate(vs)
        # A window re-emitted later (early results, lateness) replaces the earlier row: keep the last one.
        order = np.lexsort((np.arange(len(k)), s, k))
        k, s, v = k[order], s[order], v[order]
        last = np.ones(len(k), dtype=bool)
        last[:-1] = (k[1:] != k[:-1]) | (s[1:] != s[:-1])
        k, s, v = k[last], s[last], v[last]
        distinct = np.unique(s)
        if len(distinct) > self.max_windows:
            recent = s >= distinct[-self.max_windows]
            k, s, v = k[recent], s[recent], v[recent]
        self._k, self._s, self._v = self._forget_keys(k), s, v
        self._arrays = None
        return True

    def _forget_keys(self, k: np.ndarray) -> np.ndarray:
        """Drop the names of keys no longer in the state (``k``, sorted); ``k`` with its codes renumbered.

        A run over many keys (users, sessions) would otherwise hold every key it ever had. Done when
        most names are unused, so it costs little per pull; codes keep their order, so ``k`` stays sorted.
        """
        if len(self._names) <= _NAMES_KEPT:
            return k
        live = np.unique(k)
        if len(self._names) <= 2 * len(live):
            return k
        renumbered = np.full(len(self._names), -1, dtype=np.int64)
        renumbered[live] = np.arange(len(live))
        self._names = [self._names[code] for code in live]
        self._index = {
            key: int(renumbered[code]) for key, code in self._index.items() if renumbered[code] >= 0
        }
        codes: np.ndarray = renumbered[k]
        return codes

    def _drawn(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per drawn key (the ``max_keys`` largest totals), by name: window starts (ns), values, starts as plotted."""
        self._pull()
        if self._arrays is None:
            totals = np.bincount(self._k, weights=np.nan_to_num(self._v), minlength=len(self._names))
            present = np.bincount(self._k, minlength=len(self._names)) > 0
            ranked = [c for c in np.argsort(-totals, kind="stable") if present[c]][: self.max_keys]
            x = plotly_times(self._s)
            self._arrays = {}
            for code in sorted(ranked, key=lambda c: self._names[c]):
                mask = self._k == code
                self._arrays[self._names[code]] = (self._s[mask], self._v[mask], x[mask])
        return self._arrays

    def series(self) -> dict[str, pd.Series]:
        """The plotted data: one Series (index window start) per drawn key (the ``max_keys`` largest totals)."""
        return {
            name: pd.Series(v, index=pd.DatetimeIndex(pd.to_datetime(s, utc=True), name="window_start"))
            for name, (s, v, _x) in self._drawn().items()
        }

    def _init_figure(self, fig: Any) -> None:
        fig.update_layout(
            title=self.title,
            xaxis={"title": {"text": "window start"}, "type": "date"},
            yaxis_title=self.value,
            margin={"l": 50, "r": 20, "t": 50, "b": 40},
            height=320,
        )

    def _key_colours(self) -> KeyColours:
        if self._colours is None:
            template = self._parts()[1].get("template") or {}
            colorway = (template.get("layout") or {}).get("colorway")
            if not colorway:
                from plotly.colors import qualitative

                colorway = qualitative.Plotly
            self._colours = KeyColours(list(colorway), self.max_keys)
        return self._colours

    def _traces(self) -> list[dict[str, Any]]:
        # Only the drawn keys (at most ``max_keys`` traces), by name; colours are given, not left to
        # plotly's trace order, so a key keeps its colour while the set of drawn keys changes.
        drawn = self._drawn()
        colours = self._key_colours().assign(drawn)
        style: dict[str, Any] = {"type": "scatter", "mode": "lines+markers"}
        if self.kind == "area":
            style["stackgroup"] = "one"
        traces = []
        for name, (_s, v, x) in drawn.items():
            colour = colours[name]
            traces.append(
                {
                    **style,
                    "name": name,
                    "x": x,
                    "y": v,
                    "line": {"color": colour},
                    "marker": {"color": colour},
                }
            )
        return traces

    def _layout_update(self) -> dict[str, Any]:
        return {"title": {"text": f"{self.title} · {len(self._k)} windows"}}


def _check_threshold(threshold: object, who: str) -> None:
    """Refuse a threshold that is no finite number: NaN flagged nothing, text failed at the first redraw."""
    if threshold is None:
        return
    number = isinstance(threshold, (int, float, np.integer, np.floating)) and not isinstance(
        threshold, (bool, np.bool_)
    )
    if not number or not np.isfinite(float(threshold)):  # type: ignore[arg-type]
        raise ValueError(
            f"{who}(threshold={threshold!r}): give a finite number such as 0.9 (flag score >= 0.9), or None "
            "to use the flag column"
        )


class AnomalyChart(LiveWidget):
    """Anomaly scores over time with the flagged points marked; a threshold can re-flag them live.

    Works off a ``score`` column and an ``is_anomaly`` column (what streamlab's detectors emit). With
    :meth:`set_threshold`, points with ``score >= threshold`` are flagged instead, without restarting the
    pipeline (a ControlPanel slider can call it).

    Parameters
    ----------
    source
        A running pipeline or a DataFrame of scored events.
    ref
        Output with the scores.
    time, score, flag
        Column names.
    threshold
        Flag by ``score >= threshold`` instead of the ``flag`` column.
    max_points
        Most recent points kept and drawn.

    Examples
    --------
    >>> df = pd.DataFrame({"timestamp": pd.date_range("2024-01-01", periods=4, freq="s", tz="UTC"),
    ...                    "score": [0.1, 0.9, 0.2, 0.7], "is_anomaly": [False, True, False, False]})
    >>> chart = AnomalyChart(df)
    >>> chart.flagged_count()
    1
    >>> chart.set_threshold(0.5)
    >>> chart.flagged_count()
    2
    """

    def __init__(
        self,
        source: SourceLike,
        ref: str = "detect",
        *,
        time: str = "timestamp",
        score: str = "score",
        flag: str = "is_anomaly",
        threshold: float | None = None,
        max_points: int = 2000,
        title: str | None = None,
        max_fps: float = 10.0,
        clock: Clock | None = None,
        auto_refresh: bool = True,
    ) -> None:
        super().__init__(max_fps=max_fps, clock=clock, auto_refresh=auto_refresh)
        if max_points < 1:
            raise ValueError("AnomalyChart: max_points must be at least 1")
        _check_threshold(threshold, "AnomalyChart")
        needed = [time, score] + ([] if threshold is not None else [flag])
        if isinstance(source, RunHandle):
            _check_columns(source, ref, needed, "AnomalyChart")
        elif isinstance(source, pd.DataFrame):
            missing = [c for c in needed if c not in source.columns]
            if missing:
                raise ValueError(
                    f"AnomalyChart: the DataFrame has no column(s) {missing}; its columns are {list(source.columns)}"
                )
        self.source = source
        self.ref, self.time, self.score, self.flag = ref, time, score, flag
        self.threshold = threshold
        self.max_points = max_points
        self.title = title or f"{score} ({ref})"
        self._buffer = FrameBuffer(max_points)  # all columns, read by name (as WindowChart)
        # Plain arrays, newest last: event time, score, flag.
        self._x = np.empty(0, dtype=np.float64)  # event time, as plotted (epoch ms)
        self._score = np.empty(0, dtype=np.float64)
        self._flag = np.empty(0, dtype=bool)
        # (clock ns, events so far, flagged so far) at each pull over the last RATE_SPAN_NS: alerts/s
        self._counts: deque[tuple[int, int, int]] = deque()
        self._events_total = 0
        self._alerts_total = 0
        self._feed(source, ref, self._buffer)

    RATE_SPAN_NS = 5_000_000_000

    def alert_rate(self) -> tuple[float, float]:
        """Flagged events per second of ``clock`` time and the flagged share, over the last 5 s of pulls.

        What the title shows, so a reader sees a threshold move take effect (the flag column counts,
        or ``threshold`` when set).
        """
        self._pull()
        if len(self._counts) < 2:
            return 0.0, 0.0
        (t0, e0, a0), (t1, e1, a1) = self._counts[0], self._counts[-1]
        rate = (a1 - a0) / ((t1 - t0) / 1e9) if t1 > t0 else 0.0
        return rate, (a1 - a0) / (e1 - e0) if e1 > e0 else 0.0

    def set_threshold(self, threshold: float | None) -> None:
        """Flag by ``score >= threshold`` from now on (``None``: use the flag column); redraws on next refresh."""
        _check_threshold(threshold, "AnomalyChart.set_threshold")
        self.threshold = threshold
        self._dirty = True

    def _columns(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Event times (int64 ns), scores and flags of a frame, as arrays."""
        n = len(frame)
        cols = columns_of(frame, (self.time, self.score, self.flag))
        t = times_ns(cols[self.time]) if self.time in cols else np.full(n, NAT_NS, dtype=np.int64)
        if self.flag not in cols:
            flag = np.zeros(n, dtype=bool)
        elif cols[self.flag].dtype == bool:
            flag = cols[self.flag].to_numpy()
        else:
            flag = cols[self.flag].fillna(False).astype(bool).to_numpy()
        return t, float_values(cols[self.score]), flag

    def _pull(self) -> bool:
        frames = self._buffer.drain_frames()
        if not frames:
            return False
        t, score, flag = (np.concatenate(c) for c in zip(*(self._columns(f) for f in frames)))
        self._events_total += len(t)
        if self.threshold is not None:
            with np.errstate(invalid="ignore"):
                self._alerts_total += int(np.sum(score >= self.threshold))
        else:
            self._alerts_total += int(flag.sum())
        now = self.clock.now_ns()
        self._counts.append((now, self._events_total, self._alerts_total))
        while len(self._counts) > 2 and now - self._counts[1][0] >= self.RATE_SPAN_NS:
            self._counts.popleft()
        keep = self.max_points
        self._x = np.concatenate([self._x, plotly_times(t[-keep:])])[-keep:]
        self._score = np.concatenate([self._score, score])[-keep:]
        self._flag = np.concatenate([self._flag, flag])[-keep:]
        return True

    def _flags(self) -> np.ndarray:
        if self.threshold is not None:
            with np.errstate(invalid="ignore"):
                return np.asarray(self._score >= self.threshold)
        return self._flag

    def flagged_count(self) -> int:
        """How many of the drawn points are flagged."""
        self._pull()
        return int(self._flags().sum())

    def _init_figure(self, fig: Any) -> None:
        go = require_plotly()
        fig.add_trace(go.Scatter(name=self.score, mode="lines", x=[], y=[]))
        fig.add_trace(
            go.Scatter(
                name="flagged", mode="markers", marker={"color": "red", "size": 9, "symbol": "x"}, x=[], y=[]
            )
        )
        fig.update_layout(
            title=self.title, xaxis={"title": {"text": self.time}, "type": "date"}, yaxis_title=self.score,
            height=320, margin={"l": 50, "r": 20, "t": 50, "b": 40},
        )  # fmt: skip

    def _traces(self) -> list[dict[str, Any]]:
        x, y, flags = self._x, self._score, self._flags()
        return [{"x": x, "y": y}, {"x": x[flags], "y": y[flags]}]

    def _layout_update(self) -> dict[str, Any]:
        shapes = []
        if self.threshold is not None:
            shapes.append(
                {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": self.threshold, "y1": self.threshold,
                 "line": {"color": "red", "dash": "dash"}}
            )  # fmt: skip
        thr = "" if self.threshold is None else f" · threshold {self.threshold:g}"
        rate, share = self.alert_rate()
        live = f" · {rate:.1f} alerts/s ({share:.1%})" if len(self._counts) >= 2 else ""
        flagged = int(self._flags().sum())
        return {"shapes": shapes, "title": {"text": f"{self.title} · {flagged} flagged{thr}{live}"}}


class LiveTable(LiveWidget):
    """The latest rows of an output as a table.

    Parameters
    ----------
    source
        A running pipeline or a DataFrame.
    ref
        Output to follow.
    rows
        How many of the newest rows to show.
    columns
        Columns to show (all by default).

    Examples
    --------
    >>> table = LiveTable(pd.DataFrame({"x": range(30)}), rows=3)
    >>> table.frame()["x"].tolist()
    [27, 28, 29]
    """

    def __init__(
        self,
        source: SourceLike,
        ref: str = "window",
        *,
        rows: int = 15,
        columns: list[str] | None = None,
        title: str | None = None,
        max_fps: float = 10.0,
        clock: Clock | None = None,
        auto_refresh: bool = True,
    ) -> None:
        super().__init__(max_fps=max_fps, clock=clock, auto_refresh=auto_refresh)
        if isinstance(rows, bool) or not isinstance(rows, (int, np.integer)) or rows < 1:
            raise ValueError(
                f"LiveTable(rows={rows!r}): show at least one row, e.g. rows=15 (a whole number)"
            )
        if isinstance(columns, str):  # one name, not its letters (which showed an empty table)
            columns = [columns]
        if columns and isinstance(source, RunHandle):
            _check_columns(source, ref, list(columns), "LiveTable")
        elif columns and isinstance(source, pd.DataFrame):
            missing = [c for c in columns if c not in source.columns]
            if missing:  # they were left out of the table, which showed no column at all
                raise ValueError(
                    f"LiveTable: the DataFrame has no column(s) {missing}; its columns are "
                    f"{list(source.columns)}. Pick some of those, or columns=None for all"
                )
        self.source, self.ref, self.rows, self.columns = source, ref, rows, columns
        self.title = title or f"latest {ref}"
        self._buffer = FrameBuffer(rows, columns=list(columns) if columns else None)
        self._state = pd.DataFrame()
        self._feed(source, ref, self._buffer)

    def _pull(self) -> bool:
        new = self._buffer.drain()
        if new is None:
            return False
        state = pd.concat([self._state, new], ignore_index=True) if len(self._state) else new
        self._state = state.iloc[-self.rows :].reset_index(drop=True)
        return True

    def frame(self) -> pd.DataFrame:
        """The rows shown, oldest first."""
        self._pull()
        return self._state

    def _init_figure(self, fig: Any) -> None:
        go = require_plotly()
        fig.add_trace(go.Table(header={"values": []}, cells={"values": []}))
        fig.update_layout(
            title=self.title, height=60 + 24 * (self.rows + 1), margin={"l": 10, "r": 10, "t": 40, "b": 10}
        )

    def _traces(self) -> list[dict[str, Any]]:
        df = self._state
        return [
            {
                "header": {"values": [str(c) for c in df.columns]},
                "cells": {"values": [_cell_text(df[c]) for c in df.columns]},
            }
        ]


def _cell_text(col: pd.Series) -> list[str]:
    """A table column as the text of its cells; a missing value (None, NaN, ``pd.NA``, NaT) is ``""``.

    Missing values are found first: pandas 3 keeps them as float NaN in ``astype(str)``, which the view
    could not send as JSON.

    Examples
    --------
    >>> _cell_text(pd.Series([1, None], dtype="Int64")), _cell_text(pd.Series([0.5, np.nan, np.inf]))
    (['1', ''], ['0.5', '', 'inf'])
    """
    texts: list[str]
    if pd.api.types.is_float_dtype(col):
        texts = [f"{v:.4g}" for v in col.to_numpy(dtype=np.float64, na_value=np.nan)]
    elif isinstance(col.dtype, pd.DatetimeTZDtype):
        texts = col.dt.strftime("%H:%M:%S").tolist()
    else:
        try:
            texts = col.astype(str).tolist()
        except UnicodeEncodeError:  # a lone surrogate, which pandas' Arrow-backed text cannot hold
            texts = [str(v) for v in col.tolist()]
    return ["" if missing else text for text, missing in zip(texts, col.isna().to_numpy())]
