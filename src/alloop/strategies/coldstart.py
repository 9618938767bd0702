"""Cold start on embeddings: TypiClust and ProbCover, built for tiny budgets and zero labels.

Both read only ``ctx.embeddings`` (and the labeled records' embeddings when there are any), so they
run before the first label exists. ``kmeans``, ``coreset`` and ``kmeans-pp``
(:mod:`alloop.strategies.diversity`) also accept an empty labeled set. There are no separate
``cold-*`` names: with zero labels these strategies already do what their cold-start variants would.

Large pools: both are O(N²) in the number of points N = candidates + labeled; distances are chunked,
and above ``max_candidates`` (default 10,000) a seeded subsample of candidates (and of labeled records)
is used. ``score`` then gives NaN ("not scored") outside the subsample.

>>> import numpy as np
>>> x = np.array([[0.0], [1.0], [3.0], [7.0]])
>>> typicality(x, 2).round(4).tolist()  # 1 / (mean distance to the 2 nearest others + 1e-5)
[0.5, 0.6667, 0.4, 0.2]
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from alloop._validation import check_float, check_int
from alloop.errors import ConfigError
from alloop.strategies._base import SelectionContext
from alloop.strategies._geometry import (
    EmbeddingStrategy,
    as_matrix,
    chunks,
    kmeans_fit,
    knn_mean_dist,
    min_sq_dists,
    sq_dists,
    subsample,
)

__all__ = ["ProbCover", "TypiClust", "probcover_greedy", "purity_delta", "typiclust_pick", "typicality"]

#: Added to the mean neighbour distance, as in the TypiClust authors' code (keeps duplicates finite).
TYPICALITY_EPS = 1e-5


# ---- pure functions -------------------------------------------------------------------------------------
def typicality(x: np.ndarray, n_neighbors: int) -> np.ndarray:
    """TypiClust typicality (Hacohen et al. 2022): ``1 / (mean distance to the K nearest other rows + 1e-5)``.

    Zeros when ``n_neighbors < 1`` or there is a single row.
    """
    a = as_matrix(x)
    kk = min(int(n_neighbors), a.shape[0] - 1)
    if kk < 1:
        return np.zeros(a.shape[0])
    return 1.0 / (knn_mean_dist(a, a, kk, self_pos=np.arange(a.shape[0])) + TYPICALITY_EPS)


def typiclust_pick(
    x: np.ndarray,
    cluster_labels: np.ndarray,
    labeled_mask: np.ndarray,
    k: int,
    *,
    n_neighbors: int = 20,
    min_cluster_size: int = 5,
) -> list[int]:
    """TypiClust's selection given a clustering of all points: positions (rows of ``x``) in pick order.

    Clusters larger than ``min_cluster_size`` (all clusters when none is) are sorted once by labeled count
    (fewest first), then size (largest first), then id, and visited round-robin; each visit takes the
    most typical not-yet-labeled member, typicality computed among those members with
    K = min(n_neighbors, members // 2), as in the authors' code.
    """
    labels = np.asarray(cluster_labels, dtype=np.int64)
    avail = ~np.asarray(labeled_mask, dtype=bool)
    n_clusters = int(labels.max()) + 1 if labels.size else 0
    sizes = np.bincount(labels, minlength=n_clusters)
    existing = np.bincount(labels[~avail], minlength=n_clusters)
    eligible = [c for c in range(n_clusters) if sizes[c] > min_cluster_size] or [
        c for c in range(n_clusters) if sizes[c] > 0
    ]
    order = sorted(eligible, key=lambda c: (existing[c], -sizes[c], c))
    chosen: list[int] = []
    while len(chosen) < k:
        progressed = False
        for c in order:
            if len(chosen) >= k:
                break
            members = np.flatnonzero(avail & (labels == c))
            if members.size == 0:
                continue
            t = typicality(x[members], min(n_neighbors, members.size // 2))
            j = int(members[int(np.argmax(t))])
            chosen.append(j)
            avail[j] = False
            progressed = True
        if not progressed:
            break
    return chosen


def purity_delta(x: np.ndarray, cluster_labels: np.ndarray, purity: float) -> float:
    """ProbCover's δ (Yehuda et al. 2022): the largest δ with at least ``purity`` of the δ-balls pure.

    A ball ``{x' : ‖x − x'‖ < δ}`` is pure when every point in it shares x's cluster, i.e. δ ≤ r(x), the
    distance from x to the nearest point of another cluster; so δ is the ⌊N(1 − purity)⌋-th smallest r.
    ``inf`` with a single cluster. Chunked: O(N²) time, O(chunk × N) memory.
    """
    a = as_matrix(x)
    labels = np.asarray(cluster_labels)
    n = a.shape[0]
    r = np.full(n, np.inf)
    for sl in chunks(n, n):
        d = sq_dists(a[sl], a)
        d[labels[sl][:, None] == labels[None, :]] = np.inf
        r[sl] = d.min(axis=1)
    r.sort()
    j = min(n - 1, int(math.floor(n * (1.0 - purity) + 1e-9)))
    return float(np.sqrt(r[j]))


def probcover_greedy(
    x: np.ndarray, k: int, delta: float, labeled: np.ndarray | None = None
) -> tuple[list[int], np.ndarray]:
    """Greedy max coverage of δ-balls (Yehuda et al. 2022): ``(picks in order, covered mask)``.

    Points within δ (strictly) of a labeled row start covered. Each step takes the candidate whose ball
    holds the most uncovered candidates (ties → lower position) and covers them; it stops early when no
    ball holds an uncovered point. O(n²) time in chunks, O(n) memory besides one block.
    """
    a = as_matrix(x)
    lab = as_matrix(labeled, a.shape[1])
    n = a.shape[0]
    d2 = float(delta) ** 2
    covered = min_sq_dists(a, lab) < d2 if lab.shape[0] else np.zeros(n, dtype=bool)
    degree = _ball_counts(a, a[~covered], d2)
    taken = np.zeros(n, dtype=bool)
    chosen: list[int] = []
    while len(chosen) < min(k, n):
        masked = np.where(taken, -1, degree)
        j = int(np.argmax(masked))
        if masked[j] <= 0:
            break
        chosen.append(j)
        taken[j] = True
        newly = ~covered & (sq_dists(a[j : j + 1], a)[0] < d2)
        if newly.any():
            covered |= newly
            degree -= _ball_counts(a, a[newly], d2)
    return chosen, covered


def _ball_counts(x: np.ndarray, points: np.ndarray, d2: float) -> np.ndarray:
    """For each row of ``x``, how many ``points`` lie strictly within squared distance ``d2``."""
    out = np.zeros(x.shape[0], dtype=np.int64)
    if points.shape[0] == 0:
        return out
    for sl in chunks(x.shape[0], points.shape[0]):
        out[sl] = (sq_dists(x[sl], points) < d2).sum(axis=1)
    return out


# ---- strategies ---------------------------------------------------------------------------------------
class _CapNaN(EmbeddingStrategy):
    """Shared by the O(N²) cold-start strategies: the subsample that ``score`` and ``select`` agree on."""

    family: ClassVar[str] = "cold-start"
    cost: ClassVar[str] = "O(n²) capped"

    def _sample(self, ctx: SelectionContext, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(candidate positions scored, labeled rows used), drawn in the same order as ``select`` draws."""
        cap = self._cap()
        sub = subsample(ctx.n, cap, 0, rng)
        pos = np.arange(ctx.n) if sub is None else sub
        x = self._x(ctx)
        lab = self._labeled(ctx, x.shape[1])
        lsub = subsample(lab.shape[0], cap, 0, rng)
        return pos, lab if lsub is None else lab[lsub]


class TypiClust(_CapNaN):
    """TypiClust: the most typical record of each of the largest uncovered clusters (Hacohen et al. 2022).

    K-means (scikit-learn, seeded, ``n_init`` restarts) on labeled ∪ candidates with
    min(|labeled| + k, ``max_clusters``) clusters; clusters with the fewest labeled records, then the
    largest, each give their most typical unlabeled member (see :func:`typiclust_pick`). ``score`` is
    the typicality among all points with K = min(``n_neighbors``, N // 2). Above ``max_candidates``
    (default 10,000) a seeded subsample.
    """

    name = "typiclust"

    def __init__(
        self,
        *,
        n_neighbors: int = 20,
        min_cluster_size: int = 5,
        max_clusters: int = 500,
        n_init: int = 1,
        max_candidates: int | None = 10_000,
        seed: int | None = None,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.min_cluster_size = min_cluster_size
        self.max_clusters = max_clusters
        self.n_init = n_init
        self.max_candidates = max_candidates
        self.seed = seed

    def _validate(self) -> None:
        super()._validate()
        owner = self._owner()
        check_int(self.n_neighbors, "n_neighbors", owner, min=1)
        check_int(self.min_cluster_size, "min_cluster_size", owner, min=0)
        check_int(self.max_clusters, "max_clusters", owner, min=1)
        check_int(self.n_init, "n_init", owner, min=1)

    def score(self, ctx: SelectionContext) -> np.ndarray:
        self._validate()
        pos, lab = self._sample(ctx, self._rng(ctx))
        ref = np.vstack([lab, self._x(ctx)[pos]])
        kk = min(self.n_neighbors, ref.shape[0] // 2)
        out = np.full(ctx.n, np.nan)
        if kk < 1:
            out[pos] = 0.0
            return out
        self_pos = np.arange(lab.shape[0], ref.shape[0])
        out[pos] = 1.0 / (knn_mean_dist(ref[lab.shape[0] :], ref, kk, self_pos=self_pos) + TYPICALITY_EPS)
        return out

    def _pick(self, ctx: SelectionContext, x: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
        lab = self._labeled(ctx, x.shape[1])
        lsub = subsample(lab.shape[0], self._cap(), 0, rng)
        lab = lab if lsub is None else lab[lsub]
        m = lab.shape[0]
        z = np.vstack([lab, x])
        labels, _ = kmeans_fit(z, min(m + k, self.max_clusters), rng, n_init=self.n_init)
        mask = np.zeros(z.shape[0], dtype=bool)
        mask[:m] = True
        picks = typiclust_pick(z, labels, mask, k, n_neighbors=self.n_neighbors, min_cluster_size=self.min_cluster_size)
        return [p - m for p in picks]

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"n_neighbors": 3, "min_cluster_size": 0, "n_init": 1, "max_candidates": 12, "seed": 6}]


class ProbCover(_CapNaN):
    """ProbCover: greedy maximum coverage of δ-balls around the chosen records (Yehuda et al. 2022).

    ``delta`` defaults to the paper's rule: the largest δ with ``purity`` (0.95) of the δ-balls pure with
    respect to a k-means clustering (``n_clusters``, default the number of classes, else 10) of labeled ∪
    candidates (:func:`purity_delta`). Balls around labeled records start covered. Once every candidate
    is covered, the rest of the batch is drawn at random (seeded), as the authors do. ``score`` is the
    number of uncovered candidates in each record's ball. Above ``max_candidates`` (default 10,000) a
    seeded subsample.
    """

    name = "probcover"

    def __init__(
        self,
        *,
        delta: float | None = None,
        purity: float = 0.95,
        n_clusters: int | None = None,
        n_init: int = 1,
        max_candidates: int | None = 10_000,
        seed: int | None = None,
    ) -> None:
        self.delta = delta
        self.purity = purity
        self.n_clusters = n_clusters
        self.n_init = n_init
        self.max_candidates = max_candidates
        self.seed = seed

    def _validate(self) -> None:
        super()._validate()
        owner = self._owner()
        delta = check_float(self.delta, "delta", owner, low=0.0, allow_none=True)
        if delta == 0.0:
            raise ConfigError(f"The 'delta' parameter of {owner} must be a number > 0 or None. Got {self.delta!r}.")
        purity = check_float(self.purity, "purity", owner, low=0.0, high=1.0)
        if purity == 0.0:
            raise ConfigError(f"The 'purity' parameter of {owner} must be a number in (0, 1]. Got {self.purity!r}.")
        check_int(self.n_clusters, "n_clusters", owner, min=1, allow_none=True)
        check_int(self.n_init, "n_init", owner, min=1)

    def _delta(self, ctx: SelectionContext, x: np.ndarray, lab: np.ndarray, rng: np.random.Generator) -> float:
        if self.delta is not None:
            return float(self.delta)
        z = np.vstack([lab, x])
        n_clusters = self.n_clusters or ctx.n_classes or 10
        labels, _ = kmeans_fit(z, n_clusters, rng, n_init=self.n_init)
        return purity_delta(z, labels, float(self.purity))

    def score(self, ctx: SelectionContext) -> np.ndarray:
        self._validate()
        rng = self._rng(ctx)
        pos, lab = self._sample(ctx, rng)
        x = self._x(ctx)[pos]
        d2 = self._delta(ctx, x, lab, rng) ** 2
        lab_all = self._labeled(ctx, x.shape[1])
        covered = min_sq_dists(x, lab_all) < d2 if lab_all.shape[0] else np.zeros(x.shape[0], dtype=bool)
        out = np.full(ctx.n, np.nan)
        out[pos] = _ball_counts(x, x[~covered], d2)
        return out

    def _pick(self, ctx: SelectionContext, x: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
        lab = self._labeled(ctx, x.shape[1])
        lsub = subsample(lab.shape[0], self._cap(), 0, rng)
        lab_fit = lab if lsub is None else lab[lsub]
        chosen, _ = probcover_greedy(x, k, self._delta(ctx, x, lab_fit, rng), lab)
        if len(chosen) < k:  # everything is covered: the rest at random, as in the authors' code
            rest = np.setdiff1d(np.arange(x.shape[0]), np.asarray(chosen, dtype=np.int64))
            chosen += rng.permutation(rest)[: k - len(chosen)].tolist()
        return chosen

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"delta": 1.0}, {"purity": 0.5, "n_clusters": 2, "n_init": 1, "max_candidates": 10, "seed": 8}]
