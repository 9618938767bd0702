"""Candidate reduction before scoring: score only a well-chosen part of the pool with an inner strategy.

* ``seals(inner='margin', k_neighbours=10, random_slice=0)`` — SEALS (Coleman et al. 2022): the candidates
  are the ``k_neighbours`` nearest unlabeled neighbours (in embedding space) of every labeled record, plus a
  random slice; the neighbour index lives on the strategy instance and is updated incrementally (new records
  are added, labeled ones removed, only newly labeled records are queried). Embeddings are assumed fixed
  (pretrained or raw features); a record whose embedding changed triggers a rebuild.
* ``subsample(inner='margin', m=None, q=0.01, confidence=0.99)`` — score ``m`` uniform random candidates;
  with ``m`` None it is the smallest m that contains one of the top ``q``-fraction with probability
  ``confidence``: 1 − (1 − q)^m ≥ confidence (:func:`alloop.compute.subsample_size`; drawing without
  replacement only raises the probability).

>>> import numpy as np
>>> from alloop.strategies import make_strategy
>>> make_strategy("seals(inner='entropy', k_neighbours=5)").spec
"seals(inner='entropy', k_neighbours=5)"
>>> sorted(make_strategy("subsample(inner='entropy', m=100)").needs)
['probs']
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alloop._validation import check_choice, check_float, check_int
from alloop.errors import ConfigError
from alloop.strategies._base import SelectionContext, Strategy
from alloop.strategies.compose import _Composite, subset_context

__all__ = ["Seals", "Subsample"]


def _pad(positions: np.ndarray, n: int, want: int, rng: np.random.Generator) -> np.ndarray:
    """``positions`` plus random others until there are ``min(want, n)``."""
    if positions.size >= min(want, n):
        return positions
    rest = np.setdiff1d(np.arange(n), positions)
    extra = rng.choice(rest, size=min(want, n) - positions.size, replace=False)
    return np.sort(np.concatenate([positions, extra]))


class _Reducer(_Composite):
    _part_params = ("inner",)

    def _positions(self, ctx: SelectionContext) -> np.ndarray:
        raise NotImplementedError

    def score(self, ctx: SelectionContext) -> np.ndarray:
        """The inner strategy's scores on the reduced candidates; NaN (never selected first) elsewhere."""
        pos = self._positions(ctx)
        out = np.full(ctx.n, np.nan)
        if pos.size:
            out[pos] = np.asarray(self._resolved()["inner"].score(subset_context(ctx, pos)), dtype=np.float64)
        return out

    def select(self, ctx: SelectionContext, k: int) -> np.ndarray:
        pos = _pad(self._positions(ctx), ctx.n, k, ctx.rng(17))
        return self._resolved()["inner"].select(subset_context(ctx, pos), k)


