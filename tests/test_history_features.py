"""History time-series features: each equals its formula computed on the full series, in O(1) memory per record."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from alloop.errors import ConfigError, DataError
from alloop.metadata import History, Snapshot, summary_stats
from alloop.metadata.history import FEATURES, cartography, window_slopes


def _snap(rng: np.random.Generator, index: np.ndarray, *, c: int = 3, dim: int | None = None, **kw) -> Snapshot:
    probs = rng.dirichlet(np.full(c, 0.6), size=index.size)
    emb = None if dim is None else rng.normal(size=(index.size, dim))
    return Snapshot(ids=[f"r{i}" for i in index], probs=probs, embeddings=emb, **kw)


def _lstsq_slope(y: np.ndarray) -> float:
    if y.size < 2:
        return 0.0
    return float(np.polyfit(np.arange(y.size, dtype=np.float64), y, 1)[0])


def test_every_series_feature_equals_its_formula_on_the_full_series():
    rng = np.random.default_rng(3)
    n, alpha, w = 25, 0.3, 4
    h = History(alpha=alpha, window=w)
    series: dict[int, list[dict[str, float]]] = {i: [] for i in range(n)}
    probs_seen: dict[int, list[np.ndarray]] = {i: [] for i in range(n)}
    loops_of: dict[int, list[int]] = {i: [] for i in range(n)}
    for loop in range(11):
        index = np.sort(rng.choice(n, size=rng.integers(8, n), replace=False))
        snap = _snap(rng, index)
        h.update(index, snap, loop=loop)
        stats = summary_stats(snap.probs)
        for j, i in enumerate(index.tolist()):
            series[i].append({k: float(v[j]) for k, v in stats.items()})
            probs_seen[i].append(snap.probs[j])
            loops_of[i].append(loop)
    f = h.features(np.arange(n))
    assert list(f) == list(FEATURES)
    assert all(v.shape == (n,) and v.dtype == np.float64 and np.isfinite(v).all() for v in f.values())
    checked = 0
    for i in range(n):
        for s in ("confidence", "margin", "entropy"):
            xs = np.array([v[s] for v in series[i]])
            ewm = xs[0]
            for x in xs[1:]:
                ewm = alpha * x + (1 - alpha) * ewm
            np.testing.assert_allclose(f[f"{s}_ewm"][i], ewm, rtol=1e-12)
            np.testing.assert_allclose(f[f"{s}_slope"][i], _lstsq_slope(xs[-w:]), atol=1e-6)  # float32 ring
            np.testing.assert_allclose(f[f"{s}_last"][i], xs[-1], rtol=1e-12)
        p = np.array(probs_seen[i])
        tods = np.linalg.norm(np.diff(p, axis=0), axis=1)
        np.testing.assert_allclose(f["tod"][i], tods[-1] if tods.size else 0.0, rtol=1e-12)
        np.testing.assert_allclose(f["tod_mean"][i], tods.mean() if tods.size else 0.0, rtol=1e-12)
        pred = p.argmax(axis=1)
        flips = int((pred[1:] != pred[:-1]).sum())
        assert f["flips"][i] == flips and f["flip_rate"][i] == flips / max(len(pred) - 1, 1)
        flip_loops = [loops_of[i][j + 1] for j in range(len(pred) - 1) if pred[j + 1] != pred[j]]
        since = 10 - (flip_loops[-1] if flip_loops else loops_of[i][0])
        assert f["loops_since_flip"][i] == since and f["first_loop"][i] == loops_of[i][0]
        assert f["loops_seen"][i] == 10 - loops_of[i][0] + 1
        checked += len(series[i]) > w
    assert checked > n // 2  # the window really dropped old values for most records


def test_window_slopes_handles_short_series_and_wraparound():
    ring = np.array([[5.0, np.nan, np.nan], [1.0, 3.0, np.nan], [9.0, 7.0, 8.0]], dtype=np.float32)
    # row 2: 5 observations 0..4 were (x, x, 8, 9, 7) → slots: 0←obs3=9, 1←obs4=7, 2←obs2=8
    out = window_slopes(ring, np.array([1, 2, 5]))
    np.testing.assert_allclose(out, [0.0, 2.0, _lstsq_slope(np.array([8.0, 9.0, 7.0]))])


def test_embedding_drift_is_the_cosine_distance_between_consecutive_embeddings():
    h = History()
    idx = np.array([0, 1, 2])
    e0 = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    e1 = np.array([[0.0, 1.0], [0.0, 2.0], [-1.0, -1.0]])
    p = np.full((3, 2), 0.5)
    h.update(idx, Snapshot(ids=[1, 2, 3], probs=p, embeddings=e0), loop=0)
    f = h.features(idx)
    assert f["drift"].tolist() == [0.0, 0.0, 0.0] and f["drift_mean"].tolist() == [0.0, 0.0, 0.0]
    h.update(idx, Snapshot(ids=[1, 2, 3], probs=p, embeddings=e1), loop=1)
    h.update(idx[:1], Snapshot(ids=[1], probs=p[:1], embeddings=e1[:1]), loop=2)
    f = h.features(idx)
    np.testing.assert_allclose(f["drift"], [0.0, 0.0, 2.0], atol=1e-7)
    np.testing.assert_allclose(f["drift_mean"], [0.5, 0.0, 2.0], atol=1e-7)


def test_cartography_and_forgetting_from_training_dynamics():
    tp = np.array([[0.2, 0.7, 0.4, 0.9], [0.9, 0.95, 0.97, 0.99]])
    out = cartography(tp)
    np.testing.assert_allclose(out["confidence"], tp.mean(axis=1))
    np.testing.assert_allclose(out["variability"], tp.std(axis=1))
    assert out["forgetting"].tolist() == [1, 0]
    correct = np.array([[1, 0, 1, 0], [1, 1, 1, 1]], dtype=bool)
    assert cartography(tp, correct)["forgetting"].tolist() == [2, 0]

    h = History()
    idx = np.arange(4)
    h.update(idx, Snapshot(ids=[1, 2, 3, 4], probs=np.full((4, 2), 0.5)), loop=0)
    h.update_dynamics(idx[:2], tp)  # a TRAIN pass: records 0 and 1 are labeled
    h.update_dynamics(idx[:1], np.array([[0.8, 0.3]]))  # a second pass: one more forgetting event for record 0
    f = h.features(idx)
    np.testing.assert_allclose(f["cartography_confidence"], [0.55, tp[1].mean(), 0.0, 0.0])
    np.testing.assert_allclose(f["cartography_variability"], [0.25, tp[1].std(), 0.0, 0.0])
    assert f["forgetting_events"].tolist() == [2.0, 0.0, 0.0, 0.0]
    assert f["dynamics_passes"].tolist() == [2.0, 1.0, 0.0, 0.0]
    with pytest.raises(DataError, match="one row per record"):
        h.update_dynamics(idx[:2], tp[:1])


def test_dynamics_in_a_snapshot_are_read_and_nan_rows_skipped():
    h = History()
    tp = np.array([[0.9, 0.2], [np.nan, np.nan]])
    snap = Snapshot(ids=[1, 2], probs=np.full((2, 2), 0.5), dynamics={"true_prob": tp})
    h.update(np.array([0, 1]), snap, loop=0)
    assert h.dyn_passes[:2].tolist() == [1, 0] and h.forgetting[:2].tolist() == [1, 0]
    snap = Snapshot(ids=[1, 2], probs=np.full((2, 2), 0.5), dynamics={"p_true": np.array([[0.6], [0.7]])})
    h.update(np.array([0, 1]), snap, loop=1)
    assert h.dyn_passes[:2].tolist() == [2, 1]


def test_neighbour_cartography_averages_the_nearest_labeled_records():
    h = History(neighbours=2)
    emb = np.array([[0.0, 0.0], [0.1, 0.0], [10.0, 0.0], [10.1, 0.0], [0.05, 0.0], [10.05, 0.0]])
    h.update(np.arange(6), Snapshot(ids=list(range(6)), probs=np.full((6, 2), 0.5), embeddings=emb), loop=0)
    f = h.features(np.array([4, 5]))
    assert f["nbr_known"].tolist() == [0.0, 0.0]  # no dynamics yet
    tp = np.array([[0.5, 0.9, 0.1], [0.5, 0.5, 0.5], [0.9, 0.95, 0.99], [0.1, 0.9, 0.2]])
    h.update_dynamics(np.arange(4), tp)
    f = h.features(np.array([4, 5, 0]))
    var = tp.std(axis=1)
    forget = cartography(tp)["forgetting"].astype(float)
    np.testing.assert_allclose(f["nbr_cartography_variability"], [var[:2].mean(), var[2:].mean(), var[1:3].mean()])
    np.testing.assert_allclose(f["nbr_forgetting_events"], [forget[:2].mean(), forget[2:].mean(), forget[1:3].mean()])
    assert f["nbr_known"].tolist() == [1.0, 1.0, 1.0]
    # record 0 has dynamics itself and is not its own neighbour: its two nearest are records 1 and 2


def test_parameters_are_validated_at_first_use():
    rng = np.random.default_rng(0)
    h = History(window=1)  # construction only stores
    with pytest.raises(ConfigError, match="'window' parameter of History must be an int >= 2. Got 1"):
        h.update(np.arange(2), _snap(rng, np.arange(2)), loop=0)
    with pytest.raises(ConfigError, match="'alpha' parameter of History"):
        History(alpha=0.0).update(np.arange(2), _snap(rng, np.arange(2)), loop=0)


def test_memory_mapped_embeddings_for_1e5_records_do_not_grow_with_loops(tmp_path):
    n, dim = 100_000, 384
    rng = np.random.default_rng(1)
    h = History(path=tmp_path / "hist")
    idx = np.arange(n)
    probs = rng.dirichlet(np.ones(4), size=n).astype(np.float32)
    emb = rng.normal(size=(n, dim)).astype(np.float32)
    ids = np.arange(n)
    h.update(idx, Snapshot(ids=ids, probs=probs, embeddings=emb), loop=0)
    assert isinstance(h.embeddings, np.memmap) and h.embeddings.dtype == np.float16
    assert h.embeddings.shape == (n, dim)
    ram = h.nbytes()
    assert ram < 300 * n  # ~250 bytes per record; the embeddings (768 bytes each in float16) are not in RAM
    tracemalloc.start()
    try:
        sizes = []
        for loop in range(1, 4):
            emb[: n // 2] += 0.1  # half the pool moves a little
            h.update(idx, Snapshot(ids=ids, probs=probs, embeddings=emb), loop=loop)
            sizes.append(tracemalloc.get_traced_memory()[0])
    finally:
        tracemalloc.stop()
    assert h.nbytes() == ram
    assert max(sizes) - min(sizes) < 4 * 2**20  # no growth with loops (a few MB of noise at most)
    np.testing.assert_allclose(h.embeddings[:3], emb[:3].astype(np.float16), rtol=1e-3)
    f = h.features(np.array([0, n - 1]))
    assert f["drift"][0] > 1e-4 and f["drift"][1] < 1e-6  # float16 storage: tiny drift where nothing moved
    # growth re-maps the file and keeps the rows
    h.update(np.array([n + 5]), Snapshot(ids=[n + 5], probs=probs[:1], embeddings=emb[:1]), loop=4)
    assert h.embeddings.shape == (n + 6, dim) and np.isnan(h.embeddings[n]).all()
    np.testing.assert_allclose(h.embeddings[n + 5], emb[0].astype(np.float16), rtol=1e-3)
    np.testing.assert_allclose(h.embeddings[:3], emb[:3].astype(np.float16), rtol=1e-3)
    h.forget(np.array([0]))
    assert np.isnan(h.embeddings[0]).all()


def test_in_ram_embeddings_stay_float32_by_default():
    rng = np.random.default_rng(2)
    h = History()
    h.update(np.arange(3), _snap(rng, np.arange(3), dim=4), loop=0)
    assert type(h.embeddings) is np.ndarray and h.embeddings.dtype == np.float32
