"""One switch for every compute-saving part: ``Campaign(compute_saving=True | "off" | ComputePolicy(...))``.

:class:`ComputePolicy` holds the settings of warm start (:class:`WarmStartPolicy`), inference skipping
(:class:`InferencePolicy`) and the per-loop cap on inferred records (``candidates``);
:func:`resolve_compute` turns the user's flag into a policy or None; :func:`choose_inference` picks the
unlabeled records to re-infer this loop from the engine's History (used by ``Campaign`` and
``alloop simulate``). ``True``/``"on"`` picks the policy of the model class and pool size (:func:`auto_policy`).

>>> resolve_compute("off") is None, resolve_compute(True).full_every
(True, 5)
>>> resolve_compute("on", model="mlp", n_pool=200_000).candidates
0.1
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from alloop._validation import check_bool, check_float, check_int
from alloop.compute._skip import InferencePolicy, plan_inference
from alloop.compute._warm import WarmStartPolicy
from alloop.errors import ConfigError

__all__ = [
    "LARGE_POOL",
    "ComputePolicy",
    "auto_policy",
    "choose_inference",
    "is_network",
    "plan_features",
    "resolve_compute",
]

_ON = (True, "on", "true")
_OFF = (False, None, "off", "false")

#: unlabeled records from which a pool counts as large for ``compute_saving="on"``: only then are inference
#: skipping and the candidate cap switched on. Below it a whole inference pass costs less than one training
#: of the library's models (measured, docs/compute.md: digits, 1,257 records, inference 0.2 of 7 CPU s per
#: run with the ``mlp``; a 10 % cap re-infers a few hundred records and can miss the records worth labeling),
#: while at 200,000 records inference was 60-75 % of the from-scratch run's CPU.
LARGE_POOL = 20_000


class ComputePolicy:
    """Settings of compute-saving active learning (docs/compute.md).

    warm_start       warm-start / incremental training between full retrains (WarmStartLearner)
    full_every, full_growth, drift_threshold, warm_epochs, replay, shrink, perturb  see :class:`WarmStartPolicy`; shrink
                     1.0 / perturb 0.0 (plain continuation) by default: with a few warm epochs, shrink 0.4 /
                     perturb 0.1 collapsed the ``mlp`` on digits (docs/compute.md)
    skip_inference   re-infer only records whose prediction may still change the selection (plan_inference)
    refresh_every, margin_gap, protect_quantile       see :class:`InferencePolicy`
    candidates       at most this many previously inferred records are re-inferred per loop (an int, or a
                     fraction of the unlabeled pool; None = no cap): the most uncertain by their last
                     prediction, plus a uniform ``random_slice`` of the cap from the others (never-inferred
                     records are always inferred). With a cap, the every-r-loops refresh becomes
                     probabilistic: a record outside the uncertain part is drawn with probability ≥ slice/rest
    seed             seeds the replay draws, perturbations and the random slice
    """

    def __init__(
        self,
        *,
        warm_start: bool = True,
        full_every: int | None = 5,
        full_growth: float | None = None,
        drift_threshold: float | None = 0.02,
        warm_epochs: int = 5,
        replay: float = 1.0,
        shrink: float = 1.0,
        perturb: float = 0.0,
        skip_inference: bool = True,
        refresh_every: int = 4,
        margin_gap: float = 0.1,
        protect_quantile: float = 0.2,
        candidates: int | float | None = None,
        random_slice: float = 0.1,
        seed: int = 0,
    ) -> None:
        self.warm_start = warm_start
        self.full_every = full_every
        self.full_growth = full_growth
        self.drift_threshold = drift_threshold
        self.warm_epochs = warm_epochs
        self.replay = replay
        self.shrink = shrink
        self.perturb = perturb
        self.skip_inference = skip_inference
        self.refresh_every = refresh_every
        self.margin_gap = margin_gap
        self.protect_quantile = protect_quantile
        self.candidates = candidates
        self.random_slice = random_slice
        self.seed = seed

    def validate(self) -> ComputePolicy:
        owner = "ComputePolicy"
        for name in ("warm_start", "skip_inference"):
            check_bool(getattr(self, name), name, owner)
        c = self.candidates
        if c is not None and (isinstance(c, bool) or not isinstance(c, int | float) or c <= 0):
            raise ConfigError(
                f"The 'candidates' parameter of {owner} must be an int >= 1, a fraction in (0, 1] or None. Got {c!r}."
            )
        if isinstance(c, float) and c > 1:
            raise ConfigError(f"The 'candidates' parameter of {owner} as a fraction must be in (0, 1]. Got {c!r}.")
        check_float(self.random_slice, "random_slice", owner, low=0.0, high=1.0)
        check_int(self.seed, "seed", owner, min=0)
        self.warm_policy().validate()
        self.inference_policy().validate()
        return self

    def warm_policy(self) -> WarmStartPolicy:
        return WarmStartPolicy(
            full_every=self.full_every,
            full_growth=self.full_growth,
            drift_threshold=self.drift_threshold,
            warm_epochs=self.warm_epochs,
            replay=self.replay,
            shrink=self.shrink,
            perturb=self.perturb,
            seed=self.seed,
        )

    def inference_policy(self) -> InferencePolicy:
        return InferencePolicy(
            refresh_every=self.refresh_every, margin_gap=self.margin_gap, protect_quantile=self.protect_quantile
        )

    def to_config(self) -> dict[str, Any]:
        """Plain JSON-ready settings (stored with a campaign)."""
        return dict(vars(self))

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ComputePolicy:
        return cls(**config)

    def __repr__(self) -> str:
        return "ComputePolicy(" + ", ".join(f"{k}={v!r}" for k, v in vars(self).items()) + ")"


def is_network(model: Any) -> bool:
    """True when ``model`` trains as a network: the library's torch models (``mlp``, ``cnn``) given by name,
    as an estimator or inside a learner (``ModelLearner``, ``SklearnLearner``, ``WarmStartLearner``), and a
    :class:`~alloop.loop.TorchLearner`. torch is not imported.

    >>> is_network("mlp"), is_network("logreg"), is_network(None)
    (True, False, False)
    """
    from alloop.compute._warm import WarmStartLearner
    from alloop.loop._torch import TorchLearner
    from alloop.models import TorchClassifier, build_model

    if isinstance(model, str):
        try:
            model = build_model(model)
        except ConfigError:
            return False
    while isinstance(model, WarmStartLearner):
        model = model.base
    if isinstance(model, TorchLearner | TorchClassifier):
        return True
    return isinstance(getattr(model, "estimator", None), TorchClassifier)  # SklearnLearner, ModelLearner


def auto_policy(*, network: bool, n_pool: int | None) -> ComputePolicy:
    """The policy of ``compute_saving="on"`` for a model class and an unlabeled pool of ``n_pool`` records
    (docs/compute.md, "Policy per model class"; chosen on tuning seeds only).

    networks  warm phases of 5 epochs on all labeled records (``replay=100``), a full retrain each time the
              labeled set doubles, no drift check
    others    a full retrain every 5 trainings or on validation drift > 0.02 (convex models warm-start from
              the previous solution; estimators without ``warm_start``/``partial_fit`` retrain fully anyway)
    large pools (``n_pool >= LARGE_POOL``)  inference skipping with a refresh every 8 loops and a cap of 10 %
              of the unlabeled pool on re-inferred records; smaller pools: neither (they would save nothing)

    >>> p = auto_policy(network=True, n_pool=1_000)
    >>> p.full_every, p.full_growth, p.replay, p.skip_inference, p.candidates
    (None, 2.0, 100.0, False, None)
    """
    large = n_pool is not None and int(n_pool) >= LARGE_POOL
    reduce: dict[str, Any] = {"skip_inference": large, "refresh_every": 8, "candidates": 0.1 if large else None}
    if network:
        return ComputePolicy(
            full_every=None, full_growth=2.0, drift_threshold=None, warm_epochs=5, replay=100.0, **reduce
        )
    return ComputePolicy(full_every=5, drift_threshold=0.02, **reduce)


def resolve_compute(
    value: Any, owner: str = "Campaign", *, model: Any = None, n_pool: int | None = None
) -> ComputePolicy | None:
    """``True``/``"on"`` → :func:`auto_policy` for ``model`` (a model name, estimator or learner; None: not a
    network) and ``n_pool`` unlabeled records (None: a small pool); ``False``/``"off"``/None → None; a
    policy (or its stored config dict) → itself, validated.

    >>> resolve_compute(ComputePolicy(candidates=0.1)).candidates
    0.1
    """
    if isinstance(value, ComputePolicy):
        return value.validate()
    if isinstance(value, dict):
        return ComputePolicy.from_config(value).validate()
    key = value.lower() if isinstance(value, str) else value
    if isinstance(key, str | bool | type(None)) and key in _OFF:
        return None
    if isinstance(key, str | bool) and key in _ON:
        return auto_policy(network=is_network(model), n_pool=n_pool).validate()
    raise ConfigError(
        f"The 'compute_saving' parameter of {owner} must be True, False, 'on', 'off' or a ComputePolicy. Got {value!r}."
    )


def _cap(candidates: int | float | None, n: int) -> int | None:
    if candidates is None:
        return None
    if isinstance(candidates, float):
        return max(1, math.ceil(candidates * n))
    return int(candidates)


def plan_features(history: Any, idx: np.ndarray) -> dict[str, np.ndarray]:
    """The History features :func:`plan_inference` reads, for the pool positions ``idx`` (read directly:
    ``History.features`` computes every feature, which costs more than the inference it saves)."""
    idx = np.asarray(idx, dtype=np.int64)
    inside = idx < int(history.capacity)
    safe = np.where(inside, idx, 0)
    return {
        "count": np.where(inside, history.count[safe], 0).astype(np.float64),
        "margin_mean": np.asarray(history.mean["margin"][safe], dtype=np.float64),
        "margin_var": np.asarray(history.variance("margin")[safe], dtype=np.float64),
        "last_flip_loop": history.last_flip_loop[safe].astype(np.float64),
        "last_loop": np.where(inside, history.last_loop[safe], -1).astype(np.float64),
    }


def lowest_k(key: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` smallest values of ``key``, ties to the lower position, in ascending position
    order: the first ``k`` of a stable argsort as a set, in O(n) (a partition, no full sort).

    >>> lowest_k(np.array([3.0, 1.0, 2.0, 1.0, 5.0]), 3).tolist()
    [1, 2, 3]
    >>> lowest_k(np.array([1.0, 0.0, 1.0, 1.0]), 2).tolist()
    [0, 1]
    >>> lowest_k(np.array([np.nan, 2.0, np.nan]), 2).tolist()
    [0, 1]
    """
    key = np.asarray(key)
    if k <= 0:
        return np.empty(0, dtype=np.int64)
    if k >= key.size:
        return np.arange(key.size, dtype=np.int64)
    kth = np.partition(key, k - 1)[k - 1]
    if kth != kth:  # NaN sorts last: every number, then the first NaNs
        below, ties = np.flatnonzero(~np.isnan(key)), np.flatnonzero(np.isnan(key))
    else:
        below, ties = np.flatnonzero(key < kth), np.flatnonzero(key == kth)
    ties = ties[: k - below.size]
    return np.sort(np.concatenate([below, ties]))


