"""Shared geometry for the embedding strategies: chunked distances, k-center greedy, k-means++ seeding.

Every distance computation is chunked so that memory stays bounded by :data:`CHUNK_ELEMENTS` doubles
(32 MB), not by ``n × m``. Ties are broken by the lower position, as everywhere in alloop.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from typing import ClassVar

import numpy as np

from alloop._validation import check_int
from alloop.strategies._base import SelectionContext, Strategy
from alloop.strategies._topk import rank_order

__all__ = [
    "EmbeddingStrategy",
    "restrict",
    "UNCERTAINTY_MEASURES",
    "CHUNK_ELEMENTS",
    "as_matrix",
    "closest_to_centroids",
    "distinct_count",
    "fill_to_k",
    "kcenter_greedy",
    "kmeans_fit",
    "kmeanspp_seeding",
    "knn_mean_dist",
    "min_sq_dists",
    "sq_dists",
    "sq_dists_to_row",
    "spread_in_order",
    "subsample",
    "typical_spacing",
    "uncertainty",
]

#: Largest distance block computed at once (doubles): 4M × 8 bytes = 32 MB.
CHUNK_ELEMENTS = 1 << 22


def as_matrix(x: np.ndarray | None, dim: int | None = None) -> np.ndarray:
    """A 2-D float64 view or copy of ``x`` (never the caller's array written to); ``None`` → ``(0, dim)``."""
    if x is None:
        return np.empty((0, dim or 0), dtype=np.float64)
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 1:
        a = a.reshape(-1, 1) if dim in (None, 1) or a.size == 0 else a.reshape(-1, dim)
    return a


def _rows_per_chunk(n_cols: int) -> int:
    return max(1, CHUNK_ELEMENTS // max(1, n_cols))


def chunks(n_rows: int, n_cols: int) -> Iterator[slice]:
    step = _rows_per_chunk(n_cols)
    for start in range(0, n_rows, step):
        yield slice(start, min(n_rows, start + step))


def sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances ``(len(a), len(b))`` (one block; callers chunk)."""
    d = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * (a @ b.T)
    np.maximum(d, 0.0, out=d)
    return d


def sq_dists_to_row(x: np.ndarray, j: int, x2: np.ndarray | None = None) -> np.ndarray:
    """Squared distances of every row of ``x`` to row ``j``: O(n·D) time, O(n) memory."""
    norms = (x * x).sum(axis=1) if x2 is None else x2
    d = norms + norms[j] - 2.0 * (x @ x[j])
    np.maximum(d, 0.0, out=d)
    d[j] = 0.0
    return d


def min_sq_dists(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """For each row of ``x``, the squared distance to the nearest row of ``centers`` (inf when none)."""
    out = np.full(x.shape[0], np.inf)
    if centers.shape[0] == 0 or x.shape[0] == 0:
        return out
    for sl in chunks(x.shape[0], centers.shape[0]):
        out[sl] = sq_dists(x[sl], centers).min(axis=1)
    return out


def knn_mean_dist(
    queries: np.ndarray, ref: np.ndarray, n_neighbors: int, self_pos: np.ndarray | None = None
) -> np.ndarray:
    """Mean Euclidean distance from each query to its ``n_neighbors`` nearest rows of ``ref``.

    ``self_pos[i]`` is the row of ``ref`` that *is* query ``i`` (excluded from its neighbours), or -1.
    Chunked: memory O(chunk × len(ref)). Returns NaN when fewer than one neighbour is available.
    """
    nq, nr = queries.shape[0], ref.shape[0]
    out = np.full(nq, np.nan)
    if nq == 0 or n_neighbors < 1:
        return out
    for sl in chunks(nq, nr):
        d = np.sqrt(sq_dists(queries[sl], ref))
        if self_pos is not None:
            rows = np.arange(d.shape[0])
            sp = self_pos[sl]
            inside = sp >= 0
            d[rows[inside], sp[inside]] = np.inf
        kk = min(n_neighbors, nr - (0 if self_pos is None else 1))
        if kk < 1:
            continue
        part = np.partition(d, kk - 1, axis=1)[:, :kk]
        out[sl] = part.mean(axis=1)
    return out


def subsample(n: int, cap: int | None, k: int, rng: np.random.Generator) -> np.ndarray | None:
    """Sorted positions of a seeded subsample of ``max(cap, k)`` rows, or ``None`` when ``n`` is within the cap."""
    if cap is None or n <= max(cap, k):
        return None
    return np.sort(rng.choice(n, size=max(cap, k), replace=False))


def fill_to_k(chosen: list[int], order: np.ndarray, k: int) -> np.ndarray:
    """``chosen`` followed by the first positions of ``order`` not yet chosen, up to ``k`` in all."""
    out = list(dict.fromkeys(int(c) for c in chosen))[:k]
    if len(out) < k:
        taken = set(out)
        for p in order.tolist():
            if len(out) >= k:
                break
            if p not in taken:
                out.append(int(p))
                taken.add(int(p))
    return np.asarray(out, dtype=np.int64)


def spread_in_order(x: np.ndarray, order: np.ndarray, k: int, radius: float) -> np.ndarray:
    """``k`` positions of ``order`` taken in order, skipping those closer than ``radius`` to one already taken.

    The skipped ones fill the batch, in order, when too few are left. With ``radius`` 0 it is ``order[:k]``.

    >>> x = np.array([[0.0], [0.1], [5.0], [0.2]])
    >>> spread_in_order(x, np.arange(4), 2, 0.5).tolist()
    [0, 2]
    """
    order = np.asarray(order, dtype=np.int64)
    taken: list[int] = []
    r2 = float(radius) ** 2
    for i in order.tolist():
        if len(taken) >= k:
            break
        if taken and float(((x[taken] - x[i]) ** 2).sum(axis=1).min()) < r2:
            continue
        taken.append(i)
    return fill_to_k(taken, order, k)


def typical_spacing(x: np.ndarray, rng: np.random.Generator, sample: int = 256) -> float:
    """The median distance from a record to its nearest other record (over a seeded sample of ``sample`` rows):
    the data's own length scale, so a radius in its units means the same in any dimension and at any scale."""
    n = x.shape[0]
    if n < 2:
        return 0.0
    rows = np.sort(rng.choice(n, size=min(sample, n), replace=False))
    return float(np.nanmedian(knn_mean_dist(x[rows], x, 1, self_pos=rows)))


def distinct_count(x: np.ndarray) -> int:
    return int(np.unique(x, axis=0).shape[0]) if x.shape[0] else 0


def kcenter_greedy(
    k: int,
    n: int,
    sq_dist_to: Callable[[int], np.ndarray],
    init_sq: np.ndarray | None,
    first: int,
) -> list[int]:
    """Farthest-first traversal (Gonzalez 1985): repeatedly take the point farthest from the centers.

    ``init_sq`` holds the squared distances to existing centers (the labeled set); with ``None`` the
    traversal starts at ``first``. Ties → lower position; chosen points are never taken twice.
    """
    chosen: list[int] = []
    if k <= 0 or n == 0:
        return chosen
    if init_sq is None:
        min_sq = sq_dist_to(first).copy()
        chosen.append(first)
        min_sq[first] = -1.0
    else:
        min_sq = init_sq.astype(np.float64, copy=True)
    while len(chosen) < min(k, n):
        j = int(np.argmax(min_sq))
        chosen.append(j)
        np.minimum(min_sq, sq_dist_to(j), out=min_sq)
        min_sq[chosen] = -1.0
    return chosen


def kmeanspp_seeding(
    k: int,
    n: int,
    sq_dist_to: Callable[[int], np.ndarray],
    rng: np.random.Generator,
    init_sq: np.ndarray | None = None,
    first: int | None = None,
) -> list[int]:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): each next center drawn with probability ∝ D(x)².

    D is the distance to the nearest center so far; ``init_sq`` gives the squared distances to existing
    centers (e.g. the labeled set). Without ``init_sq`` the first center is ``first`` or uniform. When every
    remaining point coincides with a center (all D = 0), the next one is drawn uniformly among the rest.
    """
    chosen: list[int] = []
    if k <= 0 or n == 0:
        return chosen
    taken = np.zeros(n, dtype=bool)
    if init_sq is None:
        j = int(rng.integers(n)) if first is None else int(first)
        chosen.append(j)
        taken[j] = True
        min_sq = sq_dist_to(j).copy()
    else:
        min_sq = init_sq.astype(np.float64, copy=True)
    while len(chosen) < min(k, n):
        w = np.where(taken, 0.0, min_sq)
        cum = np.cumsum(w)
        total = cum[-1]
        if total > 0 and np.isfinite(total):
            j = int(np.searchsorted(cum, rng.random() * total, side="right"))
            j = min(j, n - 1)
            if taken[j] or w[j] <= 0:  # floating-point edge: take the last positive-weight point
                j = int(np.flatnonzero(w > 0)[-1])
        else:
            rest = np.flatnonzero(~taken)
            j = int(rest[rng.integers(rest.size)])
        chosen.append(j)
        taken[j] = True
        np.minimum(min_sq, sq_dist_to(j), out=min_sq)
    return chosen


def kmeans_fit(
    x: np.ndarray,
    n_clusters: int,
    rng: np.random.Generator,
    *,
    n_init: int,
    sample_weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Seeded scikit-learn KMeans; returns ``(labels, centers)``. ``n_clusters`` is capped by distinct rows."""
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    n_clusters = max(1, min(n_clusters, distinct_count(x)))
    km = KMeans(n_clusters=n_clusters, n_init=n_init, random_state=int(rng.integers(2**31 - 1)))
    with warnings.catch_warnings():
        # fewer distinct clusters than asked (duplicate rows) is handled by the callers' fill step
        warnings.simplefilter("ignore", ConvergenceWarning)
        km.fit(x, sample_weight=sample_weight)
    return np.asarray(km.labels_, dtype=np.int64), np.asarray(km.cluster_centers_, dtype=np.float64)


def closest_to_centroids(x: np.ndarray, labels: np.ndarray, centers: np.ndarray) -> list[int]:
    """For each non-empty cluster, the member closest to its centroid (ties → lower position).

    Clusters are visited largest first (ties → lower cluster id), so a shorter prefix still covers the
    biggest groups.
    """
    sizes = np.bincount(labels, minlength=centers.shape[0])
    order = sorted(range(centers.shape[0]), key=lambda c: (-sizes[c], c))
    out: list[int] = []
    for c in order:
        members = np.flatnonzero(labels == c)
        if members.size == 0:
            continue
        d = sq_dists(x[members], centers[c : c + 1])[:, 0]
        out.append(int(members[int(np.argmin(d))]))
    return out


UNCERTAINTY_MEASURES = ("entropy", "margin", "least-confidence")


def uncertainty(probs: np.ndarray, measure: str) -> np.ndarray:
    """Uncertainty in [0, 1]: normalised entropy ``H/log C``, ``1 - (p1 - p2)``, or ``(1 - p1)·C/(C-1)``."""
    from alloop.strategies.uncertainty import entropy_scores, least_confidence_scores, margin_scores

    p = np.asarray(probs)
    c = p.shape[1]
    if measure == "entropy":
        return entropy_scores(p) / np.log(c) if c > 1 else np.zeros(p.shape[0])
    if measure == "margin":
        return 1.0 + margin_scores(p)
    return least_confidence_scores(p) * (c / (c - 1) if c > 1 else 1.0)


# ---- the base of the embedding strategies ---------------------------------------------------------------
class EmbeddingStrategy(Strategy):
    """Base of the batch-aware embedding strategies: validation, the candidate cap and the fill step."""

    needs: ClassVar[frozenset[str]] = frozenset({"embeddings"})
    family: ClassVar[str] = "diversity"
    batch_aware: ClassVar[bool] = True
    cost: ClassVar[str] = "O(n·k)"

    def _owner(self) -> str:
        return type(self).__name__

    def _cap(self) -> int | None:
        return check_int(getattr(self, "max_candidates", None), "max_candidates", self._owner(), min=1, allow_none=True)

    def _k(self, k: int) -> int:
        return int(check_int(k, "k", f"{self._owner()}.select", min=0))

    def _validate(self) -> None:
        """Check every parameter (called at first use)."""
        self._cap()

    def _x(self, ctx: SelectionContext) -> np.ndarray:
        assert ctx.embeddings is not None, "engine only offers strategies whose needs are met"
        return as_matrix(ctx.embeddings)

    def _labeled(self, ctx: SelectionContext, dim: int) -> np.ndarray:
        return as_matrix(ctx.labeled_embeddings, dim)

    def _rng(self, ctx: SelectionContext) -> np.random.Generator:
        return ctx.rng(getattr(self, "seed", None))

    def _pick(self, ctx: SelectionContext, x: np.ndarray, k: int, rng: np.random.Generator) -> list[int]:
        """Positions (into ``x``) of the batch, in pick order; may return fewer than ``k``."""
        raise NotImplementedError

    def select(self, ctx: SelectionContext, k: int) -> np.ndarray:
        k = self._k(k)
        self._validate()
        if k >= ctx.n:
            return ctx.ids[rank_order(self.score(ctx))]
        x = self._x(ctx)
        rng = self._rng(ctx)
        sub = subsample(ctx.n, self._cap(), k, rng)
        if sub is None:
            picked = self._pick(ctx, x, k, rng)
        else:
            picked = sub[self._pick(restrict(ctx, sub), x[sub], k, rng)].tolist()
        out = fill_to_k(picked, np.empty(0, dtype=np.int64), k)
        if out.size < k:  # fewer picks than k (duplicate rows, a covered pool): the rest by score, computed only then
            out = fill_to_k(picked, rank_order(self.score(ctx)), k)
        return ctx.ids[out]


def restrict(ctx: SelectionContext, pos: np.ndarray) -> SelectionContext:
    """The context narrowed to the candidates at ``pos`` (labeled data unchanged; arrays are new, not views)."""
    return SelectionContext(
        ids=ctx.ids[pos],
        index=ctx.index[pos],
        probs=None if ctx.probs is None else ctx.probs[pos],
        embeddings=None if ctx.embeddings is None else ctx.embeddings[pos],
        samples=None if ctx.samples is None else ctx.samples[:, pos],
        history=None if ctx.history is None else {key: v[pos] for key, v in ctx.history.items()},
        labeled_ids=ctx.labeled_ids,
        labels=ctx.labels,
        labeled_embeddings=ctx.labeled_embeddings,
        n_classes=ctx.n_classes,
        seed=ctx.seed,
        loop=ctx.loop,
    )
