"""Pattern (CEP) semantics: sequences within a time bound, disorder, late events, resume."""

from __future__ import annotations

import itertools
import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab.detectors import Pattern, PatternStep

T0 = pd.Timestamp("2024-01-01", tz="UTC")

TAKEOVER = Pattern(
    key="user_id",
    name="takeover",
    within="5m",
    delay="30s",
    steps=[("failed", "event_type == 'login_failed'", 3), ("success", "event_type == 'login_success'")],
)


def frame(rows: list[tuple[str, str, str, float]]) -> pd.DataFrame:
    """Rows of (event_id, user_id, event_type, seconds after T0)."""
    return pd.DataFrame(
        {
            "event_id": [r[0] for r in rows],
            "user_id": [r[1] for r in rows],
            "event_type": [r[2] for r in rows],
            "timestamp": [T0 + pd.Timedelta(seconds=r[3]) for r in rows],
        }
    )


def run_all(pattern: Pattern, batches: list[pd.DataFrame]) -> tuple[pd.DataFrame, pd.DataFrame]:
    op = pattern.build()
    outs, lates = [], []
    for b in batches:
        res = op.process(b)
        outs.append(res["out"])
        if "late" in res:
            lates.append(res["late"])
    outs.append(op.on_end()["out"])
    late = pd.concat(lates, ignore_index=True) if lates else pd.DataFrame()
    return pd.concat(outs, ignore_index=True), late


def test_three_failures_then_success_matches_once() -> None:
    df = frame(
        [
            ("e1", "u1", "login_failed", 0),
            ("e2", "u1", "login_failed", 10),
            ("x1", "u2", "login_failed", 12),
            ("e3", "u1", "page_view", 15),
            ("e4", "u1", "login_failed", 20),
            ("e5", "u1", "login_success", 40),
            ("e6", "u1", "login_success", 50),
        ]
    )
    out, late = run_all(TAKEOVER, [df])
    assert late.empty
    assert out[["user_id", "pattern", "n_events"]].values.tolist() == [["u1", "takeover", 4]]
    assert out["event_ids"].iloc[0] == ["e1", "e2", "e4", "e5"]
    assert out["first_time"].iloc[0] == T0
    assert out["last_time"].iloc[0] == T0 + pd.Timedelta(seconds=40)


def test_stale_start_is_dropped_and_a_later_start_completes() -> None:
    # e1 is more than 5 minutes before the success, so the match must start at e2
    df = frame(
        [
            ("e1", "u1", "login_failed", 0),
            ("e2", "u1", "login_failed", 100),
            ("e3", "u1", "login_failed", 200),
            ("e4", "u1", "login_failed", 250),
            ("e5", "u1", "login_success", 310),
        ]
    )
    out, _ = run_all(TAKEOVER, [df])
    assert out["event_ids"].tolist() == [["e2", "e3", "e4", "e5"]]


def test_sequence_longer_than_within_does_not_match() -> None:
    df = frame(
        [(f"e{i}", "u1", "login_failed", i * 200) for i in range(3)] + [("s", "u1", "login_success", 700)]
    )
    out, _ = run_all(TAKEOVER, [df])
    assert out.empty
    assert list(out.columns) == ["user_id", "pattern", "first_time", "last_time", "event_ids", "n_events"]


def test_releases_without_matches_share_one_empty_frame_safely() -> None:
    """A release that matches nothing returns a shallow copy of a cached empty frame: the same
    columns and dtypes as a frame of matches built empty, and writing into one copy changes no other."""
    from streamlab.detectors._pattern import _matches_frame

    op = TAKEOVER.build()
    first = op.process(frame([("e0", "u1", "login_failed", 0)]))["out"]
    second = op.on_end()["out"]
    empty = np.empty(0, dtype=np.int64)
    built = _matches_frame(
        "user_id", TAKEOVER.name, 4, np.empty(0, dtype=object), empty, empty, np.empty((0, 4), dtype=object)
    )
    for out in (first, second):
        pd.testing.assert_frame_equal(out, built)
        assert out.dtypes.tolist() == built.dtypes.tolist()
    assert first is not second
    first["extra"] = 1.0
    assert "extra" not in op.on_end()["out"].columns


def test_out_of_order_within_delay_is_matched_in_event_time_order() -> None:
    # the success arrives before the last failure but is later in event time; no match may be lost
    df = frame(
        [
            ("e1", "u1", "login_failed", 0),
            ("e2", "u1", "login_failed", 5),
            ("e4", "u1", "login_success", 30),
            ("e3", "u1", "login_failed", 10),
        ]
    )
    out, late = run_all(TAKEOVER, [df.iloc[:3], df.iloc[3:]])
    assert late.empty
    assert out["event_ids"].tolist() == [["e1", "e2", "e3", "e4"]]


