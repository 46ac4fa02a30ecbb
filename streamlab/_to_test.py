"""Turn a run into a regression test: sample its input, replay the sample, write a pytest module.

The runtime keeps the first rows each source delivered, with their arrival times (:class:`InputTape`).
``to_test`` replays that input once with a row id attached, sees where every row went (which window and
key, late, dead letter, duplicate), and picks a small sample that covers every output: whole windows of
a few keys around the late event closest to being on time, some dead letters, some duplicates with
their first occurrence, and an on-time event a zero delay would make late. A window's result depends on
the events before it, so the sample keeps arrival order and adds, for each partition, the events that
set the running maximum event time (the watermark) before each sampled event: the watermark at every
sampled event's arrival is the one the run saw. The expected outputs are those of the sample itself,
replayed with :func:`streamlab.testing.run_sample`, which is exactly what the written test runs.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import json
import math
import os
import pprint
import textwrap
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from streamlab._time import format_duration, parse_duration, to_utc_ns

if TYPE_CHECKING:
    from streamlab.pipeline import Pipeline

__all__ = ["InputTape", "WrittenTest", "choose_sample", "mutations", "sample_spec", "write_test"]

ROW = "__sl_row"
_PLACEHOLDER = "streamlab-sample://"


# -- the input tape ------------------------------------------------------------------------------------
@dataclass
class InputTape:
    """The first ``max_rows`` rows each source delivered, with the processing time they arrived at.

    Recording also stops once the rows held reach ``max_bytes`` (64 MiB by default), so a stream of
    large records keeps its memory bounded; ``to_test`` then samples from what was kept.
    """

    max_rows: int = 200_000
    batches: list[tuple[str, int, pd.DataFrame]] = field(default_factory=list)
    rows: int = 0
    truncated: bool = False
    partitions: dict[str, list[Any]] = field(default_factory=dict)
    max_bytes: int = 64 * 2**20
    bytes: int = 0

    @classmethod
    def attach(cls, executor: Any, max_rows: int = 200_000) -> InputTape:
        """Record every batch the executor's sources deliver (a subscriber on each source's stream)."""
        from streamlab.steps import SourceStep

        tape = cls(max_rows)
        for sid, step in executor.pipeline.steps.items():
            if isinstance(step, SourceStep):
                executor.subscribers.setdefault(sid, []).append(tape._recorder(sid, executor))
        return tape

    def _recorder(self, sid: str, executor: Any) -> Any:
        # the executor holds this recorder: a weak reference keeps the two out of a reference cycle, so a
        # run's parts (and the source's block memory its batches hold) go as soon as the run is dropped
        owner = weakref.ref(executor)

        def record(frame: pd.DataFrame) -> None:
            executor = owner()
            if executor is None:
                return
            parts = executor.assigned.get(sid)  # what the reader was assigned (held the watermark back)
            if parts is not None:
                self.partitions[sid] = list(parts)
            if self.rows >= self.max_rows or self.bytes >= self.max_bytes:
                self.truncated = True
                return
            take = frame.iloc[
                : self.max_rows - self.rows
            ].copy()  # a copy: the source's batch is not kept alive
            self.truncated |= len(take) < len(frame)
            self.batches.append((sid, executor.clock.now_ns(), take))
            self.rows += len(take)
            self.bytes += int(take.memory_usage(index=False, deep=True).sum())

        return record

    def copy(self) -> InputTape:
        return InputTape(
            self.max_rows,
            list(self.batches),
            self.rows,
            self.truncated,
            dict(self.partitions),
            self.max_bytes,
            self.bytes,
        )

    def frames(self) -> dict[str, tuple[pd.DataFrame, np.ndarray]]:
        """Per source: its rows in arrival order and each row's arrival time (ns)."""
        out: dict[str, tuple[pd.DataFrame, np.ndarray]] = {}
        by_sid: dict[str, list[tuple[int, pd.DataFrame]]] = {}
        for sid, at, frame in self.batches:
            by_sid.setdefault(sid, []).append((at, frame))
        for sid, items in by_sid.items():
            frame = pd.concat([f for _, f in items], ignore_index=True)
            arrival = np.concatenate([np.full(len(f), at, dtype=np.int64) for at, f in items])
            out[sid] = (frame, arrival)
        return out


