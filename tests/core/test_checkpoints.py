"""Checkpoints: fingerprinted, signed, refused with a message naming the file; bounded collected outputs."""

from __future__ import annotations

import inspect
import json
import pickle
from pathlib import Path

import pandas as pd
import pytest

from streamlab import ListSink, ListSource, ManualClock, Pipeline, ReplaySource, TumblingWindow, agg
from streamlab._checkpoint import CHECKPOINT_FILE, CheckpointError, pipeline_fingerprint
from streamlab.runtime import run, start


def events(n: int, start: int = 0) -> list[dict[str, object]]:
    return [
        {
            "event_id": f"e{i}",
            "k": "ab"[i % 2],
            "timestamp": pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(i, "s"),
        }
        for i in range(start, start + n)
    ]


def windowed(
    source: object, size: str = "1m", sink: ListSink | None = None, name: str = "pipeline"
) -> Pipeline:
    p = Pipeline(source, name=name)  # type: ignore[arg-type]
    counts = p.window(TumblingWindow(size), key="k", delay="5m").agg(agg.count())
    if sink is not None:
        counts.to(sink)
    return p


def replay_file(tmp_path: Path, name: str, n: int) -> ReplaySource:
    path = tmp_path / f"{name}.parquet"
    pd.DataFrame(events(n)).to_parquet(path)
    return ReplaySource(path)


def test_a_checkpoint_of_another_pipeline_is_refused_naming_where_it_came_from(tmp_path):
    cp = tmp_path / "cp"
    a = windowed(replay_file(tmp_path, "a", 50), name="orders")
    a.run(clock=ManualClock(0), checkpoint_dir=cp, max_events=5)
    b = windowed(replay_file(tmp_path, "b", 50), name="orders")  # same name and steps, another source
    with pytest.raises(CheckpointError) as err:
        b.run(clock=ManualClock(0), checkpoint_dir=cp)
    message = str(err.value)
    assert str(cp / CHECKPOINT_FILE) in message
    assert "'orders'" in message and "'source'" in message  # who wrote it, and which step differs
    assert "new checkpoint_dir" in message  # how to start fresh
    c = windowed(replay_file(tmp_path, "a", 50), size="5m", name="orders")  # same source, other window
    with pytest.raises(CheckpointError, match=r"steps with other parameters or sources: \['window'\]"):
        c.run(clock=ManualClock(0), checkpoint_dir=cp)


def test_the_same_pipeline_with_another_sink_resumes_its_checkpoint(tmp_path):
    cp = tmp_path / "cp"
    source = replay_file(tmp_path, "a", 130)
    first = windowed(source, sink=ListSink()).run(clock=ManualClock(0), checkpoint_dir=cp, max_events=70)
    assert first.status == "stopped"
    later = ListSink()
    rest = windowed(source, sink=later).run(clock=ManualClock(0), checkpoint_dir=cp)
    assert rest.metrics["events_in"] == 60  # resumed after the 70 events read before
    assert later.frame()["count"].sum() == 130  # the open windows came back with the state


def test_resume_of_another_pipelines_in_memory_checkpoint_is_refused():
    a = windowed(ListSource(events(20)))
    result = a.run(clock=ManualClock(0), max_events=5)
    other = windowed(ListSource(events(20)), size="2m")
    with pytest.raises(CheckpointError, match="resume="):
        other.run(clock=ManualClock(0), resume=result.checkpoint)


@pytest.mark.parametrize("resume", ["ckpt/checkpoint.slcp", {"x": 1}, ["sources"]])
def test_resume_of_something_that_is_no_checkpoint_is_refused_with_the_fix(resume):
    # a path raised AttributeError ("'str' object has no attribute 'get'"); another dict was ignored,
    # so the run started again from the beginning as if resumed
    p = windowed(ListSource(events(20)))
    with pytest.raises(
        CheckpointError, match=r"resume=: it is \w+ .*not a checkpoint\. Fix: pass .*result\.checkpoint"
    ):
        p.run(clock=ManualClock(0), resume=resume)


class _RunsCode:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> object:
        return (Path.touch, (self.marker,))


