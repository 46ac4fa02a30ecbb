"""Sessions decided a batch at a time equal the one-event-at-a-time rule, batch by batch."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pandas.testing as pdt
from hypothesis import given, settings
from hypothesis import strategies as st

from streamlab import SessionWindow, agg
from streamlab._sessions import SessionOperator

from ._streams import BASE


@st.composite
def streams(draw: st.DrawFn) -> pd.DataFrame:
    """Events of a few keys (some missing) with jitter, far-behind arrivals and repeats."""
    n = draw(st.integers(1, 80))
    steps = draw(st.lists(st.integers(0, 6), min_size=n, max_size=n))
    back = draw(st.lists(st.sampled_from([0] * 4 + [1, 2, 3, 5, 8, 12, 20, 40]), min_size=n, max_size=n))
    alphabet = draw(st.sampled_from([["a"], ["a", "b"], ["a", "b", "c", "d", "e", None]]))
    keys = draw(st.lists(st.sampled_from(alphabet), min_size=n, max_size=n))
    values = draw(st.lists(st.integers(-5, 5), min_size=n, max_size=n))
    t = np.cumsum(steps) - np.asarray(back)
    return pd.DataFrame(
        {
            "key": keys,
            "value": np.asarray(values, dtype=float),
            "label": [f"l{v % 3}" for v in values],
            "timestamp": BASE + pd.to_timedelta(t - t.min(), unit="s"),
        }
    )


def operator(gap: int, delay: int, lateness: int, one_by_one: bool) -> SessionOperator:
    op = SessionOperator(
        "s",
        SessionWindow(f"{gap}s"),
        ["key"],
        [agg.count(), agg.sum("value"), agg.first("label"), agg.last("label")],
        "timestamp",
        delay * 10**9,
        lateness * 10**9,
    )
    op.one_by_one = one_by_one
    return op


def canon(frame: pd.DataFrame | None) -> pd.DataFrame | None:
    if frame is None:
        return None
    cols = ["key", "window_start"] if "count" in frame else ["timestamp", "value"]
    return frame.sort_values(cols, kind="stable").reset_index(drop=True)


def run(frame: pd.DataFrame, sizes: list[int], gap: int, delay: int, lateness: int, one_by_one: bool):
    op, outs, lo, i = operator(gap, delay, lateness, one_by_one), [], 0, 0
    while lo < len(frame):
        hi = lo + sizes[i % len(sizes)]
        got = op.process(frame.iloc[lo:hi].reset_index(drop=True))
        outs.append((canon(got.get("out")), canon(got.get("late"))))
        state = pickle.loads(pickle.dumps(op.snapshot()))  # a checkpoint between batches
        op = operator(gap, delay, lateness, one_by_one)
        op.restore(state)
        lo, i = hi, i + 1
    outs.append((canon(op.on_end().get("out")), None))
    return outs, op


@settings(max_examples=150)
@given(
    streams(),
    st.sampled_from([3, 5, 10, 30]),
    st.integers(0, 12),
    st.integers(0, 8),
    st.lists(st.integers(1, 15), min_size=1, max_size=6),
)
def test_batches_equal_the_one_by_one_rule_batch_by_batch(frame, gap, delay, lateness, sizes):
    got, op = run(frame, sizes, gap, delay, lateness, one_by_one=False)
    want, _ = run(frame, sizes, gap, delay, lateness, one_by_one=True)
    assert len(got) == len(want)
    for (g_out, g_late), (w_out, w_late) in zip(got, want):
        for g, w in ((g_out, w_out), (g_late, w_late)):
            assert (g is None) == (w is None)
            if g is not None:
                pdt.assert_frame_equal(g, w)
    # nothing is left behind once the stream ended: no session, no key
    assert op.open_state() == {"open_sessions": 0, "keys": 0}


def test_in_order_keys_never_go_one_by_one():
    n = 5_000
    rng = np.random.default_rng(0)
    t = np.arange(n) * 10**8 + rng.integers(-3 * 10**9, 0, n)  # disorder within the delay
    frame = pd.DataFrame(
        {
            "key": rng.integers(0, 300, n).astype(str),
            "value": 1.0,
            "label": "x",
            "timestamp": BASE + pd.to_timedelta(t),
        }
    )
    op = operator(10, 3, 0, one_by_one=False)
    calls = []
    op._one_by_one = lambda *a: calls.append(a)  # type: ignore[method-assign]
    total = 0
    for lo in range(0, n, 700):
        out = op.process(frame.iloc[lo : lo + 700].reset_index(drop=True))
        assert "late" not in out
        total += int(out["out"]["count"].sum()) if "out" in out else 0
    end = op.on_end()
    total += int(end["out"]["count"].sum()) if "out" in end else 0
    assert total == n and not calls


def test_a_checkpoint_with_sessions_in_dicts_resumes():
    """State written before the arrays: open sessions by key id in lists, closed ends by key value."""
    from streamlab._keytable import KeyIndex, object_array

    op = operator(10, 0, 0, one_by_one=False)
    index = KeyIndex(1)
    a = index.ids_for(object_array(["a"]))
    index.hold(a)
    stores = [agg_.store() for agg_ in op.aggs]
    for store in stores:
        store.grow(1)
    s, t0 = 10**9, BASE.value
    stores[0].add(np.array([0, 0]), 1, np.array([0]), None, np.array([t0 + 20 * s, t0 + 28 * s]))
    state = {
        "key_index": index,
        "stores": stores,
        "open": {int(a[0]): [[t0 + 20 * s, t0 + 28 * s, 0]]},
        "closed_end": {"b": t0 + 30 * s},
        "free_slots": [],
        "n_slots": 1,
        "max_ts": t0 + 35 * s,
        "part_max": {},
        "wm_floor": -(2**62),
    }
    op.restore(pickle.loads(pickle.dumps(state)))
    frame = pd.DataFrame(
        {
            "key": ["a", "b"],
            "value": 1.0,
            "label": "x",
            "timestamp": BASE + pd.to_timedelta([36, 29], unit="s"),
        }
    )
    out = op.process(frame)
    # b at 29 s is before the end (30 s) of its closed session: late; a at 36 s joins its open session
    assert out["late"]["key"].tolist() == ["b"] and "out" not in out
    end = op.on_end()["out"]
    assert end["key"].tolist() == ["a"] and end["count"].tolist() == [3]
    assert end["window_start"].tolist() == [BASE + pd.Timedelta(seconds=20)]