def test_late_events_go_to_late_output_and_are_not_matched() -> None:
    df = frame(
        [
            ("e1", "u1", "login_failed", 0),
            ("e2", "u1", "login_failed", 5),
            ("e4", "u1", "login_success", 100),
            ("e3", "u1", "login_failed", 10),  # 90s behind the newest event, delay is 30s: late
        ]
    )
    op = TAKEOVER.build()
    first = op.process(df.iloc[:3])
    assert first["out"].empty
    assert op.watermark_ns() == (T0 + pd.Timedelta(seconds=70)).value
    second = op.process(df.iloc[3:])
    assert second["late"]["event_id"].tolist() == ["e3"]
    assert op.on_end()["out"].empty
    assert op.open_state()["buffered_events"] == 0


def test_open_candidates_of_quiet_keys_are_dropped_once_they_cannot_complete() -> None:
    op = TAKEOVER.build()
    op.process(frame([("a1", "u1", "login_failed", 0), ("b1", "u2", "login_failed", 10)]))
    op.process(frame([("x", "u3", "page_view", 60)]))
    assert op.open_state()["keys_with_open_matches"] == 2
    op.process(frame([("y", "u3", "page_view", 400)]))  # watermark 370s: both are over 5 minutes old
    assert op.open_state()["keys_with_open_matches"] == 0


def test_card_used_in_two_countries_within_an_hour() -> None:
    pattern = Pattern(
        key="card_id",
        name="two_countries",
        within="1h",
        steps=[
            PatternStep("first", "event_type == 'payment'"),
            PatternStep("second", "event_type == 'payment'", differs_from={"country": "first"}),
        ],
    )
    df = pd.DataFrame(
        {
            "event_id": ["p1", "p2", "q1", "p3", "q2", "p4"],
            "card_id": ["c1", "c1", "c2", "c1", "c2", "c1"],
            "event_type": ["payment"] * 6,
            "country": ["FR", "FR", "DE", "US", "DE", "JP"],
            "timestamp": [T0 + pd.Timedelta(minutes=m) for m in (0, 5, 6, 30, 40, 200)],
        }
    )
    out, _ = run_all(pattern, [df])
    assert out["event_ids"].tolist() == [["p1", "p3"]]
    assert out["card_id"].tolist() == ["c1"]


def test_bad_rows_go_to_dead_letter() -> None:
    df = frame([("e1", "u1", "login_failed", 0)])
    df.loc[1] = ["e2", None, "login_failed", T0]
    df.loc[2] = ["e3", "u1", "login_failed", pd.NaT]
    res = TAKEOVER.build().process(df)
    assert sorted(res["dead_letter"]["event_id"]) == ["e2", "e3"]
    assert res["dead_letter"]["reason"].str.contains("missing").all()


@st.composite
def login_streams(draw: st.DrawFn) -> tuple[pd.DataFrame, list[int]]:
    n = draw(st.integers(1, 50))
    gaps = draw(st.lists(st.integers(0, 40), min_size=n, max_size=n))
    users = draw(st.lists(st.sampled_from(["u1", "u2"]), min_size=n, max_size=n))
    kinds = draw(
        st.lists(
            st.sampled_from(["login_failed", "login_failed", "login_success", "other"]),
            min_size=n,
            max_size=n,
        )
    )
    jitter = draw(st.lists(st.integers(0, 30), min_size=n, max_size=n))  # <= delay: never late
    secs = np.cumsum(gaps)
    df = frame([(f"e{i}", users[i], kinds[i], float(secs[i])) for i in range(n)])
    arrival = np.lexsort((np.arange(n), secs + np.array(jitter)))
    cuts = sorted(set(draw(st.lists(st.integers(1, max(1, n - 1)), max_size=4))))
    return df.iloc[arrival].reset_index(drop=True), cuts


