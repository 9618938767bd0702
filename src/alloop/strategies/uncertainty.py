"""Uncertainty sampling on class probabilities.

Each strategy is a thin class over a pure score function; all rank with the shared top-k helper.

>>> import numpy as np
>>> margin_scores(np.array([[0.5, 0.4, 0.1], [0.9, 0.05, 0.05]])).round(2).tolist()
[-0.1, -0.85]
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from alloop.strategies._base import SelectionContext, Strategy

__all__ = [
    "EntropySampling",
    "LeastConfidence",
    "MarginSampling",
    "entropy_scores",
    "least_confidence_scores",
    "margin_scores",
]


def least_confidence_scores(probs: np.ndarray) -> np.ndarray:
    """``1 - max_c p(c|x)``: the probability that the most likely class is wrong."""
    p = np.asarray(probs)
    return 1.0 - p.max(axis=1).astype(np.float64)


def margin_scores(probs: np.ndarray) -> np.ndarray:
    """``-(p_top1 - p_top2)``: a small gap between the two best classes means a high score.

    Negated exactly (no ``1 -``) so that no two different margins round to the same score.
    """
    p = np.asarray(probs)
    if p.shape[1] < 2:
        return -p[:, 0].astype(np.float64)
    part = np.partition(p, p.shape[1] - 2, axis=1)
    return -(part[:, -1].astype(np.float64) - part[:, -2].astype(np.float64))


def entropy_scores(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy ``-sum_c p log p`` (natural log; 0 log 0 = 0)."""
    p = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.sum(np.where(p > 0, p * np.log(p), 0.0), axis=1)


class _ProbabilityStrategy(Strategy):
    needs: ClassVar[frozenset[str]] = frozenset({"probs"})
    family: ClassVar[str] = "uncertainty"

    def __init__(self) -> None:
        pass

    def _scores(self, probs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def score(self, ctx: SelectionContext) -> np.ndarray:
        assert ctx.probs is not None, "engine only offers strategies whose needs are met"
        return self._scores(ctx.probs)


class LeastConfidence(_ProbabilityStrategy):
    """Least confidence: label the records whose top class probability is lowest (Lewis & Gale 1994)."""

    name = "least-confidence"

    def _scores(self, probs: np.ndarray) -> np.ndarray:
        return least_confidence_scores(probs)


class MarginSampling(_ProbabilityStrategy):
    """Margin: label the records with the smallest gap between the top two classes (Scheffer et al. 2001)."""

    name = "margin"

    def _scores(self, probs: np.ndarray) -> np.ndarray:
        return margin_scores(probs)


class EntropySampling(_ProbabilityStrategy):
    """Entropy: label the records whose predicted distribution has the highest entropy (Settles 2009)."""

    name = "entropy"

    def _scores(self, probs: np.ndarray) -> np.ndarray:
        return entropy_scores(probs)
