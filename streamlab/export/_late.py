"""What an engine that drops late rows (instead of reporting them) must still equal in streamlab's run."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from streamlab.pipeline import Pipeline
from streamlab.steps import WindowStep
from streamlab.windows import SessionWindow


def leave_out_late_windows(
    pipeline: Pipeline,
    local: dict[str, Any],
    exported: dict[str, Any],
    engine: str,
    steps: Collection[str] | None = None,
) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """Both runs' outputs without the windows streamlab got late rows for, and notes naming them.

    An engine whose watermark trails streamlab's per-event one (Flink's periodic watermark, Spark's
    per-micro-batch one) never drops a row streamlab keeps, but may still count a row streamlab
    reports late. So a tumbling or sliding window that got no late row in streamlab must be equal;
    windows that got late rows (by key and start) are left out on both sides. Session windows and
    joins with late rows can merge or pair differently, so such outputs are not compared at all.
    ``steps``, when given, limits this to those steps (the others are compared whole).

    Examples
    --------
    >>> import pandas as pd
    >>> from streamlab import Pipeline, SessionWindow, agg
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b"{}"]))
    >>> _ = p.parse().window(SessionWindow("1m"), key="user_id").agg(agg.count())
    >>> local = {"window": pd.DataFrame({"count": [1]}), "window.late": pd.DataFrame({"user_id": ["u"]})}
    >>> kept, theirs, notes = leave_out_late_windows(p, local, {"window": pd.DataFrame({"count": [2]})}, "Spark")
    >>> len(kept["window"]), len(theirs["window"]), notes
    (0, 0, ['window: not compared: streamlab reported 1 late rows, which Spark may pair or merge'])
    """
    import pandas as pd

    from streamlab._time import to_utc_ns

    local, exported = dict(local), dict(exported)
    notes = []
    for sid, step in pipeline.steps.items():
        if steps is not None and sid not in steps:
            continue
        late = local.get(f"{sid}.late")
        if late is None or len(late) == 0:
            continue
        if isinstance(step, WindowStep) and not isinstance(step.window, SessionWindow):
            cols = [*step.keys, "window_start"]

            def keys(frame: pd.DataFrame, names: tuple[str, ...] = step.keys) -> list[str]:
                if frame is None or len(frame) == 0:
                    return []
                parts = [frame[c].astype(str) for c in names]
                parts.append(pd.Series(to_utc_ns(frame["window_start"]), index=frame.index).astype(str))
                return ["|".join(x) for x in zip(*parts)] if parts else []

            hit = set(keys(late[cols]))
            for side in (local, exported):
                frame = side.get(sid)
                if frame is not None and len(frame):
                    side[sid] = frame[[k not in hit for k in keys(frame)]].reset_index(drop=True)
            notes.append(
                f"{sid}: {len(hit)} window(s) with late rows in streamlab left out "
                f"({engine} may still count their late rows)"
            )
        else:
            local[sid], exported[sid] = pd.DataFrame(), pd.DataFrame()
            notes.append(
                f"{sid}: not compared: streamlab reported {len(late)} late rows, which {engine} may pair or merge"
            )
    return local, exported, notes
