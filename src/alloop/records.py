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


class Pool:
    """Record ids with one state each, addressable by id; insertion order is the record index.

    The record index (the position in insertion order) is what breaks ties in selection, so the
    first record added wins a tie, i.e. the lowest row number in the user's data file.
    """

    def __init__(self) -> None:
        self._ids: list[Any] = []
        self._index: dict[Any, int] = {}
        self._state = np.empty(0, dtype=np.int8)
        self._alive = np.empty(0, dtype=bool)
        self._kind: str | None = None  # "int" or "str"

    # ---- size and lookup -------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._alive.sum())

    def __contains__(self, rid: object) -> bool:
        return rid in self._index

    @property
    def capacity(self) -> int:
        """Number of indices ever assigned (removed records keep their index, unused)."""
        return len(self._ids)

    @property
    def id_kind(self) -> str | None:
        return self._kind

    def all_ids(self) -> np.ndarray:
        """Every id ever assigned, by index (removed ones included, so positions stay valid)."""
        return self._array(self._ids)

    def _array(self, values: list[Any]) -> np.ndarray:
        if self._kind == "str":
            return np.array(values, dtype=object)
        return np.array(values, dtype=np.int64)

    def index_of(self, ids: Any, field: str = "ids") -> np.ndarray:
        """Positions of ``ids``; raises :class:`UnknownRecordError` naming the unknown ones."""
        arr = as_id_array(ids, field)
        out = np.empty(arr.size, dtype=np.int64)
        missing = []
        get = self._index.get
        for j, rid in enumerate(arr.tolist()):
            i = get(rid)
            if i is None:
                missing.append(rid)
            else:
                out[j] = i
        if missing:
            shown = ", ".join(repr(m) for m in missing[:5]) + (" …" if len(missing) > 5 else "")
            raise UnknownRecordError(
                f"{len(missing)} id(s) in {field!r} are not in the pool: {shown}. "
                "Add records with add() before using them."
            )
        return out

    def ids_at(self, index: np.ndarray) -> np.ndarray:
        ids = self.all_ids()
        return ids[np.asarray(index, dtype=np.int64)]

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
        values = arr.tolist()
        if len(set(values)) != len(values):
            seen: set[Any] = set()
            dup = next(v for v in values if v in seen or seen.add(v))  # type: ignore[func-returns-value]
            raise DuplicateRecordError(f"{field!r} contains the id {dup!r} more than once; ids must be unique.")
        present = [v for v in values if v in self._index]
        if present:
            raise DuplicateRecordError(
                f"{len(present)} id(s) in {field!r} are already in the pool (first: {present[0]!r}); "
                "add only new records."
            )
        start = len(self._ids)
        self._kind = kind
        self._ids.extend(values)
        for j, v in enumerate(values):
            self._index[v] = start + j
        self._state = np.concatenate([self._state, np.full(len(values), int(state), dtype=np.int8)])
        self._alive = np.concatenate([self._alive, np.ones(len(values), dtype=bool)])
        return np.arange(start, start + len(values), dtype=np.int64)

    def remove(self, ids: Any, field: str = "ids") -> np.ndarray:
        """Forget records entirely (their index is never reused). Returns their former indices."""
        arr = as_id_array(ids, field)
        idx = self.index_of(arr, field)
        if len(np.unique(idx)) != len(idx):  # checked before any change: all-or-nothing
            raise DuplicateRecordError(f"{field!r} contains a record more than once.")
        for rid in arr.tolist():
            del self._index[rid]
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
            raise StateError(
                f"Record {self._ids[idx[j]]!r} in {field!r} is {got}, but must be {want} for this step."
            )
        if len(np.unique(idx)) != len(idx):
            raise DuplicateRecordError(f"{field!r} contains a record more than once.")

    def set_state_at(self, idx: np.ndarray, state: RecordState) -> None:
        """Low-level: set states by index (used when restoring from the store)."""
        self._state[np.asarray(idx, dtype=np.int64)] = int(state)

    @classmethod
    def restore(cls, ids: Iterable[Any], states: Iterable[int], alive: Iterable[bool]) -> Pool:
        """Rebuild a pool from stored rows ordered by index."""
        pool = cls()
        id_list = list(ids)
        alive_arr = np.asarray(list(alive), dtype=bool)
        pool._ids = id_list
        pool._kind = None if not id_list else ("str" if isinstance(id_list[0], str) else "int")
        pool._index = {rid: i for i, rid in enumerate(id_list) if alive_arr[i]}
        pool._state = np.asarray(list(states), dtype=np.int8)
        pool._alive = alive_arr
        return pool
