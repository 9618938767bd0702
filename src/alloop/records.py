"""The pool: stable record ids and the state of each record.

Records are named by the user's ids (ints or strings, never positions). Each record is in exactly one
state; records of the evaluation split are kept apart and can never be selected or labeled through
the loop.

>>> pool = Pool()
>>> _ = pool.add(["a", "b", "c"])
>>> _ = pool.transition(["b"], RecordState.UNLABELED, RecordState.SELECTED)
>>> pool.ids(RecordState.UNLABELED).tolist()
['a', 'c']
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum
from typing import Any

import numpy as np

from alloop.errors import DataError, DuplicateRecordError, StateError, UnknownRecordError

__all__ = ["Pool", "RecordState", "as_id_array"]


class RecordState(IntEnum):
    """Where a record is in the loop. ``EVAL`` records are held out and never move."""

    UNLABELED = 0
    SELECTED = 1
    LABELED = 2
    EVAL = 3


def as_id_array(ids: Any, field: str = "ids") -> np.ndarray:
    """Normalise record ids to a 1-D int64 or str (object) array; reject floats, mixes and None."""
    if isinstance(ids, np.ndarray):
        arr = ids
    else:
        if isinstance(ids, (str, bytes, int, np.integer)):
            raise DataError(f"{field!r} must be a sequence of record ids, not a single id {ids!r}.")
        arr = np.asarray(list(ids), dtype=object)
    if arr.ndim != 1:
        raise DataError(f"{field!r} must be one-dimensional; got shape {arr.shape}.")
    if arr.size == 0:
        return np.empty(0, dtype=np.int64)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64, copy=False)
    if arr.dtype.kind == "U":
        return arr.astype(object)
    if arr.dtype.kind == "O":
        kinds = {type(v) for v in arr}
        if all(issubclass(k, (int, np.integer)) and not issubclass(k, bool) for k in kinds):
            return arr.astype(np.int64)
        if all(issubclass(k, (str, np.str_)) for k in kinds):
            return np.array([str(v) for v in arr], dtype=object)
        bad = next(
            (v for v in arr if not isinstance(v, (str, np.str_, int, np.integer)) or isinstance(v, bool)), arr[0]
        )
        if bad is None:
            raise DataError(f"{field!r} contains None; give every record an id.")
        if isinstance(bad, (str, int, np.integer)) and not isinstance(bad, bool):  # only ints and strings: a mix
            raise DataError(
                f"{field!r} mixes int and string ids; use one id type throughout (stable record ids, never positions)."
            )
        raise DataError(
            f"{field!r} must hold only ints or only strings (stable record ids, never positions); "
            f"found {bad!r} of type {type(bad).__name__}."
        )
    raise DataError(
        f"{field!r} must hold ints or strings; got dtype {arr.dtype}. "
        "Convert float ids to int or str before passing them."
    )


def first_duplicate(ids: np.ndarray) -> int | None:
    """Position of the first repeated id in a 1-D int64 or str (object) array, else None (O(n) when sorted).

    >>> first_duplicate(np.array([3, 1, 3, 1])), first_duplicate(np.array([1, 2]))
    (2, None)
    """
    if ids.size < 2:
        return None
    if ids.dtype.kind == "i":
        if bool((ids[1:] > ids[:-1]).all()):  # sorted and distinct: the common case, one pass
            return None
        order = np.argsort(ids, kind="stable")
        same = ids[order[1:]] == ids[order[:-1]]
        if not same.any():
            return None
        return int(order[1:][same].min())  # the second occurrence that comes first in the input
    seen: set[Any] = set()
    for j, v in enumerate(ids.tolist()):
        if v in seen:
            return j
        seen.add(v)
    return None


class _IdIndex:
    """Record id -> pool index for the live records, vectorised.

    Int ids: a dense table over ``[lo, hi]`` when the ids are compact (the usual 0..n-1 or row numbers),
    else the ids kept sorted for ``np.searchsorted``. String ids: a dict. ``find`` gives -1 for unknown ids.
    """

    DENSE_SLACK = 4  # a dense table may be up to 4x the number of live ids (plus 1024)

    def __init__(self, ids: np.ndarray, pos: np.ndarray) -> None:
        self.kind = "str" if ids.dtype == object else "int"
        self.n = int(ids.size)
        self.table: np.ndarray | None = None
        self.lo = 0
        self.keys = np.empty(0, dtype=np.int64)
        self.pos = np.empty(0, dtype=np.int64)
        self.map: dict[Any, int] = {}
        if self.kind == "str":
            self.map = dict(zip(ids.tolist(), pos.tolist(), strict=True))
        elif ids.size and self._fits(int(ids.min()), int(ids.max()), self.n):
            self.lo = int(ids.min())
            self.table = np.full(int(ids.max()) - self.lo + 1, -1, dtype=np.int64)
            self.table[ids - self.lo] = pos
        else:
            order = np.argsort(ids, kind="stable")
            self.keys, self.pos = ids[order], pos[order]

    def _fits(self, lo: int, hi: int, n: int) -> bool:
        return hi - lo + 1 <= self.DENSE_SLACK * n + 1024

    def find(self, ids: np.ndarray) -> np.ndarray:
        if ids.size == 0:
            return np.empty(0, dtype=np.int64)
        if self.kind == "str":
            get = self.map.get
            return np.fromiter((get(v, -1) for v in ids.tolist()), dtype=np.int64, count=ids.size)
        if self.table is not None:
            hi = self.lo + self.table.size - 1
            if int(ids.min()) >= self.lo and int(ids.max()) <= hi:
                return self.table[ids - self.lo]
            inside = (ids >= self.lo) & (ids <= hi)
            out = np.full(ids.size, -1, dtype=np.int64)
            out[inside] = self.table[ids[inside] - self.lo]
            return out
        if self.keys.size == 0:
            return np.full(ids.size, -1, dtype=np.int64)
        j = np.minimum(np.searchsorted(self.keys, ids), self.keys.size - 1)
        return np.where(self.keys[j] == ids, self.pos[j], -1)

    def insert(self, ids: np.ndarray, pos: np.ndarray) -> bool:
        """Add new (absent) ids in place; False when the index must be rebuilt instead."""
        if self.kind == "str":
            self.map.update(zip(ids.tolist(), pos.tolist(), strict=True))
        elif self.table is not None:
            cur_lo, cur_hi = self.lo, self.lo + self.table.size - 1
            lo, hi = min(cur_lo, int(ids.min())), max(cur_hi, int(ids.max()))
            n = self.n + int(ids.size)
            if not self._fits(lo, hi, n):
                return False
            if lo < cur_lo or hi > cur_hi:  # grow with slack on the side that grew: amortised O(1) per id
                size = max(hi - lo + 1, 2 * self.table.size)
                size = size if self._fits(0, size - 1, n) else hi - lo + 1
                lo = lo if hi > cur_hi else hi - size + 1
                table = np.full(size, -1, dtype=np.int64)
                table[cur_lo - lo : cur_lo - lo + self.table.size] = self.table
                self.table, self.lo = table, lo
            self.table[ids - self.lo] = pos
        else:
            order = np.argsort(ids, kind="stable")
            at = np.searchsorted(self.keys, ids[order])
            self.keys = np.insert(self.keys, at, ids[order])
            self.pos = np.insert(self.pos, at, pos[order])
        self.n += int(ids.size)
        return True

    def discard(self, ids: np.ndarray) -> None:
        """Forget ids that are present."""
        if self.kind == "str":
            for v in ids.tolist():
                del self.map[v]
        elif self.table is not None:
            self.table[ids - self.lo] = -1
        else:
            keep = np.ones(self.keys.size, dtype=bool)
            keep[np.searchsorted(self.keys, ids)] = False
            self.keys, self.pos = self.keys[keep], self.pos[keep]
        self.n -= int(ids.size)


class Pool:
    """Record ids with one state each, addressable by id; insertion order is the record index.

    The record index (the position in insertion order) is what breaks ties in selection, so the
    first record added wins a tie, i.e. the lowest row number in the user's data file. Looking ids up
    is vectorised (see :class:`_IdIndex`): a million ids map to indices in milliseconds.
    """

    def __init__(self) -> None:
        self._ids: np.ndarray = np.empty(0, dtype=np.int64)
        self._lookup: _IdIndex | None = None  # built on first use, kept up to date by add/remove
        self._state = np.empty(0, dtype=np.int8)
        self._alive = np.empty(0, dtype=bool)
        self._kind: str | None = None  # "int" or "str"

    # ---- size and lookup -------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._alive.sum())

    def __contains__(self, rid: object) -> bool:
        if self._kind is None or isinstance(rid, bool):
            return False
        if self._kind == "int" and isinstance(rid, (int, np.integer)):
            return bool(self._index().find(np.array([rid], dtype=np.int64))[0] >= 0)
        if self._kind == "str" and isinstance(rid, (str, np.str_)):
            return str(rid) in self._index().map
        return False

    def contains(self, ids: Any, field: str = "ids") -> np.ndarray:
        """Boolean mask: which of ``ids`` are live records of the pool (vectorised ``in``)."""
        arr = as_id_array(ids, field)
        if self._kind is None or arr.size == 0 or ("int" if arr.dtype.kind == "i" else "str") != self._kind:
            return np.zeros(arr.size, dtype=bool)
        return self._index().find(arr) >= 0

    def _index(self) -> _IdIndex:
        if self._lookup is None:
            pos = np.flatnonzero(self._alive)
            self._lookup = _IdIndex(self._ids[pos], pos)
        return self._lookup

    @property
    def capacity(self) -> int:
        """Number of indices ever assigned (removed records keep their index, unused)."""
        return int(self._ids.size)

    @property
    def id_kind(self) -> str | None:
        return self._kind

    def all_ids(self) -> np.ndarray:
        """Every id ever assigned, by index (removed ones included, so positions stay valid)."""
        return self._ids.copy()

    def index_of(self, ids: Any, field: str = "ids") -> np.ndarray:
        """Positions of ``ids``; raises :class:`UnknownRecordError` naming the unknown ones."""
        arr = as_id_array(ids, field)
        if arr.size == 0:
            return np.empty(0, dtype=np.int64)
        if self._kind is None or ("int" if arr.dtype.kind == "i" else "str") != self._kind:
            out = np.full(arr.size, -1, dtype=np.int64)
        else:
            out = self._index().find(arr)
        bad = out < 0
        if bad.any():
            missing = arr[bad]
            shown = ", ".join(repr(m) for m in missing[:5].tolist()) + (" …" if missing.size > 5 else "")
            raise UnknownRecordError(
                f"{missing.size} id(s) in {field!r} are not in the pool: {shown}. "
                "Add records with add() before using them."
            )
        return out

    def ids_at(self, index: np.ndarray) -> np.ndarray:
        return self._ids[np.asarray(index, dtype=np.int64)]

    def state_of(self, ids: Any) -> np.ndarray:
        return self._state[self.index_of(ids)]

    def mask(self, state: RecordState) -> np.ndarray:
        """Boolean mask over indices of live records in ``state``."""
        return (self._state == int(state)) & self._alive

    def indices(self, state: RecordState) -> np.ndarray:
        return np.flatnonzero(self.mask(state))

    def ids(self, state: RecordState) -> np.ndarray:
        return self.ids_at(self.indices(state))

    def counts(self) -> dict[str, int]:
        return {s.name.lower(): int(self.mask(s).sum()) for s in RecordState}

    # ---- changes ---------------------------------------------------------------------------
    def add(self, ids: Any, *, state: RecordState = RecordState.UNLABELED, field: str = "ids") -> np.ndarray:
        """Add new records; all-or-nothing. Returns their indices."""
        arr = as_id_array(ids, field)
        if arr.size == 0:
            return np.empty(0, dtype=np.int64)
        kind = "int" if arr.dtype.kind == "i" else "str"
        if self._kind is not None and kind != self._kind:
            raise DataError(
                f"{field!r} are {kind} ids but this pool holds {self._kind} ids; use one id type throughout."
            )
        dup = first_duplicate(arr)
        if dup is not None:
            raise DuplicateRecordError(
                f"{field!r} contains the id {arr[dup : dup + 1].tolist()[0]!r} more than once; ids must be unique."
            )
        present = self.contains(arr, field)
        if present.any():
            first = arr[present][:1].tolist()[0]
            raise DuplicateRecordError(
                f"{int(present.sum())} id(s) in {field!r} are already in the pool (first: {first!r}); "
                "add only new records."
            )
        start = self.capacity
        index = np.arange(start, start + arr.size, dtype=np.int64)
        self._kind = kind
        self._ids = np.concatenate([self._ids.astype(arr.dtype, copy=False), arr])
        if self._lookup is not None and not self._lookup.insert(arr, index):
            self._lookup = None
        self._state = np.concatenate([self._state, np.full(arr.size, int(state), dtype=np.int8)])
        self._alive = np.concatenate([self._alive, np.ones(arr.size, dtype=bool)])
        return index

    def remove(self, ids: Any, field: str = "ids") -> np.ndarray:
        """Forget records entirely (their index is never reused). Returns their former indices."""
        arr = as_id_array(ids, field)
        idx = self.index_of(arr, field)
        if len(np.unique(idx)) != len(idx):  # checked before any change: all-or-nothing
            raise DuplicateRecordError(f"{field!r} contains a record more than once.")
        self._index().discard(arr)
        self._alive[idx] = False
        self._state[idx] = -1
        return idx

    def transition(
        self, ids: Any, src: RecordState | tuple[RecordState, ...], dst: RecordState, field: str = "ids"
    ) -> np.ndarray:
        """Move records from ``src`` to ``dst``; all-or-nothing. Returns their indices.

        ``EVAL`` records are held out for good: they can neither leave nor enter that state here.
        """
        allowed = (src,) if isinstance(src, RecordState) else tuple(src)
        if RecordState.EVAL in allowed or dst == RecordState.EVAL:
            raise StateError(
                "Evaluation records never move between states; put records in the evaluation split "
                "when adding them (add(ids, state=RecordState.EVAL))."
            )
        idx = self.index_of(ids, field)
        self.check_state(idx, src, field)
        self._state[idx] = int(dst)
        return idx

    def check_state(self, idx: np.ndarray, src: RecordState | tuple[RecordState, ...], field: str = "ids") -> None:
        allowed = (src,) if isinstance(src, RecordState) else src
        ok = np.isin(self._state[idx], [int(s) for s in allowed])
        if not ok.all():
            j = int(np.flatnonzero(~ok)[0])
            got = RecordState(int(self._state[idx[j]])).name.lower()
            want = " or ".join(s.name.lower() for s in allowed)
            rid = self._ids[idx[j] : idx[j] + 1].tolist()[0]
            raise StateError(f"Record {rid!r} in {field!r} is {got}, but must be {want} for this step.")
        if len(np.unique(idx)) != len(idx):
            raise DuplicateRecordError(f"{field!r} contains a record more than once.")

    def set_state_at(self, idx: np.ndarray, state: RecordState) -> None:
        """Low-level: set states by index (used when restoring from the store)."""
        self._state[np.asarray(idx, dtype=np.int64)] = int(state)

    @classmethod
    def restore(cls, ids: Iterable[Any], states: Iterable[int], alive: Iterable[bool]) -> Pool:
        """Rebuild a pool from stored rows ordered by index."""
        pool = cls()
        arr = as_id_array(ids if isinstance(ids, np.ndarray) else list(ids), "ids")
        alive_arr = np.asarray(list(alive), dtype=bool)
        pool._ids = arr
        pool._kind = None if not arr.size else ("str" if arr.dtype == object else "int")
        pool._state = np.asarray(list(states), dtype=np.int8)
        pool._alive = alive_arr
        return pool
