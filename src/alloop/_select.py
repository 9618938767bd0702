"""``alloop.select``: top-k rows of a probability matrix in one fused, chunked pass.

For least-confidence, margin, ratio and entropy the matrix is read once, chunk by chunk (memory bounded
by a chunk and the running top-k, not by the number of rows): each chunk is validated (2-D, finite,
non-negative, rows summing to 1 ± 1e-3) and scored while it is in cache, and only the rows that can still
enter the top-k are kept. The result equals ``top_k(<strategy>_scores(probs), k)`` exactly, ties to the
lower row. With numba installed (``pip install 'alloop[fast]'``) the per-chunk work is one compiled loop;
otherwise the same chunks go through numpy, calling the very score functions the strategies use.

The compiled pass splits the rows into contiguous parts, one per thread (``threads``; the kernel releases the
GIL), and each part keeps its own candidate buffer with a running threshold (the part's k-th best so far),
compacted inside the kernel; the parts' candidates are merged exactly, so any thread count gives the same
result. Least-confidence reads sum, minimum and maximum and rejects a row with one compare; margin and ratio
keep the top two in the same read. For entropy the largest probability bounds the entropy
(:func:`_entropy_cut`), so logarithms are taken only for rows that can still enter the top-k; while that bound
lets more than 20 % of rows through (large k), blocks go through a vectorised pass with a fast float32
logarithm instead. Once a threshold is known (C >= 3), a second bound from the top two probabilities
(:func:`_entropy_pair_table`, a table over the largest one) rejects about half of the rows the first lets
through; the rest are gathered as they are read and get the same vectorised fast logarithm, block by block (this
row scan costs more than the first, so it gives way to the vectorised pass above 6 % instead of 20 %). Either way
every row within the kernel's error bound (``_entropy_slack``) of the k-th best
is rescored with :func:`entropy_scores` (in the part threads when there are many), so the ranking is the exact
one. The entropy kernel has one compiled variant per class count up to 16 (C a compile-time constant, so its row
loops unroll). For large k the pass starts from a threshold guessed from a sample (:func:`_guess_threshold`,
~1.5k rows beat it), and the merged candidates are ranked by :func:`_rank` (a stable radix sort: ties stay in row
order).

Float32, C-contiguous input with C <= 16 (the common case) takes SIMD groups instead of the row loops: 16 rows are
loaded as C vectors and transposed in registers (:func:`_make_scan16`, LLVM IR through a numba intrinsic), so sum,
minimum, top two and the fast logarithm run across 16 rows per instruction; the groups pick the same rows with the
same scores (least-confidence, margin, ratio) or the same fast entropies, and a group holding a bad or borderline
row goes through the row loops, which report the first bad row as before. For entropy the groups either take every
row's logarithms in registers (many rows below the cut) or gather only the rows below the cut; for small k the pass
also starts from a guessed threshold. Work buffers (candidates, merge, radix sort) are lent by a pool (:class:`_Pool`)
so repeated calls do not page-fault fresh memory. At 10^7 x 10 on one thread this cut the pass from 3.2-4.8x to
1.4-2.1x of ``probs.sum()`` (least-confidence, margin, ratio) and entropy from 4.0-7.7x to 2.5-4.8x (measured).

>>> import numpy as np
>>> probs = np.array([[0.9, 0.1], [0.5, 0.5], [0.6, 0.4], [0.5, 0.5]], dtype=np.float32)
>>> select(probs, 2, "margin").tolist()  # ties go to the lower row
[1, 3]
>>> select(probs, 3, "least-confidence").tolist()
[1, 3, 2]
"""

from __future__ import annotations

import contextlib
import functools
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from alloop._validation import check_int
from alloop.errors import ConfigError, DataError
from alloop.strategies._base import SelectionContext
from alloop.strategies._registry import get_strategy_class
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
#: Rows per chunk of the numpy path: 32768 x 10 float32 = 1.3 MB, about one core's L2 here.
CHUNK_ROWS = 32768
#: Rows per block of the compiled path (the entropy fast-log buffer: 4096 x 10 float32 = 160 kB).
BLOCK_ROWS = 4096
#: Fewest rows per parallel part: below 2x this, select runs in the calling thread only.
MIN_PART_ROWS = 65536
#: Fewest entropy candidates per thread when rescoring them exactly (each thread takes at least this many).
MIN_RESCORE_ROWS = 16384
#: Rows per exact entropy rescoring call (:func:`_exact_entropy`).
RESCORE_CHUNK = 8192
_TOL = 1e-3


def _entropy_slack(n_classes: int) -> float:
    """Upper bound on |fast entropy - exact entropy| in the compiled filter.

    The atanh series truncated after z^9 errs by < 2e-6 * p per term (z <= 1/3), so < 2e-6 per row; float32
    rounding of p and of ``e * ln2 + log1p`` adds < 2.5e-7 per term, and the float32 row sum (entropy <= ln C)
    < (C - 1) * 6e-8 * ln C. All three are covered with a 2x margin.
    """
    return 5e-6 + 5e-7 * n_classes + 1.2e-7 * (n_classes - 1) * math.log(max(n_classes, 1))


