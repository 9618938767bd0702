"""The pool: ids, states, all-or-nothing changes."""

from __future__ import annotations

import numpy as np
import pytest

from alloop.errors import DataError, DuplicateRecordError, StateError, UnknownRecordError
from alloop.records import Pool, RecordState, as_id_array

U, S, L, E = RecordState.UNLABELED, RecordState.SELECTED, RecordState.LABELED, RecordState.EVAL


def states(pool: Pool) -> dict:
    return {s: pool.ids(s).tolist() for s in RecordState}


# ---- ids ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ids", "dtype", "values"),
    [
        ([3, 1, 2], np.int64, [3, 1, 2]),
        (np.array([3, 1], dtype=np.int32), np.int64, [3, 1]),
        (np.array([3, 1], dtype=np.uint16), np.int64, [3, 1]),
        (["b", "a"], object, ["b", "a"]),
        (np.array(["b", "a"]), object, ["b", "a"]),
        ((np.int64(4), 5), np.int64, [4, 5]),
        ([], np.int64, []),
    ],
)
def test_as_id_array_accepts_ints_or_strings(ids, dtype, values):
    arr = as_id_array(ids)
    assert arr.dtype == dtype and arr.tolist() == values
    assert all(type(v) is (int if dtype is np.int64 else str) for v in arr.tolist())


@pytest.mark.parametrize(
    ("ids", "fragment"),
    [
        ([1, "a"], "mixes int and string ids"),
        (["a", 1], "mixes int and string ids"),
        ([1, None], "contains None"),
        ([1.0, 2.0], "found 1.0 of type float"),
        (np.array([1.0, 2.0]), "got dtype float64"),
        ([1, 2.5], "found 2.5 of type float"),
        (np.array([True, False]), "got dtype bool"),
        ([1, True], "found True of type bool"),
        ("abc", "not a single id 'abc'"),
        (7, "not a single id 7"),
        (np.array([[1, 2]]), "one-dimensional"),
    ],
)
def test_as_id_array_rejects_bad_ids_naming_the_field(ids, fragment):
    with pytest.raises(DataError, match="'snapshot.ids'") as info:
        as_id_array(ids, "snapshot.ids")
    assert fragment in str(info.value)


def test_pool_never_mixes_id_types():
    pool = Pool()
    pool.add([1, 2])
    with pytest.raises(DataError, match="str ids but this pool holds int ids"):
        pool.add(["3"])
    with pytest.raises(DataError, match="mixes int and string"):
        pool.add([3, "4"])
    assert pool.ids(U).tolist() == [1, 2] and pool.id_kind == "int"


@pytest.mark.parametrize("ids", [[1, 2, 3], ["x", "y", "z"]])
def test_add_and_lookup_by_id(ids):
    pool = Pool()
    assert pool.add(ids).tolist() == [0, 1, 2]
    assert len(pool) == 3 and ids[1] in pool and ids[0] in pool
    assert pool.index_of([ids[2], ids[0]]).tolist() == [2, 0]
    assert pool.ids(U).tolist() == ids
    assert pool.all_ids().tolist() == ids


def test_duplicates_rejected_all_or_nothing():
    pool = Pool()
    pool.add(["a", "b"])
    with pytest.raises(DuplicateRecordError, match="'c' more than once"):
        pool.add(["c", "d", "c"])
    with pytest.raises(DuplicateRecordError, match="already in the pool \\(first: 'b'\\)"):
        pool.add(["e", "b"])
    assert pool.ids(U).tolist() == ["a", "b"] and "c" not in pool and "e" not in pool and pool.capacity == 2


def test_unknown_ids_raise_naming_them():
    pool = Pool()
    pool.add([10, 11])
    with pytest.raises(UnknownRecordError) as info:
        pool.index_of([10, 99, 98], "labels.ids")
    msg = str(info.value)
    assert "99" in msg and "98" in msg and "'labels.ids'" in msg and "2 id(s)" in msg
    assert isinstance(info.value, KeyError) and isinstance(info.value, DataError)
    with pytest.raises(UnknownRecordError, match="'zz'"):
        Pool().state_of(["zz"])


def test_unknown_id_in_transition_changes_nothing():
    pool = Pool()
    pool.add([1, 2, 3])
    with pytest.raises(UnknownRecordError, match="7"):
        pool.transition([1, 7], U, S)
    assert states(pool)[U] == [1, 2, 3]


