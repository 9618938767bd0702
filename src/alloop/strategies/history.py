"""Strategies that read History: how each record's predictions moved across loops and epochs.

They score from ``ctx.history`` (:meth:`alloop.metadata.History.features`), so they use what past loops
learned about a record rather than one INFER pass alone. Formulas are in ``docs/engine.md``.

>>> import numpy as np
>>> from alloop.strategies import SelectionContext
>>> ctx = SelectionContext(ids=np.array([7, 8]), index=np.array([0, 1]),
...                        history={"flips": np.array([0.0, 2.0]), "count": np.array([3.0, 3.0])})
>>> PredictionFlips().select(ctx, 1).tolist()
[8]
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from alloop._validation import check_choice
from alloop.errors import ConfigError
from alloop.strategies._base import SelectionContext, Strategy
from alloop.strategies.uncertainty import margin_scores

__all__ = [
    "CartographyAmbiguous",
    "ConfidenceVariance",
    "ForgettingWeighted",
    "PredictionFlips",
    "UncertaintySlope",
    "flip_scores",
    "forgetting_weighted_scores",
    "slope_scores",
]

_SERIES = ("confidence", "margin", "entropy")


def _feature(ctx: SelectionContext, name: str, owner: str) -> np.ndarray:
    hist = ctx.history or {}
    if name not in hist:
        raise ConfigError(
            f"Strategy {owner!r} needs the History feature {name!r}, which the context lacks "
            f"(it has {sorted(hist)}); build contexts with History.features()."
        )
    return np.asarray(hist[name], dtype=np.float64)


def flip_scores(flips: np.ndarray, count: np.ndarray, *, rate: bool = True) -> np.ndarray:
    """Predicted-label flips, per chance to flip (``flips / max(count - 1, 1)``) or as a raw count.

    >>> flip_scores(np.array([2.0, 2.0]), np.array([3.0, 5.0])).tolist()
    [1.0, 0.5]
    """
    f = np.asarray(flips, dtype=np.float64)
    return f / np.maximum(np.asarray(count, dtype=np.float64) - 1.0, 1.0) if rate else f


def slope_scores(slope: np.ndarray, series: str) -> np.ndarray:
    """Rising uncertainty scores high: ``+slope`` of entropy, ``-slope`` of confidence or margin.

    >>> slope_scores(np.array([-0.1, 0.2]), "confidence").tolist()
    [0.1, -0.2]
    """
    s = np.asarray(slope, dtype=np.float64)
    return s if series == "entropy" else -s


def forgetting_weighted_scores(probs: np.ndarray, nbr_forgetting: np.ndarray) -> np.ndarray:
    """``(1 - margin) * (1 + mean forgetting events of the nearest labeled neighbours)``.

    >>> forgetting_weighted_scores(np.array([[0.6, 0.4], [0.6, 0.4]]), np.array([0.0, 2.0])).round(2).tolist()
    [0.8, 2.4]
    """
    unc = 1.0 + margin_scores(probs)  # 1 - (p_top1 - p_top2), in [0, 1]
    return unc * (1.0 + np.asarray(nbr_forgetting, dtype=np.float64))


class PredictionFlips(Strategy):
    """Records whose predicted label flipped most often across loops (an unstable decision).

    ``rate=True`` divides by the number of chances to flip (passes − 1), so records added later are
    not penalised. Used as a selection signal by Bloodgood & Vijay-Shanker 2009 (stability of
    predictions) and as a feature in learned selectors (Konyushkova et al. 2017).
    """

    name = "prediction-flips"
    needs: ClassVar[frozenset[str]] = frozenset({"history"})
    family: ClassVar[str] = "history"

    def __init__(self, *, rate: bool = True) -> None:
        self.rate = rate

    def score(self, ctx: SelectionContext) -> np.ndarray:
        return flip_scores(_feature(ctx, "flips", self.name), _feature(ctx, "count", self.name), rate=bool(self.rate))

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"rate": False}]


class ConfidenceVariance(Strategy):
    """Output discrepancy across loops: records whose predictions keep changing (Huang et al. 2021, TOD/COD).

    measure   ``"variance"``: variance of ``series`` over every pass that saw the record;
              ``"tod"``: L2 distance between the last two probability vectors (temporal output discrepancy);
              ``"tod_mean"``: its mean over passes (cumulative output discrepancy per pass)
    series    ``"confidence"``, ``"margin"`` or ``"entropy"`` (for ``measure="variance"``)
    """

    name = "confidence-variance"
    needs: ClassVar[frozenset[str]] = frozenset({"history"})
    family: ClassVar[str] = "history"

    def __init__(self, *, measure: str = "variance", series: str = "confidence") -> None:
        self.measure = measure
        self.series = series

    def score(self, ctx: SelectionContext) -> np.ndarray:
        measure = check_choice(self.measure, "measure", "ConfidenceVariance", ("variance", "tod", "tod_mean"))
        series = check_choice(self.series, "series", "ConfidenceVariance", _SERIES)
        return _feature(ctx, f"{series}_var" if measure == "variance" else measure, self.name)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"measure": "tod"}, {"measure": "variance", "series": "entropy"}]


class UncertaintySlope(Strategy):
    """Records getting less certain: the least-squares slope of an uncertainty series over the last passes.

    The slope comes from History's window (default 5 passes). ``series="entropy"`` scores a rising
    entropy; ``"confidence"``/``"margin"`` score a falling top probability/margin. With ``probs`` shared,
    ``tiebreak`` adds that many times the current margin uncertainty (0 = slope only).
    """

    name = "uncertainty-slope"
    needs: ClassVar[frozenset[str]] = frozenset({"history"})
    optional_needs: ClassVar[frozenset[str]] = frozenset({"probs"})
    family: ClassVar[str] = "history"

    def __init__(self, *, series: str = "entropy", tiebreak: float = 0.0) -> None:
        self.series = series
        self.tiebreak = tiebreak

    def score(self, ctx: SelectionContext) -> np.ndarray:
        series = check_choice(self.series, "series", "UncertaintySlope", _SERIES)
        s = slope_scores(_feature(ctx, f"{series}_slope", self.name), series)
        if self.tiebreak and ctx.probs is not None:
            s = s + float(self.tiebreak) * (1.0 + margin_scores(ctx.probs))
        return s

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"series": "margin", "tiebreak": 0.01}]


class CartographyAmbiguous(Strategy):
    """Records whose nearest labeled neighbours are ambiguous in dataset-cartography terms (Swayamdipta et al. 2020).

    Score = mean cartography variability (std over epochs of the true-label probability) of the
    ``History.neighbours`` nearest labeled records with training dynamics, by last embedding. Ambiguous
    regions (high variability) are where more labels help most. Until the learner reports training
    dynamics, the record's own variability across loops is used instead: the standard deviation of its
    confidence over INFER passes (an inference-time cartography, without the true label).
    """

    name = "cartography-ambiguous"
    needs: ClassVar[frozenset[str]] = frozenset({"history", "embeddings"})
    family: ClassVar[str] = "history"

    def score(self, ctx: SelectionContext) -> np.ndarray:
        known = _feature(ctx, "nbr_known", self.name) > 0
        nbr = _feature(ctx, "nbr_cartography_variability", self.name)
        own = np.sqrt(np.maximum(_feature(ctx, "confidence_var", self.name), 0.0))
        return np.where(known, nbr, own) if known.any() else own


class ForgettingWeighted(Strategy):
    """Uncertainty weighted by how often the nearest labeled neighbours were forgotten (Toneva et al. 2019).

    Score = ``(1 - margin) * (1 + mean forgetting events of the nearest labeled neighbours)``; forgetting
    events (correct → incorrect between consecutive epochs) come from the learner's training dynamics.
    Without dynamics (or embeddings) the weight is 1 and the ranking equals margin sampling. This is the
    simple variant: neighbours are found in History's last embeddings, not re-weighted by distance.
    """

    name = "forgetting-weighted"
    needs: ClassVar[frozenset[str]] = frozenset({"history", "probs"})
    family: ClassVar[str] = "history"

    def score(self, ctx: SelectionContext) -> np.ndarray:
        assert ctx.probs is not None
        return forgetting_weighted_scores(ctx.probs, _feature(ctx, "nbr_forgetting_events", self.name))
