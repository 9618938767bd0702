"""The portfolio: a bandit over strategies (ALBL, Hsu & Lin 2015), as pure functions over a JSON-able state.

Each arm (a strategy) gives *advice*: the uniform distribution over its own top-k. The batch is drawn
(without replacement, Gumbel top-k) from the mixture ``q = (1 − γ) Σ_a π_a ξ_a + γ / n`` — ``π`` the arm
probabilities (EXP4.P weights, or one Thompson draw), ``γ`` the uniform exploration that keeps every
``q_i > 0``. Rewards need no extra labels: when the labels of batch ``B_t`` arrive, the importance-weighted
accuracy of the model that chose it, ``IW-ACC_t = Σ_{i∈B_t} [ŷ_i = y_i] / q_i ÷ Σ_{i∈B_t} 1 / q_i``, estimates
that model's accuracy on the pool; the arms that drove ``B_{t−1}`` (which trained that model) are
rewarded with ``IW-ACC_t − IW-ACC_{t−1}``, each in proportion to its importance-weighted share of the batch.

>>> st = new_state(["margin", "random"], prior={"margin": 0.75, "random": 0.25})
>>> arm_probabilities(st, ["margin", "random"], "exp4p", np.random.default_rng(0)).round(2).tolist()
[0.75, 0.25]
>>> credit = batch_credit([np.array([0, 1]), np.array([2, 3])], np.array([0.5, 0.5]), np.array([0, 2]), n=4, gamma=0.0)
>>> update(st, credit, reward=0.1, algorithm="exp4p", eta=2.0)
>>> bool(st["arms"]["margin"]["log_w"] > np.log(0.75))
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "ALGORITHMS",
    "LOG_CAP",
    "arm_probabilities",
    "batch_credit",
    "iw_accuracy",
    "mixture",
    "new_state",
    "draw_batch",
    "holdout_reward",
    "update",
]

ALGORITHMS = ("exp4p", "thompson")
#: per-loop log entries kept in the state (older ones are dropped: the state does not grow with loops)
LOG_CAP = 32
_SIGMA = 0.05  # prior std of a reward (an accuracy change) for Thompson sampling


def new_state(arms: Sequence[str], prior: dict[str, float] | None = None) -> dict[str, Any]:
    """A fresh state: one entry per arm (log-weight from ``prior``, Thompson sufficient statistics)."""
    prior = prior or {}
    return {
        "version": 1,
        "loop": None,
        "arms": {a: _arm_entry(prior.get(a, 1.0 / max(len(arms), 1))) for a in arms},
        "pending": None,
        "prev_credit": None,
        "last_acc": None,
        "log": [],
    }


def _arm_entry(p: float) -> dict[str, float]:
    return {"log_w": float(np.log(max(p, 1e-6))), "n": 0.0, "sum": 0.0, "pulls": 0.0, "seconds": -1.0}


def ensure_arms(state: dict[str, Any], arms: Sequence[str], prior: dict[str, float]) -> None:
    """Add arms that became eligible (e.g. when embeddings start being shared) with their prior weight."""
    for a in arms:
        if a not in state["arms"]:
            state["arms"][a] = _arm_entry(prior.get(a, 1.0 / max(len(arms), 1)))


def arm_probabilities(
    state: dict[str, Any], arms: Sequence[str], algorithm: str, rng: np.random.Generator
) -> np.ndarray:
    """``π`` over ``arms``: normalised EXP4.P weights, or a one-hot Thompson draw."""
    entries = [state["arms"][a] for a in arms]
    if algorithm == "thompson":
        prior_mean = np.array([e["log_w"] for e in entries])
        prior_mean = 0.01 * (prior_mean - prior_mean.max())  # the prior only breaks ties early on
        n = np.array([e["n"] for e in entries])
        mean = np.array([e["sum"] for e in entries]) / np.maximum(n, 1e-9) * (n > 0) + prior_mean
        draw = rng.normal(mean, _SIGMA / np.sqrt(n + 1.0))
        out = np.zeros(len(arms))
        out[int(np.argmax(draw))] = 1.0
        return out
    logw = np.array([e["log_w"] for e in entries])
    w = np.exp(logw - logw.max())
    return w / w.sum()


def mixture(advice: Sequence[np.ndarray], pi: np.ndarray, n: int, gamma: float) -> np.ndarray:
    """``q`` over the ``n`` candidates: each arm's advice is uniform over its picks (positions)."""
    q = np.full(n, gamma / n)
    for picks, p in zip(advice, pi, strict=True):
        if picks.size and p > 0:
            np.add.at(q, picks, (1.0 - gamma) * p / picks.size)
    return q / q.sum()


