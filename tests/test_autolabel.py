"""Autolabeling: confidence bounds, threshold choice, AutoLabeler split and drift tightening."""

import math

import numpy as np
import pytest
from scipy import stats

from alloop.errors import ConfigError, DataError, StateError
from alloop.labeling.autolabel import (
    AutoLabeler,
    batch_shortfall,
    choose_threshold,
    clopper_pearson_lower,
    wilson_lower,
)


def test_bounds_match_scipy_exact_interval_and_wilson_formula():
    for k, n in [(95, 100), (59, 60), (10, 40)]:
        # a two-sided 90 % exact interval has the one-sided 95 % lower bound as its lower end
        ref = stats.binomtest(k, n).proportion_ci(confidence_level=0.90, method="exact").low
        assert float(clopper_pearson_lower(k, n, 0.95)) == pytest.approx(ref, abs=1e-10)
        ref_w = stats.binomtest(k, n).proportion_ci(confidence_level=0.90, method="wilson").low
        assert float(wilson_lower(k, n, 0.95)) == pytest.approx(ref_w, abs=1e-10)
    assert float(clopper_pearson_lower(0, 10)) == 0.0


def test_choose_threshold_takes_the_largest_set_that_passes_and_stops_at_first_failure():
    conf = np.r_[np.linspace(0.999, 0.95, 300), np.linspace(0.9, 0.5, 200)]
    correct = np.r_[np.ones(300, bool), np.arange(200) % 3 == 0]
    c = choose_threshold(conf, correct, target=0.95)
    assert c.n_above >= 300 and c.lower_bound >= 0.95 and c.threshold <= 0.95
    assert c.coverage == pytest.approx(c.n_above / 500)
    # an early error stops the fixed sequence; "none" scans past it
    correct2 = correct.copy()
    correct2[[60, 61, 62]] = False
    fixed = choose_threshold(conf, correct2, target=0.95)
    free = choose_threshold(conf, correct2, target=0.95, correction="none")
    assert fixed.n_above < 63 <= free.n_above
    nothing = choose_threshold(np.full(10, 0.9), np.ones(10, bool), target=0.95)
    assert math.isinf(nothing.threshold) and nothing.n_above == 0
    with pytest.raises(DataError, match="same length"):
        choose_threshold([0.9], [True, False])
    with pytest.raises(ConfigError, match="'correction'"):
        choose_threshold([0.9], [True], correction="holm")


def test_the_auto_labels_reach_the_target_in_at_least_95_percent_of_draws():
    # a calibrated model: P(correct | confidence c) = c
    met = 0
    for seed in range(200):
        rng = np.random.default_rng(seed)
        conf_val, conf_new = rng.beta(8, 1, 300), rng.beta(8, 1, 2000)
        c = choose_threshold(conf_val, rng.random(300) < conf_val, target=0.9)
        above = conf_new >= c.threshold
        achieved = np.mean(rng.random(above.sum()) < conf_new[above]) if above.any() else 1.0
        met += achieved >= 0.9
    assert met >= 190


def _model(rng, n, sharp=0.1):
    probs = rng.dirichlet(np.full(4, sharp), size=n)
    y = np.array([rng.choice(4, p=p) for p in probs])
    return probs, y


