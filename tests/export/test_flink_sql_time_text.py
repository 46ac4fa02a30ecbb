"""Flink SQL export: ``job.sql`` reads a time text as streamlab's rule does, whitespace and times before
1970 included.

streamlab's time rule (``streamlab._record.iso_to_ns``) strips a time text with Python's ``str.strip()``:
tabs, line breaks, carriage returns, vertical tabs, form feeds, the separators ``\\x1c``-``\\x1f``,
``\\x85`` and the Unicode spaces (no-break, em, ideographic, line separator...). ``job.sql`` stripped it
with SQL's ``TRIM``, which removes spaces alone: a record whose time was ``"\\t2024-01-01T00:00:00Z"`` was a
dead letter of the job that streamlab read, and a text of whitespace alone (no time in streamlab, as ""
is) in a second time field was a dead letter too. A line break at the end even passed the pattern
(Java's ``$`` matches before a final line break), and the record was still a dead letter.

``job.sql`` gives a record whose time it cannot read a rowtime in the year 1019, so that it does not
move the watermark; the second test runs windows on times before 1970 (negative epoch times, as ISO
text and as epoch numbers) beside unreadable and missing times, and compares the windows and the dead
letters with streamlab's run, in which no row is late. Each test runs ``job.sql`` once, as the SQL
client's stand-in (``run_sql.py``) runs it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.testing import ListSink, ListSource
from tests.export.test_flink_sql_mistyped import _job_time, _lines, _run_job_sql, _run_streamlab

PADS = {  # every kind of whitespace str.strip() removes, by name
    "tab": "\t",
    "line feed": "\n",
    "carriage return": "\r",
    "vertical tab": "\x0b",
    "form feed": "\x0c",
    "file separator": "\x1c",
    "unit separator": "\x1f",
    "next line": "\x85",
    "no-break space": "\xa0",
    "ogham space": "\u1680",
    "em space": "\u2003",
    "line separator": "\u2028",
    "paragraph separator": "\u2029",
    "narrow no-break space": "\u202f",
    "ideographic space": "\u3000",
    "space": " ",
    "mixed": "\t \u2003\r\n",
}
NO_TIME = ["\t", "\u2003\n", "\u3000NaT\t", "\r\nnat\x0c"]  # stripped: "" or "NaT", no time in streamlab
REFUSED = [  # refused by streamlab: whitespace within the text, a character that is no whitespace
    "2024-01-01\t00:00:00Z",
    "2024-01-01T00:00:00 Z",
    "\u200b2024-01-01T00:00:00Z",  # a zero-width space is no whitespace (str.isspace)
    "2024-01-01T00:00:00Z\ufeff",
    "\t1704067205",  # an epoch number as text is no time, padded or not
    "1704067205\n",
]

EDGES = [  # (text, whether streamlab reads it): the milliseconds at the ends of 64-bit nanoseconds, padded
    ("\t2262-04-11T23:47:16.854Z\n", True),
    ("\t2262-04-11T23:47:16.855Z\n", False),
    ("\u20031677-09-21T00:12:43.146Z", True),
    ("\u20031677-09-21T00:12:43.144Z", False),
]


def _events() -> list[str]:
    events = []
    for i, (name, pad) in enumerate(PADS.items()):
        t = f"2024-01-01T00:00:{i:02d}.5Z"
        events += [  # before, after and around the text, in the time field and in a second time field
            json.dumps({"event_id": f"{name}: before", "timestamp": pad + t, "seen": t + pad}),
            json.dumps({"event_id": f"{name}: after", "timestamp": t + pad, "seen": pad + t}),
            json.dumps({"event_id": f"{name}: around", "timestamp": pad + t + pad, "seen": pad + t + pad}),
        ]
    t = "2024-01-01T00:01:00Z"
    events += [
        json.dumps({"event_id": f"no time {i}", "timestamp": t, "seen": x}) for i, x in enumerate(NO_TIME)
    ]
    events += [
        json.dumps({"event_id": f"no time {i} (time field)", "timestamp": x}) for i, x in enumerate(NO_TIME)
    ]
    events += [json.dumps({"event_id": f"refused {i}", "timestamp": x}) for i, x in enumerate(REFUSED)]
    events += [
        json.dumps({"event_id": f"refused {i} (seen)", "timestamp": t, "seen": x})
        for i, x in enumerate(REFUSED)
    ]
    events += [
        json.dumps({"event_id": f"edge {i}", "timestamp": x, "seen": x}) for i, (x, _) in enumerate(EDGES)
    ]
    # an epoch number with JSON's own whitespace around it (a tab is JSON whitespace)
    events.append('{"event_id": "epoch",\t"timestamp":\t1704067205\t, "seen": " 2024-01-01T00:00:05Z\\t"}')
    return events


def test_job_sql_strips_time_texts_as_streamlabs_rule(flink_python: str, tmp_path: Path) -> None:
    events = _events()
    p, frame, refused = _run_streamlab(events, "padded")
    padded = {f"{name}: {where}" for name in PADS for where in ("before", "after", "around")}
    read = padded | {f"no time {i}" for i in range(len(NO_TIME))} | {"epoch"}
    read |= {f"edge {i}" for i, (_, ok) in enumerate(EDGES) if ok}
    assert set(frame["event_id"]) == read  # streamlab's rule, which the job must follow
    seen = {r.event_id: None if pd.isna(r.seen) else _job_time(r.seen) for r in frame.itertuples()}
    expected = {r.event_id: (_job_time(r.timestamp), seen[r.event_id]) for r in frame.itertuples()}
    assert expected["tab: before"] == ("2024-01-01T00:00:00.500Z",) * 2

    output, sinks = _run_job_sql(flink_python, p, events, tmp_path)
    rows = [json.loads(x) for x in _lines(output / sinks["d"])]
    # the job dead-lettered every record padded with other whitespace than spaces, and "seen": "\t"
    assert {r["event_id"]: (r["timestamp"], r["seen"]) for r in rows} == expected
    dead_rows = [json.loads(x) for x in _lines(output / sinks["parse.dead_letter"])]
    assert sorted(json.loads(r["raw"])["event_id"] for r in dead_rows) == refused


EPOCH_1965 = -152668795  # 1965-03-01T00:00:05Z in epoch seconds
OLD = [  # (id, key, time): before 1970, beside times the job cannot read
    ("o1", "a", "1965-03-01T00:00:01Z"),
    ("u1", "a", "not a time"),  # unreadable: a dead letter, whose rowtime must not move the watermark
    ("o2", "a", EPOCH_1965),
    ("o3", "b", "1965-03-01T00:00:09.999Z"),
    ("u2", "b", None),  # missing
    ("o4", "a", (EPOCH_1965 + 8) * 1000),  # milliseconds: 1965-03-01T00:00:13Z
    ("u3", "a", "\t"),  # no time
    ("o5", "b", "1965-03-01T00:00:02Z"),  # behind the others, within the delay
    ("o6", "a", "1969-12-31T23:59:55.5Z"),  # the window that ends at the epoch
    ("o7", "a", "1969-12-31T23:59:59.999Z"),
    ("u4", "b", "1677-01-01T00:00:00Z"),  # before 64-bit nanoseconds: no time in streamlab
    ("o8", "b", "1970-01-01T00:00:00Z"),
    ("o9", "a", -0.001),  # a millisecond before the epoch, as epoch seconds
]


def test_job_sql_windows_times_before_1970_beside_unreadable_times(flink_python: str, tmp_path: Path) -> None:
    events = [
        json.dumps({"event_id": i, "k": k, **({} if t is None else {"timestamp": t})}) for i, k, t in OLD
    ]
    p = Pipeline(ListSource([x.encode() for x in events]), name="old")
    out, late, dead = ListSink(), ListSink(), ListSink()
    parsed = p.parse({"event_id": "string", "k": "string", "timestamp": "timestamp"})
    windows = parsed.window(TumblingWindow("10s"), key="k", delay="1m", step_id="w").agg(agg.count())
    windows.to(out)
    windows.late.to(late)
    parsed.dead_letter.to(dead)
    p.run()
    assert late.frame().empty  # no row is late in streamlab: Flink SQL, which drops late rows, must agree
    expected = sorted(
        (r.k, _job_time(r.window_start), _job_time(r.window_end), r.count) for r in out.frame().itertuples()
    )
    assert expected == [
        ("a", "1965-03-01T00:00:00.000Z", "1965-03-01T00:00:10.000Z", 2),
        ("a", "1965-03-01T00:00:10.000Z", "1965-03-01T00:00:20.000Z", 1),
        ("a", "1969-12-31T23:59:50.000Z", "1970-01-01T00:00:00.000Z", 3),
        ("b", "1965-03-01T00:00:00.000Z", "1965-03-01T00:00:10.000Z", 2),
        ("b", "1970-01-01T00:00:00.000Z", "1970-01-01T00:00:10.000Z", 1),
    ]
    refused = sorted(json.loads(r.decode())["event_id"] for r in dead.frame()["raw"])
    assert refused == ["u1", "u2", "u3", "u4"]

    output, sinks = _run_job_sql(flink_python, p, events, tmp_path)
    rows = [json.loads(x) for x in _lines(output / sinks["w"])]
    assert sorted((r["k"], r["window_start"], r["window_end"], r["count"]) for r in rows) == expected
    dead_rows = [json.loads(x) for x in _lines(output / sinks["parse.dead_letter"])]
    assert sorted(json.loads(r["raw"])["event_id"] for r in dead_rows) == refused
