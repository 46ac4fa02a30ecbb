"""Dead letters: every step's declared dead-letter columns are the columns it writes, in that order."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from river import anomaly

from streamlab import Pipeline, TumblingWindow, agg
from streamlab._dead_letter import (
    DEAD_LETTER_COLUMNS,
    PARSE_DEAD_LETTER_COLUMNS,
    dead_letter_columns,
    dead_letter_row,
    fit_message,
    raw_dead_letter_row,
)
from streamlab.testing import ListSource

SCHEMA = {"user_id": "string", "timestamp": "timestamp", "seen": "timestamp", "amount": "float64"}


def _record(i: int, **extra: Any) -> bytes:
    row = {"user_id": f"u{i % 2}", "timestamp": f"2024-01-01T00:00:{i:02d}Z", "amount": float(i), **extra}
    return json.dumps(row).encode()


def _fails_on_three(e: dict[str, Any]) -> Any:
    if e["amount"] == 3.0:
        raise ValueError("three")
    return e


def test_declared_dead_letter_columns_are_the_written_ones() -> None:
    records = [_record(i, seen=f"2024-01-01T00:00:{i:02d}Z") for i in range(8)]
    records += [b"not json", _record(9), _record(10, user_id=None, seen="2024-01-01T00:00:10Z")]
    p = Pipeline(ListSource(records))
    parsed = p.parse(SCHEMA)
    kept = parsed.filter_one(_fails_on_three)
    kept.map_one(lambda e: {**e, "amount": 1 / (e["amount"] - 4)})
    kept.window(TumblingWindow("1m"), key="user_id", time="seen").agg(agg.count())
    kept.detect(anomaly.HalfSpaceTrees(seed=1), features=["amount"], key="user_id")
    result = p.run()
    refs = [r for r in result.outputs if r.endswith(".dead_letter")]
    assert len(refs) == 5
    for ref in refs:
        frame = result[ref]
        assert len(frame) and p.columns_of(ref) is not None, ref
        assert list(frame.columns) == list(p.columns_of(ref) or ()), ref
    assert list(result["parse.dead_letter"].columns[:3]) == list(PARSE_DEAD_LETTER_COLUMNS)
    assert list(result["filter.dead_letter"].columns[:2]) == list(DEAD_LETTER_COLUMNS)
    detect = next(r for r in refs if r.startswith("detect"))
    assert list(result[detect].columns[-2:]) == ["reason", "step_id"]  # detectors: the row first


def test_exported_rows_match_the_runtime_columns() -> None:
    assert list(dead_letter_row("r", "s", {"x": 1})) == list(dead_letter_columns(("x",)) or ())
    assert list(raw_dead_letter_row(b"\xff", "r", "s")) == list(PARSE_DEAD_LETTER_COLUMNS)
    assert raw_dead_letter_row(b"\xff", "r", "s")["raw"] == "\ufffd"


# --- fit_message: a dead letter cut to a topic's or queue's size limit


def _dump(row: Any) -> str:
    return json.dumps(row, separators=(",", ":"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=st.text(st.characters(codec="utf-8"), max_size=3000) | st.text(max_size=3000),
    reason=st.text(max_size=6000),
    limit=st.integers(1024, 4096),
    parse=st.booleans(),
)
def test_fit_message_fits_keeps_the_longest_prefix_and_says_what_it_cut(
    raw: str, reason: str, limit: int, parse: bool
) -> None:
    row: dict[str, Any] = {"reason": reason, "step_id": "s"}
    row.update({"raw": raw} if parse else {"text": raw, "n": 3})
    text, cut = fit_message(row, limit, _dump)
    size = len(text.encode("utf-8", "surrogatepass"))
    if not cut:
        assert text == _dump(row) and size <= limit
        return
    assert size <= limit < len(_dump(row).encode("utf-8", "surrogatepass"))
    out = json.loads(text)
    whole = raw if parse else _dump({k: v for k, v in row.items() if k not in ("reason", "step_id")})
    data = whole.encode("utf-8", "surrogatepass")
    assert out["raw_truncated"] is True and out["step_id"] == "s"
    assert out["raw_bytes"] == len(data) and out["raw_sha256"] == hashlib.sha256(data).hexdigest()
    assert whole.startswith(out["raw"]) and reason.startswith(out["reason"])
    if len(out["raw"]) < len(whole):  # the longest prefix: one more character would not fit
        longer = {**out, "raw": whole[: len(out["raw"]) + 1]}
        assert len(_dump(longer).encode("utf-8", "surrogatepass")) > limit


def test_fit_message_leaves_a_fitting_row_alone() -> None:
    row = {"raw": "x" * 100, "reason": "bad", "step_id": "parse", "partition": 3}
    assert fit_message(row, 1024, _dump) == (_dump(row), False)