def _forge(cp: Path, payload: bytes, header: dict[str, object]) -> None:
    import hashlib

    head = {**header, "payload_sha256": hashlib.sha256(payload).hexdigest(), "hmac": "0" * 64}
    (cp / CHECKPOINT_FILE).write_bytes(
        b"STREAMLAB-CHECKPOINT 2\n" + json.dumps(head, sort_keys=True).encode() + b"\n" + payload
    )


def test_a_crafted_checkpoint_does_not_run_code_on_resume(tmp_path):
    cp = tmp_path / "cp"
    cp.mkdir()
    marker = tmp_path / "ran"
    p = windowed(ListSource(events(5)))
    fingerprint, steps = pipeline_fingerprint(p)
    # the right fingerprint and checksum, but not signed with this user's key
    _forge(cp, pickle.dumps({"operators": _RunsCode(marker)}), {"fingerprint": fingerprint, "steps": steps})
    with pytest.raises(CheckpointError, match="not signed with this user's checkpoint key"):
        p.run(clock=ManualClock(0), checkpoint_dir=cp)
    assert not marker.exists()
    # a plain pickle from an older version is not loaded either
    (cp / CHECKPOINT_FILE).unlink()
    (cp / "checkpoint.pkl").write_bytes(pickle.dumps(_RunsCode(marker)))
    with pytest.raises(CheckpointError, match="checkpoint.pkl: it is a plain pickle"):
        p.run(clock=ManualClock(0), checkpoint_dir=cp)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda b: b[: len(b) // 2], "truncated or altered"),
        (lambda b: b"", "not a streamlab checkpoint"),
        (lambda b: b"STREAMLAB-CHECKPOINT 2\n{not json\n", "header cannot be read"),
        (lambda b: b"\x80\x04garbage", "not a streamlab checkpoint"),
    ],
)
def test_a_corrupt_checkpoint_raises_an_error_naming_its_path(tmp_path, damage, problem):
    cp = tmp_path / "cp"
    p = windowed(ListSource(events(30)))
    p.run(clock=ManualClock(0), checkpoint_dir=cp, max_events=10)
    path = cp / CHECKPOINT_FILE
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(CheckpointError) as err:
        windowed(ListSource(events(30))).run(clock=ManualClock(0), checkpoint_dir=cp)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_a_stop_without_checkpoint_dir_that_holds_open_windows_warns():
    p = windowed(ListSource(events(30)))
    with pytest.warns(RuntimeWarning, match=r"open state .*'window'.* no checkpoint_dir"):
        p.run(clock=ManualClock(0), max_events=10)


def test_a_finished_run_or_one_with_checkpoint_dir_does_not_warn(tmp_path, recwarn):
    windowed(ListSource(events(30))).run(clock=ManualClock(0))
    windowed(ListSource(events(30))).run(clock=ManualClock(0), checkpoint_dir=tmp_path, max_events=10)
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_run_and_start_bound_unattached_outputs_with_the_same_option_and_default():
    for fn in (run, start):
        assert inspect.signature(fn).parameters["max_collect_rows"].default == 100_000
    frame = pd.DataFrame({"x": range(1000)})
    result = Pipeline(ListSource(frame, batch_size=64)).run(clock=ManualClock(0), max_collect_rows=100)
    assert result["source"]["x"].tolist() == list(range(900, 1000))  # the newest, exactly the limit
    assert result.dropped == {"source": 900}
    assert result.metrics["collected_dropped"] == {"source": 900}
    assert result.metrics["collect_limit"] == 100
    assert "900 dropped" in repr(result)
    handle = Pipeline(ListSource(frame, batch_size=64)).start(clock=ManualClock(0), max_collect_rows=100)
    done = handle.wait(timeout=30)
    assert done is not None and len(done["source"]) == 100
    assert done.metrics["collected_dropped"] == {"source": 900} and done.metrics["collect_limit"] == 100


def test_collected_outputs_are_not_saved_in_checkpoints(tmp_path):
    frame = pd.DataFrame({"x": range(20_000)})
    p = Pipeline(ListSource(frame, batch_size=1000))
    result = p.run(clock=ManualClock(0), checkpoint_dir=tmp_path, max_events=10_000)
    assert len(result["source"]) == 10_000
    assert "collected" not in result.checkpoint
    assert (tmp_path / CHECKPOINT_FILE).stat().st_size < 2_000  # positions only, not 10,000 rows
    rest = Pipeline(ListSource(frame, batch_size=1000)).run(clock=ManualClock(0), checkpoint_dir=tmp_path)
    assert rest["source"]["x"].tolist() == list(range(10_000, 20_000))


