"""Distributed selection over a sharded snapshot: per-piece top-k, then one global merge.

**Per-record strategies** (a record's score depends on its own row only: least-confidence, margin, entropy,
ratio, gini, calibrated-least-confidence, expected-cost, and random) give *exactly* the single-process
result: each piece returns its own top-k under the same total order as :func:`~alloop.strategies._topk.top_k`
(higher score first, ties to the lower global row, NaN last), so every member of the global top-k is in its
piece's top-k, and the merge (candidates in global row order, then ``top_k``; a tree of merge tasks on the
cluster) reproduces the single-process ids, scores and order.

``random`` draws ``ctx.rng(seed).random(n)`` in the single-process path, i.e. the PCG64 stream of
``default_rng([seed, loop])`` in row order. A piece starting at global row ``o`` advances that generator by
``o`` draws (one 64-bit draw per float64) and draws its own rows, so the scores are the very same numbers.

**Batch-aware (diversity) strategies** run in two stages, which is an *approximation*: each piece runs the
strategy itself to keep ``prefilter * k`` candidates (its own diverse subset), and the strategy then chooses
the batch from the union of those candidates (the composable core-set scheme of Mirrokni & Zadimoghaddam
2015). With one piece the strategy runs once on it and the result equals the single-process one; with
more pieces a record that only a whole-pool view would pick can be missed. Their ``score`` is NaN (the batch
is chosen jointly; ``rank`` gives the order).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from alloop._validation import check_int
from alloop.errors import ConfigError, DataError
from alloop.scale._cluster import cluster_client, submit
from alloop.scale._parquet import DEFAULT_ROWS_PER_PIECE, Piece, list_pieces, read_piece, split_columns
from alloop.strategies import SelectionContext, Strategy, make_strategy
from alloop.strategies._topk import top_k

__all__ = ["PER_RECORD", "ScaleSelection", "random_scores", "score_top_k", "select_from_snapshot"]

OWNER = "score_top_k"
#: Strategies whose score of a record depends on that record's row only (exact distributed top-k).
PER_RECORD = frozenset(
    {
        "least-confidence",
        "margin",
        "entropy",
        "ratio",
        "gini",
        "calibrated-least-confidence",
        "expected-cost",
        "random",
    }
)


@dataclass(frozen=True)
class ScaleSelection:
    """The records to label first: ``ids`` best first, their ``scores`` and global ``rows``."""

    ids: np.ndarray
    scores: np.ndarray
    rows: np.ndarray
    strategy: str
    n_records: int
    exact: bool


def random_scores(seed: int, loop: int, offset: int, n: int) -> np.ndarray:
    """Rows ``offset … offset+n-1`` of ``default_rng([seed, loop]).random(total)``, drawn without the rest.

    >>> full = np.random.default_rng([3, 1]).random(10)
    >>> bool((random_scores(3, 1, 4, 5) == full[4:9]).all())
    True
    """
    bits = np.random.PCG64(np.random.SeedSequence([seed, loop]))
    if offset:
        bits.advance(offset)
    return np.random.Generator(bits).random(n)


def _check_strategy(strategy: Any) -> Strategy:
    try:
        strat = make_strategy(strategy)
    except ConfigError as exc:
        raise ConfigError(f"The 'strategy' parameter of {OWNER} is invalid: {exc}") from None
    if type(strat).name in PER_RECORD or strat.batch_aware:
        extra = set(strat.needs) - {"probs", "embeddings"}
        if not extra:
            return strat
    raise ConfigError(
        f"The 'strategy' parameter of {OWNER} must be a per-record strategy ({', '.join(sorted(PER_RECORD))}) "
        f"or a batch-aware strategy on probabilities/embeddings (e.g. coreset, badge). Got {strat.spec!r}, "
        "which needs the whole pool at once; run it with SelectionEngine on one machine."
    )


def _where(piece: Piece) -> str:
    return f"{piece.path} (rows counted from global row {piece.offset})"


def _validate(probs: np.ndarray, piece: Piece) -> None:
    from alloop._select import select

    try:
        select(probs, 0, "least-confidence")  # the fused validation pass (finite, >= 0, rows sum to 1)
    except DataError as exc:
        raise DataError(f"{_where(piece)}: {exc}") from None


def _piece_top_k(piece: Piece, spec: str, k: int, seed: int, loop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(global rows, ids, scores)`` of one piece's top-k under a per-record strategy, best first."""
    from alloop._select import FUSED, select

    strat = make_strategy(spec)
    ids, probs, _ = split_columns(read_piece(piece), piece.path)
    n = ids.size
    k = min(k, n)
    if type(strat).name == "random":
        if probs.shape[1]:
            _validate(probs, piece)
        own_seed = getattr(strat, "seed", None)
        scores = random_scores(seed if own_seed is None else own_seed, loop, piece.offset, n)
        pos = top_k(scores, k)
        return pos + piece.offset, ids[pos], scores[pos]
    params = strat.get_params()
    if probs.dtype == np.float16:  # exact widening: every score function works in float64, so scores are unchanged
        probs = probs.astype(np.float32)
    try:
        pos = np.asarray(select(probs, k, type(strat).name, **params), dtype=np.int64)
    except DataError as exc:
        raise DataError(f"{_where(piece)}: {exc}") from None
    sub = probs[pos]
    if type(strat).name in FUSED and not params:
        scores = FUSED[type(strat).name](sub)
    else:
        ctx = SelectionContext(ids=ids[pos], index=pos + piece.offset, probs=sub, n_classes=probs.shape[1],
                               seed=seed, loop=loop)
        scores = np.asarray(strat.score(ctx), dtype=np.float64)
    return pos + piece.offset, ids[pos], scores


