"""The Flink export's README: its run_sql.py command sets the variables job.sql names, and only those.

It always said ``INPUT_PATH=events.jsonl OUTPUT_PATH=out python run_sql.py job.sql``; a job reading Kafka
(the default source) names no INPUT_PATH, and run_sql.py stopped at its unset KAFKA_* placeholders.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.export import to_flink
from streamlab.testing import ListSource


@pytest.mark.parametrize("source", ["files", "kafka", "kinesis"])
def test_readme_run_sql_command_sets_what_job_sql_names(source: str, tmp_path: Path) -> None:
    p = Pipeline(ListSource([b"{}"]), name="readme")
    p.parse({"timestamp": "timestamp", "k": "string"}).window(TumblingWindow("1m"), key="k").agg(agg.count())
    files = to_flink(p, tmp_path, source=source)
    sql = "\n".join(x for x in files.read("job.sql").splitlines() if not x.lstrip().startswith("--"))
    named = set(re.findall(r"\$\{(\w+)\}", sql))
    readme = files.read("README.md")
    block = readme.split("(as the SQL client would)", 1)[1]
    said, command = block.split("```\n", 2)[:2]
    command = command.strip()
    assert command.endswith("python run_sql.py job.sql")
    on_line = set(re.findall(r"(\w+)=", command))
    in_text = set(re.findall(r"`(\w+)`", said))
    assert on_line | in_text == named, (command, said, named)
    assert ("INPUT_PATH" in on_line) == (source == "files")  # a Kafka job reads no INPUT_PATH
