"""SyntheticSource: the Source contract, pacing by a ManualClock, and snapshot/resume equality."""

from __future__ import annotations

import pickle

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from streamlab.datasets import SyntheticSource, generate_clickstream, generate_iot, generate_transactions
from streamlab.datasets._common import BLOCK

from streamlab.clock import ManualClock
from streamlab.io import Source, SourceReader

START = "2024-01-01T00:00:00Z"
START_NS = pd.Timestamp(START).value


def _drain(reader: SourceReader, max_events: int = 10**9) -> list[pd.DataFrame]:
    out = []
    while (batch := reader.poll(max_events)) is not None:
        out.append(batch)
    return out


def _concat(batches: list[pd.DataFrame]) -> pd.DataFrame:
    return pd.concat(batches, ignore_index=True)


def test_is_a_source_and_declares_its_columns() -> None:
    source = SyntheticSource("transactions", n=10, seed=1)
    assert isinstance(source, Source)
    reader = source.open(clock=ManualClock(START))
    assert isinstance(reader, SourceReader)
    assert source.columns == tuple(generate_transactions(3).columns)


@pytest.mark.parametrize(
    ("kind", "generate"),
    [("clickstream", generate_clickstream), ("transactions", generate_transactions), ("iot", generate_iot)],
)
def test_bounded_stream_equals_the_generator_and_ends(kind: str, generate) -> None:
    n = BLOCK + 500
    clock = ManualClock(START)
    source = SyntheticSource(kind, n=n, seed=3, events_per_second=5000, start=START, batch_size=4000)
    reader = source.open(clock=clock)
    batches = []
    while not reader.done:
        clock.advance("1s")
        batches.extend(_drain(reader))
    assert all(len(b) <= 4000 for b in batches)
    # with the generator's defaults: an iot stream of n events drifts from 60 % on, as generate_iot
    # (the source used to have no drift unless given drift_at)
    pd.testing.assert_frame_equal(_concat(batches), generate(n, seed=3, start=START, events_per_second=5000))
    assert reader.poll(100) is None
    assert reader.next_ready_ns() is None
    assert reader.lag() == 0


def test_poll_returns_only_what_has_arrived_and_next_ready_says_when_more_comes() -> None:
    clock = ManualClock(START)
    reader = SyntheticSource("clickstream", n=2000, events_per_second=100, seed=5, start=START).open(
        clock=clock
    )
    # Arrivals begin `disorder` (5 s) after start.
    assert reader.poll(100) is None
    due = reader.next_ready_ns()
    assert due is not None and due >= START_NS + 5 * 10**9
    clock.advance(pd.Timedelta(due - START_NS, "ns"))
    first = reader.poll(100)
    assert first is not None and len(first) >= 1
    assert reader.next_ready_ns() > clock.now_ns()
    assert reader.poll(100) is None
    # Ten seconds at 100 events per second bring about a thousand events (Poisson, plus bursts).
    clock.advance("10s")
    assert 700 < reader.lag() < 1400
    lag = reader.lag()
    got = _concat(_drain(reader, 64))
    assert len(got) == lag
    assert reader.next_ready_ns() > clock.now_ns()


def test_batch_size_and_max_events_cap_a_poll() -> None:
    clock = ManualClock(START)
    reader = SyntheticSource("iot", n=500, events_per_second=100, batch_size=30, start=START).open(
        clock=clock
    )
    clock.advance("1h")
    assert len(reader.poll(1000)) == 30
    assert len(reader.poll(7)) == 7
    assert reader.poll(0) is None
    assert reader.lag() == 463


