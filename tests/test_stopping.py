"""Stopping criteria: the pure functions and the monitor that fires each one once, at the right loop."""

from __future__ import annotations

import numpy as np
import pytest

from alloop.engine.stopping import (
    CRITERIA,
    StopMonitor,
    budget_reached,
    cohen_kappa,
    first_stable_run,
    max_uncertainty,
    metric_plateau,
    overall_uncertainty,
)
from alloop.errors import ConfigError, DataError


def test_cohen_kappa_matches_scikit_learn():
    from sklearn.metrics import cohen_kappa_score

    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.integers(0, 4, size=50)
        b = np.where(rng.random(50) < 0.7, a, rng.integers(0, 4, size=50))
        assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
    assert cohen_kappa(np.array([1, 1]), np.array([1, 1])) == 1.0  # one constant label: full agreement
    assert cohen_kappa(np.array(["a", "b"]), np.array(["a", "b"])) == 1.0
    with pytest.raises(DataError, match="one shape"):
        cohen_kappa(np.array([1]), np.array([1, 2]))


def test_pure_criteria():
    p = np.array([[0.9, 0.1], [0.6, 0.4]])
    assert max_uncertainty(p) == pytest.approx(0.4) and overall_uncertainty(p) == pytest.approx(0.25)
    assert max_uncertainty(np.empty((0, 2))) == 0.0
    assert first_stable_run([0.99, 0.5, 0.99, 0.995, 0.999], 0.99, 3) == 4
    assert first_stable_run([0.99, float("nan"), 0.99], 0.99, 2) is None
    assert not metric_plateau([0.5, 0.5], window=2, min_delta=0.01)  # too few values
    assert metric_plateau([0.5, 0.9, 0.9, 0.9], window=2, min_delta=0.01)
    assert budget_reached(10, 10) and not budget_reached(9, 10) and not budget_reached(100, None)


def test_monitor_fires_each_criterion_once_at_the_first_loop_it_holds():
    m = StopMonitor(
        kappa=0.9, kappa_window=2, max_uncertainty=0.3, overall_uncertainty=0.15, plateau_window=2, budget=40, seed=0
    )
    ids = np.arange(100)
    rng = np.random.default_rng(1)
    base = rng.integers(0, 3, size=100)
    fired = {}
    for loop in range(8):
        sure = min(0.5 + 0.1 * loop, 0.98)  # the model grows surer every loop
        pred = base.copy()
        if loop < 3:  # predictions still change a lot in early loops
            pred = rng.integers(0, 3, size=100)
        probs = np.full((100, 3), (1 - sure) / 2)
        probs[np.arange(100), pred] = sure
        acc = [0.5, 0.7, 0.8, 0.85, 0.852, 0.853, 0.853, 0.86][loop]
        for name in m.update(loop, ids=ids, probs=probs, metrics={"accuracy": acc}, n_labeled=10 + 5 * loop):
            fired[name] = loop
    # kappa(2→3) is low, (3→4) and (4→5) are 1 → fires at 5; LC = 1 - sure
    assert fired == {
        "stabilizing-predictions": 5,
        "max-uncertainty": 3,
        "overall-uncertainty": 4,
        "metric-plateau": 5,
        "budget": 6,
    }
    assert m.fired == fired and m.summary() == {name: fired[name] for name in CRITERIA}
    kappas = [e.value for e in m.events if e.criterion == "stabilizing-predictions"]
    assert len(kappas) == 7 and kappas[-1] == 1.0


def test_stop_set_is_fixed_and_matched_by_id():
    m = StopMonitor(stop_set_size=5, kappa=0.99, kappa_window=1, max_uncertainty=None, overall_uncertainty=None)
    ids = np.array([f"r{i}" for i in range(20)], dtype=object)
    probs = np.tile([[0.8, 0.2]], (20, 1))
    m.update(0, ids=ids, probs=probs)
    stop = set(m._stop_ids.tolist())
    assert len(stop) == 5
    # later loops see the rows in another order, fewer of them, and other rows disagree: only the stop set counts
    keep = np.array([i for i in range(20) if f"r{i}" in stop][1:] + [i for i in range(20) if f"r{i}" not in stop])
    order = keep[::-1]
    flipped = np.where(np.isin(ids[order], list(stop))[:, None], probs[order], probs[order][:, ::-1])
    assert m.update(1, ids=ids[order], probs=flipped) == ["stabilizing-predictions"]
    assert [e.criterion for e in m.events] == ["stabilizing-predictions"]


def test_parameters_are_validated_at_first_use():
    m = StopMonitor(kappa_window=0)
    with pytest.raises(ConfigError, match="'kappa_window' parameter of StopMonitor must be an int >= 1. Got 0"):
        m.update(0, metrics={"accuracy": 0.5})
    with pytest.raises(DataError, match="give 'ids'"):
        StopMonitor().update(0, probs=np.array([[1.0, 0.0]]))
