"""Spark export of dedup: streamlab's own rule (``Dedup``) in one ``applyInPandasWithState`` group.

Before, the job used ``dropDuplicatesWithinWatermark``, whose state only expires when the watermark moves
between micro-batches: an id repeated more than the ttl after its first occurrence was dropped when both
copies were in one micro-batch (streamlab passes it), and ``max_ids`` was not reproduced. Where Spark
cannot run the rule (another ``applyInPandasWithState`` in the same query), the old translation stays and
``verify`` names the difference in its notes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streamlab import Pipeline, TumblingWindow, agg
from streamlab.detectors import ZScoreFeature
from streamlab.export import verify
from streamlab.export.spark import DEDUP_FALLBACK_WHY, compare_spark, compared_streams, rule_dedups, to_spark
from streamlab.export.verify import run_local
from streamlab.testing import ListSource

SCHEMA = {"event_id": "string", "timestamp": "timestamp", "n": "int64", "k": "json"}
BIG = 2**63 - 1


def line(event_id: str | None, seconds: int, n: int | None = 1, k: str = "1") -> bytes:
    minutes, sec = divmod(seconds, 60)
    fields = [] if event_id is None else [f'"event_id": "{event_id}"']
    fields.append(f'"timestamp": "2024-01-01T00:{minutes:02d}:{sec:02d}Z"')
    if n is not None:
        fields.append(f'"n": {n}')
    fields.append(f'"k": {k}')
    return ("{" + ", ".join(fields) + "}").encode()


# in arrival order; the comments say what streamlab's rule (ttl 1m, max_ids 3 on event_id) does
SAMPLE = [
    line("e1", 1, k="1"),  # e1 remembered at 0:01
    line("e1", 30, k="1.0"),  # repeat within the ttl: dropped
    line("e2", 40, n=None, k="true"),
    line("e1", 301, n=BIG, k='{"a": 1}'),  # 5 minutes after e1's first: a new event, passes
    line(None, 302, k='{"a":1}'),  # the id None
    line(None, 330, k="-0.0"),  # a repeat of None within the ttl: dropped
    line("e3", 331, k="0.0"),
    line("e4", 332, k="[1, 2]"),  # max_ids 3: e1 (oldest) forgotten
    line("e5", 333, k="[1,2]"),  # None forgotten
    line("e1", 340, k="false"),  # e1 was forgotten for max_ids: passes again
    line("e2", 20, k="1"),  # far behind (ttl): not remembered, passes
]


@pytest.fixture(scope="module")
def spark() -> Iterator[Any]:
    from streamlab.export import spark as spark_export

    yield spark_export.spark_session()


def dedup_pipeline() -> Pipeline:
    p = Pipeline(ListSource([b"{}"]), name="dedup_rule")
    events = p.parse(SCHEMA)
    uniq = events.dedup("event_id", ttl="1m", max_ids=3)
    uniq.select("event_id", "timestamp", "n", step_id="kept")
    uniq.window(TumblingWindow("10s"), step_id="window").agg(agg.count())
    events.dedup("k", ttl="1m", step_id="by_k").select("event_id", "k", step_id="kept_k")
    return p


def test_a_repeat_after_the_ttl_in_one_micro_batch_passes_as_in_streamlab(spark: Any, tmp_path: Path) -> None:
    """The tester's repro: e1 at 0:01 and again at 5:01 (ttl 1m) in one micro-batch is two events."""
    p = Pipeline(ListSource([b"{}"]), name="fz")
    p.parse({"event_id": "string", "timestamp": "timestamp"}).dedup("event_id", ttl="1m").window(
        TumblingWindow("10s")
    ).agg(agg.count())
    sample = [line("e1", 1), line("e1", 301)]
    report = verify(p, [s.replace(b', "n": 1, "k": 1', b"") for s in sample], "spark", workdir=tmp_path)
    assert report.equal, report.diff
    assert report.counts["window"] == {"streamlab": 2, "spark": 2}
    assert (
        "dedup: streamlab's dedup rule (one applyInPandasWithState group, rows in arrival order)"
        in report.notes
    )


def test_the_dedup_is_streamlabs_rule_on_spark(spark: Any, tmp_path: Path) -> None:
    """ttl, max_ids, the id None, json ids told apart by type (-0.0 is 0.0) and values kept exactly."""
    p = dedup_pipeline()
    assert rule_dedups(p) == {"dedup", "by_k"}
    report = verify(p, SAMPLE, "spark", workdir=tmp_path)
    assert report.equal, report.diff
    kept = report.exported["kept"]
    assert kept["event_id"].tolist().count("e1") == 3 == report.local["kept"]["event_id"].tolist().count("e1")
    assert len(kept) == len(report.local["kept"]) == 9
    assert BIG in [int(v) for v in kept["n"].dropna()]  # through the dedup without a float64 detour
    # kept_k drops the time column: the end-of-input row (known by its time) stops before it
    assert report.counts["kept_k"]["spark"] == report.counts["kept_k"]["streamlab"] == 8
    code = report.files.module.read_text()
    assert "dropDuplicates" not in code.split("def build(")[1]