def test_unbounded_stream_follows_the_clock_from_open() -> None:
    clock = ManualClock("2025-06-01T08:00:00Z")
    reader = SyntheticSource("clickstream", seed=2, late_share=0.0).open(clock=clock)
    assert not reader.done
    # Arrivals begin when the reader opens: the first one is due within a fraction of a second.
    assert clock.now_ns() <= reader.next_ready_ns() < clock.now_ns() + 10**9
    clock.advance("3s")
    batch = _concat(_drain(reader))
    assert 200 < len(batch) < 450
    assert batch["timestamp"].min() >= pd.Timestamp("2025-06-01T07:59:55Z")
    assert batch["timestamp"].max() <= clock.now()
    # Far past the first block: the stream goes on, and timestamps keep following the clock.
    clock.advance("10m")
    for _ in range(30):
        last = reader.poll(1000)
    assert not reader.done
    # About 60 000 events arrived in 10 minutes; 30 000 were taken, the rest is lag (estimated past a block).
    assert 24_000 < reader.lag() < 36_000
    assert last is not None and last["timestamp"].max() < clock.now()
    assert last["timestamp"].min() > pd.Timestamp("2025-06-01T08:04:00Z")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["clickstream", "transactions", "iot"]),
    n=st.none() | st.integers(0, 3 * BLOCK),
    steps=st.lists(st.tuples(st.integers(0, 4000), st.integers(1, 9000)), min_size=1, max_size=12),
    cut=st.integers(0, 12),
    seed=st.integers(0, 1000),
)
def test_snapshot_and_resume_mid_stream_equals_an_uninterrupted_run(
    kind: str, n: int | None, steps: list[tuple[int, int]], cut: int, seed: int
) -> None:
    source = SyntheticSource(kind, n=n, seed=seed, events_per_second=4000, batch_size=5000)
    clock_a, clock_b = ManualClock(START), ManualClock(START)
    straight = source.open(clock=clock_a)
    first = source.open(clock=clock_b)
    got_a: list[pd.DataFrame] = []
    got_b: list[pd.DataFrame] = []
    reader_b = first
    for i, (advance_ms, max_events) in enumerate(steps):
        if i == cut:
            # Stop, pickle the position, and continue in a new reader (as after a restart).
            reader_b.close()
            reader_b = source.open(resume=pickle.loads(pickle.dumps(reader_b.snapshot())), clock=clock_b)
        for clock in (clock_a, clock_b):
            clock.advance(f"{advance_ms}ms")
        assert straight.next_ready_ns() == reader_b.next_ready_ns()
        for reader, sink in ((straight, got_a), (reader_b, got_b)):
            batch = reader.poll(max_events)
            if batch is not None:
                sink.append(batch)
        assert straight.done == reader_b.done
    if got_a:
        pd.testing.assert_frame_equal(_concat(got_a), _concat(got_b))
    else:
        assert not got_b


def test_resume_after_downtime_delivers_the_backlog_at_once() -> None:
    clock = ManualClock(START)
    source = SyntheticSource("transactions", n=300, events_per_second=10, seed=1)
    reader = source.open(clock=clock)
    clock.advance("5s")
    head = _concat(_drain(reader))
    snap = reader.snapshot()
    reader.close()
    clock.advance("1h")
    resumed = source.open(resume=snap, clock=clock)
    tail = _concat(_drain(resumed))
    assert resumed.done
    full = generate_transactions(300, seed=1, events_per_second=10, start=START)
    pd.testing.assert_frame_equal(_concat([head, tail]), full)


def test_snapshot_of_another_source_is_refused() -> None:
    clock = ManualClock(START)
    snap = SyntheticSource("iot", seed=1).open(clock=clock).snapshot()
    with pytest.raises(ValueError, match="different source"):
        SyntheticSource("iot", seed=2).open(resume=snap, clock=clock)