def test_autolabeler_splits_and_tightens_when_accuracy_drifts():
    rng = np.random.default_rng(0)
    probs, y = _model(rng, 600)
    al = AutoLabeler(target=0.9, min_checked=50, classes=["a", "b", "c", "d"])
    with pytest.raises(StateError, match="fit"):
        al.mask(probs)
    al.fit(probs, np.array(["a", "b", "c", "d"])[y])
    t0 = al.threshold_
    assert 0 < t0 < 1
    ids = np.arange(1000, 1600)
    events, rest = al.split(ids, probs)
    assert len(events) + len(rest) == 600 and all(e.source == "auto" and e.posterior >= t0 for e in events)
    assert {e.label for e in events} <= {"a", "b", "c", "d"}
    # later: the model got worse — the labels people check are right only 70 % of the time
    later, _ = _model(rng, 400)
    later = later[later.max(axis=1) >= t0]
    wrong = rng.random(later.shape[0]) > 0.7
    human = np.where(wrong, (later.argmax(axis=1) + 1) % 4, later.argmax(axis=1))
    raised = al.observe(later, np.array(["a", "b", "c", "d"])[human])
    assert raised and al.threshold_ > t0
    assert al.history_[-1]["achieved"] < 0.9
    with pytest.raises(DataError, match="not one of AutoLabeler 'classes'"):
        al.observe(later[:1], ["zebra"])


def test_autolabeler_keeps_its_threshold_while_accuracy_holds():
    rng = np.random.default_rng(1)
    probs, y = _model(rng, 600)
    al = AutoLabeler(target=0.9).fit(probs, y)
    t0 = al.threshold_
    later, y_later = _model(rng, 600)
    m = al.mask(later)
    assert not al.observe(later[m], y_later[m])
    assert al.threshold_ == t0 and al.achieved_accuracy >= 0.9


def _calibrated(seed, n):
    """A calibrated model's (confidence, correct): most records sure, a tail of doubtful ones."""
    rng = np.random.default_rng(seed)
    conf = np.where(rng.random(n) < 0.5, rng.uniform(0.985, 1.0, n), rng.uniform(0.4, 0.985, n))
    return conf, rng.random(n) < conf


def test_batch_shortfall_is_the_binomial_tail_below_target():
    assert float(batch_shortfall(0.99, 200, 0.98)) == pytest.approx(stats.binom.cdf(195, 200, 0.99))
    assert float(batch_shortfall(1.0, 50, 0.98)) == 0.0
    assert float(batch_shortfall(0.5, 1, 0.9)) == pytest.approx(0.5)  # one record: wrong half the time


def test_pooling_calibration_across_loops_certifies_a_target_one_slice_cannot():
    probs_of = lambda conf: np.c_[conf, 1 - conf]  # noqa: E731 - class 0 predicted, right when y == 0
    loops = [_calibrated(s, 300) for s in range(4)]
    al = AutoLabeler(target=0.98).fit(probs_of(loops[0][0]), np.where(loops[0][1], 0, 1))
    assert math.isinf(al.threshold_) and al.n_calibration == 300
    for conf, ok in loops[1:]:
        al.update(probs_of(conf), np.where(ok, 0, 1))
    assert al.n_calibration == 1200 and al.threshold_ < 1.0 and al.choice_.lower_bound >= 0.98
    al.fit(probs_of(loops[0][0]), np.where(loops[0][1], 0, 1))  # a new model: the pool restarts
    assert al.n_calibration == 300 and math.isinf(al.threshold_)


def test_batch_aware_threshold_keeps_the_achieved_batch_accuracy_above_target():
    target, batch, met_region, met_batch, higher = 0.98, 400, 0, 0, 0
    for seed in range(100):
        conf, ok = _calibrated(seed, 3000)
        new_conf, new_ok = _calibrated(1000 + seed, batch)
        region = choose_threshold(conf, ok, target=target)
        aware = choose_threshold(conf, ok, target=target, batch_size=batch)
        higher += aware.threshold >= region.threshold
        for choice, in_ in ((region, "region"), (aware, "batch")):
            m = new_conf >= choice.threshold
            met = (not m.any()) or new_ok[m].mean() >= target
            met_region += met and in_ == "region"
            met_batch += met and in_ == "batch"
    assert higher == 100
    assert met_batch >= 95, met_batch
    assert met_region < met_batch  # a region bound alone leaves finite batches below target too often
    with pytest.raises(ConfigError, match="'batch_size'"):
        choose_threshold([0.9], [True], batch_size=0)
