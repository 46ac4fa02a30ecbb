"""Raw application log lines (JSON bytes), a share of them malformed, with the ground truth."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import MS, NS, Rate, check_count, check_share, check_span, resolve_rate, resolve_start
from ._jsonl import EVENT_DEFECTS, MAX_RECORD_BYTES, corrupt_record, dump_record

__all__ = ["generate_app_logs"]

#: Why a log line is bad, as labelled in ``malformed_reason``.
LOG_DEFECTS = (*EVENT_DEFECTS, "huge_record")
# The huge record is rare: a few of them already make the point and keep the bundled file small.
_LOG_DEFECT_WEIGHTS = np.array([0.2, 0.15, 0.15, 0.15, 0.15, 0.15, 0.05])

#: Schema of a well-formed log record (field, JSON type) as the loader checks it.
LOG_SCHEMA = (
    ("timestamp", "ts"),
    ("level", "str"),
    ("service", "str"),
    ("message", "str"),
    ("request_id", "str"),
    ("status", "int"),
    ("latency_ms", "num"),
)

_LEVELS = np.array(["DEBUG", "INFO", "WARN", "ERROR"], dtype=object)
_LEVEL_WEIGHTS = np.array([0.08, 0.80, 0.08, 0.04])
_SERVICES = np.array(["api-gateway", "checkout", "payments", "search", "auth", "inventory"], dtype=object)
_ROUTES = np.array(
    ["/api/products", "/api/cart", "/api/checkout", "/api/search", "/api/login", "/api/stock"], dtype=object
)
_WARN_MESSAGES = np.array(
    ["slow upstream response", "rate limit close", "retrying request", "cache miss storm"]
)
_ERROR_MESSAGES = np.array(
    ["upstream timeout", "connection reset by peer", "database deadlock detected", "payment provider 503"]
)
_STACK = (
    'Traceback (most recent call last):\n  File "/srv/app/handler.py", line 42, in handle\n    raise err\n'
)


def _huge_record(record: dict[str, object], size: int) -> bytes:
    rec = dict(record)
    rec["level"] = "ERROR"
    rec["message"] = "unhandled exception\n" + _STACK * (size // len(_STACK) + 1)
    return dump_record(rec)


def generate_app_logs(
    n: int,
    *,
    seed: int = 0,
    start: str | int | pd.Timestamp = "2024-01-01T00:00:00Z",
    rate: Rate | None = None,
    events_per_second: float | None = None,
    malformed_share: float = 0.02,
    huge_bytes: int = MAX_RECORD_BYTES + 50_000,
) -> pd.DataFrame:
    """Generate application log records as raw JSON lines, a share of them malformed.

    Well-formed records have ``timestamp`` (ISO-8601 ``Z``), ``level``, ``service``, ``message``,
    ``request_id``, ``status`` (int) and ``latency_ms`` (number). Malformed lines replace records at
    random positions; ``malformed_reason`` says how each is damaged:

    - ``truncated_json``: the line is cut off (fails ``json.loads``);
    - ``plain_text``: a plain log line, not JSON;
    - ``bad_timestamp``: ``timestamp`` is text that is not a date (``"yesterday"``);
    - ``missing_timestamp``: no ``timestamp`` field;
    - ``wrong_type``: one field has the wrong JSON type (``"status": "500 units"``);
    - ``non_utf8``: Latin-1 bytes that are not valid UTF-8;
    - ``huge_record``: valid JSON larger than ``huge_bytes`` (over the 1 MiB record limit of brokers).

    Parameters
    ----------
    n
        Number of lines.
    seed
        Random seed; the same seed and knobs give identical lines.
    start
        Time of the first record.
    rate, events_per_second
        Mean lines per second; default 20.
    malformed_share
        Share of lines that are malformed (exact up to rounding).
    huge_bytes
        Size of ``huge_record`` lines.

    Returns
    -------
    pandas.DataFrame
        ``value`` (bytes, the raw line as a broker delivers it), ``is_malformed`` and
        ``malformed_reason`` (``"none"`` for good lines).

    Examples
    --------
    >>> import json
    >>> logs = generate_app_logs(200, seed=1, malformed_share=0.1)
    >>> int(logs["is_malformed"].sum())
    20
    >>> sorted(json.loads(logs.loc[~logs["is_malformed"], "value"].iloc[0]))
    ['latency_ms', 'level', 'message', 'request_id', 'service', 'status', 'timestamp']
    """
    n = check_count(n, "generate_app_logs")
    share = check_share(malformed_share, "generate_app_logs(malformed_share=...)")
    if isinstance(huge_bytes, bool) or not isinstance(huge_bytes, int) or huge_bytes < 1:
        raise ValueError(
            f"generate_app_logs: huge_bytes must be a positive number of bytes, got {huge_bytes!r}"
        )
    start_ns = resolve_start(start, "generate_app_logs")
    per_second = resolve_rate(rate, events_per_second, 20.0, "generate_app_logs")
    check_span(n, per_second, start_ns, "generate_app_logs")
    rng = np.random.default_rng([int(seed), 4])

    span = n * NS / per_second
    ts = start_ns + np.sort(np.floor(rng.random(n) * span).astype(np.int64))
    # Collectors batch lines from several hosts, so log times are slightly out of order.
    ts = (ts - (rng.random(n) * 500 * MS).astype(np.int64)) // MS * MS
    iso = np.datetime_as_string(ts.astype("datetime64[ns]").astype("datetime64[ms]"), unit="ms")
    level_idx = rng.choice(len(_LEVELS), n, p=_LEVEL_WEIGHTS)
    service = rng.choice(_SERVICES, n)
    route = rng.choice(_ROUTES, n)
    warn_msg = rng.choice(_WARN_MESSAGES, n)
    err_msg = rng.choice(_ERROR_MESSAGES, n)
    status = np.where(level_idx == 3, rng.choice([500, 502, 503], n), np.where(level_idx == 2, 429, 200))
    latency = np.round(np.exp(rng.normal(3.5, 0.7, n)) * np.where(level_idx >= 2, 8.0, 1.0), 1)
    request = rng.integers(0, 2**48, n)
    methods = np.where(rng.random(n) < 0.7, "GET", "POST")

    records = []
    for t, lv, sv, rt, wm, em, st, lat, rq, me in zip(
        iso.tolist(),
        level_idx.tolist(),
        service.tolist(),
        route.tolist(),
        warn_msg.tolist(),
        err_msg.tolist(),
        status.tolist(),
        latency.tolist(),
        request.tolist(),
        methods.tolist(),
    ):
        message = f"{me} {rt} {st}" if lv < 2 else (wm if lv == 2 else em)
        records.append(
            {
                "timestamp": t + "Z",
                "level": _LEVELS[lv],
                "service": sv,
                "message": message,
                "request_id": f"req-{rq:012x}",
                "status": st,
                "latency_ms": lat,
            }
        )
    values = [dump_record(r) for r in records]
    reasons = np.full(n, "none", dtype=object)
    k = round(share * n)
    if k:
        bad = np.sort(rng.choice(n, size=k, replace=False))
        kinds = rng.choice(len(LOG_DEFECTS), size=k, p=_LOG_DEFECT_WEIGHTS)
        for pos, kind in zip(bad.tolist(), kinds.tolist()):
            defect = LOG_DEFECTS[kind]
            values[pos] = (
                _huge_record(records[pos], huge_bytes)
                if defect == "huge_record"
                else corrupt_record(defect, records[pos], rng)
            )
            reasons[pos] = defect
    return pd.DataFrame(
        {
            "value": pd.Series(values, dtype=object),
            "is_malformed": reasons != "none",
            "malformed_reason": reasons,
        }
    )