def _piece_context(piece: Piece, seed: int, loop: int) -> SelectionContext:
    ids, probs, emb = split_columns(read_piece(piece), piece.path)
    _validate(probs, piece)
    rows = np.arange(piece.offset, piece.offset + ids.size, dtype=np.int64)
    return SelectionContext(ids=ids, index=rows, probs=probs, embeddings=emb, n_classes=probs.shape[1],
                            seed=seed, loop=loop)


def _piece_prefilter(piece: Piece, spec: str, m: int, seed: int, loop: int) -> dict[str, Any]:
    """Stage 1 of a batch-aware strategy: the piece's own ``m`` picks, with their rows and metadata."""
    strat = make_strategy(spec)
    ctx = _piece_context(piece, seed, loop)
    if "embeddings" in strat.needs and ctx.embeddings is None:
        raise DataError(f"{piece.path} has no 'embedding' column; strategy {spec!r} needs embeddings.")
    chosen = np.asarray(strat.select(ctx, min(m, ctx.n)))
    where = {v: i for i, v in enumerate(ctx.ids.tolist())}
    pos = np.array([where[v] for v in chosen.tolist()], dtype=np.int64)  # in the strategy's order
    return {
        "rows": ctx.index[pos],
        "ids": ctx.ids[pos],
        "probs": None if ctx.probs is None else ctx.probs[pos],
        "embeddings": None if ctx.embeddings is None else ctx.embeddings[pos],
    }


def _run(client: Any, fn: Any, pieces: list[Piece], *args: Any) -> list[Any]:
    """``fn(piece, *args)`` for every piece: in this process, or as one Dask task per piece."""
    if client is None:
        return [fn(p, *args) for p in pieces]
    futures = [submit(client, fn, p, *args) for p in pieces]
    return list(client.gather(futures))


Part = tuple[np.ndarray, np.ndarray, np.ndarray]
#: How many partial top-k results one merge task combines (the fan-in of the merge tree).
MERGE_FAN_IN = 8


def _combine(k: int, *parts: Part) -> Part:
    """The top-k of several partial top-k results, best first (candidates in global row order, then top_k).

    Exact because the order (score descending, then row ascending, NaN last) is total: a member of the top-k
    of the union is in the top-k of its own part.
    """
    rows = np.concatenate([p[0] for p in parts])
    ids = np.concatenate([p[1] for p in parts])
    scores = np.concatenate([p[2] for p in parts]).astype(np.float64)
    order = np.argsort(rows, kind="stable")
    rows, ids, scores = rows[order], ids[order], scores[order]
    pos = top_k(scores, min(k, rows.size))
    return rows[pos], ids[pos], scores[pos]


def _top_k_over_pieces(client: Any, pieces: list[Piece], spec: str, k: int, seed: int, loop: int) -> Part | None:
    """Per-piece top-k merged as they come: a tree of merge tasks on the cluster, a running merge here.

    Either way no process ever holds more than ``MERGE_FAN_IN`` partial results of ``k`` rows (plus a piece).
    """
    if not pieces:
        return None
    if client is None:
        best: Part | None = None
        for piece in pieces:
            part = _piece_top_k(piece, spec, k, seed, loop)
            best = part if best is None else _combine(k, best, part)
        return best
    level = [submit(client, _piece_top_k, p, spec, k, seed, loop) for p in pieces]
    while len(level) > 1:
        level = [submit(client, _combine, k, *level[i : i + MERGE_FAN_IN]) for i in range(0, len(level), MERGE_FAN_IN)]
    result: Part = level[0].result()
    return result