@settings(max_examples=80, deadline=None)
@given(login_streams())
def test_disorder_within_delay_gives_the_in_order_result(stream: tuple[pd.DataFrame, list[int]]) -> None:
    shuffled, cuts = stream
    # event-time order, ties in arrival order: the order the operator promises to match in
    ordered = shuffled.sort_values("timestamp", kind="stable").reset_index(drop=True)
    bounds = [0, *cuts, len(shuffled)]
    parts = [shuffled.iloc[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    got, late = run_all(TAKEOVER, parts)
    expected, _ = run_all(TAKEOVER, [ordered])
    assert late.empty
    pd.testing.assert_frame_equal(got, expected)
    # snapshot after the first part, restore into a fresh operator, finish: same matches
    op = TAKEOVER.build()
    head = op.process(parts[0])["out"]
    resumed = TAKEOVER.build()
    resumed.restore(pickle.loads(pickle.dumps(op.snapshot())))
    tail = [resumed.process(p)["out"] for p in parts[1:]] + [resumed.on_end()["out"]]
    pd.testing.assert_frame_equal(pd.concat([head, *tail], ignore_index=True), got)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"steps": [("a", "x == 1"), ("a", "x == 2")]}, "two steps are named"),
        ({"steps": [PatternStep("a", "x == 1", differs_from={"c": "b"})]}, "is not an earlier step"),
        ({"steps": [("a", "x ==")]}, "not a valid expression"),
        ({"steps": [("a", "x == 1", 0)]}, "times must be"),
        ({"steps": []}, "non-empty list"),
        ({"steps": [("a", "x == 1")], "within": "0s"}, "within must be positive"),
        ({"steps": [("a", "x == 1")], "delay": "-1s"}, "delay must be zero or more"),
    ],
)
def test_bad_configuration_is_rejected(kwargs: dict, message: str) -> None:
    args = {"key": "user_id", "within": "5m", **kwargs}
    with pytest.raises(ValueError, match=message):
        Pattern(**args)


# --- the compiled matcher against the per-event one it replaced (tests/detectors/pattern_reference.py)

PATTERNS = [
    TAKEOVER,
    Pattern(
        key="user_id",
        name="two_countries",
        within="20m",
        delay="2m",
        steps=[
            PatternStep("home", "amount > 0"),
            PatternStep("abroad", "amount > 0", differs_from={"country": "home"}),
        ],
    ),
    Pattern(
        key="user_id",
        name="hop",
        within="1h",
        delay="0s",
        steps=[
            PatternStep("a", "event_type == 'login_failed'", times=2),
            PatternStep("b", "amount > 10", times=2, differs_from={"country": "a"}),
            PatternStep("c", "event_type != 'login_failed'", differs_from={"country": "b", "device": "a"}),
        ],
    ),
    Pattern(key="user_id", name="single", within="1m", steps=[("big", "amount > 40")]),
]


@st.composite
def cep_streams(draw: st.DrawFn) -> tuple[pd.DataFrame, int, int]:
    """Events of a few users with disorder, late events, missing values, keys and times."""
    n = draw(st.integers(0, 150)) if draw(st.booleans()) else 150
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    seconds = np.cumsum(rng.choice([0, 5, 20, 120, 1500], n, p=[0.2, 0.35, 0.3, 0.1, 0.05]))
    seconds = seconds - rng.choice([0, 0, 0, 60, 400], n)  # disorder, sometimes beyond the delay
    country = rng.choice(np.array(["FR", "US", "DE", None], dtype=object), n, p=[0.5, 0.25, 0.15, 0.1])
    users = rng.choice(np.array(["u1", "u2", "u3", None], dtype=object), n, p=[0.45, 0.3, 0.2, 0.05])
    data = pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "user_id": users,
            "event_type": rng.choice(["login_failed", "login_success", "payment"], n),
            "amount": np.round(rng.gamma(2.0, 15.0, n), 1),
            "country": country,
            "device": rng.choice(["ios", "web"], n),
            "timestamp": T0 + pd.to_timedelta(seconds, unit="s"),
        }
    )
    data.loc[rng.random(n) < 0.03, "timestamp"] = pd.NaT
    return data, draw(st.integers(1, max(n, 1))), draw(st.integers(0, n))


def _run(op_factory, data: pd.DataFrame, batch: int, restore_at: int | None) -> dict[str, pd.DataFrame]:
    op = op_factory()
    outs: dict[str, list[pd.DataFrame]] = {"out": [], "late": [], "dead_letter": []}
    cuts = sorted({*range(0, len(data), batch), *([restore_at] if restore_at else []), len(data)})
    for a, b in itertools.pairwise(cuts):
        if a == restore_at:
            snap = pickle.dumps(op.snapshot())
            op.process(data.iloc[a:])  # work after the snapshot must not leak into it
            op = op_factory()
            op.restore(pickle.loads(snap))
        for name, frame_ in op.process(data.iloc[a:b]).items():
            outs[name].append(frame_)
    outs["out"].append(op.on_end()["out"])
    return {k: pd.concat(v, ignore_index=True) if v else pd.DataFrame() for k, v in outs.items()}


@settings(max_examples=40)
@given(data=cep_streams(), which=st.integers(0, len(PATTERNS) - 1), compiled=st.booleans())
def test_matcher_equals_the_per_event_reference(
    data: tuple[pd.DataFrame, int, int], which: int, compiled: bool
) -> None:
    """Every batch size (1 included), restore mid-stream, late and dead-letter rows; compiled and plain Python."""
    from streamlab.detectors import _common

    from .pattern_reference import ReferencePatternOperator

    frame_, batch, restore_at = data
    pattern = PATTERNS[which]
    _common.use_kernels = compiled
    try:
        fast = _run(pattern.build, frame_, batch, restore_at)
    finally:
        _common.use_kernels = True
    ref = _run(lambda: ReferencePatternOperator(pattern), frame_, len(frame_) or 1, None)
    for name in ("out", "late", "dead_letter"):
        a, b = fast[name], ref[name]
        assert len(a) == len(b), name
        if len(a):
            pd.testing.assert_frame_equal(a, b, check_dtype=False)


