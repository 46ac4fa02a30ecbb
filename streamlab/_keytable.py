"""Vectorized key and slot tables of the window steps: no Python work per key on the hot path.

:class:`KeyIndex` gives dense integer ids to key values through a persistent hash table (pandas'
factorizer, which appends the values it has not seen and numbers them in order); ids are given out and
taken back in bulk, and the table is rebuilt from the live keys once released keys outnumber them, so
memory follows the keys that open windows still refer to. :class:`SlotTable` keeps, per open window, its
key ids sorted with their slots: lookups are one ``searchsorted`` per window present in a batch, and a
window closes by dropping its two arrays.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pandas._libs import hashtable as _hashtable  # type: ignore[attr-defined]  # private: not in pandas-stubs

_EMPTY = np.zeros(0, dtype=np.int64)
_NO_ENTRY = 2**62


def grown(arr: np.ndarray, n: int, fill: Any) -> np.ndarray:
    """``arr`` with room for at least ``n`` items (doubling), new items set to ``fill``."""
    if n <= len(arr):
        return arr
    out = np.full(max(n, 2 * len(arr), 64), fill, dtype=arr.dtype)
    out[: len(arr)] = arr
    return out


def _distinct(ids: np.ndarray) -> bool:
    """Whether ``ids`` are strictly increasing (so distinct), as slots of one window list their keys."""
    return len(ids) < 2 or bool((ids[1:] > ids[:-1]).all())


def object_array(values: Any) -> np.ndarray:
    """A 1-d object array of ``values`` (tuples stay elements instead of becoming a second axis)."""
    if isinstance(values, np.ndarray) and values.dtype == object:
        return values
    if isinstance(values, pd.MultiIndex):
        return np.asarray(values.values, dtype=object)
    if isinstance(values, (pd.Index, pd.api.extensions.ExtensionArray, pd.Series, np.ndarray)):
        return np.asarray(values, dtype=object)
    out = np.empty(len(values), dtype=object)
    for i, v in enumerate(values):
        out[i] = v
    return out


class KeyIndex:
    """Dense integer ids for key values (tuples for several key columns), with reuse of freed ids.

    Missing keys (NaN, None, ``pd.NA``) are all the key ``None``. ``refs[id]`` counts the open state
    that refers to a key; :meth:`release` forgets keys whose count drops to zero.

    Examples
    --------
    >>> import numpy as np
    >>> index = KeyIndex(1)
    >>> ids = index.ids_for(np.array(["a", "b", "a", None], dtype=object))
    >>> ids.tolist(), index.lookup(np.array(["b", "z", float("nan")], dtype=object)).tolist()
    ([1, 2, 1, 0], [2, -1, 0])
    """

    _REBUILD_MIN = 1 << 16  # released keys kept in the hash table before a rebuild is worth it
    _REBUILD_FACTOR = 4  # ... and per live key

    def __init__(self, n_columns: int) -> None:
        self.n_columns = n_columns
        self._new_table()
        self.values = np.empty(0, dtype=object)  # id -> key value
        self.entry_of = _EMPTY.copy()  # id -> entry in the hash table (-1: the id is free)
        self.refs = _EMPTY.copy()
        self.free = _EMPTY.copy()  # stack of free ids below n_ids
        self.n_free = 0
        self.n_ids = 0  # ids ever given out since the last rebuild (the high-water mark)
        self.none_id = -1

    def _new_table(self) -> None:
        # a bare hash table, not pandas' Factorizer: that copies every value it ever numbered on each call
        self._table = _hashtable.PyObjectHashTable(1024)
        self._count = 0  # entries numbered so far
        self._entry_id = _EMPTY.copy()  # entry -> id (-1: released)
        self._dead = 0

    # -- pickling: the hash table is rebuilt from the live keys --------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = {
            k: v for k, v in self.__dict__.items() if k not in ("_table", "_count", "_entry_id", "_dead")
        }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._rebuild()

    def __deepcopy__(self, memo: dict[int, Any]) -> KeyIndex:
        # keys are hashable, so immutable: copying the arrays (not each key) is a deep copy
        new = KeyIndex.__new__(KeyIndex)
        state = self.__getstate__()
        new.__setstate__({k: v.copy() if isinstance(v, np.ndarray) else v for k, v in state.items()})
        return new

    def _rebuild(self) -> None:
        """A fresh hash table holding only the live keys (their ids do not change)."""
        self._new_table()
        live = np.flatnonzero(self.entry_of[: self.n_ids] >= 0)
        if self.none_id >= 0:
            live = live[live != self.none_id]
        entries = self._number(self.values[live])
        self._entry_id = np.full(self._count, -1, dtype=np.int64)
        self._entry_id[entries] = live
        self.entry_of[live] = entries

    def __len__(self) -> int:
        """The number of keys that have an id."""
        return self.n_ids - self.n_free

    def live_values(self) -> list[Any]:
        """The keys that have an id (for inspection and tests)."""
        keys: list[Any] = self.values[: self.n_ids][self.entry_of[: self.n_ids] >= 0].tolist()
        return keys

    # -- lookups -------------------------------------------------------------------------------------
    def _entries(self, values: np.ndarray) -> npt.NDArray[np.int64]:
        entries = self._number(values)
        self._entry_id = grown(self._entry_id, self._count, -1)
        return entries

    def _number(self, values: np.ndarray) -> npt.NDArray[np.int64]:
        """The hash table entry of each of ``values``, numbering new ones; -1 for missing values."""
        new = _hashtable.ObjectVector()
        entries: npt.NDArray[np.int64] = self._table.get_labels(values, new, self._count, -1).astype(np.int64)
        self._count += len(new)
        return entries

    def _ids_of(self, entries: np.ndarray) -> np.ndarray:
        ids = np.full(len(entries), -1, dtype=np.int64)
        found = entries >= 0
        ids[found] = self._entry_id[entries[found]]
        return ids

    def lookup(self, values: np.ndarray) -> np.ndarray:
        """The id of each key in ``values`` (an object array), ``-1`` for keys without one."""
        if len(values) == 0:
            return _EMPTY.copy()
        entries = self._table.lookup(values).astype(np.int64)  # adds nothing to the table
        ids = self._ids_of(entries)
        ids[pd.isna(values)] = self.none_id
        return ids

    def ids_for(self, values: np.ndarray, distinct: bool = False) -> np.ndarray:
        """The id of each key in ``values`` (an object array), given out now to keys without one.

        ``distinct``: the caller knows the values are distinct keys (a batch's own uniques).
        """
        if len(values) == 0:
            return _EMPTY.copy()
        entries = self._entries(values)
        ids = self._ids_of(entries)
        na = entries < 0
        if na.any():
            if self.none_id < 0:
                self.none_id = int(self._take(1)[0])
                self.values[self.none_id] = None
                self.entry_of[self.none_id] = _NO_ENTRY  # live, but in no table entry
            ids[na] = self.none_id
        missing = np.flatnonzero(ids < 0)
        if len(missing):
            e = entries[missing]
            if distinct or len(e) < 2 or bool((e[1:] > e[:-1]).all()):
                new_entries, first, inverse = e, missing, None
            else:
                new_entries, at, inverse = np.unique(e, return_index=True, return_inverse=True)
                first = missing[at]
            new_ids = self._take(len(new_entries))
            self._entry_id[new_entries] = new_ids
            self.entry_of[new_ids] = new_entries
            self.values[new_ids] = values[first]
            ids[missing] = new_ids if inverse is None else new_ids[inverse]
        return ids

    def id_of(self, value: Any) -> int:
        """The id of key ``value``, given out now if it has none."""
        return int(self.ids_for(object_array([value]))[0])

    def _take(self, n: int) -> np.ndarray:
        """``n`` unused ids: freed ones first, then new ones."""
        reuse = min(n, self.n_free)
        got = self.free[self.n_free - reuse : self.n_free].copy()
        self.n_free -= reuse
        if reuse < n:
            fresh = np.arange(self.n_ids, self.n_ids + n - reuse, dtype=np.int64)
            self.n_ids += n - reuse
            self.values = grown(self.values, self.n_ids, None)
            self.entry_of = grown(self.entry_of, self.n_ids, -1)
            self.refs = grown(self.refs, self.n_ids, 0)
            got = np.concatenate([got, fresh])
        return got

    def hold(self, ids: np.ndarray) -> None:
        """One reference more for each of ``ids`` (repeats count)."""
        if _distinct(ids):
            self.refs[ids] += 1
        elif len(ids):
            u, c = np.unique(ids, return_counts=True)
            self.refs[u] += c

    def release(self, ids: np.ndarray) -> None:
        """One reference less for each of ``ids`` (repeats count); forget keys left without any."""
        if len(ids) == 0:
            return
        if _distinct(ids):
            u = ids
            self.refs[u] -= 1
        else:
            u, c = np.unique(ids, return_counts=True)
            self.refs[u] -= c
        gone = u[self.refs[u] == 0]
        if len(gone) == 0:
            return
        real = gone
        if self.none_id >= 0 and bool((gone == self.none_id).any()):
            real = gone[gone != self.none_id]  # the None key has no hash table entry
            self.none_id = -1
        self._entry_id[self.entry_of[real]] = -1
        self._dead += len(real)
        self.entry_of[gone] = -1
        self.values[gone] = None
        self.free = grown(self.free, self.n_free + len(gone), 0)
        self.free[self.n_free : self.n_free + len(gone)] = gone
        self.n_free += len(gone)
        # amortized: a rebuild costs O(live keys)
        if self._dead > max(self._REBUILD_MIN, self._REBUILD_FACTOR * len(self)):
            self._rebuild()

    # -- batches -------------------------------------------------------------------------------------
    def local_keys(self, frame: pd.DataFrame, columns: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Batch-local key codes (``0 <= code``) of every row, and the key value of each code.

        No ids are given out: a caller maps to ids only the keys it keeps state for. A categorical
        column's codes are used as they are. Missing keys (NaN, None) are the key ``None``.
        """
        if not columns:
            return np.zeros(len(frame), dtype=np.int64), object_array([()])
        if len(columns) == 1:
            col = frame[columns[0]]
            if isinstance(col.dtype, pd.CategoricalDtype):
                local = np.asarray(col.array.codes)
                values = object_array(col.array.categories)
                if len(local) and int(local.min()) < 0:  # missing keys: code -1 becomes the key None
                    local = local.astype(np.int64) + 1
                    values = np.concatenate([object_array([None]), values])
                return local, values
            local, uniq = pd.factorize(col, use_na_sentinel=False)
            values = object_array(uniq)
            if pd.Index(uniq).hasnans:  # writes into uniq's buffer at most: a fresh Index nobody else holds
                values[pd.isna(values)] = None
            return local, values
        local, multi = pd.MultiIndex.from_frame(frame[columns]).factorize()
        return local, object_array(multi)

    def local_codes(
        self, frame: pd.DataFrame, columns: list[str]
    ) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
        """Batch-local key codes of every row, and a function from local codes to ids.

        Aggregating on local codes and mapping only the groups found to ids avoids a per-row lookup.
        """
        local, values = self.local_keys(frame, columns)
        return local, lambda u: self.ids_for(values[u], distinct=True)

    def key_columns(self, ids: np.ndarray, columns: list[str]) -> dict[str, Any]:
        """The key columns of a result frame, one row per id in ``ids``."""
        vals = self.values[ids]
        if len(columns) == 1:
            # the dtype pandas infers from the values (str, int64, ...), as from a list of them
            return {columns[0]: pd.Series(vals, dtype=object, copy=False).infer_objects()}
        rows = vals.tolist()
        return {c: [v[j] for v in rows] for j, c in enumerate(columns)}


class SlotTable:
    """Open (window start, key id) pairs and their slot numbers in the aggregator stores.

    Every open pair is one code, ``window number << 32 | key id``, in one sorted array beside its slot,
    so a batch finds or creates all its pairs with a few vector operations however many windows it
    touches (a replay at full speed touches hundreds per batch); a window's pairs are contiguous, in key
    order. ``by_window`` maps each open window's start to its window number; a slot's window start and
    key id are in ``start`` and ``key``.

    Examples
    --------
    >>> import numpy as np
    >>> table = SlotTable()
    >>> slots, new = table.slots_for(np.array([0, 0, 60]), np.array([3, 1, 3]))
    >>> slots.tolist(), new.tolist()
    ([1, 0, 2], [0, 1, 2])
    >>> table.slots_for(np.array([0]), np.array([1]))[0].tolist()
    [0]
    >>> table.pop_windows([0]).tolist(), len(table), table.window_slots(60).tolist()
    ([0, 1], 1, [2])
    """

    KEY_BITS = 32

    def __init__(self) -> None:
        self.by_window: dict[int, int] = {}  # open window start -> window number
        self.next_window = 0
        self.codes = _EMPTY.copy()  # sorted: window number << KEY_BITS | key id
        self.code_slots = _EMPTY.copy()  # the slot of each code
        self.start = _EMPTY.copy()
        self.key = _EMPTY.copy()
        self.free = _EMPTY.copy()  # stack of free slots below size
        self.n_free = 0
        self.size = 0  # slots ever used (the stores hold this many)

    def __len__(self) -> int:
        """The number of open (window, key) slots."""
        return self.size - self.n_free

    def _range(self, number: Any) -> tuple[Any, Any]:
        lo = np.searchsorted(self.codes, np.left_shift(number, self.KEY_BITS))
        hi = np.searchsorted(self.codes, np.left_shift(np.add(number, 1), self.KEY_BITS))
        return lo, hi

    def window_slots(self, start: int) -> np.ndarray:
        """The slots of the open window starting at ``start`` (in key id order)."""
        number = self.by_window.get(start)
        if number is None:
            return _EMPTY
        lo, hi = self._range(number)
        return self.code_slots[int(lo) : int(hi)]

    def _numbers(self, starts: np.ndarray) -> np.ndarray:
        """Window number of each start, opening the windows not open yet (in start order)."""
        uniq, inv = np.unique(starts, return_inverse=True)
        numbers = np.empty(len(uniq), dtype=np.int64)
        for i, s in enumerate(uniq.tolist()):  # per window, not per row
            n = self.by_window.get(s)
            if n is None:
                n = self.by_window[s] = self.next_window
                self.next_window += 1
            numbers[i] = n
        return numbers[inv.reshape(-1)]

    def slots_for(self, starts: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Slot for each (start, key) pair, creating missing ones; also returns the new slots."""
        if len(starts) == 0:
            return np.empty(0, dtype=np.int64), _EMPTY.copy()
        keys = np.asarray(keys, dtype=np.int64)
        if int(keys.max()) >> self.KEY_BITS or int(keys.min()) < 0:
            raise OverflowError(f"SlotTable: key ids must fit in {self.KEY_BITS} bits")
        starts = np.asarray(starts, dtype=np.int64)
        codes = (self._numbers(starts) << self.KEY_BITS) | keys
        n = len(self.codes)
        pos = np.searchsorted(self.codes, codes)
        if n:
            at = np.minimum(pos, n - 1)
            hit = (pos < n) & (self.codes[at] == codes)
            slot = np.where(hit, self.code_slots[at], -1)
        else:
            slot = np.full(len(codes), -1, dtype=np.int64)
        miss = np.flatnonzero(slot < 0)
        if len(miss) == 0:
            return slot, _EMPTY.copy()
        new_codes, first, inv = np.unique(codes[miss], return_index=True, return_inverse=True)
        new = self._take(len(new_codes))
        self.start[new] = starts[miss[first]]
        self.key[new] = new_codes & ((1 << self.KEY_BITS) - 1)
        slot[miss] = new[inv.reshape(-1)]
        at = np.searchsorted(self.codes, new_codes)
        self.codes = np.insert(self.codes, at, new_codes)
        self.code_slots = np.insert(self.code_slots, at, new)
        return slot, new

    def _take(self, n: int) -> np.ndarray:
        reuse = min(n, self.n_free)
        got = self.free[self.n_free - reuse : self.n_free].copy()
        self.n_free -= reuse
        if reuse < n:
            fresh = np.arange(self.size, self.size + n - reuse, dtype=np.int64)
            self.size += n - reuse
            self.start = grown(self.start, self.size, 0)
            self.key = grown(self.key, self.size, 0)
            got = np.concatenate([got, fresh])
        return got

    def pop_windows(self, starts: list[int]) -> np.ndarray:
        """Close windows ``starts``: their slots are free again (returned, in window then key order)."""
        if not starts:
            return _EMPTY.copy()
        numbers = np.array([self.by_window.pop(s) for s in starts], dtype=np.int64)
        lo, hi = self._range(numbers)
        slots = np.concatenate([self.code_slots[a:b] for a, b in zip(lo.tolist(), hi.tolist())])
        inside = np.zeros(len(self.codes) + 1, dtype=np.int64)  # the closed windows' ranges, disjoint
        np.add.at(inside, lo, 1)
        np.add.at(inside, hi, -1)
        keep = np.cumsum(inside[:-1]) == 0
        self.codes, self.code_slots = self.codes[keep], self.code_slots[keep]
        self.free = grown(self.free, self.n_free + len(slots), 0)
        self.free[self.n_free : self.n_free + len(slots)] = slots
        self.n_free += len(slots)
        return slots
