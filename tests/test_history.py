"""History: running statistics equal the full-series statistics, in memory that does not grow."""

from __future__ import annotations

import numpy as np
import pytest

from alloop.errors import DataError
from alloop.metadata import History, Snapshot, summary_stats


def _snapshot(rng: np.random.Generator, index: np.ndarray, n_classes: int = 4, dim: int | None = None) -> Snapshot:
    probs = rng.dirichlet(np.full(n_classes, 0.5), size=index.size)
    emb = None if dim is None else rng.normal(size=(index.size, dim))
    return Snapshot(ids=[f"r{i}" for i in index], probs=probs, embeddings=emb)


def test_welford_mean_and_variance_equal_numpy_over_each_series():
    rng = np.random.default_rng(11)
    n = 30
    h = History()
    series: dict[int, list[dict[str, float]]] = {i: [] for i in range(n)}
    for loop in range(9):
        index = np.sort(rng.choice(n, size=rng.integers(5, n), replace=False))  # a different subset each loop
        snap = _snapshot(rng, index)
        h.update(index, snap, loop=loop)
        stats = summary_stats(snap.probs)
        for j, i in enumerate(index):
            series[int(i)].append({k: float(v[j]) for k, v in stats.items()})
    feats = h.features(np.arange(n))
    for i in range(n):
        values = series[i]
        assert h.count[i] == len(values) and feats["count"][i] == len(values)
        for name in ("confidence", "margin", "entropy"):
            xs = np.array([v[name] for v in values])
            if xs.size == 0:
                assert feats[f"{name}_mean"][i] == 0.0
                continue
            np.testing.assert_allclose(feats[f"{name}_mean"][i], xs.mean(), rtol=1e-12, atol=1e-12)
            np.testing.assert_allclose(feats[f"{name}_var"][i], xs.var() if xs.size > 1 else 0.0, atol=1e-12)
            np.testing.assert_allclose(h.variance(name)[i], xs.var() if xs.size > 1 else 0.0, atol=1e-12)
    assert sum(len(v) >= 2 for v in series.values()) > n // 2  # the comparison covered real series


def test_summary_stats_values():
    out = summary_stats(np.array([[0.5, 0.3, 0.2], [1.0, 0.0, 0.0]]))
    np.testing.assert_allclose(out["confidence"], [0.5, 1.0])
    np.testing.assert_allclose(out["margin"], [0.2, 1.0])
    np.testing.assert_allclose(out["entropy"], [-(0.5 * np.log(0.5) + 0.3 * np.log(0.3) + 0.2 * np.log(0.2)), 0.0])


def test_summary_stats_match_scipy_and_sorting_on_random_rows():
    from scipy.stats import entropy

    rng = np.random.default_rng(5)
    for dtype, n_classes in ((np.float32, 10), (np.float64, 2), (np.float64, 1), (np.float32, 7)):
        p = rng.dirichlet(np.full(n_classes, 0.3), size=500).astype(dtype)
        if n_classes > 1:
            p[::9, 0] = 0.0  # zeros take no logarithm
        p[1::9, -1] = p[1::9, 0]  # ties between the top two
        p = (p / p.sum(axis=1, keepdims=True)).astype(dtype)
        out = summary_stats(p)
        srt = np.sort(p.astype(np.float64), axis=1)
        second = srt[:, -2] if n_classes > 1 else 0.0
        np.testing.assert_array_equal(out["confidence"], srt[:, -1])
        np.testing.assert_array_equal(out["margin"], srt[:, -1] - second)
        np.testing.assert_allclose(out["entropy"], entropy(p.astype(np.float64), axis=1), rtol=1e-6, atol=1e-12)