def test_the_key_file_is_private_and_another_key_refuses_the_checkpoint(tmp_path, monkeypatch):
    from streamlab._checkpoint import checkpoint_key

    monkeypatch.delenv("STREAMLAB_CHECKPOINT_KEY", raising=False)
    monkeypatch.setenv("STREAMLAB_CONFIG_DIR", str(tmp_path / "config"))
    key = checkpoint_key()
    assert checkpoint_key() == key and len(key) == 64
    assert (tmp_path / "config" / "checkpoint.key").stat().st_mode & 0o777 == 0o600
    cp = tmp_path / "cp"
    windowed(ListSource(events(30))).run(clock=ManualClock(0), checkpoint_dir=cp, max_events=10)
    monkeypatch.setenv("STREAMLAB_CHECKPOINT_KEY", "the key of another machine")
    with pytest.raises(CheckpointError, match="set STREAMLAB_CHECKPOINT_KEY"):
        windowed(ListSource(events(30))).run(clock=ManualClock(0), checkpoint_dir=cp)


def test_source_tuning_keeps_the_fingerprint_and_its_data_does_not(tmp_path):
    path = tmp_path / "e.parquet"
    pd.DataFrame(events(5)).to_parquet(path)
    paced, fast = ReplaySource(path, speed=10.0), ReplaySource(path)
    assert pipeline_fingerprint(windowed(paced))[0] == pipeline_fingerprint(windowed(fast))[0]
    other = tmp_path / "f.parquet"
    pd.DataFrame(events(5)).to_parquet(other)
    assert pipeline_fingerprint(windowed(ReplaySource(other)))[0] != pipeline_fingerprint(windowed(fast))[0]


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_a_sink_changed_before_a_resume_starts_fresh_and_keeps_what_is_at_its_path(
    tmp_path: Path, kind: str
) -> None:
    # sink states were kept by step id only: the new sink got the old one's state, so an existing
    # JSON-lines file was cut to the old file's length and an existing dataset's Parquet parts deleted
    from streamlab import JsonLinesSink, ParquetSink

    def make(path: Path) -> object:
        return JsonLinesSink(str(path)) if kind == "jsonl" else ParquetSink(str(path))

    def run_into(path: Path, **kw: object) -> None:
        p = Pipeline(ListSource(events(40), batch_size=5))
        p.stream.to(make(path), step_id="out")
        p.run(clock=ManualClock(0), checkpoint_dir=tmp_path / "cp", **kw)

    run_into(tmp_path / "first", max_events=10)
    existing = tmp_path / "existing"
    if kind == "jsonl":
        existing.write_text("".join(f'{{"old": {i}}}\n' for i in range(1000)))
    else:
        existing.mkdir()
        for i in range(10):  # a dataset as ParquetSink names its parts
            pd.DataFrame({"old": [i]}).to_parquet(existing / f"part-{i:06d}.parquet")
    run_into(existing)  # resumed: the 30 events after the first 10
    if kind == "jsonl":
        lines = existing.read_text().splitlines()
        assert lines[:1000] == [f'{{"old": {i}}}' for i in range(1000)]
        assert len(lines) == 1030
    else:
        frame = pd.read_parquet(existing)
        assert frame["old"].notna().sum() == 10 and len(frame) == 40


