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

``algorithm="lcb"`` is the cautious bandit (``auto(algorithm="lcb")``): margin keeps the batch unless
another arm is *credibly* better. Every reward gives each arm a paired difference with margin,
``d_t(a) = r_t · (g_a − g_margin)`` (the EXP4 reward estimates of the two arms from the same batch); an arm's
share grows only while the one-sided lower confidence bound of the mean of its ``d`` is above 0, and otherwise
decays from its prior to :data:`LCB_FLOOR` over the first :data:`LCB_EXPLORE_LOOPS` loops.

>>> st = new_state(["margin", "random"], prior={"margin": 0.9, "random": 0.1})
>>> for _ in range(8):
...     update(st, {"margin": 0.2, "random": 1.5}, reward=0.05, algorithm="lcb", eta=1.0)
>>> arm_probabilities(st, ["margin", "random"], "lcb", np.random.default_rng(0)).round(2).tolist()
[0.2, 0.8]

``algorithm="surprise"`` (``auto``'s default) asks the labels directly whether diversity pays: during the first
loops a few *probe* records the model is confident about (top probability ≥ :data:`SURPRISE_CONFIDENT`) are
labeled. A probe is a *novel* error when the prediction was wrong and its label also differs from that of its
nearest labeled record — the model was extrapolating into a region its labels did not cover (an error where the
nearest label agrees with the true one is a *misfit*: the model cannot fit what it was shown, and more spread-out
labels would not help). When novel errors outnumber misfits and are significantly more frequent than the model's
own probabilities say its errors should be (a calibrated model is wrong with probability 1 − p_max), the batch goes
to a diversity arm; otherwise margin keeps it.

>>> conf = np.full(6, 0.97)
>>> st = surprise_update(None, conf=conf, wrong=np.array([1, 0, 1, 0, 0, 0]), novel=np.array([1, 0, 1, 0, 0, 0]))
>>> surprise_verdict(st)
'diverse'
>>> surprise_verdict(surprise_update(None, conf=conf, wrong=np.ones(6), novel=np.zeros(6)))
'misfit'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "ALGORITHMS",
    "LCB_EXPLORE_LOOPS",
    "LCB_FLOOR",
    "LCB_LEVEL",
    "LCB_MAX_SHARE",
    "LCB_MIN_N",
    "LOG_CAP",
    "arm_probabilities",
    "batch_credit",
    "iw_accuracy",
    "mixture",
    "new_state",
    "draw_batch",
    "holdout_reward",
    "lcb_probabilities",
    "look_level",
    "lower_bound",
    "paired_update",
    "SURPRISE_ALPHA",
    "SURPRISE_CONFIDENT",
    "SURPRISE_FLOOR",
    "SURPRISE_MIN_N",
    "SURPRISE_MIN_SHARE",
    "SURPRISE_PROBE_LOOPS",
    "surprise_p_value",
    "surprise_update",
    "surprise_verdict",
    "t_quantile",
    "update",
]

