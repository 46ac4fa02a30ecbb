"""Regenerate the bundled datasets and their cards, byte for byte.

Run ``python -m streamlab.datasets._generate`` to rewrite ``data/*.jsonl.gz`` and ``cards/*.md`` in the
package folder, ``--check`` to verify the shipped files instead, and ``--out DIR`` to write elsewhere.
Seeds and knobs are fixed below; the gzip header is written here (``mtime=0``, no file name, OS byte 3),
so the output depends only on this code, numpy's random streams and zlib, not on the Python version.
"""

from __future__ import annotations

import argparse
import pathlib
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._generators import generate_clickstream, generate_iot, generate_transactions
from ._jsonl import dump_record, frame_to_records, inject_malformed
from ._loader import dataset_info, list_datasets
from ._logs import generate_app_logs

__all__: list[str] = []

PACKAGE_DIR = pathlib.Path(__file__).resolve().parent


@dataclass(frozen=True)
class Built:
    """A generated dataset: its lines, the events behind them, and per line ``"none"`` or the defect."""

    lines: list[bytes]
    events: pd.DataFrame
    defects: list[str]


CLICKSTREAM_PARAMS: dict[str, Any] = dict(
    seed=7,
    start="2024-03-01T09:00:00Z",
    events_per_second=20.0,
    disorder="5s",
    late_share=0.01,
    lateness="2m",
    duplicate_share=0.01,
    burst_share=0.05,
    n_users=3000,
)
CLICKSTREAM_N = 50_000
CLICKSTREAM_MALFORMED = 100
TRANSACTIONS_PARAMS: dict[str, Any] = dict(
    seed=11, start="2024-03-01T00:00:00Z", events_per_second=2.0, n_cards=2000, fraud_share=0.01
)
TRANSACTIONS_N = 50_000
IOT_PARAMS: dict[str, Any] = dict(
    seed=13,
    start="2024-03-01T00:00:00Z",
    events_per_second=1.0,
    n_devices=25,
    anomaly_share=0.005,
    drift_at=0.6,
)
IOT_N = 50_000
APP_LOGS_PARAMS: dict[str, Any] = dict(
    seed=17, start="2024-03-01T12:00:00Z", events_per_second=10.0, malformed_share=0.03
)
APP_LOGS_N = 20_000


def _build_clickstream() -> Built:
    events = generate_clickstream(CLICKSTREAM_N, **CLICKSTREAM_PARAMS)
    records = frame_to_records(events)
    lines = [dump_record(r) for r in records]
    share = CLICKSTREAM_MALFORMED / (CLICKSTREAM_N + CLICKSTREAM_MALFORMED)
    out, defects = inject_malformed(records, lines, share, np.random.default_rng([7, 301]))
    return Built(out, events, defects)


def _build_plain(frame: pd.DataFrame) -> Built:
    lines = [dump_record(r) for r in frame_to_records(frame)]
    return Built(lines, frame, ["none"] * len(lines))


def _build_app_logs() -> Built:
    logs = generate_app_logs(APP_LOGS_N, **APP_LOGS_PARAMS)
    return Built(list(logs["value"]), logs, list(logs["malformed_reason"]))


BUILDERS: dict[str, Callable[[], Built]] = {
    "app_logs": _build_app_logs,
    "clickstream": _build_clickstream,
    "iot": lambda: _build_plain(generate_iot(IOT_N, **IOT_PARAMS)),
    "transactions": lambda: _build_plain(generate_transactions(TRANSACTIONS_N, **TRANSACTIONS_PARAMS)),
}


#: the gzip header's OS byte of the bundled files ("Unix", as zlib writes it on Linux)
GZIP_OS = 3


