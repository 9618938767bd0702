"""PyTorch models (mlp, cnn), ensembles, ModelLearner and TorchLearner."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from sklearn.base import clone

from alloop.datasets import load_dataset
from alloop.errors import ConfigError, MissingDependencyError, StateError
from alloop.models import CNNClassifier, EnsembleClassifier, MLPClassifier, build_model, model_info

torch = pytest.importorskip("torch")

from alloop.loop._torch import ModelLearner, TorchLearner  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    ds = load_dataset("digits")
    rng = np.random.default_rng(0)
    order = rng.permutation(ds.n_samples)
    return ds, order[:300], order[300:]


@pytest.fixture(scope="module")
def small_mlp(digits):
    ds, train, _ = digits
    return MLPClassifier(epochs=5, seed=0).fit(ds.X[train], ds.y[train])


def test_mlp_defaults_are_the_reference_recipe():
    est = build_model("mlp", seed=4)
    assert isinstance(est, MLPClassifier)
    p = est.get_params()
    assert (p["hidden"], p["dropout"], p["lr"], p["batch_size"], p["epochs"], p["standardize"], p["seed"]) == (
        (256, 256),
        0.2,
        1e-3,
        64,
        30,
        True,
        4,
    )
    for word in ("two hidden layers of 256", "dropout 0.2", "1e-3", "mini-batches of 64", "30 epochs", "standardised"):
        assert word in " ".join(MLPClassifier.__doc__.split()), word
    clone(est)  # a well-formed scikit-learn estimator


def test_fit_predict_shapes_and_valid_probabilities(digits, small_mlp):
    ds, _, test = digits
    probs = small_mlp.predict_proba(ds.X[test])
    assert probs.shape == (test.size, 10) and probs.dtype == np.float64
    assert probs.min() >= 0 and np.allclose(probs.sum(axis=1), 1.0)
    assert small_mlp.classes_.tolist() == list(range(10))
    assert small_mlp.predict(ds.X[test[:5]]).shape == (5,)
    assert small_mlp.embed(ds.X[test]).shape == (test.size, 256)


def test_mc_samples_differ_across_passes_and_are_seeded(digits, small_mlp):
    ds, _, test = digits
    X = ds.X[test[:50]]
    a = small_mlp.predict_samples(X, 4, seed=1)
    b = small_mlp.predict_samples(X, 4, seed=1)
    c = small_mlp.predict_samples(X, 4, seed=2)
    assert a.shape == (4, 50, 10)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.allclose(a[0], a[1])  # dropout masks differ between passes
    np.testing.assert_allclose(a.sum(axis=2), 1.0)
    # dropout is off for predict_proba: it is deterministic and differs from an MC pass
    np.testing.assert_array_equal(small_mlp.predict_proba(X), small_mlp.predict_proba(X))


def test_same_seed_same_weights_and_training_dynamics(digits):
    ds, train, test = digits
    a = MLPClassifier(epochs=2, seed=3).fit(ds.X[train], ds.y[train])
    b = MLPClassifier(epochs=2, seed=3).fit(ds.X[train], ds.y[train])
    c = MLPClassifier(epochs=2, seed=4).fit(ds.X[train], ds.y[train])
    np.testing.assert_array_equal(a.predict_proba(ds.X[test]), b.predict_proba(ds.X[test]))
    assert not np.array_equal(a.predict_proba(ds.X[test]), c.predict_proba(ds.X[test]))
    assert [h["epoch"] for h in a.history_] == [1, 2]
    assert a.history_[1]["loss"] < a.history_[0]["loss"]
    p_true = a.record_dynamics_["p_true"]
    assert p_true.shape == (train.size, 2) and ((p_true >= 0) & (p_true <= 1)).all()
    assert p_true[:, 1].mean() > p_true[:, 0].mean()  # the true label gets likelier as training goes on


def test_warm_start_continues_from_the_previous_weights(digits):
    ds, train, _ = digits
    X, y = ds.X[train], ds.y[train]
    warm = MLPClassifier(epochs=3, seed=0, warm_start=True).fit(X, y)
    before = {k: v.clone() for k, v in warm.net_.state_dict().items()}
    warm.set_params(epochs=1).fit(X, y)
    assert warm.warm_started_
    assert len(warm.history_) == 4 and warm.history_[-1]["epoch"] == 4
    cold = MLPClassifier(epochs=1, seed=0).fit(X, y)
    assert not cold.warm_started_
    # one more epoch from trained weights beats one epoch from scratch
    assert warm.history_[-1]["loss"] < cold.history_[-1]["loss"]
    changed = any(not torch.equal(before[k], v) for k, v in warm.net_.state_dict().items())
    assert changed


def test_mlp_reaches_0_90_on_digits_with_300_labels(digits):
    ds, train, test = digits
    est = build_model("mlp", seed=0).fit(ds.X[train], ds.y[train])  # the full reference recipe
    acc = float(np.mean(est.predict(ds.X[test]) == ds.y[test]))
    assert acc >= 0.90, acc


def test_logreg_reaches_0_90_on_digits_with_300_labels(digits):
    ds, train, test = digits
    est = build_model("logreg").fit(ds.X[train], ds.y[train])
    assert float(np.mean(est.predict(ds.X[test]) == ds.y[test])) >= 0.90


def test_cnn_on_digits_images(digits):
    ds, train, test = digits
    est = CNNClassifier(epochs=10, seed=0).fit(ds.X[train], ds.y[train])
    assert est.net_.features(est._scaled(ds.X[:2])).shape == (2, 128)
    probs = est.predict_proba(ds.X[test])
    assert probs.shape == (test.size, 10) and np.allclose(probs.sum(axis=1), 1.0)
    assert float(np.mean(est.predict(ds.X[test]) == ds.y[test])) >= 0.80
    s = est.predict_samples(ds.X[test[:20]], 3, seed=0)
    assert s.shape == (3, 20, 10) and not np.allclose(s[0], s[1])
    assert est.embed(ds.X[test[:20]]).shape == (20, 128)


def test_cnn_mc_samples_are_seeded_and_warm_start_continues(digits):
    ds, train, test = digits
    X, y = ds.X[train[:120]], ds.y[train[:120]]
    est = CNNClassifier(epochs=2, seed=0, warm_start=True).fit(X, y)
    a, b = (est.predict_samples(ds.X[test[:20]], 3, seed=7) for _ in range(2))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, est.predict_samples(ds.X[test[:20]], 3, seed=8))
    before = est.history_[-1]["loss"]
    est.set_params(epochs=1).fit(X, y)
    assert est.warm_started_ and [h["epoch"] for h in est.history_] == [1, 2, 3]
    assert est.history_[-1]["loss"] < before  # continued training, not a restart


def test_cnn_image_shapes():
    rng = np.random.default_rng(0)
    X = rng.random((40, 3 * 8 * 8))
    y = np.arange(40) % 2
    assert CNNClassifier(epochs=1).fit(X, y).predict_proba(X).shape == (40, 2)  # square RGB guessed
    X28 = rng.random((20, 28 * 28))
    assert CNNClassifier(epochs=1).fit(X28, y[:20]).embed(X28).shape == (20, 128)
    with pytest.raises(ConfigError, match="image_shape"):
        CNNClassifier(epochs=1).fit(rng.random((10, 30)), y[:10])
    with pytest.raises(ConfigError, match="image_shape"):
        CNNClassifier(epochs=1, image_shape=(1, 5, 5)).fit(rng.random((10, 64)), y[:10])


def test_bad_parameters_and_unfitted_use():
    X, y = np.eye(4), np.array([0, 1, 0, 1])
    with pytest.raises(ConfigError, match="'dropout'"):
        MLPClassifier(dropout=1.5).fit(X, y)
    with pytest.raises(ConfigError, match="'hidden'"):
        MLPClassifier(hidden=()).fit(X, y)
    with pytest.raises(StateError, match="not fitted"):
        MLPClassifier().predict_proba(X)


def test_without_torch_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch now raises ImportError
    est = build_model("mlp")  # building needs no torch
    with pytest.raises(MissingDependencyError, match=r"pip install 'alloop\[torch\]'"):
        est.fit(np.eye(4), np.array([0, 1, 0, 1]))


def test_ensemble_gives_committee_samples(digits):
    ds, train, test = digits
    est = build_model("ensemble(mlp, k=3)", seed=1)
    assert isinstance(est, EnsembleClassifier) and est.k == 3
    est.set_params(base=MLPClassifier(epochs=2)).fit(ds.X[train], ds.y[train])
    s = est.predict_samples(ds.X[test[:30]])
    assert s.shape == (3, 30, 10)
    assert [m.seed for m in est.members_] == [1, 2, 3]
    assert not np.allclose(s[0], s[1])
    np.testing.assert_allclose(est.predict_proba(ds.X[test[:30]]), s.mean(axis=0))
    assert est.embed(ds.X[test[:3]]).shape == (3, 256)
    info = model_info("ensemble(mlp, k=3)")
    assert info.extra == "torch" and "samples" in info.metadata
    with pytest.raises(ConfigError, match="k=INT"):
        build_model("ensemble(mlp, size=3)")
    with pytest.raises(ConfigError, match="'k'"):
        build_model("ensemble(mlp, k=1)")


def test_model_learner_fills_samples_embeddings_and_dynamics(digits):
    ds, train, test = digits
    learner = ModelLearner(
        MLPClassifier(epochs=3), ds.X[train], ds.ids[train], eval_X=ds.X[test], eval_y=ds.y[test],
        classes=ds.classes, warm_start=True, mc_samples=5, seed=0,
    )
    labeled = ds.ids[train[:100]]
    rep = learner.train(labeled, ds.y[train[:100]], warm_start=False)
    assert rep.mode == "full" and rep.epochs == 3 and len(rep.extra["epochs"]) == 3
    assert rep.extra["dynamics"]["p_true"].shape == (100, 3)
    np.testing.assert_array_equal(rep.extra["dynamics"]["ids"], labeled)
    snap = learner.infer(ds.ids[train[100:150]])
    assert snap.samples.shape == (5, 50, 10) and snap.embeddings.shape == (50, 256)
    assert snap.available >= {"probs", "samples", "embeddings"}
    again = learner.infer(ds.ids[train[100:150]])
    np.testing.assert_array_equal(snap.samples, again.samples)
    rep2 = learner.train(ds.ids[train[:150]], ds.y[train[:150]], warm_start=True)
    assert rep2.mode == "warm" and len(learner.model.history_) == 6
    assert learner.evaluate()["accuracy"] > 0.5


def test_simulate_runs_with_the_mlp_model():
    from alloop.bench import simulate

    out = simulate("iris", "mlp", ["margin", "random"], initial=10, batch=10, budget=30, seeds=1)
    assert out["results"]["margin"]["labels"] == [10, 20, 30]
    assert 0.0 <= out["results"]["margin"]["aubc_mean"] <= 1.0


class _Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Dropout(0.3))
        self.head = torch.nn.Linear(32, 10)

    def forward(self, x):
        return self.head(self.body(x / 16.0))


def test_torch_learner_checkpoints_mc_dropout_and_embedding_hook(digits, tmp_path):
    ds, train, test = digits
    X = ds.X.astype(np.float32)
    learner = TorchLearner(
        _Net, X, ds.ids, classes=list(range(10)), epochs=5, mc_samples=4, embedding_layer="body",
        optimizer_fn=lambda params: torch.optim.Adam(params, lr=1e-2),
        checkpoint_dir=tmp_path / "ckpt", eval_X=X[test], eval_y=ds.y[test], seed=0,
    )
    rep = learner.train(ds.ids[train], ds.y[train], warm_start=False)
    assert rep.mode == "full" and len(rep.extra["epochs"]) == 5
    assert rep.extra["checkpoint"].endswith("model-0001.safetensors")
    snap = learner.infer(ds.ids[test[:40]])
    assert snap.probs.shape == (40, 10) and snap.embeddings.shape == (40, 32)
    assert snap.samples.shape == (4, 40, 10) and not np.allclose(snap.samples[0], snap.samples[1])
    np.testing.assert_array_equal(learner.infer(ds.ids[test[:40]]).samples, snap.samples)  # seeded
    assert learner.evaluate()["accuracy"] > 0.6
    # a new process (new learner) warm-starts from the latest checkpoint on disk
    fresh = TorchLearner(_Net, X, ds.ids, classes=list(range(10)), epochs=1, checkpoint_dir=tmp_path / "ckpt")
    fresh.load_checkpoint(tmp_path / "ckpt" / "model-0001.safetensors")
    np.testing.assert_allclose(fresh.infer(ds.ids[test[:40]]).probs, snap.probs, atol=1e-6)
    resumed = TorchLearner(_Net, X, ds.ids, classes=list(range(10)), epochs=1, checkpoint_dir=tmp_path / "ckpt")
    assert resumed.train(ds.ids[train], ds.y[train], warm_start=True).mode == "warm"
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["model-0001.safetensors", "model-0002.safetensors"]
    bad = TorchLearner(_Net, X, classes=list(range(10)), epochs=0, embedding_layer="nope")
    bad.train(ds.ids[:20], ds.y[:20], warm_start=False)
    with pytest.raises(ConfigError, match="'embedding_layer'.*body, body.0"):
        bad.infer(ds.ids[:2])


def test_torch_learner_with_a_fit_function_and_bad_settings(digits):
    ds, train, _ = digits
    X = ds.X.astype(np.float32)
    calls = []

    def fit_fn(model, x, y):
        calls.append((tuple(x.shape), tuple(y.shape)))
        return {"loss": 0.5}

    learner = TorchLearner(_Net, X, classes=list(range(10)), fit_fn=fit_fn)
    rep = learner.train(ds.ids[train[:30]], ds.y[train[:30]], warm_start=False)
    assert calls == [((30, 64), (30,))] and rep.extra["epochs"] == [{"loss": 0.5}]
    with pytest.raises(ConfigError, match="either 'train_step' or 'fit_fn'"):
        TorchLearner(_Net, X, classes=[0, 1], fit_fn=fit_fn, train_step=fit_fn).train(
            ds.ids[:2], ds.y[:2], warm_start=False
        )
    with pytest.raises(ConfigError, match="'device'"):
        TorchLearner(_Net, X, classes=[0, 1], device="tpu").train(ds.ids[:2], ds.y[:2], warm_start=False)
    with pytest.raises(StateError, match="train"):
        TorchLearner(_Net, X, classes=list(range(10))).infer(ds.ids[:2])
