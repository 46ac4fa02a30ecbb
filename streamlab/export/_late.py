"""What an engine that drops late rows (instead of reporting them) must still equal in streamlab's run."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from streamlab.pipeline import Pipeline
from streamlab.steps import WindowStep
from streamlab.windows import SessionWindow

if TYPE_CHECKING:
    import pandas as pd


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
    windows that got late rows (by key and start) are left out on both sides. A late row counted by the
    engine can merge only sessions of its own key: the sessions of keys that got late rows are left
    out (all of them for sessions without keys). Joins with late rows can pair differently, so such
    outputs are not compared at all: their notes start with ``"<step>: not compared:"``, which
    ``verify`` reports as not compared. ``steps``, when given, limits this to those steps (the others
    are compared whole).

    Examples
    --------
    >>> import pandas as pd
    >>> from streamlab import Pipeline, SessionWindow, agg
    >>> from streamlab.testing import ListSource
    >>> p = Pipeline(ListSource([b"{}"]))
    >>> _ = p.parse().window(SessionWindow("1m"), key="user_id").agg(agg.count())
    >>> sessions = pd.DataFrame({"user_id": ["u", "v"], "count": [1, 3]})
    >>> local = {"window": sessions, "window.late": pd.DataFrame({"user_id": ["u"]})}
    >>> theirs = {"window": pd.DataFrame({"user_id": ["u", "v"], "count": [2, 3]})}
    >>> kept, theirs, notes = leave_out_late_windows(p, local, theirs, "Spark")
    >>> kept["window"].to_dict("records"), theirs["window"].to_dict("records")
    ([{'user_id': 'v', 'count': 3}], [{'user_id': 'v', 'count': 3}])
    >>> notes
    ['window: sessions of 1 key(s) with late rows in streamlab (1 rows) left out (Spark may merge their late rows)']
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
                parts = [_texts(frame[c]) for c in names]
                parts.append([str(t) for t in to_utc_ns(frame["window_start"]).tolist()])
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
        elif isinstance(step, WindowStep) and step.keys:

            def key_text(frame: pd.DataFrame, names: tuple[str, ...] = step.keys) -> list[str]:
                return ["|".join(x) for x in zip(*(_texts(frame[c]) for c in names))]

            hit = set(key_text(late)) if all(c in late.columns for c in step.keys) else set()
            for side in (local, exported):
                frame = side.get(sid)
                if frame is not None and len(frame) and all(c in frame.columns for c in step.keys):
                    side[sid] = frame[[k not in hit for k in key_text(frame)]].reset_index(drop=True)
            notes.append(
                f"{sid}: sessions of {len(hit)} key(s) with late rows in streamlab ({len(late)} rows) left out "
                f"({engine} may merge their late rows)"
            )
        else:
            local[sid], exported[sid] = pd.DataFrame(), pd.DataFrame()
            notes.append(
                f"{sid}: not compared: streamlab reported {len(late)} late rows, which {engine} may pair or merge"
            )
    return local, exported, notes


def _texts(column: pd.Series) -> list[str]:
    """Each value of a key column as text, every kind of missing value (None, NaN, ``pd.NA``, NaT) as
    one text: the key None. (``astype(str)`` keeps NaN in a ``str`` column, and tells None from NaN.)

    Examples
    --------
    >>> import pandas as pd
    >>> _texts(pd.Series(["u", None, float("nan")], dtype="object"))
    ['u', '\\x00None', '\\x00None']
    """
    import pandas as pd

    return [
        "\x00None" if v is None or v is pd.NA or v is pd.NaT or v != v else str(v) for v in column.tolist()
    ]
