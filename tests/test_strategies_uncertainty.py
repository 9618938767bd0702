"""Reference values for the uncertainty variants: ratio, gini, calibrated least confidence, expected cost, soft-*."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy.special import softmax

from alloop.errors import ConfigError
from alloop.strategies import SelectionContext, make_strategy
from alloop.strategies.uncertainty import (
    calibrated_least_confidence_scores,
    entropy_scores,
    expected_cost_scores,
    gini_scores,
    gumbel_top_k_keys,
    least_confidence_scores,
    margin_scores,
    ratio_scores,
)


def _ctx(probs, seed=0, loop=0):
    n = len(probs)
    ids = np.arange(100, 100 + n)
    return SelectionContext(ids=ids, index=np.arange(n), probs=np.asarray(probs), seed=seed, loop=loop)


def test_existing_scores_are_unchanged():
    p = np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8], [1.0, 0.0, 0.0]])
    assert least_confidence_scores(p).tolist() == [0.5, 0.19999999999999996, 0.0]
    assert margin_scores(p).tolist() == [-0.2, -0.7000000000000001, -1.0]
    expected = -np.array([sum(v * np.log(v) for v in row if v > 0) for row in p])
    np.testing.assert_allclose(entropy_scores(p), expected, rtol=1e-15)


def test_ratio_against_sorted_rows():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(6), size=200).astype(np.float32)
    s = np.sort(p.astype(np.float64), axis=1)
    assert np.array_equal(ratio_scores(p), s[:, -2] / s[:, -1])
    assert ratio_scores(np.array([[0.5, 0.5], [0.0, 0.0]])).tolist() == [1.0, 1.0]
    assert ratio_scores(np.ones((2, 1))).tolist() == [0.0, 0.0]
    ids = make_strategy("ratio").select(_ctx([[0.6, 0.4], [0.9, 0.1], [0.5, 0.5]]), 2)
    assert ids.tolist() == [102, 100]


def test_gini_hand_computed():
    p = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    assert gini_scores(p).tolist() == pytest.approx([0.5, 1 - 0.04 - 0.09 - 0.25, 0.0])


def test_calibrated_least_confidence_matches_softmax_of_scaled_logs():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(4) * 0.5, size=100)
    p[0] = [1.0, 0.0, 0.0, 0.0]
    for t in (0.5, 1.0, 3.0):
        with np.errstate(divide="ignore"):
            ref = 1.0 - softmax(np.log(p) / t, axis=1).max(axis=1)
        np.testing.assert_allclose(calibrated_least_confidence_scores(p, t), ref, atol=1e-12)
    np.testing.assert_allclose(calibrated_least_confidence_scores(p, 1.0), least_confidence_scores(p), atol=1e-12)
    # temperature changes the ranking: a flat tail outranks a single strong runner-up
    q = np.array([[0.6, 0.4, 0.0, 0.0], [0.62, 0.127, 0.127, 0.126]])
    assert least_confidence_scores(q).argmax() == 0
    assert calibrated_least_confidence_scores(q, 3.0).argmax() == 1
    message = "The 'temperature' parameter of CalibratedLeastConfidence must be a number >= 1e-06. Got 0."
    with pytest.raises(ConfigError, match=message):
        make_strategy("calibrated-least-confidence(temperature=0)").score(_ctx(q))


def test_expected_cost_against_brute_force():
    rng = np.random.default_rng(2)
    p = rng.dirichlet(np.ones(3), size=50)
    cost = np.array([[0, 1, 4], [2, 0, 1], [8, 3, 0]], dtype=float)
    brute = [min(sum(row[i] * cost[i, j] for i in range(3)) for j in range(3)) for row in p]
    np.testing.assert_allclose(expected_cost_scores(p, cost), brute, rtol=1e-12)
    np.testing.assert_allclose(expected_cost_scores(p), least_confidence_scores(p), atol=1e-15)
    strat = make_strategy(f"expected-cost(cost_matrix={tuple(map(tuple, cost.tolist()))!r})")
    assert strat.spec.startswith("expected-cost(cost_matrix=((0.0, 1.0, 4.0)")
    assert np.array_equal(strat.score(_ctx(p)), expected_cost_scores(p, cost))


@pytest.mark.parametrize(
    "cost", [((0, 1), (1, 0)), ((0, -1, 1), (1, 0, 1), (1, 1, 0)), (("a",),), ((0, np.inf, 1),) * 3]
)
def test_expected_cost_rejects_bad_tables(cost):
    p = np.full((2, 3), 1 / 3)
    with pytest.raises(ConfigError, match="The 'cost_matrix' parameter of ExpectedCost must be a 3x3 table"):
        make_strategy("expected-cost").__class__(cost_matrix=cost).score(_ctx(p))


def _without_replacement_probs(w):
    """P(first two picks = (i, j)) when sampling without replacement proportionally to w."""
    total = w.sum()
    return {(i, j): w[i] / total * w[j] / (total - w[i]) for i, j in itertools.permutations(range(len(w)), 2)}


@pytest.mark.parametrize(("mode", "kw", "transform"), [
    ("power", {"power": 2.0}, lambda s: s**2.0),
    ("softmax", {"temperature": 0.5}, lambda s: np.exp(s / 0.5)),
])
def test_gumbel_top_k_samples_without_replacement(mode, kw, transform):
    scores = np.array([0.1, 0.4, 0.7, 0.2])
    w = transform(scores)
    exact = _without_replacement_probs(w)
    rng = np.random.default_rng(0)
    draws = 40000
    keys = gumbel_top_k_keys(np.tile(scores, (draws, 1)), rng, mode=mode, **kw)  # one draw per row
    first_two = np.argsort(-keys, axis=1)[:, :2]
    counts: dict[tuple[int, int], int] = {}
    for i, j in first_two.tolist():
        counts[(i, j)] = counts.get((i, j), 0) + 1
    for pair, prob in exact.items():
        sd = np.sqrt(prob * (1 - prob) / draws)
        assert abs(counts.get(pair, 0) / draws - prob) < 5 * sd + 1e-3, pair


def test_soft_strategies_are_seeded_and_follow_their_score():
    rng = np.random.default_rng(4)
    p = rng.dirichlet(np.ones(3), size=60)
    for name, base in (("soft-margin", 1.0 + margin_scores(p)), ("soft-entropy", entropy_scores(p)),
                       ("soft-least-confidence", least_confidence_scores(p))):
        a = make_strategy(f"{name}(seed=1)").select(_ctx(p, loop=3), 10)
        assert np.array_equal(a, make_strategy(f"{name}(seed=1)").select(_ctx(p, loop=3), 10))
        assert not np.array_equal(a, make_strategy(f"{name}(seed=1)").select(_ctx(p, loop=4), 10))
        # a very high power makes the sample the deterministic top-k of the base score
        greedy = make_strategy(f"{name}(power=400.0)").select(_ctx(p), 5)
        assert set(greedy.tolist()) == set((100 + np.argsort(-base, kind="stable")[:5]).tolist())
    zero = np.array([[1.0, 0.0], [0.5, 0.5]])  # zero weight: finite key, picked last
    keys = make_strategy("soft-least-confidence").score(_ctx(zero))
    assert np.isfinite(keys).all() and keys[0] < keys[1]


@pytest.mark.parametrize(("spec", "message"), [
    ("soft-margin(mode='hard')", "The 'mode' parameter of SoftMargin must be one of 'power', 'softmax'. Got 'hard'."),
    ("soft-entropy(power=-1)", "The 'power' parameter of SoftEntropy must be a number >= 0.0. Got -1."),
    ("soft-least-confidence(temperature=0)", "The 'temperature' parameter of SoftLeastConfidence must be a number"),
])
def test_soft_parameters_are_validated_at_first_use(spec, message):
    strat = make_strategy(spec)  # building never fails
    with pytest.raises(ConfigError, match=message.replace("(", "\\(").replace(")", "\\)").replace(".", "\\.")):
        strat.score(_ctx([[0.5, 0.5]]))