@pytest.mark.parametrize("window", [TumblingWindow("1m"), "session"])
@pytest.mark.parametrize("by_partition", [False, True])
def test_windows_a_flushing_stop_emitted_stay_closed_after_a_resume(
    tmp_path: Path, window, by_partition
) -> None:
    # handle.stop(flush_windows=True) emitted the open window (count 8); the resumed run opened it again
    # and emitted a second, partial result (count 4) that overwrote the first in an upserting sink;
    # a flushed session was re-opened by an event that would have joined it
    from streamlab import SessionWindow
    from streamlab.testing import wait_for

    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    times = [t0 + pd.Timedelta(seconds=s) for s in range(0, 120, 5)]  # 24 events
    frame = pd.DataFrame({"k": "a", "part": 0, "timestamp": times})
    w = SessionWindow("30s") if window == "session" else window
    counts, late = ListSink(), ListSink()

    def build() -> Pipeline:
        p = Pipeline(ReplaySource(frame, speed=None, batch_size=4))
        by = {"watermark_by": "part"} if by_partition else {}
        out = p.stream.window(w, key="k", **by).agg(agg.count())
        out.to(counts)
        out.late.to(late)
        return p

    cp = tmp_path / "cp"
    handle = start(build(), clock=ManualClock(0), paused=True, checkpoint_dir=cp, batch_size=4)
    handle.step(2)
    wait_for(lambda: handle.metrics["events_in"] == 8, timeout=30, what="two batches")
    handle.stop(flush_windows=True)
    flushed = counts.frame()
    assert flushed["count"].tolist() == [8]
    run(build(), clock=ManualClock(0), checkpoint_dir=cp, batch_size=4)
    emitted = counts.frame()
    starts = emitted["window_start"].tolist()
    assert len(set(starts)) == len(starts)  # no window emitted twice
    assert int(emitted["count"].sum()) + len(late.frame()) == 24  # nothing lost
    assert len(late.frame()) >= 4  # the flushed window's later events are late, as after any close


def test_two_runs_cannot_share_a_checkpoint_dir_at_once(tmp_path: Path) -> None:
    # a notebook's p.start(...) cell run again while the first run went on: both wrote the directory's
    # checkpoints and sinks, and windows were emitted twice
    from streamlab._checkpoint import CheckpointError

    cp = tmp_path / "cp"
    first = start(
        windowed(ListSource(events(50)), sink=ListSink()),
        clock=ManualClock(0),
        paused=True,
        checkpoint_dir=cp,
    )
    try:
        with pytest.raises(
            CheckpointError, match=r"another run is using it \(pipeline 'pipeline', pid \d+\)"
        ) as e:
            windowed(ListSource(events(50)), sink=ListSink()).run(clock=ManualClock(0), checkpoint_dir=cp)
        assert "handle.stop()" in str(e.value)
    finally:
        first.stop()
    # stopped, the directory is free: the next run resumes it
    result = windowed(ListSource(events(50)), sink=ListSink()).run(clock=ManualClock(0), checkpoint_dir=cp)
    assert result.status == "finished"


@pytest.mark.parametrize("raw", [True, False])
def test_a_replayed_file_replaced_before_a_resume_is_read_from_its_start(
    tmp_path: Path, raw: bool, caplog
) -> None:
    # the checkpoint kept a row position only: a rotated file's first rows were skipped without a word;
    # a file that only grew goes on from the position
    path = tmp_path / "events.jsonl"

    def write(prefix: str, n: int) -> None:
        path.write_text(
            "".join(
                f'{{"event_id": "{prefix}-{i}", "timestamp": "2024-01-01T00:00:{i % 60:02d}Z"}}\n'
                for i in range(n)
            )
        )

    def replay(**kw: object) -> list[str]:
        p = Pipeline(ReplaySource(path, raw=raw, speed=None, batch_size=10))
        events = p.parse({"event_id": "string", "timestamp": "timestamp"}) if raw else p.stream
        sink = ListSink()
        events.to(sink)
        p.run(clock=ManualClock(0), checkpoint_dir=tmp_path / "cp", batch_size=10, **kw)
        return sink.frame()["event_id"].astype(str).tolist() if len(sink.frame()) else []

    write("day1", 100)
    assert len(replay(max_events=60)) == 60
    with path.open("a") as f:  # grown: resumed from the position
        f.write('{"event_id": "day1-100", "timestamp": "2024-01-01T00:01:00Z"}\n')
    assert replay(max_events=20)[0] == "day1-60"
    write("day2", 30)  # replaced
    with caplog.at_level("WARNING", logger="streamlab"):
        got = replay()
    assert got[0] == "day2-0" and len(got) == 30
    assert any("is not the file its checkpoint read" in r.getMessage() for r in caplog.records)
