"""When to stop: stopping criteria as pure functions over per-loop data, and a monitor that checks them all.

Criteria (formulas in ``docs/engine.md``):

* ``stabilizing-predictions`` — Cohen's kappa between the predictions of consecutive models on a fixed stop
  set stays ≥ ``kappa`` for ``kappa_window`` consecutive comparisons (Bloodgood & Vijay-Shanker 2009);
* ``max-uncertainty`` — the largest least-confidence ``1 - max_c p`` over the unlabeled pool < threshold;
* ``overall-uncertainty`` — the mean least-confidence over the unlabeled pool < threshold (Zhu et al. 2008);
* ``metric-plateau`` — a held-out metric improved by less than ``plateau_delta`` over the last
  ``plateau_window`` loops;
* ``budget`` — the number of labels reached the budget.

>>> import numpy as np
>>> cohen_kappa(np.array([0, 1, 1, 0]), np.array([0, 1, 1, 1]))
0.5
>>> m = StopMonitor(kappa=0.9, kappa_window=2)
>>> p = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
>>> [m.update(loop, ids=np.arange(3), probs=p) for loop in range(4)]
[[], [], ['stabilizing-predictions'], []]
>>> m.fired
{'stabilizing-predictions': 2}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from alloop._validation import check_float, check_int
from alloop.errors import DataError

__all__ = [
    "CRITERIA",
    "StopMonitor",
    "budget_reached",
    "cohen_kappa",
    "first_stable_run",
    "max_uncertainty",
    "metric_plateau",
    "overall_uncertainty",
]

#: Names of the criteria a :class:`StopMonitor` evaluates, in report order.
CRITERIA = ("stabilizing-predictions", "max-uncertainty", "overall-uncertainty", "metric-plateau", "budget")


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa between two label vectors: ``(p_o - p_e) / (1 - p_e)``; 1.0 when both are one constant.

    >>> cohen_kappa(np.array([0, 0, 1]), np.array([0, 0, 1]))
    1.0
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape:
        raise DataError(f"cohen_kappa needs two label vectors of one shape; got {a.shape} and {b.shape}.")
    if a.size == 0:
        return float("nan")
    labels, inv = np.unique(np.concatenate([a, b]), return_inverse=True)
    ia, ib = inv[: a.size], inv[a.size :]
    po = float(np.mean(ia == ib))
    pa = np.bincount(ia, minlength=labels.size) / a.size
    pb = np.bincount(ib, minlength=labels.size) / b.size
    pe = float(np.dot(pa, pb))
    if pe >= 1.0:
        return 1.0 if po >= 1.0 else 0.0
    return (po - pe) / (1.0 - pe)


def first_stable_run(values: Sequence[float], threshold: float, window: int) -> int | None:
    """Position of the value that completes the first run of ``window`` consecutive values ≥ ``threshold``.

    >>> first_stable_run([0.5, 0.99, 0.995, 0.999], 0.99, 2)
    2
    """
    run = 0
    for i, v in enumerate(values):
        run = run + 1 if v == v and v >= threshold else 0
        if run >= window:
            return i
    return None


def max_uncertainty(probs: np.ndarray) -> float:
    """Largest least-confidence ``1 - max_c p(c|x)`` over the rows (0 for no rows)."""
    p = np.asarray(probs, dtype=np.float64)
    return float((1.0 - p.max(axis=1)).max()) if p.shape[0] else 0.0


def overall_uncertainty(probs: np.ndarray) -> float:
    """Mean least-confidence ``1 - max_c p(c|x)`` over the rows (0 for no rows)."""
    p = np.asarray(probs, dtype=np.float64)
    return float((1.0 - p.max(axis=1)).mean()) if p.shape[0] else 0.0


def metric_plateau(values: Sequence[float], window: int, min_delta: float) -> bool:
    """True when the best of the last ``window`` values beats the best before them by less than ``min_delta``.

    Needs ``window + 1`` values; NaNs are ignored.

    >>> metric_plateau([0.6, 0.8, 0.801, 0.802], window=2, min_delta=0.005)
    True
    >>> metric_plateau([0.6, 0.7, 0.8], window=2, min_delta=0.005)
    False
    """
    v = np.asarray([x for x in values if x == x], dtype=np.float64)
    if v.size < window + 1:
        return False
    return bool(v[-window:].max() - v[:-window].max() < min_delta)


def budget_reached(n_labeled: float | None, budget: float | None) -> bool:
    """True when ``n_labeled >= budget`` (never without a budget)."""
    return budget is not None and n_labeled is not None and n_labeled >= budget


@dataclass(frozen=True)
class StopEvent:
    """One criterion's value at one loop: ``value`` (kappa, uncertainty, metric gain) and whether it holds."""

    loop: int
    criterion: str
    value: float
    holds: bool


