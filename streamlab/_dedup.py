"""Runtime of dedup: drop repeated event ids with bounded memory."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd

from streamlab._operator import Operator, Outputs
from streamlab._time import NAT_NS, to_utc_ns
from streamlab._windowing import _NO_WATERMARK, running_watermark


class DedupOperator(Operator):
    """Pass the first event of each id; later ones go to the ``duplicates`` output.

    With ``ttl``, an id is remembered while the watermark (largest event time seen) is within ``ttl``
    of the first occurrence's event time; with ``max_ids``, the oldest remembered ids are forgotten
    first once more are held. A duplicate arriving after its id was forgotten passes again.
    """

    output_names = ("out", "duplicates")

    def __init__(
        self, step_id: str, id_column: str, time: str | None, ttl_ns: int | None, max_ids: int
    ) -> None:
        self.step_id = step_id
        self.id_column = id_column
        self.time = time
        self.ttl_ns = ttl_ns
        self.max_ids = max_ids
        self.seen: dict[Any, int] = {}
        self.max_ts = _NO_WATERMARK
        self.evicted = 0
        self._compact_at = 1024

    def snapshot(self) -> Any:
        return copy.deepcopy({"seen": self.seen, "max_ts": self.max_ts, "evicted": self.evicted})

    def restore(self, state: Any) -> None:
        self.__dict__.update(copy.deepcopy(state))

    def open_state(self) -> dict[str, Any]:
        return {"remembered_ids": len(self.seen), "forgotten_ids": self.evicted}

    def process(self, batch: pd.DataFrame, port: int = 0) -> Outputs:
        ids = batch[self.id_column].tolist()
        n = len(ids)
        if self.time is not None:
            ts = to_utc_ns(batch[self.time])
            ts_ok = np.where(ts == NAT_NS, self.max_ts, ts)
            wm, self.max_ts = running_watermark(ts_ok, self.max_ts, 0)
            ts_l, wm_l = ts.tolist(), wm.tolist()
        else:
            ts_l = wm_l = [0] * n
        ttl = self.ttl_ns
        seen = self.seen
        dup = np.zeros(n, dtype=bool)
        for i, (k, t, w) in enumerate(zip(ids, ts_l, wm_l)):
            prev = seen.get(k)
            if prev is not None and (ttl is None or prev >= w - ttl):
                dup[i] = True
            else:
                seen[k] = t
        self._evict()
        out: Outputs = {"out": batch[~dup].reset_index(drop=True) if dup.any() else batch}
        if dup.any():
            out["duplicates"] = batch[dup].reset_index(drop=True)
        return out

    def _evict(self) -> None:
        if self.ttl_ns is not None and len(self.seen) >= self._compact_at:
            horizon = self.max_ts - self.ttl_ns
            before = len(self.seen)
            self.seen = {k: t for k, t in self.seen.items() if t >= horizon}
            self.evicted += before - len(self.seen)
            self._compact_at = max(1024, 2 * len(self.seen))
        over = len(self.seen) - self.max_ids
        if over > 0:
            for k in list(self.seen)[:over]:
                del self.seen[k]
            self.evicted += over
