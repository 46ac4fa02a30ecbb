"""verify compares a time column renamed by a select or copied by with_columns as a time.

``compared_outputs`` knew a column as a time by its name only (a parse's timestamp fields, ``first_time``,
``last_time``, ``time``). ``select(t="timestamp")`` or ``with_columns(seen="timestamp")`` gave a time
column of another name: streamlab's side held datetimes, the export's side the ISO text its files hold,
and every row was reported as differing although the Beam program's files were line for line those of
streamlab's ``JsonLinesSink`` (found running ``verify(target="beam")`` on such a pipeline). The test
compares streamlab's run with the rows its own JSON sink writes, which is what the Beam and Lambda
exports write.
"""

from __future__ import annotations

import json
from pathlib import Path

from streamlab import Pipeline
from streamlab.export.verify import (
    TIME_UNIT_NS,
    compare,
    compared_outputs,
    local_pipeline,
    rows_frame,
    run_local,
)
from streamlab.pipeline import Stream
from streamlab.sinks import JsonLinesSink
from streamlab.testing import ListSource

EVENTS = [
    b'{"event_id": "e0", "user_id": "u0", "timestamp": "2024-01-01T00:00:01.123456789Z"}',
    b'{"event_id": "e1", "user_id": "u1", "timestamp": "1969-12-31T23:59:59Z"}',
    b'{"event_id": "e2", "user_id": null, "timestamp": "2024-01-01T00:00:03Z"}',
]


def _pipeline() -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="renamed")
    events = p.parse({"event_id": "string", "user_id": "string", "timestamp": "timestamp"})
    copied = events.with_columns(seen="timestamp", step_id="copied")
    copied.select("event_id", "seen", t="timestamp", step_id="renamed")
    return p


def test_renamed_and_copied_times_are_compared_as_times(tmp_path: Path) -> None:
    p = _pipeline()
    outputs = compared_outputs(p, "beam")
    assert outputs["renamed"][1] == {"t", "seen"}
    local = run_local(p, EVENTS)
    # what the export writes: streamlab's JSON encoding of each row (the Beam and Lambda exports' dump_json)
    q = local_pipeline(p, EVENTS)
    Stream(q, "renamed").to(JsonLinesSink(str(tmp_path / "renamed.jsonl")))
    q.run()
    lines = (tmp_path / "renamed.jsonl").read_text().splitlines()
    written = {"renamed": rows_frame([json.loads(x) for x in lines])}
    assert written["renamed"]["t"].tolist()[0] == "2024-01-01T00:00:01.123456Z"  # text, as files hold it
    selected = {ref: outputs[ref] for ref in written}
    equal, diff, counts = compare(
        p, local, written, "beam", outputs=selected, time_unit_ns=TIME_UNIT_NS["beam"]
    )
    assert counts["renamed"] == {"streamlab": 3, "beam": 3}
    assert equal, diff.to_string()
    # a time one microsecond off is still a difference
    moved = written["renamed"].assign(t=written["renamed"]["t"].str.replace(".123456Z", ".123457Z"))
    equal, diff, _ = compare(
        p, local, {**written, "renamed": moved}, "beam", outputs=selected, time_unit_ns=1_000
    )
    assert not equal and len(diff) == 2


def test_the_flink_datastream_comparison_takes_them_as_times_too() -> None:
    """``datastream.py``'s outputs are compared on ``datastream_compared``'s columns, which had the same
    rule by name (verify(target="flink") on the pipeline above: 12 differing rows for 6 equal ones)."""
    from streamlab.export.flink_datastream import datastream_compared

    assert datastream_compared(_pipeline())["renamed"][1] == {"t", "seen"}


def test_objects_whose_keys_an_export_reordered_differ() -> None:
    """Nested values were compared with sorted keys, so an export writing ``{"alpha": .., "zeta": ..}``
    for streamlab's ``{"zeta": .., "alpha": ..}`` (the Spark job's json fields) was reported equal."""
    p = Pipeline(ListSource([b"{}"]), name="order")
    p.parse({"event_id": "string", "properties": "json", "timestamp": "timestamp"})
    line = b'{"event_id": "e0", "properties": {"zeta": 1, "alpha": [{"y": 1, "b": 2}]}, "timestamp": "2024-01-01T00:00:01Z"}'
    local = run_local(p, [line])
    outputs = {"parse": (["event_id", "properties"], set())}
    same = rows_frame([{"event_id": "e0", "properties": {"zeta": 1, "alpha": [{"y": 1, "b": 2}]}}])
    sorted_ = rows_frame([{"event_id": "e0", "properties": {"alpha": [{"b": 2, "y": 1}], "zeta": 1}}])
    assert compare(p, local, {"parse": same}, "beam", outputs=outputs)[0]
    assert not compare(p, local, {"parse": sorted_}, "beam", outputs=outputs)[0]
