"""Diversity, representativeness and cold-start strategies: reference values, not only shapes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from scipy.stats import chisquare
from sklearn.metrics.pairwise import cosine_similarity

from alloop.errors import ConfigError
from alloop.strategies import SelectionContext, make_strategy
from alloop.strategies import _geometry as geo
from alloop.strategies.coldstart import (
    ProbCover,
    TypiClust,
    probcover_greedy,
    purity_delta,
    typicality,
    typiclust_pick,
)
from alloop.strategies.density import (
    ContrastiveAL,
    DensityWeighted,
    DiscriminativeAL,
    contrastive_scores,
    density_weighted_scores,
    information_density,
)
from alloop.strategies.diversity import (
    BADGE,
    ClusterMargin,
    CoreSet,
    DPPGreedy,
    KMeansSampling,
    WeightedKMeans,
    badge_embeddings,
    coreset_select,
    dpp_greedy_map,
)
from alloop.strategies.uncertainty import entropy_scores, margin_scores

EMBEDDING_ONLY = ["coreset", "kmeans", "kmeans-pp", "typiclust", "probcover", "dpp-greedy", "discriminative"]


def _ctx(emb, *, probs=None, labeled=None, labels=None, ids=None, seed=0, n_classes=None):
    n = len(emb)
    return SelectionContext(
        ids=np.arange(100, 100 + n) if ids is None else ids,
        index=np.arange(n),
        probs=probs,
        embeddings=emb,
        labeled_embeddings=labeled,
        labeled_ids=np.arange(len(labels) if labels is not None else 0),
        labels=np.empty(0, dtype=np.int64) if labels is None else np.asarray(labels),
        n_classes=n_classes,
        seed=seed,
    )


def _blobs(rng, centers, per, scale=0.05):
    centers = np.asarray(centers, dtype=float)
    x = np.concatenate([c + scale * rng.normal(size=(per, centers.shape[1])) for c in centers])
    return x, np.repeat(np.arange(len(centers)), per)


# ---- k-center greedy (core-set) ------------------------------------------------------------------------
def _kcenter_brute(x, k, labeled):
    chosen: list[int] = []
    for _ in range(k):
        best, best_val = -1, -1.0
        for i in range(len(x)):
            if i in chosen:
                continue
            centers = np.vstack([labeled, x[chosen]]) if chosen else labeled
            val = cdist(x[i : i + 1], centers).min()
            if val > best_val:
                best, best_val = i, val
        chosen.append(best)
    return chosen


def _radius(x, centers):
    return cdist(x, centers).min(axis=1).max()


@pytest.mark.parametrize("seed", range(4))
def test_kcenter_greedy_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    x, lab = rng.normal(size=(30, 3)), rng.normal(size=(3, 3))
    got = coreset_select(x.astype(np.float32), 6, labeled=lab).tolist()
    assert got == _kcenter_brute(x.astype(np.float32).astype(float), 6, lab)
    # the chosen set's max-min distance equals the brute-force greedy one, and is a 2-approximation
    radius = _radius(x, np.vstack([lab, x[got]]))
    assert radius == pytest.approx(_radius(x, np.vstack([lab, x[_kcenter_brute(x, 6, lab)]])), rel=1e-6)


def test_kcenter_greedy_is_within_twice_the_optimal_radius():
    rng = np.random.default_rng(9)
    x = rng.normal(size=(10, 2))
    for k in (2, 3):
        greedy = _radius(x, x[coreset_select(x, k)])
        optimum = min(_radius(x, x[list(c)]) for c in itertools.combinations(range(10), k))
        assert optimum <= greedy <= 2 * optimum + 1e-12


def test_coreset_cold_start_begins_at_the_most_central_point():
    x = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0], [10.0, 10.0]])
    order = coreset_select(x, 2).tolist()
    assert order[0] == int(np.argmin(cdist(x, x.mean(axis=0, keepdims=True))[:, 0]))
    assert order[1] == 3
    ctx = _ctx(x, labeled=np.empty((0, 2)))
    assert CoreSet().select(ctx, 2).tolist() == [100 + i for i in order]
    assert CoreSet().score(ctx).argmax() == order[0]


def test_coreset_scores_are_distances_to_labeled():
    rng = np.random.default_rng(1)
    x, lab = rng.normal(size=(12, 4)), rng.normal(size=(5, 4))
    np.testing.assert_allclose(CoreSet().score(_ctx(x, labeled=lab)), cdist(x, lab).min(axis=1), rtol=1e-9)


def test_max_candidates_subsamples_with_the_seed():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(400, 3))
    ctx = _ctx(x, labeled=rng.normal(size=(2, 3)))
    a = CoreSet(max_candidates=50, seed=1).select(ctx, 5)
    assert np.array_equal(a, CoreSet(max_candidates=50, seed=1).select(ctx, 5))
    sub = geo.subsample(400, 50, 5, ctx.rng(1))
    assert sub is not None and set((a - 100).tolist()) <= set(sub.tolist())
    assert not np.array_equal(a, CoreSet(max_candidates=50, seed=2).select(ctx, 5))


def test_chunked_distances_match_scipy(monkeypatch):
    monkeypatch.setattr(geo, "CHUNK_ELEMENTS", 7)  # forces many tiny blocks
    rng = np.random.default_rng(3)
    x, c = rng.normal(size=(23, 4)), rng.normal(size=(5, 4))
    np.testing.assert_allclose(geo.min_sq_dists(x, c), cdist(x, c, "sqeuclidean").min(axis=1), rtol=1e-9)
    d = cdist(x, x)
    np.fill_diagonal(d, np.inf)
    np.testing.assert_allclose(
        geo.knn_mean_dist(x, x, 3, self_pos=np.arange(23)), np.sort(d, axis=1)[:, :3].mean(axis=1), rtol=1e-9
    )
    assert coreset_select(x, 4, labeled=c).tolist() == _kcenter_brute(x, 4, c)


# ---- k-means++ and BADGE --------------------------------------------------------------------------------
def test_kmeanspp_first_draw_follows_squared_distances():
    x = np.array([[0.0], [1.0], [2.0], [4.0]])
    lab = np.array([[0.0]])
    d2 = geo.min_sq_dists(x, lab)
    rng = np.random.default_rng(0)
    draws = [geo.kmeanspp_seeding(1, 4, lambda j: geo.sq_dists_to_row(x, j), rng, init_sq=d2)[0] for _ in range(4000)]
    counts = np.bincount(draws, minlength=4)
    assert counts[0] == 0  # zero distance, zero probability
    expected = 4000 * d2[1:] / d2.sum()
    assert chisquare(counts[1:], expected).pvalue > 1e-3
    # no labeled centers: the first draw is uniform
    uni = [geo.kmeanspp_seeding(1, 4, lambda j: geo.sq_dists_to_row(x, j), rng)[0] for _ in range(2000)]
    assert chisquare(np.bincount(uni, minlength=4)).pvalue > 1e-3


def test_kmeanspp_handles_all_points_on_centers():
    x = np.zeros((5, 2))
    picks = geo.kmeanspp_seeding(5, 5, lambda j: geo.sq_dists_to_row(x, j), np.random.default_rng(0), np.zeros(5))
    assert sorted(picks) == [0, 1, 2, 3, 4]


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


@pytest.mark.parametrize(("n_classes", "dim"), [(2, 3), (5, 4)])
def test_badge_embedding_is_the_cross_entropy_gradient_by_finite_differences(n_classes, dim):
    rng = np.random.default_rng(n_classes)
    w, x = rng.normal(size=(n_classes, dim)), rng.normal(size=dim)
    p = _softmax(w @ x)
    y_hat = int(np.argmax(p))

    def loss(weights):
        return -np.log(_softmax(weights @ x)[y_hat])

    numeric = np.zeros_like(w)
    eps = 1e-6
    for c, d in itertools.product(range(n_classes), range(dim)):
        step = np.zeros_like(w)
        step[c, d] = eps
        numeric[c, d] = (loss(w + step) - loss(w - step)) / (2 * eps)
    g = badge_embeddings(p[None, :], x[None, :])
    assert g.shape == (1, n_classes * dim)
    np.testing.assert_allclose(g[0], numeric.ravel(), atol=1e-7)


def test_badge_selection_equals_kmeanspp_on_explicit_gradient_embeddings():
    rng = np.random.default_rng(4)
    probs = rng.dirichlet(np.ones(4), size=40)
    emb = rng.normal(size=(40, 6)).astype(np.float32)
    ctx = _ctx(emb, probs=probs, seed=3)
    got = BADGE(seed=5).select(ctx, 8) - 100
    g = badge_embeddings(probs, emb)
    norms = np.linalg.norm(g, axis=1)
    expected = geo.kmeanspp_seeding(8, 40, lambda j: geo.sq_dists_to_row(g, j), ctx.rng(5), first=int(np.argmax(norms)))
    assert got.tolist() == expected
    np.testing.assert_allclose(BADGE().score(ctx), norms, rtol=1e-6)


# ---- TypiClust ------------------------------------------------------------------------------------------
def test_typicality_by_hand():
    x = np.array([[0.0], [1.0], [3.0], [7.0]])
    # K = 2 nearest others, distances: 0 → 1, 3; 1 → 1, 2; 3 → 2, 3; 7 → 4, 6
    mean = np.array([(1 + 3) / 2, (1 + 2) / 2, (2 + 3) / 2, (4 + 6) / 2])
    np.testing.assert_allclose(typicality(x, 2), 1 / (mean + 1e-5))
    assert typicality(x[:1], 3).tolist() == [0.0]


def test_typiclust_pick_prefers_uncovered_then_largest_clusters():
    x = np.array([[0.0], [0.1], [0.2], [0.35], [5.0], [5.1], [5.3], [9.0], [9.1], [9.2], [9.4]])
    clusters = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    labeled = np.zeros(11, dtype=bool)
    labeled[7] = True  # cluster 2 (the largest) already has a label
    picks = typiclust_pick(x, clusters, labeled, 3, n_neighbors=20, min_cluster_size=0)
    # order: cluster 0 (no label, 4 points), cluster 1 (no label, 3), then cluster 2 (1 label)
    cluster0 = typicality(x[:4], 2)
    remaining2 = np.array([8, 9, 10])
    assert picks == [
        int(np.argmax(cluster0)),
        4 + int(np.argmax(typicality(x[4:7], 1))),
        int(remaining2[np.argmax(typicality(x[remaining2], 1))]),
    ]


def test_typiclust_cold_start_takes_one_typical_point_per_blob():
    rng = np.random.default_rng(5)
    x, blob = _blobs(rng, [[0, 0], [4, 0], [0, 4]], 20)
    picks = TypiClust(seed=1).select(_ctx(x, labeled=None), 3) - 100
    assert sorted(blob[picks].tolist()) == [0, 1, 2]
    typ = typicality(x, 20)
    for p in picks:  # the most typical of its blob within the blob's typicality
        members = np.flatnonzero(blob == blob[p])
        assert typicality(x[members], 10)[list(members).index(p)] == typicality(x[members], 10).max()
    assert np.isfinite(typ).all()


# ---- ProbCover ------------------------------------------------------------------------------------------
def _probcover_brute(x, k, delta, labeled):
    d = cdist(x, x) < delta
    covered = (cdist(x, labeled) < delta).any(axis=1) if len(labeled) else np.zeros(len(x), bool)
    chosen = []
    for _ in range(k):
        gains = [(-1 if i in chosen else int((d[i] & ~covered).sum())) for i in range(len(x))]
        best = int(np.argmax(gains))
        if gains[best] <= 0:
            break
        chosen.append(best)
        covered |= d[best]
    return chosen, covered


@pytest.mark.parametrize("seed", range(3))
def test_probcover_greedy_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    x, lab = rng.normal(size=(40, 2)), rng.normal(size=(2, 2))
    for delta in (0.3, 0.8):
        got, covered = probcover_greedy(x, 6, delta, lab)
        want, want_cov = _probcover_brute(x, 6, delta, lab)
        assert got == want
        assert covered.sum() == want_cov.sum()


def test_purity_delta_is_the_largest_delta_with_enough_pure_balls():
    rng = np.random.default_rng(6)
    x, _ = _blobs(rng, [[0, 0], [1, 0]], 15, scale=0.4)
    clusters = (x[:, 0] > 0.5).astype(int)
    d = cdist(x, x)
    other = clusters[:, None] != clusters[None, :]

    def pure_fraction(delta):
        return np.mean([not ((d[i] < delta) & other[i]).any() for i in range(len(x))])

    delta = purity_delta(x, clusters, 0.9)
    # balls are open (‖x − x'‖ < δ): the point whose r equals δ is pure only up to rounding
    assert pure_fraction(delta * (1 - 1e-9)) >= 0.9
    r = np.sort(np.where(other, d, np.inf).min(axis=1))
    assert pure_fraction(r[r > delta * (1 + 1e-9)][0] * (1 + 1e-9)) < 0.9
    assert purity_delta(x, np.zeros(len(x)), 0.9) == np.inf


def test_probcover_strategy_covers_then_fills_at_random():
    rng = np.random.default_rng(7)
    x, blob = _blobs(rng, [[0, 0], [5, 0]], 10)
    ctx = _ctx(x, labeled=np.empty((0, 2)), n_classes=2)
    picks = ProbCover(delta=1.0, seed=0).select(ctx, 4) - 100
    assert sorted(blob[picks[:2]].tolist()) == [0, 1]  # one ball per blob covers everything
    assert len(set(picks.tolist())) == 4
    scores = ProbCover(delta=1.0).score(ctx)
    assert scores.tolist() == [10.0] * 20  # each ball holds its whole blob


# ---- density, contrastive, discriminative ----------------------------------------------------------------
def test_information_density_equals_sklearn_cosine_similarity():
    rng = np.random.default_rng(8)
    x, pool = rng.normal(size=(15, 5)), rng.normal(size=(9, 5))
    x[3] = 0.0  # zero vector: similarity 0, as in scikit-learn
    np.testing.assert_allclose(information_density(x), cosine_similarity(x).mean(axis=1), atol=1e-12)
    np.testing.assert_allclose(information_density(x, pool), cosine_similarity(x, pool).mean(axis=1), atol=1e-12)
    probs = rng.dirichlet(np.ones(3), size=15)
    want = entropy_scores(probs) / np.log(3) * np.maximum(cosine_similarity(x).mean(axis=1), 0) ** 2
    np.testing.assert_allclose(density_weighted_scores(probs, x, beta=2.0), want, atol=1e-12)
    ctx = _ctx(x.astype(np.float32), probs=probs.astype(np.float32))
    np.testing.assert_allclose(DensityWeighted(beta=2.0).score(ctx), want, atol=1e-6)


def test_contrastive_scores_by_brute_force_and_fallback():
    rng = np.random.default_rng(9)
    x, lab = rng.normal(size=(12, 3)), rng.normal(size=(7, 3))
    probs, labels = rng.dirichlet(np.ones(3), size=12), rng.integers(0, 3, size=7)
    nearest = np.argsort(cdist(x, lab), axis=1)[:, :3]
    want = -np.log(probs[np.arange(12)[:, None], labels[nearest]]).mean(axis=1)
    np.testing.assert_allclose(contrastive_scores(probs, x, lab, labels, n_neighbors=3), want, rtol=1e-12)
    ctx = _ctx(x, probs=probs, labeled=lab, labels=labels)
    np.testing.assert_allclose(ContrastiveAL(n_neighbors=3).score(ctx), want, rtol=1e-12)
    # labeled embeddings not aligned with labels (or none): entropy, as documented
    for bad in (None, lab[:5]):
        ctx = _ctx(x, probs=probs, labeled=bad, labels=labels)
        np.testing.assert_allclose(ContrastiveAL().score(ctx), entropy_scores(probs))


def test_discriminative_prefers_records_unlike_the_labeled_ones():
    rng = np.random.default_rng(10)
    near = rng.normal(size=(20, 2)) * 0.3
    far = rng.normal(size=(5, 2)) * 0.3 + [4.0, 4.0]
    x = np.vstack([near, far])
    lab = rng.normal(size=(20, 2)) * 0.3
    ctx = _ctx(x, labeled=lab)
    picks = DiscriminativeAL(n_rounds=1).select(ctx, 5) - 100
    assert sorted(picks.tolist()) == [20, 21, 22, 23, 24]
    scores = DiscriminativeAL().score(ctx)
    assert scores[20:].min() > scores[:20].max() and ((scores > 0) & (scores < 1)).all()
    # in sub-batches the first picks count as labeled, so the later ones spread out (Gissin & Shalev-Shwartz)
    spread = DiscriminativeAL(n_rounds=5).select(ctx, 5) - 100
    assert spread[0] >= 20 and (spread < 20).any()
    cold = DiscriminativeAL().select(_ctx(x, labeled=None), 3) - 100
    assert cold[0] == int(np.argmin(cdist(x, x.mean(axis=0, keepdims=True))[:, 0]))


# ---- k-means, cluster-margin, DPP, weighted k-means -------------------------------------------------------
def test_kmeans_takes_the_point_closest_to_each_centroid():
    rng = np.random.default_rng(11)
    x, blob = _blobs(rng, [[0, 0], [3, 0], [0, 3]], 12, scale=0.2)
    picks = KMeansSampling(seed=0).select(_ctx(x), 3) - 100
    assert sorted(blob[picks].tolist()) == [0, 1, 2]
    for p in picks:
        members = np.flatnonzero(blob == blob[p])
        assert p == members[np.argmin(cdist(x[members], x[members].mean(axis=0, keepdims=True))[:, 0])]


def test_cluster_margin_round_robin_from_the_smallest_cluster():
    # 8 low-margin records: 5 in a big group, 2 in a middle one, 1 alone; 4 confident records elsewhere
    emb = np.array(
        [
            [0, 0],
            [0.1, 0],
            [0, 0.1],
            [0.1, 0.1],
            [0.05, 0.05],
            [5, 5],
            [5.1, 5],
            [10, 0],
            [20, 20],
            [21, 20],
            [20, 21],
            [21, 21],
        ],
        dtype=float,
    )
    margins = np.array([0.1] * 8 + [0.9] * 4)
    probs = np.column_stack([(1 + margins) / 2, (1 - margins) / 2])
    ctx = _ctx(emb, probs=probs)
    picks = ClusterMargin(prefilter=2.0, distance_threshold=1.0, seed=0).select(ctx, 4) - 100
    # clusters {7}, {5, 6}, {0..4} visited from the smallest, round-robin; confident records never taken
    assert picks[0] == 7 and picks[1] in (5, 6) and picks[2] < 5 and picks[3] == 11 - picks[1]
    by_count = ClusterMargin(prefilter=2.0, seed=0).select(ctx, 4) - 100  # cut into k = 4 clusters
    assert all(p < 8 for p in by_count) and len({0 if p < 5 else (1 if p < 7 else 2) for p in by_count}) == 3
    np.testing.assert_allclose(ClusterMargin().score(ctx), margin_scores(probs))


def test_dpp_greedy_equals_brute_force_determinant_greedy():
    rng = np.random.default_rng(12)
    x, q = rng.normal(size=(15, 3)), rng.uniform(0.2, 1.0, size=15)
    h2 = ((x - x.mean(axis=0)) ** 2).sum(axis=1).mean()
    kernel = q[:, None] * np.exp(-cdist(x, x, "sqeuclidean") / (2 * h2)) * q[None, :]
    chosen: list[int] = []
    for _ in range(6):
        dets = [
            -np.inf if i in chosen else np.linalg.det(kernel[np.ix_(chosen + [i], chosen + [i])]) for i in range(15)
        ]
        chosen.append(int(np.argmax(dets)))
    assert dpp_greedy_map(x, 6, q) == chosen
    probs = np.column_stack([1 - q / 2, q / 2])  # margin uncertainty 1 - (p1 - p2) = q
    assert (DPPGreedy().select(_ctx(x, probs=probs), 6) - 100).tolist() == chosen


def test_weighted_kmeans_picks_only_prefiltered_uncertain_records():
    rng = np.random.default_rng(13)
    x = rng.normal(size=(60, 3))
    probs = rng.dirichlet(np.ones(3), size=60)
    picks = WeightedKMeans(prefilter=2.0, seed=1).select(_ctx(x, probs=probs), 5) - 100
    u = 1 + margin_scores(probs)
    assert set(picks.tolist()) <= set(np.argsort(-u, kind="stable")[:10].tolist())


# ---- cold start and parameters ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", EMBEDDING_ONLY)
@pytest.mark.parametrize("labeled", [None, np.empty((0, 4))], ids=["none", "empty"])
def test_embedding_only_strategies_work_with_zero_labels(name, labeled):
    rng = np.random.default_rng(14)
    ctx = _ctx(rng.normal(size=(30, 4)).astype(np.float32), labeled=labeled, ids=np.array([f"r{i}" for i in range(30)]))
    strategy = make_strategy(name)
    out = strategy.select(ctx, 5)
    assert out.size == 5 and len(set(out.tolist())) == 5 and set(out.tolist()) <= set(ctx.ids.tolist())
    assert strategy.score(ctx).shape == (30,)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("badge(max_candidates=0)", "The 'max_candidates' parameter of BADGE must be an int >= 1 or None. Got 0."),
        ("probcover(delta=0.0)", "The 'delta' parameter of ProbCover must be a number > 0 or None. Got 0.0."),
        ("density-weighted(beta=-1)", "The 'beta' parameter of DensityWeighted must be a number >= 0.0. Got -1."),
        ("dpp-greedy(quality='best')", "The 'quality' parameter of DPPGreedy must be one of 'auto', 'uniform'."),
        ("cluster-margin(prefilter=0.5)", "The 'prefilter' parameter of ClusterMargin must be a number >= 1.0."),
        ("typiclust(n_neighbors=0)", "The 'n_neighbors' parameter of TypiClust must be an int >= 1. Got 0."),
    ],
)
def test_parameters_are_checked_at_first_use(spec, message):
    strategy = make_strategy(spec)  # construction only stores
    rng = np.random.default_rng(0)
    ctx = _ctx(rng.normal(size=(6, 2)), probs=rng.dirichlet(np.ones(2), size=6))
    with pytest.raises(ConfigError) as info:
        strategy.select(ctx, 2)
    assert message in str(info.value)
