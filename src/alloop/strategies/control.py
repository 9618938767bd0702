"""Control baselines: pool order, stratification by predicted class, class balance, the rarest class first.

Each of these is an *ordering* of the candidates that does not depend on the batch size, so ``score``
returns ``-position in that ordering`` and the shared top-k of the scores is the batch.

>>> import numpy as np
>>> from alloop.strategies import SelectionContext
>>> probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.2, 0.8], [0.45, 0.55]])
>>> ctx = SelectionContext(ids=np.array([10, 11, 12, 13]), index=np.arange(4), probs=probs)
>>> StratifiedPredicted().select(ctx, 4).tolist()  # most uncertain of each predicted class, in turn
[13, 11, 12, 10]
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from alloop._validation import check_choice
from alloop.strategies._base import SelectionContext, Strategy
from alloop.strategies._topk import rank_order
from alloop.strategies.uncertainty import (
    entropy_scores,
    gini_scores,
    least_confidence_scores,
    margin_scores,
    ratio_scores,
)

__all__ = [
    "ClassBalanced",
    "RarestClassHardest",
    "Sequential",
    "StratifiedPredicted",
    "class_balanced_order",
    "stratified_order",
]

_INNER = {
    "least-confidence": least_confidence_scores,
    "margin": margin_scores,
    "ratio": ratio_scores,
    "entropy": entropy_scores,
    "gini": gini_scores,
}


def _order_to_scores(order: np.ndarray) -> np.ndarray:
    """Scores whose top-k is ``order[:k]``: the first position scores 0, the next -1, and so on."""
    scores = np.empty(order.size, dtype=np.float64)
    scores[order] = -np.arange(order.size, dtype=np.float64)
    return scores


def _within_class_rank(predicted: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Rank of each candidate among those predicted as its class (0 = most uncertain; ties: lower position)."""
    order = rank_order(inner)
    cls_sorted = predicted[order]
    # stable sort by class keeps the uncertainty order inside each class
    by_class = order[np.argsort(cls_sorted, kind="stable")]
    counts = np.bincount(predicted[by_class], minlength=0)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(predicted.size, dtype=np.int64)
    rank[by_class] = np.arange(predicted.size) - np.repeat(starts, counts)
    return rank


def stratified_order(predicted: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """Round-robin over predicted classes: every class's most uncertain record, then every class's second, ….

    Within a round, classes come in the order of their candidate's ``inner`` score (highest first, ties to
    the lower position), so the first pick is the most uncertain record overall.
    """
    rank = _within_class_rank(predicted, inner)
    tie = np.empty(inner.size, dtype=np.int64)
    tie[rank_order(inner)] = np.arange(inner.size)  # global uncertainty order breaks ties inside a round
    return np.lexsort((tie, rank))


def class_balanced_order(predicted: np.ndarray, inner: np.ndarray, label_counts: np.ndarray) -> np.ndarray:
    """Greedy equalisation: each pick comes from the class with the fewest labels + picks so far.

    Equivalent to repeating "take the most uncertain remaining record of the predicted class whose count
    (labels plus records already picked) is lowest, ties to the lower class", vectorised: a record of
    class c with within-class rank r is picked at level ``label_counts[c] + r``.
    """
    rank = _within_class_rank(predicted, inner)
    level = label_counts[predicted] + rank
    return np.lexsort((rank, predicted, level))


def _label_counts(ctx: SelectionContext, n_classes: int) -> np.ndarray:
    labels = np.asarray(ctx.labels, dtype=np.int64)
    labels = labels[(labels >= 0) & (labels < n_classes)]
    return np.bincount(labels, minlength=n_classes).astype(np.int64)


class Sequential(Strategy):
    """Sequential: label records in the order they were given, the passive pool-order control (Settles 2009)."""

    name = "sequential"
    needs: ClassVar[frozenset[str]] = frozenset()
    family: ClassVar[str] = "baseline"

    def __init__(self) -> None:
        pass

    def score(self, ctx: SelectionContext) -> np.ndarray:
        return -np.arange(ctx.n, dtype=np.float64)


class _ClassControl(Strategy):
    needs: ClassVar[frozenset[str]] = frozenset({"probs"})
    family: ClassVar[str] = "baseline"

    def __init__(self, *, inner: str = "margin") -> None:
        self.inner = inner

    def _inputs(self, ctx: SelectionContext) -> tuple[np.ndarray, np.ndarray, int]:
        assert ctx.probs is not None, "engine only offers strategies whose needs are met"
        inner = check_choice(self.inner, "inner", type(self).__name__, list(_INNER))
        probs = ctx.probs
        n_classes = max(probs.shape[1], ctx.n_classes or 0)
        return np.argmax(probs, axis=1).astype(np.int64), _INNER[inner](probs), n_classes

    @classmethod
    def _test_params(cls) -> list[dict[str, object]]:
        return [{}, {"inner": "entropy"}]


class StratifiedPredicted(_ClassControl):
    """Stratified by predicted class: round-robin over predicted classes, most uncertain first in each (Cochran 1977).

    ``inner`` (least-confidence, margin, ratio, entropy or gini) ranks the records inside a class.
    """

    name = "stratified-predicted"

    def score(self, ctx: SelectionContext) -> np.ndarray:
        predicted, inner, _ = self._inputs(ctx)
        return _order_to_scores(stratified_order(predicted, inner))


class ClassBalanced(_ClassControl):
    """Class-balanced: pick from the predicted classes with the fewest labels (Bengar et al. 2022).

    Counts are the labeled set plus the records picked so far in this batch; inside a class the most
    uncertain record (by ``inner``) goes first.
    """

    name = "class-balanced"
    needs: ClassVar[frozenset[str]] = frozenset({"probs", "labels"})

    def score(self, ctx: SelectionContext) -> np.ndarray:
        predicted, inner, n_classes = self._inputs(ctx)
        return _order_to_scores(class_balanced_order(predicted, inner, _label_counts(ctx, n_classes)))


class RarestClassHardest(_ClassControl):
    """Rarest class, hardest: most uncertain records predicted as the least-labeled class (cf. Ertekin et al. 2007).

    When that class runs out of candidates the next-rarest class follows (label-count ties go to the lower
    class). ``inner`` ranks the records inside a class.
    """

    name = "rarest-class-hardest"
    needs: ClassVar[frozenset[str]] = frozenset({"probs", "labels"})

    def score(self, ctx: SelectionContext) -> np.ndarray:
        predicted, inner, n_classes = self._inputs(ctx)
        counts = _label_counts(ctx, n_classes)
        class_rank = np.empty(n_classes, dtype=np.int64)
        class_rank[np.argsort(counts, kind="stable")] = np.arange(n_classes)
        rank = _within_class_rank(predicted, inner)
        return _order_to_scores(np.lexsort((rank, class_rank[predicted])))
