"""Representativeness on embeddings: information density, contrastive (CAL) and discriminative (DAL) selection.

>>> import numpy as np
>>> x = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0]])
>>> information_density(x).round(3).tolist()  # mean cosine similarity to the pool (itself included)
[0.665, 0.698, 0.367]
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from alloop._validation import check_choice, check_float, check_int
from alloop.errors import ConfigError
from alloop.strategies._base import SelectionContext, Strategy
from alloop.strategies._geometry import UNCERTAINTY_MEASURES, as_matrix, chunks, sq_dists, subsample, uncertainty
from alloop.strategies._topk import rank_order, top_k
from alloop.strategies.uncertainty import entropy_scores

__all__ = [
    "ContrastiveAL",
    "DensityWeighted",
    "DiscriminativeAL",
    "contrastive_scores",
    "density_weighted_scores",
    "information_density",
]


# ---- pure functions -------------------------------------------------------------------------------------
def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.sqrt((x * x).sum(axis=1))
    return x / np.where(norms > 0, norms, 1.0)[:, None]  # zero rows stay zero (similarity 0), as in scikit-learn


def information_density(embeddings: np.ndarray, pool: np.ndarray | None = None) -> np.ndarray:
    """Mean cosine similarity of each row to the rows of ``pool`` (default: ``embeddings`` itself, self included).

    O((n + |pool|)·D): ``mean_u cos(x, u) = x̂ · mean_u(û)``, so no n × n matrix is built.
    """
    x = _unit_rows(as_matrix(embeddings))
    u = x if pool is None else _unit_rows(as_matrix(pool, x.shape[1]))
    if u.shape[0] == 0:
        return np.zeros(x.shape[0])
    return x @ u.mean(axis=0)


def density_weighted_scores(
    probs: np.ndarray, embeddings: np.ndarray, *, beta: float = 1.0, measure: str = "entropy"
) -> np.ndarray:
    """Information density (Settles & Craven 2008): ``uncertainty × max(0, mean cosine similarity)^β``.

    ``uncertainty`` is ``measure`` scaled to [0, 1]. A negative mean similarity (a record pointing away
    from the pool on average, possible with signed embeddings) counts as density 0.
    """
    density = np.maximum(information_density(embeddings), 0.0)
    return uncertainty(probs, measure) * density ** float(beta)


def contrastive_scores(
    probs: np.ndarray, embeddings: np.ndarray, labeled: np.ndarray, labels: np.ndarray, *, n_neighbors: int = 10
) -> np.ndarray:
    """CAL (Margatina et al. 2021) with labels as the neighbours' distributions: mean KL(e_y ‖ p(x)) over neighbours.

    For each candidate, its ``n_neighbors`` nearest labeled records (Euclidean, ties → lower row) and the
    mean of ``KL(e_{y_l} ‖ p(x)) = −log p(y_l | x)`` (probabilities floored at 1e-12). Chunked: memory
    O(chunk × m).
    """
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, None)
    x = as_matrix(embeddings)
    lab = as_matrix(labeled, x.shape[1])
    y = np.asarray(labels, dtype=np.int64)
    kk = min(int(n_neighbors), lab.shape[0])
    out = np.empty(x.shape[0])
    nll = -np.log(p)
    for sl in chunks(x.shape[0], lab.shape[0]):
        d = sq_dists(x[sl], lab)
        nearest = np.argsort(d, axis=1, kind="stable")[:, :kk]
        out[sl] = np.take_along_axis(nll[sl], y[nearest], axis=1).mean(axis=1)
    return out


# ---- strategies ---------------------------------------------------------------------------------------
def _probs(ctx: SelectionContext) -> np.ndarray:
    assert ctx.probs is not None, "engine only offers strategies whose needs are met"
    return np.asarray(ctx.probs, dtype=np.float64)


def _emb(ctx: SelectionContext) -> np.ndarray:
    assert ctx.embeddings is not None, "engine only offers strategies whose needs are met"
    return as_matrix(ctx.embeddings)


class DensityWeighted(Strategy):
    """Information density: uncertainty × (mean cosine similarity to the pool)^β (Settles & Craven 2008).

    ``measure`` is the inner uncertainty (``entropy``, ``margin``, ``least-confidence``, scaled to
    [0, 1]); ``beta`` weighs density (0 = plain uncertainty). The pool is the current candidates. O(n·D).

    >>> import numpy as np
    >>> from alloop.strategies import SelectionContext
    >>> probs = np.array([[0.5, 0.5], [0.5, 0.5], [0.9, 0.1]])
    >>> emb = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1]])
    >>> ctx = SelectionContext(ids=np.array([10, 11, 12]), index=np.arange(3), probs=probs, embeddings=emb)
    >>> DensityWeighted().select(ctx, 1).tolist()  # equally uncertain: the one nearer the crowd wins
    [10]
    """

    name = "density-weighted"
    needs: ClassVar[frozenset[str]] = frozenset({"probs", "embeddings"})
    family: ClassVar[str] = "representativeness"

    def __init__(self, *, beta: float = 1.0, measure: str = "entropy") -> None:
        self.beta = beta
        self.measure = measure

    def score(self, ctx: SelectionContext) -> np.ndarray:
        beta = check_float(self.beta, "beta", type(self).__name__, low=0.0)
        check_choice(self.measure, "measure", type(self).__name__, UNCERTAINTY_MEASURES)
        return density_weighted_scores(_probs(ctx), _emb(ctx), beta=beta, measure=self.measure)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"beta": 0.0, "measure": "margin"}, {"beta": 2.5, "measure": "least-confidence"}]


class ContrastiveAL(Strategy):
    """Contrastive: predictions that disagree most with the labeled neighbours (Margatina et al. 2021, CAL).

    Score = mean over the ``n_neighbors`` nearest labeled records of ``KL(e_y ‖ p(x))``, the labels
    standing in for the neighbours' predicted distributions (those are not shared with the engine).
    Fallback, stated: when the context holds no labeled embeddings aligned with ``labels`` (none labeled
    yet, or some labeled records without an embedding), the score is the prediction's entropy.
    O(n·m) in chunks.
    """

    name = "contrastive"
    needs: ClassVar[frozenset[str]] = frozenset({"probs", "embeddings", "labels"})
    family: ClassVar[str] = "hybrid"
    cost: ClassVar[str] = "O(n·k)"

    def __init__(self, *, n_neighbors: int = 10) -> None:
        self.n_neighbors = n_neighbors

    def score(self, ctx: SelectionContext) -> np.ndarray:
        kk = check_int(self.n_neighbors, "n_neighbors", type(self).__name__, min=1)
        probs = _probs(ctx)
        lab = ctx.labeled_embeddings
        labels = np.asarray(ctx.labels_for_embeddings)
        usable = (
            lab is not None
            and lab.shape[0] > 0
            and lab.shape[0] == labels.size
            and bool(((labels >= 0) & (labels < probs.shape[1])).all())
        )
        if not usable:
            return entropy_scores(probs)
        assert lab is not None
        return contrastive_scores(probs, _emb(ctx), lab, labels, n_neighbors=kk)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"n_neighbors": 1}]


class DiscriminativeAL(Strategy):
    """Discriminative: what a labeled-vs-unlabeled classifier finds most unlabeled (Gissin & Shalev-Shwartz 2019, DAL).

    A logistic regression (``C``, balanced class weights, on standardised embeddings) separates the
    labeled records from the candidates; the batch is chosen in ``n_rounds`` sub-batches, refitting with
    the chosen ones counted as labeled. With no labeled embeddings the first pick is the most central
    candidate (closest to the mean). ``score`` is P(unlabeled) from one fit. Above ``max_candidates``
    (default 50,000) candidates and labeled records are each subsampled (seeded) for fitting only.
    """

    name = "discriminative"
    needs: ClassVar[frozenset[str]] = frozenset({"embeddings"})
    family: ClassVar[str] = "representativeness"
    batch_aware: ClassVar[bool] = True
    cost: ClassVar[str] = "O(n)"

    def __init__(
        self, *, n_rounds: int = 10, C: float = 1.0, max_candidates: int | None = 50_000, seed: int | None = None
    ) -> None:
        self.n_rounds = n_rounds
        self.C = C
        self.max_candidates = max_candidates
        self.seed = seed

    def _validate(self) -> tuple[int, float, int | None]:
        owner = type(self).__name__
        rounds = check_int(self.n_rounds, "n_rounds", owner, min=1)
        c = check_float(self.C, "C", owner, low=0.0)
        if c == 0.0:
            raise ConfigError(f"The 'C' parameter of {owner} must be a number > 0. Got {self.C!r}.")
        cap = check_int(self.max_candidates, "max_candidates", owner, min=1, allow_none=True)
        return rounds, c, cap

    def _unlabeled_prob(self, x: np.ndarray, fit_unl: np.ndarray, fit_lab: np.ndarray, c: float) -> np.ndarray:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        train = np.vstack([fit_lab, fit_unl])
        y = np.concatenate([np.zeros(fit_lab.shape[0]), np.ones(fit_unl.shape[0])])
        mean, std = train.mean(axis=0), train.std(axis=0)
        std = np.where(std > 0, std, 1.0)
        clf = LogisticRegression(C=c, class_weight="balanced", max_iter=1000)
        with warnings.catch_warnings():
            # a separable labeled/unlabeled split may not converge to the iteration limit: the ranking is still usable
            warnings.simplefilter("ignore", ConvergenceWarning)
            clf.fit((train - mean) / std, y)
        return np.asarray(clf.predict_proba((x - mean) / std)[:, 1], dtype=np.float64)

    def _fit_rows(self, rows: np.ndarray, cap: int | None, rng: np.random.Generator) -> np.ndarray:
        sub = subsample(rows.shape[0], cap, 0, rng)
        return rows if sub is None else rows[sub]

    def score(self, ctx: SelectionContext) -> np.ndarray:
        _, c, cap = self._validate()
        x = _emb(ctx)
        lab = as_matrix(ctx.labeled_embeddings, x.shape[1])
        if lab.shape[0] == 0:
            return -np.sqrt(((x - x.mean(axis=0)) ** 2).sum(axis=1))
        rng = ctx.rng(self.seed)
        return self._unlabeled_prob(x, self._fit_rows(x, cap, rng), self._fit_rows(lab, cap, rng), c)

    def select(self, ctx: SelectionContext, k: int) -> np.ndarray:
        k = int(check_int(k, "k", f"{type(self).__name__}.select", min=0))
        rounds, c, cap = self._validate()
        if k >= ctx.n:
            return ctx.ids[rank_order(self.score(ctx))]
        x = _emb(ctx)
        lab = as_matrix(ctx.labeled_embeddings, x.shape[1])
        rng = ctx.rng(self.seed)
        chosen: list[int] = []
        remaining = np.ones(ctx.n, dtype=bool)
        if lab.shape[0] == 0:
            first = int(np.argmin(((x - x.mean(axis=0)) ** 2).sum(axis=1)))
            chosen.append(first)
            remaining[first] = False
        sizes = [s.size for s in np.array_split(np.arange(k - len(chosen)), min(rounds, max(1, k - len(chosen))))]
        for size in sizes:
            if size == 0:
                continue
            rest = np.flatnonzero(remaining)
            known = np.vstack([lab, x[chosen]]) if chosen else lab
            p = self._unlabeled_prob(x[rest], self._fit_rows(x[rest], cap, rng), self._fit_rows(known, cap, rng), c)
            take = rest[top_k(p, size)]
            chosen.extend(take.tolist())
            remaining[take] = False
        return ctx.ids[np.asarray(chosen[:k], dtype=np.int64)]

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"n_rounds": 1, "C": 0.1, "max_candidates": 10, "seed": 3}]