def test_first_pass_shortcut_gives_the_state_of_the_general_fold():
    """Records never seen take a shortcut in History.update; folded through the general path instead (mixed with
    records seen before), they must end in exactly the same state."""
    rng = np.random.default_rng(9)
    snap0 = _snapshot(rng, np.arange(50))
    snap1 = _snapshot(rng, np.arange(100))
    mixed = History()  # records 50..99 arrive in a block with records seen before: the general path
    mixed.update(np.arange(50), snap0, loop=0)
    mixed.update(np.arange(100), snap1, loop=1)
    fresh = History()  # records 50..99 alone: the shortcut
    fresh.update(np.arange(50, 100), snap1.subset(np.arange(50, 100)), loop=1)
    new = np.arange(50, 100)
    scalars = ("probs", "count", "seen", "predicted", "flips", "last_flip_loop", "first_loop", "last_loop", "tod_last")
    for name in (*scalars, "tod_sum"):
        np.testing.assert_array_equal(getattr(mixed, name)[new], getattr(fresh, name)[new], err_msg=name)
    for s in ("confidence", "margin", "entropy"):
        for a, b in ((mixed.mean, fresh.mean), (mixed.m2, fresh.m2), (mixed.ewm, fresh.ewm)):
            np.testing.assert_array_equal(a[s][new], b[s][new], err_msg=s)
        np.testing.assert_array_equal(mixed.ring[s][:, new], fresh.ring[s][:, new], err_msg=s)  # (window, records)
    assert mixed.flips[:50].sum() > 0  # the general path really ran on the old records (their predictions moved)


def test_probabilities_are_kept_in_the_snapshot_dtype_and_never_rounded():
    rng = np.random.default_rng(2)
    h = History()
    p32 = rng.dirichlet(np.ones(3), size=4).astype(np.float32)
    h.update(np.arange(4), Snapshot(ids=list(range(4)), probs=p32), loop=0)
    assert h.probs.dtype == np.float32 and np.array_equal(h.probs[:4], p32)
    p64 = rng.dirichlet(np.ones(3), size=4)
    h.update(np.arange(4), Snapshot(ids=list(range(4)), probs=p64), loop=1)
    assert h.probs.dtype == np.float64 and np.array_equal(h.probs[:4], p64)


def test_prediction_flips_are_counted_with_the_loop_of_the_last_flip():
    h = History()
    idx = np.array([0, 1, 2])
    rows = [  # predicted class per record and loop: r0 flips 0→1→0, r1 never, r2 flips once
        [[0.9, 0.1], [0.8, 0.2], [0.6, 0.4]],
        [[0.2, 0.8], [0.7, 0.3], [0.3, 0.7]],
        [[0.6, 0.4], [0.9, 0.1], [0.2, 0.8]],
    ]
    for loop, probs in enumerate(rows):
        h.update(idx, Snapshot(ids=[1, 2, 3], probs=np.array(probs)), loop=loop + 10)
    assert h.flips[:3].tolist() == [2, 0, 1]
    assert h.last_flip_loop[:3].tolist() == [12, -1, 11]
    assert h.predicted[:3].tolist() == [0, 0, 1]
    assert h.first_loop[:3].tolist() == [10, 10, 10] and h.last_loop[:3].tolist() == [12, 12, 12]
    np.testing.assert_array_equal(h.probs[:3], np.array(rows[-1]))
    assert h.features(idx)["flips"].tolist() == [2.0, 0.0, 1.0]


def test_forget_erases_everything_about_a_record():
    rng = np.random.default_rng(2)
    h = History()
    idx = np.arange(6)
    for loop in range(3):
        h.update(idx, _snapshot(rng, idx, dim=3), loop=loop)
    keep = h.features(np.array([0, 1, 2, 4]))
    h.forget(np.array([3, 5]))
    gone = h.features(np.array([3, 5]))
    assert gone["count"].tolist() == [0, 0] and gone["flips"].tolist() == [0, 0]
    assert gone["first_loop"].tolist() == [-1, -1] and gone["last_flip_loop"].tolist() == [-1, -1]
    for s in ("confidence", "margin", "entropy"):
        assert gone[f"{s}_mean"].tolist() == [0.0, 0.0] and gone[f"{s}_var"].tolist() == [0.0, 0.0]
    assert np.isnan(h.probs[[3, 5]]).all() and np.isnan(h.embeddings[[3, 5]]).all()
    assert not h.seen[[3, 5]].any() and h.predicted[[3, 5]].tolist() == [-1, -1]
    assert h.last_snapshot.ids.tolist() == ["r0", "r1", "r2", "r4"] and h.last_index.tolist() == [0, 1, 2, 4]
    after = h.features(np.array([0, 1, 2, 4]))
    assert all(np.array_equal(keep[k], after[k]) for k in keep)  # the others are untouched
    h.forget(np.array([100]))  # beyond capacity: nothing to erase, no error
    assert h.capacity == 6


