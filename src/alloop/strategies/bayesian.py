"""Bayesian strategies on MC-dropout or ensemble samples: BALD, BatchBALD, EPIG and friends.

``samples`` has shape ``(S, n, C)``: ``S`` stochastic forward passes (or ensemble members), each row a
probability vector. Every score is a pure function of the samples (natural logarithms, ``0 log 0 = 0``);
the classes are thin wrappers that rank with the shared top-k helper.

Two passes that disagree completely reach the two-class maximum of BALD, ``log 2``; passes that agree give 0:

>>> import numpy as np
>>> samples = np.array([[[1.0, 0.0], [0.5, 0.5]], [[0.0, 1.0], [0.5, 0.5]]])  # (S=2, n=2, C=2)
>>> bald_scores(samples).round(4).tolist()
[0.6931, 0.0]
>>> predictive_entropy_scores(samples).round(4).tolist()
[0.6931, 0.6931]
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from alloop._validation import check_float, check_int
from alloop.errors import ConfigError
from alloop.strategies._base import SelectionContext, Strategy
from alloop.strategies._topk import top_k
from alloop.strategies.uncertainty import gumbel_top_k_keys

__all__ = [
    "BALD",
    "EPIG",
    "BatchBALD",
    "MeanStd",
    "PowerBALD",
    "PredictiveEntropy",
    "VariationRatios",
    "bald_scores",
    "batch_bald_select",
    "epig_scores",
    "joint_entropies",
    "mean_std_scores",
    "power_bald_scores",
    "predictive_entropy_scores",
    "variation_ratios_scores",
]

_CHUNK = 1 << 21  # floats per intermediate block in the joint-entropy products (16 MB)


# ---- helpers ------------------------------------------------------------------------------------------
def _as_samples(samples: np.ndarray) -> np.ndarray:
    """The samples as float64 ``(S, n, C)`` (a new array for float32 input; never written to)."""
    p = np.asarray(samples, dtype=np.float64)
    if p.ndim != 3:
        raise ConfigError(f"MC/ensemble samples must have shape (S, n, C); got shape {p.shape}.")
    return p


def _entr(p: np.ndarray) -> np.ndarray:
    """Elementwise ``-p log p`` with ``0 log 0 = 0`` (one ufunc pass)."""
    from scipy.special import entr  # lazy: scipy.special costs ~0.2 s at ``import alloop`` (measured)

    out: np.ndarray = entr(p)
    return out


def _samples_of(ctx: SelectionContext) -> np.ndarray:
    assert ctx.samples is not None, "engine only offers strategies whose needs are met"
    return ctx.samples


def _votes(p: np.ndarray) -> np.ndarray:
    """``(n, C)`` counts of the members whose most probable class is each class (ties: lower class)."""
    s, n, c = p.shape
    hard = p.argmax(axis=2)  # (S, n)
    counts = np.zeros((n, c), dtype=np.int64)
    for row in hard:
        counts[np.arange(n), row] += 1
    return counts


# ---- pure score functions -------------------------------------------------------------------------------
def predictive_entropy_scores(samples: np.ndarray) -> np.ndarray:
    """Entropy of the mean prediction ``H[mean_s p_s]`` (total uncertainty)."""
    p = _as_samples(samples)
    return _entr(p.mean(axis=0)).sum(axis=1)


def bald_scores(samples: np.ndarray) -> np.ndarray:
    """Mutual information ``H[mean_s p_s] - mean_s H[p_s]`` between label and parameters, clipped at 0.

    The clip only removes rounding noise: the quantity is non-negative by Jensen's inequality.
    """
    p = _as_samples(samples)
    total = _entr(p.mean(axis=0)).sum(axis=1)
    aleatoric = _entr(p).sum(axis=2).mean(axis=0)
    return np.maximum(total - aleatoric, 0.0)


def variation_ratios_scores(samples: np.ndarray) -> np.ndarray:
    """``1 - (members voting for the modal class) / S`` on the members' hard votes."""
    p = _as_samples(samples)
    return 1.0 - _votes(p).max(axis=1) / p.shape[0]


