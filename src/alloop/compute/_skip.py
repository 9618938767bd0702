"""Inference skipping (multi-generation): do not re-infer records whose prediction is settled.

A record is skipped this loop when all of these hold (read from History features):

* it has been inferred at least ``min_count`` times and its prediction has not flipped for
  ``stable_loops`` loops;
* its margin is far from the selection threshold: ``margin_mean − z·margin_std ≥ threshold + margin_gap``,
  where the threshold is the margin of the least certain record that could still be selected (given, or
  the ``protect_quantile`` of the candidates' mean margins);
* it was inferred less than ``refresh_every`` loops ago — the refresh guarantee: every record is re-inferred
  at least every ``refresh_every`` loops, whatever its statistics.

Never-inferred records are always inferred.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from alloop._validation import check_float, check_int

__all__ = ["InferencePolicy", "plan_inference"]


class InferencePolicy:
    """Settings of :func:`plan_inference` (see the module docstring)."""

    def __init__(
        self,
        *,
        refresh_every: int = 4,
        stable_loops: int = 2,
        min_count: int = 2,
        margin_gap: float = 0.1,
        z: float = 2.0,
        protect_quantile: float = 0.2,
    ) -> None:
        self.refresh_every = refresh_every
        self.stable_loops = stable_loops
        self.min_count = min_count
        self.margin_gap = margin_gap
        self.z = z
        self.protect_quantile = protect_quantile

    def validate(self) -> InferencePolicy:
        owner = "InferencePolicy"
        check_int(self.refresh_every, "refresh_every", owner, min=1)
        check_int(self.stable_loops, "stable_loops", owner, min=0)
        check_int(self.min_count, "min_count", owner, min=1)
        check_float(self.margin_gap, "margin_gap", owner, low=0.0)
        check_float(self.z, "z", owner, low=0.0)
        check_float(self.protect_quantile, "protect_quantile", owner, low=0.0, high=1.0)
        return self

    def __repr__(self) -> str:
        return "InferencePolicy(" + ", ".join(f"{k}={v!r}" for k, v in vars(self).items()) + ")"


def plan_inference(
    history_features: Mapping[str, np.ndarray],
    loop: int,
    policy: InferencePolicy | None = None,
    *,
    threshold: float | None = None,
) -> np.ndarray:
    """Boolean mask of the records to infer at ``loop``.

    ``history_features`` is ``History.features(index)`` plus ``"last_loop"`` (``History.last_loop[index]``,
    the loop of the last INFER that saw each record; −1 = never).

    >>> f = {"count": np.array([0., 5, 5, 5]), "margin_mean": np.array([0., .9, .9, .05]),
    ...      "margin_var": np.zeros(4), "flips": np.zeros(4), "last_flip_loop": np.full(4, -1.),
    ...      "last_loop": np.array([-1., 9, 6, 9])}
    >>> plan_inference(f, 10, InferencePolicy(refresh_every=4), threshold=0.1).tolist()
    [True, False, True, True]
    """
    p = (policy or InferencePolicy()).validate()
    count = np.asarray(history_features["count"], dtype=np.float64)
    margin = np.asarray(history_features["margin_mean"], dtype=np.float64)
    std = np.sqrt(np.maximum(np.asarray(history_features["margin_var"], dtype=np.float64), 0.0))
    last_flip = np.asarray(history_features["last_flip_loop"], dtype=np.float64)
    last = np.asarray(history_features["last_loop"], dtype=np.float64)
    seen = (count >= 1) & (last >= 0)
    if threshold is None:
        threshold = float(np.quantile(margin[seen], float(p.protect_quantile))) if seen.any() else 0.0
    stable = (count >= int(p.min_count)) & ((last_flip < 0) | (loop - last_flip >= int(p.stable_loops)))
    far = margin - float(p.z) * std >= float(threshold) + float(p.margin_gap)
    fresh = (loop - last) < int(p.refresh_every)
    skip = seen & stable & far & fresh
    return ~skip
