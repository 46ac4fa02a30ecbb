"""Runtime of dedup: drop repeated event ids with bounded memory."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd

from streamlab._record import Dedup, dedup_key
from streamlab._time import NAT_NS, to_utc_ns
from streamlab.operators import Operator, Outputs


class DedupOperator(Operator):
    """Pass the first event of each id; later ones go to the ``duplicates`` output.

    The rule is ``streamlab._record.Dedup`` (one record at a time, as the exported jobs run it): an id is
    remembered while the watermark (largest event time seen) is within ``ttl`` of its first occurrence's
    event time, and at most ``max_ids`` ids are held, the oldest forgotten first. A duplicate arriving
    after its id was forgotten passes again.
    """

    output_names = ("out", "duplicates")

    def __init__(
        self, step_id: str, id_column: str, time: str | None, ttl_ns: int | None, max_ids: int
    ) -> None:
        self.step_id = step_id
        self.id_column = id_column
        self.time = time
        self.rule = Dedup(ttl_ns, max_ids)

    def snapshot(self) -> Any:
        return copy.deepcopy(self.rule)

    def restore(self, state: Any) -> None:
        if isinstance(state, dict):  # a checkpoint written before the rule was shared: ids and times
            rule = Dedup(self.rule.ttl_ns, self.rule.max_ids)
            held = state.get("seen", {})
            rule.max_ns = max((t for t in held.values() if t != NAT_NS), default=None)
            rule.forgotten = int(state.get("evicted", 0))
            for k, t in held.items():
                if rule._live(None if t == NAT_NS else t):
                    rule._remember(k, None if t == NAT_NS else t)
            self.rule = rule
            return
        self.rule = copy.deepcopy(state)

    def open_state(self) -> dict[str, Any]:
        return {"remembered_ids": len(self.rule.seen), "forgotten_ids": self.rule.forgotten}

    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        ids = batch[self.id_column].tolist()
        n = len(ids)
        if self.time is not None:
            ts_l: list[int | None] = [
                None if t == NAT_NS else t for t in to_utc_ns(batch[self.time]).tolist()
            ]
        else:
            ts_l = [None] * n
        seen = self.rule.is_duplicate
        dup = np.fromiter((seen(dedup_key(k), t) for k, t in zip(ids, ts_l)), dtype=bool, count=n)
        out: Outputs = {"out": batch[~dup].reset_index(drop=True) if dup.any() else batch}
        if dup.any():
            out["duplicates"] = batch[dup].reset_index(drop=True)
        return out
