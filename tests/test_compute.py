"""Compute saving: warm start, candidate reduction, inference skipping, accounting."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from alloop.compute import (
    InferencePolicy,
    NeighbourIndex,
    ProxyLearner,
    SealsIndex,
    WarmStartLearner,
    WarmStartPolicy,
    plan_inference,
    savings_report,
    subsample_guarantee,
    subsample_size,
)
from alloop.errors import ConfigError
from alloop.loop import SklearnLearner
from alloop.strategies import make_strategy
from alloop.testing import check_strategy, conformance_context

HAS_TORCH = importlib.util.find_spec("torch") is not None


def _blobs(n: int = 300, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    X = rng.normal(size=(n, 4)) + y[:, None] * 1.5
    return X, y


# ---- warm start ------------------------------------------------------------------------------------------
def test_warm_start_matches_full_retrain_for_a_converged_convex_model():
    from sklearn.linear_model import LogisticRegression

    X, y = _blobs()
    est = LogisticRegression(C=1.0, tol=1e-10, max_iter=5000)
    warm = WarmStartLearner(SklearnLearner(est, X), WarmStartPolicy(full_every=None, drift_threshold=None))
    full = SklearnLearner(est, X)
    modes = []
    for n in (30, 60, 120):
        ids = np.arange(n)
        modes.append(warm.train(ids, y[:n], warm_start=True).mode)
        full.train(ids, y[:n], warm_start=False)
        np.testing.assert_allclose(warm.infer(np.arange(300)).probs, full.infer(np.arange(300)).probs, atol=1e-5)
    assert modes == ["full", "warm", "warm"]


def test_incremental_partial_fit_sees_new_plus_replay_and_full_every_n():
    from sklearn.linear_model import SGDClassifier

    X, y = _blobs()
    learner = WarmStartLearner(
        SklearnLearner(SGDClassifier(loss="log_loss", random_state=0), X),
        WarmStartPolicy(full_every=3, drift_threshold=None, warm_epochs=2, replay=1.0),
    )
    reports = [learner.train(np.arange(n), y[:n], warm_start=True) for n in (60, 80, 100, 120)]
    assert [r.mode for r in reports] == ["full", "incremental", "incremental", "full"]
    inc = reports[1]
    assert inc.epochs == 2 and 20 <= inc.n_records <= 20 + 20 + 3  # 20 new + 20 replayed (+ a class each)
    assert inc.extra["records_seen"] == inc.n_records * 2
    assert reports[3].n_records == 120
    acc = (learner.infer(np.arange(300)).probs.argmax(1) == y).mean()
    assert acc > 0.8


def test_full_growth_retrains_from_scratch_when_the_labeled_set_has_grown_by_the_factor():
    from sklearn.linear_model import SGDClassifier

    X, y = _blobs()
    learner = WarmStartLearner(
        SklearnLearner(SGDClassifier(loss="log_loss", random_state=0), X),
        WarmStartPolicy(full_every=None, full_growth=2.0, drift_threshold=None, warm_epochs=1),
    )
    sizes = (20, 30, 39, 40, 60, 79, 80)
    modes = [learner.train(np.arange(n), y[:n], warm_start=True).mode for n in sizes]
    assert modes == ["full", "incremental", "incremental", "full", "incremental", "incremental", "full"]


@pytest.mark.parametrize("growth", [1.0, 0.5, "2"])
def test_full_growth_must_exceed_one(growth):
    with pytest.raises(ConfigError, match="full_growth"):
        WarmStartPolicy(full_growth=growth).validate()


def test_drift_forces_a_full_retrain():
    from sklearn.linear_model import SGDClassifier

    X, y = _blobs()
    yy = y.copy()
    base = SklearnLearner(SGDClassifier(loss="log_loss", random_state=0), X, eval_X=X[200:], eval_y=y[200:])
    learner = WarmStartLearner(base, WarmStartPolicy(full_every=None, drift_threshold=0.0, warm_epochs=1, replay=0.0))
    assert learner.train(np.arange(100), yy[:100], warm_start=True).mode == "full"
    yy[100:150] = (yy[100:150] + 1) % 3  # poisoned new labels: the warm step gets worse on held-out data
    rep = learner.train(np.arange(150), yy[:150], warm_start=True)
    assert rep.mode == "full" and rep.extra["reason"].startswith("drift")
    assert set(learner.evaluate()) >= {"accuracy"}


def test_a_new_class_forces_full_and_policy_is_validated():
    from sklearn.linear_model import SGDClassifier

    X, y = _blobs()
    order = np.argsort(y, kind="stable")
    learner = WarmStartLearner(
        SklearnLearner(SGDClassifier(loss="log_loss", random_state=0), X[order]), WarmStartPolicy(drift_threshold=None)
    )
    learner.train(np.arange(150), y[order][:150], warm_start=True)  # classes 0 and 1 only
    assert learner.train(np.arange(300), y[order], warm_start=True).mode == "full"
    bad = WarmStartLearner(SklearnLearner(SGDClassifier(loss="log_loss"), X), WarmStartPolicy(warm_epochs=0))
    with pytest.raises(ConfigError, match="'warm_epochs' parameter of WarmStartPolicy must be an int >= 1"):
        bad.train(np.arange(10), y[:10], warm_start=False)


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
def test_shrink_perturb_and_torch_learner_warm_start():
    import torch

    from alloop.compute import fresh_like, shrink_perturb
    from alloop.loop._torch import TorchLearner

    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fresh = fresh_like(net, seed=5).state_dict()
    shrink_perturb(net, shrink=0.5, perturb=0.2, seed=5)
    for k, v in net.state_dict().items():
        torch.testing.assert_close(v, 0.5 * before[k] + 0.2 * fresh[k])
    params = [p.data_ptr() for p in net.parameters()]
    same = {k: v.clone() for k, v in net.state_dict().items()}
    assert shrink_perturb(net, shrink=1.0, perturb=0.0, seed=5) is net  # the identity: nothing rebuilt or copied
    assert [p.data_ptr() for p in net.parameters()] == params
    assert all(torch.equal(v, same[k]) for k, v in net.state_dict().items())

    X, y = _blobs(200)

    def model_fn() -> torch.nn.Module:
        torch.manual_seed(0)
        return torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))

    base = TorchLearner(model_fn, X.astype(np.float32), classes=[0, 1, 2], epochs=20, batch_size=16, seed=0)
    learner = WarmStartLearner(base, WarmStartPolicy(full_every=3, drift_threshold=None, warm_epochs=3))
    reps, accs = [], []
    for n in (100, 120, 140):
        reps.append(learner.train(np.arange(n), y[:n], warm_start=True))
        accs.append((learner.infer(np.arange(200)).probs.argmax(1) == y).mean())
    assert [r.mode for r in reps] == ["full", "warm", "warm"]
    assert reps[1].epochs == 3 and reps[1].n_records < 120 and base.epochs == 20
    assert min(accs[1:]) >= accs[0] - 0.1  # a few warm epochs keep the full model's quality


# ---- candidate reduction ---------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["numpy", "hnswlib", "faiss"])
def test_neighbour_index_matches_exact_search_and_updates(backend):
    if backend != "numpy" and importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    rng = np.random.default_rng(1)
    X = rng.normal(size=(600, 8)).astype(np.float32)
    exact, idx = NeighbourIndex(backend="numpy"), NeighbourIndex(backend=backend)
    for index in (exact, idx):
        index.add(np.arange(500), X[:500])
        index.add(np.arange(500, 600), X[500:])  # incremental add
        index.remove(np.arange(0, 600, 7))
    got, truth = idx.query(X[:20], 5), exact.query(X[:20], 5)
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(got.tolist(), truth.tolist(), strict=True)])
    assert recall >= 0.95
    assert not set(got.ravel().tolist()) & set(range(0, 600, 7))  # removed keys never come back
    assert len(idx) == 600 - len(range(0, 600, 7))


def test_seals_index_candidates_follow_labeling():
    X = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [9.0]])
    s = SealsIndex(k_neighbours=2, backend="numpy")
    s.add(np.arange(6), X)
    s.observe_labels(np.array([0]))
    assert s.candidates().tolist() == [1, 2]
    s.observe_labels(np.array([1, 3]))  # candidate 1 is labeled: it leaves; 3's neighbours join
    assert s.candidates().tolist() == [2, 4, 5]  # 5 (4.0 away) is nearer to 3 than 2 is


def test_seals_and_subsample_strategies_conform_and_reduce():
    for spec in (
        "seals(inner='margin', k_neighbours=2)",
        "subsample(inner='margin', m=5)",
        "seals(inner='top(margin, 2k) >> random', random_slice=0.1)",
    ):
        check_strategy(make_strategy(spec))
    ctx = conformance_context(40, dim=3)
    scored = ~np.isnan(make_strategy("seals(inner='margin', k_neighbours=2)").score(ctx))
    assert 0 < scored.sum() <= 2 * ctx.labeled_ids.size
    # the scored candidates are exactly the 2 nearest of each labeled record
    d = ((ctx.embeddings[None, :, :] - ctx.labeled_embeddings[:, None, :]) ** 2).sum(-1)
    near = np.unique(np.argsort(d, axis=1, kind="stable")[:, :2])
    assert np.flatnonzero(scored).tolist() == near.tolist()
    assert (~np.isnan(make_strategy("subsample(inner='margin', m=5)").score(ctx))).sum() == 5


def test_seals_index_is_incremental_on_the_strategy():
    strategy = make_strategy("seals(inner='margin', k_neighbours=3)")
    ctx = conformance_context(40, dim=3)
    strategy.select(ctx, 4)
    state = strategy.__dict__["_seals"]
    queried = len(state["nn"])
    strategy.select(ctx, 4)
    assert strategy.__dict__["_seals"] is state and len(state["nn"]) == queried  # nothing re-queried
    changed = conformance_context(40, dim=3, seed=9)  # other embeddings for the same pool indices: rebuilt
    strategy.select(changed, 4)
    assert strategy.__dict__["_seals"] is not state


def test_subsample_guarantee_holds():
    m = subsample_size(0.05, 0.9)
    assert subsample_guarantee(m, 0.05) >= 0.9 > subsample_guarantee(m - 1, 0.05)
    rng = np.random.default_rng(0)
    hits = np.mean([(rng.choice(1000, m, replace=False) < 50).any() for _ in range(2000)])
    assert hits >= 0.9 - 0.02


def test_proxy_learner_selects_with_the_cheap_model():
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.naive_bayes import GaussianNB

    X, y = _blobs()
    proxy = SklearnLearner(GaussianNB(), X, eval_X=X, eval_y=y)
    target = SklearnLearner(RandomForestClassifier(n_estimators=10, random_state=0), X, eval_X=X, eval_y=y)
    learner = ProxyLearner(proxy, target, target_every=2)
    learner.train(np.arange(50), y[:50], warm_start=False)
    assert target.model is None and learner.infer(np.arange(3)).probs.shape == (3, 3)
    assert learner.train(np.arange(80), y[:80], warm_start=True).extra["target_trained"]
    assert learner.evaluate()["accuracy"] > 0.8


# ---- inference skipping ----------------------------------------------------------------------------------
def test_plan_inference_refreshes_every_record_within_r_loops():
    from alloop.metadata import History, Snapshot

    rng = np.random.default_rng(0)
    n, r = 200, 3
    base = rng.dirichlet([0.3, 0.3], size=n)
    h = History()
    policy = InferencePolicy(refresh_every=r, stable_loops=1, min_count=1, margin_gap=0.05)
    inferred_at: list[np.ndarray] = []
    for loop in range(12):
        idx = np.arange(n)
        if loop:
            feats = h.features(idx)
            feats["last_loop"] = h.last_loop[idx].astype(np.float64)
            idx = idx[plan_inference(feats, loop, policy)]
        inferred_at.append(idx)
        probs = np.clip(base[idx] + rng.normal(0, 0.01, size=(idx.size, 2)), 1e-6, None)
        h.update(idx, Snapshot(ids=idx, probs=probs / probs.sum(1, keepdims=True)), loop=loop)
    assert min(a.size for a in inferred_at[1:]) < n  # something was skipped
    last = np.full(n, 0)
    for loop, idx in enumerate(inferred_at):
        assert (loop - last <= r).all()  # nobody waited more than r loops
        last[idx] = loop
    margins = np.abs(base[:, 0] - base[:, 1])
    uncertain = margins < np.quantile(margins, 0.2)
    for idx in inferred_at[1:]:
        assert np.isin(np.flatnonzero(uncertain), idx).all()  # records near the threshold are always inferred


# ---- accounting ------------------------------------------------------------------------------------------
def test_savings_report_totals_equal_per_loop_sums():
    rng = np.random.default_rng(0)
    run = {
        loop: {
            "train_cpu_s": float(rng.random()),
            "infer_cpu_s": float(rng.random()),
            "select_cpu_s": float(rng.random()),
            "records_trained": float(10 + loop),
            "records_inferred": float(100 - loop),
        }
        for loop in range(5)
    }
    base = {loop: {k: 2 * v for k, v in row.items()} for loop, row in run.items()}
    rep = savings_report(run, baseline=base)
    for key in ("train_cpu_s", "infer_cpu_s", "select_cpu_s", "records_trained", "records_inferred"):
        assert rep["total"][key] == pytest.approx(sum(r[key] for r in run.values()))
    assert rep["total"]["cpu_s"] == pytest.approx(sum(r["cpu_s"] for r in rep["loops"].values()))
    assert rep["saved"]["cpu_x"] == pytest.approx(2.0) and not rep["estimated"]
    est = savings_report(run, labeled={k: 10 + k for k in run}, pool_unlabeled={k: 200.0 for k in run})
    assert est["estimated"] and est["baseline_total"]["records_inferred"] == 1000.0
