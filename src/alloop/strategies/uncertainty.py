"""Uncertainty sampling on class probabilities.

Each strategy is a thin class over a pure score function; all rank with the shared top-k helper.
The ``soft-*`` strategies sample proportionally to an uncertainty score instead of taking the top-k,
through the Gumbel-top-k trick (Kirsch et al. 2023).

>>> import numpy as np
>>> margin_scores(np.array([[0.5, 0.4, 0.1], [0.9, 0.05, 0.05]])).round(2).tolist()
[-0.1, -0.85]
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from alloop._validation import check_choice, check_float
from alloop.errors import ConfigError
from alloop.strategies._base import SelectionContext, Strategy

__all__ = [
    "CalibratedLeastConfidence",
    "EntropySampling",
    "ExpectedCost",
    "GiniSampling",
    "LeastConfidence",
    "MarginSampling",
    "RatioSampling",
    "SoftEntropy",
    "SoftLeastConfidence",
    "SoftMargin",
    "calibrated_least_confidence_scores",
    "entropy_scores",
    "expected_cost_scores",
    "gini_scores",
    "gumbel_top_k_keys",
    "least_confidence_scores",
    "margin_scores",
    "ratio_scores",
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


# ---- more scores on one probability row ---------------------------------------------------------------------
def ratio_scores(probs: np.ndarray) -> np.ndarray:
    """``p_top2 / p_top1`` in [0, 1]: close to 1 when the two best classes are nearly tied.

    A row of zeros scores 1 (no class is preferred); with a single class every score is 0.

    >>> ratio_scores(np.array([[0.5, 0.4, 0.1], [0.8, 0.1, 0.1]])).tolist()
    [0.8, 0.125]
    """
    p = np.asarray(probs)
    if p.shape[1] < 2:
        return np.zeros(p.shape[0], dtype=np.float64)
    part = np.partition(p, p.shape[1] - 2, axis=1)
    top1 = part[:, -1].astype(np.float64)
    top2 = part[:, -2].astype(np.float64)
    return np.divide(top2, top1, out=np.ones_like(top1), where=top1 > 0)


def gini_scores(probs: np.ndarray) -> np.ndarray:
    """Gini impurity ``1 - sum_c p_c^2``: the chance that two draws from the prediction disagree."""
    p = np.asarray(probs, dtype=np.float64)
    return 1.0 - np.einsum("ij,ij->i", p, p)


def calibrated_least_confidence_scores(probs: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Least confidence after temperature scaling ``p_c^(1/T) / sum_j p_j^(1/T)`` (softmax of ``log p / T``)."""
    p = np.asarray(probs, dtype=np.float64)
    with np.errstate(divide="ignore"):
        logits = np.log(p) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    scaled = np.exp(logits)
    return 1.0 - 1.0 / scaled.sum(axis=1)  # the top class has logit 0, i.e. weight 1


def expected_cost_scores(probs: np.ndarray, cost: Any = None) -> np.ndarray:
    """Expected misclassification cost of the Bayes decision, ``min_j sum_i p_i C[i, j]`` (Margineantu 2005).

    ``C[i, j]`` is the cost of predicting class ``j`` when the truth is ``i``; ``None`` means 0/1 loss, for
    which the score is ``1 - max_c p_c``.

    >>> expected_cost_scores(np.array([[0.6, 0.4]]), [[0, 1], [5, 0]]).tolist()  # predicting 0 costs 0.4 * 5
    [0.6]
    """
    p = np.asarray(probs, dtype=np.float64)
    n_classes = p.shape[1]
    c = np.ones((n_classes, n_classes)) - np.eye(n_classes) if cost is None else np.asarray(cost, dtype=np.float64)
    return np.min(p @ c, axis=1)


def gumbel_top_k_keys(
    scores: np.ndarray,
    rng: np.random.Generator,
    *,
    mode: str = "power",
    power: float = 1.0,
    temperature: float = 1.0,
) -> np.ndarray:
    """Perturbed keys whose top-k is a sample of k records without replacement, proportional to a weight.

    Weights are ``score^power`` (``mode="power"``, scores must be >= 0) or ``exp(score / temperature)``
    (``mode="softmax"``). Adding independent Gumbel noise to ``log weight`` and taking the k largest keys
    samples without replacement with those weights (the Gumbel-top-k trick; Kirsch et al. 2023, "Stochastic
    batch acquisition"). Records of weight 0 get a very low finite key and come last.
    """
    s = np.asarray(scores, dtype=np.float64)
    if mode == "power":
        with np.errstate(divide="ignore"):
            log_w = power * np.log(np.maximum(s, np.finfo(np.float64).tiny))
    else:
        log_w = s / temperature
    return log_w + rng.gumbel(size=s.shape)


class RatioSampling(_ProbabilityStrategy):
    """Ratio of confidence: label the records whose second-best class is nearly as likely as the best (Monarch 2021)."""

    name = "ratio"

    def _scores(self, probs: np.ndarray) -> np.ndarray:
        return ratio_scores(probs)


class GiniSampling(_ProbabilityStrategy):
    """Gini impurity: label the records whose prediction has the highest Gini index (Breiman et al. 1984)."""

    name = "gini"

    def _scores(self, probs: np.ndarray) -> np.ndarray:
        return gini_scores(probs)


