"""Diversity on embeddings: core-set, k-means, k-means++, BADGE, cluster-margin, DPP greedy, weighted k-means.

All of them are batch-aware (``select`` chooses the batch jointly) and read ``ctx.embeddings``; those
that also weigh uncertainty read ``ctx.probs``. The embedding-only ones (``coreset``, ``kmeans``,
``kmeans-pp``, ``dpp-greedy``) need no labels, so they work from a cold start with zero labeled records,
as do ``typiclust`` and ``probcover`` (:mod:`alloop.strategies.coldstart`).

Large pools: distances are computed in chunks (memory bounded by a block, not by n²), and above
``max_candidates`` candidates a seeded subsample of that size is selected from (``seed``).

>>> import numpy as np
>>> x = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0], [10.0, 0.0]])
>>> coreset_select(x, 3, labeled=np.array([[0.0, 0.1]])).tolist()  # farthest first from the labeled point
[4, 2, 1]
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from alloop._validation import check_choice, check_float, check_int
from alloop.errors import ConfigError
from alloop.strategies._base import SelectionContext
from alloop.strategies._geometry import (
    CHUNK_ELEMENTS,
    UNCERTAINTY_MEASURES,
    EmbeddingStrategy,
    as_matrix,
    closest_to_centroids,
    kcenter_greedy,
    kmeans_fit,
    kmeanspp_seeding,
    min_sq_dists,
    sq_dists_to_row,
    uncertainty,
)
from alloop.strategies._topk import rank_order, top_k
from alloop.strategies.uncertainty import margin_scores

__all__ = [
    "BADGE",
    "ClusterMargin",
    "CoreSet",
    "DPPGreedy",
    "KMeansPlusPlus",
    "KMeansSampling",
    "WeightedKMeans",
    "badge_embeddings",
    "coreset_select",
    "dpp_greedy_map",
]

#: Default candidate cap for O(n·k) strategies (time, not memory, is what it bounds).
CAP_NK = 100_000
#: Default candidate cap for the k-means strategies (Lloyd iterations cost O(n·k) each).
CAP_KMEANS = 20_000
#: Default candidate cap for O(n²) strategies.
CAP_N2 = 10_000


# ---- pure functions -------------------------------------------------------------------------------------
def coreset_select(embeddings: np.ndarray, k: int, labeled: np.ndarray | None = None) -> np.ndarray:
    """k-center greedy (Sener & Savarese 2018): positions of ``k`` rows, each the farthest from labeled ∪ chosen.

    With no labeled rows the traversal starts at the row closest to the mean (the most central one).
    """
    x = as_matrix(embeddings)
    lab = as_matrix(labeled, x.shape[1])
    x2 = (x * x).sum(axis=1)

    def dist_to(j: int) -> np.ndarray:
        return sq_dists_to_row(x, j, x2)

    init = min_sq_dists(x, lab) if lab.shape[0] else None
    first = int(np.argmin(((x - x.mean(axis=0)) ** 2).sum(axis=1))) if x.shape[0] else 0
    return np.asarray(kcenter_greedy(k, x.shape[0], dist_to, init, first), dtype=np.int64)


def badge_embeddings(probs: np.ndarray, embeddings: np.ndarray) -> np.ndarray:
    """BADGE gradient embeddings (Ash et al. 2020): ``g = (p − e_ŷ) ⊗ x``, shape ``(n, C·D)``, row-major (c, d).

    This is the gradient of the cross-entropy loss at the predicted label ŷ with respect to the weights
    ``W`` (C × D) of a softmax last layer whose input is ``x``, flattened as ``W.ravel()``.

    >>> badge_embeddings(np.array([[0.75, 0.25]]), np.array([[2.0, 4.0]])).tolist()
    [[-0.5, -1.0, 0.5, 1.0]]
    """
    p = np.asarray(probs, dtype=np.float64)
    x = np.asarray(embeddings, dtype=np.float64)
    a = p.copy()
    a[np.arange(p.shape[0]), np.argmax(p, axis=1)] -= 1.0
    return (a[:, :, None] * x[:, None, :]).reshape(p.shape[0], -1)


def dpp_greedy_map(
    embeddings: np.ndarray, k: int, quality: np.ndarray | None = None, bandwidth: float | None = None
) -> list[int]:
    """Fast greedy MAP inference for a DPP (Chen et al. 2018), kernel ``L = diag(q)·S·diag(q)``.

    ``S_ij = exp(−‖x_i − x_j‖² / (2h²))`` (full rank for distinct rows); ``h² = bandwidth²`` or, by
    default, the mean squared distance to the mean (half the mean pairwise squared distance). Stops
    early when the next determinant gain is numerically zero; returns the positions in pick order.
    """
    x = as_matrix(embeddings)
    n = x.shape[0]
    if n == 0 or k <= 0:
        return []
    q = np.ones(n) if quality is None else np.asarray(quality, dtype=np.float64)
    h2 = float(bandwidth) ** 2 if bandwidth is not None else float(((x - x.mean(axis=0)) ** 2).sum(axis=1).mean())
    x2 = (x * x).sum(axis=1)
    steps = min(k, n, max(1, CHUNK_ELEMENTS * 8 // n))  # the (steps, n) factor table stays under ~256 MB
    cis = np.zeros((steps, n))
    di2 = q * q  # S_ii = 1
    taken = np.zeros(n, dtype=bool)
    j = int(np.argmax(di2))
    chosen = [j]
    taken[j] = True
    tol = 1e-10 * max(1.0, float(di2.max()))
    while len(chosen) < steps:
        t = len(chosen) - 1
        sim = np.exp(-sq_dists_to_row(x, j, x2) / (2.0 * h2)) if h2 > 0 else np.ones(n)
        row = q[j] * q * sim
        eis = (row - cis[:t, j] @ cis[:t, :]) / math.sqrt(di2[j])
        cis[t, :] = eis
        di2 = di2 - eis * eis
        masked = np.where(taken, -np.inf, di2)
        j = int(np.argmax(masked))
        if masked[j] <= tol:
            break
        chosen.append(j)
        taken[j] = True
    return chosen


def _central_scores(x: np.ndarray) -> np.ndarray:
    """Minus the distance to the mean: the most central record scores highest."""
    if x.shape[0] == 0:
        return np.empty(0)
    return -np.sqrt(((x - x.mean(axis=0)) ** 2).sum(axis=1))


def _probs(ctx: SelectionContext) -> np.ndarray:
    assert ctx.probs is not None, "engine only offers strategies whose needs are met"
    return np.asarray(ctx.probs, dtype=np.float64)


def _check_prefilter(value: Any, owner: str) -> float:
    number = check_float(value, "prefilter", owner, low=1.0)
    return float(number)


# ---- strategies ---------------------------------------------------------------------------------------
class CoreSet(EmbeddingStrategy):
    """Core-set: k-center greedy, each pick the candidate farthest from labeled ∪ chosen (Sener & Savarese 2018).

    ``score`` is the distance to the nearest labeled record (with none labeled: minus the distance to
    the candidates' mean, so that ``k=1`` takes the most central record, where the traversal starts).
    Cost O(n·(m + k)·D) in chunks; above ``max_candidates`` (default 100,000) a seeded subsample.
    """

    name = "coreset"

    def __init__(self, *, max_candidates: int | None = CAP_NK, seed: int | None = None) -> None:
        self.max_candidates = max_candidates
        self.seed = seed

    def score(self, ctx: SelectionContext) -> np.ndarray:
        self._validate()
        x = self._x(ctx)
        lab = self._labeled(ctx, x.shape[1])
        if lab.shape[0] == 0:
            return _central_scores(x)
        return np.sqrt(min_sq_dists(x, lab))

    def _pick(self, ctx: SelectionContext, x: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
        return coreset_select(x, k, self._labeled(ctx, x.shape[1])).tolist()

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"max_candidates": 8, "seed": 3}]


class KMeansSampling(EmbeddingStrategy):
    """K-means: cluster into k groups, take the record closest to each centroid (Nguyen & Smeulders 2004).

    scikit-learn ``KMeans`` (k-means++ init) seeded from ``seed`` with ``n_init`` restarts (1, as scikit-learn's
    own default); centroids are visited from the largest cluster down. Labels are not used, so this is
    also a cold-start strategy. ``score`` is minus the distance to the candidates' mean (the one-cluster
    case). Above ``max_candidates`` (default
    20,000) a seeded subsample is clustered.
    """

    name = "kmeans"

    def __init__(self, *, n_init: int = 1, max_candidates: int | None = CAP_KMEANS, seed: int | None = None) -> None:
        self.n_init = n_init
        self.max_candidates = max_candidates
        self.seed = seed

    def _validate(self) -> None:
        super()._validate()
        check_int(self.n_init, "n_init", self._owner(), min=1)

    def score(self, ctx: SelectionContext) -> np.ndarray:
        self._validate()
        return _central_scores(self._x(ctx))

    def _pick(self, ctx: SelectionContext, x: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
        labels, centers = kmeans_fit(x, k, rng, n_init=self.n_init)
        return closest_to_centroids(x, labels, centers)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"n_init": 1, "seed": 5, "max_candidates": 10}]


class KMeansPlusPlus(EmbeddingStrategy):
    """K-means++ seeding as the batch: draws ∝ squared distance to the nearest center (Arthur & Vassilvitskii 2007).

    The labeled records count as existing centers; with none, the first pick is uniform. ``score`` is
    the probability of being drawn first. Above ``max_candidates`` (default 100,000) a seeded subsample.
    """

    name = "kmeans-pp"

    def __init__(self, *, max_candidates: int | None = CAP_NK, seed: int | None = None) -> None:
        self.max_candidates = max_candidates
        self.seed = seed

    def score(self, ctx: SelectionContext) -> np.ndarray:
        self._validate()
        x = self._x(ctx)
        lab = self._labeled(ctx, x.shape[1])
        if lab.shape[0] == 0 or x.shape[0] == 0:
            return np.full(x.shape[0], 1.0 / max(1, x.shape[0]))
        d2 = min_sq_dists(x, lab)
        total = d2.sum()
        return d2 / total if total > 0 else np.full(x.shape[0], 1.0 / x.shape[0])

    def _pick(self, ctx: SelectionContext, x: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
        lab = self._labeled(ctx, x.shape[1])
        x2 = (x * x).sum(axis=1)
        init = min_sq_dists(x, lab) if lab.shape[0] else None
        return kmeanspp_seeding(k, x.shape[0], lambda j: sq_dists_to_row(x, j, x2), rng, init_sq=init)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"seed": 11}]


class BADGE(EmbeddingStrategy):
    """BADGE: k-means++ seeding on gradient embeddings (p − e_ŷ) ⊗ x (Ash et al. 2020).

    The first pick has the largest gradient norm (as in the authors' code), the rest are drawn with
    probability ∝ squared distance in gradient space. Distances are computed from the factors
    (‖g_i − g_j‖² = ‖a_i‖²‖x_i‖² + ‖a_j‖²‖x_j‖² − 2(a_i·a_j)(x_i·x_j), a = p − e_ŷ), so the (n, C·D)
    embedding is never built: O(n·k·(C + D)) time, O(n·(C + D)) memory. ``score`` is the gradient norm.
    Above ``max_candidates`` (default 100,000) a seeded subsample.
    """

    name = "badge"
    needs: ClassVar[frozenset[str]] = frozenset({"probs", "embeddings"})
    family: ClassVar[str] = "hybrid"

    def __init__(self, *, max_candidates: int | None = CAP_NK, seed: int | None = None) -> None:
        self.max_candidates = max_candidates
        self.seed = seed

    @staticmethod
    def _factors(ctx: SelectionContext, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        a = _probs(ctx).copy()
        a[np.arange(a.shape[0]), np.argmax(a, axis=1)] -= 1.0
        return a, (a * a).sum(axis=1) * (x * x).sum(axis=1)

    def score(self, ctx: SelectionContext) -> np.ndarray:
        self._validate()
        x = self._x(ctx)
        return np.sqrt(self._factors(ctx, x)[1])

    def _pick(self, ctx: SelectionContext, x: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
        a, g2 = self._factors(ctx, x)

        def dist_to(j: int) -> np.ndarray:
            d = g2 + g2[j] - 2.0 * (a @ a[j]) * (x @ x[j])
            np.maximum(d, 0.0, out=d)
            d[j] = 0.0
            return d

        return kmeanspp_seeding(k, x.shape[0], dist_to, rng, first=int(np.argmax(g2)))

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"seed": 2, "max_candidates": 12}]


class ClusterMargin(EmbeddingStrategy):
    """Cluster-margin: smallest margins, clustered, one per cluster from the smallest (Citovsky et al. 2021).

    The ``prefilter``·k lowest-margin candidates (at most ``max_candidates``, default 5,000: average
    linkage needs O(m²) memory) are clustered by agglomerative average linkage, cut at
    ``distance_threshold`` or, by default, into k clusters. Clusters are visited round-robin from the
    smallest, each giving one random member per round (seeded). ``score`` is the margin score.
    """

    name = "cluster-margin"
    needs: ClassVar[frozenset[str]] = frozenset({"probs", "embeddings"})
    family: ClassVar[str] = "hybrid"
    cost: ClassVar[str] = "O(n²) capped"

    def __init__(
        self,
        *,
        prefilter: float = 10.0,
        distance_threshold: float | None = None,
        max_candidates: int | None = 5_000,
        seed: int | None = None,
    ) -> None:
        self.prefilter = prefilter
        self.distance_threshold = distance_threshold
        self.max_candidates = max_candidates
        self.seed = seed

    def _validate(self) -> None:
        super()._validate()
        _check_prefilter(self.prefilter, self._owner())
        check_float(self.distance_threshold, "distance_threshold", self._owner(), low=0.0, allow_none=True)

    def score(self, ctx: SelectionContext) -> np.ndarray:
        self._validate()
        return margin_scores(_probs(ctx))

    def select(self, ctx: SelectionContext, k: int) -> np.ndarray:
        from scipy.cluster.hierarchy import fcluster, linkage

        k = self._k(k)
        self._validate()
        scores = self.score(ctx)
        if k >= ctx.n:
            return ctx.ids[rank_order(scores)]
        cap = self._cap()
        m = min(ctx.n, max(k, math.ceil(float(self.prefilter) * k)))
        if cap is not None:
            m = min(m, max(cap, k))
        pre = top_k(scores, m)
        if m <= k or m < 2:
            return ctx.ids[pre[:k]]
        x = self._x(ctx)[pre]
        z = linkage(x, method="average", metric="euclidean")
        if self.distance_threshold is None:
            labels = fcluster(z, t=k, criterion="maxclust")
        else:
            labels = fcluster(z, t=float(self.distance_threshold), criterion="distance")
        rng = self._rng(ctx)
        clusters = [np.flatnonzero(labels == c) for c in np.unique(labels)]
        clusters.sort(key=lambda members: (members.size, int(members[0])))
        queues = [rng.permutation(members).tolist() for members in clusters]
        picked: list[int] = []
        while len(picked) < k:
            for queue in queues:
                if queue and len(picked) < k:
                    picked.append(queue.pop(0))
        return ctx.ids[pre[picked]]

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"prefilter": 3.0, "distance_threshold": 1.5, "seed": 4}]


class DPPGreedy(EmbeddingStrategy):
    """DPP greedy: fast greedy MAP of a determinantal point process, quality × RBF similarity kernel (Chen et al. 2018).

    Quality ``q``: with ``quality='auto'`` the uncertainty ``measure`` (in [0, 1]) when the context holds
    probabilities, else 1 for every record; ``'uniform'`` always 1. ``score`` is ``q²`` (the first greedy
    gain, ``L_ii``). ``bandwidth`` defaults to the root mean squared distance to the mean. Cost
    O(n·k·(k + D)); above ``max_candidates`` (default 10,000) a seeded subsample.
    """

    name = "dpp-greedy"
    cost: ClassVar[str] = "O(n²) capped"

    def __init__(
        self,
        *,
        quality: str = "auto",
        measure: str = "margin",
        bandwidth: float | None = None,
        max_candidates: int | None = CAP_N2,
        seed: int | None = None,
    ) -> None:
        self.quality = quality
        self.measure = measure
        self.bandwidth = bandwidth
        self.max_candidates = max_candidates
        self.seed = seed

    def _validate(self) -> None:
        super()._validate()
        check_choice(self.quality, "quality", self._owner(), ("auto", "uniform"))
        check_choice(self.measure, "measure", self._owner(), UNCERTAINTY_MEASURES)
        bw = check_float(self.bandwidth, "bandwidth", self._owner(), low=0.0, allow_none=True)
        if bw == 0.0:
            raise ConfigError(f"The 'bandwidth' parameter of {self._owner()} must be a number > 0 or None. Got 0.0.")

    def _quality(self, ctx: SelectionContext) -> np.ndarray:
        if self.quality == "auto" and ctx.probs is not None:
            return uncertainty(ctx.probs, self.measure)
        return np.ones(ctx.n)

    def score(self, ctx: SelectionContext) -> np.ndarray:
        self._validate()
        q = self._quality(ctx)
        return q * q

    def _pick(self, ctx: SelectionContext, x: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
        return dpp_greedy_map(x, k, self._quality(ctx), self.bandwidth)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"quality": "uniform", "bandwidth": 0.5}, {"measure": "entropy", "max_candidates": 9, "seed": 1}]


class WeightedKMeans(EmbeddingStrategy):
    """Weighted k-means: uncertainty-weighted k-means on the most uncertain, closest to centroids (Zhdanov 2019).

    "Diverse mini-batch active learning": the ``prefilter``·k most uncertain candidates (``measure``,
    in [0, 1]) are clustered into k groups by scikit-learn ``KMeans`` with sample weights = uncertainty;
    the record closest to each centroid is taken. ``score`` is the uncertainty. Above ``max_candidates``
    (default 20,000) a seeded subsample.
    """

    name = "weighted-kmeans"
    needs: ClassVar[frozenset[str]] = frozenset({"probs", "embeddings"})
    family: ClassVar[str] = "hybrid"

    def __init__(
        self,
        *,
        prefilter: float = 10.0,
        measure: str = "margin",
        n_init: int = 1,
        max_candidates: int | None = CAP_KMEANS,
        seed: int | None = None,
    ) -> None:
        self.prefilter = prefilter
        self.measure = measure
        self.n_init = n_init
        self.max_candidates = max_candidates
        self.seed = seed

    def _validate(self) -> None:
        super()._validate()
        _check_prefilter(self.prefilter, self._owner())
        check_choice(self.measure, "measure", self._owner(), UNCERTAINTY_MEASURES)
        check_int(self.n_init, "n_init", self._owner(), min=1)

    def score(self, ctx: SelectionContext) -> np.ndarray:
        self._validate()
        return uncertainty(_probs(ctx), self.measure)

    def _pick(self, ctx: SelectionContext, x: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
        u = uncertainty(_probs(ctx), self.measure)
        pre = top_k(u, min(x.shape[0], max(k, math.ceil(float(self.prefilter) * k))))
        w = u[pre] if u[pre].sum() > 0 else np.ones(pre.size)
        labels, centers = kmeans_fit(x[pre], k, rng, n_init=self.n_init, sample_weight=w)
        return pre[closest_to_centroids(x[pre], labels, centers)].tolist()

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"prefilter": 2.0, "measure": "entropy", "n_init": 1, "seed": 9, "max_candidates": 15}]
