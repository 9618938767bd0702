"""Expected gradient length and expected error reduction: explicit gradients and brute-force refits."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from alloop.errors import ConfigError
from alloop.strategies import SelectionContext, make_strategy
from alloop.strategies.expected import (
    ExpectedErrorReduction,
    ExpectedGradientLength,
    MonteCarloEER,
    egl_scores,
    expected_error_reduction_scores,
)
from alloop.strategies.uncertainty import entropy_scores, least_confidence_scores


@pytest.fixture(autouse=True)
def _one_blas_thread():
    """The brute-force references refit many tiny models; threaded BLAS only slows them down."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


# ---- EGL ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bias", [True, False])
def test_egl_matches_finite_difference_gradients_of_a_softmax_head(bias):
    rng = np.random.default_rng(0)
    c, d, n = 3, 4, 5
    w, b = rng.normal(size=(c, d)), rng.normal(size=c)
    x = rng.normal(size=(n, d))

    def loss(params: np.ndarray, xi: np.ndarray, y: int) -> float:
        wi, bi = params[: c * d].reshape(c, d), params[c * d :]
        return float(-np.log(_softmax(wi @ xi + (bi if bias else 0.0))[y]))

    theta = np.concatenate([w.ravel(), b])
    n_params = c * d + (c if bias else 0)  # without a bias, the gradient covers W only
    probs = np.array([_softmax(w @ xi + (b if bias else 0.0)) for xi in x])
    expected = []
    for i in range(n):
        total = 0.0
        for y in range(c):
            grad = np.zeros(n_params)
            for j in range(n_params):  # central differences, one parameter at a time
                step = np.zeros_like(theta)
                step[j] = 1e-6
                grad[j] = (loss(theta + step, x[i], y) - loss(theta - step, x[i], y)) / 2e-6
            total += probs[i, y] * np.linalg.norm(grad)
        expected.append(total)
    np.testing.assert_allclose(egl_scores(probs, x, bias=bias), expected, rtol=1e-6)
    np.testing.assert_allclose(
        egl_scores(probs.astype(np.float32), x.astype(np.float32), bias=bias), expected, rtol=1e-4
    )


def test_egl_strategy_and_validation():
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(4), size=20)
    emb = rng.normal(size=(20, 3))
    ctx = SelectionContext(ids=np.arange(20), index=np.arange(20), probs=probs, embeddings=emb)
    scores = ExpectedGradientLength().score(ctx)
    np.testing.assert_allclose(scores, egl_scores(probs, emb))
    assert ExpectedGradientLength().select(ctx, 1)[0] == int(np.argmax(scores))
    # a confident prediction has no gradient to expect
    assert egl_scores(np.array([[0.0, 1.0, 0.0]]), np.ones((1, 2)))[0] == 0.0
    with pytest.raises(ConfigError, match="The 'bias' parameter of ExpectedGradientLength must be one of True, False"):
        ExpectedGradientLength(bias="yes").score(ctx)


# ---- EER ------------------------------------------------------------------------------------------------
def _fit(x: np.ndarray, y: np.ndarray) -> LogisticRegression:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return LogisticRegression(C=1.0, max_iter=200).fit(x, y)


def _brute_eer(probs, pool, x_lab, y_lab, loss="zero-one"):
    """Roy & McCallum by hand: refit per (x, y), expected self-estimated loss on the pool."""

    def pool_loss(model: LogisticRegression) -> float:
        q = model.predict_proba(pool)
        if loss == "zero-one":
            return float(np.mean(1.0 - q.max(axis=1)))
        return float(np.mean([-(r[r > 0] * np.log(r[r > 0])).sum() for r in q]))

    base = pool_loss(_fit(x_lab, y_lab))
    out = []
    for i in range(pool.shape[0]):
        exp_loss = sum(
            probs[i, y] * pool_loss(_fit(np.vstack([x_lab, pool[i]]), np.append(y_lab, y)))
            for y in range(probs.shape[1])
            if probs[i, y] > 0
        )
        out.append(base - exp_loss)
    return np.array(out)


def _separable(seed: int = 0):
    rng = np.random.default_rng(seed)
    x_lab = np.array([[-3.0, 0.2], [-2.5, -0.4], [2.4, 0.1], [3.1, 0.5]])
    y_lab = np.array([0, 0, 1, 1])
    pool = np.vstack(
        [rng.normal([-3, 0], 0.4, (5, 2)), rng.normal([0, 0], 0.6, (4, 2)), rng.normal([3, 0], 0.4, (5, 2))]
    )
    probs = _fit(x_lab, y_lab).predict_proba(pool)
    return x_lab, y_lab, pool, probs


@pytest.mark.parametrize("loss", ["zero-one", "log"])
def test_eer_equals_brute_force_and_picks_the_best_reduction(loss):
    x_lab, y_lab, pool, probs = _separable()
    ctx = SelectionContext(
        ids=np.arange(50, 50 + len(pool)), index=np.arange(len(pool)), probs=probs, embeddings=pool,
        labeled_ids=np.arange(4), labels=y_lab, labeled_embeddings=x_lab, n_classes=2,
    )  # fmt: skip
    brute = _brute_eer(probs, pool, x_lab, y_lab, loss)
    scores = ExpectedErrorReduction(loss=loss).score(ctx)
    np.testing.assert_allclose(scores, brute, atol=1e-9)
    best = ExpectedErrorReduction(loss=loss).select(ctx, 1)
    assert best[0] == ctx.ids[int(np.argmax(brute))]
    assert 5 <= int(np.argmax(brute)) < 9  # the point that helps most lies between the two classes