# -- literal encoding of frames ------------------------------------------------------------------------
def _plain(v: Any) -> Any:
    if v is None or v is pd.NaT or v is pd.NA:
        return None
    if isinstance(v, float) and v != v:
        return None
    if isinstance(v, np.generic):
        return _plain(v.item())
    if isinstance(v, (pd.Timestamp, _dt.datetime)):
        return pd.Timestamp(v)
    if isinstance(v, float) and math.isinf(v):
        return v
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_plain(x) for x in v]
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    return v


def encode_frame(frame: pd.DataFrame, arrival: np.ndarray | None = None, **extra: Any) -> dict[str, Any]:
    """A frame as plain Python data (a literal a test module can hold); :func:`decode_frame` inverts it.

    Examples
    --------
    >>> enc = encode_frame(pd.DataFrame({"x": [1, 2], "t": pd.to_datetime([0, 1], utc=True)}))
    >>> decode_frame(enc).equals(pd.DataFrame({"x": [1, 2], "t": pd.to_datetime([0, 1], utc=True)}))
    True
    """
    out: dict[str, Any] = {
        "columns": {str(c): [_plain(v) for v in frame[c].tolist()] for c in frame.columns},
        "dtypes": {str(c): str(frame[c].dtype) for c in frame.columns},
    }
    if arrival is not None:
        out["arrival_ns"] = [int(a) for a in arrival]
    out.update(extra)
    return out


def decode_frame(data: dict[str, Any]) -> pd.DataFrame:
    """The frame :func:`encode_frame` described, with its dtypes."""
    cols: dict[str, Any] = {}
    for name, values in data["columns"].items():
        dtype = data["dtypes"].get(name, "object")
        if dtype.startswith("datetime64"):
            s = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
            cols[name] = s.astype(dtype) if "UTC" in dtype else s
        elif dtype == "category":
            cols[name] = pd.Series(values, dtype=object).astype("category")
        elif dtype in ("int64", "float64", "bool", "int32", "float32"):
            cols[name] = pd.Series(values, dtype=dtype)
        else:
            cols[name] = pd.Series(values, dtype=object)
    return pd.DataFrame(cols)


# -- the spec of the pipeline under test ---------------------------------------------------------------------
def sample_spec(pipeline: Pipeline) -> dict[str, Any]:
    """The pipeline's spec with each source standing for the sampled input and without sinks.

    Outputs that went to a sink are collected instead, so the test compares them too.
    """
    from streamlab.spec import _PlaceholderSource, pipeline_to_dict
    from streamlab.steps import SinkStep, SourceStep

    shadow = copy.copy(pipeline)
    shadow.steps = {
        sid: dataclasses.replace(
            step, source=_PlaceholderSource({"kind": "replay", "path": _PLACEHOLDER + sid})
        )
        if isinstance(step, SourceStep)
        else step
        for sid, step in pipeline.steps.items()
        if not isinstance(step, SinkStep)
    }
    spec = pipeline_to_dict(shadow)
    spec["streaming"]["sinks"] = []
    return spec


def _window_entry(spec: dict[str, Any]) -> dict[str, Any] | None:
    return next((e for e in spec["streaming"]["processing"] if e["kind"] == "window"), None)


def _window_size_ns(entry: dict[str, Any]) -> int:
    w = entry["window"]
    return parse_duration(w.get("size") or w.get("gap") or "1m")


# -- the mutation set ----------------------------------------------------------------------------------
_SWAP = {"sum": "mean", "mean": "sum", "min": "max", "max": "min", "first": "last", "last": "first"}