def draw_batch(q: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``k`` distinct positions drawn from ``q`` without replacement (Gumbel top-k; ties → lower position)."""
    from alloop.strategies import top_k

    with np.errstate(divide="ignore"):
        keys = np.log(q) + rng.gumbel(size=q.size)
    return top_k(keys, k)


def batch_credit(
    advice: Sequence[np.ndarray], pi: np.ndarray, chosen: np.ndarray, *, n: int, gamma: float
) -> np.ndarray:
    """Each arm's importance-weighted share of the batch: ``(1/|B|) Σ_{i∈B} ξ_a(i) / q_i``, clipped to [0, 10]."""
    q = mixture(advice, pi, n, gamma)
    out = np.zeros(len(advice))
    if chosen.size == 0:
        return out
    for a, picks in enumerate(advice):
        if picks.size:
            xi = np.zeros(n)
            xi[picks] = 1.0 / picks.size
            out[a] = float(np.mean(xi[chosen] / q[chosen]))
    return np.clip(out, 0.0, 10.0)


def iw_accuracy(correct: np.ndarray, q: np.ndarray) -> float:
    """Self-normalised importance-weighted accuracy: ``Σ c_i / q_i ÷ Σ 1 / q_i``.

    >>> iw_accuracy(np.array([1, 0]), np.array([0.5, 0.25]))
    0.3333333333333333
    """
    w = 1.0 / np.maximum(np.asarray(q, dtype=np.float64), 1e-12)
    return float(np.sum(w * np.asarray(correct, dtype=np.float64)) / np.sum(w))


def holdout_reward(held: dict[str, float], loop: int | None) -> float | None:
    """Held-out metric of the model trained at ``loop`` minus that of the latest model before it (None if unknown).

    >>> holdout_reward({"0": 0.80, "1": 0.85}, 1)
    0.04999999999999993
    >>> holdout_reward({"1": 0.85}, 1) is None
    True
    """
    if loop is None or str(loop) not in held:
        return None
    before = [int(k) for k in held if int(k) < loop]
    if not before:
        return None
    return float(held[str(loop)] - held[str(max(before))])


def update(
    state: dict[str, Any],
    credit: dict[str, float] | np.ndarray,
    *,
    reward: float,
    algorithm: str,
    eta: float,
    arms: Sequence[str] | None = None,
) -> None:
    """Credit ``reward`` to the arms in proportion to ``credit`` (EXP4.P log-weights or Thompson statistics)."""
    if not isinstance(credit, dict):
        names = list(arms) if arms is not None else list(state["arms"])
        credit = {a: float(c) for a, c in zip(names, credit, strict=False)}
    total = sum(credit.values()) or 1.0
    for a, g in credit.items():
        e = state["arms"].get(a)
        if e is None:
            continue
        e["log_w"] = float(e["log_w"] + eta * reward * g)
        share = g / total
        e["n"] = float(e["n"] + share)
        e["sum"] = float(e["sum"] + share * reward)
    # keep log-weights bounded (only differences matter)
    top = max(e["log_w"] for e in state["arms"].values())
    for e in state["arms"].values():
        e["log_w"] = float(max(e["log_w"] - top, -20.0))


def append_log(state: dict[str, Any], entry: dict[str, Any]) -> None:
    state["log"].append(entry)
    del state["log"][:-LOG_CAP]
