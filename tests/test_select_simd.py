"""The SIMD groups of the compiled pass (float32, C-contiguous, C in FIXED_CLASSES): 16 rows at a time through
``_scan16``. They must pick the very rows (and scores) of the row loops, validate the same way, and report the same
first bad row; everything else (other C, float64, strided input) keeps the row loops."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from alloop._select import (
    FIXED_CLASSES,
    FUSED,
    _compiled_part,
    _fused_top_k,
    _guess_threshold,
    _kernels,
    _part_kernel,
    _Pool,
    _simd,
    select,
)
from alloop.errors import DataError
from alloop.strategies import top_k

pytestmark = pytest.mark.skipif(_kernels() is None, reason="numba is not installed: no compiled pass")


def _probs(n: int, n_classes: int, seed: int = 0) -> np.ndarray:
    """Dirichlet rows (float32) with exact ties, one-hot rows and a tied most-uncertain tail."""
    rng = np.random.default_rng([seed, n, n_classes])
    p = rng.dirichlet(np.full(n_classes, 0.5), size=n).astype(np.float32)
    p[n // 3 : n // 3 + 40] = p[:40]  # exact ties, far apart
    p[5:9] = np.eye(n_classes, dtype=np.float32)[0]
    p[-20:] = np.float32(1.0 / n_classes)
    return p


@pytest.mark.parametrize("n_classes", [2, 3, 10, 16])
def test_groups_give_the_row_loops_candidates_and_scores(n_classes):
    # the same thresholds, the same candidates in row order, the same float64 scores (least-confidence, margin,
    # ratio); blocks of 1000 rows end in part-groups (1000 = 62 * 16 + 8), so tails take the row loop
    p = _probs(3000, n_classes)
    assert _simd(p) and not _simd(p.astype(np.float64)) and not _simd(np.asfortranarray(p))
    generic = _kernels()["part"]
    fixed = _part_kernel(n_classes, "margin", True)
    assert fixed is not generic and _part_kernel(n_classes, "margin") is generic
    for name in ("least-confidence", "margin", "ratio"):
        for k, thr0 in ((5, -np.inf), (300, -np.inf), (50, float(np.quantile(FUSED[name](p), 0.9)))):
            want = _compiled_part(p, 3, 2990, k, name, generic, block=1000, flat=np.empty(0, np.float32), thr0=thr0)
            got = _compiled_part(p, 3, 2990, k, name, fixed, block=1000, flat=p.reshape(-1), thr0=thr0)
            assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1]) and got[2] == want[2] == -1


@pytest.mark.parametrize("n_classes", [2, 3, 10, 16, 17])
def test_select_equals_top_k_of_the_scores(n_classes):
    # 17 classes: no SIMD kernel (the generic row loops); parts and short blocks move the group boundaries
    p = _probs(2500, n_classes, seed=1)
    assert _simd(p) == (n_classes in FIXED_CLASSES)
    for name, score_fn in FUSED.items():
        scores = score_fn(p)
        for k in (1, 17, 400, 2500):
            want = top_k(scores, k)
            for parts, block in ((1, 4096), (3, 250)):
                got = _fused_top_k(p, k, name, chunk_rows=block, parts=parts)
                assert np.array_equal(got, want), (name, k, parts, block)
            assert np.array_equal(_fused_top_k(p.astype(np.float64), k, name, chunk_rows=250), want)


@pytest.mark.parametrize("row", [0, 15, 16, 31, 255, 256, 257, 999, 1999])
@pytest.mark.parametrize(
    ("spoil", "says"),
    [
        (lambda r: r.__setitem__(2, np.nan), "holds the non-finite value nan in column 2"),
        (lambda r: r.__setitem__(0, -np.inf), "holds the non-finite value -inf in column 0"),
        (lambda r: r.__setitem__(slice(0, 2), [r[0] + r[1] + 1e-3, -1e-3]), "holds the negative value"),
        (lambda r: r.__setitem__(0, r[0] + 2e-3), "sums to 1.002"),
    ],
)
def test_the_first_bad_row_at_group_and_block_edges(row, spoil, says):
    p = _probs(2000, 10, seed=2)
    spoil(p[row])
    if row + 40 < 2000:
        spoil(p[row + 40])  # a later bad row is not the one reported
    for name in FUSED:
        for parts in (1, 2):
            with pytest.raises(DataError, match=f"Row {row} of 'probs' {says}") as info:
                _fused_top_k(p, 5, name, chunk_rows=256, parts=parts)
            assert f"row {row} is the first bad row" in str(info.value)


def test_rows_near_the_sum_tolerance_are_judged_by_the_row_loop():
    # sums 1 + 9.99e-4 (valid, outside the groups' fast check) and 1 + 1.01e-3 (invalid), inside groups
    p = _probs(2000, 10, seed=3)
    for r in (16, 500, 1001):
        p[r, 0] += np.float32(9.99e-4)
    for name, score_fn in FUSED.items():
        assert np.array_equal(_fused_top_k(p, 50, name, chunk_rows=300), top_k(score_fn(p), 50))
    p[777, 0] += np.float32(1.01e-3)
    with pytest.raises(DataError, match="row 777 is the first bad row"):
        select(p, 3, "margin")


def test_entropy_starts_from_a_guess_for_small_k_and_stays_exact():
    n = 4 * 16384
    p = _probs(n, 10, seed=4)
    assert _guess_threshold(p, 50, "entropy") > -np.inf  # small k: a high order statistic of the sample
    assert _guess_threshold(p, 50, "margin") == -np.inf
    assert np.sum(FUSED["entropy"](p) > _guess_threshold(p, 50, "entropy")) >= 50
    for k in (3, 50):
        assert np.array_equal(select(p, k, "entropy", threads=1), top_k(FUSED["entropy"](p), k))


def test_pool_lends_each_buffer_to_one_caller_and_keeps_at_most_max_bytes():
    pool = _Pool(max_bytes=10_000)
    with pool.borrow(4000) as a, pool.borrow(4000) as b:
        assert a.nbytes == b.nbytes == 4000 and not np.shares_memory(a, b)
        a[:] = 1
        b[:] = 2
    with pool.borrow(3000) as c:  # the smallest buffer that fits, reused (not freshly allocated)
        assert c.nbytes == 3000 and c.base is not None
    with pool.borrow(20_000) as big:
        big[:] = 3
    assert sum(buf.nbytes for buf in pool._free) <= 10_000  # the large one is not kept
    seen: list[bool] = []

    def lend() -> None:
        for _ in range(200):
            with pool.borrow(4000) as buf:
                buf[:] = threading.get_ident() % 251
                seen.append(bool((buf == threading.get_ident() % 251).all()))

    threads = [threading.Thread(target=lend) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 400 and all(seen)


def test_results_do_not_share_the_pooled_buffers():
    p = _probs(300_000, 10, seed=5)
    first = select(p, 2000, "margin", threads=2)
    kept = first.copy()
    select(p[::-1].copy(), 2000, "margin", threads=2)
    select(p, 2000, "entropy", threads=1)
    assert np.array_equal(first, kept)