class StopMonitor:
    """Evaluates every stopping criterion each loop and remembers which fired and when.

    kappa, kappa_window       stabilizing predictions: kappa ≥ ``kappa`` for ``kappa_window`` comparisons
    stop_set_size             the stop set: at most this many ids, drawn (with ``seed``) at the first update
                              and fixed; later loops compare only the stop-set ids they still predict
    max_uncertainty           threshold on the largest least-confidence over the probs given (None = off)
    overall_uncertainty       threshold on the mean least-confidence (None = off)
    metric, plateau_window, plateau_delta   held-out metric plateau (needs ``metrics``)
    budget                    label budget (needs ``n_labeled``; None = off)

    ``update(loop, ids=…, probs=…, metrics=…, n_labeled=…)`` returns the criteria that fired for the first
    time at that loop; ``fired`` maps each fired criterion to its first loop; ``events`` keeps every value.
    """

    def __init__(
        self,
        *,
        kappa: float = 0.99,
        kappa_window: int = 3,
        stop_set_size: int = 2000,
        max_uncertainty: float | None = 0.2,
        overall_uncertainty: float | None = 0.05,
        metric: str = "accuracy",
        plateau_window: int = 3,
        plateau_delta: float = 0.005,
        budget: int | None = None,
        seed: int = 0,
    ) -> None:
        self.kappa = kappa
        self.kappa_window = kappa_window
        self.stop_set_size = stop_set_size
        self.max_uncertainty = max_uncertainty
        self.overall_uncertainty = overall_uncertainty
        self.metric = metric
        self.plateau_window = plateau_window
        self.plateau_delta = plateau_delta
        self.budget = budget
        self.seed = seed
        self.fired: dict[str, int] = {}
        self.events: list[StopEvent] = []
        self._stop_ids: np.ndarray | None = None
        self._prev: tuple[np.ndarray, np.ndarray] | None = None
        self._kappas: list[float] = []
        self._metric_values: list[float] = []
        self._checked = False

    def _check(self) -> None:
        if self._checked:
            return
        owner = "StopMonitor"
        check_float(self.kappa, "kappa", owner, low=-1.0, high=1.0)
        check_int(self.kappa_window, "kappa_window", owner, min=1)
        check_int(self.stop_set_size, "stop_set_size", owner, min=1)
        check_float(self.max_uncertainty, "max_uncertainty", owner, low=0.0, high=1.0, allow_none=True)
        check_float(self.overall_uncertainty, "overall_uncertainty", owner, low=0.0, high=1.0, allow_none=True)
        check_int(self.plateau_window, "plateau_window", owner, min=1)
        check_float(self.plateau_delta, "plateau_delta", owner, low=0.0)
        check_int(self.budget, "budget", owner, min=1, allow_none=True)
        check_int(self.seed, "seed", owner, min=0)
        self._checked = True

    def _stop_set(self, ids: np.ndarray) -> np.ndarray:
        if self._stop_ids is None:
            size = min(int(self.stop_set_size), ids.size)
            pick = np.sort(np.random.default_rng(self.seed).choice(ids.size, size=size, replace=False))
            self._stop_ids = ids[pick]
        return self._stop_ids

    def _record(self, loop: int, name: str, value: float, holds: bool, out: list[str]) -> None:
        self.events.append(StopEvent(loop, name, float(value), bool(holds)))
        if holds and name not in self.fired:
            self.fired[name] = loop
            out.append(name)

    def update(
        self,
        loop: int,
        *,
        ids: Any = None,
        probs: np.ndarray | None = None,
        metrics: Mapping[str, float] | None = None,
        n_labeled: float | None = None,
    ) -> list[str]:
        """Feed one loop's predictions (``ids`` with ``probs`` rows), metrics and label count."""
        self._check()
        out: list[str] = []
        if probs is not None:
            p = np.asarray(probs, dtype=np.float64)
            if ids is None:
                raise DataError("StopMonitor.update: give 'ids' with 'probs' so the stop set can be matched.")
            id_arr = np.asarray(ids)
            if id_arr.shape != (p.shape[0],):
                raise DataError(
                    f"StopMonitor.update: 'ids' has {id_arr.size} entries for {p.shape[0]} rows of 'probs'."
                )
            stop = self._stop_set(id_arr)
            keep = np.isin(id_arr, stop)
            cur = (id_arr[keep], np.argmax(p[keep], axis=1))
            if self._prev is not None:
                common, ia, ib = np.intersect1d(self._prev[0], cur[0], return_indices=True)
                k = cohen_kappa(self._prev[1][ia], cur[1][ib]) if common.size else float("nan")
                self._kappas.append(k)
                w = int(self.kappa_window)
                stable = first_stable_run(self._kappas[-w:], float(self.kappa), w) is not None
                self._record(loop, "stabilizing-predictions", k, stable, out)
            self._prev = cur
            if self.max_uncertainty is not None:
                v = max_uncertainty(p)
                self._record(loop, "max-uncertainty", v, v < float(self.max_uncertainty), out)
            if self.overall_uncertainty is not None:
                v = overall_uncertainty(p)
                self._record(loop, "overall-uncertainty", v, v < float(self.overall_uncertainty), out)
        if metrics is not None and self.metric in metrics:
            self._metric_values.append(float(metrics[self.metric]))
            vals = self._metric_values
            w = int(self.plateau_window)
            gain = float(max(vals[-w:]) - max(vals[:-w])) if len(vals) > w else float("nan")
            self._record(loop, "metric-plateau", gain, metric_plateau(vals, w, float(self.plateau_delta)), out)
        if self.budget is not None and n_labeled is not None:
            self._record(loop, "budget", float(n_labeled), budget_reached(n_labeled, self.budget), out)
        return out

    def summary(self) -> dict[str, int | None]:
        """Each criterion → the first loop it fired at (None = never, or not evaluated)."""
        return {name: self.fired.get(name) for name in CRITERIA}
