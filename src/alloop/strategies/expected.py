"""Expected model change and expected error reduction on probabilities plus embeddings.

* ``egl``: for a softmax head ``p = softmax(W x + b)`` trained with cross-entropy, the gradient for label
  ``y`` is ``(p - e_y) ⊗ [x, 1]``, whose norm is ``||p - e_y|| · ||[x, 1]||``; the expected length weights
  it by ``p_y``. O(n·C), no refitting.
* ``eer`` / ``mc-eer``: refit a small scikit-learn ``LogisticRegression`` on the labeled embeddings plus
  one hypothetical ``(x, y)`` and measure the pool's self-estimated loss under the refit model. Each
  candidate costs ``C`` (EER) or ``n_draws`` (MC-EER) fits, so only ``max_candidates`` candidates, drawn
  with the seed, are evaluated; the others score NaN (ranked after every evaluated one).

>>> import numpy as np
>>> egl_scores(np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([[3.0, 4.0], [3.0, 4.0]]), bias=False).tolist()
[0.0, 3.5355339059327378]
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np

from alloop._validation import check_choice, check_int
from alloop.strategies._base import SelectionContext, Strategy
from alloop.strategies._topk import top_k
from alloop.strategies.uncertainty import entropy_scores, least_confidence_scores

__all__ = [
    "ExpectedErrorReduction",
    "ExpectedGradientLength",
    "MonteCarloEER",
    "egl_scores",
    "expected_error_reduction_scores",
]

LOSSES = ("zero-one", "log")


# ---- expected gradient length ---------------------------------------------------------------------------
def egl_scores(probs: np.ndarray, embeddings: np.ndarray, *, bias: bool = True) -> np.ndarray:
    """``sum_y p_y ||p - e_y|| · ||x̃||``: expected norm of the cross-entropy gradient of a softmax head.

    ``x̃`` is the embedding, with a constant 1 appended when the head has a ``bias``.
    """
    p = np.asarray(probs, dtype=np.float64)
    x = np.asarray(embeddings, dtype=np.float64)
    # ||p - e_y||² = sum_c p_c² - 2 p_y + 1
    sq = np.maximum((p * p).sum(axis=1, keepdims=True) - 2.0 * p + 1.0, 0.0)
    expected = (p * np.sqrt(sq)).sum(axis=1)
    norm2 = (x * x).sum(axis=1) + (1.0 if bias else 0.0)
    return expected * np.sqrt(norm2)


# ---- expected error reduction ---------------------------------------------------------------------------
def _fit_predict(x: np.ndarray, y: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Probabilities on ``pool`` of a logistic regression fit on ``(x, y)`` (columns: classes present)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=1.0, max_iter=200)
    with warnings.catch_warnings():
        # a surrogate refit per hypothetical label: an approximate optimum is enough to compare candidates
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(x, y)
    proba: np.ndarray = model.predict_proba(pool)
    return proba


def _loss(proba: np.ndarray, loss: str) -> float:
    """Self-estimated mean loss on the pool: expected 0/1 loss ``1 - max p`` or log loss ``H[p]``."""
    if loss == "zero-one":
        return float(np.mean(least_confidence_scores(proba)))
    return float(np.mean(entropy_scores(proba)))


def _fallback(probs: np.ndarray, loss: str) -> np.ndarray:
    return least_confidence_scores(probs) if loss == "zero-one" else entropy_scores(probs)


def expected_error_reduction_scores(
    probs: np.ndarray,
    embeddings: np.ndarray,
    labeled_embeddings: np.ndarray | None,
    labels: np.ndarray,
    *,
    candidates: np.ndarray,
    label_weights: np.ndarray,
    pool: np.ndarray | None = None,
    loss: str = "zero-one",
) -> np.ndarray:
    """Reduction of the pool's self-estimated loss expected from labeling each of ``candidates``.

    For candidate ``x`` (a position) and each class ``y`` with ``label_weights[i, y] > 0``, a logistic
    regression is refit on the labeled embeddings plus ``(x, y)``; its mean loss on the ``pool`` rows
    (positions; default: every candidate) is averaged with the weights (EER: ``p(y|x)``; MC-EER: the
    share of draws). The score is the loss of the fit on the labeled data alone minus that average.
    Positions not in ``candidates`` score NaN.

    With fewer than two labeled classes (or no labeled embeddings) no refit can be compared, and the
    score falls back to the current model's uncertainty matching the loss: least confidence for
    ``zero-one``, entropy for ``log`` (the expected loss when the refit is the current model).
    """
    p = np.asarray(probs, dtype=np.float64)
    x = np.asarray(embeddings, dtype=np.float64)
    y_lab = np.asarray(labels, dtype=np.int64)
    if labeled_embeddings is None or len(labeled_embeddings) != y_lab.size:
        return _fallback(p, loss)
    x_lab = np.asarray(labeled_embeddings, dtype=np.float64)
    keep = y_lab >= 0
    x_lab, y_lab = x_lab[keep], y_lab[keep]
    if np.unique(y_lab).size < 2:
        return _fallback(p, loss)
    from threadpoolctl import threadpool_limits

    rows = x if pool is None else x[pool]
    out = np.full(p.shape[0], np.nan)
    xs = np.vstack([x_lab, x_lab[:1]])  # the last row is the hypothetical record
    ys = np.append(y_lab, 0)
    # many tiny fits: threaded BLAS only adds contention (10-40x slower on a busy machine)
    with threadpool_limits(limits=1, user_api="blas"):
        base = _loss(_fit_predict(x_lab, y_lab, rows), loss)
        for i, pos in enumerate(np.asarray(candidates, dtype=np.int64).tolist()):
            xs[-1] = x[pos]
            weights = np.asarray(label_weights[i], dtype=np.float64)
            expected = 0.0
            for y in np.flatnonzero(weights > 0).tolist():
                ys[-1] = y
                expected += weights[y] * _loss(_fit_predict(xs, ys, rows), loss)
            out[pos] = base - expected / weights.sum()
    return out


class _ErrorReduction(Strategy):
    needs: ClassVar[frozenset[str]] = frozenset({"probs", "embeddings", "labels"})
    family: ClassVar[str] = "error-reduction"
    cost: ClassVar[str] = "O(n²) capped"
    max_candidates: Any
    seed: int | None

    def _candidates(self, ctx: SelectionContext, owner: str) -> np.ndarray:
        cap = check_int(self.max_candidates, "max_candidates", owner, min=1)
        if cap >= ctx.n:
            return np.arange(ctx.n)
        return np.sort(ctx.rng(self.seed).choice(ctx.n, size=cap, replace=False))


class ExpectedGradientLength(Strategy):
    """EGL: label the records expected to change a softmax head on the embeddings most (Settles et al. 2008).

    ``sum_y p(y|x) ||∇_W CE(x, y)||`` with ``∇_W CE = (p - e_y) ⊗ [x, 1]`` (``bias=False`` drops the 1).
    """

    name = "egl"
    needs: ClassVar[frozenset[str]] = frozenset({"probs", "embeddings"})
    family: ClassVar[str] = "model-change"

    def __init__(self, *, bias: bool = True) -> None:
        self.bias = bias

    def score(self, ctx: SelectionContext) -> np.ndarray:
        assert ctx.probs is not None and ctx.embeddings is not None, "engine only offers strategies whose needs are met"
        bias = check_choice(self.bias, "bias", "ExpectedGradientLength", (True, False))
        return egl_scores(ctx.probs, ctx.embeddings, bias=bias)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"bias": False}]


class ExpectedErrorReduction(_ErrorReduction):
    """EER: label the records whose label is expected to reduce the pool's error most (Roy & McCallum 2001).

    For each of at most ``max_candidates`` candidates (drawn with the seed) and each class ``y``, a
    scikit-learn ``LogisticRegression`` is refit on the labeled embeddings plus ``(x, y)``; the expected
    ``loss`` (``"zero-one"``: ``1 - max p``, ``"log"``: entropy) on every candidate under the refit is
    weighted by the current ``p(y|x)``. Score: the loss without ``x`` minus that expectation; NaN for
    candidates not evaluated. Only the ``max_labels`` likeliest labels of each candidate are refit (their
    weights renormalised), so a candidate costs at most ``min(C, max_labels)`` fits; exact for
    ``C <= max_labels``. With fewer than two labeled classes it falls back to uncertainty (least
    confidence or entropy, matching ``loss``), since no refit can be compared.
    """

    name = "eer"

    def __init__(
        self, *, loss: str = "zero-one", max_candidates: int = 50, max_labels: int = 10, seed: int | None = None
    ) -> None:
        self.loss = loss
        self.max_candidates = max_candidates
        self.max_labels = max_labels
        self.seed = seed

    def score(self, ctx: SelectionContext) -> np.ndarray:
        assert ctx.probs is not None and ctx.embeddings is not None, "engine only offers strategies whose needs are met"
        owner = "ExpectedErrorReduction"
        loss = check_choice(self.loss, "loss", owner, LOSSES)
        top = check_int(self.max_labels, "max_labels", owner, min=1)
        cand = self._candidates(ctx, owner)
        p = np.asarray(ctx.probs, dtype=np.float64)
        weights = p[cand]
        if top < p.shape[1]:  # keep the likeliest labels of each candidate (ties: lower class)
            kept = np.zeros_like(weights)
            for i, row in enumerate(weights):
                at = top_k(row, top)
                kept[i, at] = row[at]
            weights = kept
        return expected_error_reduction_scores(
            p,
            ctx.embeddings,
            ctx.labeled_embeddings,
            ctx.labels_for_embeddings,
            candidates=cand,
            label_weights=weights,
            loss=loss,
        )

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"max_candidates": 4}, {"loss": "log", "max_candidates": 3, "max_labels": 2, "seed": 3}]


class MonteCarloEER(_ErrorReduction):
    """MC-EER: expected error reduction estimated by sampling labels and pool records (Roy & McCallum 2001).

    As ``eer``, but for each of at most ``max_candidates`` candidates only ``n_draws`` labels ``y ~ p(y|x)``
    are refit, and the loss is measured on ``pool_size`` candidates drawn with the seed (the same ones
    for every candidate, so that comparisons share their noise). Same fallback to uncertainty with
    fewer than two labeled classes.
    """

    name = "mc-eer"

    def __init__(
        self,
        *,
        loss: str = "zero-one",
        max_candidates: int = 100,
        n_draws: int = 2,
        pool_size: int = 256,
        seed: int | None = None,
    ) -> None:
        self.loss = loss
        self.max_candidates = max_candidates
        self.n_draws = n_draws
        self.pool_size = pool_size
        self.seed = seed

    def score(self, ctx: SelectionContext) -> np.ndarray:
        assert ctx.probs is not None and ctx.embeddings is not None, "engine only offers strategies whose needs are met"
        loss = check_choice(self.loss, "loss", "MonteCarloEER", LOSSES)
        draws = check_int(self.n_draws, "n_draws", "MonteCarloEER", min=1)
        size = check_int(self.pool_size, "pool_size", "MonteCarloEER", min=1)
        cand = self._candidates(ctx, "MonteCarloEER")
        rng = ctx.rng(self.seed)
        pool = np.arange(ctx.n) if size >= ctx.n else np.sort(rng.choice(ctx.n, size=size, replace=False))
        p = np.asarray(ctx.probs, dtype=np.float64)[cand]
        cum = np.cumsum(p / p.sum(axis=1, keepdims=True), axis=1)
        u = rng.random((cand.size, draws))
        y = np.minimum((u[:, :, None] > cum[:, None, :]).sum(axis=2), p.shape[1] - 1)  # (m, draws)
        counts = np.zeros_like(p)
        np.add.at(counts, (np.repeat(np.arange(cand.size), draws), y.ravel()), 1.0)
        return expected_error_reduction_scores(
            ctx.probs, ctx.embeddings, ctx.labeled_embeddings, ctx.labels_for_embeddings,
            candidates=cand, label_weights=counts, pool=pool, loss=loss,
        )  # fmt: skip

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"max_candidates": 4, "pool_size": 10}, {"loss": "log", "max_candidates": 3, "n_draws": 1, "seed": 1}]