# ---- states ---------------------------------------------------------------------------------------------
def test_transitions_move_records_between_states():
    pool = Pool()
    pool.add(["a", "b", "c", "d"])
    pool.transition(["b", "d"], U, S)
    pool.transition(["d"], S, L)
    assert states(pool) == {U: ["a", "c"], S: ["b"], L: ["d"], E: []}
    assert pool.counts() == {"unlabeled": 2, "selected": 1, "labeled": 1, "eval": 0}
    assert pool.state_of(["d", "a"]).tolist() == [int(L), int(U)]
    pool.transition(["b", "a"], (U, S), L)  # several allowed sources
    assert states(pool)[L] == ["a", "b", "d"]


def test_failed_transition_leaves_states_unchanged():
    pool = Pool()
    pool.add(["a", "b", "c"])
    pool.transition(["c"], U, L)
    before = states(pool)
    with pytest.raises(StateError, match="Record 'c' in 'ids' is labeled, but must be unlabeled"):
        pool.transition(["a", "b", "c"], U, S)  # a and b could move, c cannot: nothing moves
    assert states(pool) == before
    with pytest.raises(DuplicateRecordError):
        pool.transition(["a", "a"], U, S)
    assert states(pool) == before


def test_no_record_is_ever_in_two_states():
    rng = np.random.default_rng(0)
    pool = Pool()
    pool.add(np.arange(50))
    pool.add(np.arange(50, 60), state=E)
    moves = [(U, S), (S, L), (S, U), ((U, S), L)]
    for _ in range(200):
        src, dst = moves[rng.integers(len(moves))]
        ids = rng.choice(60, size=rng.integers(1, 5), replace=False)
        try:
            pool.transition(ids, src, dst)
        except StateError:
            pass
        groups = [set(pool.ids(s).tolist()) for s in RecordState]
        assert sum(len(g) for g in groups) == 60
        assert set().union(*groups) == set(range(60))
        assert groups[int(E)] == set(range(50, 60))


def test_eval_records_never_become_candidates():
    pool = Pool()
    pool.add(["t1", "t2"])
    pool.add(["e1"], state=E)
    assert pool.ids(U).tolist() == ["t1", "t2"] and pool.ids(E).tolist() == ["e1"]
    for src, dst in [(E, U), (E, S), (E, L), ((U, E), S)]:
        with pytest.raises(StateError, match="Evaluation records never move"):
            pool.transition(["e1"], src, dst)
    with pytest.raises(StateError, match="is eval, but must be unlabeled"):
        pool.transition(["e1"], U, S)
    with pytest.raises(StateError, match="Evaluation records never move"):
        pool.transition(["t1"], U, E)
    assert states(pool) == {U: ["t1", "t2"], S: [], L: [], E: ["e1"]}


def test_remove_then_re_add():
    pool = Pool()
    pool.add([5, 6, 7])
    pool.transition([6], U, L)
    assert pool.remove([6, 5]).tolist() == [1, 0]
    assert 6 not in pool and len(pool) == 1 and states(pool) == {U: [7], S: [], L: [], E: []}
    with pytest.raises(UnknownRecordError, match="6"):
        pool.state_of([6])
    with pytest.raises(UnknownRecordError, match="6"):
        pool.remove([6])
    # re-added records are new: a fresh index (old ones are never reused), unlabeled again
    assert pool.add([6]).tolist() == [3]
    assert states(pool) == {U: [7, 6], S: [], L: [], E: []}
    assert pool.index_of([6]).tolist() == [3] and pool.capacity == 4 and len(pool) == 2


def test_remove_is_all_or_nothing():
    pool = Pool()
    pool.add(["a", "b"])
    with pytest.raises(UnknownRecordError, match="'zz'"):
        pool.remove(["a", "zz"])
    with pytest.raises(DuplicateRecordError):
        pool.remove(["a", "a"])
    assert "a" in pool and len(pool) == 2 and states(pool)[U] == ["a", "b"]


def test_restore_round_trips_states():
    pool = Pool()
    pool.add(["a", "b", "c"])
    pool.transition(["b"], U, L)
    pool.remove(["c"])
    back = Pool.restore(pool.all_ids().tolist(), pool._state.tolist(), pool._alive.tolist())
    assert states(back) == states(pool) and "c" not in back and back.id_kind == "str"
