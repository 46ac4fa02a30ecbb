"""Flink SQL export: the jobs' JSON outputs hold the rows streamlab's JSON sinks write.

Found by running the exported jobs as programs on events of the default schema:

* ``job.sql`` read every field with ``JSON_VALUE``, which gives NULL for an object or an array: every
  event's ``properties`` came out null;
* ``main.py`` (and ``job.sql``) wrote a json or object field through Flink's JSON format as a quoted text
  (``"properties": "{\\"amount\\": 5}"``), and event times without a zone (``2024-01-01T00:00:01.123``),
  which a reader takes as local time.

Both jobs now read json and object fields with ``JSON_QUERY`` and write each row's JSON themselves
(``JSON_OBJECT`` with ``JSON()`` for the nested values, the ``raw`` format). The test runs each job with its
own command line, reads its output files and compares them with streamlab's ``JsonLinesSink`` file as
JSON values (times as instants: Flink SQL's resolution is the millisecond).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from streamlab import Pipeline
from streamlab.export import to_flink
from streamlab.export.flink import _load_constants
from streamlab.sinks import JsonLinesSink
from streamlab.testing import ListSource

SCHEMA = {
    "event_id": "string",
    "user_id": "string",
    "timestamp": "timestamp",
    "properties": "object",
    "j": "json",
    "x": "float64",
    "n": "int64",
    "ok": "bool",
}
EVENTS = [
    '{"event_id":"e0","user_id":"u0","timestamp":"2024-01-01T00:00:01.123Z",'
    '"properties":{"amount":5,"tags":["a",{"b":null}],"city":"S\\u00e3o Paulo"},"j":"s","x":1.5,"n":7,"ok":true}',
    '{"event_id":"e1","user_id":"u1","timestamp":"2024-01-01T00:00:02Z","properties":{},"j":[1,2],"x":2}',
    '{"event_id":"e2","user_id":"u1","timestamp":"2024-01-01T00:00:03Z","j":{"k":[true,null]},"ok":false}',
    '{"event_id":"e3","user_id":null,"timestamp":"2024-01-01T00:00:04Z","j":5.5,"properties":{"q":"a\\"b"}}',
    '{"event_id":"e4","user_id":"u2","timestamp":"2024-01-01T00:00:05Z","j":null,"n":-3}',
]


def _strict(text: str) -> Any:
    return json.loads(text, parse_constant=lambda c: pytest.fail(f"not JSON: {c} in {text}"))


def _rows(lines: list[str]) -> Counter[str]:
    """The rows as JSON values, times as their instant in milliseconds."""
    out = []
    for line in lines:
        row = _strict(line)
        row["timestamp"] = pd.Timestamp(row["timestamp"]).value // 1_000_000
        out.append(json.dumps(row, sort_keys=True))
    return Counter(out)


def _streamlab_rows(tmp_path: Path) -> tuple[Pipeline, Counter[str]]:
    out = tmp_path / "streamlab.jsonl"
    p = Pipeline(ListSource([x.encode() for x in EVENTS]), name="json_lines")
    p.parse(SCHEMA).dedup("event_id", ttl="10m", step_id="d").to(JsonLinesSink(str(out)))
    p.run()
    return p, _rows(out.read_text().splitlines())


def _outputs(directory: Path) -> list[str]:
    files = sorted(f for f in directory.rglob("*") if f.is_file() and not f.name.startswith("."))
    return [x for f in files for x in f.read_text().splitlines() if x.strip()]


@pytest.mark.parametrize("job", ["main.py", "job.sql"])
def test_the_sql_jobs_json_files_hold_streamlabs_rows(flink_python: str, tmp_path: Path, job: str) -> None:
    p, expected = _streamlab_rows(tmp_path)
    files = to_flink(p, tmp_path / "export", source="files")
    assert "job.sql" in files.files and "main.py" in files.files  # (the SQL jobs, not datastream.py alone)
    sample = tmp_path / "events.jsonl"
    sample.write_text("".join(x + "\n" for x in EVENTS))
    output = tmp_path / "out"
    if job == "main.py":
        command = [flink_python, "main.py", "--input", str(sample), "--output", str(output)]
        env = dict(os.environ)
    else:
        command = [flink_python, "run_sql.py", "job.sql"]
        env = {**os.environ, "INPUT_PATH": str(sample), "OUTPUT_PATH": str(output)}
    done = subprocess.run(command, cwd=files.directory, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    sink = _load_constants(files.directory / "main.py")["OUTPUTS"]["d"]  # the output's directory
    lines = _outputs(output / sink)
    assert len(lines) == len(EVENTS) and _rows(lines) == expected, (lines, expected)
    first = next(_strict(x) for x in lines if '"e0"' in x)
    assert first["properties"]["tags"] == ["a", {"b": None}]  # nested, not a quoted text
    assert first["timestamp"] == "2024-01-01T00:00:01.123Z"  # with its zone


@pytest.mark.parametrize("version", ["1.15", "1.20", "2.0", "2.3"])
def test_the_json_lines_use_only_functions_of_the_flink_version(tmp_path: Path, version: str) -> None:
    # JSON() inside JSON_OBJECT came with Flink 2.1: the lines are CONCAT and JSON_STRING (1.15 on), so an
    # export for AWS Managed Flink 1.20 runs there
    p, _ = _streamlab_rows(tmp_path)
    files = to_flink(p, tmp_path / version, source="files", flink_version=version)
    for name in ("job.sql", "main.py"):
        text = files.read(name)
        assert "JSON_STRING(" in text and "JSON(" not in text.replace("JSON_STRING(", "").replace(
            "JSON_QUERY(", ""
        )
