"""The pattern step's matcher, compiled with numba when it is installed (plain Python otherwise).

Imported on first use by :class:`streamlab.detectors._pattern.PatternOperator`, so importing
streamlab does not import numba. Everything here is integers: keys, values and event ids arrive as
codes and references, the step conditions as a boolean matrix.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from streamlab.detectors import _kernels

__all__ = ["match_release", "matcher"]


@_kernels._jit
def _copy_run(
    src: int,
    dst: int,
    key: np.ndarray,
    step: np.ndarray,
    count: np.ndarray,
    first: np.ndarray,
    ev: np.ndarray,
    val: np.ndarray,
    o_key: np.ndarray,
    o_step: np.ndarray,
    o_count: np.ndarray,
    o_first: np.ndarray,
    o_ev: np.ndarray,
    o_val: np.ndarray,
) -> None:
    o_key[dst] = key[src]
    o_step[dst] = step[src]
    o_count[dst] = count[src]
    o_first[dst] = first[src]
    for a in range(ev.shape[1]):
        o_ev[dst, a] = ev[src, a]
        for c in range(val.shape[2]):
            o_val[dst, a, c] = val[src, a, c]


@_kernels._jit
def _take(
    r: int,
    i: int,
    e_val: np.ndarray,
    e_ref: np.ndarray,
    o_step: np.ndarray,
    o_count: np.ndarray,
    o_ev: np.ndarray,
    o_val: np.ndarray,
    times: np.ndarray,
    cum: np.ndarray,
) -> None:
    """Run ``r`` takes event ``i`` at the step it waits for (a run just opened waits for step 0).

    The event's id reference and value codes go to the run's next slot; the run moves on to the
    next step once this one has taken its ``times`` events.
    """
    s = o_step[r]
    at = cum[s] + o_count[r]
    o_ev[r, at] = e_ref[i]
    for c in range(e_val.shape[1]):
        o_val[r, at, c] = e_val[i, c]
    o_count[r] += 1
    if o_count[r] == times[s]:
        o_step[r] = s + 1
        o_count[r] = 0


@_kernels._jit
def match_release(
    e_key: np.ndarray,
    e_time: np.ndarray,
    e_mask: np.ndarray,
    e_val: np.ndarray,
    e_ref: np.ndarray,
    r_key: np.ndarray,
    r_step: np.ndarray,
    r_count: np.ndarray,
    r_first: np.ndarray,
    r_ev: np.ndarray,
    r_val: np.ndarray,
    times: np.ndarray,
    cum: np.ndarray,
    differs_from: np.ndarray,
    within: int,
    max_runs: int,
    o_key: np.ndarray,
    o_step: np.ndarray,
    o_count: np.ndarray,
    o_first: np.ndarray,
    o_ev: np.ndarray,
    o_val: np.ndarray,
    m_key: np.ndarray,
    m_first: np.ndarray,
    m_last: np.ndarray,
    m_ev: np.ndarray,
    m_event: np.ndarray,
    live: np.ndarray,
) -> tuple[int, int]:
    """Advance every key's open candidates (runs) over its released events; ``Pattern``'s matching rules.

    Events come sorted by key code, in event-time order within a key (ties in arrival order), with
    their step conditions ``e_mask``, value codes ``e_val`` (-1: missing) and id references
    ``e_ref``. Runs (``r_*``) come sorted by key code, in creation order within a key: the step each
    waits for, the count taken at that step, its first event time, and the id references and value
    codes of the events it took (slot ``cum[step] + count`` is the next; -1 in unfilled slots).
    ``differs_from[s, c]`` is the earlier step whose values of column ``c`` step ``s`` must differ
    from (-1: none). The surviving runs are written to ``o_*`` (sorted by key, in creation order;
    room for ``len(r_key) + len(e_key)``), the matches to ``m_*`` (``m_event``: the completing
    event's position in the input); ``live`` is scratch of the same room. Returns the numbers of
    runs and matches written.

    A key's runs sit in rows of ``o_*``; ``live`` lists the rows still open, in creation order, so
    dropping a stale or surplus run moves one integer per open run, never a run's slots.
    """
    n = e_key.shape[0]
    n_runs = r_key.shape[0]
    n_steps = times.shape[0]
    n_cols = e_val.shape[1]
    length = o_ev.shape[1]
    i = 0
    j = 0
    w = 0
    nm = 0
    while i < n or j < n_runs:
        if j < n_runs and (i >= n or r_key[j] < e_key[i]):  # a key without events: its runs as they are
            _copy_run(
                j,
                w,
                r_key,
                r_step,
                r_count,
                r_first,
                r_ev,
                r_val,
                o_key,
                o_step,
                o_count,
                o_first,
                o_ev,
                o_val,
            )
            w += 1
            j += 1
            continue
        k = e_key[i]
        w0 = w
        n_live = 0
        while j < n_runs and r_key[j] == k:
            _copy_run(
                j,
                w,
                r_key,
                r_step,
                r_count,
                r_first,
                r_ev,
                r_val,
                o_key,
                o_step,
                o_count,
                o_first,
                o_ev,
                o_val,
            )
            live[n_live] = w
            n_live += 1
            w += 1
            j += 1
        while i < n and e_key[i] == k:
            t = e_time[i]
            horizon = t - within
            # one pass: drop the runs that opened more than ``within`` before the event, advance the others
            kept = 0
            done = -1
            for q in range(n_live):
                r = live[q]
                u = np.uint64(r)  # unsigned: no negative-index wraparound in the hot loop
                if o_first[u] < horizon:
                    continue
                live[kept] = r
                kept += 1
                s = o_step[u]
                if not e_mask[i, np.uint64(s)]:
                    continue
                ok = True
                for c in range(n_cols):
                    earlier = differs_from[s, c]
                    if earlier < 0:
                        continue
                    v = e_val[i, c]
                    if v < 0:  # a missing value differs from nothing
                        ok = False
                        break
                    for at in range(cum[earlier], cum[earlier] + times[earlier]):
                        if o_val[u, np.uint64(at), c] == v:
                            ok = False
                            break
                    if not ok:
                        break
                if ok:
                    _take(r, i, e_val, e_ref, o_step, o_count, o_ev, o_val, times, cum)
                    if o_step[r] == n_steps and done < 0:
                        done = r
            n_live = kept
            if done < 0 and e_mask[i, 0]:  # the event opens a run
                r = w
                w += 1
                o_key[r] = k
                o_step[r] = 0
                o_count[r] = 0
                o_first[r] = t
                for a in range(length):
                    o_ev[r, a] = -1
                    for c in range(n_cols):
                        o_val[r, a, c] = -1
                _take(r, i, e_val, e_ref, o_step, o_count, o_ev, o_val, times, cum)
                if o_step[r] == n_steps:
                    done = r
                else:
                    live[n_live] = r
                    n_live += 1
                    if n_live > max_runs:  # drop the key's oldest run
                        for q in range(1, n_live):
                            live[q - 1] = live[q]
                        n_live -= 1
            if done >= 0:
                m_key[nm] = k
                m_first[nm] = o_first[done]
                m_last[nm] = t
                for a in range(length):
                    m_ev[nm, a] = o_ev[done, a]
                m_event[nm] = i
                nm += 1
                n_live = 0  # matches do not overlap: the key's runs are cleared
                w = w0
            i += 1
        # the key's open runs, moved down to consecutive rows (rows only ever move down)
        for q in range(n_live):
            src = live[q]
            if src != w0 + q:
                _copy_run(
                    src,
                    w0 + q,
                    o_key,
                    o_step,
                    o_count,
                    o_first,
                    o_ev,
                    o_val,
                    o_key,
                    o_step,
                    o_count,
                    o_first,
                    o_ev,
                    o_val,
                )
        w = w0 + n_live
    return w, nm


def matcher() -> Any:
    """:func:`match_release`, compiled when numba is installed and the kernels are on, else plain Python."""
    from streamlab.detectors._common import kernels

    return match_release if kernels() is not None else _kernels.plain(match_release)
