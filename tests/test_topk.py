"""The shared top-k helper: stable ties (lower position wins), NaN last, every k."""

from __future__ import annotations

import numpy as np
import pytest

from alloop.errors import ConfigError
from alloop.strategies import rank_order, top_k


def _reference(s: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-np.asarray(s, dtype=np.float64), kind="stable")[:k]


def test_ties_go_to_the_lower_position():
    s = np.array([1.0, 3.0, 2.0, 3.0, 3.0, 0.0])
    assert top_k(s, 1).tolist() == [1]
    assert top_k(s, 2).tolist() == [1, 3]
    assert top_k(s, 4).tolist() == [1, 3, 4, 2]
    assert rank_order(s).tolist() == [1, 3, 4, 2, 0, 5]


def test_nan_ranks_last_even_after_minus_infinity():
    s = np.array([np.nan, 0.5, -np.inf, np.nan, 2.0, np.inf])
    assert rank_order(s).tolist() == [5, 4, 1, 2, 0, 3]
    assert top_k(s, 2).tolist() == [5, 4]
    assert top_k(s, 4).tolist() == [5, 4, 1, 2]
    assert top_k(s, 5).tolist() == [5, 4, 1, 2, 0]
    assert top_k(np.full(4, np.nan), 2).tolist() == [0, 1]


@pytest.mark.parametrize("seed", range(40))
def test_equals_stable_argsort_on_arrays_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    s = rng.integers(0, rng.integers(1, 8), size=n).astype(np.float64)  # few distinct values: many ties
    if seed % 3 == 0:
        s[rng.random(n) < 0.2] = np.nan
    if seed % 4 == 0:
        s[rng.random(n) < 0.1] = -np.inf
    if seed % 5 == 0:
        s = s.astype(np.float32)
    for k in sorted({0, 1, 2, n // 3, n // 2, n - 1, n, n + 5}):
        if k < 0:
            continue
        got = top_k(s, k)
        assert got.dtype.kind == "i"
        assert np.array_equal(got, _reference(s, k)), (seed, k)
    assert np.array_equal(rank_order(s), _reference(s, n))


def test_k_at_least_n_returns_every_position_ranked():
    s = np.array([0.1, 0.9, 0.5])
    assert top_k(s, 3).tolist() == [1, 2, 0]
    assert top_k(s, 100).tolist() == [1, 2, 0]
    assert top_k(np.empty(0), 3).tolist() == []


def test_k_zero_returns_nothing():
    assert top_k(np.array([1.0, 2.0]), 0).tolist() == []
    assert top_k(np.array([1.0, 2.0]), np.int64(1)).tolist() == [1]


@pytest.mark.parametrize("k", [-1, 1.0, 2.5, "3", None, True])
def test_bad_k_is_a_config_error_naming_k(k):
    with pytest.raises(ConfigError, match="The 'k' parameter of top_k must be an int >= 0. Got"):
        top_k(np.array([1.0, 2.0]), k)


def test_scores_must_be_one_dimensional():
    with pytest.raises(ConfigError, match="one-dimensional; got shape \\(2, 2\\)"):
        top_k(np.ones((2, 2)), 1)


def test_matches_reference_property():
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import given
    from hypothesis import strategies as st

    values = st.sampled_from([0.0, -0.0, 1.0, 1.0, 2.5, -3.0, float("nan"), float("inf"), float("-inf")])

    @hypothesis.settings(max_examples=200, deadline=None)
    @given(st.lists(values, max_size=40), st.integers(min_value=0, max_value=45))
    def prop(xs: list[float], k: int) -> None:
        s = np.array(xs, dtype=np.float64)
        assert np.array_equal(top_k(s, k), _reference(s, k))

    prop()
