"""The learned selector: features, the numpy model and its JSON file, online adaptation, meta-training."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy.stats import spearmanr
from typer.testing import CliRunner

from alloop import SelectionEngine, Snapshot
from alloop.engine.features import DEFAULT_FEATURES, EPISODE_FEATURES, FEATURES, record_features
from alloop.engine.learned import (
    FAMILIES,
    SHIPPED,
    OnlineErrorModel,
    Selector,
    fit_selector,
    listwise_gradient,
    load_selector,
    meta_train,
    simulate_episode,
    synthetic_task,
)
from alloop.errors import ConfigError, DataError
from alloop.records import RecordState
from alloop.strategies.auto import LearnedStrategy
from alloop.testing import conformance_context


def test_features_are_finite_and_use_embeddings_only_when_shared():
    full = conformance_context(30, include={"probs", "history", "embeddings"})
    probs_only = conformance_context(30, include={"probs", "history"})
    F = record_features(full, EPISODE_FEATURES)
    G = record_features(probs_only, EPISODE_FEATURES)
    assert F.shape == G.shape == (30, len(EPISODE_FEATURES)) and np.isfinite(F).all()
    j = EPISODE_FEATURES.index("distance_to_labeled")
    assert (G[:, j] == 0).all() and (F[:, j] > 0).any()
    assert (F[:, EPISODE_FEATURES.index("has_embeddings")] == 1).all()
    assert set(DEFAULT_FEATURES) <= set(EPISODE_FEATURES) <= set(FEATURES)
    assert record_features(full).shape == (30, len(DEFAULT_FEATURES))
    # an unknown name (a feature added by a newer version) reads as zeros
    assert (record_features(full, ["no-such-feature"]) == 0).all()


def test_selector_round_trips_through_json_and_rejects_other_versions(tmp_path):
    rng = np.random.default_rng(0)
    F = rng.normal(size=(300, 3))
    t = F[:, 0] - 0.5 * F[:, 1]
    sel = fit_selector(F, t, ["a", "b", "c"], epochs=300)
    assert spearmanr(sel.score(F), t).statistic > 0.95
    path = tmp_path / "sel.json"
    sel.save(path)
    back = load_selector(path)
    np.testing.assert_allclose(back.score(F), sel.score(F))
    bad = json.loads(path.read_text()) | {"version": 2}
    with pytest.raises(DataError, match="version 1"):
        Selector.from_dict(bad)
    with pytest.raises(ConfigError, match="No selector file"):
        load_selector(tmp_path / "missing.json")


def test_the_shipped_selector_is_numpy_json_and_records_its_recipe():
    raw = json.loads(SHIPPED.read_text())
    assert raw["format"] == "alloop-selector" and raw["version"] == 1
    sel = load_selector()
    assert set(sel.features) <= set(FEATURES)
    meta = sel.meta
    assert "alloop meta-train" in meta["command"] and meta["families"]
    assert set(meta["families"]) <= set(FAMILIES)  # synthetic families only, never real data sets
    scores = sel.score(record_features(conformance_context(20), sel.features))
    assert scores.shape == (20,) and np.isfinite(scores).all()


@pytest.mark.parametrize("family", FAMILIES)
def test_synthetic_families(family):
    X, y = synthetic_task(family, 3, n=120)
    assert X.shape[0] == y.size == 120 and len(np.unique(y)) >= 2
    assert np.allclose(X.mean(axis=0), 0, atol=1e-9)
    X2, y2 = synthetic_task(family, 3, n=120)
    assert np.array_equal(X, X2) and np.array_equal(y, y2)


def test_unknown_family_is_refused():
    with pytest.raises(ConfigError, match="Unknown task family"):
        synthetic_task("spirals", 0)
    with pytest.raises(ConfigError, match="non-empty subset"):
        meta_train(families=("spirals",))
    with pytest.raises(ConfigError, match="'models' of meta-train"):
        meta_train(models=("svm",))
    with pytest.raises(ConfigError, match="not recorded by simulated campaigns"):
        meta_train(fit={"features": ("no-such-feature",)})


@pytest.mark.parametrize("model", ["logreg", "random-forest"])
def test_look_ahead_targets_are_z_scored_per_loop(model):
    F, t, loops = simulate_episode("moons", 0, n=150, initial=6, batch=6, budget=18, lookahead=4, model=model)
    assert F.shape == (t.size, len(EPISODE_FEATURES)) and t.size > 0 and loops.shape == t.shape
    assert sorted(set(loops.tolist())) == [0, 1]  # 6 → 12 → 18 labels: two loops of look-ahead
    for v in (0, 1):
        assert abs(t[loops == v].mean()) < 1e-9
    with pytest.raises(ConfigError, match="'model' of a simulated campaign"):
        simulate_episode("moons", 0, model="svm")


def test_listwise_fit_learns_the_order_within_loops_only():
    rng = np.random.default_rng(1)
    F = rng.normal(size=(400, 2))
    groups = np.repeat(np.arange(40), 10)
    # the order within a group follows feature 0; a per-group offset follows feature 1 (meaningless for ranking)
    t = F[:, 0] + 10.0 * np.repeat(rng.normal(size=40), 10)
    sel = fit_selector(F, t, ["a", "b"], groups=groups, objective="listwise", epochs=300)
    s = sel.score(F)
    within = np.mean([spearmanr(s[groups == g], t[groups == g]).statistic for g in range(40)])
    assert within > 0.9
    with pytest.raises(ConfigError, match="'groups'"):
        fit_selector(F, t, ["a", "b"], objective="listwise")
    with pytest.raises(ConfigError, match="'objective'"):
        fit_selector(F, t, ["a", "b"], objective="hinge")
    # the gradient sums to zero within each group: only the order within a loop is learned
    g = listwise_gradient(rng.normal(size=400), t, groups)
    assert np.allclose(np.bincount(groups, weights=g), 0.0)


def test_rank_features_do_not_depend_on_the_probability_scale():
    ctx = conformance_context(40, include={"probs", "history", "embeddings"})
    sharp = ctx.probs**3 / (ctx.probs**3).sum(axis=1, keepdims=True)  # a more confident model, same order
    names = ["uncertainty_margin_rank", "entropy_rank", "density_rank", "distance_to_labeled_rank"]
    a = record_features(ctx, names)
    b = record_features(replace(ctx, probs=sharp), names)
    assert ((a >= 0) & (a <= 1)).all()
    np.testing.assert_allclose(a[:, 3], b[:, 3])  # geometry only
    assert spearmanr(a[:, 0], b[:, 0]).statistic > 0.9
    raw = [record_features(c, ["uncertainty_margin"]) for c in (ctx, replace(ctx, probs=sharp))]
    assert not np.allclose(*raw)  # the raw margin does depend on it
    no_emb = record_features(conformance_context(10, include={"probs", "history"}), ["distance_to_labeled_rank"])
    assert (no_emb == 0.5).all()


def test_meta_train_command_writes_a_selector_and_reuses_its_cache(tmp_path):
    import typer

    from alloop._cli_meta_train import meta_train_command

    app = typer.Typer()
    app.command()(meta_train_command)
    out, cache = tmp_path / "sel.json", tmp_path / "cache"
    args = [
        "--out",
        str(out),
        "--seeds",
        "1",
        "--workers",
        "1",
        "--budget",
        "16",
        "--lookahead",
        "2",
        "--model",
        "logreg",
        "--cache",
        str(cache),
        "--no-progress",
    ]
    for fam in FAMILIES[2:]:
        args += ["--exclude", fam]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    sel = load_selector(out)
    assert sel.meta["families"] == list(FAMILIES[:2]) and "--exclude moons" in sel.meta["command"]
    assert len(list(cache.glob("*.npz"))) == 2
    again = meta_train(
        families=FAMILIES[:2],
        seeds=1,
        models=["logreg"],
        workers=1,
        cache=cache,
        episode={"budget": 16, "lookahead": 2},
    )
    np.testing.assert_allclose(again.W1, sel.W1)  # same cached examples, same seed: the same fit


def test_online_error_model_learns_which_records_the_model_gets_wrong():
    m = OnlineErrorModel.from_state(None, 2)
    Z = np.array([[1.0, 0.0], [0.0, 1.0]] * 20)
    m.update(Z, np.array([1, 0] * 20))
    again = OnlineErrorModel.from_state(json.loads(json.dumps(m.state())), 2)
    assert again.n == 40 and again.predict(Z[:1])[0] > 0.5 > again.predict(Z[1:2])[0]


def test_learned_strategy_adapts_online_as_labels_arrive():
    rng = np.random.default_rng(0)
    strat = LearnedStrategy()
    eng = SelectionEngine(strategy=strat, seed=0, classes=[0, 1])
    eng.add_records(np.arange(200))
    y = rng.integers(0, 2, size=200)
    for loop in range(4):
        unl = eng.pool.ids(RecordState.UNLABELED)
        p = rng.dirichlet(np.ones(2), size=unl.size)
        eng.ingest(Snapshot(ids=unl, probs=p), loop=loop)
        sel = eng.recommend(10, loop=loop)
        eng.observe_labels(sel.ids, y[sel.ids])
    assert strat.state_dict()["online"]["n"] == 30  # three batches' outcomes seen so far
    assert "online error model on 30 labels" in strat.explain()
    frozen = LearnedStrategy(online=False)
    frozen.load_state_dict(strat.state_dict())
    ctx = eng.context(strat)
    assert not np.allclose(frozen.score(ctx), strat.score(ctx))


def test_learned_batch_is_spread_out_among_the_best_when_embeddings_are_shared():
    from alloop.strategies import SelectionContext

    rng = np.random.default_rng(0)
    emb = np.vstack([np.zeros((5, 2)), rng.normal(size=(25, 2)) * 5])  # the 5 best-scored are duplicates
    scores = -np.arange(30.0)
    ctx = SelectionContext(ids=np.arange(30), index=np.arange(30), embeddings=emb, n_classes=2)
    spread = LearnedStrategy(diversity=3.0)._batch(ctx, scores, 5)
    assert spread[0] == 0 and len(set(spread.tolist()) & {0, 1, 2, 3, 4}) == 1 and (spread < 15).all()
    assert LearnedStrategy(diversity=1.0)._batch(ctx, scores, 5).tolist() == [0, 1, 2, 3, 4]
    no_emb = SelectionContext(ids=np.arange(30), index=np.arange(30), n_classes=2)
    assert LearnedStrategy(diversity=3.0)._batch(no_emb, scores, 5).tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ConfigError, match="'diversity' parameter of LearnedStrategy"):
        LearnedStrategy(diversity=0.5).select(conformance_context(20), 3)
