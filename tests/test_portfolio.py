"""The portfolio: bandit maths, reward bookkeeping, state persistence, determinism, bounded state."""

from __future__ import annotations

import json

import numpy as np
import pytest

from alloop import SelectionEngine, Snapshot
from alloop.engine.portfolio import (
    LCB_EXPLORE_LOOPS,
    LOG_CAP,
    arm_probabilities,
    batch_credit,
    draw_batch,
    iw_accuracy,
    mixture,
    new_state,
    update,
)
from alloop.errors import ConfigError
from alloop.records import RecordState
from alloop.strategies import make_strategy
from alloop.strategies.auto import PortfolioStrategy
from alloop.testing import conformance_context


def test_mixture_is_a_distribution_with_an_exploration_floor():
    q = mixture([np.array([0, 1]), np.array([1, 2])], np.array([0.5, 0.5]), n=10, gamma=0.2)
    assert q.sum() == pytest.approx(1.0)
    assert q.min() == pytest.approx(0.02)  # gamma / n for records no arm advises
    assert q[1] == pytest.approx(0.8 * (0.25 + 0.25) + 0.02)  # advised by both arms


def test_draw_batch_is_distinct_and_seeded():
    q = mixture([np.arange(5)], np.ones(1), n=50, gamma=0.1)
    a = draw_batch(q, 8, np.random.default_rng(1))
    b = draw_batch(q, 8, np.random.default_rng(1))
    assert np.array_equal(a, b) and len(set(a.tolist())) == 8


def test_iw_accuracy_reweights_by_inverse_query_probability():
    # a record queried with probability 0.1 counts 9 times as much as one queried with 0.9
    assert iw_accuracy(np.array([1, 0]), np.array([0.1, 0.9])) == pytest.approx(0.9)
    assert iw_accuracy(np.array([1, 1, 0]), np.full(3, 0.2)) == pytest.approx(2 / 3)


def test_credit_goes_to_the_arms_that_advised_the_batch():
    advice = [np.array([0, 1]), np.array([2, 3])]
    credit = batch_credit(advice, np.array([0.5, 0.5]), np.array([0, 1]), n=4, gamma=0.0)
    assert credit[0] > 0 and credit[1] == 0
    st = new_state(["a", "b"])
    update(st, credit, reward=0.05, algorithm="exp4p", eta=2.0, arms=["a", "b"])
    p = arm_probabilities(st, ["a", "b"], "exp4p", np.random.default_rng(0))
    assert p[0] > 0.5 > p[1]
    update(st, {"a": 0.0, "b": 2.0}, reward=-0.05, algorithm="exp4p", eta=2.0)
    assert st["arms"]["b"]["log_w"] < st["arms"]["a"]["log_w"]
    assert st["arms"]["b"]["sum"] < 0 < st["arms"]["a"]["sum"]


def test_thompson_prefers_the_arm_with_higher_rewards():
    st = new_state(["good", "bad"])
    for _ in range(30):
        update(st, {"good": 1.0}, reward=0.05, algorithm="thompson", eta=1.0)
        update(st, {"bad": 1.0}, reward=-0.05, algorithm="thompson", eta=1.0)
    rng = np.random.default_rng(0)
    picks = [int(np.argmax(arm_probabilities(st, ["good", "bad"], "thompson", rng))) for _ in range(50)]
    assert picks.count(0) >= 45


def _engine(strategy, n=60, seed=0):
    rng = np.random.default_rng(seed)
    eng = SelectionEngine(strategy=strategy, seed=seed, classes=[0, 1, 2])
    eng.add_records(np.arange(n))
    y = rng.integers(0, 3, size=n)
    return eng, y, rng


def _probs(rng, n):
    p = rng.dirichlet(np.ones(3), size=n)
    return p


def _run(strategy, loops=4, seed=0):
    eng, y, rng = _engine(strategy, seed=seed)
    chosen = []
    for loop in range(loops):
        unl = eng.pool.ids(RecordState.UNLABELED)
        eng.ingest(Snapshot(ids=unl, probs=_probs(rng, unl.size)), loop=loop)
        sel = eng.recommend(5, loop=loop)
        chosen.append(sel.ids.tolist())
        eng.observe_labels(sel.ids, y[sel.ids])
    return eng, y, chosen


