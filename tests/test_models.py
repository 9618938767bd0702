"""Built-in models, full-class probabilities and metrics."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import f1_score, log_loss, recall_score

from alloop.errors import ConfigError, DataError
from alloop.models import MODELS, build_model, classification_metrics, list_models, predict_proba_full


def test_registry_lists_every_model_with_a_description():
    names = [name for name, _ in list_models()]
    assert names == list(MODELS)
    expected = {"logreg", "svm-rbf", "random-forest", "knn", "gradient-boosting", "naive-bayes", "gaussian-nb"}
    assert expected <= set(names)
    assert all(desc and "\n" not in desc for _, desc in list_models())


def test_models_are_built_exactly_as_documented():
    logreg = build_model("logreg")
    assert [type(s).__name__ for _, s in logreg.steps] == ["StandardScaler", "LogisticRegression"]
    assert logreg.steps[1][1].max_iter == 1000
    svm = build_model("svm-rbf")
    assert [type(s).__name__ for _, s in svm.steps] == ["StandardScaler", "SmallSampleCalibratedSVC"]
    rng = np.random.default_rng(0)
    X3 = rng.normal(size=(30, 2)) + np.repeat(np.arange(3), 10)[:, None]
    y3 = np.repeat(np.arange(3), 10)
    cal = build_model("svm-rbf").fit(X3, y3).steps[1][1].model_  # >= 5 per class: exactly the documented model
    assert type(cal).__name__ == "CalibratedClassifierCV" and type(cal.estimator).__name__ == "SVC"
    assert cal.ensemble is False and cal.cv == 5
    rf = build_model("random-forest", seed=7)
    assert (type(rf).__name__, rf.n_estimators, rf.random_state) == ("RandomForestClassifier", 100, 7)
    knn = build_model("knn")
    assert [type(s).__name__ for _, s in knn.steps] == ["StandardScaler", "KNeighborsClassifier"]
    assert build_model("gradient-boosting", seed=3).random_state == 3
    assert type(build_model("gaussian-nb")).__name__ == "GaussianNB"
    nb = build_model("naive-bayes")  # the contract: multinomial naive Bayes on word counts of texts
    assert [type(s).__name__ for _, s in nb.steps] == ["FunctionTransformer", "CountVectorizer", "MultinomialNB"]


def test_naive_bayes_counts_words_of_texts():
    texts = np.array([["good tasty snack"], ["awful stale bad"], ["tasty good"], ["bad awful"]], dtype=object)
    est = build_model("naive-bayes").fit(texts, np.array(["great", "other", "great", "other"]))
    probs = est.predict_proba(np.array([["good"], ["stale"]], dtype=object))
    assert est.classes_.tolist() == ["great", "other"] and probs[0, 0] > 0.5 > probs[1, 0]


def test_old_naive_bayes_meanings_fail_loudly_naming_the_new_names():
    with pytest.raises(ConfigError, match="use 'gaussian-nb'"):  # numeric features: the old Gaussian meaning
        build_model("naive-bayes").fit(np.array([[0.0, 1.0], [1.0, 0.0]]), np.array([0, 1]))
    with pytest.raises(ConfigError, match="now called 'naive-bayes'"):
        build_model("naive-bayes-text")
    with pytest.raises(ConfigError, match="now called 'naive-bayes'"):
        build_model("ensemble(naive-bayes-text, k=3)")
    from alloop.models import model_info

    assert (model_info("naive-bayes").data, model_info("gaussian-nb").data) == ("text", "tabular")


def test_build_model_returns_a_fresh_unfitted_estimator_each_time():
    a, b = build_model("random-forest"), build_model("random-forest")
    assert a is not b
    assert not hasattr(a, "classes_")
    clone(a)  # a well-formed scikit-learn estimator


def test_unknown_model_names_the_known_ones_with_a_hint():
    with pytest.raises(ConfigError) as info:
        build_model("randomforest")
    msg = str(info.value)
    assert "'random-forest'" in msg and "Did you mean" in msg
    for name in MODELS:
        assert name in msg


def test_bad_seed_is_a_config_error():
    with pytest.raises(ConfigError, match="'seed'"):
        build_model("logreg", seed=-1)


def _fit(y):
    X = np.arange(len(y), dtype=float).reshape(-1, 1)
    return build_model("gaussian-nb").fit(X, np.asarray(y)), X


def test_predict_proba_full_pads_unseen_classes_with_zero_and_orders_columns():
    est, X = _fit([2, 2, 0, 0])  # trained on classes 0 and 2 only
    raw = est.predict_proba(X)
    full = predict_proba_full(est, X, [0, 1, 2, 3])
    assert full.dtype == np.float64 and full.shape == (4, 4)
    np.testing.assert_array_equal(full[:, [1, 3]], 0.0)
    np.testing.assert_array_equal(full[:, [0, 2]], raw)
    np.testing.assert_allclose(full.sum(axis=1), 1.0)
    reordered = predict_proba_full(est, X, [3, 2, 1, 0])
    np.testing.assert_array_equal(reordered[:, 1], raw[:, 1])
    np.testing.assert_array_equal(reordered[:, 3], raw[:, 0])


def test_predict_proba_full_with_string_classes():
    est, X = _fit(["cat", "dog", "cat", "dog"])
    full = predict_proba_full(est, X, ["bird", "cat", "dog"])
    np.testing.assert_array_equal(full[:, 0], 0.0)
    np.testing.assert_array_equal(full[:, 1:], est.predict_proba(X))


def test_predict_proba_full_rejects_a_class_missing_from_the_list():
    est, X = _fit([0, 1, 2, 2])
    with pytest.raises(DataError, match="class 2"):
        predict_proba_full(est, X, [0, 1])


def test_metrics_match_scikit_learn_over_the_full_class_list():
    rng = np.random.default_rng(0)
    classes = [0, 1, 2, 3]
    probs = rng.dirichlet(np.ones(4), size=50)
    probs[:, 3] = 0.0  # class 3 never predicted ...
    probs /= probs.sum(axis=1, keepdims=True)
    y = rng.integers(0, 3, size=50)  # ... and never true
    m = classification_metrics(y, probs, classes)
    pred = np.argmax(probs, axis=1)
    assert m["accuracy"] == pytest.approx(np.mean(pred == y))
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, labels=classes, average="macro", zero_division=0.0))
    assert m["log_loss"] == pytest.approx(log_loss(y, probs, labels=classes))
    recalls = recall_score(y, pred, labels=classes, average=None, zero_division=0.0)
    for c, r in zip(classes, recalls, strict=True):
        assert m[f"recall[{c}]"] == pytest.approx(r)
    assert set(m) == {"accuracy", "macro_f1", "log_loss"} | {f"recall[{c}]" for c in classes}


def test_accuracy_breaks_argmax_ties_to_the_lowest_column():
    probs = np.array([[0.5, 0.5], [0.5, 0.5]])
    assert classification_metrics(np.array(["a", "a"]), probs, ["a", "b"])["accuracy"] == 1.0
    assert classification_metrics(np.array(["b", "b"]), probs, ["a", "b"])["accuracy"] == 0.0


def test_log_loss_clips_zero_probabilities_at_1e_15():
    m = classification_metrics(np.array([1]), np.array([[1.0, 0.0]]), [0, 1])
    assert m["log_loss"] == pytest.approx(-np.log(1e-15))
    assert np.isfinite(m["log_loss"])


def test_metrics_reject_mismatched_shapes_and_unknown_labels():
    with pytest.raises(DataError, match="one column per class"):
        classification_metrics(np.array([0]), np.array([[1.0, 0.0]]), [0, 1, 2])
    with pytest.raises(DataError, match="'y_true'"):
        classification_metrics(np.array([5]), np.array([[1.0, 0.0]]), [0, 1])


def test_every_model_says_its_data_extra_and_metadata():
    from alloop.models import model_info

    for info in MODELS.values():
        assert info.data in ("tabular", "image", "text")
        assert info.extra in (None, "torch", "text")
        assert "probs" in info.metadata and set(info.metadata) <= {"probs", "embeddings", "samples", "dynamics"}
        assert model_info(info.name) is info
    assert {"mlp", "cnn", "minilm", "ensemble", "naive-bayes", "gaussian-nb"} <= set(MODELS)
    assert model_info("mlp").metadata == ("probs", "embeddings", "samples", "dynamics")
    assert model_info("ensemble(knn, k=3)").min_labels == 5
    with pytest.raises(ConfigError, match="takes no arguments"):
        model_info("mlp(k=3)")
    with pytest.raises(ConfigError, match="cannot wrap another ensemble"):
        model_info("ensemble(ensemble)")


def test_importing_the_library_does_not_import_torch():
    import subprocess
    import sys

    code = "import alloop, alloop.models, alloop.datasets, alloop.loop._torch, sys; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_ensemble_of_a_deterministic_model_differs_by_bootstrap():
    from alloop.datasets import load_dataset

    ds = load_dataset("iris")
    est = build_model("ensemble(logreg, k=4)", seed=2).fit(ds.X[::3], ds.y[::3])
    s = est.predict_samples(ds.X)
    assert s.shape == (4, 150, 3) and not np.allclose(s[0], s[1])
    again = build_model("ensemble(logreg, k=4)", seed=2).fit(ds.X[::3], ds.y[::3]).predict_samples(ds.X)
    np.testing.assert_array_equal(s, again)


def test_models_command_lists_every_model_as_json_and_as_a_table():
    import json

    import typer
    from typer.testing import CliRunner

    from alloop._cli_models import models_command

    app = typer.Typer()
    app.command("models")(models_command)
    app.command("other")(lambda: None)  # two commands, so "models" is addressed by name as in alloop's CLI
    runner = CliRunner()
    res = runner.invoke(app, ["models", "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    assert [r["name"] for r in rows] == list(MODELS)
    mlp = next(r for r in rows if r["name"] == "mlp")
    assert mlp["data"] == "tabular" and mlp["extra"] == "torch" and "samples" in mlp["metadata"]
    assert set(rows[0]) == {"name", "description", "data", "extra", "metadata", "min_labels", "installed"}
    table = runner.invoke(app, ["models"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "minilm" in table.output and "cnn" in table.output


def test_svm_rbf_fits_with_few_examples_per_class():
    # early active-learning loops: the smallest class has few examples (fewer folds) or just 1 (softmax fallback)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(9, 2)) + np.array([0, 0, 0, 0, 0, 0, 3, 3, 6])[:, None]
    for y in (np.array([0, 0, 0, 0, 0, 0, 1, 1, 2]), np.array([0, 0, 0, 0, 0, 1, 1, 1, 1])):
        model = build_model("svm-rbf").fit(X, y)
        p = model.predict_proba(X)
        assert p.shape == (9, len(np.unique(y))) and np.allclose(p.sum(axis=1), 1) and (p >= 0).all()
    assert model.steps[1][1].calibrated_ is True  # 4 and 5 examples: 4-fold calibration
    single = build_model("svm-rbf").fit(X, np.array([0, 0, 0, 0, 0, 0, 1, 1, 2]))
    assert single.steps[1][1].calibrated_ is False  # a class seen once: no calibration possible


@pytest.fixture(scope="module")
def natural_data():
    """A small slice of each model's natural data: digits for tabular models, reviews for text ones."""
    from alloop.datasets import load_dataset

    digits, reviews = load_dataset("digits"), load_dataset("reviews-test")
    rng = np.random.default_rng(0)
    d, r = rng.permutation(digits.n_samples)[:160], rng.permutation(reviews.n_samples)[:160]
    return {"tabular": (digits, d[:120], d[120:]), "text": (reviews, r[:120], r[120:])}


@pytest.mark.parametrize("name", [m.name for m in MODELS.values() if m.extra is None and m.name != "ensemble"])
def test_every_scikit_learn_model_fits_predicts_valid_probabilities_and_is_seeded(name, natural_data):
    from threadpoolctl import threadpool_limits

    from alloop.models import model_info

    ds, train, test = natural_data[model_info(name).data]
    with threadpool_limits(1):  # OpenMP (gradient boosting) busy-waits badly on a loaded 2-core machine
        a = build_model(name, seed=5).fit(ds.X[train], ds.y[train])
        probs = predict_proba_full(a, ds.X[test], ds.classes)
        again = build_model(name, seed=5).fit(ds.X[train], ds.y[train])
        np.testing.assert_array_equal(predict_proba_full(again, ds.X[test], ds.classes), probs)
    assert probs.shape == (test.size, ds.classes.size) and probs.dtype == np.float64
    assert probs.min() >= 0 and np.allclose(probs.sum(axis=1), 1.0)
    majority = max(float(np.mean(ds.y[test] == c)) for c in ds.classes)
    assert float(np.mean(ds.classes[probs.argmax(axis=1)] == ds.y[test])) >= majority + 0.1  # it learns