def test_eer_subsamples_candidates_with_the_seed():
    x_lab, y_lab, pool, probs = _separable(1)
    ctx = SelectionContext(
        ids=np.arange(len(pool)), index=np.arange(len(pool)), probs=probs, embeddings=pool,
        labels=y_lab, labeled_embeddings=x_lab, seed=5,
    )  # fmt: skip
    a = ExpectedErrorReduction(max_candidates=4, seed=1).score(ctx)
    assert np.isfinite(a).sum() == 4
    np.testing.assert_array_equal(a, ExpectedErrorReduction(max_candidates=4, seed=1).score(ctx))
    b = ExpectedErrorReduction(max_candidates=4, seed=2).score(ctx)
    assert not np.array_equal(np.isfinite(a), np.isfinite(b))
    brute = _brute_eer(probs, pool, x_lab, y_lab)
    np.testing.assert_allclose(a[np.isfinite(a)], brute[np.isfinite(a)], atol=1e-9)
    # evaluated candidates come first, the rest after them
    picked = ExpectedErrorReduction(max_candidates=4, seed=1).select(ctx, 6)
    assert set(picked[:4].tolist()) == set(np.flatnonzero(np.isfinite(a)).tolist())
    with pytest.raises(ConfigError, match="The 'max_candidates' parameter of ExpectedErrorReduction must be an int"):
        ExpectedErrorReduction(max_candidates=0).score(ctx)
    with pytest.raises(ConfigError, match="The 'loss' parameter of ExpectedErrorReduction must be one of"):
        ExpectedErrorReduction(loss="hinge").score(ctx)


@pytest.mark.parametrize("name", ["eer", "mc-eer"])
@pytest.mark.parametrize(("loss", "fallback"), [("zero-one", least_confidence_scores), ("log", entropy_scores)])
def test_eer_with_fewer_than_two_labeled_classes_falls_back_to_uncertainty(name, loss, fallback):
    x_lab, _, pool, probs = _separable(2)
    for y_lab in (np.array([1, 1, 1, 1]), np.empty(0, dtype=np.int64)):
        x = x_lab[: y_lab.size]
        ctx = SelectionContext(
            ids=np.arange(len(pool)), index=np.arange(len(pool)), probs=probs, embeddings=pool,
            labels=y_lab, labeled_embeddings=x,
        )  # fmt: skip
        scores = make_strategy(f"{name}(loss={loss!r})").score(ctx)
        np.testing.assert_allclose(scores, fallback(probs))


def test_mc_eer_converges_to_eer_and_is_seeded():
    x_lab, y_lab, pool, probs = _separable(3)
    ctx = SelectionContext(
        ids=np.arange(len(pool)), index=np.arange(len(pool)), probs=probs, embeddings=pool,
        labels=y_lab, labeled_embeddings=x_lab,
    )  # fmt: skip
    exact = ExpectedErrorReduction().score(ctx)
    # with the whole pool and many label draws, MC-EER estimates the same expectation
    many = MonteCarloEER(n_draws=2000, pool_size=1000).score(ctx)
    np.testing.assert_allclose(many, exact, atol=0.01)
    few = MonteCarloEER(max_candidates=5, pool_size=6, seed=4).score(ctx)
    assert np.isfinite(few).sum() == 5
    np.testing.assert_array_equal(few, MonteCarloEER(max_candidates=5, pool_size=6, seed=4).score(ctx))
    # one draw per candidate: the score is the reduction for that sampled label (pool = all records)
    one = MonteCarloEER(n_draws=1, pool_size=1000, seed=0).score(ctx)
    per_label = [_brute_eer(np.eye(2)[[y] * len(pool)], pool, x_lab, y_lab) for y in (0, 1)]
    assert all(np.isclose(one[i], per_label[0][i]) or np.isclose(one[i], per_label[1][i]) for i in range(len(pool)))
    with pytest.raises(ConfigError, match="The 'n_draws' parameter of MonteCarloEER must be an int >= 1. Got 0."):
        MonteCarloEER(n_draws=0).score(ctx)


def test_eer_falls_back_when_labeled_embeddings_do_not_line_up_with_labels():
    x_lab, y_lab, pool, probs = _separable(4)
    # e.g. a labeled record inferred without an embedding: rows and labels cannot be paired safely
    scores = expected_error_reduction_scores(
        probs, pool, x_lab[:3], y_lab, candidates=np.arange(len(pool)), label_weights=probs
    )
    np.testing.assert_allclose(scores, least_confidence_scores(probs))


def test_eer_max_labels_keeps_the_likeliest_labels():
    x_lab, y_lab, pool, probs = _separable(5)
    ctx = SelectionContext(
        ids=np.arange(len(pool)), index=np.arange(len(pool)), probs=probs, embeddings=pool,
        labels=y_lab, labeled_embeddings=x_lab,
    )  # fmt: skip
    top = np.eye(2)[probs.argmax(axis=1)]  # one label: the most probable one, weight 1
    np.testing.assert_allclose(
        ExpectedErrorReduction(max_labels=1).score(ctx), _brute_eer(top, pool, x_lab, y_lab), atol=1e-9
    )
