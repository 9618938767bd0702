"""Warm start and incremental training: retrain from scratch only when it is worth it.

:class:`WarmStartLearner` wraps any learner and decides, loop by loop, how to train:

* ``full``        the base learner's own training from scratch (the first loop, every ``full_every`` loops,
                  when the labeled set has grown ``full_growth``-fold since the last full retrain, and
                  whenever validation drift exceeds ``drift_threshold``);
* ``incremental`` estimators with ``partial_fit`` (SGDClassifier, scikit-learn MLPClassifier, naive Bayes):
                  ``warm_epochs`` passes over the new records plus replayed old ones;
* ``warm``        estimators with a ``warm_start`` parameter continue from the previous solution (convex
                  models such as LogisticRegression refit on everything from the old coefficients; PyTorch
                  networks — the library's ``mlp`` or a :class:`~alloop.loop.TorchLearner` — get the
                  shrink-and-perturb reset and ``warm_epochs`` epochs on new + replayed records).

The report says what was done: ``TrainReport.mode``, ``epochs``, ``n_records`` (distinct records used) and
``extra["records_seen"]`` (records × epochs), ``extra["reason"]``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from alloop._validation import check_float, check_int
from alloop.errors import ConfigError
from alloop.loop._learner import TrainReport
from alloop.metadata import Snapshot

__all__ = ["WarmStartLearner", "WarmStartPolicy", "choose_mode", "replay_sample"]


class WarmStartPolicy:
    """How a :class:`WarmStartLearner` trains.

    full_every       a full retrain every this many trainings (None: only the first and on drift)
    full_growth      a full retrain when the labeled set has grown by this factor since the last full retrain
                     (a geometric schedule: full retrains at n, g·n, g²·n, … cost about g/(g-1) final full
                     trainings in all; None: off)
    drift_threshold  full retrain when ``drift_metric`` on the user's held-out data falls more than this
                     below its value after the last full retrain (None: no drift check, no extra evaluate)
    drift_metric     the metric of ``learner.evaluate()`` to watch
    warm_epochs      passes over new + replayed records in warm (networks) or incremental mode
    replay           old records replayed per new record (a ratio; at least one record per class is kept)
    shrink, perturb  shrink-and-perturb coefficients for PyTorch networks (Ash & Adams 2020)
    incremental      use ``partial_fit`` when the estimator has it (else ``warm_start``)
    seed             seeds the replay draws and the perturbation
    """

    def __init__(
        self,
        *,
        full_every: int | None = 5,
        full_growth: float | None = None,
        drift_threshold: float | None = 0.02,
        drift_metric: str = "accuracy",
        warm_epochs: int = 5,
        replay: float = 1.0,
        shrink: float = 0.4,
        perturb: float = 0.1,
        incremental: bool = True,
        seed: int = 0,
    ) -> None:
        self.full_every = full_every
        self.full_growth = full_growth
        self.drift_threshold = drift_threshold
        self.drift_metric = drift_metric
        self.warm_epochs = warm_epochs
        self.replay = replay
        self.shrink = shrink
        self.perturb = perturb
        self.incremental = incremental
        self.seed = seed

    def validate(self) -> WarmStartPolicy:
        owner = "WarmStartPolicy"
        check_int(self.full_every, "full_every", owner, min=1, allow_none=True)
        if self.full_growth is not None:
            check_float(self.full_growth, "full_growth", owner, low=1.0, allow_none=True)
            if float(self.full_growth) <= 1.0:
                raise ConfigError(
                    f"The 'full_growth' parameter of {owner} must be a float > 1 or None. Got {self.full_growth!r}."
                )
        check_float(self.drift_threshold, "drift_threshold", owner, low=0.0, allow_none=True)
        check_int(self.warm_epochs, "warm_epochs", owner, min=1)
        check_float(self.replay, "replay", owner, low=0.0)
        check_float(self.shrink, "shrink", owner, low=0.0, high=1.0)
        check_float(self.perturb, "perturb", owner, low=0.0)
        check_int(self.seed, "seed", owner, min=0)
        if not isinstance(self.drift_metric, str):
            raise ConfigError(
                f"The 'drift_metric' parameter of {owner} must be a metric name. Got {self.drift_metric!r}."
            )
        return self

    def __repr__(self) -> str:
        return "WarmStartPolicy(" + ", ".join(f"{k}={v!r}" for k, v in vars(self).items()) + ")"


def choose_mode(
    *,
    has_model: bool,
    warm_start: bool,
    trainings_since_full: int,
    capability: str,
    full_every: int | None,
    full_growth: float | None = None,
    n_labeled: int = 0,
    n_at_full: int = 0,
) -> str:
    """``full``, ``warm`` or ``incremental`` for the next training (a pure rule).

    ``capability`` is what the learner can do: ``"incremental"``, ``"warm"`` or ``"full"``; with
    ``full_growth`` a full retrain is due once ``n_labeled >= full_growth * n_at_full`` (labeled records now
    and at the last full retrain).

    >>> choose_mode(has_model=True, warm_start=True, trainings_since_full=1, capability="warm", full_every=3)
    'warm'
    >>> choose_mode(has_model=True, warm_start=True, trainings_since_full=2, capability="warm", full_every=3)
    'full'
    >>> choose_mode(has_model=True, warm_start=True, trainings_since_full=1, capability="warm", full_every=None,
    ...             full_growth=2.0, n_labeled=40, n_at_full=20)
    'full'
    """
    if not (has_model and warm_start) or capability == "full":
        return "full"
    if full_every is not None and trainings_since_full + 1 >= full_every:
        return "full"
    if full_growth is not None and n_labeled >= float(full_growth) * n_at_full:
        return "full"
    return capability


def replay_sample(
    new: np.ndarray, old: np.ndarray, y_old: np.ndarray, y_new: np.ndarray, *, ratio: float, rng: np.random.Generator
) -> np.ndarray:
    """Positions (into ``old``) of replayed records: ``ceil(ratio·|new|)`` uniform draws, plus one record of
    every class absent from the new records and the draw, so a warm fit sees every class it knows.

    >>> rng = np.random.default_rng(0)
    >>> pos = replay_sample(np.array([9]), np.array([1, 2, 3]), np.array([0, 0, 1]), np.array([0]), ratio=0, rng=rng)
    >>> np.array([0, 0, 1])[pos].tolist()
    [1]
    """
    n_old = int(old.size)
    m = min(n_old, math.ceil(ratio * int(new.size)))
    pos = np.sort(rng.choice(n_old, size=m, replace=False)) if m else np.empty(0, dtype=np.int64)
    have = set(np.asarray(y_new).tolist()) | set(np.asarray(y_old)[pos].tolist())
    extra = []
    for c in sorted(set(np.asarray(y_old).tolist()) - have, key=str):
        members = np.flatnonzero(np.asarray(y_old) == c)
        extra.append(int(members[rng.integers(members.size)]))
    return np.union1d(pos, np.asarray(extra, dtype=np.int64)).astype(np.int64)


def _capability(base: Any, policy: WarmStartPolicy) -> str:
    model = getattr(base, "model", None)
    from alloop.compute._torch import is_torch_module

    if is_torch_module(model) and hasattr(base, "epochs"):
        return "warm"  # a TorchLearner
    estimator = model if model is not None else getattr(base, "estimator", None)
    if estimator is None or not hasattr(estimator, "get_params"):
        return "warm"  # a function learner: pass warm_start through, it decides
    if policy.incremental and hasattr(estimator, "partial_fit"):
        return "incremental"
    if "warm_start" in estimator.get_params():
        return "warm"
    return "full"


class WarmStartLearner:
    """A learner that warm-starts or trains incrementally between periodic full retrains.

    >>> import numpy as np
    >>> from sklearn.linear_model import SGDClassifier
    >>> from alloop.loop import SklearnLearner
    >>> X = np.array([[0.0, 0.0], [1.0, 1.0]] * 5); y = np.array([0, 1] * 5)
    >>> learner = WarmStartLearner(SklearnLearner(SGDClassifier(loss="log_loss", random_state=0), X),
    ...                            WarmStartPolicy(full_every=3, drift_threshold=None))
    >>> [learner.train(np.arange(n), y[:n], warm_start=True).mode for n in (4, 6, 8, 10)]
    ['full', 'incremental', 'incremental', 'full']
    """

    def __init__(self, base: Any, policy: WarmStartPolicy | None = None) -> None:
        self.base = base
        self.policy = policy

    def __getattr__(self, name: str) -> Any:  # add_data, forget, dataset_state, ... of the base learner
        if name.startswith("_") or name in ("base", "policy"):
            raise AttributeError(name)
        return getattr(self.__dict__["base"], name)

    def _state(self) -> dict[str, Any]:
        st = self.__dict__.get("_st")
        if st is None:
            st = {
                "trained": {},
                "since_full": 0,
                "n_at_full": 0,
                "ref": None,
                "metrics": None,
                "calls": 0,
                "has_model": False,
            }
            self.__dict__["_st"] = st
        return st

    def _policy(self) -> WarmStartPolicy:
        policy = WarmStartPolicy() if self.policy is None else self.policy
        if not isinstance(policy, WarmStartPolicy):
            raise ConfigError(f"The 'policy' parameter of WarmStartLearner must be a WarmStartPolicy. Got {policy!r}.")
        return policy.validate()

    # ---- train -------------------------------------------------------------------------------------
    def train(self, ids: np.ndarray, y: np.ndarray, *, warm_start: bool) -> TrainReport:
        policy = self._policy()
        st = self._state()
        t0 = time.perf_counter()
        ids = np.asarray(ids)
        y = np.asarray(y)
        capability = _capability(self.base, policy)
        mode = choose_mode(
            has_model=st["has_model"],
            warm_start=warm_start,
            trainings_since_full=st["since_full"],
            capability=capability,
            full_every=policy.full_every,
            full_growth=policy.full_growth,
            n_labeled=int(ids.size),
            n_at_full=int(st["n_at_full"]),
        )
        known = getattr(getattr(self.base, "model", None), "classes_", None)
        if mode != "full" and known is not None and not set(np.unique(y).tolist()) <= set(np.asarray(known).tolist()):
            mode = "full"  # a class the model has never seen: its output layer must grow
        rng = np.random.default_rng([policy.seed, st["calls"]])
        st["calls"] += 1
        reason = "first" if not st["has_model"] else ("requested" if not warm_start else "schedule")
        if mode != "full":
            report = self._warm(ids, y, mode, policy, rng)
            reason = mode
            if policy.drift_threshold is not None:
                metrics = {k: float(v) for k, v in self.base.evaluate().items()}
                st["metrics"] = metrics
                value, ref = metrics.get(policy.drift_metric), st["ref"]
                if value is not None and ref is not None and value < ref - float(policy.drift_threshold):
                    mode, reason = (
                        "full",
                        f"drift: {policy.drift_metric} {value:.4f} < {ref:.4f} - {policy.drift_threshold}",
                    )
        if mode == "full":
            base_report = self.base.train(ids, y, warm_start=False)
            seen = int(ids.size) * int(base_report.epochs or 1)
            report = TrainReport(
                mode="full",
                n_records=int(ids.size),
                epochs=base_report.epochs,
                extra={**base_report.extra, "records_seen": seen},
            )
            st["since_full"] = 0
            st["n_at_full"] = int(ids.size)
            st["metrics"] = None
            if policy.drift_threshold is not None:
                st["metrics"] = {k: float(v) for k, v in self.base.evaluate().items()}
                st["ref"] = st["metrics"].get(policy.drift_metric)
        else:
            st["since_full"] += 1
        st["has_model"] = True
        st["trained"] = dict.fromkeys(ids.tolist(), True)
        extra = {**report.extra, "reason": reason, "n_labeled": int(ids.size)}
        return TrainReport(
            mode=report.mode,
            n_records=report.n_records,
            epochs=report.epochs,
            seconds=time.perf_counter() - t0,
            extra=extra,
        )

    def _split(self, ids: np.ndarray, y: np.ndarray, policy: WarmStartPolicy, rng: np.random.Generator) -> np.ndarray:
        """Positions (into ``ids``) of the new records plus the replayed old ones."""
        trained = self._state()["trained"]
        is_new = np.fromiter((v not in trained for v in ids.tolist()), dtype=bool, count=ids.size)
        new_pos, old_pos = np.flatnonzero(is_new), np.flatnonzero(~is_new)
        replay = replay_sample(new_pos, old_pos, y[old_pos], y[new_pos], ratio=float(policy.replay), rng=rng)
        return np.sort(np.concatenate([new_pos, old_pos[replay]]))

    def _warm(
        self, ids: np.ndarray, y: np.ndarray, mode: str, policy: WarmStartPolicy, rng: np.random.Generator
    ) -> TrainReport:
        from alloop.compute._torch import is_torch_module, shrink_perturb

        base = self.base
        epochs = int(policy.warm_epochs)
        model = getattr(base, "model", None)
        seed = int(rng.integers(2**31))
        if is_torch_module(model) and hasattr(base, "epochs"):  # TorchLearner: the user's module
            pos = self._split(ids, y, policy, rng)
            shrink_perturb(model, shrink=float(policy.shrink), perturb=float(policy.perturb), seed=seed)
            saved = base.epochs
            base.epochs = epochs
            try:
                base.train(ids[pos], y[pos], warm_start=True)
            finally:
                base.epochs = saved
            return TrainReport(
                mode="warm", n_records=int(pos.size), epochs=epochs, extra={"records_seen": int(pos.size) * epochs}
            )
        if model is None or not hasattr(model, "get_params") or not hasattr(base, "rows"):
            rep = base.train(ids, y, warm_start=True)
            return TrainReport(
                mode=rep.mode,
                n_records=rep.n_records,
                epochs=rep.epochs,
                extra={**rep.extra, "records_seen": rep.n_records * int(rep.epochs or 1)},
            )
        X = base.X
        if mode == "incremental":
            pos = self._split(ids, y, policy, rng)
            rows = base.rows(ids[pos])
            classes = getattr(model, "classes_", None)
            for _ in range(epochs):
                order = rng.permutation(pos.size)
                model.partial_fit(X[rows[order]], y[pos][order], classes=classes)
            return TrainReport(
                mode="incremental",
                n_records=int(pos.size),
                epochs=epochs,
                extra={"records_seen": int(pos.size) * epochs},
            )
        params = model.get_params()
        net = getattr(model, "net_", None)
        if is_torch_module(net) and "epochs" in params:  # the library's mlp/cnn: shrink-perturb, few epochs
            pos = self._split(ids, y, policy, rng)
            shrink_perturb(net, shrink=float(policy.shrink), perturb=float(policy.perturb), seed=seed)
            model.set_params(warm_start=True, epochs=epochs)
            try:
                model.fit(X[base.rows(ids[pos])], y[pos])
            finally:
                model.set_params(warm_start=params["warm_start"], epochs=params["epochs"])
            return TrainReport(
                mode="warm", n_records=int(pos.size), epochs=epochs, extra={"records_seen": int(pos.size) * epochs}
            )
        # a convex model (LogisticRegression, ...): refit on everything, starting from the previous solution
        model.set_params(warm_start=True)
        try:
            model.fit(X[base.rows(ids)], y)
        finally:
            model.set_params(warm_start=params["warm_start"])
        n_iter = getattr(model, "n_iter_", None)
        iters = int(np.max(n_iter)) if n_iter is not None else None
        return TrainReport(
            mode="warm", n_records=int(ids.size), epochs=iters, extra={"records_seen": int(ids.size) * int(iters or 1)}
        )

    # ---- infer / evaluate ----------------------------------------------------------------------------
    def infer(self, ids: np.ndarray) -> Snapshot:
        snap: Snapshot = self.base.infer(ids)
        return snap

    def evaluate(self) -> dict[str, float]:
        st = self._state()
        if st["metrics"] is not None:  # already computed for the drift check after this training
            out: dict[str, float] = dict(st["metrics"])
            return out
        return {k: float(v) for k, v in self.base.evaluate().items()}