def score_top_k(
    data: str | os.PathLike[str] | list[str],
    strategy: str | Strategy,
    k: int,
    *,
    cluster: Any = None,
    seed: int = 0,
    loop: int = 0,
    rows_per_piece: int = DEFAULT_ROWS_PER_PIECE,
    prefilter: int = 10,
) -> ScaleSelection:
    """Select the ``k`` records to label first from a sharded snapshot (see the module docstring).

    ``cluster`` is ``None`` (this process, one piece at a time; or ``ALLOOP_DASK_SCHEDULER`` when set), a
    spec (``local``, ``local:N``, ``tcp://host:port``) or a ``distributed.Client``. ``seed`` and ``loop`` are
    the context's (as in :meth:`SelectionContext.rng`). The result is the same whichever is used.
    """
    k = check_int(k, "k", OWNER, min=0)
    seed = check_int(seed, "seed", OWNER, min=0)
    loop = check_int(loop, "loop", OWNER, min=0)
    rows_per_piece = check_int(rows_per_piece, "rows_per_piece", OWNER, min=1)
    prefilter = check_int(prefilter, "prefilter", OWNER, min=1)
    strat = _check_strategy(strategy)
    spec = strat.spec
    pieces = list_pieces(data, rows_per_piece)
    n_records = sum(p.n_rows for p in pieces)
    pieces = [p for p in pieces if p.n_rows]
    with cluster_client(cluster, "cluster") as client:
        if type(strat).name in PER_RECORD:
            best = _top_k_over_pieces(client, pieces, spec, k, seed, loop) if k else None
            if best is None:
                return ScaleSelection(np.empty(0, dtype=np.int64), np.empty(0), np.empty(0, dtype=np.int64), spec,
                                      n_records, True)
            rows, ids, scores = best
            return ScaleSelection(ids, scores, rows, spec, n_records, True)
        if len(pieces) == 1 and k:  # one partition: the strategy's own, exact, choice
            (part,) = _run(client, _piece_prefilter, pieces, spec, k, seed, loop)
            return ScaleSelection(part["ids"], np.full(part["ids"].size, np.nan), part["rows"], spec, n_records, True)
        parts = _run(client, _piece_prefilter, pieces, spec, prefilter * k, seed, loop) if k else []
    return _diversify(parts, strat, k, seed, loop, n_records, exact=False)


def _diversify(parts: list[dict[str, Any]], strat: Strategy, k: int, seed: int, loop: int, n_records: int,
               *, exact: bool) -> ScaleSelection:
    parts = [p for p in parts if p["rows"].size]
    if not parts:
        return ScaleSelection(np.empty(0, dtype=np.int64), np.empty(0), np.empty(0, dtype=np.int64), strat.spec,
                              n_records, exact)

    def cat(key: str) -> np.ndarray | None:
        if any(p[key] is None for p in parts):
            return None
        return np.concatenate([p[key] for p in parts])

    rows = np.concatenate([p["rows"] for p in parts])
    order = np.argsort(rows, kind="stable")  # candidates in global row order, as the single-process path sees them
    rows = rows[order]
    probs, emb = cat("probs"), cat("embeddings")
    ctx = SelectionContext(ids=np.concatenate([p["ids"] for p in parts])[order], index=rows,
                           probs=None if probs is None else probs[order],
                           embeddings=None if emb is None else emb[order], seed=seed, loop=loop)
    if ctx.probs is not None:
        ctx.n_classes = ctx.probs.shape[1]
    chosen = np.asarray(strat.select(ctx, min(k, ctx.n)))
    where = {v: i for i, v in enumerate(ctx.ids.tolist())}
    pos = np.array([where[v] for v in chosen.tolist()], dtype=np.int64)
    return ScaleSelection(ctx.ids[pos], np.full(pos.size, np.nan), rows[pos], strat.spec, n_records, exact)


def select_from_snapshot(
    data: str | os.PathLike[str] | list[str],
    candidates: np.ndarray,
    strategy: str | Strategy,
    k: int,
    *,
    cluster: Any = None,
    seed: int = 0,
    loop: int = 0,
) -> ScaleSelection | None:
    """The Campaign's hook: rank a stored snapshot on the cluster, or ``None`` to let the engine do it.

    Returns ``None`` (use ``SelectionEngine.recommend``) when no cluster is configured (argument or
    ``ALLOOP_DASK_SCHEDULER``), when the strategy is not per-record, or when the snapshot's rows are not
    exactly ``candidates`` in pool order (records added, labeled late or pending since that INFER pass).
    Otherwise the result equals ``engine.recommend(k, loop=loop)`` for an engine seeded with ``seed``.
    """
    import pyarrow.parquet as pq

    from alloop.scale._cluster import resolve_cluster_spec

    if resolve_cluster_spec(cluster) is None:
        return None
    try:
        strat = make_strategy(strategy)
    except ConfigError:
        return None
    if type(strat).name not in PER_RECORD:
        return None
    pieces = list_pieces(data, rows_per_piece=1 << 62)
    cand = np.asarray(candidates)
    if sum(p.n_rows for p in pieces) != cand.size:
        return None
    stored = [pq.read_table(p.path, columns=["id"]).column("id").to_numpy(zero_copy_only=False) for p in pieces]
    ids = np.concatenate(stored) if stored else np.empty(0, dtype=cand.dtype)
    if ids.tolist() != cand.tolist():
        return None
    return score_top_k(data, strat, k, cluster=cluster, seed=seed, loop=loop)
