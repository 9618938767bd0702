"""The one top-k helper: every strategy's ranking, ties and batch cut go through here.

Ties are broken by the lower position (candidates come in pool order, so the lower record index,
i.e. the earlier row of the user's data, wins), exactly as a stable sort on the score would.
NaN scores rank last. Runs in O(n) plus O(k log k).
"""

from __future__ import annotations

import numpy as np

from alloop.errors import ConfigError

__all__ = ["top_k", "rank_order"]


def rank_order(scores: np.ndarray) -> np.ndarray:
    """All positions, best first (stable: ties keep their original order; NaN last)."""
    s = np.asarray(scores, dtype=np.float64)
    # numpy sorts NaN after every number (even +inf), so -inf scores still rank before NaN ones
    return np.argsort(-s, kind="stable")


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` highest scores, best first; returns all positions if ``k >= n``."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
        raise ConfigError(f"The 'k' parameter of top_k must be an int >= 0. Got {k!r}.")
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ConfigError(f"Scores must be one-dimensional; got shape {s.shape}.")
    n = s.size
    if k == 0:
        return np.empty(0, dtype=np.int64)
    key = -s
    if k >= n - int(np.isnan(key).sum()):  # the cut reaches the NaN scores, which rank after -inf ones
        return rank_order(s)[:k]
    kth = np.partition(key, k - 1)[k - 1]  # finite or ±inf, never NaN here
    better = np.flatnonzero(key < kth)
    ties = np.flatnonzero(key == kth)[: k - better.size]
    chosen = np.concatenate([better, ties])
    chosen.sort()
    return chosen[np.argsort(key[chosen], kind="stable")]