def test_reward_is_the_change_in_importance_weighted_accuracy():
    strat = PortfolioStrategy(seed=1)
    eng, y, _ = _run(strat, loops=1)
    pend0 = strat.state_dict()["pending"]
    rng = np.random.default_rng(5)
    unl = eng.pool.ids(RecordState.UNLABELED)
    eng.ingest(Snapshot(ids=unl, probs=_probs(rng, unl.size)), loop=1)
    sel = eng.recommend(5, loop=1)
    st1 = strat.state_dict()
    correct0 = np.array([p == y[i] for i, p in zip(pend0["ids"], pend0["pred"], strict=True)], dtype=float)
    acc0 = iw_accuracy(correct0, np.array(pend0["q"]))
    assert st1["last_acc"] == pytest.approx(acc0)
    assert st1["prev_credit"] == pend0["credit"]
    assert "last_reward" not in st1  # a reward needs two accuracy estimates
    eng.observe_labels(sel.ids, y[sel.ids])
    unl = eng.pool.ids(RecordState.UNLABELED)
    eng.ingest(Snapshot(ids=unl, probs=_probs(rng, unl.size)), loop=2)
    eng.recommend(5, loop=2)
    st2 = strat.state_dict()
    pend1 = st1["pending"]
    correct1 = np.array([p == y[i] for i, p in zip(pend1["ids"], pend1["pred"], strict=True)], dtype=float)
    acc1 = iw_accuracy(correct1, np.array(pend1["q"]))
    assert st2["last_reward"] == pytest.approx(acc1 - acc0)
    assert st2["last_acc"] == pytest.approx(acc1)
    # the arms that gave loop 0's batch got the reward, in proportion to their credit
    for arm, g in pend0["credit"].items():
        before, after = st1["arms"][arm]["sum"], st2["arms"][arm]["sum"]
        share = g / sum(pend0["credit"].values())
        assert after - before == pytest.approx(share * (acc1 - acc0))


@pytest.mark.parametrize("algorithm", ["exp4p", "thompson", "lcb"])
def test_deterministic_for_a_seed_and_resumable_from_the_state(algorithm):
    _, _, a = _run(PortfolioStrategy(algorithm=algorithm, seed=3), loops=4)
    _, _, b = _run(PortfolioStrategy(algorithm=algorithm, seed=3), loops=4)
    assert a == b
    # resume: a fresh strategy loaded with the JSON state after loop 1 continues identically
    first = PortfolioStrategy(algorithm=algorithm, seed=3)
    eng, y, chosen = _run(first, loops=2)
    state = json.loads(json.dumps(first.state_dict()))
    second = PortfolioStrategy(algorithm=algorithm, seed=3)
    second.load_state_dict(state)
    eng.strategy = second
    rng = np.random.default_rng(9)
    unl = eng.pool.ids(RecordState.UNLABELED)
    snap = Snapshot(ids=unl, probs=_probs(rng, unl.size))
    eng.ingest(snap, loop=2)
    resumed = eng.recommend(5, loop=2).ids.tolist()
    eng.strategy = first
    assert eng.recommend(5, loop=2).ids.tolist() == resumed


def _state_sizes(strat, loops):
    """The JSON size of the strategy's state after each of ``loops`` loops on a 400-record pool."""
    eng, y, rng = _engine(strat, n=400)
    sizes = []
    for loop in range(loops):
        unl = eng.pool.ids(RecordState.UNLABELED)
        eng.ingest(Snapshot(ids=unl, probs=_probs(rng, unl.size)), loop=loop)
        sel = eng.recommend(5, loop=loop)
        eng.observe_labels(sel.ids, y[sel.ids])
        sizes.append(len(json.dumps(strat.state_dict())))
    return sizes


def test_state_does_not_grow_with_the_number_of_loops():
    strat = PortfolioStrategy(arms=("margin", "random"), seed=0)
    sizes = _state_sizes(strat, 60)
    assert len(strat.state_dict()["log"]) == LOG_CAP
    assert max(sizes[40:]) < 1.1 * min(sizes[40:])


