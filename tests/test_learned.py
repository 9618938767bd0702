"""The learned selector: features, the numpy model and its JSON file, online adaptation, meta-training."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.stats import spearmanr
from typer.testing import CliRunner

from alloop import SelectionEngine, Snapshot
from alloop.engine.features import DEFAULT_FEATURES, FEATURES, record_features
from alloop.engine.learned import (
    FAMILIES,
    SHIPPED,
    OnlineErrorModel,
    Selector,
    fit_selector,
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
    F = record_features(full)
    G = record_features(probs_only)
    assert F.shape == G.shape == (30, len(DEFAULT_FEATURES)) and np.isfinite(F).all()
    j = DEFAULT_FEATURES.index("distance_to_labeled")
    assert (G[:, j] == 0).all() and (F[:, j] > 0).any()
    assert (F[:, DEFAULT_FEATURES.index("has_embeddings")] == 1).all()
    assert set(DEFAULT_FEATURES) <= set(FEATURES)
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


def test_look_ahead_targets_are_z_scored_per_loop():
    F, t = simulate_episode("moons", 0, n=150, initial=6, batch=6, budget=18, lookahead=4)
    assert F.shape == (t.size, len(DEFAULT_FEATURES)) and t.size > 0
    assert abs(t.mean()) < 1e-9


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
    again = meta_train(families=FAMILIES[:2], seeds=1, workers=1, cache=cache, episode={"budget": 16, "lookahead": 2})
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