def compress_lines(lines: list[bytes]) -> bytes:
    """Newline-terminated lines, gzip-compressed reproducibly (``mtime=0``, no file name, level 9).

    The header is packed here rather than left to :func:`gzip.compress`, whose OS byte depends on the
    Python version (255 on 3.10 and from 3.13; zlib's, 3 on Linux, on 3.11 and 3.12), so the bundled
    files regenerate byte for byte on every Python and platform.

    Examples
    --------
    >>> compress_lines([b"a", b"b"]) == compress_lines([b"a", b"b"])
    True
    >>> import gzip
    >>> gzip.decompress(compress_lines([b"a", b"b"]))
    b'a\\nb\\n'
    """
    # wbits 31: a gzip member (zlib.compress takes no wbits on 3.10)
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    member = packer.compress(b"".join(line + b"\n" for line in lines)) + packer.flush()
    # magic, deflate, no flags, mtime 0, zlib's extra flags (2: level 9), OS; then deflate, CRC, size
    return struct.pack("<BBBBIBB", 0x1F, 0x8B, 8, 0, 0, member[8], GZIP_OS) + member[10:]


def build_bytes(name: str) -> bytes:
    """The exact bytes of a bundled dataset's file."""
    dataset_info(name)
    return compress_lines(BUILDERS[name]().lines)


# --------------------------------------------------------------------------------------------------
# cards
# --------------------------------------------------------------------------------------------------


def _span(ts: pd.Series) -> str:
    lo, hi = ts.min(), ts.max()
    hours = (hi - lo).total_seconds() / 3600
    return f"{lo.isoformat()} to {hi.isoformat()} ({hours:.1f} h of event time)"


def _pct(count: int, total: int) -> str:
    return f"{count:,} ({100.0 * count / total:.2f} %)"


def _schema_table(name: str, notes: dict[str, str]) -> str:
    rows = ["| field | JSON type | meaning |", "|---|---|---|"]
    for field, kind in dataset_info(name).schema:
        rows.append(f"| `{field}` | {kind.replace('|', ' or ')} | {notes.get(field, '')} |")
    return "\n".join(rows)


_REGENERATE = """## Regenerate

```
python -m streamlab.datasets._generate            # rewrite data/ and cards/
python -m streamlab.datasets._generate --check    # verify the shipped files byte for byte
```

The generator call and its fixed seed are in `streamlab/datasets/_generate.py`; the same frame comes
from `{call}`.
"""


