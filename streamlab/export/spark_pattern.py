"""Pattern steps in the Spark export: streamlab's pattern rule per key in ``applyInPandasWithState``.

The generated job groups the pattern's input by its key and keeps, per key in Spark's group state, the
events not yet matched (released once Spark's watermark passes them, in event-time order) and the
open candidates. The matching is :func:`advance`, a copy of streamlab's rule
(``streamlab.detectors.Pattern``) over plain lists, carried into the generated module; conditions are
evaluated with pandas ``eval`` on each group's rows, as streamlab evaluates them on a batch.

Spark's watermark trails streamlab's (it moves once per micro-batch), so it releases events later but
in the same order; the matches are streamlab's unless a row is late (Spark drops it, streamlab reports
it on ``late``).

Examples
--------
>>> steps = [("a", 1, {}), ("b", 1, {})]
>>> runs, match = advance(steps, 60, [], 0, (True, False), "e1", {})
>>> runs, match = advance(steps, 60, runs, 30, (False, True), "e2", {})
>>> runs, match
([], (0, 30, ['e1', 'e2']))
"""

from __future__ import annotations

import inspect
from typing import Any

__all__ = ["advance", "rule_source"]


def advance(
    steps: list[Any], within_ns: int, runs: list[Any], t: int, mask: Any, eid: Any, vals: dict[str, Any]
) -> tuple[list[Any], Any]:
    """One event of a key, in event-time order: (the key's open candidates after it, the match or None).

    ``steps`` holds ``(name, times, differs_from)``; a candidate is ``[step, count, first_ns,
    event_ids, values]``; a match is ``(first_ns, t, event_ids)``. streamlab's rule: the event
    advances every open candidate whose current step it satisfies (``differs_from``: its value must
    differ from every value the earlier step took; a missing value differs from nothing); when none
    completes and it satisfies the first step it opens a candidate; the earliest-opened complete
    candidate is the match and clears the key's candidates; candidates older than ``within_ns`` are
    dropped.
    """
    runs = [r for r in runs if r[2] >= t - within_ns]
    missing = {c for c, v in vals.items() if v is None or v != v}
    done = None
    for run in runs:
        name, times, differs = steps[run[0]]
        if not mask[run[0]]:
            continue
        if differs and any(
            c in missing or vals[c] in run[4].get(e, {}).get(c, ()) for c, e in differs.items()
        ):
            continue
        take(run, name, times, eid, vals)
        if run[0] == len(steps) and done is None:
            done = run
    if done is None and mask[0]:
        run = [0, 0, t, [], {}]
        take(run, steps[0][0], steps[0][1], eid, vals)
        if run[0] == len(steps):
            done = run
        else:
            runs.append(run)
            if len(runs) > 1000:  # streamlab's MAX_RUNS_PER_KEY
                del runs[0]
    if done is not None:
        return [], (done[2], t, done[3])
    return runs, None


def take(run: list[Any], name: str, times: int, eid: Any, vals: dict[str, Any]) -> None:
    """A candidate takes the event for its current step (and moves on once the step has ``times``)."""
    run[3].append(eid)
    if vals:
        per_step = run[4].setdefault(name, {})
        for c, v in vals.items():
            per_step.setdefault(c, []).append(v)
    run[1] += 1
    if run[1] == times:
        run[0] += 1
        run[1] = 0


def rule_source() -> str:
    """The code of :func:`advance` and :func:`take`, as the generated module carries them.

    Examples
    --------
    >>> rule_source().startswith("def advance(")
    True
    """
    return "\n\n\n".join(inspect.getsource(f) for f in (advance, take))