def choose_inference(history: Any, idx: np.ndarray, loop: int, policy: ComputePolicy) -> np.ndarray:
    """The positions (a subset of ``idx``, in order) to infer at ``loop``; ``history`` is the engine's History.

    Records History has never seen are always inferred; with ``skip_inference`` the others follow
    :func:`plan_inference`; ``candidates`` then caps the previously inferred ones.
    """
    idx = np.asarray(idx, dtype=np.int64)
    if loop <= 0 or idx.size == 0 or not (policy.skip_inference or policy.candidates is not None):
        return idx
    feats = plan_features(history, idx)
    never = feats["last_loop"] < 0
    if policy.skip_inference:
        need = plan_inference(feats, loop, policy.inference_policy())
    else:
        need = np.ones(idx.size, dtype=bool)
    cap = _cap(policy.candidates, idx.size)
    rest = np.flatnonzero(need & ~never)
    if cap is not None and rest.size > cap:
        std = np.sqrt(np.maximum(np.asarray(feats["margin_var"], dtype=np.float64), 0.0))
        key = np.asarray(feats["margin_mean"], dtype=np.float64)[rest] - 2.0 * std[rest]
        n_slice = min(rest.size, math.ceil(float(policy.random_slice) * cap))
        first = lowest_k(key, cap - n_slice)
        top, others = rest[first], np.delete(rest, first)
        rng = np.random.default_rng([int(policy.seed), int(loop)])
        drawn = rng.choice(others, size=min(n_slice, others.size), replace=False) if others.size else others
        keep = np.zeros(idx.size, dtype=bool)
        keep[never] = True
        keep[top] = True
        keep[drawn] = True
        need = keep
    else:
        need = need | never
    return idx[need]