class Seals(_Reducer):
    """SEALS: score only the nearest unlabeled neighbours of the labeled records (plus a random slice)."""

    name = "seals"
    family = "compute"

    def __init__(
        self,
        *,
        inner: str | Strategy | None = "margin",
        k_neighbours: int = 10,
        random_slice: Any = 0,
        backend: str = "numpy",
    ) -> None:
        self.inner = inner
        self.k_neighbours = k_neighbours
        self.random_slice = random_slice
        self.backend = backend

    def _needs(self) -> frozenset[str]:
        return super()._needs() | {"embeddings"}

    def _slice_size(self, n: int) -> int:
        r = self.random_slice
        if isinstance(r, (int, np.integer)) and not isinstance(r, bool) and r >= 0:
            return min(int(r), n)
        if isinstance(r, float) and 0.0 <= r <= 1.0:
            return min(int(round(r * n)), n)
        raise ConfigError(
            "The 'random_slice' parameter of Seals must be an int >= 0 (a count) or a float in [0, 1] (a fraction "
            f"of the candidates). Got {r!r}."
        )

    def _index_state(self, ctx: SelectionContext) -> dict[str, Any]:
        from alloop.compute import NeighbourIndex

        emb = np.ascontiguousarray(ctx.embeddings, dtype=np.float32)
        st = self.__dict__.get("_seals")
        if st is not None:
            rows = np.fromiter((st["row"].get(int(k), -1) for k in ctx.index.tolist()), np.int64, ctx.n)
            known = rows >= 0
            stale = st["dim"] != emb.shape[1] or not np.array_equal(st["vectors"][rows[known]], emb[known])
            if stale:
                st = None
        if st is None:
            st = {
                "index": NeighbourIndex(backend=self.backend, seed=0),
                "row": {},
                "dim": emb.shape[1],
                "vectors": np.empty((0, emb.shape[1]), np.float32),
                "alive": set(),
                "nn": {},
            }
            self.__dict__["_seals"] = st
        keys = ctx.index.astype(np.int64)
        new = np.fromiter((int(k) not in st["row"] for k in keys.tolist()), bool, keys.size)
        if new.any():
            start = st["vectors"].shape[0]
            for j, k in enumerate(keys[new].tolist()):
                st["row"][int(k)] = start + j
            st["vectors"] = np.concatenate([st["vectors"], emb[new]])
            st["index"].add(keys[new], emb[new])
        current = set(keys.tolist())
        gone = st["alive"] - current
        if gone:  # labeled or pending since the last call: no longer neighbours to offer
            st["index"].remove(np.fromiter(gone, np.int64, len(gone)))
        st["alive"] = current
        return st

    def _positions(self, ctx: SelectionContext) -> np.ndarray:
        check_int(self.k_neighbours, "k_neighbours", "Seals", min=1)
        check_choice(self.backend, "backend", "Seals", ("auto", "hnswlib", "faiss", "numpy"))
        slice_n = self._slice_size(ctx.n)
        if ctx.embeddings is None:
            raise ConfigError("Seals needs 'embeddings' for its candidates; share embeddings in the Snapshot.")
        lab = ctx.labeled_embeddings
        if lab is None or len(lab) == 0:  # cold start: nothing to be near yet, score everything
            return np.arange(ctx.n)
        st = self._index_state(ctx)
        lab32 = np.ascontiguousarray(lab, dtype=np.float32)
        lab_ids = ctx.labeled_ids if ctx.labeled_embedding_rows is None else ctx.labeled_ids[ctx.labeled_embedding_rows]
        keys = [(v, lab32[j].tobytes()) for j, v in enumerate(lab_ids.tolist())]
        todo = [j for j, key in enumerate(keys) if key not in st["nn"]]
        if todo:  # only the newly labeled records are queried
            nn = st["index"].query(lab32[todo], int(self.k_neighbours))
            for j, row in zip(todo, nn, strict=True):
                st["nn"][keys[j]] = row
        near = np.unique(np.concatenate([st["nn"][key] for key in keys])) if keys else np.empty(0, np.int64)
        chosen = np.flatnonzero(np.isin(ctx.index, near))
        if slice_n:
            rest = np.setdiff1d(np.arange(ctx.n), chosen)
            extra = ctx.rng(29).choice(rest, size=min(slice_n, rest.size), replace=False)
            chosen = np.union1d(chosen, extra)
        return chosen.astype(np.int64)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"inner": "margin", "k_neighbours": 3}, {"inner": "entropy", "k_neighbours": 2, "random_slice": 3}]


class Subsample(_Reducer):
    """Score m uniform random candidates only: one of the top q-fraction with probability 1 − (1 − q)^m."""

    name = "subsample"
    family = "compute"

    def __init__(
        self,
        *,
        inner: str | Strategy | None = "margin",
        m: int | None = None,
        q: float = 0.01,
        confidence: float = 0.99,
    ) -> None:
        self.inner = inner
        self.m = m
        self.q = q
        self.confidence = confidence

    def size(self) -> int:
        """The number of candidates scored (before padding up to ``k``)."""
        if self.m is not None:
            return int(check_int(self.m, "m", "Subsample", min=1))
        from alloop.compute import subsample_size

        q = check_float(self.q, "q", "Subsample", low=1e-12, high=1.0)
        conf = check_float(self.confidence, "confidence", "Subsample", low=0.0, high=1.0 - 1e-12)
        return subsample_size(q, conf)

    def _positions(self, ctx: SelectionContext) -> np.ndarray:
        m = self.size()
        if m >= ctx.n:
            return np.arange(ctx.n)
        return np.sort(ctx.rng(31).choice(ctx.n, size=m, replace=False)).astype(np.int64)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"inner": "margin", "m": 10}, {"inner": "entropy", "q": 0.2, "confidence": 0.9}]
