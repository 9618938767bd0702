"""Candidate reduction before scoring: similarity search (SEALS), uniform subsampling, a proxy model.

* :class:`NeighbourIndex` — a k-nearest-neighbour index over record embeddings with incremental ``add`` and
  ``remove``: hnswlib (HNSW, approximate; the ``compute`` extra), faiss (``IndexHNSWFlat``) or an exact numpy
  fallback when neither is installed.
* :class:`SealsIndex` — SEALS (Coleman et al. 2022): the candidates are the k nearest unlabeled neighbours
  of the labeled records, kept up to date as records are labeled (only the new ones are queried).
* :func:`subsample_size` / :func:`subsample_guarantee` — m uniform draws contain one of the top q-fraction
  with probability 1 − (1 − q)^m.
* :class:`ProxyLearner` — Selection via Proxy (Coleman et al. 2020): a cheap model selects, the expensive
  one is trained only when asked for.
"""

from __future__ import annotations

import importlib.util
import math
from typing import Any

import numpy as np

from alloop._validation import check_choice, check_float, check_int
from alloop.errors import ConfigError, require_extra
from alloop.loop._learner import TrainReport
from alloop.metadata import Snapshot

__all__ = [
    "BACKENDS",
    "NeighbourIndex",
    "ProxyLearner",
    "SealsIndex",
    "best_backend",
    "subsample_guarantee",
    "subsample_size",
]

BACKENDS = ("auto", "hnswlib", "faiss", "numpy")


def subsample_guarantee(m: int, q: float) -> float:
    """Probability that ``m`` uniform draws (with replacement) include one record of the top ``q``-fraction.

    >>> round(subsample_guarantee(459, 0.01), 3)
    0.99
    """
    return 1.0 - (1.0 - float(q)) ** int(m)


def subsample_size(q: float, confidence: float) -> int:
    """The smallest ``m`` with ``1 − (1 − q)^m ≥ confidence`` (independent of the pool size).

    >>> subsample_size(0.01, 0.99), subsample_size(0.001, 0.95)
    (459, 2995)
    """
    q = check_float(q, "q", "subsample_size", low=1e-12, high=1.0)
    confidence = check_float(confidence, "confidence", "subsample_size", low=0.0, high=1.0 - 1e-12)
    if q >= 1.0 or confidence <= 0.0:
        return 1
    m = math.ceil(math.log1p(-confidence) / math.log1p(-q))
    while subsample_guarantee(m - 1, q) >= confidence and m > 1:  # guard against rounding up one too many
        m -= 1
    return max(1, m)


def best_backend() -> str:
    """The backend ``"auto"`` resolves to: hnswlib (measured fastest, docs/compute.md), faiss, else numpy."""
    for name in ("hnswlib", "faiss"):
        if importlib.util.find_spec(name) is not None:
            return name
    return "numpy"


