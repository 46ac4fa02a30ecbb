"""The compiled string kernels give the numpy and arrow paths' results exactly, so either may run at any
batch: the same codes in the same order, the same hashes, bytes and comparisons; and a window keyed by
more strings than ``KeyIndex.COMPILED_MIN_KEYS`` (where the kernels take over mid-stream) equals pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streamlab._keytable as keytable
from streamlab import ListSink, ListSource, ManualClock, Pipeline, TumblingWindow, _string_kernels, agg
from streamlab._compat import PANDAS_3

# numba is a dev dependency (the ``fast`` extra): without it the tests below would compare numpy with
# itself. Imported, not loaded into the key table: other tests in the process keep their own path
KERNELS = _string_kernels
# text backed by arrow, whose keys the kernels number: pandas 3's default text dtype ("str"); pandas 2
# (Python 3.10's) makes "str" Python objects, which pandas' hash table numbers
ARROW_TEXT = "str" if PANDAS_3 else "string[pyarrow]"


@pytest.fixture(autouse=True)
def _kernels_loaded_for_this_test(monkeypatch):
    """The key table holds the kernels during each test here, as once a run loaded them, and not after
    (other tests in the worker then run the path their own setup gives them, whatever the collection)."""
    monkeypatch.setattr(keytable, "_string_kernels", KERNELS)
    monkeypatch.setattr(keytable, "_no_string_kernels", False)


def test_the_key_table_loads_and_checks_the_kernels(monkeypatch):
    monkeypatch.setattr(keytable, "_string_kernels", None)
    assert keytable.string_kernels(load=False) is None
    assert keytable.string_kernels() is KERNELS
    KERNELS.self_check()


# every kind of text a key can hold: empty, NUL, multi-byte UTF-8, long; and missing values
texts = st.one_of(
    st.none(),
    st.sampled_from(["", "a", "ab", "ba", "\x00", "a\x00", "é", "日本語", "x" * 300]),
    st.text(max_size=20),
)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(texts, max_size=60),
    large=st.booleans(),
    cut=st.integers(0, 5),
)
def test_batch_codes_equal_arrows_dictionary_encoding_and_the_numpy_hashes(values, large, cut):
    arr = pa.array(values, type=pa.large_string() if large else pa.string())
    arr = arr.slice(min(cut, len(arr)))  # an array that starts at an offset, as a batch's slice does
    want_codes, want = keytable.string_codes(arr)
    got_codes, got = keytable.string_codes(arr, KERNELS)
    assert got_codes.tolist() == want_codes.tolist()
    assert got.tolist() == want.tolist()
    assert got.null.tolist() == want.null.tolist()
    real = ~want.null  # a missing key's hash is never read (it has its own id)
    assert got.hashes[real].tolist() == want.hashes[real].tolist()


@pytest.mark.parametrize("n_keys", [511, 512, 513, 5_000, 70_000])
def test_batch_codes_as_the_batch_table_grows(n_keys):
    """The batch's own table starts at 1024 slots and doubles at half full: codes across the growths
    (keys seen before and after them, missing values and the empty string among them, a missing value
    first: its code holds the empty string's hash but must never answer for it) equal arrow's."""
    rng = np.random.default_rng(n_keys)
    words = np.char.add("k", rng.permutation(n_keys * 3)[:n_keys].astype(str)).astype(object)
    values = words[rng.integers(0, n_keys, 4 * n_keys)]
    values[rng.random(len(values)) < 0.01] = None
    values[rng.random(len(values)) < 0.01] = ""
    arr = pa.array([None, *words.tolist(), "", *values.tolist()], type=pa.string())
    want_codes, want = keytable.string_codes(arr)
    got_codes, got = keytable.string_codes(arr, KERNELS)
    assert got_codes.tolist() == want_codes.tolist() and got.tolist() == want.tolist()
    assert (got.hashes[~got.null] == want.hashes[~want.null]).all()


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=200),
    picks=st.lists(st.tuples(st.integers(0, 200), st.integers(0, 40), st.integers(0, 200)), max_size=30),
)
def test_hashes_gather_and_equal_are_the_numpy_ones(data, picks):
    buf = np.frombuffer(data + b"\x00" * 240, dtype=np.uint8)  # room for every pick
    starts = np.array([p[0] for p in picks], dtype=np.int64)
    lens = np.array([p[1] for p in picks], dtype=np.int64)
    others = np.array([p[2] for p in picks], dtype=np.int64)
    packed, offsets = keytable._gather(buf, starts, lens)
    got_packed, got_offsets = keytable._gather(buf, starts, lens, KERNELS)
    assert got_packed.tobytes() == packed.tobytes() and got_offsets.tolist() == offsets.tolist()
    assert (
        keytable.string_hashes(packed, offsets, KERNELS).tolist()
        == keytable.string_hashes(packed, offsets).tolist()
    )
    # the same strings at other places of the buffer, and others of the same length
    again = np.concatenate([buf, packed])
    moved = len(buf) + offsets[:-1]
    for b_starts in (moved, others):
        want = keytable._equal(buf, starts, lens, again, b_starts, lens)
        got = keytable._equal(buf, starts, lens, again, b_starts, lens, KERNELS)
        assert got.tolist() == want.tolist()
    assert keytable._equal(buf, starts, lens, again, moved, lens, KERNELS).all()


def _events(n: int, n_keys: int) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    users = np.char.add("user-", np.arange(n_keys).astype(str)).astype(object)
    users[::97] = "é-" + users[::97]  # some multi-byte keys
    keys = users[rng.integers(0, n_keys, n)]
    keys[rng.random(n) < 0.01] = None  # and missing ones
    keys[rng.random(n) < 0.005] = ""  # and empty ones (a key of their own)
    ms = 1_700_000_000_000 + np.arange(n, dtype=np.int64) + rng.integers(-2_000, 0, n)
    return pd.DataFrame({"user": pd.array(keys, dtype=ARROW_TEXT), "amount": rng.random(n), "timestamp": ms})


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
def test_a_window_keyed_by_many_strings_equals_pandas_as_the_kernels_take_over(compiled, monkeypatch):
    """60k distinct keys, 30k a batch: the first batch runs on numpy and arrow, the later ones on the
    kernels (once the index holds ``COMPILED_MIN_KEYS``); windows close and release keys throughout."""
    monkeypatch.setattr(keytable, "use_string_kernels", compiled)
    calls = []
    if compiled:
        real = KERNELS.batch_codes
        monkeypatch.setattr(KERNELS, "batch_codes", lambda *a: calls.append(1) or real(*a))
    df = _events(300_000, 60_000)
    p = Pipeline(ListSource(df, batch_size=30_000))
    sink = ListSink()
    p.window(TumblingWindow("60s"), key="user", delay="5s").agg(agg.count(), agg.sum("amount")).to(sink)
    assert p.run(clock=ManualClock(0)).metrics["late"] == 0
    assert (len(calls) >= 5) if compiled else not calls, len(calls)
    got = sink.frame()
    got = pd.DataFrame(
        {
            "user": got["user"].astype(object).fillna("-").to_numpy(),
            "start": got["window_start"].array.asi8 // 1_000_000,
            "count": got["count"].to_numpy(),
            "sum": got["sum_amount"].to_numpy(),
        }
    ).sort_values(["start", "user"], ignore_index=True)
    want = (
        df.assign(user=df["user"].astype(object).fillna("-"), start=df["timestamp"] // 60_000 * 60_000)
        .groupby(["start", "user"])["amount"]
        .agg(["count", "sum"])
        .reset_index()
    )
    assert got[["start", "user", "count"]].values.tolist() == want[["start", "user", "count"]].values.tolist()
    np.testing.assert_allclose(got["sum"].to_numpy(), want["sum"].to_numpy(), rtol=1e-12)


_LOAD_RULE = """
import sys
if sys.argv[2] == "no-numba":  # as without the fast extra: the import fails
    sys.modules["numba"] = None
import numpy as np
import pandas as pd
import streamlab._keytable as keytable
from streamlab import ListSink, ListSource, ManualClock, Pipeline, TumblingWindow, agg

keytable.KeyIndex.LOAD_KERNELS_AFTER = int(sys.argv[1])
if sys.argv[2] == "no-numba":
    assert keytable.string_kernels() is None
n = 200_000
users = np.char.add("user-", np.random.default_rng(3).integers(0, 60_000, n).astype(str))
events = pd.DataFrame({"user": pd.array(users, dtype="str"), "timestamp": 1_700_000_000_000 + np.arange(n)})
p = Pipeline(ListSource(events, batch_size=20_000))
p.window(TumblingWindow("60s"), key="user").agg(agg.count()).to(ListSink())
p.run(clock=ManualClock(0))
print("streamlab._string_kernels" in sys.modules, sys.modules.get("numba") is not None)
"""


@pytest.mark.parametrize(
    ("load_after", "numba", "loaded"),
    [(None, "numba", False), (50_000, "numba", True), (50_000, "no-numba", False)],
)
def test_the_kernels_are_loaded_only_once_a_run_has_numbered_enough_keys(load_after, numba, loaded):
    """A short run with many keys (200 k events, 60 k keys: about 180 k numbered) does not pay numba's
    import; a longer one (here: the limit lowered under what it numbers) does; without numba the
    numpy path runs it."""
    import subprocess
    import sys
    from pathlib import Path

    limit = load_after or keytable.KeyIndex.LOAD_KERNELS_AFTER
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", _LOAD_RULE, str(limit), numba],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(loaded), str(loaded)]


int64s = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([-1, 0, 1, 2**63 - 1, -(2**63)]))


@settings(max_examples=150, deadline=None)
@given(calls=st.lists(st.tuples(st.booleans(), st.lists(int64s, max_size=40)), max_size=12))
def test_hash_labels_label_as_pandas_int64_hash_table(calls):
    """The compiled table gives pandas' labels (new values numbered from ``count_prior`` in order of
    first sight, repeats labelled alike, lookups -1 for values it lacks) through growth from 8 rows."""
    from pandas._libs import hashtable

    ours, theirs = KERNELS.HashLabels(1), hashtable.Int64HashTable(1)
    count = 0
    for create, values in calls:
        arr = np.array(values, dtype=np.int64)
        if create:
            want = theirs.get_labels(arr, hashtable.Int64Vector(), count, -1)
            got = ours.get_labels(arr, None, count, -1)
            count = max(count, int(want.max()) + 1) if len(want) else count
        else:
            want, got = theirs.lookup(arr), ours.lookup(arr)
        assert got.tolist() == want.tolist()


def _step_outputs(step: str, df: pd.DataFrame) -> dict[str, pd.DataFrame]:
    from streamlab import SessionWindow, SlidingWindow

    p = Pipeline(ListSource(df, batch_size=7_001))
    sinks = {"out": ListSink(), "other": ListSink()}
    if step == "dedup":
        d = p.dedup("user", ttl="5s", max_ids=5_000)
        d.to(sinks["out"])
        d.duplicates.to(sinks["other"])
    else:
        window = SessionWindow("3s") if step == "sessions" else SlidingWindow("10s", every="2s")
        out = p.window(window, key="user", delay="1s", lateness="300ms").agg(agg.count(), agg.max("amount"))
        out.to(sinks["out"])
        out.late.to(sinks["other"])
    p.run(clock=ManualClock(0))
    return {k: s.frame() for k, s in sinks.items()}


@pytest.mark.parametrize("step", ["sessions", "sliding", "dedup"])
def test_sessions_sliding_windows_and_dedup_give_the_same_outputs_on_both_paths(step, monkeypatch):
    """The other steps that number string keys, with the kernels from the first key on, against numpy:
    frame for frame (key ids decide the output order, so equal frames mean equal ids too); disordered
    events, late ones, missing and multi-byte keys, keys forgotten and seen again."""
    df = _events(60_000, 9_000)
    monkeypatch.setattr(keytable, "use_string_kernels", False)
    want = _step_outputs(step, df)
    monkeypatch.setattr(keytable, "use_string_kernels", True)
    monkeypatch.setattr(keytable.KeyIndex, "COMPILED_MIN_KEYS", 0)
    calls = []
    real = KERNELS.batch_codes
    monkeypatch.setattr(KERNELS, "batch_codes", lambda *a: calls.append(1) or real(*a))
    got = _step_outputs(step, df)
    assert len(calls) >= 8
    for name in want:
        assert len(want[name]) > 0
        pd.testing.assert_frame_equal(got[name], want[name])


def test_kernels_that_fail_where_numba_is_broken_leave_the_numpy_path_with_a_warning(monkeypatch):
    """numba imports but a kernel fails (a broken llvmlite, say): the key table's self check catches it
    when loading, warns once with the fix, and every later index numbers keys on numpy."""

    def broken(*args):
        raise RuntimeError("LLVM ERROR: cannot select")

    monkeypatch.setattr(keytable, "_string_kernels", None)
    monkeypatch.setattr(keytable, "_no_string_kernels", False)
    monkeypatch.setattr(KERNELS, "batch_codes", broken)
    with pytest.warns(RuntimeWarning, match="numpy path.*pip install -U numba"):
        assert keytable.string_kernels() is None
    assert keytable.string_kernels() is None  # decided once: no second warning, no second try
    index = keytable.KeyIndex(1)
    monkeypatch.setattr(keytable.KeyIndex, "COMPILED_MIN_KEYS", 0)
    monkeypatch.setattr(keytable.KeyIndex, "LOAD_KERNELS_AFTER", 0)
    frame = pd.DataFrame({"k": pd.array(["a", "b", "a"], dtype="str")})
    local, uniq = index.local_keys(frame, ["k"])
    assert index.ids_for(uniq, distinct=True)[local].tolist() == [0, 1, 0]


def test_keys_longer_than_64_kib_hash_alike_on_both_paths_without_a_table_per_byte():
    """A byte position past 64 KiB takes the multiplier of its position modulo 64 KiB with a mask per
    further 64 KiB: both paths agree across the boundary, a byte anywhere in a 10 MB key changes its
    hash, and the multiplier tables stay at 64 Ki entries (a 10 MB key grew them to 80 MB before)."""
    span = keytable._MULT_SPAN
    rng = np.random.default_rng(7)
    big = rng.integers(0, 256, 10_000_000, dtype=np.uint8)
    keys = [big[:n].tobytes() for n in (span - 1, span, span + 1, 2 * span + 3)] + [big.tobytes()]
    for at in (5, span + 5, 3 * span + 5, 9_999_999):  # one byte changed, in each 64 KiB part
        changed = big.copy()
        changed[at] ^= 1
        keys.append(changed.tobytes())
    keys += [b"", b"a", big[: span + 1].tobytes()]  # short ones beside, and a repeat
    data = np.frombuffer(b"".join(keys), dtype=np.uint8)
    offsets = np.concatenate([[0], np.cumsum([len(k) for k in keys])]).astype(np.int64)
    want = keytable.string_hashes(data, offsets)
    assert keytable.string_hashes(data, offsets, KERNELS).tolist() == want.tolist()
    assert len(set(want[:-1].tolist())) == len(keys) - 1 and want[-1] == want[2]
    assert len(keytable._MULT) == span and keytable._HIGH.nbytes <= 2048  # 256 masks: 1 GB keys
    codes, got = keytable.string_codes(pa.array(keys, pa.binary()), KERNELS)
    assert codes.tolist() == [*range(len(keys) - 1), 2]
    assert got.hashes.tolist() == want[:-1].tolist()


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "numpy"])
def test_a_window_keyed_by_10_mb_texts_counts_them_apart(compiled, monkeypatch):
    """Hostile keys: two 10 MB texts that differ in their last byte, beside short keys, in batches of
    one and of many: each its own window, counted as pandas counts them."""
    monkeypatch.setattr(keytable, "use_string_kernels", compiled)
    monkeypatch.setattr(keytable.KeyIndex, "COMPILED_MIN_KEYS", 0)
    big = "x" * 10_000_000
    keys = [big, "a", big[:-1] + "y", big, "", big[:-1] + "y", "a", big]
    df = pd.DataFrame({"k": pd.array(keys, dtype=ARROW_TEXT), "timestamp": 1_700_000_000_000 + np.arange(8)})
    want = df["k"].value_counts()
    for batch in (1, 8):
        p = Pipeline(ListSource(df, batch_size=batch))
        sink = ListSink()
        p.window(TumblingWindow("60s"), key="k").agg(agg.count()).to(sink)
        p.run(clock=ManualClock(0))
        got = sink.frame().set_index("k")["count"]
        assert sorted(got.items()) == sorted(want.items()), batch


def test_huge_keys_are_hashed_and_gathered_in_bounded_memory_on_the_numpy_path():
    """The numpy path made temporaries of 8 bytes for each byte of a key (its positions, multipliers and
    sums: 40 bytes a byte): a 20 MB key took 800 MB to hash. A key over ``_HASH_CHUNK`` is summed a piece
    at a time and copied as a slice; the results equal the compiled kernels' (hashes, packed bytes)."""
    import tracemalloc

    rng = np.random.default_rng(11)
    huge = rng.integers(0, 256, 20_000_000, dtype=np.uint8)
    small = [b"", b"ab", b"\x00z"]
    data = np.frombuffer(small[1] + huge.tobytes() + small[2] + huge[:5].tobytes(), dtype=np.uint8)
    starts = np.array([0, 0, 2, len(data) - 7, len(data) - 5], dtype=np.int64)
    lens = np.array([0, 2, len(huge), 2, 5], dtype=np.int64)
    keytable.string_hashes(data[:3], np.array([0, 3]))  # the multiplier tables drawn before measuring
    tracemalloc.start()
    try:
        packed, offsets = keytable._gather(data, starts, lens)
        _, gathered = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        hashed = keytable.string_hashes(packed, offsets)
        _, summed = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert gathered < 2 * len(huge) + 10_000_000, gathered  # the packed copy itself, not 8 bytes a byte
    assert summed < 80_000_000, summed  # pieces of 1 MB (800 MB before)
    want_packed, want_offsets = keytable._gather(data, starts, lens, KERNELS)
    assert offsets.tolist() == want_offsets.tolist() and (packed == want_packed).all()
    assert hashed.tolist() == keytable.string_hashes(packed, offsets, KERNELS).tolist()
