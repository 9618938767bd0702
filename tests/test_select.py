"""alloop.select: the fused chunked pass equals top_k(<strategy>_scores(probs), k) exactly, and validates."""

from __future__ import annotations

import numpy as np
import pytest

from alloop._select import _TOL, FUSED, _entropy_cut, _entropy_slack, _fused_top_k, _kernels, _scan_slack, select
from alloop.errors import ConfigError, DataError
from alloop.strategies import top_k
from alloop.strategies.uncertainty import entropy_scores

COMPILED = [False] + ([True] if _kernels() is not None else [])


def _probs(n: int, n_classes: int, dtype, seed: int = 0, alpha: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng([seed, n, n_classes])
    p = rng.dirichlet(np.full(n_classes, alpha), size=n)
    if n >= 300:
        p[n // 3 : n // 3 + 50] = p[:50]  # exact ties, far apart so they straddle chunks
        p[-20:] = 1.0 / n_classes  # the most uncertain rows, all tied, at the end
        p[10:15] = np.eye(n_classes)[0]  # one-hot rows (p = 0 and p = 1)
    return p.astype(dtype)


@pytest.mark.parametrize("compiled", COMPILED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_classes", [2, 3, 10, 100])
def test_equals_top_k_of_scores_exactly(compiled, dtype, n_classes):
    p = _probs(3000, n_classes, dtype)
    for name, score_fn in FUSED.items():
        scores = score_fn(p)
        for k in (1, 7, 64, 500, 2999, 3000, 5000):
            expected = top_k(scores, k)
            got = _fused_top_k(p, k, name, chunk_rows=257, compiled=compiled)
            assert got.dtype == np.int64
            assert np.array_equal(got, expected), (name, k)


@pytest.mark.parametrize("compiled", COMPILED)
def test_ties_go_to_the_lower_row_across_chunks(compiled):
    p = np.full((1000, 4), 0.25, dtype=np.float32)
    for name in FUSED:
        assert _fused_top_k(p, 5, name, chunk_rows=64, compiled=compiled).tolist() == [0, 1, 2, 3, 4]
        assert select(p, 3, name).tolist() == [0, 1, 2]


def test_entropy_filter_keeps_near_ties():
    # rows whose entropies differ by ~1e-9, far below the fast logarithm's error: the exact rescoring decides
    rng = np.random.default_rng(3)
    base = rng.dirichlet(np.ones(10), size=1)[0]
    p = np.repeat(base[None, :], 4000, axis=0)
    p[:, 0] += rng.uniform(-1e-8, 1e-8, size=4000)
    p[:, 1] = 1.0 - (p.sum(axis=1) - p[:, 1])
    for compiled in COMPILED:
        got = _fused_top_k(p, 37, "entropy", chunk_rows=500, compiled=compiled)
        assert np.array_equal(got, top_k(entropy_scores(p), 37))


def test_fast_entropy_error_is_within_the_slack():
    if _kernels() is None:
        pytest.skip("numba is not installed; the compiled filter is not used")
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        for n_classes in (2, 10, 100):
            p = rng.dirichlet(np.full(n_classes, 0.05), size=2000)  # many tiny and near-1 probabilities
            p = p.astype(dtype)
            n = p.shape[0]
            out_idx, out_sc = np.empty(n, np.int64), np.empty(n)
            buf = np.empty(p.size, np.float32)
            bits = p.reshape(-1).view(np.int32 if dtype == np.float32 else np.int64)
            cnt, bad = _kernels()[1](p, bits, 0, n, -np.inf, 1e-3, buf, out_idx, out_sc)
            assert bad == -1 and cnt == n
            err = np.abs(out_sc[:cnt] - entropy_scores(p)[out_idx[:cnt]]).max()
            assert err < _entropy_slack(n_classes) / 2, (dtype, n_classes, err)


@pytest.mark.parametrize("n_classes", [2, 3, 10, 100])
def test_entropy_cut_is_a_true_bound(n_classes):
    # no row whose largest probability is >= cut may have entropy >= thresh, even with sums off by the tolerance
    rng = np.random.default_rng(n_classes)
    p = np.concatenate([rng.dirichlet(np.full(n_classes, a), size=3000) for a in (0.05, 1.0, 50.0)])
    p *= rng.uniform(1 - _TOL, 1 + _TOL, size=(p.shape[0], 1))
    h, m1 = entropy_scores(p), p.max(axis=1)
    for thresh in np.quantile(h, [0.0, 0.5, 0.9, 0.999, 1.0]):
        cut = _entropy_cut(float(thresh), n_classes)
        assert not np.any((m1 >= cut) & (h >= thresh)), (thresh, cut)
    assert _entropy_cut(float(h.max()), n_classes) < 1.0  # and it does reject rows
    assert _entropy_cut(np.log(n_classes) + 0.1, n_classes) == 0.0  # above the maximum: every row


def test_scan_entropy_error_is_within_its_slack():
    if _kernels() is None:
        pytest.skip("numba is not installed; the compiled scan is not used")
    rng = np.random.default_rng(6)
    for dtype in (np.float32, np.float64):
        for n_classes in (2, 10, 100):
            p = rng.dirichlet(np.full(n_classes, 0.05), size=2000).astype(dtype)
            n = p.shape[0]
            out_idx, out_sc = np.empty(n, np.int64), np.empty(n)
            cnt, bad, logs = _kernels()[0](p, 0, n, 3, -np.inf, np.inf, 1e-3, out_idx, out_sc, 0)
            assert bad == -1 and cnt == n and logs == n
            err = np.abs(out_sc[:cnt] - entropy_scores(p)[out_idx[:cnt]]).max()
            assert err < _scan_slack(n_classes) / 2, (dtype, n_classes, err)


def test_entropy_with_a_skewed_pool_uses_both_kernels_exactly():
    # mostly confident rows (the bound rejects them) with an uncertain stretch in the middle (it does not)
    rng = np.random.default_rng(8)
    p = rng.dirichlet(np.full(10, 0.1), size=6000)
    p[2000:4000] = rng.dirichlet(np.full(10, 30.0), size=2000)
    for compiled in COMPILED:
        for k in (1, 50, 1500):
            got = _fused_top_k(p, k, "entropy", chunk_rows=200, compiled=compiled)
            assert np.array_equal(got, top_k(entropy_scores(p), k)), (compiled, k)


@pytest.mark.parametrize("compiled", COMPILED)
def test_non_contiguous_and_integer_input(compiled):
    p = _probs(600, 5, np.float64)
    fortran = np.asfortranarray(p)
    strided = np.repeat(p, 2, axis=0)[::2]
    for name, score_fn in FUSED.items():
        expected = top_k(score_fn(p), 40)
        assert np.array_equal(_fused_top_k(fortran, 40, name, chunk_rows=100, compiled=compiled), expected)
        assert np.array_equal(_fused_top_k(strided, 40, name, chunk_rows=100, compiled=compiled), expected)
    onehot = np.eye(3, dtype=np.int64)[[0, 2, 1, 1]]
    assert select(onehot, 2, "margin").tolist() == [0, 1]


def test_single_class_and_edge_sizes():
    p = np.ones((5, 1))
    for name, score_fn in FUSED.items():
        assert np.array_equal(select(p, 3, name), top_k(score_fn(p), 3))
    assert select(np.empty((0, 3)), 4).size == 0
    assert select(_probs(10, 3, np.float64), 0).size == 0
    everything = select(_probs(10, 3, np.float64), 50, "entropy")
    assert sorted(everything.tolist()) == list(range(10))


@pytest.mark.parametrize("compiled", COMPILED)
@pytest.mark.parametrize(
    ("row", "fix", "message"),
    [
        (700, lambda r: r.__setitem__(1, np.nan), "Row 700 of 'probs' holds the non-finite value nan in column 1"),
        (701, lambda r: r.__setitem__(0, np.inf), "Row 701 of 'probs' holds the non-finite value inf in column 0"),
        (702, lambda r: r.__setitem__(slice(None), [1.2, -0.2, 0.0]), "holds the negative value -0.2 in column 1"),
        (703, lambda r: r.__setitem__(0, r[0] + 0.01), "Row 703 of 'probs' sums to 1.01"),
    ],
)
def test_validation_names_the_first_bad_row(compiled, row, fix, message):
    for dtype in (np.float32, np.float64):
        p = _probs(1000, 3, dtype)
        fix(p[row])
        fix(p[row + 200])  # a later bad row is not the one reported
        for name in FUSED:
            with pytest.raises(DataError, match="first bad row") as info:
                _fused_top_k(p, 5, name, chunk_rows=128, compiled=compiled)
            assert message in str(info.value)
            assert f"row {row} is the first bad row" in str(info.value)


def test_small_rounding_in_row_sums_is_accepted():
    p = _probs(200, 4, np.float64)
    p[7, 0] += 9e-4
    assert select(p, 3, "margin").size == 3


def test_shape_and_type_errors():
    with pytest.raises(DataError, match="2-D array"):
        select(np.array([0.5, 0.5]), 1)
    with pytest.raises(DataError, match="must hold numbers"):
        select(np.array([["a", "b"]]), 1)
    with pytest.raises(DataError, match="no columns"):
        select(np.empty((3, 0)), 1)
    with pytest.raises(ConfigError, match="The 'k' parameter of select must be an int >= 0. Got -1."):
        select(_probs(5, 2, np.float64), -1)
    with pytest.raises(ConfigError, match="Unknown strategy 'margn'. Did you mean 'margin'"):
        select(_probs(5, 2, np.float64), 1, "margn")


def test_other_probability_strategies_run_through_their_class():
    p = _probs(300, 4, np.float64)
    a = select(p, 10, "soft-margin", seed=4)
    assert np.array_equal(a, select(p, 10, "soft-margin", seed=4))
    assert not np.array_equal(a, select(p, 10, "soft-margin", seed=5))
    cost = ((0, 1, 1, 1), (10, 0, 1, 1), (1, 1, 0, 1), (1, 1, 1, 0))
    from alloop.strategies.uncertainty import expected_cost_scores

    assert np.array_equal(select(p, 10, "expected-cost", cost_matrix=cost), top_k(expected_cost_scores(p, cost), 10))
    with pytest.raises(ConfigError, match="has no parameter 'sed'; its parameters are: mode, power, temperature, seed"):
        select(p, 3, "soft-margin", sed=1)
    with pytest.raises(ConfigError, match="needs \\['labels', 'probs'\\]; select\\(\\) has probabilities only"):
        select(p, 3, "class-balanced")
    bad = p.copy()
    bad[42, 0] = -1.0
    with pytest.raises(DataError, match="Row 42"):
        select(bad, 3, "gini")
