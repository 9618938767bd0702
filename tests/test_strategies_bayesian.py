"""Bayesian and committee strategies on samples: reference values from hand counts, scipy and brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

from alloop.errors import ConfigError
from alloop.strategies import SelectionContext, make_strategy, top_k
from alloop.strategies.bayesian import (
    BALD,
    EPIG,
    BatchBALD,
    PowerBALD,
    bald_scores,
    batch_bald_select,
    epig_scores,
    joint_entropies,
    mean_std_scores,
    power_bald_scores,
    predictive_entropy_scores,
    variation_ratios_scores,
)
from alloop.strategies.committee import (
    consensus_margin_scores,
    js_divergence_scores,
    kl_consensus_scores,
    vote_entropy_scores,
    vote_margin_scores,
)
from alloop.strategies.uncertainty import margin_scores


def _samples(s: int, n: int, c: int, seed: int = 0, alpha: float = 0.7) -> np.ndarray:
    return np.random.default_rng([seed, s, n, c]).dirichlet(np.full(c, alpha), size=(s, n))


def _ctx(samples: np.ndarray, seed: int = 0, loop: int = 0) -> SelectionContext:
    n = samples.shape[1]
    return SelectionContext(ids=np.arange(100, 100 + n), index=np.arange(n), samples=samples, seed=seed, loop=loop)


# ---- BALD and friends ---------------------------------------------------------------------------------
def test_bald_hand_computed_two_samples():
    samples = np.array([[[1.0, 0.0], [0.8, 0.2], [0.5, 0.5]], [[0.0, 1.0], [0.4, 0.6], [0.5, 0.5]]])

    def h(*p: float) -> float:
        return -sum(v * math.log(v) for v in p if v > 0)

    expected = [
        h(0.5, 0.5) - (h(1.0, 0.0) + h(0.0, 1.0)) / 2,  # = log 2: total disagreement, no aleatoric part
        h(0.6, 0.4) - (h(0.8, 0.2) + h(0.4, 0.6)) / 2,
        0.0,  # both passes agree: no information about the parameters
    ]
    np.testing.assert_allclose(bald_scores(samples), expected, atol=1e-12)
    assert expected[0] == pytest.approx(math.log(2))
    np.testing.assert_allclose(predictive_entropy_scores(samples), [h(0.5, 0.5), h(0.6, 0.4), h(0.5, 0.5)])


@pytest.mark.parametrize(("c", "dtype"), [(2, np.float64), (3, np.float32), (100, np.float64)])
def test_bald_and_predictive_entropy_match_scipy(c, dtype):
    p = _samples(6, 25, c).astype(dtype)
    mean = p.astype(np.float64).mean(axis=0)
    total = entropy(mean, axis=1)
    aleatoric = np.mean([entropy(p[s].astype(np.float64), axis=1) for s in range(p.shape[0])], axis=0)
    np.testing.assert_allclose(bald_scores(p), np.maximum(total - aleatoric, 0), atol=1e-12)
    np.testing.assert_allclose(predictive_entropy_scores(p), total, atol=1e-12)
    assert (bald_scores(p) <= total + 1e-12).all()


def test_variation_ratios_hand_count_and_mean_std_definition():
    # 4 passes over 2 records; votes: record 0 -> 0,0,1,0 ; record 1 -> 2,1,0,2 (C=3)
    rows = {
        0: [[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.5, 0.4, 0.1]],
        1: [[0.1, 0.2, 0.7], [0.2, 0.5, 0.3], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]],
    }
    samples = np.stack([np.array([rows[0][s], rows[1][s]]) for s in range(4)])
    np.testing.assert_allclose(variation_ratios_scores(samples), [1 - 3 / 4, 1 - 2 / 4])
    # Kampffmeyer et al.: mean_c sqrt(E[p_c^2] - E[p_c]^2)
    p = _samples(5, 7, 4)
    expected = [
        np.mean([math.sqrt(max(np.mean(p[:, i, c] ** 2) - np.mean(p[:, i, c]) ** 2, 0)) for c in range(4)])
        for i in range(7)
    ]
    np.testing.assert_allclose(mean_std_scores(p), expected, atol=1e-12)


def test_sample_strategies_rank_by_their_scores():
    p = _samples(4, 30, 3, seed=2)
    ctx = _ctx(p)
    for name, fn in [("bald", bald_scores), ("variation-ratios", variation_ratios_scores),
                     ("mean-std", mean_std_scores), ("predictive-entropy", predictive_entropy_scores),
                     ("vote-entropy", vote_entropy_scores), ("kl-consensus", kl_consensus_scores),
                     ("js-divergence", js_divergence_scores), ("vote-margin", vote_margin_scores),
                     ("consensus-margin", consensus_margin_scores)]:  # fmt: skip
        np.testing.assert_array_equal(make_strategy(name).select(ctx, 5), ctx.ids[top_k(fn(p), 5)], err_msg=name)


# ---- committee ----------------------------------------------------------------------------------------
def test_vote_entropy_and_vote_margin_hand_count():
    # 4 members, record 0 votes 0,0,1,2 ; record 1 votes 1,1,1,1 ; record 2 votes 0,1,0,1
    one = np.eye(3) * 0.8 + 0.1 * (1 - np.eye(3))  # row v: 0.8 on class v, 0.1 elsewhere
    votes = [[0, 1, 0], [0, 1, 1], [1, 1, 0], [2, 1, 1]]
    samples = np.stack([one[v] for v in votes])  # (S=4, n=3, C=3)
    h = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    np.testing.assert_allclose(vote_entropy_scores(samples), [h, 0.0, math.log(2)])
    np.testing.assert_allclose(vote_margin_scores(samples), [-(2 - 1) / 4, -(4 - 0) / 4, 0.0])


def test_kl_consensus_matches_scipy_and_equals_generalised_js():
    p = _samples(5, 12, 4, seed=3)
    consensus = p.mean(axis=0)
    expected = np.mean([[entropy(p[s, i], consensus[i]) for i in range(12)] for s in range(5)], axis=0)
    np.testing.assert_allclose(kl_consensus_scores(p), expected, atol=1e-12)
    # mean KL to the mean = generalised JS with equal weights = BALD (the documented identity)
    np.testing.assert_allclose(kl_consensus_scores(p), bald_scores(p), atol=1e-12)


def test_js_divergence_is_the_mean_pairwise_scipy_value():
    p = _samples(4, 9, 3, seed=4)
    pairs = list(itertools.combinations(range(4), 2))
    expected = [np.mean([jensenshannon(p[a, i], p[b, i]) ** 2 for a, b in pairs]) for i in range(9)]
    np.testing.assert_allclose(js_divergence_scores(p), expected, atol=1e-10)
    assert (js_divergence_scores(p) <= math.log(2) + 1e-12).all()
    np.testing.assert_array_equal(js_divergence_scores(p[:1]), np.zeros(9))  # a committee of one agrees


def test_consensus_margin_is_margin_of_the_mean():
    p = _samples(3, 10, 5, seed=5)
    np.testing.assert_allclose(consensus_margin_scores(p), margin_scores(p.mean(axis=0)))


# ---- BatchBALD ------------------------------------------------------------------------------------------
def _brute_joint_entropy(p: np.ndarray, members: list[int]) -> float:
    """H(y_members) by enumerating every label configuration: p(config) = mean_s prod_i p_s(y_i)."""
    total = 0.0
    for config in itertools.product(range(p.shape[2]), repeat=len(members)):
        prob = np.mean([np.prod([p[s, i, y] for i, y in zip(members, config, strict=True)]) for s in range(p.shape[0])])
        if prob > 0:
            total -= prob * math.log(prob)
    return total


def test_joint_entropy_matches_brute_force_enumeration():
    p = _samples(5, 6, 3, seed=6)
    batch = [1, 4]
    expected = [_brute_joint_entropy(p, [*batch, x]) for x in range(6)]
    np.testing.assert_allclose(joint_entropies(p, batch), expected, atol=1e-12)
    # an empty batch gives each record's own predictive entropy
    np.testing.assert_allclose(joint_entropies(p, []), predictive_entropy_scores(p), atol=1e-12)
    # past the cap the joint entropy is sampled: close to the exact value, and seeded
    sampled = joint_entropies(p, batch, max_configs=9, mc_samples=20000, rng=np.random.default_rng(1))
    np.testing.assert_allclose(sampled, expected, atol=0.03)
    again = joint_entropies(p, batch, max_configs=9, mc_samples=20000, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(sampled, again)


def test_batch_bald_of_one_is_bald_top_one():
    for seed in range(5):
        p = _samples(4, 40, 3, seed=seed)
        p[:, 30:33] = p[:, 0:3]  # exact ties: the lower position wins in both
        ctx = _ctx(p)
        np.testing.assert_array_equal(BatchBALD().select(ctx, 1), BALD().select(ctx, 1))


def test_batch_bald_equals_brute_force_greedy():
    p = _samples(6, 7, 3, seed=8, alpha=0.5)
    cond = np.array([np.mean([entropy(p[s, i]) for s in range(6)]) for i in range(7)])
    chosen: list[int] = []
    for _ in range(4):  # greedy on brute-force joint mutual information
        gains = [
            -np.inf if x in chosen else _brute_joint_entropy(p, [*chosen, x]) - cond[[*chosen, x]].sum()
            for x in range(7)
        ]
        chosen.append(int(np.argmax(gains)))
    np.testing.assert_array_equal(batch_bald_select(p, 4), chosen)


def test_batch_bald_avoids_a_duplicated_record_that_bald_takes_twice():
    a, b, c, d = [0.95, 0.05], [0.05, 0.95], [0.9, 0.1], [0.1, 0.9]
    # records 0 and 1 are the same; record 2 splits the samples differently, with lower BALD
    p = np.array([[a, a, c], [a, a, d], [b, b, c], [b, b, d]])
    ctx = _ctx(p)
    assert BALD().select(ctx, 2).tolist() == [100, 101]
    assert BatchBALD().select(ctx, 2).tolist() == [100, 102]
    assert BatchBALD(max_configs=1, mc_samples=4000, seed=0).select(ctx, 2).tolist() == [100, 102]


def test_batch_bald_monte_carlo_branch_is_seeded_and_complete():
    p = _samples(4, 30, 5, seed=9)
    ctx = _ctx(p, seed=11)
    small = BatchBALD(max_configs=30, mc_samples=256)
    first = small.select(ctx, 10)
    assert np.array_equal(first, BatchBALD(max_configs=30, mc_samples=256).select(ctx, 10))
    assert len(set(first.tolist())) == 10
    assert set(BatchBALD(max_configs=30, mc_samples=64).select(ctx, 50).tolist()) == set(ctx.ids.tolist())


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"max_configs": 0}, "The 'max_configs' parameter of BatchBALD must be an int >= 1. Got 0."),
        ({"mc_samples": 1.5}, "The 'mc_samples' parameter of BatchBALD must be an int >= 1. Got 1.5."),
    ],
)
def test_batch_bald_validates_at_first_use(params, message):
    strategy = BatchBALD(**params)  # stores only
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        strategy.select(_ctx(_samples(2, 5, 2)), 2)


# ---- PowerBALD ------------------------------------------------------------------------------------------
def test_power_bald_samples_proportionally_to_bald_power():
    p = np.array([[[0.9, 0.1], [0.7, 0.3], [0.6, 0.4]], [[0.1, 0.9], [0.3, 0.7], [0.5, 0.5]]])
    s = bald_scores(p)
    for power in (1.0, 2.0):
        wins = np.zeros(3)
        for loop in range(3000):
            wins[np.argmax(power_bald_scores(p, np.random.default_rng([0, loop]), power=power))] += 1
        np.testing.assert_allclose(wins / wins.sum(), s**power / (s**power).sum(), atol=0.03)
    ctx = _ctx(_samples(4, 20, 3), seed=4)
    assert np.array_equal(PowerBALD(seed=1).select(ctx, 5), PowerBALD(seed=1).select(ctx, 5))
    assert np.array_equal(PowerBALD(power=1e6).select(ctx, 3), BALD().select(ctx, 3))
    with pytest.raises(ConfigError, match="'power' parameter of PowerBALD must be a number >= 0.0. Got -1"):
        PowerBALD(power=-1).score(ctx)


# ---- EPIG -----------------------------------------------------------------------------------------------
def _brute_epig(p: np.ndarray, t: np.ndarray) -> np.ndarray:
    out = []
    for i in range(p.shape[1]):
        mis = []
        for j in range(t.shape[1]):
            joint = np.mean([np.outer(p[s, i], t[s, j]) for s in range(p.shape[0])], axis=0)
            indep = np.outer(joint.sum(axis=1), joint.sum(axis=0))
            mis.append(entropy(joint.ravel(), indep.ravel()))  # I(y; y*) = KL(joint || product of marginals)
        out.append(np.mean(mis))
    return np.array(out)


def test_epig_matches_brute_force_mutual_information():
    p = _samples(5, 8, 3, seed=12)
    t = _samples(5, 4, 3, seed=13)
    np.testing.assert_allclose(epig_scores(p, t), _brute_epig(p, t), atol=1e-12)
    # a target the model is certain about carries no information to gain
    certain = np.zeros((5, 2, 3))
    certain[:, :, 1] = 1.0
    np.testing.assert_allclose(epig_scores(p, certain), 0.0, atol=1e-12)


def test_epig_targets():
    p = _samples(4, 30, 3, seed=14)
    ctx = _ctx(p, seed=2)
    # default: n_target candidates drawn with the seed stand in for the target distribution
    all_targets = EPIG(n_target=1000).score(ctx)
    np.testing.assert_allclose(all_targets, _brute_epig(p, p), atol=1e-12)
    sub = EPIG(n_target=5, seed=3).score(ctx)
    assert np.array_equal(sub, EPIG(n_target=5, seed=3).score(ctx))
    assert not np.allclose(sub, EPIG(n_target=5, seed=4).score(ctx))
    # explicit target ids; ids that are not candidates are ignored
    chosen = EPIG(target=(103, 107, 999)).score(ctx)
    np.testing.assert_allclose(chosen, epig_scores(p, p[:, [3, 7]]), atol=1e-12)
    assert make_strategy("epig(target=(103, 107))").spec == "epig(target=(103, 107))"
    with pytest.raises(ConfigError, match="none of which is a current candidate"):
        EPIG(target=(1, 2)).score(ctx)
    with pytest.raises(ConfigError, match="The 'target' parameter of EPIG must be 'pool'"):
        EPIG(target="test").score(ctx)