class NeighbourIndex:
    """k-nearest-neighbour search (squared L2) over keyed vectors, with incremental add and remove.

    >>> idx = NeighbourIndex(backend="numpy")
    >>> idx.add(np.array([10, 11, 12]), np.array([[0.0], [1.0], [5.0]]))
    >>> idx.query(np.array([[0.9]]), 2).tolist()
    [[11, 10]]
    >>> idx.remove(np.array([11])); idx.query(np.array([[0.9]]), 2).tolist()
    [[10, 12]]
    """

    def __init__(self, *, backend: str = "auto", ef: int = 64, m: int = 16, seed: int = 0) -> None:
        self.backend = backend
        self.ef = ef
        self.m = m
        self.seed = seed

    def _st(self) -> dict[str, Any]:
        st = self.__dict__.get("_state")
        if st is None:
            check_choice(self.backend, "backend", "NeighbourIndex", BACKENDS)
            check_int(self.ef, "ef", "NeighbourIndex", min=1)
            check_int(self.m, "m", "NeighbourIndex", min=2)
            kind = best_backend() if self.backend == "auto" else self.backend
            if kind != "numpy":
                require_extra(kind, "compute")
            st = {
                "kind": kind,
                "index": None,
                "dim": None,
                "keys": np.empty(0, np.int64),
                "vectors": None,
                "alive": np.empty(0, bool),
                "pos": {},
                "n_alive": 0,
            }
            self.__dict__["_state"] = st
        return st

    @property
    def kind(self) -> str:
        return str(self._st()["kind"])

    def __len__(self) -> int:
        return int(self._st()["n_alive"])

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        """Index ``vectors`` under int ``keys`` (new keys only)."""
        st = self._st()
        keys = np.asarray(keys, dtype=np.int64)
        vec = np.ascontiguousarray(vectors, dtype=np.float32).reshape(keys.size, -1)
        if keys.size == 0:
            return
        if st["dim"] is None:
            st["dim"] = vec.shape[1]
            st["vectors"] = np.empty((0, vec.shape[1]), np.float32)
            if st["kind"] == "hnswlib":
                import hnswlib

                index = hnswlib.Index(space="l2", dim=vec.shape[1])
                index.init_index(
                    max_elements=max(1024, 2 * keys.size),
                    ef_construction=max(self.ef, 100),
                    M=int(self.m),
                    random_seed=int(self.seed),
                    allow_replace_deleted=False,
                )
                index.set_num_threads(1)
                st["index"] = index
            elif st["kind"] == "faiss":
                import faiss

                st["hnsw"] = faiss.IndexHNSWFlat(vec.shape[1], int(self.m))
                st["hnsw"].hnsw.efConstruction = max(self.ef, 40)
                st["index"] = faiss.IndexIDMap(st["hnsw"])
        elif vec.shape[1] != st["dim"]:
            raise ConfigError(f"NeighbourIndex holds {st['dim']}-dimensional vectors; got {vec.shape[1]}.")
        if any(int(k) in st["pos"] for k in keys.tolist()):
            raise ConfigError("NeighbourIndex.add: a key is already indexed; remove() it first or use new keys.")
        start = st["keys"].size
        for j, k in enumerate(keys.tolist()):
            st["pos"][int(k)] = start + j
        st["keys"] = np.concatenate([st["keys"], keys])
        st["alive"] = np.concatenate([st["alive"], np.ones(keys.size, bool)])
        st["n_alive"] += keys.size
        st["vectors"] = np.concatenate([st["vectors"], vec])  # kept for every backend: exact fallback
        if st["kind"] == "hnswlib":
            index = st["index"]
            if index.get_current_count() + keys.size > index.get_max_elements():
                index.resize_index(2 * (index.get_current_count() + keys.size))
            index.add_items(vec, keys, num_threads=1)
        elif st["kind"] == "faiss":
            st["index"].add_with_ids(vec, keys)

    def remove(self, keys: np.ndarray) -> None:
        """Drop ``keys`` from future results (unknown keys are ignored)."""
        st = self._st()
        for k in np.asarray(keys, dtype=np.int64).tolist():
            p = st["pos"].get(int(k))
            if p is None or not st["alive"][p]:
                continue
            st["alive"][p] = False
            st["n_alive"] -= 1
            if st["kind"] == "hnswlib":
                st["index"].mark_deleted(int(k))

    def query(self, vectors: np.ndarray, k: int) -> np.ndarray:
        """``(q, min(k, len))`` keys of the nearest live vectors, nearest first."""
        st = self._st()
        q = np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1, st["dim"] or 1)
        k = min(int(k), int(st["n_alive"]))
        if k <= 0 or q.shape[0] == 0:
            return np.empty((q.shape[0], 0), np.int64)
        if st["kind"] == "numpy":
            return self._exact(q, k)
        if st["kind"] == "hnswlib":
            index = st["index"]
            index.set_ef(max(int(self.ef), k))
            labels, _ = index.knn_query(q, k=k, num_threads=1)
            return np.asarray(labels, dtype=np.int64)
        # faiss cannot delete from HNSW: over-fetch and filter the removed keys
        dead = st["keys"].size - st["n_alive"]
        fetch = min(k + dead, st["keys"].size)
        st["hnsw"].hnsw.efSearch = max(int(self.ef), fetch)
        _, labels = st["index"].search(q, fetch)
        out = np.empty((q.shape[0], k), np.int64)
        for i, row in enumerate(labels):
            keep = [int(v) for v in row if v >= 0 and st["alive"][st["pos"][int(v)]]][:k]
            out[i] = keep if len(keep) == k else self._exact(q[i : i + 1], k)[0]
        return out

    def _exact(self, q: np.ndarray, k: int) -> np.ndarray:
        st = self._st()
        live = np.flatnonzero(st["alive"])
        base = st["vectors"][live]
        out = np.empty((q.shape[0], k), np.int64)
        norms = np.einsum("ij,ij->i", base, base)
        for a in range(0, q.shape[0], 256):
            d = norms[None, :] - 2.0 * (q[a : a + 256] @ base.T)
            part = (
                np.argpartition(d, k - 1, axis=1)[:, :k]
                if k < base.shape[0]
                else np.tile(np.arange(base.shape[0]), (d.shape[0], 1))
            )
            order = np.take_along_axis(d, part, 1).argsort(axis=1, kind="stable")
            out[a : a + 256] = st["keys"][live[np.take_along_axis(part, order, 1)]]
        return out