ALGORITHMS = ("exp4p", "thompson", "lcb", "surprise")
#: per-loop log entries kept in the state (older ones are dropped: the state does not grow with loops)
LOG_CAP = 32
_SIGMA = 0.05  # prior std of a reward (an accuracy change) for Thompson sampling
#: "lcb": the safe arm every other arm is compared with (the first arm when it is not in the portfolio)
BASELINE = "margin"
#: "lcb": one-sided confidence level of the lower bounds, jointly over all arms and loops (a union bound:
#: the n-th look at one of m arms uses level 1 − (1 − LCB_LEVEL) / (m · n · (n + 1)), see :func:`look_level`)
LCB_LEVEL = 0.90
#: "lcb": paired differences an arm needs before it can be credibly better
LCB_MIN_N = 4
#: "lcb": loops over which the non-baseline arms' prior share decays (linearly) to LCB_FLOOR
LCB_EXPLORE_LOOPS = 6
#: "lcb": share each non-baseline arm keeps (relative to its prior) after the decay
LCB_FLOOR = 0.0
#: "lcb": the most the credibly better arms take together (the baseline keeps the rest)
LCB_MAX_SHARE = 0.8


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
    """``π`` over ``arms``: normalised EXP4.P weights, a one-hot Thompson draw, or the "lcb" shares."""
    if algorithm == "lcb":
        return lcb_probabilities(state, arms)
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
    """Credit ``reward`` to the arms in proportion to ``credit`` (EXP4.P log-weights or Thompson statistics).

    With ``algorithm="lcb"`` the log-weights keep their priors and each arm other than the baseline gets one
    paired difference ``reward · (g_a − g_baseline)`` (arms absent from ``credit`` count ``g = 0``).
    """
    if not isinstance(credit, dict):
        names = list(arms) if arms is not None else list(state["arms"])
        credit = {a: float(c) for a, c in zip(names, credit, strict=False)}
    if algorithm == "lcb":
        base = _baseline(state["arms"])
        g_base = float(credit.get(base, 0.0))
        for a, e in state["arms"].items():
            if a != base:
                e["d"] = paired_update(e.get("d"), reward * (float(credit.get(a, 0.0)) - g_base))
    total = sum(credit.values()) or 1.0
    for a, g in credit.items():
        e = state["arms"].get(a)
        if e is None:
            continue
        if algorithm != "lcb":
            e["log_w"] = float(e["log_w"] + eta * reward * g)
        share = g / total
        e["n"] = float(e["n"] + share)
        e["sum"] = float(e["sum"] + share * reward)
    # keep log-weights bounded (only differences matter)
    top = max(e["log_w"] for e in state["arms"].values())
    for e in state["arms"].values():
        e["log_w"] = float(max(e["log_w"] - top, -20.0))


def append_log(state: dict[str, Any], entry: dict[str, Any]) -> None:
    """Keep one loop's entry (the last :data:`LOG_CAP`); with "lcb", its lower bounds per arm are added."""
    if "lcb" in state:
        entry = {**entry, "lcb": dict(state["lcb"]["bounds"]), "lcb_loop": state["lcb"]["loops"]}
    state["log"].append(entry)
    del state["log"][:-LOG_CAP]


# ---- "lcb": margin unless another arm is credibly better ----------------------------------------------------
def _baseline(arms: Sequence[str] | dict[str, Any]) -> str:
    names = list(arms)
    return BASELINE if BASELINE in names or not names else names[0]


def paired_update(stats: dict[str, float] | None, d: float) -> dict[str, float]:
    """Welford's running mean and sum of squared deviations of the paired differences (O(1) per arm).

    >>> s = None
    >>> for d in (1.0, 2.0, 6.0):
    ...     s = paired_update(s, d)
    >>> s
    {'n': 3.0, 'mean': 3.0, 'm2': 14.0}
    """
    n, mean, m2 = (0.0, 0.0, 0.0) if not stats else (stats["n"], stats["mean"], stats["m2"])
    n += 1.0
    delta = d - mean
    mean += delta / n
    m2 += delta * (d - mean)
    return {"n": n, "mean": float(mean), "m2": float(m2)}


def t_quantile(level: float, df: float) -> float:
    """The Student-t quantile (exact, scipy; the per-look levels of :func:`look_level` are far in the tail).

    >>> round(t_quantile(0.9, 19), 3)
    1.328
    """
    from scipy.stats import t

    return float(t.ppf(level, df))


def lower_bound(stats: dict[str, float] | None, level: float = LCB_LEVEL) -> float:
    """One-sided ``level`` lower confidence bound of the mean paired difference (−inf below 2 observations).

    >>> lower_bound({"n": 3.0, "mean": 3.0, "m2": 14.0}) < 3.0 < lower_bound({"n": 30.0, "mean": 3.0, "m2": 14.0}) + 1
    True
    """
    if not stats or stats["n"] < 2:
        return float("-inf")
    n = stats["n"]
    se = np.sqrt(stats["m2"] / (n - 1) / n)
    return float(stats["mean"] - t_quantile(level, n - 1) * se)