def test_bad_parameters_are_reported_at_first_use():
    eng, _, rng = _engine(PortfolioStrategy(algorithm="ucb"))
    eng.ingest(Snapshot(ids=np.arange(60), probs=_probs(rng, 60)))
    with pytest.raises(ConfigError, match="'algorithm' parameter of PortfolioStrategy"):
        eng.recommend(3)
    with pytest.raises(ConfigError, match="'arms' parameter"):
        make_strategy("portfolio(arms='margin')").select(conformance_context(10, include={"probs", "history"}), 2)
    with pytest.raises(ConfigError, match="load_state_dict"):
        PortfolioStrategy().load_state_dict({"version": 99})


def test_reason_names_the_arms_and_their_weights():
    strat = PortfolioStrategy(seed=0)
    _run(strat, loops=3)
    text = strat.explain()
    assert text.startswith("portfolio[exp4p]") and "margin=" in text and "batch from" in text
    assert "last reward" in text or "reward" not in text


def test_held_out_reward_credits_the_arms_of_the_batch_that_trained_the_model():
    strat = PortfolioStrategy(arms=("margin", "random"), seed=1, holdout_weight=0.5)
    eng, y, rng = _engine(strat)
    states = []
    for loop, held in [(0, 0.60), (1, 0.70), (2, None)]:
        unl = eng.pool.ids(RecordState.UNLABELED)
        eng.ingest(Snapshot(ids=unl, probs=_probs(rng, unl.size)), loop=loop)
        sel = eng.recommend(5, loop=loop)
        states.append(strat.state_dict())
        eng.observe_labels(sel.ids, y[sel.ids])
        if held is not None:
            eng.observe_holdout(held, loop=loop)  # the model trained at this loop, on this loop's batch too
    st0, st1, st2 = states
    assert "last_holdout_reward" not in st1  # loop 0's model has no predecessor
    assert st2["last_holdout_reward"] == pytest.approx(0.10)
    c0, c1 = st0["pending"]["credit"], st1["pending"]["credit"]
    iw = st2["last_reward"]
    for arm in ("margin", "random"):
        # held-out: w · r_ho to loop 1's batch; importance-weighted: (1 − w) · r_iw to loop 0's batch
        expected = 0.5 * 0.10 * c1[arm] / sum(c1.values()) + 0.5 * iw * c0[arm] / sum(c0.values())
        assert st2["arms"][arm]["sum"] - st1["arms"][arm]["sum"] == pytest.approx(expected)
    assert "held-out reward +0.1000" in strat.explain()


def test_without_held_out_values_the_reward_is_importance_weighted_only():
    a, b = PortfolioStrategy(seed=2), PortfolioStrategy(seed=2, holdout_weight=1.0)
    _run(a, loops=4)
    _run(b, loops=4)

    def stats(strat):
        return {arm: (e["log_w"], e["n"], e["sum"]) for arm, e in strat.state_dict()["arms"].items()}

    assert stats(a) == stats(b)
    eng = SelectionEngine(strategy="margin", classes=[0, 1])
    eng.observe_holdout(0.9, loop=0)  # strategies without a held-out reward ignore it


def test_campaign_with_held_out_data_feeds_the_portfolio_and_resume_keeps_it(tmp_path):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from alloop.labeling import SimulatedOracle
    from alloop.loop import Campaign, SklearnLearner

    X, Y = load_iris(return_X_y=True)
    ids, test = np.arange(0, 150, 2), np.arange(1, 150, 2)

    def learner():
        return SklearnLearner(LogisticRegression(max_iter=300), X[ids], ids, eval_X=X[test], eval_y=Y[test])

    oracle = SimulatedOracle(truth=dict(zip(ids.tolist(), Y[ids].tolist(), strict=True)))
    camp = Campaign(
        tmp_path / "c", learner=learner(), labeler=oracle, pool=ids, classes=[0, 1, 2],
        strategy="portfolio(seed=1)", initial=9, batch_size=5, max_loops=3, seed=0,
    )  # fmt: skip
    camp.run()
    held = camp.engine.strategy.state_dict()["holdout"]
    assert held == {str(k): v["accuracy"] for k, v in camp.metrics().items()}
    assert "held-out reward" in camp.loops()[-1]["reason"]
    camp.close()
    again = Campaign.resume(tmp_path / "c", learner=learner(), labeler=oracle)
    assert again.engine.strategy.state_dict()["holdout"] == held  # the last loop's value was not yet in the state
    again.close()


