"""auto: scheduler → portfolio; margin fallback, probabilities only, embeddings, budgets, explain/state hooks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.datasets import make_blobs
from sklearn.linear_model import LogisticRegression

from alloop import SelectionEngine, Snapshot
from alloop.bench import simulate
from alloop.engine.portfolio import LCB_EXPLORE_LOOPS
from alloop.engine.schedule import ARMS, candidate_subset, plan
from alloop.records import RecordState
from alloop.strategies import SelectionContext, make_strategy
from alloop.strategies.auto import AutoStrategy
from alloop.testing import conformance_context


def _ctx(n=50, labeled=40, classes=2, emb=False, loop=3):
    rng = np.random.default_rng(0)
    return SelectionContext(
        ids=np.arange(n),
        index=np.arange(n),
        probs=rng.dirichlet(np.ones(classes), size=n),
        embeddings=rng.normal(size=(n, 3)) if emb else None,
        n_classes=classes,
        labeled_ids=np.arange(1000, 1000 + labeled),
        labels=np.zeros(labeled, dtype=np.int64),
        loop=loop,
    )


def test_scheduler_cold_start_favours_typical_and_diverse_records_when_embeddings_exist():
    cold = plan(_ctx(labeled=2, emb=True))
    assert cold.phase == "cold-start" and "typiclust" in cold.arms
    assert cold.prior["typiclust"] > cold.prior["margin"] * 0.5
    warm = plan(_ctx(labeled=40, emb=True))
    assert warm.phase == "warm" and "typiclust" not in warm.arms and warm.prior["margin"] > warm.prior["random"]
    probs_only = plan(_ctx(labeled=2))
    assert {"typiclust", "coreset"}.isdisjoint(probs_only.arms) and "margin" in probs_only.arms
    assert sum(cold.prior.values()) == pytest.approx(1.0)


def test_scheduler_respects_the_time_budget_and_subsets_large_pools():
    ctx = _ctx(n=500, labeled=40, emb=True)
    big = plan(ctx, max_candidates=100)
    assert big.subset == {"coreset": 100} and "candidate subsets coreset:100" in big.reason
    slow = plan(ctx, seconds_per_candidate={"learned": 1e-2, "coreset": 1e-6}, max_selection_seconds=0.5)
    assert "learned" not in slow.arms and "learned dropped" in slow.reason
    squeeze = plan(ctx, seconds_per_candidate={"coreset": 5e-4}, max_selection_seconds=0.5)
    assert squeeze.subset["coreset"] == 200  # 0.5 s / 5 eligible arms / 5e-4 s per candidate
    sub = candidate_subset(_ctx(n=500), 60, np.random.default_rng(0))
    assert sub.size == 60 and np.unique(sub).size == 60
    assert set(ARMS) >= {"margin", "learned", "typiclust"}


def test_falls_back_to_margin_when_metadata_is_thin():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=80)
    picks = {}
    for spec in ("auto", "margin"):
        eng = SelectionEngine(strategy=spec, seed=0, classes=[0, 1, 2])
        eng.add_records(np.arange(80))
        eng.ingest(Snapshot(ids=np.arange(80), probs=probs))
        picks[spec] = sorted(eng.recommend(7).ids.tolist())
    assert picks["auto"] == picks["margin"]


def test_works_with_probabilities_only_and_says_why():
    out = simulate("iris", "logreg", ["auto", "margin"], initial=9, batch=6, budget=45, seeds=2)
    r = out["results"]["auto"]
    assert len(r["labels"]) == 7 and r["aubc_mean"] > 0.8
    strat = AutoStrategy(seed=1)
    eng = SelectionEngine(strategy=strat, seed=0, classes=[0, 1])
    eng.add_records(np.arange(60))
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=60)
    for loop in range(3):
        unl = eng.pool.ids(RecordState.UNLABELED)
        eng.ingest(Snapshot(ids=unl, probs=rng.dirichlet(np.ones(2), size=unl.size)), loop=loop)
        sel = eng.recommend(4, loop=loop)
        eng.observe_labels(sel.ids, y[sel.ids])
    text = strat.explain()
    assert text.startswith(f"auto[{strat.algorithm}]: warm phase") and "learned=" in text and "coreset" not in text


def _clusters_covered(seed: int, embeddings: bool) -> int:
    X, y = make_blobs(n_samples=400, centers=10, n_features=2, cluster_std=0.6, random_state=seed)
    rng = np.random.default_rng(seed)
    init = rng.choice(400, 3, replace=False)
    eng = SelectionEngine(strategy="auto", seed=seed, classes=list(range(10)))
    eng.add_records(np.arange(400))
    eng.observe_labels(init, y[init])
    model = LogisticRegression(max_iter=200).fit(X[init], y[init])
    probs = np.zeros((400, 10))
    probs[:, model.classes_] = model.predict_proba(X)
    unl = eng.pool.ids(RecordState.UNLABELED)
    eng.ingest(Snapshot(ids=unl, probs=probs[unl], embeddings=X[unl] if embeddings else None))
    chosen = eng.recommend(10).ids
    return len(set(y[np.concatenate([init, chosen])].tolist()))


def test_uses_shared_embeddings_to_cover_the_space_at_cold_start():
    with_emb = [_clusters_covered(s, True) for s in range(4)]
    without = [_clusters_covered(s, False) for s in range(4)]
    assert np.mean(with_emb) > np.mean(without)


def test_deterministic_and_resumable_from_its_state():
    def run(strategy, loops, eng=None, rng=None):
        if eng is None:
            eng = SelectionEngine(strategy=strategy, seed=4, classes=[0, 1, 2])
            eng.add_records(np.arange(120))
            rng = np.random.default_rng(4)
        eng.strategy = strategy
        out = []
        for _ in range(loops):
            loop = len(eng.pool.ids(RecordState.LABELED)) // 5
            unl = eng.pool.ids(RecordState.UNLABELED)
            emb = np.random.default_rng(loop).normal(size=(120, 4))[unl]
            eng.ingest(Snapshot(ids=unl, probs=rng.dirichlet(np.ones(3), size=unl.size), embeddings=emb), loop=loop)
            sel = eng.recommend(5, loop=loop)
            out.append(sel.ids.tolist())
            eng.observe_labels(sel.ids, sel.ids % 3)
        return out, eng, rng

    a, _, _ = run(AutoStrategy(algorithm="thompson", seed=1), 5)
    b, _, _ = run(AutoStrategy(algorithm="thompson", seed=1), 5)
    assert a == b
    first = AutoStrategy(algorithm="thompson", seed=1)
    head, eng, rng = run(first, 3)
    restored = AutoStrategy(algorithm="thompson", seed=1)
    restored.load_state_dict(json.loads(json.dumps(first.state_dict())))
    assert restored.state_dict()["learned"] == first.state_dict()["learned"]  # the learned arm's online state too
    tail, _, _ = run(restored, 2, eng, rng)
    assert head + tail == a


def test_same_loop_twice_gives_the_same_batch_and_spec_round_trips():
    ctx = conformance_context(40)
    auto = make_strategy("auto(algorithm='thompson', seed=5)")
    assert auto.select(ctx, 6).tolist() == auto.select(ctx, 6).tolist()
    assert auto.spec == "auto(algorithm='thompson', seed=5)"
    assert np.isclose(auto.score(ctx).sum(), 1.0)  # the mixture the batch is drawn from


def test_explore_sets_a_strong_prior_toward_margin():
    p = plan(_ctx(labeled=40, emb=True), explore=0.1)
    assert p.prior["margin"] == pytest.approx(0.9) and sum(p.prior.values()) == pytest.approx(1.0)
    assert p.prior["learned"] > p.prior["random"]  # the others keep their table proportions
    assert plan(_ctx(labeled=40), explore=None).prior == plan(_ctx(labeled=40)).prior
    with pytest.raises(Exception, match="'explore' parameter of AutoStrategy"):
        AutoStrategy(explore=2.0).select(_ctx(labeled=40, emb=True), 3)


def test_lcb_auto_is_margin_once_exploration_decayed_and_no_arm_is_credibly_better():
    strat = AutoStrategy(algorithm="lcb", gamma=0.0, seed=2)
    eng = SelectionEngine(strategy=strat, seed=0, classes=[0, 1])
    eng.add_records(np.arange(300))
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, size=300)  # labels unrelated to the probabilities: every reward is noise
    explored = 0
    for loop in range(LCB_EXPLORE_LOOPS + 4):
        unl = eng.pool.ids(RecordState.UNLABELED)
        eng.ingest(Snapshot(ids=unl, probs=rng.dirichlet(np.ones(2), size=unl.size)), loop=loop)
        sel = eng.recommend(6, loop=loop)
        margin = eng.recommend(6, strategy="margin", loop=loop)
        explored += sorted(sel.ids.tolist()) != sorted(margin.ids.tolist())
        entry = strat.state_dict()["log"][-1]
        if loop > LCB_EXPLORE_LOOPS:  # the other arms' prior share has decayed to 0 and none became credible
            assert entry["pi"]["margin"] == 1.0 and all(b is None or b <= 0 for b in entry["lcb"].values())
            assert sorted(sel.ids.tolist()) == sorted(margin.ids.tolist())
            assert "margin=1.00" in sel.reason and sel.reason.count("auto[lcb]") == 1
        eng.observe_labels(sel.ids, y[sel.ids])
    assert explored >= 1  # early loops did spend part of the batch on the other arms


def test_auto_defaults_to_the_cautious_rule_and_its_reason_shows_the_bounds():
    from alloop.strategies import make_strategy
    from alloop.strategies.auto import _bounds_text

    assert make_strategy("auto").algorithm == "lcb"
    assert _bounds_text({}) == ""
    assert _bounds_text({"lcb": {"bounds": {"random": None}}}) == ""
    text = _bounds_text({"lcb": {"bounds": {"random": -0.0123, "entropy": None, "coreset": 0.004}}})
    assert text == "; lower bounds vs margin random=-0.0123, coreset=+0.0040"
