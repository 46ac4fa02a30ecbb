"""The vectorized key and slot tables against plain dict references, under random insert/close sequences."""

from __future__ import annotations

import copy
import importlib.util
import pickle

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streamlab._keytable as keytable
from streamlab._compat import PANDAS_3
from streamlab._keytable import KeyIndex, SlotTable, StringKeys, object_array

# keys that hash alike or compare equal in Python: 1, 1.0 and True are one key, as in a dict; strings
# of every length (and non-ASCII ones) go through the byte pool, the others through the object table
# Arrow-backed strings: pandas 3's str; pandas 2's "str" is a numpy array of str (None turns "None")
ARROW_STR = "str" if PANDAS_3 else "string[pyarrow]"
UNIVERSE = [
    "a", "b", "c", "", "u1", "ab", "ba", "é", "日本語", 1, 2, 1.0, True, 2.5, None, float("nan"),
    ("a", 1), ("a", 2), pd.NA, "1",
]  # fmt: skip


def _colliding_hashes(data, offsets, kernels=None):
    """A hash that makes most strings collide (their length mod 2): ids must still never merge keys."""
    return (np.diff(np.asarray(offsets, dtype=np.int64)) % 2).astype(np.uint64)


def _zero_multipliers(n):
    """Multipliers that make the hash of a string its length's alone, in numpy and in the compiled
    kernels alike (which take the multipliers, not ``string_hashes``): strings of one length collide."""
    return np.zeros(max(min(n, keytable._MULT_SPAN), 1), dtype=np.uint64), np.zeros(
        max(1, -(-n // keytable._MULT_SPAN)), dtype=np.uint64
    )


def _norm(v):
    """The key a value stands for: every missing value is ``None``."""
    if v is None or v is pd.NA or (isinstance(v, float) and v != v):
        return None
    return v


ops = st.lists(
    st.tuples(
        st.sampled_from(["ids", "arrow", "release", "lookup", "pickle", "snapshot", "restore"]),
        st.lists(st.sampled_from(range(len(UNIVERSE))), max_size=12),
    ),
    max_size=40,
)


@pytest.mark.parametrize("compiled", [False, True], ids=["numpy", "compiled"])
@pytest.mark.parametrize("collide", [False, True], ids=["hash", "colliding-hash"])
@pytest.mark.parametrize("rebuild_min", [1 << 16, 0], ids=["no-rebuilds", "rebuild-at-every-release"])
@settings(max_examples=40, deadline=None)
@given(sequence=ops)
def test_key_index_equals_a_dict_with_reference_counts(rebuild_min, collide, compiled, sequence):
    with pytest.MonkeyPatch.context() as mp:
        if compiled:  # the compiled string kernels from the first key on (numba is a dev dependency)
            if importlib.util.find_spec("numba") is not None:
                # loaded for this example only: other tests in the process keep their own path
                mp.setattr(keytable, "_string_kernels", importlib.import_module("streamlab._string_kernels"))
            # else an install without the fast extra (the Python 3.10 wheel's run of this file): the
            # numpy path runs, as it does for users there; test_string_kernels.py requires numba
            mp.setattr(KeyIndex, "COMPILED_MIN_KEYS", 0)
            if collide:
                mp.setattr(keytable, "_multipliers", _zero_multipliers)
        else:
            mp.setattr(keytable, "use_string_kernels", False)
            if collide:
                mp.setattr(keytable, "string_hashes", _colliding_hashes)
        _check_key_index_against_a_dict(rebuild_min, sequence)


def _check_key_index_against_a_dict(rebuild_min, sequence):
    index = KeyIndex(1)
    index._REBUILD_MIN = rebuild_min
    ref_id: dict = {}  # key -> id, for the keys that hold references
    refs: dict = {}  # key -> reference count
    for op, picks in sequence:
        if op == "arrow":  # a batch of arrow strings, numbered through its distinct keys as bytes
            picks = [i for i in picks if UNIVERSE[i] is None or isinstance(UNIVERSE[i], str)]
        values = object_array([UNIVERSE[i] for i in picks])
        keys = [_norm(v) for v in values.tolist()]
        if op in ("ids", "arrow"):
            if op == "arrow":
                local, uniq = index.local_keys(pd.DataFrame({"k": pd.array(values, dtype=ARROW_STR)}), ["k"])
                assert isinstance(uniq, StringKeys) or not len(values)
                ids = index.ids_for(uniq, distinct=True)[local].tolist() if len(values) else []
            else:
                ids = index.ids_for(values).tolist()
            for k, i in zip(keys, ids):
                if k in ref_id:
                    assert i == ref_id[k]
                ref_id[k] = i
            index.hold(np.asarray(ids, dtype=np.int64))
            for k in keys:
                refs[k] = refs.get(k, 0) + 1
        elif op == "release":
            held = [k for k in keys if refs.get(k, 0) > 0]
            for k in held:
                refs[k] -= 1
            index.release(np.asarray([ref_id[k] for k in held], dtype=np.int64))
            for k in set(held):
                if refs[k] == 0:
                    del refs[k], ref_id[k]
        elif op == "lookup":
            got = index.lookup(values).tolist()
            assert got == [ref_id.get(k, -1) for k in keys]
        elif op == "snapshot":  # a step's snapshot (its hash tables built when first used), used on
            index = copy.deepcopy(index)
        elif op == "restore":  # a snapshot, then a restore's copy of it
            index = copy.deepcopy(copy.deepcopy(index))
        else:
            index = pickle.loads(pickle.dumps(index))
        # every live key has its own id, and its value is the key
        assert len(set(ref_id.values())) == len(ref_id) == len(index)
        for k, i in ref_id.items():
            assert _norm(index.values[i]) == k and index.refs[i] == refs[k]
        assert sorted(map(repr, index.live_values())) == sorted(
            map(repr, (index.values[i] for i in ref_id.values()))
        )


def test_colliding_strings_keep_their_own_ids_through_batches_and_rebuilds(monkeypatch):
    monkeypatch.setattr(keytable, "string_hashes", _colliding_hashes)
    index = KeyIndex(1)
    index._REBUILD_MIN = 2
    words = [f"k{j}" for j in range(300)]  # all of one length: one hash
    frame = pd.DataFrame({"k": pd.array(words + words[::-1] + [None], dtype=ARROW_STR)})
    local, uniq = index.local_keys(frame, ["k"])
    ids = index.ids_for(uniq, distinct=True)[local]
    index.hold(ids[:300])
    assert len(set(ids[:300].tolist())) == 300 and (ids[300:600] == ids[:300][::-1]).all()
    index.release(ids[:150])  # rebuilds: the keys left keep their ids
    assert index.lookup(object_array(words)).tolist() == [-1] * 150 + ids[150:300].tolist()
    assert index.ids_for(object_array(words[150:])).tolist() == ids[150:300].tolist()
    assert sorted(map(str, index.live_values())) == sorted([*words[150:], "None"])  # None got an id too
    frame = pd.DataFrame(index.key_columns(ids[150:300], ["k"]))
    assert frame["k"].tolist() == words[150:]


def test_a_checkpoint_of_objects_resumes_with_string_keys_in_the_pool():
    old = KeyIndex(1)  # the state as written before the pool: every key a Python object
    state = {
        "n_columns": 1,
        "values": object_array(["a", 7, None, "b", None]),
        "entry_of": np.array([0, 1, 2**62, 2, -1], dtype=np.int64),
        "refs": np.array([1, 2, 1, 1, 0], dtype=np.int64),
        "free": np.array([4], dtype=np.int64),
        "n_free": 1,
        "n_ids": 5,
        "none_id": 2,
    }
    old.__setstate__(state)
    assert old.lookup(object_array(["a", 7, None, "b", "c"])).tolist() == [0, 1, 2, 3, -1]
    local, uniq = old.local_keys(pd.DataFrame({"k": pd.array(["b", "a", None], dtype=ARROW_STR)}), ["k"])
    assert old.ids_for(uniq, distinct=True)[local].tolist() == [3, 0, 2]
    assert old.ids_for(object_array(["c"])).tolist() == [4]  # the freed id
    assert pd.DataFrame(old.key_columns(np.array([0, 3, 2]), ["k"]))["k"].tolist()[:2] == ["a", "b"]


def test_released_ids_are_reused_and_the_table_stays_bounded():
    index = KeyIndex(1)
    index._REBUILD_MIN = 100
    for batch in range(50):
        values = object_array([f"k{batch}-{j}" for j in range(1000)])
        ids = index.ids_for(values)
        index.hold(ids)
        index.release(ids)
        assert len(index) == 0
    assert index.n_ids == 1000  # ids were reused, batch after batch
    assert index._s_count <= 5 * 1000 + 100  # released keys leave the hash table in rebuilds
    assert index.pool_size <= 16 * 5 * 1000 * 8  # ... and their bytes the pool


slot_ops = st.lists(
    st.tuples(
        st.booleans(),  # True: look up pairs; False: close windows
        st.lists(st.tuples(st.integers(0, 5), st.integers(0, 8)), max_size=15),
    ),
    max_size=40,
)


@settings(max_examples=80, deadline=None)
@given(slot_ops)
def test_slot_table_equals_a_dict(sequence):
    table = SlotTable()
    ref: dict[tuple[int, int], int] = {}
    peak = 0
    for lookup, pairs in sequence:
        if lookup:
            starts = np.asarray([p[0] * 60 for p in pairs], dtype=np.int64)
            keys = np.asarray([p[1] for p in pairs], dtype=np.int64)
            slots, new = table.slots_for(starts, keys)
            fresh = {(int(s), int(k)) for s, k in zip(starts, keys) if (int(s), int(k)) not in ref}
            for s, k, slot in zip(starts.tolist(), keys.tolist(), slots.tolist()):
                if (s, k) in ref:
                    assert ref[(s, k)] == slot
                ref[(s, k)] = slot
            assert sorted(new.tolist()) == sorted(ref[p] for p in fresh)
        else:
            close = sorted({p[0] * 60 for p in pairs} & set(table.by_window))
            got = table.pop_windows(close)
            want = [ref.pop((s, k)) for s in close for k in sorted(k for (s2, k) in list(ref) if s2 == s)]
            assert got.tolist() == want
        assert len(set(ref.values())) == len(ref) == len(table)
        peak = max(peak, len(ref))
        assert table.size <= peak  # freed slots are reused before new ones
        assert sorted(table.by_window) == sorted({s for s, _ in ref})
        for (s, k), slot in ref.items():
            assert table.start[slot] == s and table.key[slot] == k


@pytest.mark.parametrize("sliding", [False, True])
def test_windows_keyed_by_two_columns_with_missing_values_equal_pandas(sliding):
    from streamlab import ListSink, ListSource, ManualClock, Pipeline, SlidingWindow, TumblingWindow, agg

    rng = np.random.default_rng(7)
    n = 3000
    ms = 1_700_000_000_000 + np.arange(n) * 100
    df = pd.DataFrame(
        {
            "a": rng.choice(np.array(["x", "y", None], dtype=object), n),
            "b": rng.integers(0, 3, n),
            "v": rng.random(n),
        }
    ).assign(timestamp=pd.to_datetime(ms, unit="ms", utc=True))
    window = SlidingWindow("2m", every="1m") if sliding else TumblingWindow("1m")
    p = Pipeline(ListSource(df, batch_size=701))
    sink = ListSink()
    p.window(window, key=["a", "b"]).agg(agg.count(), agg.sum("v")).to(sink)
    p.run(clock=ManualClock(0))
    got = sink.frame().assign(a=lambda f: f["a"].fillna("-"), start=lambda f: f["window_start"].array.asi8)
    parts = [df.assign(start=(ms // 60_000 - j) * 60_000 * 1_000_000) for j in range(2 if sliding else 1)]
    want = pd.concat(parts).assign(a=lambda f: f["a"].fillna("-")).groupby(["start", "a", "b"])["v"]
    want = want.agg(["count", "sum"]).reset_index()
    got = got.sort_values(["start", "a", "b"]).reset_index(drop=True)
    assert (
        got[["start", "a", "b", "count"]].astype(str).values.tolist()
        == want[["start", "a", "b", "count"]].astype(str).values.tolist()
    )
    np.testing.assert_allclose(got["sum_v"].to_numpy(), want["sum"].to_numpy())


def test_a_deep_copy_is_independent_of_the_original():
    index = KeyIndex(1)
    ids = index.ids_for(np.array(["a", "b", None], dtype=object))
    index.hold(ids)
    clone = copy.deepcopy(index)
    index.release(ids[:1])
    index.hold(index.ids_for(np.array(["c"], dtype=object)))
    keys = np.array(["a", "b", None, "c"], dtype=object)
    assert clone.lookup(keys).tolist() == [*ids.tolist(), -1]
    assert sorted(map(str, clone.live_values())) == ["None", "a", "b"]
    assert index.lookup(keys)[0] == -1 and index.lookup(keys)[3] >= 0


def test_a_snapshot_copies_arrays_only_and_builds_its_tables_when_used():
    """A copy (a step's snapshot) leaves out the hash tables (rebuilding them cost 0.5 s a commit with
    a million keys); used, even first by a release, it builds them and numbers as the original does."""
    index = KeyIndex(1)
    keys = np.array([f"k{i}" for i in range(1000)] + [3, (1, 2), None], dtype=object)
    index.hold(index.ids_for(keys))
    snap, released = copy.deepcopy(index), copy.deepcopy(index)
    assert "_table" not in snap.__dict__ and "_s_table" not in snap.__dict__
    gone = np.array(["k1", 3], dtype=object)
    released.release(index.lookup(gone))  # its first use changes it: built first
    index_released = copy.deepcopy(index)
    index_released.release(index.lookup(gone))
    more = np.array(["new", 4, "k5", (5,)], dtype=object)
    want = index.ids_for(more).tolist()
    assert snap.ids_for(more).tolist() == want
    assert released.ids_for(more).tolist() == index_released.ids_for(more).tolist()
    assert released.lookup(gone).tolist() == [-1, -1] and "_table" in released.__dict__
    assert pickle.loads(pickle.dumps(copy.deepcopy(index))).lookup(more).tolist() == want