def test_memory_does_not_grow_with_the_number_of_updates():
    rng = np.random.default_rng(5)
    h = History()
    idx = np.arange(20)

    def nbytes() -> int:
        arrays = [h.probs, h.seen, h.count, h.predicted, h.flips, h.last_flip_loop, h.first_loop, h.last_loop]
        arrays += list(h.mean.values()) + list(h.m2.values()) + [h.embeddings]
        return sum(a.nbytes for a in arrays)

    h.update(idx, _snapshot(rng, idx, dim=4), loop=0)
    size = nbytes()
    for loop in range(1, 60):
        sub = np.sort(rng.choice(20, size=10, replace=False))
        h.update(sub, _snapshot(rng, sub, dim=4), loop=loop)
    assert nbytes() == size and h.capacity == 20 and h.loops_seen == 60
    assert h.last_snapshot.n_records == 10  # only the last pass is kept
    # growth follows the pool, not the loops
    h.update(np.array([29]), _snapshot(rng, np.array([29]), dim=4), loop=60)
    assert h.capacity == 30 and h.probs.shape == (30, 4) and h.embeddings.shape == (30, 4)
    assert not h.seen[20:29].any() and h.seen[29]


def test_class_count_must_stay_the_same():
    h = History()
    h.update(np.array([0]), Snapshot(ids=[1], probs=[[0.5, 0.5]]), loop=0)
    before = h.count.copy()
    with pytest.raises(DataError, match="'probs' has 3 columns but earlier snapshots had 2"):
        h.update(np.array([0]), Snapshot(ids=[1], probs=[[0.2, 0.3, 0.5]]), loop=1)
    assert np.array_equal(h.count, before) and h.loops_seen == 1
    with pytest.raises(DataError, match="one pool index per snapshot row"):
        h.update(np.array([0, 1]), Snapshot(ids=[1], probs=[[0.5, 0.5]]), loop=1)


def test_prepared_arrays_adopted_give_the_same_state_and_are_refused_once_history_holds_data():
    rng = np.random.default_rng(4)
    snap = _snapshot(rng, np.arange(40))
    plain = History(window=3)
    plain.update(np.arange(40), snap, loop=0)
    h = History(window=3)
    ready = h.prepared(64, 4, snap.probs.dtype)
    assert ready.capacity == 64 and not ready.seen.any() and (ready.predicted == -1).all() and h.capacity == 0
    assert h.adopt(ready) and h.capacity == 64
    h.update(np.arange(40), snap, loop=0)
    for name in ("probs", "count", "predicted", "first_loop", "seen"):
        np.testing.assert_array_equal(getattr(h, name)[:40], getattr(plain, name)[:40], err_msg=name)
    for s in ("confidence", "margin", "entropy"):
        np.testing.assert_array_equal(h.mean[s][:40], plain.mean[s][:40])
        np.testing.assert_array_equal(h.ring[s][:, :40], plain.ring[s][:, :40])
    late = History(window=3).prepared(128, 4)
    assert not h.adopt(late) and h.capacity == 64  # data folded already: the late arrays are dropped
    other = History(window=4)
    assert not other.adopt(History(window=3).prepared(8, 4))  # parameters differ


def test_folding_a_pass_in_parts_equals_folding_it_whole():
    rng = np.random.default_rng(8)
    order = rng.permutation(30)
    whole, parted = History(), History()
    for loop in range(3):
        snap = _snapshot(rng, order, dim=4)
        whole.update(order, snap, loop=loop)
        cuts = [(order[a:b], snap.subset(slice(a, b))) for a, b in ((0, 7), (7, 19), (19, 30))]
        parted.update_parts(cuts, loop=loop)
    for name in ("probs", "count", "predicted", "flips", "tod_sum", "drift_sum", "drift_count", "embeddings"):
        np.testing.assert_array_equal(getattr(parted, name), getattr(whole, name), err_msg=name)
    for s in ("confidence", "margin", "entropy"):
        for a, b in ((parted.m2, whole.m2), (parted.ewm, whole.ewm), (parted.ring, whole.ring)):
            np.testing.assert_array_equal(a[s], b[s], err_msg=s)
    assert parted.loops_seen == whole.loops_seen == 3
    assert parted.last_index.tolist() == whole.last_index.tolist()  # the parts, concatenated on first use
    np.testing.assert_array_equal(parted.last_snapshot.embeddings, whole.last_snapshot.embeddings)
    parted.forget(order[:2])
    assert not np.isin(order[:2], parted.last_index).any() and parted.last_snapshot.n_records == 28