def test_spec_round_trip_pickle_and_repr() -> None:
    source = SyntheticSource(
        "transactions", n=100, seed=4, batch_size=50, start=START, fraud_share=0.05, pattern_weights=(1, 1, 0)
    )
    spec = source.spec()
    assert spec["kind"] == "synthetic" and spec["generator"] == "transactions"
    assert spec["pattern_weights"] == [1, 1, 0] and spec["start"] == "2024-01-01T00:00:00+00:00"
    again = SyntheticSource.from_spec(spec)
    assert again.spec() == spec
    assert pickle.loads(pickle.dumps(source)).spec() == spec
    assert repr(source).startswith("SyntheticSource('transactions', n=100")
    assert SyntheticSource("clickstream", rate="20/s").spec()["events_per_second"] == 20.0
    with pytest.raises(AttributeError, match="immutable"):
        source.n = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kind": "weather"}, "unknown kind.*clickstream, iot, transactions"),
        ({"kind": "iot", "fraud_share": 0.1}, "unknown parameter.*fraud_share.*n_devices"),
        ({"kind": "clickstream", "late_share": 2.0}, "late_share"),
        ({"kind": "clickstream", "batch_size": 0}, "batch_size"),
        ({"kind": "clickstream", "n": -1}, "n must be"),
        ({"kind": "clickstream", "events_per_second": -5}, "positive"),
        ({"kind": "iot", "drift_at": 0.5}, "fraction needs a bounded stream"),
        ({"kind": "clickstream", "start": "someday"}, "start"),
    ],
)
def test_bad_configuration_fails_at_construction(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SyntheticSource(**kwargs)


def test_runs_in_a_pipeline_and_survives_a_yaml_round_trip() -> None:
    from streamlab import ListSink, Pipeline

    source = SyntheticSource("clickstream", n=1500, events_per_second=1000, seed=7, start=START)
    pipeline = Pipeline(source, name="synthetic-demo")
    sink = ListSink()
    pipeline.stream.to(sink)
    result = pipeline.run(clock=ManualClock(START))
    assert result.status == "finished"
    expected = generate_clickstream(1500, seed=7, events_per_second=1000, start=START)
    pd.testing.assert_frame_equal(sink.frame().reset_index(drop=True), expected)
    rebuilt = Pipeline.from_yaml(pipeline.to_yaml())
    (step,) = [s for s in rebuilt.steps.values() if hasattr(s, "source")]
    assert step.source.spec() == source.spec()


def _ids(result) -> list[str]:
    return result["source"]["event_id"].tolist()


def _clicks(batch_size: int):
    from streamlab import Pipeline

    return Pipeline(SyntheticSource("clickstream", n=300, seed=4, start=START, batch_size=batch_size))


def test_a_checkpoint_whose_fingerprint_held_the_batch_size_resumes(tmp_path, monkeypatch) -> None:
    # until batch sizes left a checkpoint's identity, a SyntheticSource pipeline's fingerprint held its
    # batch_size: after that, the checkpoints it had written were refused as another pipeline's
    from streamlab import _checkpoint

    whole = _ids(_clicks(50).run(clock=ManualClock(START)))
    earlier = tuple(w for w in _checkpoint._NOT_IDENTITY if w != "batch_size")
    with monkeypatch.context() as m:  # the fingerprint as streamlab computed it then
        m.setattr(_checkpoint, "_NOT_IDENTITY", earlier)
        written = _clicks(50)
        old_print = _checkpoint.pipeline_fingerprint(written)[0]
        first = _ids(written.run(clock=ManualClock(START), checkpoint_dir=tmp_path, max_events=120))
    assert old_print != _checkpoint.pipeline_fingerprint(_clicks(50))[0]
    rest = _ids(_clicks(50).run(clock=ManualClock(START), checkpoint_dir=tmp_path))
    assert 0 < len(first) < len(whole)
    assert first + rest == whole
    # and it is the new fingerprint's from then on: the next run resumes with another batch size
    assert _ids(_clicks(7).run(clock=ManualClock(START), checkpoint_dir=tmp_path)) == []


def test_a_checkpoint_resumes_with_another_batch_size(tmp_path) -> None:
    # the pipeline's fingerprint let it through, and the reader refused the snapshot as another source's
    whole = _ids(_clicks(50).run(clock=ManualClock(START)))
    first = _ids(_clicks(50).run(clock=ManualClock(START), checkpoint_dir=tmp_path, max_events=120))
    rest = _ids(_clicks(7).run(clock=ManualClock(START), checkpoint_dir=tmp_path))
    assert 0 < len(first) < len(whole)
    assert first + rest == whole