def mutations(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The fixed mutation set a generated test must catch: window size, delay, key, aggregator, dedup ttl.

    Window size doubles; a delay becomes zero (or one window size when it was zero); the last key is
    dropped; each aggregator computes something else under the same name (sum and mean, min and max,
    first and last swap, a count becomes the number of distinct keys); a dedup ttl becomes 1 ms.
    Mutations that do not apply (a window without a key, a pipeline without dedup) are left out.

    Examples
    --------
    >>> spec = {"streaming": {"processing": [{"kind": "window", "window": {"kind": "tumbling", "size": "1m"},
    ...     "key": ["k"], "delay": "5s", "aggregate": [{"kind": "count", "name": "count"}]}]}}
    >>> sorted(mutations(spec))
    ['aggregator', 'delay', 'key', 'window size']
    >>> mutations(spec)["delay"]["streaming"]["processing"][0]["delay"]
    '0s'
    """
    out: dict[str, dict[str, Any]] = {}

    def variant(name: str, change: Any) -> None:
        new = copy.deepcopy(spec)
        if change(new["streaming"]["processing"]) is not False:
            out[name] = new

    def find(steps: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
        return next((e for e in steps if e["kind"] == kind), None)

    def size(steps: list[dict[str, Any]]) -> Any:
        w = find(steps, "window")
        if w is None:
            return False
        key = "size" if "size" in w["window"] else "gap"
        w["window"][key] = format_duration(2 * parse_duration(w["window"][key]))
        if "every" in w["window"]:
            w["window"]["every"] = format_duration(2 * parse_duration(w["window"]["every"]))
        return True

    def delay(steps: list[dict[str, Any]]) -> Any:
        w = find(steps, "window")
        if w is None:
            return False
        d = parse_duration(w.get("delay") or 0)
        w["delay"] = "0s" if d else format_duration(_window_size_ns(w))
        return True

    def key(steps: list[dict[str, Any]]) -> Any:
        w = find(steps, "window")
        if w is None or not w.get("key"):
            return False
        w["key"] = list(w["key"][:-1])
        return True

    def aggregator(steps: list[dict[str, Any]]) -> Any:
        w = find(steps, "window")
        if w is None:
            return False
        keys = w.get("key") or [w.get("time", "timestamp")]
        new = []
        for a in w["aggregate"]:
            a = dict(a)
            if a["kind"] in _SWAP:
                a["kind"] = _SWAP[a["kind"]]
            elif a["kind"] == "count":
                a = {"kind": "count_distinct", "column": keys[0], "name": a["name"]}
            elif a["kind"] == "count_distinct":
                a = {"kind": "count", "name": a["name"]}
            new.append(a)
        w["aggregate"] = new
        return True

    def ttl(steps: list[dict[str, Any]]) -> Any:
        d = find(steps, "dedup")
        if d is None:
            return False
        d["ttl"] = "1ms"
        return True

    for name, change in (
        ("window size", size),
        ("delay", delay),
        ("key", key),
        ("aggregator", aggregator),
        ("dedup ttl", ttl),
    ):
        variant(name, change)
    return out


# -- choosing the sample ---------------------------------------------------------------------------------
@dataclass
class WrittenTest:
    """What ``to_test`` wrote: the module's path, the sampled rows per source, and the outputs covered."""

    path: Path
    inputs: dict[str, dict[str, Any]]
    expected: dict[str, dict[str, Any]]
    spec: dict[str, Any]
    exact: dict[str, Any] = field(default_factory=dict)

    @property
    def coverage(self) -> dict[str, int]:
        return {ref: len(next(iter(d["columns"].values()), [])) for ref, d in self.expected.items()}

    def __repr__(self) -> str:
        n = sum(len(d.get("arrival_ns", [])) for d in self.inputs.values())
        return f"WrittenTest({str(self.path)!r}, input_rows={n}, outputs={self.coverage})"


def _trace(spec: dict[str, Any], full: dict[str, dict[str, Any]], refs: list[str]) -> dict[str, pd.DataFrame]:
    """Replay the tagged input and gather the frames on ``refs`` (and every collected output)."""
    from streamlab.testing import _sample_pipeline

    pipeline, clock = _sample_pipeline(spec, full)
    seen: dict[str, list[pd.DataFrame]] = {r: [] for r in refs}
    handle = pipeline.start(clock=clock, paused=True, max_collect_rows=None)
    for r in refs:
        handle.subscribe(r, seen[r].append)
    handle.resume()
    result = handle.wait(timeout=600)
    if result is None:
        handle.stop()
        raise TimeoutError("to_test: replaying the run's input took longer than 10 minutes")
    out = {r: pd.concat(f, ignore_index=True) if f else pd.DataFrame() for r, f in seen.items()}
    for r, f in result.outputs.items():
        out.setdefault(r, f)
    return out


def _carriers(chosen: np.ndarray, order: np.ndarray, ts: np.ndarray, parts: np.ndarray) -> set[int]:
    """Rows holding each partition's running maximum event time when each chosen row arrives.

    ``order`` are the rows (ids) reaching the window in arrival order, with their times and partitions.
    """
    keep: set[int] = set()
    pos_of = {int(r): i for i, r in enumerate(order)}
    at = np.array(sorted(pos_of[int(r)] for r in chosen if int(r) in pos_of), dtype=np.int64)
    if not len(at):
        return keep
    for code in np.unique(parts):
        mine = np.flatnonzero(parts == code)
        t = ts[mine]
        arg = np.zeros(len(t), dtype=np.int64)
        best = 0
        for i in range(len(t)):  # index of the running maximum (first holder) up to each row
            if t[i] > t[best]:
                best = i
            arg[i] = best
        j = np.searchsorted(mine, at, side="right") - 1
        ok = j >= 0
        keep.update(int(order[mine[arg[k]]]) for k in j[ok])
    return keep


def choose_sample(
    spec: dict[str, Any],
    full: dict[str, dict[str, Any]],
    *,
    keys: int = 3,
    max_rows: int = 1_000,
    exact: dict[str, Any] | None = None,
) -> set[int]:
    """Row ids (``__sl_row``) of a sample covering windows, keys, late events, dead letters, duplicates.

    ``exact``, when given, receives the windows whose results equal the run's (every event of those
    keys and windows is in the sample, and the watermark at each one's arrival is the run's): the window
    step's key columns and values, and the time span.
    """
    win = _window_entry(spec)
    dedup = next((e for e in spec["streaming"]["processing"] if e["kind"] == "dedup"), None)
    refs = [win["input"]] if win else []
    if dedup is not None:
        refs.append(dedup["input"])
    traced = _trace(spec, full, refs)
    rng_rows: set[int] = set()
    # dead letters of every step: a few, with distinct reasons
    for ref, frame in traced.items():
        if ref.endswith(".dead_letter") and ROW in frame.columns and len(frame):
            picks = frame.drop_duplicates("reason") if "reason" in frame.columns else frame
            rng_rows.update(int(r) for r in picks[ROW].head(3))
    if win is None:
        all_rows = sorted(int(r) for d in full.values() for r in d["frame"][ROW].tolist())
        return set(all_rows[:max_rows]) | rng_rows
    inp = traced.get(win["input"], pd.DataFrame())
    if not len(inp) or ROW not in inp.columns:
        all_rows = sorted(int(r) for d in full.values() for r in d["frame"][ROW].tolist())
        return set(all_rows[:max_rows]) | rng_rows
    key_cols = list(win.get("key") or [])
    size = _window_size_ns(win)
    lateness = parse_duration(win.get("lateness") or 0)
    ts = to_utc_ns(inp[win["time"]])
    kcode = (
        pd.MultiIndex.from_frame(inp[key_cols].astype(str)).factorize()[0]
        if key_cols
        else np.zeros(len(inp), dtype=np.int64)
    )
    by = [c for c in (win.get("watermark_by") or []) if c in inp.columns]
    pcode = (
        pd.MultiIndex.from_frame(inp[by].astype(str)).factorize()[0]
        if by
        else np.zeros(len(inp), dtype=np.int64)
    )
    rows = inp[ROW].to_numpy().astype(np.int64)
    late = traced.get(f"{win['step_id']}.late", pd.DataFrame())
    late_rows = set(late[ROW].astype(int)) if ROW in late.columns else set()
    # the anchor: the late event closest to being on time, else the busiest window
    if len(late_rows):
        margin = to_utc_ns(late["watermark"]) - to_utc_ns(late["window_end"]) - lateness
        anchor_row = int(late[ROW].to_numpy()[int(np.argmin(margin))])
        a = int(np.flatnonzero(rows == anchor_row)[0])
    else:
        starts = np.floor_divide(ts, size)
        windows, counts = np.unique(starts, return_counts=True)  # sorted: the earliest busiest wins ties
        a = int(np.flatnonzero(starts == windows[np.argmax(counts)])[0])
    t0 = (int(ts[a]) // size) * size
    span = (t0 - 3 * size, t0 + 2 * size)
    data_lo = (int(ts.min()) // size) * size
    if span[0] < data_lo:  # the anchor is near the start: take the windows after it instead
        span = (data_lo, max(span[1], data_lo + 5 * size))
    in_span = (ts >= span[0]) & (ts < span[1])

    def pick(lo: int, hi: int, ks: list[int]) -> np.ndarray:
        return (ts >= lo) & (ts < hi) & np.isin(kcode, ks)

    # keys: the anchor's, then those present in the most windows of the span, the quietest first
    per_key = pd.DataFrame({"k": kcode[in_span], "w": np.floor_divide(ts[in_span], size)})
    stats = per_key.groupby("k").agg(windows=("w", "nunique"), events=("w", "size"))
    stats = stats.drop(index=int(kcode[a]), errors="ignore")
    stats = stats.sort_values(["windows", "events"], ascending=[False, True])
    chosen_keys = [int(kcode[a]), *[int(k) for k in stats.index[: keys - 1]]]
    chosen = pick(*span, chosen_keys)
    if chosen.sum() > max_rows:  # too many: fewer windows first, then fewer keys
        span = (t0 - size, t0 + size)
        chosen = pick(*span, chosen_keys)
    while chosen.sum() > max_rows and len(chosen_keys) > 1:
        chosen_keys.pop()
        chosen = pick(*span, chosen_keys)
    picked = set(rows[chosen].tolist())
    if exact is not None and win.get("window", {}).get("kind") == "tumbling":
        first_of = {int(k): int(np.flatnonzero(kcode == k)[0]) for k in chosen_keys}
        exact.update(
            key_columns=key_cols,
            keys=[[_plain(inp[c].iloc[first_of[k]]) for c in key_cols] for k in chosen_keys],
            start=pd.Timestamp(span[0], tz="UTC"),
            end=pd.Timestamp(span[1], tz="UTC"),
        )
    # an on-time event that a zero delay would have made late (catches a changed delay)
    delay = parse_duration(win.get("delay") or 0)
    if delay:
        close = (np.floor_divide(ts, size) + 1) * size + lateness
        runmax = np.maximum.accumulate(ts)
        sensitive = np.flatnonzero((close <= runmax) & ~np.isin(rows, list(late_rows)))
        if len(sensitive):
            prefer = [i for i in sensitive if chosen[i]] or list(sensitive)
            picked.add(int(rows[prefer[0]]))
    # duplicates: a few, each with its first occurrence (and those of sampled rows that were dropped)
    if dedup is not None:
        d_in = traced.get(dedup["input"], pd.DataFrame())
        dups = traced.get(f"{dedup['step_id']}.duplicates", pd.DataFrame())
        if ROW in d_in.columns and ROW in dups.columns and len(dups):
            first = d_in.drop_duplicates(dedup["id"], keep="first").set_index(dedup["id"])[ROW]
            dup_rows = dups[[ROW, dedup["id"]]]
            mine = dup_rows[dup_rows[ROW].isin(picked)]
            extra = dup_rows[~dup_rows[ROW].isin(picked)].head(3)
            for r, i in pd.concat([mine, extra]).itertuples(index=False):
                picked.add(int(r))
                if i in first.index:
                    picked.add(int(first[i]))
    picked |= _carriers(np.array(sorted(picked)), rows, ts, pcode)
    return picked | rng_rows


def _tagged_inputs(tape: InputTape) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    base = 0
    for sid, (frame, arrival) in tape.frames().items():
        tagged = frame.assign(**{ROW: np.arange(base, base + len(frame))})
        base += len(frame)
        parts = tape.partitions.get(sid)
        out[sid] = {"frame": tagged, "arrival_ns": arrival, "partitions": parts}
    return out


def _encode_inputs(inputs: dict[str, dict[str, Any]], rows: set[int] | None) -> dict[str, dict[str, Any]]:
    out = {}
    for sid, d in inputs.items():
        frame, arrival = d["frame"], d["arrival_ns"]
        if rows is not None:
            keep = frame[ROW].isin(rows).to_numpy()
            frame, arrival = frame[keep].drop(columns=[ROW]).reset_index(drop=True), arrival[keep]
        out[sid] = encode_frame(frame, arrival, partitions=_plain(d["partitions"]))
    return out


_MODULE = '''"""Regression test written by streamlab's to_test() for pipeline {name!r}.

{summary}
"""

from pandas import Timestamp  # noqa: F401  (used by the literals below)

from streamlab.testing import assert_outputs_equal, run_sample

SPEC = {spec}

INPUTS = {inputs}

EXPECTED = {expected}


def test_{fname}_reproduces_its_outputs():
    assert_outputs_equal(run_sample(SPEC, INPUTS), EXPECTED)
'''


def write_test(
    pipeline: Pipeline | None,
    tape: InputTape | None,
    path: str | os.PathLike[str],
    *,
    keys: int = 3,
    max_rows: int = 1_000,
) -> WrittenTest:
    """Write a pytest module replaying a sample of ``tape`` through ``pipeline``; see the module docstring.

    Parameters
    ----------
    keys
        How many keys of the window step to sample (whole windows of each, around a late event).
    max_rows
        Rough bound on the sampled rows (fewer keys and windows are taken above it).
    """
    from streamlab.testing import run_sample

    if pipeline is None or tape is None or not tape.batches:
        raise ValueError(
            "to_test: this result has no recorded input; call to_test() on the result of run() or on a "
            "handle from start() after it has read some events"
        )
    spec = sample_spec(pipeline)
    full = _tagged_inputs(tape)
    exact: dict[str, Any] = {}
    rows = choose_sample(spec, full, keys=keys, max_rows=max_rows, exact=exact)
    inputs = _encode_inputs(full, rows)
    expected = {ref: encode_frame(f) for ref, f in run_sample(spec, inputs).items()}
    coverage = ", ".join(
        f"{len(next(iter(d['columns'].values()), []))} rows on {ref!r}" for ref, d in expected.items()
    )
    fname = "".join(c if c.isalnum() else "_" for c in pipeline.name).strip("_") or "pipeline"
    n_in = sum(len(d["arrival_ns"]) for d in inputs.values())
    n_run = f"{tape.rows:,}" + (" (the first rows)" if tape.truncated else "")
    summary = (
        f"Input: {n_in} rows sampled from the {n_run} the run read, in their arrival order and with their "
        f"arrival times; they give {coverage or 'no output'}."
    )
    if exact.get("keys"):
        keys_text = ", ".join("/".join(map(str, k)) for k in exact["keys"])
        summary += (
            f" The windows of {keys_text} from {exact['start']} to {exact['end']} hold every event the run "
            "had in them, so their results are the run's."
        )
    summary += (
        " The expected outputs are what the pipeline gave on this input; edit SPEC to see what a change "
        "does. No broker is needed: streamlab.testing replays the rows on a manual clock."
    )
    text = _MODULE.format(
        name=pipeline.name,
        summary=textwrap.fill(summary, width=105),
        spec=pprint.pformat(spec, width=110, sort_dicts=False),
        inputs=pprint.pformat(inputs, width=110, sort_dicts=False),
        expected=pprint.pformat(expected, width=110, sort_dicts=False),
        fname=fname,
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return WrittenTest(out, inputs, expected, spec, exact)


def canonical_rows(frame: pd.DataFrame) -> list[tuple[Any, ...]]:
    """Rows as comparable tuples (times as ns, floats rounded, missing as None), sorted."""
    cols = sorted(frame.columns)
    out = []
    for rec in frame[cols].itertuples(index=False):
        row = []
        for v in rec:
            v = _plain(v)
            if isinstance(v, pd.Timestamp):
                v = ("t", int(v.value))
            elif isinstance(v, float):
                v = round(v, 9)
            elif isinstance(v, (dict, list)):
                v = json.dumps(v, sort_keys=True, default=str)
            row.append(v)
        out.append(tuple(row))
    return sorted(out, key=repr)