def look_level(n: float, m: int, level: float = LCB_LEVEL) -> float:
    """Per-look level so that the bounds of ``m`` arms hold at every loop at once with probability ``level``.

    ``Σ_n 1 / (n (n + 1)) = 1``, so spending ``(1 − level) / (m n (n + 1))`` at the n-th look of each arm keeps
    the chance that any arm ever looks credibly better by noise alone below ``1 − level`` (repeated looks
    at a fixed 90 % bound would switch away from margin on ≈ 12 % of loops of a pure-noise campaign).

    >>> round(look_level(1, 1), 3), round(look_level(4, 2), 4)
    (0.95, 0.9975)
    """
    return 1.0 - (1.0 - level) / (max(m, 1) * n * (n + 1.0))


def lcb_probabilities(state: dict[str, Any], arms: Sequence[str]) -> np.ndarray:
    """``π`` for "lcb": the baseline keeps the batch unless another arm is credibly better.

    An arm whose lower bound (:func:`lower_bound` at :func:`look_level`, at least :data:`LCB_MIN_N`
    differences) is above 0 gets
    a share that grows with its t-statistic: from its decayed prior at the critical value to
    :data:`LCB_MAX_SHARE` (split in proportion to the bounds when several arms are credible) at twice it.
    The other non-baseline arms keep their prior share times ``max(1 − loops / LCB_EXPLORE_LOOPS, 0)``
    (never below :data:`LCB_FLOOR` × prior); loops are counted once per new ``state["loop"]``. The bounds and
    the loop count are kept in ``state["lcb"]`` (shown in the per-loop log).
    """
    info = state.setdefault("lcb", {"loops": 0, "seen": None, "bounds": {}})
    if state.get("loop") is not None and info["seen"] != state["loop"]:
        info["loops"], info["seen"] = int(info["loops"]) + 1, state["loop"]
    base = _baseline(arms)
    logw = np.array([state["arms"][a]["log_w"] for a in arms])
    prior = np.exp(logw - logw.max())
    prior /= prior.sum()
    decay = float(np.clip(1.0 - (int(info["loops"]) - 1) / LCB_EXPLORE_LOOPS, LCB_FLOOR, 1.0))
    pi = np.zeros(len(arms))
    strength: dict[int, tuple[float, float]] = {}  # arm position -> (growth in [0, 1], lower bound)
    bounds: dict[str, float | None] = {}
    for j, a in enumerate(arms):
        if a == base:
            continue
        d = state["arms"][a].get("d")
        level = look_level(d["n"], len(arms) - 1) if d else LCB_LEVEL
        lo = lower_bound(d, level) if d and d["n"] >= LCB_MIN_N else float("-inf")
        bounds[a] = round(lo, 5) if np.isfinite(lo) else None
        pi[j] = prior[j] * decay
        if d and lo > 0:
            se = float(np.sqrt(d["m2"] / (d["n"] - 1) / d["n"]))
            crit = t_quantile(level, d["n"] - 1)
            growth = 1.0 if se == 0 else float(np.clip(d["mean"] / se / crit - 1.0, 0.0, 1.0))
            strength[j] = (growth, lo)
    info["bounds"] = bounds
    total_lo = sum(lo for _, lo in strength.values())
    for j, (growth, lo) in strength.items():
        target = LCB_MAX_SHARE * lo / total_lo
        pi[j] = max(pi[j], pi[j] + growth * (target - pi[j]))
    if base in arms:
        pi[list(arms).index(base)] = max(1.0 - pi.sum(), 0.0)
    total = pi.sum()
    return pi / total if total > 0 else np.full(len(arms), 1.0 / max(len(arms), 1))