def mean_std_scores(samples: np.ndarray) -> np.ndarray:
    """Mean over classes of the (population) standard deviation of ``p_c`` over the samples."""
    p = _as_samples(samples)
    return p.std(axis=0).mean(axis=1)


def power_bald_scores(samples: np.ndarray, rng: np.random.Generator, *, power: float = 1.0) -> np.ndarray:
    """Gumbel keys ``power·log BALD + G``: their top-k samples records with probability ∝ BALD**power."""
    return gumbel_top_k_keys(bald_scores(samples), rng, mode="power", power=power)


# ---- BatchBALD ------------------------------------------------------------------------------------------
def _exact_joint(p: np.ndarray, batch: list[int]) -> np.ndarray:
    """``(S, C**t)``: for each sample, the probability of every configuration of the batch's labels."""
    joint = np.ones((p.shape[0], 1))
    for i in batch:
        joint = (joint[:, :, None] * p[:, i, None, :]).reshape(p.shape[0], -1)
    return joint


def _exact_joint_entropies(joint: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``H(y_batch, y_x)`` for every record x of ``p``, summing over all ``C**t · C`` configurations."""
    s, n, c = p.shape
    out = np.empty(n)
    step = max(1, _CHUNK // (joint.shape[1] * c))
    for lo in range(0, n, step):
        block = p[:, lo : lo + step, :].reshape(s, -1)
        q = (joint.T @ block / s).reshape(joint.shape[1], -1, c)  # (J, b, C)
        out[lo : lo + step] = _entr(q).sum(axis=(0, 2))
    return out


def _sample_configs(p: np.ndarray, batch: list[int], m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``m`` label configurations of the batch drawn ancestrally (sample s, then y_i ~ p_s(y_i)).

    Returns ``log_w`` ``(m, S)``, ``log prod_i p_s'(ŷ_i)`` for every sample s', and the drawn samples ``(m,)``.
    """
    who = rng.integers(p.shape[0], size=m)
    log_w = np.zeros((m, p.shape[0]))
    for i in batch:
        log_w = _extend_configs(log_w, who, p, i, rng)
    return log_w, who


def _extend_configs(log_w: np.ndarray, who: np.ndarray, p: np.ndarray, i: int, rng: np.random.Generator) -> np.ndarray:
    """Add record ``i`` to the sampled configurations: draw ŷ_i ~ p_who(y_i) and update the weights."""
    rows = p[who, i, :]  # (m, C)
    cum = np.cumsum(rows, axis=1)
    u = rng.random(who.size) * cum[:, -1]
    y = np.minimum((cum < u[:, None]).sum(axis=1), p.shape[2] - 1)
    with np.errstate(divide="ignore"):
        return log_w + np.log(p[:, i, :][:, y].T)


def _sampled_joint_entropies(log_w: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Monte-Carlo ``H(y_batch, y_x)`` (Kirsch et al. 2019, section 3.3) from sampled batch configurations.

    ``H ≈ -1/M sum_m sum_y p(ŷ_m, y) / p(ŷ_m) · log p(ŷ_m, y)``, with ``p(ŷ_m, y) = 1/S sum_s w_ms p_s(y)``;
    each row of weights is rescaled by its maximum (kept in log space) so that long batches do not underflow.
    """
    s, n, c = p.shape
    m = log_w.shape[0]
    top = log_w.max(axis=1)
    w = np.exp(log_w - top[:, None])  # (m, S), max 1 per row
    inv_r = s / w.sum(axis=1)  # e^top / p(ŷ_m)
    out = np.empty(n)
    step = max(1, _CHUNK // (m * c))
    for lo in range(0, n, step):
        block = p[:, lo : lo + step, :].reshape(s, -1)
        q = (w @ block / s).reshape(m, -1, c)  # (m, b, C): p(ŷ_m, y) / e^top
        # -q log(q e^top) = entr(q) - q·top, weighted by e^top / p(ŷ_m)
        per_m = _entr(q).sum(axis=2) - q.sum(axis=2) * top[:, None]  # (m, b)
        out[lo : lo + step] = inv_r @ per_m / m
    return out


def joint_entropies(
    samples: np.ndarray,
    batch: list[int] | tuple[int, ...],
    *,
    max_configs: int = 2**14,
    mc_samples: int = 2048,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """``H(y_batch, y_x)`` for every candidate x: exact while ``C**(len(batch)+1) <= max_configs``, else sampled.

    The sampled estimate draws ``mc_samples`` configurations of the batch from ``rng``.
    """
    p = _as_samples(samples)
    c = p.shape[2]
    if c ** (len(batch) + 1) <= max_configs:
        return _exact_joint_entropies(_exact_joint(p, list(batch)), p)
    log_w, _ = _sample_configs(p, list(batch), mc_samples, rng if rng is not None else np.random.default_rng(0))
    return _sampled_joint_entropies(log_w, p)


def batch_bald_select(
    samples: np.ndarray,
    k: int,
    *,
    max_configs: int = 2**14,
    mc_samples: int = 2048,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Positions of a batch of ``min(k, n)`` records chosen greedily by joint mutual information.

    Step t adds the x maximising ``H(y_batch, y_x) - E_s H(y_x | s)`` (the conditional entropies of the
    records already in the batch are a constant). The first pick is BALD's top-1. The joint entropy is
    exact while the configurations of the batch plus one candidate number at most ``max_configs``; past
    that, ``mc_samples`` configurations are sampled (from ``rng``) and extended one record at a time.
    """
    p = _as_samples(samples)
    s, n, c = p.shape
    k = min(int(k), n)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    gen = rng if rng is not None else np.random.default_rng(0)
    conditional = _entr(p).sum(axis=2).mean(axis=0)  # E_s H(y_x | s), (n,)
    chosen = [int(top_k(bald_scores(p), 1)[0])]
    free = np.ones(n, dtype=bool)
    free[chosen[0]] = False
    joint: np.ndarray | None = _exact_joint(p, chosen)
    log_w: np.ndarray | None = None
    who: np.ndarray | None = None
    while len(chosen) < k:
        if joint is not None and joint.shape[1] * c > max_configs:
            log_w, who = _sample_configs(p, chosen, mc_samples, gen)
            joint = None
        rest = np.flatnonzero(free)  # only the records not yet in the batch are scored
        gain = np.full(n, np.nan)  # NaN ranks last in top_k
        if joint is not None:
            gain[rest] = _exact_joint_entropies(joint, p[:, rest, :]) - conditional[rest]
        else:
            assert log_w is not None
            gain[rest] = _sampled_joint_entropies(log_w, p[:, rest, :]) - conditional[rest]
        pick = int(top_k(gain, 1)[0])
        chosen.append(pick)
        free[pick] = False
        if joint is not None:
            joint = (joint[:, :, None] * p[:, pick, None, :]).reshape(s, -1)
        else:
            assert log_w is not None and who is not None
            log_w = _extend_configs(log_w, who, p, pick, gen)
    return np.asarray(chosen, dtype=np.int64)


# ---- EPIG -----------------------------------------------------------------------------------------------
def epig_scores(samples: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Expected predictive information gain ``mean_j I(y; y*_j)`` against target samples ``(S, m, C)``.

    ``I(y; y*) = H(y) + H(y*) - H(y, y*)`` with ``p(y, y*) = 1/S sum_s p_s(y|x) p_s(y*|x*)``, clipped at 0.
    """
    p = _as_samples(samples)
    t = _as_samples(targets)
    s, n, c = p.shape
    m, ct = t.shape[1], t.shape[2]
    h_x = _entr(p.mean(axis=0)).sum(axis=1)
    h_t = _entr(t.mean(axis=0)).sum(axis=1).mean()
    tflat = t.reshape(s, -1)  # (S, m·C*)
    h_joint = np.empty(n)
    step = max(1, _CHUNK // (c * m * ct))
    for lo in range(0, n, step):
        block = p[:, lo : lo + step, :]
        b = block.shape[1]
        q = block.reshape(s, -1).T @ tflat / s  # (b·C, m·C*)
        h_joint[lo : lo + step] = _entr(q).reshape(b, c, m, ct).sum(axis=(1, 3)).mean(axis=1)
    return np.maximum(h_x + h_t - h_joint, 0.0)


# ---- strategies -----------------------------------------------------------------------------------------
class _SampleStrategy(Strategy):
    needs: ClassVar[frozenset[str]] = frozenset({"samples"})
    family: ClassVar[str] = "bayesian"

    def __init__(self) -> None:
        pass

    def _scores(self, samples: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def score(self, ctx: SelectionContext) -> np.ndarray:
        return self._scores(_samples_of(ctx))


class BALD(_SampleStrategy):
    """BALD: label the records with the highest mutual information between label and model (Houlsby et al. 2011).

    Computed on MC-dropout or ensemble samples as ``H[mean p] - mean H[p]`` (Gal et al. 2017).
    """

    name = "bald"

    def _scores(self, samples: np.ndarray) -> np.ndarray:
        return bald_scores(samples)


class PredictiveEntropy(_SampleStrategy):
    """Predictive entropy: label the records whose mean sample prediction has the highest entropy (Gal et al. 2017)."""

    name = "predictive-entropy"

    def _scores(self, samples: np.ndarray) -> np.ndarray:
        return predictive_entropy_scores(samples)


class VariationRatios(_SampleStrategy):
    """Variation ratios: label the records whose samples vote least often for their modal class (Freeman 1965).

    ``1 - (votes for the modal class) / S`` on the samples' hard predictions (Gal et al. 2017).
    """

    name = "variation-ratios"

    def _scores(self, samples: np.ndarray) -> np.ndarray:
        return variation_ratios_scores(samples)


class MeanStd(_SampleStrategy):
    """Mean std: label the records whose class probabilities vary most across samples (Kampffmeyer et al. 2016).

    The mean over classes of the population standard deviation over samples.
    """

    name = "mean-std"

    def _scores(self, samples: np.ndarray) -> np.ndarray:
        return mean_std_scores(samples)


class PowerBALD(Strategy):
    """PowerBALD: sample a batch with probability ∝ BALD**power, Gumbel top-k (Kirsch et al. 2023).

    Stochastic batch acquisition: randomising the top-k of a single-point score avoids the redundant
    batches that plain top-k picks, at the cost of BALD. ``power=0`` is uniform sampling; a large
    ``power`` tends to BALD's top-k.
    """

    name = "power-bald"
    needs: ClassVar[frozenset[str]] = frozenset({"samples"})
    family: ClassVar[str] = "bayesian"

    def __init__(self, *, power: float = 1.0, seed: int | None = None) -> None:
        self.power = power
        self.seed = seed

    def score(self, ctx: SelectionContext) -> np.ndarray:
        power = check_float(self.power, "power", "PowerBALD", low=0.0)
        return power_bald_scores(_samples_of(ctx), ctx.rng(self.seed), power=power)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"power": 4.0, "seed": 3}]


class BatchBALD(Strategy):
    """BatchBALD: choose the batch greedily by joint mutual information with the model (Kirsch et al. 2019).

    The joint entropy is exact while the label configurations of the batch (plus one candidate), ``C**m``,
    stay at most ``max_configs``; beyond that it is estimated from ``mc_samples`` sampled configurations
    (seeded). Each added record costs one pass over the candidates: ``O(n·k·S·C·min(C**m, mc_samples))``.
    ``score`` is BALD, the criterion of the first pick.

    >>> import numpy as np
    >>> from alloop.strategies import SelectionContext
    >>> a, b, c, d = [0.95, 0.05], [0.05, 0.95], [0.9, 0.1], [0.1, 0.9]
    >>> # records 10 and 11 are identical; 12 is less disputed but splits the four samples differently
    >>> samples = np.array([[a, a, c], [a, a, d], [b, b, c], [b, b, d]])  # (S=4, n=3, C=2)
    >>> ctx = SelectionContext(ids=np.array([10, 11, 12]), index=np.arange(3), samples=samples)
    >>> BALD().select(ctx, 2).tolist(), BatchBALD().select(ctx, 2).tolist()
    ([10, 11], [10, 12])
    """

    name = "batch-bald"
    needs: ClassVar[frozenset[str]] = frozenset({"samples"})
    family: ClassVar[str] = "bayesian"
    batch_aware: ClassVar[bool] = True
    cost: ClassVar[str] = "O(n·k)"

    def __init__(self, *, max_configs: int = 2**14, mc_samples: int = 2048, seed: int | None = None) -> None:
        self.max_configs = max_configs
        self.mc_samples = mc_samples
        self.seed = seed

    def score(self, ctx: SelectionContext) -> np.ndarray:
        return bald_scores(_samples_of(ctx))

    def select(self, ctx: SelectionContext, k: int) -> np.ndarray:
        cap = check_int(self.max_configs, "max_configs", "BatchBALD", min=1)
        m = check_int(self.mc_samples, "mc_samples", "BatchBALD", min=1)
        k = check_int(k, "k", "BatchBALD.select", min=0)
        pos = batch_bald_select(_samples_of(ctx), k, max_configs=cap, mc_samples=m, rng=ctx.rng(self.seed))
        return ctx.ids[pos]

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        # a small cap reaches the Monte-Carlo branch within the conformance contexts
        return [{}, {"max_configs": 16, "mc_samples": 64, "seed": 5}]


class EPIG(Strategy):
    """EPIG: label the records that most inform predictions on target inputs (Bickford Smith et al. 2023).

    ``EPIG(x) = E_{x*}[I(y; y* | x, x*)]``, estimated from the samples as the mean over target inputs of
    the mutual information of the joint predictive ``p(y, y*) = 1/S sum_s p_s(y|x) p_s(y*|x*)``.

    ``target`` selects the target inputs. ``"pool"`` (the default) approximates the target input
    distribution by the pool itself: ``n_target`` candidates drawn uniformly without replacement (seeded)
    stand in for ``p*(x*)``. This is EPIG for "the deployment data look like the pool"; it still favours
    information that matters for predictions over BALD's information about every parameter. A tuple of
    candidate ids uses exactly those records as targets (ids that are not current candidates, e.g. already
    labeled ones, are ignored since their samples are not in the context).
    """

    name = "epig"
    needs: ClassVar[frozenset[str]] = frozenset({"samples"})
    family: ClassVar[str] = "bayesian"

    def __init__(self, *, target: str | tuple[Any, ...] = "pool", n_target: int = 100, seed: int | None = None) -> None:
        self.target = target
        self.n_target = n_target
        self.seed = seed

    def _target_positions(self, ctx: SelectionContext) -> np.ndarray:
        if isinstance(self.target, tuple):
            wanted = set(self.target)
            pos = np.array([i for i, v in enumerate(ctx.ids.tolist()) if v in wanted], dtype=np.int64)
            if pos.size == 0:
                raise ConfigError(
                    f"The 'target' parameter of EPIG must be 'pool' or a tuple of candidate ids. Got {self.target!r}, "
                    "none of which is a current candidate."
                )
            return pos
        if self.target != "pool":
            raise ConfigError(
                f"The 'target' parameter of EPIG must be 'pool' or a tuple of candidate ids. Got {self.target!r}."
            )
        m = check_int(self.n_target, "n_target", "EPIG", min=1)
        if m >= ctx.n:
            return np.arange(ctx.n)
        return np.sort(ctx.rng(self.seed).choice(ctx.n, size=m, replace=False))

    def score(self, ctx: SelectionContext) -> np.ndarray:
        samples = _samples_of(ctx)
        return epig_scores(samples, samples[:, self._target_positions(ctx), :])

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"n_target": 7, "seed": 2}]
