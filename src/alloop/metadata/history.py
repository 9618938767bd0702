"""``History``: what the engine knows about every record across loops, in O(1) memory per record.

For each record it keeps the latest class probabilities and running statistics of the confidence
(top probability), the margin (top minus second) and the entropy over every INFER pass that saw it:
count, mean and variance (Welford's update), the predicted label, how often the prediction flipped,
and the loop of the last flip. Nothing grows with the number of loops.

>>> import numpy as np
>>> from alloop.metadata import Snapshot
>>> h = History()
>>> h.update(np.array([0, 1]), Snapshot(ids=[5, 6], probs=np.array([[0.9, 0.1], [0.4, 0.6]])), loop=0)
>>> h.update(np.array([0, 1]), Snapshot(ids=[5, 6], probs=np.array([[0.3, 0.7], [0.4, 0.6]])), loop=1)
>>> h.flips[:2].tolist()
[1, 0]
"""

from __future__ import annotations

import numpy as np

from alloop.errors import DataError
from alloop.metadata.snapshot import Snapshot

__all__ = ["History", "summary_stats"]

SERIES = ("confidence", "margin", "entropy")


def summary_stats(probs: np.ndarray) -> dict[str, np.ndarray]:
    """Confidence, margin and entropy of each row of ``probs`` (float64)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.shape[1] == 1:
        top = p[:, 0]
        second = np.zeros_like(top)
    else:
        part = np.partition(p, p.shape[1] - 2, axis=1)
        top, second = part[:, -1], part[:, -2]
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.sum(np.where(p > 0, p * np.log(p), 0.0), axis=1)
    return {"confidence": top, "margin": top - second, "entropy": ent}


class History:
    """Per-record running statistics, indexed by the pool's record index."""

    def __init__(self) -> None:
        self.n_classes: int | None = None
        self.capacity = 0
        self.probs = np.empty((0, 0), dtype=np.float64)
        self.seen = np.empty(0, dtype=bool)
        self.count = np.empty(0, dtype=np.int32)
        self.mean = {s: np.empty(0) for s in SERIES}
        self.m2 = {s: np.empty(0) for s in SERIES}
        self.predicted = np.empty(0, dtype=np.int32)
        self.flips = np.empty(0, dtype=np.int32)
        self.last_flip_loop = np.empty(0, dtype=np.int32)
        self.first_loop = np.empty(0, dtype=np.int32)
        self.last_loop = np.empty(0, dtype=np.int32)
        self.embeddings: np.ndarray | None = None
        self.last_snapshot: Snapshot | None = None
        self.last_index: np.ndarray | None = None
        self.loops_seen = 0

    def _grow(self, capacity: int) -> None:
        if capacity <= self.capacity:
            return
        extra = capacity - self.capacity

        def cat(a: np.ndarray, fill: float | int | bool) -> np.ndarray:
            pad = np.full((extra,) + a.shape[1:], fill, dtype=a.dtype)
            return np.concatenate([a, pad])

        self.probs = cat(self.probs, np.nan)
        self.seen = cat(self.seen, False)
        self.count = cat(self.count, 0)
        for s in SERIES:
            self.mean[s] = cat(self.mean[s], 0.0)
            self.m2[s] = cat(self.m2[s], 0.0)
        self.predicted = cat(self.predicted, -1)
        self.flips = cat(self.flips, 0)
        self.last_flip_loop = cat(self.last_flip_loop, -1)
        self.first_loop = cat(self.first_loop, -1)
        self.last_loop = cat(self.last_loop, -1)
        if self.embeddings is not None:
            self.embeddings = cat(self.embeddings, np.nan)
        self.capacity = capacity

    def update(self, index: np.ndarray, snapshot: Snapshot, loop: int) -> None:
        """Fold one INFER pass (rows at pool ``index``) into the statistics."""
        index = np.asarray(index, dtype=np.int64)
        if index.shape != (snapshot.n_records,):
            raise DataError("History.update: 'index' must give one pool index per snapshot row.")
        if self.n_classes is None:
            self.n_classes = snapshot.n_classes
            self.probs = np.full((self.capacity, self.n_classes), np.nan)
        elif snapshot.n_classes != self.n_classes:
            raise DataError(
                f"'probs' has {snapshot.n_classes} columns but earlier snapshots had {self.n_classes}; "
                "the class set must stay the same across loops."
            )
        self._grow(int(index.max()) + 1 if index.size else 0)
        p = snapshot.probs
        self.probs[index] = p
        stats = summary_stats(p)
        cnt = self.count[index] + 1
        for s in SERIES:
            x = stats[s]
            mean = self.mean[s][index]
            delta = x - mean
            new_mean = mean + delta / cnt
            self.m2[s][index] += delta * (x - new_mean)
            self.mean[s][index] = new_mean
        self.count[index] = cnt
        pred = np.argmax(p, axis=1).astype(np.int32)
        prev = self.predicted[index]
        flipped = (prev >= 0) & (prev != pred)
        self.flips[index] += flipped
        self.last_flip_loop[index] = np.where(flipped, loop, self.last_flip_loop[index])
        self.predicted[index] = pred
        self.first_loop[index] = np.where(self.first_loop[index] < 0, loop, self.first_loop[index])
        self.last_loop[index] = loop
        self.seen[index] = True
        if snapshot.embeddings is not None:
            if self.embeddings is None or self.embeddings.shape[1] != snapshot.embeddings.shape[1]:
                self.embeddings = np.full((self.capacity, snapshot.embeddings.shape[1]), np.nan, dtype=np.float32)
            self.embeddings[index] = snapshot.embeddings
        self.last_snapshot = snapshot
        self.last_index = index
        self.loops_seen += 1

    def forget(self, index: np.ndarray) -> None:
        """Erase everything known about records at ``index`` (data-protection removal)."""
        index = np.asarray(index, dtype=np.int64)
        index = index[index < self.capacity]
        if self.n_classes is not None:
            self.probs[index] = np.nan
        self.seen[index] = False
        self.count[index] = 0
        for s in SERIES:
            self.mean[s][index] = 0.0
            self.m2[s][index] = 0.0
        self.predicted[index] = -1
        self.flips[index] = 0
        self.last_flip_loop[index] = -1
        self.first_loop[index] = -1
        self.last_loop[index] = -1
        if self.embeddings is not None:
            self.embeddings[index] = np.nan
        if self.last_snapshot is not None and self.last_index is not None:
            keep = ~np.isin(self.last_index, index)
            if not keep.all():
                self.last_snapshot = self.last_snapshot.subset(keep)
                self.last_index = self.last_index[keep]

    def variance(self, series: str) -> np.ndarray:
        """Population variance of ``series`` per record (0 where seen fewer than twice)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            v = self.m2[series] / np.maximum(self.count, 1)
        return np.where(self.count > 1, v, 0.0)

    def features(self, index: np.ndarray) -> dict[str, np.ndarray]:
        """Per-record history features for the records at ``index``."""
        index = np.asarray(index, dtype=np.int64)
        out: dict[str, np.ndarray] = {"count": self.count[index].astype(np.float64)}
        for s in SERIES:
            out[f"{s}_mean"] = self.mean[s][index]
            out[f"{s}_var"] = self.variance(s)[index]
        out["flips"] = self.flips[index].astype(np.float64)
        out["last_flip_loop"] = self.last_flip_loop[index].astype(np.float64)
        out["first_loop"] = self.first_loop[index].astype(np.float64)
        return out