def _card(name: str, built: Built, size: int) -> str:
    n_lines = len(built.lines)
    defects = pd.Series(built.defects).value_counts()
    bad = int((pd.Series(built.defects) != "none").sum())
    head = f"# {name}\n\n{dataset_info(name).summary}\n\n"
    facts = [f"- File: `data/{dataset_info(name).filename}`, {size:,} bytes (gzip), {n_lines:,} lines."]
    if bad:
        listing = ", ".join(f"{k}: {v}" for k, v in sorted(defects.items()) if k != "none")
        facts.append(f"- Malformed lines: {_pct(bad, n_lines)}; by defect: {listing}.")
    else:
        facts.append("- Malformed lines: none.")
    if name == "app_logs":
        ok = [json_line for json_line, d in zip(built.lines, built.defects) if d == "none"]
        ts = pd.to_datetime(pd.Series([line[14:38].decode() for line in ok]), utc=True, format="ISO8601")
        facts.append(f"- Time span: {_span(ts)}.")
        body = _schema_table(
            name,
            {
                "timestamp": "ISO-8601 UTC with `Z`, millisecond precision; up to 0.5 s out of order",
                "level": "DEBUG / INFO / WARN / ERROR (8 / 80 / 8 / 4 %)",
                "service": "api-gateway, checkout, payments, search, auth, inventory",
                "message": "`GET /api/cart 200`, or a warning / error text",
                "request_id": "`req-` and 12 hex digits",
                "status": "HTTP status: 200, 429 for WARN, 500/502/503 for ERROR",
                "latency_ms": "milliseconds, log-normal; slower for WARN and ERROR",
            },
        )
        injected = """## Injected defects (ground truth)

The file holds only the raw lines. Which lines are bad, and why, comes from the generator:
`generate_app_logs(20_000, seed=17, start="2024-03-01T12:00:00Z", events_per_second=10.0,
malformed_share=0.03)` returns `value`, `is_malformed` and `malformed_reason`, line for line equal to
this file. Defects: `truncated_json` (cut-off line), `plain_text` (not JSON), `bad_timestamp`
(`"yesterday"`, `"2024-13-45T25:61:00Z"`, ...), `missing_timestamp`, `wrong_type` (a field of the wrong
JSON type), `non_utf8` (Latin-1 bytes), `huge_record` (valid JSON over 1 MiB, the default record limit
of Kafka). `load("app_logs")` drops all of them and counts them in `df.attrs["malformed"]`.
"""
        call = "generate_app_logs(20_000, **APP_LOGS_PARAMS)"
    else:
        ev = built.events
        facts.append(f"- Events: {len(ev):,}; time span: {_span(ev['timestamp'])}.")
        if name == "clickstream":
            facts += [
                f"- Duplicates (`is_duplicate`): {_pct(int(ev['is_duplicate'].sum()), len(ev))}.",
                f"- Late (`is_late`): {_pct(int(ev['is_late'].sum()), len(ev))}.",
                f"- In traffic bursts (`is_burst`): {_pct(int(ev['is_burst'].sum()), len(ev))}.",
                f"- Distinct `event_id`: {ev['event_id'].nunique():,}; users: {ev['user_id'].nunique():,}.",
            ]
            body = _schema_table(
                name,
                {
                    "event_id": "`clk-7-` and the row of the original; duplicates repeat it",
                    "event_type": "page_view 55 %, click 25 %, add_to_cart 7 %, purchase 2 %, "
                    "login 6 %, logout 5 %",
                    "user_id": "`u` and 6 digits; activity is skewed",
                    "timestamp": "event time, ISO-8601 UTC with `Z`, millisecond precision; not monotonic",
                    "properties": "`page`, `device`, `country`; `product_id` for carts and purchases; "
                    "`amount`, `currency` for purchases",
                    "is_duplicate": "label: re-send of an earlier event (same `event_id`, same content)",
                    "is_late": "label: more than 5 s behind the largest earlier event time",
                    "is_burst": "label: arrived in a traffic burst (400 events at 20 times the rate)",
                },
            )
            injected = """## What is injected

Events arrive at 20 per second on average (Poisson), plus bursts. On-time events are delayed by up to
`disorder=5s`, so timestamps are out of order but never more than 5 s behind the running maximum.
1 % of events arrive late: 5 s plus 1 ms to 2 min behind the running maximum. 1 % of rows are
duplicates re-sent by a retrying producer, usually within a few dozen events of the original. About
100 malformed lines (truncated JSON, plain text, a timestamp that is not a date, no timestamp, a field of
the wrong type, Latin-1 bytes) are inserted between events; every event still appears once, so
`load("clickstream")` equals the generated frame and reports `df.attrs["malformed"]`.
"""
            call = "generate_clickstream(50_000, **CLICKSTREAM_PARAMS)"
        elif name == "transactions":
            counts = ev["fraud_pattern"].value_counts()
            facts += [
                f"- Fraudulent (`is_fraud`): {_pct(int(ev['is_fraud'].sum()), len(ev))}; incidents: "
                f"{ev['fraud_burst_id'].nunique():,}.",
                "- By pattern: "
                + ", ".join(
                    f"{p}: {int(counts.get(p, 0)):,}" for p in ("velocity", "amount_spike", "geo_jump")
                )
                + ".",
                f"- Cards: {ev['card_id'].nunique():,}; users: {ev['user_id'].nunique():,}.",
            ]
            body = _schema_table(
                name,
                {
                    "event_id": "`txn-11-` and the row number",
                    "card_id": "`card-` and 6 digits",
                    "user_id": "card holder; one in five cards is a second card of a holder",
                    "merchant": "one of 14 merchants",
                    "merchant_category": "grocery, fuel, restaurant, online, digital, electronics, ...",
                    "country": "card's home country, except in geo-jump fraud",
                    "amount": "amount, 2 decimals",
                    "timestamp": "ISO-8601 UTC with `Z`, ms; up to 1 s out of order",
                    "is_fraud": "label",
                    "fraud_pattern": "label: none / velocity / amount_spike / geo_jump",
                    "fraud_burst_id": "label: incident id shared by its transactions; null when legit",
                },
            )
            injected = """## What is injected

About 1 % of transactions are fraud, in incidents: `velocity` (5-12 small online purchases on one card
within 2-10 minutes), `amount_spike` (one purchase of 20-50 times the card's typical amount, at least
500) and `geo_jump` (1-3 purchases abroad within 50 minutes after a purchase at home). Legit
transactions always happen in the card's home country. No malformed lines.
"""
            call = "generate_transactions(50_000, **TRANSACTIONS_PARAMS)"
        else:
            facts += [
                f"- Point anomalies (`is_anomaly`): {_pct(int(ev['is_anomaly'].sum()), len(ev))}; by metric: "
                + ", ".join(
                    f"{k}: {v}"
                    for k, v in sorted(ev.loc[ev["is_anomaly"], "anomaly_metric"].value_counts().items())
                )
                + ".",
                f"- Drifted readings (`is_drift`): {_pct(int(ev['is_drift'].sum()), len(ev))} from "
                f"{ev.loc[ev['is_drift'], 'device_id'].nunique()} devices, from "
                f"{ev.loc[ev['is_drift'], 'timestamp'].min().isoformat()} on.",
                f"- Devices: {ev['device_id'].nunique()}, each reporting every 25 s.",
            ]
            body = _schema_table(
                name,
                {
                    "event_id": "`iot-13-` and the row number",
                    "device_id": "`dev-` and 4 digits",
                    "sensor": "freezer, hvac, pump, boiler, server_rack (sets the normal levels)",
                    "temperature": "°C, daily cycle plus noise, 2 decimals",
                    "humidity": "%, falls as temperature rises, 1 decimal",
                    "vibration": "mm/s, 3 decimals",
                    "timestamp": "ISO-8601 UTC with `Z`, ms; up to 2 s out of order",
                    "is_anomaly": "label: point anomaly",
                    "anomaly_metric": "label: none / temperature (±10-25 °C) / humidity (0 or 100 %) / "
                    "vibration (4-8 times)",
                    "is_drift": "label: reading of a drifting device after the drift began (+5 °C)",
                },
            )
            injected = """## What is injected

0.5 % of readings are point anomalies on one metric. From 60 % of the stream on, a quarter of the
devices runs 5 °C warmer (a level shift, labelled `is_drift`). No malformed lines.
"""
            call = "generate_iot(50_000, **IOT_PARAMS)"
    return (
        head
        + "## Facts\n\n"
        + "\n".join(facts)
        + "\n\n## Schema\n\n"
        + body
        + "\n\n"
        + injected
        + "\n"
        + _REGENERATE.format(call=call)
    )


