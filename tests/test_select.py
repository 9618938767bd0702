"""alloop.select: the fused chunked pass equals top_k(<strategy>_scores(probs), k) exactly, and validates."""

from __future__ import annotations

import numpy as np
import pytest

from alloop._select import (
    _KIND,
    _TOL,
    FIXED_CLASSES,
    FUSED,
    MIN_PART_ROWS,
    MIN_RESCORE_ROWS,
    PAIR_BUCKETS,
    _compiled_part,
    _compiled_top_k,
    _entropy_cut,
    _entropy_pair_table,
    _entropy_slack,
    _fused_top_k,
    _guess_threshold,
    _in_threads,
    _kernels,
    _part_kernel,
    _parts,
    _rank,
    select,
)
from alloop.errors import ConfigError, DataError
from alloop.strategies import top_k
from alloop.strategies.uncertainty import entropy_scores, margin_scores

COMPILED = [False] + ([True] if _kernels() is not None else [])
#: (compiled, parts): the numpy path, and the compiled one in the calling thread and in 3 parallel parts
PATHS = [(False, 1)] + ([(True, 1), (True, 3)] if _kernels() is not None else [])


def _probs(n: int, n_classes: int, dtype, seed: int = 0, alpha: float = 0.5) -> np.ndarray:
    rng = np.random.default_rng([seed, n, n_classes])
    p = rng.dirichlet(np.full(n_classes, alpha), size=n)
    if n >= 300:
        p[n // 3 : n // 3 + 50] = p[:50]  # exact ties, far apart so they straddle chunks
        p[-20:] = 1.0 / n_classes  # the most uncertain rows, all tied, at the end
        p[10:15] = np.eye(n_classes)[0]  # one-hot rows (p = 0 and p = 1)
    return p.astype(dtype)


@pytest.mark.parametrize(("compiled", "parts"), PATHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_classes", [2, 3, 10, 100])
def test_equals_top_k_of_scores_exactly(compiled, parts, dtype, n_classes):
    # small blocks, so the in-kernel buffers are compacted many times; parts split the rows across threads
    p = _probs(3000, n_classes, dtype)
    for name, score_fn in FUSED.items():
        scores = score_fn(p)
        for k in (1, 7, 64, 500, 2999, 3000, 5000):
            expected = top_k(scores, k)
            got = _fused_top_k(p, k, name, chunk_rows=257, compiled=compiled, parts=parts)
            assert got.dtype == np.int64
            assert np.array_equal(got, expected), (name, k)


@pytest.mark.parametrize(("compiled", "parts"), PATHS)
def test_ties_go_to_the_lower_row_across_chunks_and_parts(compiled, parts):
    p = np.full((1000, 4), 0.25, dtype=np.float32)
    for name in FUSED:
        got = _fused_top_k(p, 5, name, chunk_rows=64, compiled=compiled, parts=parts)
        assert got.tolist() == [0, 1, 2, 3, 4]
        assert select(p, 3, name).tolist() == [0, 1, 2]


def test_entropy_near_ties_overflow_the_kernel_buffer_and_fall_back_exactly():
    if _kernels() is None:
        pytest.skip("numba is not installed; the compiled kernel is not used")
    p = np.full((1000, 4), 0.25, dtype=np.float32)  # 1000 equal entropies: the candidate buffer cannot shrink
    kernel = _kernels()["part"]
    assert _compiled_part(p, 0, 1000, 5, "entropy", kernel, block=64, flat=p.reshape(-1)) is None
    assert _compiled_part(p, 0, 1000, 5, "margin", kernel, block=64, flat=p.reshape(-1))[0].tolist() == [0, 1, 2, 3, 4]
    assert _fused_top_k(p, 5, "entropy", chunk_rows=64, parts=2).tolist() == [0, 1, 2, 3, 4]  # via numpy


def test_threads_give_identical_results_and_follow_numba():
    # above 2 * MIN_PART_ROWS rows select really splits the matrix across threads
    p = _probs(2 * MIN_PART_ROWS + 999, 10, np.float32, alpha=1.0)
    p[-5:] = p[7]  # ties between the first and the last part
    for name in FUSED:
        for k in (3, 100, 2000):
            one = select(p, k, name, threads=1)
            assert np.array_equal(one, select(p, k, name, threads=2)), (name, k)
            assert np.array_equal(one, select(p, k, name)), (name, k)
            if k == 3:
                assert np.array_equal(one, top_k(FUSED[name](p), k))
    assert _parts(1000, None) == 1 and _parts(10**6, 1) == 1
    assert _parts(10**6, 4) == 4 and _parts(3 * MIN_PART_ROWS, 8) == 3
    if _kernels() is not None:
        import numba

        assert _parts(10**7, None) == numba.get_num_threads()
        before = numba.get_num_threads()
        numba.set_num_threads(1)  # what the Dask task wrapper does on a threads_per_worker=1 worker
        try:
            assert _parts(10**7, None) == 1
        finally:
            numba.set_num_threads(before)
    with pytest.raises(ConfigError, match="The 'threads' parameter of select must be an int >= 1 or None. Got 0."):
        select(p, 1, threads=0)


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


def _scan(p: np.ndarray, *, vectorised: bool, kernel=None) -> np.ndarray:
    """The kernel's entropy of every row (no threshold): the vectorised fast log, or float64 logs per row."""
    n = p.shape[0]
    idx, sc = np.empty(n, np.int64), np.empty(n)
    flat = p.reshape(-1) if vectorised else np.empty(0, p.dtype)
    bits = flat.view(np.int32 if p.dtype == np.float32 else np.int64)
    buf = np.empty(500 * p.shape[1], np.float32)
    retry = 10**9 if vectorised else 1  # the row scan is retried every `retry`-th block
    kernel = kernel or _kernels()["part"]
    cnt, row, bad = kernel(p, flat, bits, 0, n, _KIND["entropy"], _TOL, -np.inf, np.inf, 1.0, retry, 500, buf, idx, sc,
                           0)
    assert (cnt, row, bad) == (n, n, -1) and idx.tolist() == list(range(n))
    return sc


def test_fast_entropy_error_is_within_the_slack():
    if _kernels() is None:
        pytest.skip("numba is not installed; the compiled filter is not used")
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        for n_classes in (2, 10, 100):
            p = rng.dirichlet(np.full(n_classes, 0.05), size=2000)  # many tiny and near-1 probabilities
            p = p.astype(dtype)
            fast = _scan(p, vectorised=True)
            err = np.abs(fast - entropy_scores(p)).max()
            assert err < _entropy_slack(n_classes) / 2, (dtype, n_classes, err)
            if n_classes in FIXED_CLASSES:  # the kernel with C fixed at compile time computes the very same sums
                fixed = _scan(p, vectorised=True, kernel=_part_kernel(n_classes, "entropy"))
                # (float32: the SIMD groups of 16 rows; the last rows of each 500-row block take exact logarithms)
                grouped = np.arange(p.shape[0]) % 500 < (500 // 16 * 16 if dtype == np.float32 else 500)
                assert np.array_equal(fixed[grouped], fast[grouped])
                assert np.abs(fixed - entropy_scores(p)).max() < _entropy_slack(n_classes) / 2


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


def test_scan_entropy_error_is_far_below_the_slack():
    if _kernels() is None:
        pytest.skip("numba is not installed; the compiled scan is not used")
    rng = np.random.default_rng(6)
    for dtype in (np.float32, np.float64):
        for n_classes in (2, 10, 100):
            p = rng.dirichlet(np.full(n_classes, 0.05), size=2000).astype(dtype)
            out_sc = _scan(p, vectorised=False)
            err = np.abs(out_sc - entropy_scores(p)).max()
            assert err < 1e-12 * (n_classes + 1), (dtype, n_classes, err)


def test_entropy_with_a_skewed_pool_uses_both_kernels_exactly():
    # mostly confident rows (the bound rejects them) with an uncertain stretch in the middle (it does not)
    rng = np.random.default_rng(8)
    p = rng.dirichlet(np.full(10, 0.1), size=6000)
    p[2000:4000] = rng.dirichlet(np.full(10, 30.0), size=2000)
    for compiled, parts in PATHS:
        for k in (1, 50, 1500):
            got = _fused_top_k(p, k, "entropy", chunk_rows=200, compiled=compiled, parts=parts)
            assert np.array_equal(got, top_k(entropy_scores(p), k)), (compiled, k)


@pytest.mark.parametrize(("compiled", "parts"), PATHS)
def test_non_contiguous_and_integer_input(compiled, parts):
    p = _probs(600, 5, np.float64)
    fortran = np.asfortranarray(p)
    strided = np.repeat(p, 2, axis=0)[::2]
    for name, score_fn in FUSED.items():
        expected = top_k(score_fn(p), 40)
        for q in (fortran, strided):
            assert np.array_equal(_fused_top_k(q, 40, name, chunk_rows=100, compiled=compiled, parts=parts), expected)
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


@pytest.mark.parametrize(("compiled", "parts"), PATHS)
@pytest.mark.parametrize(
    ("row", "fix", "message"),
    [
        (700, lambda r: r.__setitem__(1, np.nan), "Row 700 of 'probs' holds the non-finite value nan in column 1"),
        (701, lambda r: r.__setitem__(0, np.inf), "Row 701 of 'probs' holds the non-finite value inf in column 0"),
        (702, lambda r: r.__setitem__(slice(None), [1.2, -0.2, 0.0]), "holds the negative value -0.2 in column 1"),
        (703, lambda r: r.__setitem__(0, r[0] + 0.01), "Row 703 of 'probs' sums to 1.01"),
    ],
)
def test_validation_names_the_first_bad_row(compiled, parts, row, fix, message):
    for dtype in (np.float32, np.float64):
        p = _probs(1000, 3, dtype)
        fix(p[row])
        fix(p[row + 200])  # a later bad row (in a later part, with 3 parts) is not the one reported
        for name in FUSED:
            with pytest.raises(DataError, match="first bad row") as info:
                _fused_top_k(p, 5, name, chunk_rows=128, compiled=compiled, parts=parts)
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


@pytest.mark.parametrize(("compiled", "parts"), PATHS)
def test_the_first_bad_row_is_found_across_parts(compiled, parts):
    p = _probs(1000, 3, np.float32)
    p[950, 0] = np.nan  # in the last part
    p[400, :] = [1.5, -0.5, 0.0]  # in the middle part: the first bad row
    for name in FUSED:
        with pytest.raises(DataError, match="Row 400 of 'probs' holds the negative value -0.5 in column 1"):
            _fused_top_k(p, 3, name, chunk_rows=100, compiled=compiled, parts=parts)


def test_a_too_high_guessed_threshold_is_detected_and_the_pass_rerun():
    # the strided sample (every 4th row) sees only uncertain rows, so its guess lets < k of all rows through
    rng = np.random.default_rng(11)
    n, k = 4 * 16384, 1000
    p = rng.dirichlet(np.full(10, 0.05), size=n)  # confident rows
    p[::4] = rng.dirichlet(np.full(10, 20.0), size=n // 4)  # uncertain rows, exactly where the sample looks
    for name, score_fn in FUSED.items():
        scores = score_fn(p)
        guess = _guess_threshold(p, k, name)
        assert np.sum(scores > guess) < k  # too high: the first pass finds fewer than k rows
        for compiled, parts in PATHS:
            assert np.array_equal(_fused_top_k(p, k, name, compiled=compiled, parts=parts), top_k(scores, k)), name
    assert _guess_threshold(p, 10, "margin") == -np.inf  # small k: no guess
    ok = _probs(n, 10, np.float32, alpha=1.0)
    assert np.sum(margin_scores(ok) > _guess_threshold(ok, k, "margin")) >= k  # a representative sample: kept


@pytest.mark.parametrize("compiled", COMPILED)
def test_rank_equals_top_k_with_many_ties(compiled):
    # the final ranking of the compiled pass: partition, unstable argsort, runs of ties re-sorted by position
    rng = np.random.default_rng(12)
    for n, k, levels in ((7, 3, 2), (500, 499, 5), (5000, 5000, 1000), (3000, 2000, 3), (20000, 15000, 10**9),
                         (20000, 15000, 4000)):  # (3000, 2000, 3): runs far longer than the insertion-sort limit
        sc = rng.integers(0, levels, size=n).astype(np.float64) / 7.0
        assert np.array_equal(_rank(sc, k, compiled=compiled), top_k(sc, k)), (n, k, levels)
    assert _rank(np.array([1.0, -np.inf, 3.0]), 5, compiled=compiled).tolist() == [2, 0, 1]


def test_in_threads_returns_in_order_and_reraises_the_first_error():
    assert _in_threads(lambda i: i + 10, 4) == [10, 11, 12, 13]

    def fail(i: int) -> int:
        if i >= 1:
            raise DataError(f"part {i}")
        return i

    with pytest.raises(DataError, match="part 1"):
        _in_threads(fail, 3)


def test_large_k_entropy_rescoring_and_ranking_in_two_threads():
    # k large enough that the exact rescoring and the final argsort are split across two threads
    if _kernels() is None:
        pytest.skip("numba is not installed; the compiled pass is not used")
    p = _probs(3 * MIN_RESCORE_ROWS, 4, np.float32, alpha=2.0)
    for name, score_fn in FUSED.items():
        k = 2 * MIN_RESCORE_ROWS + 5
        expected = top_k(score_fn(p), k)
        for parts in (1, 2):
            assert np.array_equal(_fused_top_k(p, k, name, parts=parts), expected), (name, parts)


@pytest.mark.parametrize(("compiled", "parts"), PATHS)
def test_row_sums_at_the_tolerance_edge_are_judged_by_their_float64_sum(compiled, parts):
    # the compiled pass adds float32 rows in float32 and falls back to a float64 sum near the edge: rows just inside
    # and just outside 1 ± tol must be accepted or rejected exactly as by their float64 sum (100 classes, so the
    # float32 sum is off by more than the distance to the edge)
    rng = np.random.default_rng(16)  # a row whose float32 sum flips 5 of these 82 verdicts (checked below)
    base = rng.dirichlet(np.ones(100), size=1).astype(np.float32)[0]
    flips = 0
    for sign in (1.0, -1.0):
        for step in range(-20, 21):
            row = base.copy()
            row[0] += np.float32(sign * (_TOL + step * 5e-8))
            flips += (abs(float(np.add.accumulate(row)[-1]) - 1.0) <= _TOL) != (abs(float(
                np.add.accumulate(row.astype(np.float64))[-1]) - 1.0) <= _TOL)
            exact = float(np.add.accumulate(row.astype(np.float64))[-1])  # sequential, like the kernel's check
            p = np.repeat(base[None, :], 300, axis=0)
            p[123] = row
            ok = abs(exact - 1.0) <= _TOL
            try:
                _fused_top_k(p, 5, "margin", chunk_rows=64, compiled=compiled, parts=parts)
                accepted = True
            except DataError as exc:
                assert "row 123 is the first bad row" in str(exc)
                accepted = False
            if compiled:
                assert accepted == ok, (sign, step, exact)
    assert flips >= 3  # the float32 sum alone would have judged some of these rows wrongly


@pytest.mark.parametrize("n_classes", [3, 4, 10, 100])
def test_entropy_pair_table_is_a_true_bound(n_classes):
    # no row with p2 >= table[bucket of p1] may have entropy >= thresh, even with sums off by the tolerance
    rng = np.random.default_rng(100 + n_classes)
    p = np.concatenate([rng.dirichlet(np.full(n_classes, a), size=4000) for a in (0.05, 0.5, 1.0, 50.0)])
    p *= rng.uniform(1 - _TOL, 1 + _TOL, size=(p.shape[0], 1))
    h = entropy_scores(p)
    top2 = np.sort(p, axis=1)[:, -2:]
    m1, m2 = top2[:, 1], top2[:, 0]
    rejected_any = False
    for thresh in np.quantile(h, [0.0, 0.5, 0.9, 0.99, 1.0]):
        table = _entropy_pair_table(float(thresh), n_classes)
        rejected = m2 >= table[np.minimum((m1 * PAIR_BUCKETS).astype(int), PAIR_BUCKETS - 1)]
        assert not np.any(rejected & (h >= thresh)), (thresh, n_classes)
        rejected_any |= bool(np.any(rejected & (m1 < _entropy_cut(float(thresh), n_classes))))
    assert rejected_any  # and it rejects rows the bound from p1 alone lets through
    assert _entropy_pair_table(1.0, 2) is None and _entropy_pair_table(-np.inf, 10) is None


def test_entropy_pair_bound_in_the_kernel_equals_the_exact_ranking():
    # the row scan with the top-two bound, fast logs (contiguous) and float64 logs (strided), one and two parts
    if _kernels() is None:
        pytest.skip("numba is not installed; the compiled pass is not used")
    rng = np.random.default_rng(21)
    p = rng.dirichlet(np.ones(10), size=2 * MIN_PART_ROWS + 999).astype(np.float32)
    p[5000:5040] = p[100:140]  # exact ties
    wide = np.zeros((p.shape[0], 20), dtype=np.float32)
    wide[:, ::2] = p
    h = entropy_scores(p)
    for k in (7, 2000):
        expected = top_k(h, k)
        for q in (p, wide[:, ::2]):
            for parts in (1, 2):
                assert np.array_equal(_fused_top_k(q, k, "entropy", parts=parts), expected), (k, parts)
    kernel = _kernels()["part"]
    thr = float(np.quantile(h, 0.9))
    table = _entropy_pair_table(thr - _entropy_slack(10), 10)
    idx, sc = np.empty(p.shape[0], np.int64), np.empty(p.shape[0])
    flat = p.reshape(-1)
    cnt, row, bad = kernel(p, flat, flat.view(np.int32), 0, p.shape[0], _KIND["entropy"], _TOL, thr, np.inf, 0.0,
                           10**9, 4096, np.empty(4096 * 10, np.float32), idx, sc, 0, table)
    assert (row, bad) == (p.shape[0], -1)
    assert set(np.flatnonzero(h > thr + _entropy_slack(10))) <= set(idx[:cnt].tolist()) <= set(
        np.flatnonzero(h > thr - _entropy_slack(10)).tolist())
    assert np.abs(sc[:cnt] - h[idx[:cnt]]).max() < _entropy_slack(10) / 2


@pytest.mark.parametrize("compiled", COMPILED)
@pytest.mark.parametrize("levels", [3, 50, 10**9])
def test_rank_of_many_candidates_equals_top_k(compiled, levels):
    # the radix sort (all scores when k >= n / 4, else the k best after a partition): ties stay in position order;
    # negative and positive scores, -0.0 next to 0.0, -inf, and float32 scores
    rng = np.random.default_rng(levels)
    sc = (rng.integers(0, levels, size=80000) - levels // 2).astype(np.float64) / 3.0
    sc[::7] = -0.0
    sc[5::11] = -np.inf
    for k in (1, 19999, 20000, 20001, 50000, sc.size, sc.size + 5):
        assert np.array_equal(_rank(sc, k, compiled=compiled), top_k(sc, k)), (levels, k)
    low = sc.astype(np.float32)
    assert np.array_equal(_rank(low, 30000, compiled=compiled), top_k(low, 30000))
    assert _rank(np.array([0.0, -0.0, 0.0]), 3, compiled=compiled).tolist() == [0, 1, 2]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_classes", [2, 3, 10, 16])
def test_entropy_kernels_with_a_fixed_class_count_equal_the_generic_one(dtype, n_classes):
    # random and tie-heavy rows; k small (row scan, pair bound), mid and large (vectorised fast log); 1 and 3 parts
    if _kernels() is None:
        pytest.skip("numba is not installed; the compiled pass is not used")
    generic, fixed = _kernels()["part"], _part_kernel(n_classes, "entropy")
    assert fixed is not generic
    assert _part_kernel(n_classes, "margin") is generic and _part_kernel(max(FIXED_CLASSES) + 1, "entropy") is generic
    rng = np.random.default_rng(n_classes)
    ties = rng.integers(0, 3, size=(3000, n_classes)) + np.eye(n_classes)[np.arange(3000) % n_classes]
    ties = (ties / ties.sum(axis=1, keepdims=True)).astype(dtype)  # a few hundred distinct rows: many exact ties
    for q in (_probs(3000, n_classes, dtype), ties):
        h = entropy_scores(q)
        for k in (1, 50, 1500):
            expected = top_k(h, k)
            for parts in (1, 3):
                got = _compiled_top_k(q, k, "entropy", fixed, block=257, parts=parts)
                same = _compiled_top_k(q, k, "entropy", generic, block=257, parts=parts)
                assert (got is None) == (same is None), (k, parts)  # None: near-ties overflowed (numpy decides)
                if got is not None:
                    assert np.array_equal(got, expected) and np.array_equal(same, expected), (k, parts)
                assert np.array_equal(_fused_top_k(q, k, "entropy", chunk_rows=257, parts=parts), expected)
    bad = _probs(3000, n_classes, dtype)
    bad[2100, 0] = np.nan
    bad[1234, 1] = -0.25
    for k in (5, 1500):
        with pytest.raises(DataError, match="Row 1234 of 'probs' holds the negative value -0.25 in column 1"):
            _fused_top_k(bad, k, "entropy", chunk_rows=257, parts=3)
