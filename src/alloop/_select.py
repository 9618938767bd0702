"""``alloop.select``: top-k rows of a probability matrix in one fused, chunked pass.

For least-confidence, margin, ratio and entropy the matrix is read once, chunk by chunk (memory bounded
by a chunk and the running top-k, not by the number of rows): each chunk is validated (2-D, finite,
non-negative, rows summing to 1 ± 1e-3) and scored while it is in cache, and only the rows that can still
enter the top-k are kept. The result equals ``top_k(<strategy>_scores(probs), k)`` exactly, ties to the
lower row. With numba installed (``pip install 'alloop[fast]'``) the per-chunk work is one compiled loop;
otherwise the same chunks go through numpy, calling the very score functions the strategies use.

The compiled row scan keeps a running threshold (the k-th best exact score so far, set as soon as k rows are
known). Least-confidence reads sum, minimum and maximum and rejects a row with one compare; margin and ratio
keep the top two in the same read. For entropy the largest probability bounds the entropy
(:func:`_entropy_cut`), so logarithms are taken only for rows that can still enter the top-k; while that bound
lets more than 20 % of rows through (large k), chunks go through a vectorised pass with a fast float32
logarithm instead. Either way every row within the kernel's error bound (``_scan_slack`` /
``_entropy_slack``) of the k-th best is rescored with :func:`entropy_scores`, so the ranking is the exact one.

>>> import numpy as np
>>> probs = np.array([[0.9, 0.1], [0.5, 0.5], [0.6, 0.4], [0.5, 0.5]], dtype=np.float32)
>>> select(probs, 2, "margin").tolist()  # ties go to the lower row
[1, 3]
>>> select(probs, 3, "least-confidence").tolist()
[1, 3, 2]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from alloop._validation import check_int
from alloop.errors import ConfigError, DataError
from alloop.strategies._base import SelectionContext
from alloop.strategies._registry import get_strategy_class
from alloop.strategies._topk import top_k
from alloop.strategies.uncertainty import entropy_scores, least_confidence_scores, margin_scores, ratio_scores

__all__ = ["FUSED", "select"]

#: Strategies served by the fused pass; other probability-only strategies go through their class.
FUSED: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "least-confidence": least_confidence_scores,
    "margin": margin_scores,
    "ratio": ratio_scores,
    "entropy": entropy_scores,
}
_KIND = {"least-confidence": 0, "margin": 1, "ratio": 2, "entropy": 3}
#: Rows per chunk: 32768 x 10 float32 = 1.3 MB, about one core's L2 here.
CHUNK_ROWS = 32768
_TOL = 1e-3


def _entropy_slack(n_classes: int) -> float:
    """Upper bound on |fast entropy - exact entropy| in the compiled filter.

    The atanh series truncated after z^9 errs by < 2e-6 * p per term (z <= 1/3), so < 2e-6 per row; float32
    rounding of p and of ``e * ln2 + log1p`` adds < 2.5e-7 per term. Both are covered with a 2x margin.
    """
    return 5e-6 + 5e-7 * n_classes


def _scan_slack(n_classes: int) -> float:
    """Upper bound on |entropy from the row scan - :func:`entropy_scores`|: both are float64 sums of ``-p ln p``
    with logarithms accurate to a few ulp, summed in another order (~1e-15 apart); 1e-12 per class is ample."""
    return 1e-12 * (n_classes + 1)


# ---- validation messages ---------------------------------------------------------------------------------
def _bad_row_error(probs: np.ndarray, row: int) -> DataError:
    values = np.asarray(probs[row], dtype=np.float64)
    shown = np.array2string(values[:8], precision=4, separator=", ") + (" …" if values.size > 8 else "")
    nonfinite = np.flatnonzero(~np.isfinite(values))
    negative = np.flatnonzero(values < 0)
    if nonfinite.size:
        why = f"holds the non-finite value {values[nonfinite[0]]} in column {int(nonfinite[0])}"
    elif negative.size:
        why = f"holds the negative value {values[negative[0]]:.6g} in column {int(negative[0])}"
    else:
        why = f"sums to {values.sum():.6g}"
    return DataError(
        f"Row {row} of 'probs' {why}: {shown}. Each row must hold finite, non-negative class probabilities "
        f"summing to 1 (± {_TOL:g}); row {row} is the first bad row."
    )


def _check_chunk(chunk: np.ndarray, start: int, probs: np.ndarray) -> None:
    """Raise for the first bad row of a chunk (numpy path), reading the chunk while it is in cache."""
    sums = chunk.sum(axis=1, dtype=np.float64)
    ok = np.abs(sums - 1.0) <= _TOL  # NaN and ±inf anywhere make the sum fail this too
    if ok.all() and chunk.min(initial=0.0) >= 0:
        return
    bad = ~ok | (chunk < 0).any(axis=1)
    raise _bad_row_error(probs, start + int(np.flatnonzero(bad)[0]))


# ---- compiled kernels (optional) --------------------------------------------------------------------------
@functools.cache
def _kernels() -> tuple[Callable[..., Any], Callable[..., Any]] | None:
    """The numba kernels, compiled on first use; ``None`` when numba is not installed."""
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(nogil=True, cache=True, error_model="numpy", fastmath=False)
    def scan(q, lo, hi, kind, thresh, cut, tol, out_idx, out_sc, base):  # pragma: no cover - compiled
        # Rows lo..hi of q. One read per element: row sum (float64), minimum and maximum as three independent
        # reductions. A row that cannot beat ``thresh`` is rejected from these alone (one compare); only the
        # few that remain are read again, in cache, for their exact score.
        # Returns (count, first bad row, rows given logarithms).
        n_classes = q.shape[1]
        cnt = 0
        logs = 0  # rows whose entropy was computed
        if kind == 1 or kind == 2:  # margin / ratio: top-2, sum and minimum in one read of the row
            for r in range(lo, hi):
                x = q[r, 0]
                y = q[r, 1]
                s = np.float64(x) + np.float64(y)
                mn = y if y < x else x
                m2 = mn
                m1 = y if y > x else x
                for j in range(2, n_classes):
                    x = q[r, j]
                    s += x
                    mn = x if x < mn else mn
                    v = x if x < m1 else m1
                    m2 = v if v > m2 else m2
                    m1 = x if x > m1 else m1
                if not (mn >= 0) or not (abs(s - 1.0) <= tol):
                    return cnt, r, logs
                if kind == 1:
                    sc = -(np.float64(m1) - np.float64(m2))
                elif m1 > 0:
                    sc = np.float64(m2) / np.float64(m1)
                else:
                    sc = np.float64(1.0)
                if sc > thresh:
                    out_idx[base + cnt] = r
                    out_sc[base + cnt] = sc
                    cnt += 1
            return cnt, -1, logs
        for r in range(lo, hi):  # least-confidence / entropy: sum, minimum, maximum
            x = q[r, 0]
            s = np.float64(x)
            mn = x
            m1 = x
            for j in range(1, n_classes):
                x = q[r, j]
                s += np.float64(x)
                mn = x if x < mn else mn
                m1 = x if x > m1 else m1
            if not (mn >= 0) or not (abs(s - 1.0) <= tol):
                return cnt, r, logs
            f1 = np.float64(m1)
            if kind == 0:
                sc = 1.0 - f1
                if sc > thresh:
                    out_idx[base + cnt] = r
                    out_sc[base + cnt] = sc
                    cnt += 1
            elif f1 < cut:  # else the entropy cannot reach thresh (bound from the largest probability)
                logs += 1
                h = 0.0
                for j in range(n_classes):
                    y = np.float64(q[r, j])
                    if y > 0:
                        h -= y * np.log(y)
                if h >= thresh:
                    out_idx[base + cnt] = r
                    out_sc[base + cnt] = h
                    cnt += 1
        return cnt, -1, logs

    @numba.njit(nogil=True, cache=True, error_model="numpy")
    def entropy_chunk(p, bits, start, stop, thresh, tol, buf, out_idx, out_sc):  # pragma: no cover - compiled
        # Pass 1 (contiguous, vectorised): -p log p in float32, log from the exponent plus an atanh series on
        # the mantissa (series error < 2e-6). Pass 2: per-row sums (float64) and validation, chunk in cache.
        n_classes = p.shape[1]
        flat = p.reshape(-1)
        a = start * n_classes
        m = (stop - start) * n_classes
        if bits.itemsize == 4:
            ebits, ebias, mmask, mscale = 23, 127, (1 << 23) - 1, np.float32(2.0**-23)
        else:
            ebits, ebias, mmask, mscale = 52, 1023, (1 << 52) - 1, np.float32(2.0**-52)
        emask = (1 << (bits.itemsize * 8 - 1 - ebits)) - 1
        ln2 = np.float32(0.6931471805599453)
        one, two, zero = np.float32(1.0), np.float32(2.0), np.float32(0.0)
        c3, c5, c7, c9 = np.float32(1.0 / 3.0), np.float32(0.2), np.float32(1.0 / 7.0), np.float32(1.0 / 9.0)
        fl = flat[a : a + m]
        bl = bits[a : a + m]
        for t in range(m):
            b = bl[t]
            e = (b >> ebits) & emask
            f = np.float32(b & mmask) * mscale
            z = f / (two + f)
            z2 = z * z
            log1p = two * z * (one + z2 * (c3 + z2 * (c5 + z2 * (c7 + z2 * c9))))
            val = np.float32(fl[t]) * (np.float32(e - ebias) * ln2 + log1p)
            buf[t] = -val if e > 0 else zero
        cnt = 0
        for r in range(stop - start):
            base = r * n_classes
            h = 0.0
            s = 0.0
            mn = flat[a + base]
            for j in range(n_classes):
                x = flat[a + base + j]
                s += x
                mn = x if x < mn else mn
                h += buf[base + j]
            if not (mn >= 0) or not (abs(s - 1.0) <= tol):
                return cnt, start + r
            if h >= thresh:
                out_idx[cnt] = start + r
                out_sc[cnt] = h
                cnt += 1
        return cnt, -1

    return scan, entropy_chunk


def _entropy_cut(thresh: float, n_classes: int) -> float:
    """A largest probability ``m`` at or above which a row's entropy is surely below ``thresh``.

    For a row with largest value ``m`` and sum ``s <= 1 + tol`` (values >= 0), the entropy is at most
    ``g(m) = -m ln m + max_{r' <= r} r' ln((C - 1) / r')`` with ``r = 1 + tol - m`` (the rest spread evenly);
    ``g`` falls on ``[(1 + tol) / C, 1]`` and every row has ``m >= (1 - tol) / C``. Bisection finds ``m`` with
    ``g(m) < thresh`` (with a margin for rounding); rows with ``m >= cut`` are skipped without a logarithm.

    >>> _entropy_cut(float("-inf"), 10)
    inf
    >>> round(_entropy_cut(2.0, 10), 3)
    0.396
    """
    if not thresh > float("-inf") or n_classes < 2:
        return float("inf")
    target = thresh - 1e-9
    log_rest = math.log(n_classes - 1)
    r_top = (n_classes - 1) / math.e

    def g(m: float) -> float:
        r = min(1.0 + _TOL - m, r_top)  # r ln((C-1)/r) peaks at r = (C-1)/e (only reached for C = 2)
        return -m * math.log(m) - (r * math.log(r) if r > 0 else 0.0) + r * log_rest

    lo = (1.0 + _TOL) / n_classes  # the peak of g; g(lo) bounds every row
    if g(lo) < target:
        return 0.0  # no row can reach thresh
    hi = 1.0
    if g(hi) >= target:
        return float("inf")
    for _ in range(60):  # invariant: g(lo) >= target > g(hi)
        mid = 0.5 * (lo + hi)
        if g(mid) >= target:
            lo = mid
        else:
            hi = mid
    return hi


# ---- the fused pass ---------------------------------------------------------------------------------------
def _fused_top_k(probs: np.ndarray, k: int, strategy: str, *, chunk_rows: int = CHUNK_ROWS, compiled: bool = True
                 ) -> np.ndarray:
    """Rows of the top-k of ``FUSED[strategy](probs)``, best first, ties to the lower row; validates as it reads."""
    n, n_classes = probs.shape
    score_fn = FUSED[strategy]
    fast = compiled and probs.dtype in (np.float32, np.float64) and n_classes >= 2
    kernels = _kernels() if fast else None
    kernel = kernels[0] if kernels is not None else None
    is_entropy = strategy == "entropy"
    keep_idx = np.empty(0, dtype=np.int64)
    keep_sc = np.empty(0, dtype=np.float64)
    pending: list[tuple[np.ndarray, np.ndarray]] = []
    n_pending = 0
    thresh = float("-inf")  # the k-th best exact score so far, once k rows are kept
    slack = _scan_slack(n_classes)
    buf_slack = _entropy_slack(n_classes)
    rows = min(chunk_rows, n) if kernel is not None else 0
    out_idx = np.empty(rows, dtype=np.int64)
    out_sc = np.empty(rows, dtype=np.float64)
    # entropy: the row scan (logarithms only for rows the bound lets through) while that bound is tight; else
    # the vectorised pass (a fast float32 logarithm for every element), re-trying the scan every 32nd chunk
    whole = is_entropy and kernel is not None and probs.flags.c_contiguous
    buf = np.empty(rows * n_classes if whole else 0, dtype=np.float32)
    bits = probs.reshape(-1).view(np.int32 if probs.dtype == np.float32 else np.int64) if whole else buf
    pass_rate = 1.0

    def compact() -> None:
        nonlocal keep_idx, keep_sc, n_pending, thresh
        idx = np.concatenate([keep_idx, *(p[0] for p in pending)])
        sc = np.concatenate([keep_sc, *(p[1] for p in pending)])
        pending.clear()
        n_pending = 0
        if sc.size > k:  # keep the top-k *set* (no sort): all better than the k-th, then its ties by row
            kth = np.partition(sc, sc.size - k)[sc.size - k]
            mask: np.ndarray = sc > kth
            ties = np.flatnonzero(sc == kth)[: k - int(mask.sum())]  # positions are in row order
            mask[ties] = True
            idx, sc = idx[mask], sc[mask]
        keep_idx, keep_sc = idx, sc
        if keep_idx.size >= k:
            thresh = float(keep_sc.min())

    cut_for, cut = float("nan"), float("inf")
    for start in range(0, n, chunk_rows):
        stop = min(n, start + chunk_rows)
        if kernel is None:
            chunk = probs[start:stop]
            if chunk.dtype not in (np.float32, np.float64):
                chunk = chunk.astype(np.float64)
            _check_chunk(chunk, start, probs)
            scores = score_fn(chunk)
            hit = np.flatnonzero(scores > thresh)
            idx, sc = hit + start, scores[hit]
        else:
            eps = slack
            if is_entropy:
                if thresh != cut_for:  # the threshold moves only when pending rows are compacted
                    if cut == float("inf"):
                        pass_rate = 0.0  # the first finite threshold: measure how many rows the bound passes
                    cut_for, cut = thresh, _entropy_cut(thresh - slack, n_classes)
                t = thresh - slack
            else:
                t, cut = thresh, float("inf")
            n_chunk = start // chunk_rows
            if whole and kernels is not None and pass_rate > 0.2 and n_chunk % 32:
                eps = buf_slack
                cnt, bad = kernels[1](probs, bits, start, stop, thresh - eps, _TOL, buf, out_idx, out_sc)
            else:
                cnt, bad, logs = kernel(probs, start, stop, _KIND[strategy], t, cut, _TOL, out_idx, out_sc, 0)
                pass_rate = logs / (stop - start)
            if bad >= 0:
                raise _bad_row_error(probs, int(bad))
            idx, sc = out_idx[:cnt].copy(), out_sc[:cnt].copy()
            if is_entropy and idx.size:
                if idx.size > k:  # k of these rows score >= kth - eps exactly; rows below kth - 2 eps cannot win
                    kth = np.partition(sc, idx.size - k)[idx.size - k]
                    idx = idx[sc >= kth - 2 * eps]
                exact = entropy_scores(probs[idx])  # the exact scores of the few rows the filter let through
                better = exact > thresh
                idx, sc = idx[better], exact[better]
        if idx.size:
            pending.append((idx, sc))
            n_pending += idx.size
            # compact as soon as k rows are known (the first threshold), then every max(k, 4096) rows
            if n_pending >= max(k, 4096) or (keep_idx.size < k <= keep_idx.size + n_pending):
                compact()
    compact()
    return keep_idx[top_k(keep_sc, k)]


def _as_matrix(probs: Any) -> np.ndarray:
    p = probs if isinstance(probs, np.ndarray) else np.asarray(probs)
    if p.ndim != 2:
        raise DataError(f"'probs' must be a 2-D array (rows = records, columns = classes); got shape {p.shape}.")
    if p.dtype.kind not in "fiu" or p.dtype.itemsize > 8:
        raise DataError(f"'probs' must hold numbers (float32 or float64); got dtype {p.dtype}.")
    if p.shape[1] == 0 and p.shape[0] > 0:
        raise DataError("'probs' has no columns; give one column per class.")
    return p


def select(probs: Any, k: int, strategy: str = "margin", **params: Any) -> np.ndarray:
    """Row indices of the ``k`` records to label first, best first; ties go to the lower row.

    ``probs`` is an ``(n, C)`` matrix of class probabilities (float32 or float64 are read in place).
    least-confidence, margin, ratio and entropy run as one fused, chunked pass that also validates the
    input; any other strategy that needs only probabilities (e.g. ``soft-margin``, ``expected-cost``,
    ``gini``) is built with ``params`` and run on the whole matrix after the same validation pass.
    Returns all rows, ranked, when ``k >= n``.

    >>> import numpy as np
    >>> select(np.array([[0.7, 0.3], [0.5, 0.5]]), 1, "entropy").tolist()
    [1]
    >>> select(np.array([[0.7, 0.3], [0.5, 0.6]]), 1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    alloop.errors.DataError: Row 1 of 'probs' sums to 1.1: [0.5, 0.6]. Each row must hold ...
    """
    k = check_int(k, "k", "select", min=0)
    if strategy in FUSED and not params:  # the fast path skips the registry crawl
        p = _as_matrix(probs)
        if p.shape[0] == 0:
            return np.empty(0, dtype=np.int64)
        return _fused_top_k(p, max(k, 1), strategy)[:k]
    if not isinstance(strategy, str):
        raise ConfigError(f"The 'strategy' parameter of select must be a strategy name. Got {strategy!r}.")
    cls = get_strategy_class(strategy)
    allowed = cls._param_names()
    unknown = [name for name in params if name not in allowed]
    if unknown:
        raise ConfigError(
            f"Strategy {strategy!r} has no parameter {unknown[0]!r}; its parameters are: "
            + (", ".join(allowed) if allowed else "(none)")
            + "."
        )
    extra = set(cls.needs) - {"probs"}
    if extra:
        raise ConfigError(
            f"Strategy {strategy!r} needs {sorted(cls.needs)}; select() has probabilities only. "
            "Use SelectionEngine (or a SelectionContext) for strategies that need more."
        )
    p = _as_matrix(probs)
    if p.shape[0] == 0:
        return np.empty(0, dtype=np.int64)
    if k == 0:
        _fused_top_k(p, 1, "least-confidence")  # still validate
        return np.empty(0, dtype=np.int64)
    if strategy in FUSED and not params:
        return _fused_top_k(p, k, strategy)
    _fused_top_k(p, 1, "least-confidence")  # the validation pass
    n = p.shape[0]
    ctx = SelectionContext(ids=np.arange(n, dtype=np.int64), index=np.arange(n, dtype=np.int64), probs=p,
                           n_classes=p.shape[1])
    return np.asarray(cls(**params).select(ctx, k), dtype=np.int64)