def write_all(out: pathlib.Path, names: list[str]) -> None:
    """Write the data files and cards of ``names`` under ``out`` (``data/`` and ``cards/``)."""
    (out / "data").mkdir(parents=True, exist_ok=True)
    (out / "cards").mkdir(parents=True, exist_ok=True)
    for name in names:
        built = BUILDERS[name]()
        blob = compress_lines(built.lines)
        (out / "data" / dataset_info(name).filename).write_bytes(blob)
        (out / "cards" / f"{name}.md").write_text(_card(name, built, len(blob)), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    """Command line: regenerate or ``--check`` the bundled datasets."""
    parser = argparse.ArgumentParser(prog="python -m streamlab.datasets._generate", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"datasets to build (default: all of {list_datasets()})")
    parser.add_argument(
        "--out", type=pathlib.Path, default=PACKAGE_DIR, help="folder holding data/ and cards/"
    )
    parser.add_argument("--check", action="store_true", help="compare with the files instead of writing")
    args = parser.parse_args(argv)
    names = args.names or list_datasets()
    for name in names:
        dataset_info(name)
    if not args.check:
        write_all(args.out, names)
        print(f"wrote {', '.join(names)} to {args.out}")
        return 0
    stale = [
        n for n in names if (args.out / "data" / dataset_info(n).filename).read_bytes() != build_bytes(n)
    ]
    if stale:
        print(f"out of date: {', '.join(stale)}; run python -m streamlab.datasets._generate", file=sys.stderr)
        return 1
    print("bundled datasets are up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