# ---- "surprise": does diversity pay? ask the labels of confident predictions ------------------------------
#: "surprise": a prediction counts as confident when its top probability is at least this (calibrated → ≤ 10 % wrong)
SURPRISE_CONFIDENT = 0.9
#: "surprise": the first loops of a campaign may carry probes (after them, no decision to diversify = margin)
SURPRISE_PROBE_LOOPS = 5
#: "surprise": probes are drawn only while at least this share of the candidates is confident (the part of the pool
#: where margin never looks and a confidently wrong model would go unnoticed)
SURPRISE_MIN_SHARE = 0.1
#: "surprise": labeled confident records needed before any verdict
SURPRISE_MIN_N = 4
#: "surprise": one-sided binomial level of "more novel errors than a calibrated model makes errors"
SURPRISE_ALPHA = 0.05
#: "surprise": the smallest error rate a calibrated model is credited with (a probability of 1 is not taken literally)
SURPRISE_FLOOR = 0.02


def surprise_update(
    stats: dict[str, float] | None, *, conf: np.ndarray, wrong: np.ndarray, novel: np.ndarray
) -> dict[str, float]:
    """Add labeled confident predictions to the counts: ``conf[i]`` the top probability, ``wrong[i]`` the prediction
    was wrong, ``novel[i]`` wrong *and* the label differs from the nearest labeled record's (an error outside what
    the labels covered); ``expected`` sums the errors a calibrated model would make, ``1 − conf``.

    >>> st = surprise_update(None, conf=np.array([0.9, 1.0]), wrong=np.array([1, 0]), novel=np.array([1, 0]))
    >>> {k: round(v, 3) for k, v in st.items()}
    {'n': 2.0, 'wrong': 1.0, 'novel': 1.0, 'expected': 0.1}
    """
    keys = ("n", "wrong", "novel", "expected")
    n, w, v, e = (0.0, 0.0, 0.0, 0.0) if not stats else (float(stats[k]) for k in keys)
    wrong, novel = np.asarray(wrong, dtype=bool), np.asarray(novel, dtype=bool)
    expected = float(np.sum(1.0 - np.asarray(conf, dtype=np.float64)))
    add = {"n": wrong.size, "wrong": wrong.sum(), "novel": (novel & wrong).sum(), "expected": expected}
    return {k: float(old + add[k]) for k, old in zip(keys, (n, w, v, e), strict=True)}


def surprise_p_value(stats: dict[str, float] | None) -> float:
    """P(at least this many novel errors | a calibrated model): binomial, error rate ``max(expected / n, floor)``.

    >>> round(surprise_p_value({"n": 6.0, "wrong": 3.0, "novel": 3.0, "expected": 0.6}), 4)
    0.0158
    """
    if not stats or stats["n"] <= 0:
        return 1.0
    from scipy.stats import binom

    rate = max(float(stats["expected"]) / float(stats["n"]), SURPRISE_FLOOR)
    return float(binom.sf(stats["novel"] - 1.0, stats["n"], min(rate, 1.0)))


def surprise_verdict(
    stats: dict[str, float] | None, *, alpha: float = SURPRISE_ALPHA, min_n: int = SURPRISE_MIN_N
) -> str:
    """``"undecided"`` (fewer than ``min_n`` probes, by default :data:`SURPRISE_MIN_N`), ``"misfit"`` (at least as
    many errors where the labels already said otherwise as novel ones: the model does not follow its labels, so
    spreading them will not help),
    ``"diverse"`` (novel errors significantly more frequent than a calibrated model's errors,
    :func:`surprise_p_value` < ``alpha``, by default :data:`SURPRISE_ALPHA`) or ``"calibrated"``.

    >>> surprise_verdict({"n": 6.0, "wrong": 6.0, "novel": 2.0, "expected": 0.1})
    'misfit'
    >>> surprise_verdict({"n": 6.0, "wrong": 0.0, "novel": 0.0, "expected": 0.1})  # no error at all
    'calibrated'
    """
    if not stats or stats["n"] < min_n:
        return "undecided"
    if stats["wrong"] > 0 and stats["wrong"] - stats["novel"] >= stats["novel"]:
        return "misfit"
    return "diverse" if surprise_p_value(stats) < alpha else "calibrated"