def test_a_dedup_sharing_its_query_with_a_detector_falls_back_and_says_so(tmp_path: Path) -> None:
    """Spark allows one applyInPandasWithState per query: a dedup before a feature step keeps
    dropDuplicatesWithinWatermark, the module says what differs, and so do verify's notes."""
    p = Pipeline(ListSource([b"{}"]), name="fallback")
    uniq = p.parse({"event_id": "string", "timestamp": "timestamp", "x": "float64"}).dedup(
        "event_id", ttl="1m"
    )
    uniq.apply(ZScoreFeature("event_id", "x"), step_id="z")
    assert rule_dedups(p) == set()
    code = to_spark(p, tmp_path).module.read_text()
    assert "dropDuplicatesWithinWatermark(['event_id'])" in code
    assert f"# dedup: dropDuplicatesWithinWatermark, not streamlab's rule: {DEDUP_FALLBACK_WHY}" in code
    local = run_local(p, [line("e1", 1), line("e1", 301)])
    compared = compared_streams(p, ["z"])
    same = {ref: local[ref].copy() for ref in compared}
    _, _, _, notes = compare_spark(p, local, same, compared, {})
    assert f"dedup: dropDuplicatesWithinWatermark, not streamlab's rule: {DEDUP_FALLBACK_WHY}" in notes
    assert "a repeat more than the ttl after its id's first occurrence is dropped" in DEDUP_FALLBACK_WHY


def test_which_dedups_run_the_rule() -> None:
    """The rule where the input has its arrival sequence and the query no other applyInPandasWithState."""
    p = Pipeline(ListSource([b"{}"]), name="which")
    events = p.parse({"event_id": "string", "timestamp": "timestamp", "k": "string"})
    events.filter("k == 'x'", step_id="f").dedup("event_id", ttl="1m", step_id="a")
    counts = events.window(TumblingWindow("1m"), key="k", step_id="w").agg(agg.count())
    counts.dedup("k", time="window_start", step_id="after_window")  # window results: no arrival order
    twice = events.dedup("event_id", step_id="b").dedup("k", step_id="c")  # two in one query
    twice.filter("k == 'y'", step_id="g")
    assert rule_dedups(p) == {"a"}


def test_the_job_run_as_a_program_keeps_the_repeat_after_the_ttl(tmp_path: Path) -> None:
    """The exported module as spark-submit runs it (``__main__``, its own Python workers): the README's
    backfill command on the tester's repro gives streamlab's two windows."""
    import subprocess
    import sys

    from streamlab.export.spark import END_OF_INPUT

    p = Pipeline(ListSource([b"{}"]), name="as_program")
    p.parse({"event_id": "string", "timestamp": "timestamp"}).dedup("event_id", ttl="1m").window(
        TumblingWindow("10s")
    ).agg(agg.count())
    module = to_spark(p, tmp_path / "job").module
    src = tmp_path / "in"
    src.mkdir()
    lines = [b'{"event_id": "e1", "timestamp": "2024-01-01T00:00:01Z"}']
    lines.append(b'{"event_id": "e1", "timestamp": "2024-01-01T00:05:01Z"}')
    (src / "a.jsonl").write_bytes(b"\n".join([*lines, END_OF_INPUT]) + b"\n")
    out, ckpt = tmp_path / "out", tmp_path / "ck"
    argv = [
        str(module),
        "--input",
        f"{src}/",
        "--output",
        str(out),
        "--checkpoint",
        str(ckpt),
        "--available-now",
    ]
    # as a small cluster would be configured (spark-defaults.conf): 200 shuffle partitions is minutes here
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "spark-defaults.conf").write_text("spark.master local[2]\nspark.sql.shuffle.partitions 2\n")
    env = {**os.environ, "SPARK_CONF_DIR": str(conf)}
    done = subprocess.run([sys.executable, *argv], capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [
        json.loads(x) for part in sorted((out / "window").rglob("part-*")) for x in part.read_text().split()
    ]
    assert sorted(r["window_start"][:19] for r in rows) == ["2024-01-01T00:00:00", "2024-01-01T00:05:00"]
    assert [r["count"] for r in rows] == [1, 1]