class SealsIndex:
    """SEALS candidates: the ``k_neighbours`` nearest unlabeled records of each labeled record.

    ``add`` indexes records as they enter the pool; ``observe_labels`` removes the newly labeled records
    from the index and adds their neighbours to the candidate set, querying only those records — the work
    per loop grows with the batch, not with the pool.

    >>> s = SealsIndex(k_neighbours=1, backend="numpy")
    >>> s.add(np.arange(4), np.array([[0.0], [1.0], [10.0], [11.0]]))
    >>> s.observe_labels(np.array([0]))
    >>> s.candidates().tolist()
    [1]
    """

    def __init__(self, *, k_neighbours: int = 10, backend: str = "auto", seed: int = 0) -> None:
        self.k_neighbours = k_neighbours
        self.backend = backend
        self.seed = seed

    def _st(self) -> dict[str, Any]:
        st = self.__dict__.get("_state")
        if st is None:
            check_int(self.k_neighbours, "k_neighbours", "SealsIndex", min=1)
            st = {
                "index": NeighbourIndex(backend=self.backend, seed=self.seed),
                "vectors": {},
                "cand": set(),
                "labeled": set(),
            }
            self.__dict__["_state"] = st
        return st

    @property
    def index(self) -> NeighbourIndex:
        idx: NeighbourIndex = self._st()["index"]
        return idx

    def add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        st = self._st()
        keys = np.asarray(keys, dtype=np.int64)
        vec = np.asarray(vectors, dtype=np.float32).reshape(keys.size, -1)
        st["index"].add(keys, vec)
        for k, v in zip(keys.tolist(), vec, strict=True):
            st["vectors"][int(k)] = v

    def observe_labels(self, keys: np.ndarray) -> None:
        st = self._st()
        new = [int(k) for k in np.asarray(keys, dtype=np.int64).tolist() if int(k) not in st["labeled"]]
        if not new:
            return
        st["labeled"].update(new)
        st["cand"].difference_update(new)
        st["index"].remove(np.asarray(new, np.int64))
        known = [k for k in new if k in st["vectors"]]
        if known:
            nn = st["index"].query(np.stack([st["vectors"][k] for k in known]), int(self.k_neighbours))
            st["cand"].update(int(v) for v in nn.ravel().tolist())
        st["cand"].difference_update(st["labeled"])

    def candidates(self) -> np.ndarray:
        return np.asarray(sorted(self._st()["cand"]), dtype=np.int64)


class ProxyLearner:
    """Selection via Proxy: ``proxy`` (cheap) trains and infers every loop; ``target`` (expensive) trains only
    every ``target_every`` loops (None: only when :meth:`fit_target` is called, e.g. at the end).

    ``evaluate`` reports the target when it is trained on the current labels, else the proxy.
    """

    def __init__(self, proxy: Any, target: Any, *, target_every: int | None = None) -> None:
        self.proxy = proxy
        self.target = target
        self.target_every = target_every

    def _st(self) -> dict[str, Any]:
        st = self.__dict__.get("_state")
        if st is None:
            check_int(self.target_every, "target_every", "ProxyLearner", min=1, allow_none=True)
            st = {"calls": 0, "ids": None, "y": None, "target_fresh": False}
            self.__dict__["_state"] = st
        return st

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name in ("proxy", "target", "target_every"):
            raise AttributeError(name)
        return getattr(self.__dict__["proxy"], name)

    def train(self, ids: np.ndarray, y: np.ndarray, *, warm_start: bool) -> TrainReport:
        st = self._st()
        rep = self.proxy.train(ids, y, warm_start=warm_start)
        st["calls"] += 1
        st["ids"], st["y"], st["target_fresh"] = np.asarray(ids), np.asarray(y), False
        extra = {**rep.extra, "proxy": True}
        if self.target_every is not None and st["calls"] % int(self.target_every) == 0:
            self.fit_target()
            extra["target_trained"] = True
        return TrainReport(mode=rep.mode, n_records=rep.n_records, epochs=rep.epochs, seconds=rep.seconds, extra=extra)

    def fit_target(self) -> TrainReport:
        """Train the expensive model on every label so far (from scratch)."""
        st = self._st()
        if st["ids"] is None:
            raise ConfigError("ProxyLearner.fit_target: nothing is labeled yet; call train() first.")
        rep: TrainReport = self.target.train(st["ids"], st["y"], warm_start=False)
        st["target_fresh"] = True
        return rep

    def infer(self, ids: np.ndarray) -> Snapshot:
        snap: Snapshot = self.proxy.infer(ids)
        return snap

    def evaluate(self) -> dict[str, float]:
        model = self.target if self._st()["target_fresh"] else self.proxy
        return {k: float(v) for k, v in model.evaluate().items()}