# ---- "lcb": margin unless another arm is credibly better ------------------------------------------------------
def _lcb_state(arms=("margin", "random", "learned"), prior=(0.9, 0.05, 0.05)):
    return new_state(list(arms), prior=dict(zip(arms, prior, strict=True)))


def _lcb_loop(st, loop, credit, reward, arms=("margin", "random", "learned")):
    st["loop"] = loop  # what the strategy's _advance does once per new loop
    update(st, credit, reward=reward, algorithm="lcb", eta=1.0)
    return arm_probabilities(st, list(arms), "lcb", np.random.default_rng(0))


def test_lcb_keeps_paired_differences_with_margin_per_arm():
    st = _lcb_state()
    seq = [({"margin": 0.5, "random": 2.0}, 0.04), ({"margin": 1.5, "learned": 0.5}, -0.02), ({"margin": 1.0}, 0.01)]
    for credit, r in seq:
        update(st, credit, reward=r, algorithm="lcb", eta=1.0)
    d_random = [r * (c.get("random", 0.0) - c["margin"]) for c, r in seq]
    d_learned = [r * (c.get("learned", 0.0) - c["margin"]) for c, r in seq]
    for arm, d in (("random", d_random), ("learned", d_learned)):
        s = st["arms"][arm]["d"]
        assert s["n"] == 3 and s["mean"] == pytest.approx(np.mean(d)) and s["m2"] == pytest.approx(np.var(d) * 3)
    assert "d" not in st["arms"]["margin"]  # the baseline is not compared with itself
    assert st["arms"]["margin"]["log_w"] == pytest.approx(0.0)  # lcb leaves the prior weights alone
    assert st["arms"]["random"]["log_w"] == pytest.approx(np.log(0.05 / 0.9))
    assert st["arms"]["random"]["sum"] == pytest.approx(sum(r * c.get("random", 0) / sum(c.values()) for c, r in seq))


def test_lcb_moves_the_batch_to_an_arm_that_is_credibly_better():
    rng = np.random.default_rng(0)
    st = _lcb_state()
    shares = []
    for loop in range(20):
        # the more of the batch random gave, the larger the accuracy gain that followed (plus noise)
        g_r = float(rng.uniform(1.0, 2.0))
        reward = 0.005 + 0.02 * (g_r - 1.0) + float(rng.normal(0, 0.002))
        pi = _lcb_loop(st, loop, {"margin": 1.0, "random": g_r, "learned": 1.0}, reward)
        shares.append(pi)
    shares = np.array(shares)
    assert shares[:3, 1] == pytest.approx([0.05, 0.05 * 5 / 6, 0.05 * 4 / 6])  # decaying prior at first
    assert shares[-1, 1] > 0.5 and shares[-1].sum() == pytest.approx(1.0)  # then random takes most of the batch
    assert shares[-1, 2] == 0.0  # learned (no better than margin) has decayed to the floor
    assert st["lcb"]["bounds"]["random"] > 0 and st["lcb"]["loops"] == 20


def test_lcb_stays_on_margin_when_rewards_are_noise():
    credible = total = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        st = _lcb_state()
        for loop in range(28):  # a campaign of the benchmark's length
            g = rng.uniform(0.0, 2.0, size=2)
            pi = _lcb_loop(st, loop, {"margin": 1.0, "random": float(g[0]), "learned": float(g[1])}, rng.normal(0, 0.1))
            if loop >= LCB_EXPLORE_LOOPS:
                total += 1
                credible += pi[0] < 1.0
    assert credible / total < 0.1  # margin keeps the whole batch on (almost) every loop after the decay