# ---- validation messages ---------------------------------------------------------------------------------
class _Pool:
    """Large work buffers kept between calls (at most ``max_bytes`` in all), so that a repeated selection does not
    page-fault fresh memory each time (~2.7 µs per 4 kB page on this VM: 7 ms of a 37 ms least-confidence pass at
    k = 10^5 went to the ~2,700 faults of its fresh candidate, merge and sort buffers; measured). Thread-safe: a
    buffer is lent to one caller at a time.

    >>> pool = _Pool(max_bytes=1 << 20)
    >>> with pool.borrow(4096) as buf:
    ...     buf.nbytes >= 4096
    True
    """

    def __init__(self, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def borrow(self, nbytes: int) -> Iterator[np.ndarray]:
        """A uint8 buffer of at least ``nbytes`` bytes (page-aligned when fresh), for the ``with`` block only."""
        with self._lock:  # the smallest that fits (the list is kept sorted by size)
            at = next((i for i, b in enumerate(self._free) if b.nbytes >= nbytes), None)
            buf = self._free.pop(at) if at is not None else np.empty(0, dtype=np.uint8)
        if at is None:
            buf = np.empty(max(nbytes, 1), dtype=np.uint8)
        try:
            yield buf[:nbytes]
        finally:
            with self._lock:
                if buf.nbytes <= self.max_bytes:
                    self._free.append(buf)
                    self._free.sort(key=lambda b: b.nbytes)
                    while sum(b.nbytes for b in self._free) > self.max_bytes:
                        self._free.pop(0)  # the smallest first


#: Work buffers of the compiled pass (candidates, merge, radix sort), reused across calls.
_POOL = _Pool(max_bytes=32 << 20)


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
#: Class counts with an entropy kernel of their own (the row loops unrolled; compiled on first use of each C).
FIXED_CLASSES = range(2, 17)


#: Entropy on SIMD groups: above this share of rows below the cut, logarithms for every row in registers.
SIMD_SWITCH = 0.25
#: Rows per SIMD group of the float32 pass for least-confidence, margin and ratio (one 16-lane vector per column).
LANES = 16
#: The SIMD group scan (:func:`_make_scan16`), put here by :func:`_kernels` before any kernel compiles (a module
#: global, not a closure value, so numba's disk cache keeps working).
_scan16: Any = None


def _column_plan(n_classes: int) -> list[list[tuple[int, int, list[int | None]]]]:
    """How to gather column ``j`` of 16 rows held as ``n_classes`` 16-lane vectors: per column, steps
    ``(vector a, vector b, lane sources)`` of a two-source shuffle (sources ``0..15`` from a, ``16..31`` from b)."""
    plan = []
    for j in range(n_classes):
        src = [divmod(r * n_classes + j, LANES) for r in range(LANES)]
        vecs = sorted({v for v, _ in src})
        steps = []
        for a, b in zip(vecs[::2], vecs[1::2] + ([vecs[-1]] if len(vecs) % 2 else []), strict=True):
            lanes: list[int | None] = [None] * LANES
            for r, (v, lane) in enumerate(src):
                if v == a:
                    lanes[r] = lane
                elif v == b:
                    lanes[r] = LANES + lane
            steps.append((a, b, lanes))
        plan.append(steps)
    return plan


def _make_scan16(numba: Any) -> Any:
    """``_scan16(flat, start, C, kind, thr, cut, fast_tol, out)``: for the 16 float32 rows at ``flat[start:]`` (C and
    kind compile-time constants), ``-1`` unless every row passes the fast validation (minimum >= 0 and float32 sum
    within ``fast_tol`` of 1), else a bit mask of the rows whose score is above ``thr``, the 16 scores in ``out``.
    Scores: least-confidence, margin, ratio in float64 with the row loop's operations (so the same values); entropy
    the vectorised pass's fast logarithm (the same float32 values), taken only when a row's largest probability is
    below ``cut`` (mask 0 otherwise). The rows are loaded as C vectors and transposed by shuffles in registers, so
    sums, minima, top two and logarithms run across 16 rows at a time. Portable LLVM IR, lowered for the host CPU.
    """
    from llvmlite import ir
    from numba import types

    def typer(typingctx: Any, flat: Any, start: Any, ncols: Any, kind: Any, thr: Any, cut: Any, fast_tol: Any,
              out: Any) -> Any:
        sig = types.int64(flat, start, ncols, kind, thr, cut, fast_tol, out)
        literal = isinstance(ncols, types.IntegerLiteral) and isinstance(kind, types.IntegerLiteral)
        usable = literal and ncols.literal_value >= 2 and kind.literal_value in (0, 1, 2, 3, 4)
        if not (usable and isinstance(flat, types.Array) and flat.dtype == types.float32):
            return sig, lambda context, builder, signature, args: ir.Constant(ir.IntType(64), -1)
        return sig, functools.partial(_scan16_ir, ir, ncols.literal_value, kind.literal_value)

    return numba.extending.intrinsic(prefer_literal=True)(typer)


def _fast_xlogx_ir(ir: Any, builder: Any, x: Any) -> Any:
    """``-x ln x`` for a 16-lane float32 vector with the very operations of the kernel's vectorised pass."""
    vf, vi = ir.VectorType(ir.FloatType(), LANES), ir.VectorType(ir.IntType(32), LANES)

    def f32(v: float) -> Any:
        return ir.Constant(vf, [float(np.float32(v))] * LANES)

    def i32(v: int) -> Any:
        return ir.Constant(vi, [v] * LANES)

    b = builder.bitcast(x, vi)
    e = builder.and_(builder.ashr(b, i32(23)), i32(255))
    f = builder.fmul(builder.sitofp(builder.and_(b, i32((1 << 23) - 1)), vf), f32(2.0**-23))
    z = builder.fdiv(f, builder.fadd(f32(2.0), f))
    z2 = builder.fmul(z, z)
    poly = f32(1.0 / 9.0)
    for c in (1.0 / 7.0, 0.2, 1.0 / 3.0, 1.0):
        poly = builder.fadd(f32(c), builder.fmul(z2, poly))
    log1p = builder.fmul(builder.fmul(f32(2.0), z), poly)
    val = builder.fmul(x, builder.fadd(builder.fmul(builder.sitofp(builder.sub(e, i32(127)), vf), f32(math.log(2.0))),
                                       log1p))
    return builder.select(builder.icmp_signed(">", e, i32(0)), builder.fneg(val), f32(0.0))


def _scan16_ir(ir: Any, n_classes: int, kind: int, context: Any, builder: Any, signature: Any, args: Any) -> Any:
    flat, start, _, _, thr, cut, fast_tol, out = args
    f32, f64, i32, i64 = ir.FloatType(), ir.DoubleType(), ir.IntType(32), ir.IntType(64)
    vf, vd, vi = ir.VectorType(f32, LANES), ir.VectorType(f64, LANES), ir.VectorType(i32, LANES)

    def splat(x: Any, vtype: Any) -> Any:
        one = builder.insert_element(ir.Constant(vtype, None), x, ir.Constant(i32, 0))
        return builder.shuffle_vector(one, ir.Constant(vtype, None), ir.Constant(vi, [0] * LANES))

    def pick(cond: str, a: Any, b: Any) -> Any:  # ``a if a <cond> b else b``, as the row loop writes it
        return builder.select(builder.fcmp_ordered(cond, a, b), a, b)

    data = context.make_array(signature.args[0])(context, builder, flat).data
    base = builder.bitcast(builder.gep(data, [start]), vf.as_pointer())
    rows = [builder.load(builder.gep(base, [ir.Constant(i64, v)]), align=4) for v in range(n_classes)]
    cols = []
    for steps in _column_plan(n_classes):
        col = None
        for a, b, lanes in steps:
            part = builder.shuffle_vector(rows[a], rows[b], ir.Constant(vi, [x or 0 for x in lanes]))
            keep = [LANES + r if lanes[r] is not None else r for r in range(LANES)]
            col = part if col is None else builder.shuffle_vector(col, part, ir.Constant(vi, keep))
        cols.append(col)
    x, y = cols[0], cols[1]
    s = builder.fadd(x, y)
    mn = pick("<", y, x)
    m1, m2 = pick(">", y, x), mn
    for x in cols[2:]:
        s = builder.fadd(s, x)
        mn = pick("<", x, mn)
        m2 = pick(">", pick("<", x, m1), m2)
        m1 = pick(">", x, m1)
    dev = builder.fsub(builder.fpext(s, vd), ir.Constant(vd, [1.0] * LANES))
    tol = splat(fast_tol, vd)
    ok = builder.and_(builder.fcmp_ordered("<=", dev, tol), builder.fcmp_ordered(">=", dev, builder.fneg(tol)))
    ok = builder.and_(ok, builder.fcmp_ordered(">=", mn, ir.Constant(vf, [0.0] * LANES)))
    m1d = builder.fpext(m1, vd)
    if kind == 0:
        score = builder.fsub(ir.Constant(vd, [1.0] * LANES), m1d)
    elif kind == 1:
        score = builder.fneg(builder.fsub(m1d, builder.fpext(m2, vd)))
    elif kind == 2:
        score = builder.select(builder.fcmp_ordered(">", m1d, ir.Constant(vd, [0.0] * LANES)),
                               builder.fdiv(builder.fpext(m2, vd), m1d), ir.Constant(vd, [1.0] * LANES))
    i16 = ir.IntType(LANES)
    dest = builder.bitcast(context.make_array(signature.args[7])(context, builder, out).data, vd.as_pointer())
    valid = builder.icmp_signed("==", builder.bitcast(ok, i16), ir.Constant(i16, -1))
    if kind < 3:
        builder.store(score, dest, align=8)
        hits = builder.zext(builder.bitcast(builder.fcmp_ordered(">", score, splat(thr, vd)), i16), i64)
        return builder.select(valid, hits, ir.Constant(i64, -1))
    # entropy: logarithms only when a row's largest probability is below cut (else no row can reach thr); then the
    # vectorised pass's fast -p log p, per column, summed in float32 in column order. Kind 4: only the rows below cut
    below = builder.bitcast(builder.fcmp_ordered("<", m1d, splat(cut, vd)), i16)
    if kind == 4:
        return builder.select(valid, builder.zext(below, i64), ir.Constant(i64, -1))
    need = builder.icmp_signed("!=", below, ir.Constant(i16, 0))
    before = builder.basic_block
    with builder.if_then(need):
        h = _fast_xlogx_ir(ir, builder, cols[0])
        for x in cols[1:]:
            h = builder.fadd(h, _fast_xlogx_ir(ir, builder, x))
        score = builder.fpext(h, vd)
        builder.store(score, dest, align=8)
        hits = builder.zext(builder.bitcast(builder.fcmp_ordered(">", score, splat(thr, vd)), i16), i64)
        logged = builder.basic_block
    found = builder.phi(i64)
    found.add_incoming(hits, logged)
    found.add_incoming(ir.Constant(i64, 0), before)
    return builder.select(valid, found, ir.Constant(i64, -1))


@functools.cache
def _kernels() -> dict[str, Callable[..., Any]] | None:
    """The numba kernels (the generic pass, and the radix sort of :func:`_rank`), compiled on first use (and cached
    on disk); ``None`` when numba is not installed.

    Each kernel is one self-contained function (a kernel calling another compiled closure would miss numba's disk
    cache)."""
    try:
        import numba
        import numba.extending
    except ImportError:
        return None
    global _scan16
    _scan16 = _make_scan16(numba)
    return {"part": _make_part(numba, 0), **_make_rank_kernels(numba)}


@functools.cache
def _part_kernel(n_classes: int, strategy: str, simd: bool = False) -> Callable[..., Any] | None:
    """The pass for ``n_classes`` columns: for C in :data:`FIXED_CLASSES` a kernel of its own for entropy, and for
    the other strategies when ``simd`` (float32, C-contiguous: the :func:`_make_scan16` groups); else the generic
    one (without the SIMD groups a fixed C made entropy 1.3-1.6x faster at C = 10 and margin / ratio 1-5 % slower;
    measured); ``None`` without numba."""
    kernels = _kernels()
    if kernels is None or n_classes not in FIXED_CLASSES or not (simd or strategy == "entropy"):
        return None if kernels is None else kernels["part"]
    return _fixed_part(n_classes)


@functools.cache
def _fixed_part(n_classes: int) -> Callable[..., Any]:
    """The pass with C fixed at ``n_classes``, one per C for every strategy (compiled once per signature)."""
    import numba

    return _make_part(numba, n_classes)


def _make_part(numba: Any, fixed_classes: int) -> Callable[..., Any]:
    """The pass kernel; ``fixed_classes > 0`` makes the class count a compile-time constant, so the row loops
    unroll. numba's disk cache keys a closure by its captured values: each C is compiled once per machine."""

    @numba.njit(nogil=True, cache=True, error_model="numpy")
    def part(q, flat, bits, lo, hi, kind, tol, thr, cut, pass_rate, retry, block, buf, idx, sc, cnt, pair=None
             ):  # pragma: no cover - compiled
        # Appends to (idx, sc), from position cnt, the rows of lo..hi whose score beats thr (in row order),
        # validating every row as it is read. Returns (count, row where it stopped, first bad row or -1): it
        # stops early at a bad row, or at a row to append when the buffer is full (the caller compacts it,
        # raises thr and calls again from that row). ``flat``/``bits``: q as 1-D values and their integer bits
        # when q is C-contiguous (entropy only; else empty). Entropy: rows whose largest probability is >= cut
        # cannot reach thr; ``pass_rate`` > 0.2 (rows given logarithms) switches to the vectorised fast log,
        # and every ``retry``-th block tries the row scan again. The three row loops repeat their last lines
        # (validate, compare, append) on purpose: one loop per kind stays specialised, ~10 % faster than a shared
        # loop with per-row branches (measured), and one self-contained function keeps numba's disk cache working.
        # ``pair`` (entropy, optional): the bound from the top two (:func:`_entropy_pair_table`); a row whose second
        # largest probability is >= pair[int(largest * len(pair))] cannot reach thr; with ``flat`` the remaining
        # rows get the same fast logarithm as the vectorised pass, per row. With C fixed, float32 and ``flat``, whole
        # groups of 16 rows go through _scan16 first (see below); ``pair`` is then not needed.
        n_classes = q.shape[1] if fixed_classes == 0 else fixed_classes
        cap = idx.shape[0]
        # float32 rows with C fixed: 16 rows at a time through _scan16, which validates and scores them (entropy:
        # fast logarithms in registers, or only the mask of rows below cut, gathered for the fast log below); a group
        # it cannot vouch for (a bad or borderline row) and the rows after it in the block go through the row loops
        # below, which decide exactly as before
        simd = fixed_classes >= 2 and flat.size > 0 and bits.itemsize == 4
        hs = np.empty(16 if simd else 0, dtype=np.float64)
        vec = kind == 3 and flat.size > 0 and not simd and buf.size >= block * n_classes
        if bits.itemsize == 4:
            ebits, ebias, mmask, mscale = 23, 127, (1 << 23) - 1, np.float32(2.0**-23)
        else:
            ebits, ebias, mmask, mscale = 52, 1023, (1 << 52) - 1, np.float32(2.0**-52)
        emask = (1 << (bits.itemsize * 8 - 1 - ebits)) - 1
        i23, i255, m23 = np.int32(23), np.int32(255), np.int32((1 << 23) - 1)
        # Row sums accumulate in q's dtype; a float32 sum is within C * 6e-8 of the float64 one for rows summing to
        # ~1, so a row is accepted at once when it is within tol minus twice that, else its float64 sum decides
        # (sequentially, as every row was checked before this shortcut)
        fast_tol = tol - (1.2e-7 * n_classes + 1e-7)
        ln2 = np.float32(0.6931471805599453)
        one, two, zero = np.float32(1.0), np.float32(2.0), np.float32(0.0)
        c3, c5, c7, c9 = np.float32(1.0 / 3.0), np.float32(0.2), np.float32(1.0 / 7.0), np.float32(1.0 / 9.0)
        # the vectorised pass pays off above 20 % of rows needing logarithms after the bound from the largest
        # probability, and above 6 % after the bound from the top two (whose own row scan costs more; measured)
        switch = 0.2 if pair is None else 0.06
        gather = pair is not None or (simd and kind == 3)
        rows = np.empty(block if gather else 0, dtype=np.int64)
        gval = np.empty((block + 1) * n_classes if gather else 0, dtype=np.float32)  # rows gathered
        gbits = gval.view(np.int32)
        nblk = 0
        for b0 in range(lo, hi, block):
            b1 = min(hi, b0 + block)
            nblk += 1
            start = b0
            logs = 0
            # entropy: logarithms in registers while many rows need them (``SIMD_SWITCH``; every ``retry``-th block
            # measures again), else only the rows below cut are gathered for the fast logarithm further down
            inreg = pass_rate > SIMD_SWITCH and nblk % retry != 0
            if simd:  # whole groups of 16 rows while they validate; the row loops take the rest of the block
                while start + 16 <= b1:
                    if kind == 0:
                        m = _scan16(flat, start * fixed_classes, fixed_classes, 0, thr, cut, fast_tol, hs)
                    elif kind == 1:
                        m = _scan16(flat, start * fixed_classes, fixed_classes, 1, thr, cut, fast_tol, hs)
                    elif kind == 2:
                        m = _scan16(flat, start * fixed_classes, fixed_classes, 2, thr, cut, fast_tol, hs)
                    elif inreg:
                        m = _scan16(flat, start * fixed_classes, fixed_classes, 3, thr, cut, fast_tol, hs)
                    else:
                        m = _scan16(flat, start * fixed_classes, fixed_classes, 4, thr, cut, fast_tol, hs)
                        if m > 0:
                            for t in range(16):
                                if (m >> t) & 1:
                                    rows[logs] = start + t
                                    c = (start + t) * n_classes
                                    for j in range(n_classes):
                                        gval[logs * n_classes + j] = flat[c + j]
                                    logs += 1
                            m = 0
                    if m < 0:
                        break
                    for t in range(16 if m else 0):
                        if (m >> t) & 1:
                            if cnt == cap:
                                return cnt, start + t, -1
                            idx[cnt] = start + t
                            sc[cnt] = hs[t]
                            cnt += 1
                    start += 16
            if kind == 1 or kind == 2:  # margin / ratio: top-2, sum and minimum in one read of the row
                for r in range(start, b1):
                    x = q[r, 0]
                    y = q[r, 1]
                    s = x + y
                    mn = y if y < x else x
                    m2 = mn
                    m1 = y if y > x else x
                    for j in range(2, n_classes - 1, 2):  # two values at a time: 4.5 float ops per value, not 5
                        x = q[r, j]
                        y = q[r, j + 1]
                        s += x
                        s += y
                        big = y if y > x else x
                        small = y if y < x else x
                        mn = small if small < mn else mn
                        v = big if big < m1 else m1  # the top two of (m1, m2, big, small)
                        w = small if small > m2 else m2
                        m2 = v if v > w else w
                        m1 = big if big > m1 else m1
                    if n_classes % 2 == 1:
                        x = q[r, n_classes - 1]
                        s += x
                        mn = x if x < mn else mn
                        v = x if x < m1 else m1
                        m2 = v if v > m2 else m2
                        m1 = x if x > m1 else m1
                    if not (mn >= 0) or not (abs(np.float64(s) - 1.0) <= fast_tol):
                        s64 = np.float64(0.0)
                        for j in range(n_classes):
                            s64 += np.float64(q[r, j])
                        if not (mn >= 0) or not (abs(s64 - 1.0) <= tol):
                            return cnt, r, r
                    if kind == 1:
                        h = -(np.float64(m1) - np.float64(m2))
                    elif m1 > 0:
                        h = np.float64(m2) / np.float64(m1)
                    else:
                        h = np.float64(1.0)
                    if h > thr:
                        if cnt == cap:
                            return cnt, r, -1
                        idx[cnt] = r
                        sc[cnt] = h
                        cnt += 1
                continue
            if vec and pass_rate > switch and nblk % retry != 0:  # most rows need logarithms: vectorised fast log
                # -p log p in float32: the log from the exponent plus an atanh series on the mantissa (series
                # error < 2e-6 * p, see _entropy_slack); then per-row sums and validation, the block in cache
                a = b0 * n_classes
                m = (b1 - b0) * n_classes
                fl = flat[a : a + m]
                bl = bits[a : a + m]
                for t in range(m):
                    b = bl[t]
                    if bits.itemsize == 4:  # float32 input: 32-bit integer lanes (numba widens to 64; ~30 % slower)
                        e = np.int32(np.int32(b >> i23) & i255)
                        f = np.float32(np.int32(b & m23)) * mscale
                    else:
                        e = (b >> ebits) & emask
                        f = np.float32(b & mmask) * mscale
                    z = f / (two + f)
                    z2 = z * z
                    log1p = two * z * (one + z2 * (c3 + z2 * (c5 + z2 * (c7 + z2 * c9))))
                    val = np.float32(fl[t]) * (np.float32(np.int32(e - ebias)) * ln2 + log1p)
                    buf[t] = -val if e > 0 else zero
                for r in range(b0, b1):
                    o = (r - b0) * n_classes
                    h = buf[o]  # float32 sum: rounding < (C - 1) * 6e-8 * ln C, in _entropy_slack
                    s = fl[o]
                    mn = s
                    for j in range(1, n_classes):
                        x = fl[o + j]
                        s += x
                        mn = x if x < mn else mn
                        h += buf[o + j]
                    if not (mn >= 0) or not (abs(np.float64(s) - 1.0) <= fast_tol):
                        s64 = np.float64(0.0)
                        for j in range(n_classes):
                            s64 += np.float64(fl[o + j])
                        if not (mn >= 0) or not (abs(s64 - 1.0) <= tol):
                            return cnt, r, r
                    if h > thr:
                        if cnt == cap:
                            return cnt, r, -1
                        idx[cnt] = r
                        sc[cnt] = h
                        cnt += 1
                continue
            if gather and kind == 3:  # entropy: the rows the SIMD groups gathered, or (pair) the bounds' row scan
                if pair is not None:  # (numba prunes this branch when there is no table)
                    for r in range(b0, b1 if not simd else b0):  # top two, sum, minimum, then the two bounds
                        c = logs * n_classes  # the row is copied (as float32) to the gather buffer as it is read
                        x = q[r, 0]
                        y = q[r, 1]
                        gval[c] = x
                        gval[c + 1] = y
                        s = x + y
                        mn = y if y < x else x
                        m2 = mn
                        m1 = y if y > x else x
                        for j in range(2, n_classes):
                            x = q[r, j]
                            gval[c + j] = x
                            s += x
                            mn = x if x < mn else mn
                            v = x if x < m1 else m1
                            m2 = v if v > m2 else m2
                            m1 = x if x > m1 else m1
                        if not (mn >= 0) or not (abs(np.float64(s) - 1.0) <= fast_tol):
                            s64 = np.float64(0.0)
                            for j in range(n_classes):
                                s64 += np.float64(q[r, j])
                            if not (mn >= 0) or not (abs(s64 - 1.0) <= tol):
                                return cnt, r, r
                        if m1 < cut and m2 < pair[min(int(np.float64(m1) * pair.shape[0]), pair.shape[0] - 1)]:
                            rows[logs] = r  # may still reach thr: kept in the gather buffer
                            logs += 1
                for t in range(logs * n_classes):  # the fast log of the vectorised pass, on the gathered rows
                    b = gbits[t]
                    e = np.int32(np.int32(b >> i23) & i255)
                    f = np.float32(np.int32(b & m23)) * np.float32(2.0**-23)
                    z = f / (two + f)
                    z2 = z * z
                    log1p = two * z * (one + z2 * (c3 + z2 * (c5 + z2 * (c7 + z2 * c9))))
                    val = gval[t] * (np.float32(np.int32(e - 127)) * ln2 + log1p)
                    gval[t] = -val if e > 0 else zero
                for t in range(logs):
                    r = rows[t]
                    o = t * n_classes
                    h = np.float64(gval[o])
                    for j in range(1, n_classes):
                        h += gval[o + j]
                    if h > thr:
                        if cnt == cap:
                            return cnt, r, -1
                        idx[cnt] = r
                        sc[cnt] = h
                        cnt += 1
                if not simd:
                    pass_rate = logs / (b1 - b0)
                    continue
            for r in range(start, b1):  # least-confidence / entropy: sum, minimum, maximum
                x = q[r, 0]
                s = x
                mn = x
                m1 = x
                for j in range(1, n_classes):
                    x = q[r, j]
                    s += x
                    mn = x if x < mn else mn
                    m1 = x if x > m1 else m1
                if not (mn >= 0) or not (abs(np.float64(s) - 1.0) <= fast_tol):
                    s64 = np.float64(0.0)
                    for j in range(n_classes):
                        s64 += np.float64(q[r, j])
                    if not (mn >= 0) or not (abs(s64 - 1.0) <= tol):
                        return cnt, r, r
                if kind == 0:
                    h = 1.0 - np.float64(m1)
                elif m1 < cut:  # else the entropy cannot reach thr (bound from the largest probability)
                    logs += 1
                    h = np.float64(0.0)
                    for j in range(n_classes):
                        y = np.float64(q[r, j])
                        if y > 0:
                            h -= y * np.log(y)
                else:
                    continue
                if h > thr:
                    if cnt == cap:
                        return cnt, r, -1
                    idx[cnt] = r
                    sc[cnt] = h
                    cnt += 1
            if not (simd and inreg):
                pass_rate = logs / (b1 - b0)
        return cnt, hi, -1

    return part


def _make_rank_kernels(numba: Any) -> dict[str, Callable[..., Any]]:
    """The compiled part of :func:`_rank`: a stable radix sort."""

    @numba.njit(nogil=True, cache=True)
    def radix_order(sc, work):  # pragma: no cover - compiled
        # positions sorted by score (float64, no NaN) from the highest, ties by position: a stable LSD radix sort
        # (11-bit digits) of the order-preserving integer images of the keys -score; digits shared by every key are
        # skipped. ``work``: 4 n uint64 of scratch, which the returned positions are a view of
        n = sc.shape[0]
        u = work[:n]
        keys = u.view(np.float64)
        for i in range(n):
            keys[i] = -sc[i] + 0.0  # + 0.0: -0.0 becomes 0.0, equal keys get equal images
        top = np.uint64(1) << np.uint64(63)
        for i in range(n):
            x = u[i]
            u[i] = ~x if x & top else x | top
        counts = np.zeros((6, 2048), dtype=np.int64)
        mask = np.uint64(2047)
        for i in range(n):
            x = u[i]
            for d in range(6):
                counts[d, (x >> np.uint64(11 * d)) & mask] += 1
        order = work[n : 2 * n].view(np.int64)
        for i in range(n):
            order[i] = i
        u2 = work[2 * n : 3 * n]
        o2 = work[3 * n : 4 * n].view(np.int64)
        for d in range(6):
            c = counts[d]
            if c.max() == n:  # one bucket: this digit does not reorder anything
                continue
            total = 0
            for b in range(2048):
                t = c[b]
                c[b] = total
                total += t
            shift = np.uint64(11 * d)
            for i in range(n):
                x = u[i]
                b = (x >> shift) & mask
                j = c[b]
                c[b] = j + 1
                u2[j] = x
                o2[j] = order[i]
            u, u2 = u2, u
            order, o2 = o2, order
        return order

    return {"radix_order": radix_order}


#: Buckets of the largest probability in :func:`_entropy_pair_table`, and intervals of the second largest.
PAIR_BUCKETS = 256
PAIR_STEPS = 512


def _xlogx_max(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The largest ``-x ln x`` over ``x`` in ``[u, v]`` (elementwise; it peaks at ``1/e``)."""
    x = np.clip(1.0 / math.e, u, v)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, -x * np.log(np.where(x > 0, x, 1.0)), 0.0)


def _entropy_pair_table(thresh: float, n_classes: int) -> np.ndarray | None:
    """Per bucket ``[a, b)`` of the largest probability ``p1`` (:data:`PAIR_BUCKETS` of ``[0, 1)``), a second
    largest ``t`` such that every row with ``p1`` in the bucket and ``p2 >= t`` has entropy below ``thresh``
    (``inf``: none known); ``None`` when there is no threshold or fewer than 3 classes.

    With the rest ``r <= 1 + tol - p1 - p2`` spread over the other ``C - 2`` classes, a row's entropy is at most
    ``-p1 ln p1 - p2 ln p2 + max_{r' <= r} r' ln((C - 2) / r')``. Each term is bounded from above over the bucket
    and over intervals of ``p2`` (:data:`PAIR_STEPS` of ``[0, 1/2 + tol]``), and ``t`` is the lowest interval
    start from which every interval (up to ``b``) stays below ``thresh``; so the table is exact, not tuned.

    >>> t = _entropy_pair_table(2.0, 10)
    >>> bool(t[int(0.3 * PAIR_BUCKETS)] < 0.3), bool(t[int(0.15 * PAIR_BUCKETS)] > 0.15), _entropy_pair_table(2.0, 2)
    (True, True, None)
    """
    if not thresh > float("-inf") or n_classes < 3:
        return None
    return _pair_table_at(math.floor(thresh * 1024.0) / 1024.0, n_classes)  # lower: still a bound; and cached


@functools.lru_cache(maxsize=64)
def _pair_table_at(thresh: float, n_classes: int) -> np.ndarray:
    target = thresh - 1e-9
    a = np.arange(PAIR_BUCKETS, dtype=np.float64)[:, None] / PAIR_BUCKETS
    b = a + 1.0 / PAIR_BUCKETS
    top = 0.5 * (1.0 + _TOL)
    u = np.arange(PAIR_STEPS, dtype=np.float64)[None, :] * (top / PAIR_STEPS)
    v = np.minimum(u + top / PAIR_STEPS, b)
    rest = np.clip(1.0 + _TOL - a - u, 0.0, (n_classes - 2) / math.e)  # r' ln((C-2)/r') rises up to (C-2)/e
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = np.where(rest > 0, rest * np.log((n_classes - 2) / np.where(rest > 0, rest, 1.0)), 0.0)
    bound = _xlogx_max(a, b) + _xlogx_max(u, v) + spread
    ok = (bound < target) | (u >= b)  # p2 <= p1 < b: intervals from b up hold no rows
    # the lowest start from which all intervals are ok: after the last interval that is not
    bad_last = np.where(ok.all(axis=1), -1, PAIR_STEPS - 1 - np.argmax(~ok[:, ::-1], axis=1))
    start = bad_last + 1
    u_row = u[0]
    table = np.where(start >= PAIR_STEPS, np.inf, u_row[np.minimum(start, PAIR_STEPS - 1)])
    table.flags.writeable = False  # shared by the cache
    return table


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
def _keep_top(idx: np.ndarray, sc: np.ndarray, k: int, eps: float = 0.0) -> tuple[np.ndarray, np.ndarray, float]:
    """Shrink candidates (in row order) to the top-k *set*, keeping row order, and return the new threshold.

    ``eps == 0`` (exact scores): every row better than the k-th, then its ties by row. ``eps > 0`` (scores known
    to ``± eps``): every row above ``kth - 3 eps``, a superset of the exact top-k (they are all within 2 eps).
    """
    if sc.size <= k:
        return idx, sc, float("-inf")
    kth = float(np.partition(sc, sc.size - k)[sc.size - k])
    if eps > 0:
        mask: np.ndarray = sc > kth - 3 * eps
        return idx[mask], sc[mask], kth - 3 * eps
    mask = sc > kth
    mask[np.flatnonzero(sc == kth)[: k - int(mask.sum())]] = True  # positions are in row order
    return idx[mask], sc[mask], kth


def _rank(sc: np.ndarray, k: int, *, compiled: bool = True) -> np.ndarray:
    """``top_k(sc, k)`` for finite scores, faster on large k. Compiled: a stable radix sort of the scores (of the k
    best, after one partition, when there are more than 4k scores); 6-8x faster than an argsort at 10^5 (measured).
    Without numba (or ``compiled=False``): one partition, an unstable argsort of the k best, and only the runs of
    equal scores re-sorted by position (one integer sort of the tied entries).

    >>> _rank(np.array([0.5, 2.0, 0.5, 2.0, 1.0]), 4).tolist()
    [1, 3, 4, 0]
    """
    n = sc.size
    kernels = _kernels() if compiled else None
    if kernels is not None and n <= 4 * k:  # sorting every score beats a partition first (radix: linear time)
        with _POOL.borrow(32 * n) as work:
            return np.array(kernels["radix_order"](np.asarray(sc, dtype=np.float64), work.view(np.uint64))[:k])
    if k >= n:
        chosen = np.arange(n)
    else:
        kth = np.partition(sc, n - k)[n - k]
        mask = sc > kth
        mask[np.flatnonzero(sc == kth)[: k - int(np.count_nonzero(mask))]] = True
        chosen = np.flatnonzero(mask)  # positions in order
    if kernels is not None:
        with _POOL.borrow(32 * chosen.size) as work:
            return chosen[kernels["radix_order"](sc[chosen].astype(np.float64), work.view(np.uint64))]
    key = -sc[chosen].astype(np.float64)
    order = np.argsort(key)
    ks = key[order]
    new_run = ks[1:] != ks[:-1]
    if not new_run.all():  # ties: within each run of equal keys, put the order values (= positions) ascending
        m = order.size
        tied = np.zeros(m, dtype=bool)
        tied[1:] = ~new_run
        tied[:-1] |= ~new_run
        at = np.flatnonzero(tied)
        run = np.concatenate(([0], np.cumsum(new_run)))[at]
        comp = np.sort(run * m + order[at])
        order[at] = comp % m
    return chosen[order]


def _compiled_part(
    probs: np.ndarray, lo: int, hi: int, k: int, strategy: str, kernel: Callable[..., Any], *, block: int,
    flat: np.ndarray, thr0: float = float("-inf"), work: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, int] | None:
    """Rows lo..hi: ``(candidate rows, their scores, first bad row or -1)``, only rows scoring above ``thr0``;
    ``None`` on entropy near-ties that keep the candidate buffer from shrinking (the caller falls back to numpy).
    ``work``: :func:`_part_bytes` bytes for the candidate buffer (the returned arrays are views of it)."""
    n_classes = probs.shape[1]
    eps = _entropy_slack(n_classes) if strategy == "entropy" else 0.0
    cap = _part_bytes(lo, hi, k) // 16
    if work is None:
        work = np.empty(16 * cap, dtype=np.uint8)
    idx, sc = work[: 8 * cap].view(np.int64), work[8 * cap : 16 * cap].view(np.float64)
    simd = flat.size > 0 and _simd(probs)  # the kernel's SIMD groups: no fast-log buffer, no pair table
    buf = np.empty(block * n_classes if flat.size and strategy == "entropy" and not simd else 0, dtype=np.float32)
    bits = flat.view(np.int32 if probs.dtype == np.float32 else np.int64)
    thr, cnt, row, pass_rate = thr0, 0, lo, 1.0
    pair, pair_row = None, lo
    while True:
        cut = _entropy_cut(thr - eps, n_classes) if eps else float("inf")  # entropies > thr - eps can be kept
        if eps and not simd and (pair is None or row - pair_row >= max(pair_row - lo, 16384)):  # as rows read double
            pair, pair_row = _entropy_pair_table(thr - eps, n_classes), row
        args = (probs, flat, bits, row, hi, _KIND[strategy], _TOL, thr, cut, pass_rate, 32, block, buf, idx, sc, cnt)
        cnt, row, bad = kernel(*args) if pair is None else kernel(*args, pair)
        if bad >= 0 or row >= hi:
            return idx[:cnt], sc[:cnt], int(bad)
        kept_idx, kept_sc, new = _keep_top(idx, sc, k, eps)  # the buffer is full: compact it in place
        thr = max(thr, new)
        cnt = kept_idx.size
        idx[:cnt], sc[:cnt] = kept_idx, kept_sc
        if 2 * (cap - cnt) < cap - k:
            return None
        pass_rate = 0.0  # a new threshold: let the entropy row scan measure how many rows still need logs


def _part_bytes(lo: int, hi: int, k: int) -> int:
    """Bytes of a part's candidate buffer (rows and scores): small for small k, so the threshold tightens early."""
    return 16 * min(2 * k + 256, hi - lo)


def _guess_threshold(probs: np.ndarray, k: int, strategy: str) -> float:
    """A score that about ``1.5k`` rows beat, from the exact scores of an evenly strided sample of 16,384 rows, when
    k is large (>= 0.15 % of the rows; then the sample puts ~50 rows above it); for entropy and smaller k, the
    ``(2 k m / n + 4)``-th best sample score (fewer than k rows beat it with probability < 1e-3), so the bound on the
    largest probability is tight from the first row; ``-inf`` otherwise. Starting the pass there skips most of the
    early insertions, compactions (and logarithms); :func:`_compiled_top_k` checks afterwards that it was low enough
    and re-reads with ``-inf`` if not, so the result never depends on the guess."""
    n, m = probs.shape[0], 16384
    small = 2 * k * m < 50 * n
    if n < 4 * m or (small and strategy != "entropy"):
        return float("-inf")
    scores = FUSED[strategy](probs[:: n // m])
    scores = scores[np.isfinite(scores)]  # the pass itself reports bad rows
    if scores.size < m // 2:
        return float("-inf")
    if small:
        j = math.ceil(2 * k * scores.size / n) + 4
        return float(np.partition(scores, scores.size - j)[scores.size - j])
    return float(np.quantile(scores, 1.0 - 1.5 * k / n))


def _in_threads(fn: Callable[[int], Any], n: int) -> list[Any]:
    """``[fn(0), ..., fn(n - 1)]``, ``fn(0)`` in the calling thread and each other call in a thread of its own;
    the first exception (by ``i``) is re-raised here.

    >>> _in_threads(lambda i: i * i, 3)
    [0, 1, 4]
    """
    out: list[Any] = [None] * n

    def work(i: int) -> None:
        try:
            out[i] = fn(i)
        except BaseException as exc:  # re-raised in the calling thread
            out[i] = exc

    helpers = [threading.Thread(target=work, args=(i,), name=f"alloop-select-{i}") for i in range(1, n)]
    for t in helpers:
        t.start()
    work(0)
    for t in helpers:
        t.join()
    for o in out:
        if isinstance(o, BaseException):
            raise o
    return out


def _scan_part(probs: np.ndarray, edges: list[int], k: int, strategy: str, kernel: Callable[..., Any], block: int,
               flat: np.ndarray, thr0: float, work: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray, int] | None:
    at = sum(_part_bytes(edges[j], edges[j + 1], k) for j in range(i))
    mine = work[at : at + _part_bytes(edges[i], edges[i + 1], k)]
    return _compiled_part(probs, edges[i], edges[i + 1], k, strategy, kernel, block=block, flat=flat, thr0=thr0,
                          work=mine)


def _simd(probs: np.ndarray) -> bool:
    """Whether least-confidence, margin and ratio can take the SIMD groups (:func:`_make_scan16`) on ``probs``."""
    return probs.dtype == np.float32 and probs.flags.c_contiguous and probs.shape[1] in FIXED_CLASSES


def _compiled_top_k(probs: np.ndarray, k: int, strategy: str, kernel: Callable[..., Any], *, block: int,
                    parts: int) -> np.ndarray | None:
    """The compiled pass: ``parts`` contiguous row ranges, each scanned in its own thread (the kernel releases
    the GIL) for its exact top-k candidates, merged exactly here, so the result does not depend on ``parts``.
    ``None`` when a part's entropy near-ties overflowed its buffer: use numpy."""
    n = probs.shape[0]
    entropy = strategy == "entropy"
    eps = _entropy_slack(probs.shape[1]) if entropy else 0.0
    use_flat = probs.flags.c_contiguous and (entropy or _simd(probs))
    flat = probs.reshape(-1) if use_flat else np.empty(0, dtype=probs.dtype)
    edges = [n * i // parts for i in range(parts + 1)]
    thr0 = _guess_threshold(probs, k, strategy) - 4 * eps  # entropy: on approximate scores, with a margin
    with contextlib.ExitStack() as lent:
        work = lent.enter_context(_POOL.borrow(sum(_part_bytes(edges[i], edges[i + 1], k) for i in range(parts))))
        while True:
            scan = functools.partial(_scan_part, probs, edges, k, strategy, kernel, block, flat, thr0, work)
            out = _in_threads(scan, parts)
            if any(o is None for o in out):
                return None
            bad = [o[2] for o in out if o[2] >= 0]
            if bad:
                raise _bad_row_error(probs, min(bad))
            idx, sc = _merge(out, lent)  # row order: parts in order, each in row order
            # every row of the top-k (for entropy: every row within 2 eps of the k-th) must have beaten thr0
            if thr0 == float("-inf") or np.count_nonzero(sc - 2 * eps > thr0) >= k:
                break
            thr0 = float("-inf")  # the guess was too high: read again from scratch
        if not entropy:
            return idx[_rank(sc, k)]  # exact scores; ties by position are ties by row
        idx = _keep_top(idx, sc, k, eps)[0]
        # exact rescoring of the few candidates (numpy releases the GIL: large candidate sets in the part threads)
        pieces = np.array_split(idx, parts if idx.size >= parts * MIN_RESCORE_ROWS else 1)
        exact = np.concatenate(_in_threads(lambda i: _exact_entropy(probs, pieces[i]), len(pieces)))
        return idx[_rank(exact, k)]


def _merge(out: list[tuple[np.ndarray, np.ndarray, int]], lent: contextlib.ExitStack) -> tuple[np.ndarray, np.ndarray]:
    """The parts' candidates, one after the other, in a buffer lent until ``lent`` closes (one part: its own
    arrays, no copy)."""
    if len(out) == 1:
        return out[0][0], out[0][1]
    total = sum(o[0].size for o in out)
    buf = lent.enter_context(_POOL.borrow(16 * total))
    idx = np.concatenate([o[0] for o in out], out=buf[: 8 * total].view(np.int64))
    return idx, np.concatenate([o[1] for o in out], out=buf[8 * total :].view(np.float64))


def _exact_entropy(probs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``entropy_scores(probs[rows])``, :data:`RESCORE_CHUNK` rows at a time (its temporaries stay small: 12 against
    15 ms for 10^5 rows, measured)."""
    out = np.empty(rows.size)
    for a in range(0, rows.size, RESCORE_CHUNK):
        out[a : a + RESCORE_CHUNK] = entropy_scores(probs[rows[a : a + RESCORE_CHUNK]])
    return out


def _numpy_top_k(probs: np.ndarray, k: int, strategy: str, *, chunk_rows: int) -> np.ndarray:
    """The same pass through numpy, chunk by chunk, with the strategies' own score functions."""
    n = probs.shape[0]
    score_fn = FUSED[strategy]
    keep_idx = np.empty(0, dtype=np.int64)
    keep_sc = np.empty(0, dtype=np.float64)
    thresh = float("-inf")  # the k-th best exact score so far, once k rows are kept
    for start in range(0, n, chunk_rows):
        chunk = probs[start : min(n, start + chunk_rows)]
        if chunk.dtype not in (np.float32, np.float64):
            chunk = chunk.astype(np.float64)
        _check_chunk(chunk, start, probs)
        scores = score_fn(chunk)
        hit = np.flatnonzero(scores > thresh)
        if hit.size:
            keep_idx, keep_sc, new = _keep_top(np.concatenate([keep_idx, hit + start]),
                                               np.concatenate([keep_sc, scores[hit]]), k)
            thresh = max(thresh, new)
    return keep_idx[_rank(keep_sc, k)]


def _fused_top_k(probs: np.ndarray, k: int, strategy: str, *, chunk_rows: int | None = None, compiled: bool = True,
                 parts: int = 1) -> np.ndarray:
    """Rows of the top-k of ``FUSED[strategy](probs)``, best first, ties to the lower row; validates as it reads.

    ``chunk_rows``: rows per block (compiled) or chunk (numpy); ``parts``: row ranges scanned in parallel.
    """
    n, n_classes = probs.shape
    k = min(k, n)
    fast = compiled and probs.dtype in (np.float32, np.float64) and n_classes >= 2
    kernel = _part_kernel(n_classes, strategy, _simd(probs)) if fast else None
    if kernel is not None:
        got = _compiled_top_k(probs, k, strategy, kernel, block=chunk_rows or BLOCK_ROWS, parts=max(1, min(parts, n)))
        if got is not None:
            return got
    return _numpy_top_k(probs, k, strategy, chunk_rows=chunk_rows or CHUNK_ROWS)


def _parts(n: int, threads: int | None) -> int:
    """How many row ranges to scan in parallel: ``threads`` (default ``numba.get_num_threads()``), at most one
    per :data:`MIN_PART_ROWS` rows; small inputs stay in the calling thread."""
    if n < 2 * MIN_PART_ROWS or threads == 1:
        return 1
    if threads is None:
        try:
            import numba

            threads = int(numba.get_num_threads())
        except Exception:  # numba missing (numpy path) or its threading layer unusable: one thread
            return 1
    return max(1, min(threads, n // MIN_PART_ROWS))


def _as_matrix(probs: Any) -> np.ndarray:
    p = probs if isinstance(probs, np.ndarray) else np.asarray(probs)
    if p.ndim != 2:
        raise DataError(f"'probs' must be a 2-D array (rows = records, columns = classes); got shape {p.shape}.")
    if p.dtype.kind not in "fiu" or p.dtype.itemsize > 8:
        raise DataError(f"'probs' must hold numbers (float32 or float64); got dtype {p.dtype}.")
    if p.shape[1] == 0 and p.shape[0] > 0:
        raise DataError("'probs' has no columns; give one column per class.")
    return p


def select(probs: Any, k: int, strategy: str = "margin", *, threads: int | None = None, **params: Any) -> np.ndarray:
    """Row indices of the ``k`` records to label first, best first; ties go to the lower row.

    ``probs`` is an ``(n, C)`` matrix of class probabilities (float32 or float64 are read in place).
    least-confidence, margin, ratio and entropy run as one fused, chunked pass that also validates the
    input; any other strategy that needs only probabilities (e.g. ``soft-margin``, ``expected-cost``,
    ``gini``) is built with ``params`` and run on the whole matrix after the same validation pass.
    Returns all rows, ranked, when ``k >= n``.

    ``threads``: how many threads scan the matrix (contiguous row ranges, merged exactly, so the result is the
    same for any value); ``None`` means ``numba.get_num_threads()`` (all cores unless set lower, e.g. with
    ``numba.set_num_threads(1)`` or ``NUMBA_NUM_THREADS=1`` inside Dask workers). Pools under 131,072 rows, and
    the numpy path (numba not installed), always use the calling thread only.

    >>> import numpy as np
    >>> select(np.array([[0.7, 0.3], [0.5, 0.5]]), 1, "entropy").tolist()
    [1]
    >>> select(np.array([[0.7, 0.3], [0.5, 0.6]]), 1)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    alloop.errors.DataError: Row 1 of 'probs' sums to 1.1: [0.5, 0.6]. Each row must hold ...
    """
    k = check_int(k, "k", "select", min=0)
    threads = check_int(threads, "threads", "select", min=1, allow_none=True)
    if strategy in FUSED and not params:  # the fast path skips the registry crawl
        p = _as_matrix(probs)
        if p.shape[0] == 0:
            return np.empty(0, dtype=np.int64)
        return _fused_top_k(p, max(k, 1), strategy, parts=_parts(p.shape[0], threads))[:k]
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
    parts = _parts(p.shape[0], threads)
    _fused_top_k(p, 1, "least-confidence", parts=parts)  # the validation pass
    if k == 0:
        return np.empty(0, dtype=np.int64)
    n = p.shape[0]
    ctx = SelectionContext(ids=np.arange(n, dtype=np.int64), index=np.arange(n, dtype=np.int64), probs=p,
                           n_classes=p.shape[1])
    return np.asarray(cls(**params).select(ctx, k), dtype=np.int64)