@settings(max_examples=25)
@given(data=cep_streams(), which=st.integers(0, len(PATTERNS) - 1))
def test_snapshot_of_the_per_event_matcher_restores(data: tuple[pd.DataFrame, int, int], which: int) -> None:
    """A checkpoint taken by the per-event matcher (buffer and candidates as Python objects) resumes."""
    from .pattern_reference import ReferencePatternOperator

    frame_, _, cut = data
    pattern = PATTERNS[which]
    whole = _run(lambda: ReferencePatternOperator(pattern), frame_, len(frame_) or 1, None)
    old = ReferencePatternOperator(pattern)
    first = old.process(frame_.iloc[:cut])
    op = pattern.build()
    op.restore(old.snapshot())
    second = op.process(frame_.iloc[cut:])
    out = pd.concat([first["out"], second["out"], op.on_end()["out"]], ignore_index=True)
    assert len(out) == len(whole["out"])
    if len(out):
        pd.testing.assert_frame_equal(out, whole["out"], check_dtype=False)


@st.composite
def many_key_streams(draw: st.DrawFn) -> tuple[pd.DataFrame, int, int]:
    """Up to 120 events over up to 60 keys, ids and keys of several dtypes, missing values."""
    n = draw(st.integers(1, 120))
    n_keys = draw(st.integers(1, 60))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    seconds = np.cumsum(rng.choice([0, 1, 10, 60, 900], n)) - rng.choice([0, 0, 30, 200], n)
    keys = rng.integers(0, n_keys, n)
    data = pd.DataFrame(
        {
            "event_id": np.arange(n) * 7 if draw(st.booleans()) else [f"e{i}" for i in range(n)],
            "user_id": keys if draw(st.booleans()) else [f"k{k}" for k in keys],
            "event_type": rng.choice(["login_failed", "login_success", "payment"], n),
            "amount": np.round(rng.gamma(2.0, 15.0, n), 1),
            "country": rng.choice(np.array(["FR", "US", "DE", None], dtype=object), n),
            "device": rng.choice(["ios", "web"], n),
            "timestamp": T0 + pd.to_timedelta(seconds, unit="s"),
        }
    )
    return data, draw(st.sampled_from([1, 7, 50, n])), draw(st.integers(0, n))


@settings(max_examples=12, deadline=None)
@given(data=many_key_streams(), which=st.integers(0, len(PATTERNS) - 1))
def test_matcher_equals_the_reference_over_many_keys(data: tuple[pd.DataFrame, int, int], which: int) -> None:
    """Many keys (codes of a vocabulary kept across batches), integer or string ids and keys, restores."""
    from .pattern_reference import ReferencePatternOperator

    frame_, batch, restore_at = data
    pattern = PATTERNS[which]
    fast = _run(pattern.build, frame_, batch, restore_at)
    ref = _run(lambda: ReferencePatternOperator(pattern), frame_, len(frame_), None)
    for name in ("out", "late", "dead_letter"):
        assert len(fast[name]) == len(ref[name]), name
        if len(ref[name]):
            pd.testing.assert_frame_equal(fast[name], ref[name], check_dtype=False)


def test_state_of_gone_keys_is_compacted_and_matches_stay_the_references() -> None:
    """Keys, values and ids no pending event or open run holds are forgotten; matches are unchanged."""
    from .pattern_reference import ReferencePatternOperator

    n = 12_000
    rng = np.random.default_rng(5)
    data = pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(n)],
            "user_id": [f"u{i // 3}" for i in range(n)],  # each key is seen three times, then never again
            "event_type": "payment",
            "amount": 1.0,
            "country": rng.choice(["FR", "US"], n),
            "device": "web",
            "timestamp": T0 + pd.to_timedelta(np.arange(n) * 2, unit="s"),
        }
    )
    pattern = PATTERNS[1]  # two countries within 20 minutes
    op = pattern.build()
    outs = [op.process(data.iloc[a : a + 1000])["out"] for a in range(0, n, 1000)]
    assert len(op.keys) < 3000 and op.ids.size < 3 * len(op.r_key) + 4096 + 1000
    fast = pd.concat([*outs, op.on_end()["out"]], ignore_index=True)
    ref = _run(lambda: ReferencePatternOperator(pattern), data, n, None)["out"]
    assert len(fast) == len(ref) > 1000
    pd.testing.assert_frame_equal(fast, ref, check_dtype=False)