def test_lcb_counts_each_loop_once_and_decays_to_the_floor():
    st = _lcb_state()
    rng = np.random.default_rng(0)
    for _ in range(3):  # the same loop asked three times (score() and select() in one loop)
        st["loop"] = 0
        first = arm_probabilities(st, ["margin", "random", "learned"], "lcb", rng)
    assert st["lcb"]["loops"] == 1 and first.tolist() == pytest.approx([0.9, 0.05, 0.05])
    for loop in range(1, LCB_EXPLORE_LOOPS + 2):
        st["loop"] = loop
        pi = arm_probabilities(st, ["margin", "random", "learned"], "lcb", rng)
    assert pi.tolist() == [1.0, 0.0, 0.0]


def test_lcb_state_is_bounded_and_logs_its_bounds_per_loop():
    strat = PortfolioStrategy(arms=("margin", "random"), algorithm="lcb", seed=0)
    sizes = _state_sizes(strat, 50)
    st = strat.state_dict()
    assert st["arms"]["random"]["d"]["n"] == 48  # one paired difference per reward (from loop 2 on)
    assert st["log"][-1]["lcb_loop"] == 50 and "random" in st["log"][-1]["lcb"]
    assert max(sizes[40:]) < 1.1 * min(sizes[40:])
    assert strat.explain().startswith("portfolio[lcb]")


# ---- "surprise": the labels of confident predictions decide whether diversity pays -------------------------
def test_surprise_counts_only_novel_errors_against_the_models_own_error_rate():
    from alloop.engine.portfolio import SURPRISE_MIN_N, surprise_p_value, surprise_update, surprise_verdict

    conf = np.full(6, 0.99)
    wrong = np.array([1, 1, 1, 0, 0, 0])
    novel = surprise_update(None, conf=conf, wrong=wrong, novel=np.ones(6))
    misfit = surprise_update(None, conf=conf, wrong=wrong, novel=np.zeros(6))  # wrong where its labels agreed
    assert novel["novel"] == 3 and misfit["novel"] == 0 and misfit["wrong"] == 3
    assert surprise_verdict(novel) == "diverse" and surprise_verdict(misfit) == "misfit"
    few = SURPRISE_MIN_N - 1
    early = surprise_update(None, conf=conf[:few], wrong=np.ones(few), novel=np.ones(few))
    assert surprise_verdict(early) == "undecided"
    # the same three novel errors are no surprise for a model that said it would be wrong half the time
    unsure = surprise_update(None, conf=np.full(6, 0.5), wrong=wrong, novel=np.ones(6))
    assert surprise_p_value(unsure) > 0.5 and surprise_verdict(unsure) == "calibrated"
    two = np.arange(12) < 2
    two = surprise_update(None, conf=np.full(12, 0.99), wrong=two, novel=two)
    assert 0.02 < surprise_p_value(two) < 0.05  # 2 novel errors in 12 probes at p_max 0.99 (rate floor 0.02): 0.023
    assert surprise_verdict(two, alpha=0.02) == "calibrated" and surprise_verdict(two) == "diverse"
    assert json.loads(json.dumps(novel)) == novel


def test_surprise_rarely_switches_for_a_calibrated_model():
    from alloop.engine.portfolio import SURPRISE_MIN_N, SURPRISE_PROBE_LOOPS, surprise_update, surprise_verdict
    from alloop.strategies.auto import AutoStrategy

    auto = AutoStrategy()  # the default schedule: early_probes a batch until SURPRISE_MIN_N are labeled, then probes
    rng = np.random.default_rng(0)
    rates = {}
    for alpha in (auto.alpha, 0.5):
        switched = 0
        for _ in range(400):  # probes of a calibrated model: wrong with probability 1 − conf, half of errors novel
            st = None
            for _ in range(SURPRISE_PROBE_LOOPS):
                k = auto.early_probes if st is None or st["n"] < SURPRISE_MIN_N else auto.probes
                conf = rng.uniform(0.9, 1.0, k)
                wrong = rng.random(k) < 1.0 - conf
                st = surprise_update(st, conf=conf, wrong=wrong, novel=wrong & (rng.random(k) < 0.5))
                if surprise_verdict(st, alpha=alpha) == "diverse":
                    switched += 1
                    break
        rates[alpha] = switched / 400
    assert rates[auto.alpha] < 0.03 < rates[0.5]  # the level decides (a lax one switches on calibrated models)