class CalibratedLeastConfidence(Strategy):
    """Least confidence on temperature-scaled probabilities, softening over-confident models (Guo et al. 2017).

    ``temperature > 1`` flattens the predictions before ranking, so records whose runner-up classes are
    collectively likely rise; ``temperature = 1`` is plain least confidence.
    """

    name = "calibrated-least-confidence"
    needs: ClassVar[frozenset[str]] = frozenset({"probs"})
    family: ClassVar[str] = "uncertainty"

    def __init__(self, *, temperature: float = 2.0) -> None:
        self.temperature = temperature

    def score(self, ctx: SelectionContext) -> np.ndarray:
        assert ctx.probs is not None, "engine only offers strategies whose needs are met"
        t = check_float(self.temperature, "temperature", "CalibratedLeastConfidence", low=1e-6)
        return calibrated_least_confidence_scores(ctx.probs, t)

    @classmethod
    def _test_params(cls) -> list[dict[str, object]]:
        return [{}, {"temperature": 0.5}]


class ExpectedCost(Strategy):
    """Expected cost: label the records whose best decision has the highest expected cost (Margineantu 2005).

    ``cost_matrix[i][j]`` is the cost of predicting class ``j`` when the truth is ``i`` (a square table of
    numbers >= 0, one row and column per class); the default ``None`` is 0/1 loss.
    """

    name = "expected-cost"
    needs: ClassVar[frozenset[str]] = frozenset({"probs"})
    family: ClassVar[str] = "uncertainty"

    def __init__(self, *, cost_matrix: tuple[tuple[float, ...], ...] | None = None) -> None:
        self.cost_matrix = cost_matrix

    def _cost_matrix(self, n_classes: int) -> np.ndarray | None:
        if self.cost_matrix is None:
            return None
        head = "The 'cost_matrix' parameter of ExpectedCost"
        what = f"a {n_classes}x{n_classes} table of finite numbers >= 0 (cost[true][predicted])"
        try:
            c = np.asarray(self.cost_matrix, dtype=np.float64)
        except (TypeError, ValueError):
            raise ConfigError(f"{head} must be {what}. Got {self.cost_matrix!r}.") from None
        if c.shape != (n_classes, n_classes) or not np.isfinite(c).all() or (c < 0).any():
            raise ConfigError(f"{head} must be {what}. Got {self.cost_matrix!r}.")
        return c

    def score(self, ctx: SelectionContext) -> np.ndarray:
        assert ctx.probs is not None, "engine only offers strategies whose needs are met"
        return expected_cost_scores(ctx.probs, self._cost_matrix(ctx.probs.shape[1]))

    @classmethod
    def _test_params(cls) -> list[dict[str, object]]:
        return [{}]


class _SoftStrategy(Strategy):
    """Stochastic top-k over an uncertainty score (Kirsch et al. 2023); subclasses give ``_uncertainty``."""

    needs: ClassVar[frozenset[str]] = frozenset({"probs"})
    family: ClassVar[str] = "uncertainty"

    def __init__(
        self, *, mode: str = "power", power: float = 1.0, temperature: float = 1.0, seed: int | None = None
    ) -> None:
        self.mode = mode
        self.power = power
        self.temperature = temperature
        self.seed = seed

    def _uncertainty(self, probs: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def score(self, ctx: SelectionContext) -> np.ndarray:
        assert ctx.probs is not None, "engine only offers strategies whose needs are met"
        owner = type(self).__name__
        mode = check_choice(self.mode, "mode", owner, ("power", "softmax"))
        power = check_float(self.power, "power", owner, low=0.0)
        temperature = check_float(self.temperature, "temperature", owner, low=1e-6)
        u = self._uncertainty(ctx.probs)
        return gumbel_top_k_keys(u, ctx.rng(self.seed), mode=mode, power=power, temperature=temperature)

    @classmethod
    def _test_params(cls) -> list[dict[str, object]]:
        return [{}, {"mode": "softmax", "temperature": 0.1, "seed": 3}, {"power": 4.0}]


class SoftMargin(_SoftStrategy):
    """Soft margin: sample records with probability proportional to ``(1 - margin)^power`` (Kirsch et al. 2023).

    With ``mode="softmax"`` the weight is ``exp(-margin / temperature)``. Seeded: the same seed and loop give
    the same batch.
    """

    name = "soft-margin"

    def _uncertainty(self, probs: np.ndarray) -> np.ndarray:
        return 1.0 + margin_scores(probs)  # 1 - (p_top1 - p_top2), in [0, 1]


class SoftEntropy(_SoftStrategy):
    """Soft entropy: sample records with probability proportional to ``entropy^power`` (Kirsch et al. 2023)."""

    name = "soft-entropy"

    def _uncertainty(self, probs: np.ndarray) -> np.ndarray:
        return entropy_scores(probs)


class SoftLeastConfidence(_SoftStrategy):
    """Soft least confidence: sample records proportionally to ``(1 - max_c p_c)^power`` (Kirsch et al. 2023)."""

    name = "soft-least-confidence"

    def _uncertainty(self, probs: np.ndarray) -> np.ndarray:
        return least_confidence_scores(probs)
