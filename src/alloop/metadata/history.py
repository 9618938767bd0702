"""``History``: what the engine knows about every record across loops, in O(1) memory per record.

For each record it keeps the latest class probabilities and running statistics of the confidence
(top probability), the margin (top minus second) and the entropy over every INFER pass that saw it:
count, mean and variance (Welford's update), an exponentially-weighted mean, the least-squares slope over
the last ``window`` passes (a ring buffer of ``window`` float32 values per record and series), the predicted
label, how often the prediction flipped and the loop of the last flip, the output discrepancy between
consecutive passes (TOD), the embedding drift between consecutive passes, and — when the learner reports
training dynamics — dataset-cartography confidence and variability and forgetting events. Nothing grows
with the number of loops. Every feature and its formula is listed in ``docs/engine.md``.

>>> import numpy as np
>>> from alloop.metadata import Snapshot
>>> h = History()
>>> h.update(np.array([0, 1]), Snapshot(ids=[5, 6], probs=np.array([[0.9, 0.1], [0.4, 0.6]])), loop=0)
>>> h.update(np.array([0, 1]), Snapshot(ids=[5, 6], probs=np.array([[0.3, 0.7], [0.4, 0.6]])), loop=1)
>>> h.flips[:2].tolist()
[1, 0]
>>> h.features(np.array([0, 1]))["confidence_slope"].round(2).tolist()
[-0.2, 0.0]
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from alloop._validation import check_float, check_int
from alloop.errors import ConfigError, DataError
from alloop.metadata.snapshot import Snapshot

__all__ = ["FEATURES", "TRUE_PROB_KEYS", "History", "summary_stats"]

SERIES = ("confidence", "margin", "entropy")
#: Keys of ``Snapshot.dynamics`` read as the per-epoch probability of the true label, ``(n, E)``.
TRUE_PROB_KEYS = ("true_prob", "p_true")

#: Every key of :meth:`History.features`, in order (formulas in docs/engine.md).
FEATURES = (
    "count",
    *(f"{s}_{stat}" for s in SERIES for stat in ("mean", "var", "ewm", "slope", "last")),
    "flips",
    "flip_rate",
    "last_flip_loop",
    "loops_since_flip",
    "first_loop",
    "loops_seen",
    "tod",
    "tod_mean",
    "drift",
    "drift_mean",
    "dynamics_passes",
    "cartography_confidence",
    "cartography_variability",
    "forgetting_events",
    "nbr_known",
    "nbr_cartography_confidence",
    "nbr_cartography_variability",
    "nbr_forgetting_events",
)

# per-record arrays (attribute name, dtype, fill value) — grown with the pool and erased by forget(). Fill values
# are 0 wherever the reader has a guard (``seen``, ``count``, ``drift_count``, ``dyn_passes``): zero-filled arrays
# come from calloc'd pages that cost nothing until written, so a first pass over 10^6 records touches ~40 % fewer
# bytes than with NaN fills (benchmarks/server.py, loop 0).
_SCALARS: tuple[tuple[str, Any, float], ...] = (
    ("seen", bool, False),
    ("count", np.int32, 0),
    ("predicted", np.int32, -1),
    ("flips", np.int32, 0),
    ("last_flip_loop", np.int32, -1),
    ("first_loop", np.int32, -1),
    ("last_loop", np.int32, -1),
    ("tod_last", np.float64, 0.0),
    ("tod_sum", np.float64, 0.0),
    ("drift_last", np.float64, 0.0),  # read only where drift_count > 0
    ("drift_sum", np.float64, 0.0),
    ("drift_count", np.int32, 0),
    ("cart_conf", np.float64, 0.0),  # read only where dyn_passes > 0
    ("cart_var", np.float64, 0.0),
    ("forgetting", np.int32, 0),
    ("dyn_passes", np.int32, 0),
)


def summary_stats(probs: np.ndarray) -> dict[str, np.ndarray]:
    """Confidence (top probability), margin (top minus second) and entropy of each row of ``probs``, float64.

    Column-wise: the top two are three vector operations per class (``np.partition`` along short rows cost 4x
    more), and the logarithm runs on contiguous columns.

    >>> {k: v.round(4).tolist() for k, v in summary_stats(np.array([[0.5, 0.3, 0.2], [1.0, 0.0, 0.0]])).items()}
    {'confidence': [0.5, 1.0], 'margin': [0.2, 1.0], 'entropy': [1.0297, 0.0]}
    """
    p = np.asarray(probs)
    out = {s: np.empty(p.shape[0]) for s in SERIES}
    pt = np.ascontiguousarray(p.T, dtype=np.float64)  # columns: the top two are three vector ops per class
    top = out["confidence"]
    top[:] = pt[0] if pt.shape[0] else 0.0
    second = np.zeros_like(top) if pt.shape[0] < 2 else np.minimum(pt[0], pt[1])
    if pt.shape[0] > 1:
        np.maximum(top, pt[1], out=top)
    tmp = np.empty_like(top)
    for col in pt[2:]:
        np.minimum(top, col, out=tmp)
        np.maximum(second, tmp, out=second)
        np.maximum(top, col, out=top)
    np.subtract(top, second, out=out["margin"])
    logs = np.log(pt, out=np.zeros_like(pt), where=pt > 0)
    out["entropy"][:] = 0.0 - np.einsum("ij,ij->j", pt, logs)  # 0.0 - x: no negative zero
    return out


def window_slopes(ring: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Least-squares slope per row over the last ``min(count, w)`` values kept in a ring buffer.

    ``ring`` is ``(n, w)``; observation ``j`` (0-based, per row) sits in slot ``j % w``. The abscissa is
    the observation number, so the slope is "change per INFER pass". Rows with fewer than two values get 0.

    >>> ring = np.array([[3.0, 1.0, 2.0]])  # observations 0..3 were 0, 1, 2, 3 -> slot 0 was overwritten by 3
    >>> window_slopes(ring, np.array([4])).tolist()
    [1.0]
    """
    n, w = ring.shape
    cnt = np.asarray(count, dtype=np.int64)[:, None]
    slot = np.arange(w, dtype=np.int64)[None, :]
    # the observation number held by each slot: the latest j < count with j % w == slot
    x = cnt - 1 - np.mod(cnt - 1 - slot, w)
    valid = (x >= 0) & (x >= cnt - w)
    m = valid.sum(axis=1)
    xf = np.where(valid, x, 0).astype(np.float64)
    y = np.where(valid, ring.astype(np.float64), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mx = xf.sum(axis=1) / np.maximum(m, 1)
        my = y.sum(axis=1) / np.maximum(m, 1)
        dx = np.where(valid, xf - mx[:, None], 0.0)
        sxy = (dx * (y - my[:, None])).sum(axis=1)
        sxx = (dx * dx).sum(axis=1)
        slope = sxy / sxx
    return np.where((m >= 2) & (sxx > 0), slope, 0.0)


def cartography(true_prob: np.ndarray, correct: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Dataset-cartography confidence and variability, and forgetting events, of one training pass.

    ``true_prob`` is ``(n, E)``: the probability of the true label after each epoch. ``correct`` (same
    shape, bool) says whether the prediction was right; without it, ``true_prob > 0.5`` is used (exact for
    two classes, a conservative proxy otherwise). Forgetting events count correct → incorrect transitions
    between consecutive epochs (Toneva et al. 2019).

    >>> out = cartography(np.array([[0.2, 0.8, 0.3, 0.9]]))
    >>> round(float(out["confidence"][0]), 3), round(float(out["variability"][0]), 3), int(out["forgetting"][0])
    (0.55, 0.304, 1)
    """
    p = np.asarray(true_prob, dtype=np.float64)
    if p.ndim == 1:
        p = p[:, None]
    ok = p > 0.5 if correct is None else np.asarray(correct, dtype=bool).reshape(p.shape)
    forget = (ok[:, :-1] & ~ok[:, 1:]).sum(axis=1) if p.shape[1] > 1 else np.zeros(p.shape[0], dtype=np.int64)
    return {"confidence": p.mean(axis=1), "variability": p.std(axis=1), "forgetting": forget.astype(np.int32)}


class History:
    """Per-record running statistics, indexed by the pool's record index.

    alpha       weight of the newest value in the exponentially-weighted means (0 < alpha <= 1)
    window      number of recent passes the slopes are fitted over (>= 2)
    path        keep the last embedding per record in a memory-mapped float16 file there (else in RAM, float32)
    neighbours  labeled neighbours averaged in the ``nbr_*`` cartography features (0 = do not compute them)
    """

    def __init__(
        self, *, alpha: float = 0.3, window: int = 5, path: str | os.PathLike[str] | None = None, neighbours: int = 5
    ) -> None:
        self.alpha = alpha
        self.window = window
        self.path = path
        self.neighbours = neighbours
        self.n_classes: int | None = None
        self.capacity = 0
        self.probs = np.empty((0, 0), dtype=np.float64)
        for name, dtype, _ in _SCALARS:
            setattr(self, name, np.empty(0, dtype=dtype))
        self.mean = {s: np.empty(0) for s in SERIES}
        self.m2 = {s: np.empty(0) for s in SERIES}
        self.ewm = {s: np.empty(0) for s in SERIES}
        self.ring = {s: np.empty((0, 0), dtype=np.float32) for s in SERIES}  # (window, capacity): slot-major
        self.embeddings: np.ndarray | None = None
        self._emb_file: np.memmap | None = None
        self._last_parts: list[tuple[np.ndarray, Snapshot]] = []  # the latest pass, as folded
        self._last: tuple[Snapshot, np.ndarray] | None = None  # ... concatenated on first use
        self.loops_seen = 0
        self.loop = -1  # the loop of the latest update
        self._checked = False

    # declared for type checkers; set in __init__ from _SCALARS
    seen: np.ndarray
    count: np.ndarray
    predicted: np.ndarray
    flips: np.ndarray
    last_flip_loop: np.ndarray
    first_loop: np.ndarray
    last_loop: np.ndarray
    tod_last: np.ndarray
    tod_sum: np.ndarray
    drift_last: np.ndarray
    drift_sum: np.ndarray
    drift_count: np.ndarray
    cart_conf: np.ndarray
    cart_var: np.ndarray
    forgetting: np.ndarray
    dyn_passes: np.ndarray

    # ---- parameters and storage ------------------------------------------------------------------
    def _check(self) -> None:
        if self._checked:
            return
        check_float(self.alpha, "alpha", "History", low=0.0, high=1.0)
        if not 0 < self.alpha:
            raise ConfigError(f"The 'alpha' parameter of History must be a float in (0, 1]. Got {self.alpha!r}.")
        check_int(self.window, "window", "History", min=2)
        check_int(self.neighbours, "neighbours", "History", min=0)
        self.window = int(self.window)
        w = self.window
        for s in SERIES:
            if self.ring[s].shape[0] != w:
                self.ring[s] = np.zeros((w, self.capacity), dtype=np.float32)  # slots are valid by ``count``
        self._checked = True

    def _grow(self, capacity: int) -> None:
        if capacity <= self.capacity:
            return
        extra = capacity - self.capacity

        def cat(a: np.ndarray, fill: float | int | bool, axis: int = 0) -> np.ndarray:
            # one allocation and one copy; zero fills come from calloc'd pages, touched only when written
            shape = list(a.shape)
            shape[axis] += extra
            out = np.zeros(shape, dtype=a.dtype) if fill == 0 else np.empty(shape, dtype=a.dtype)
            old = (slice(None),) * axis + (slice(0, a.shape[axis]),)
            new = (slice(None),) * axis + (slice(a.shape[axis], None),)
            out[old] = a
            if fill != 0:
                out[new] = fill
            return out

        self.probs = cat(self.probs, 0.0)  # read only where ``seen``
        for name, _, fill in _SCALARS:
            setattr(self, name, cat(getattr(self, name), fill))
        for s in SERIES:
            self.mean[s] = cat(self.mean[s], 0.0)
            self.m2[s] = cat(self.m2[s], 0.0)
            self.ewm[s] = cat(self.ewm[s], 0.0)
            self.ring[s] = cat(self.ring[s], 0.0, axis=1)
        if self.embeddings is not None:
            self._set_embedding_capacity(capacity, self.embeddings.shape[1])
        self.capacity = capacity

    def _set_embedding_capacity(self, capacity: int, dim: int) -> None:
        """(Re)allocate the embedding store for ``capacity`` rows of ``dim``; keeps rows when ``dim`` is unchanged."""
        same_dim = self.embeddings is not None and self.embeddings.shape[1] == dim
        if self.path is None:
            new = np.full((capacity, dim), np.nan, dtype=np.float32)
            if same_dim and self.embeddings is not None:
                new[: self.embeddings.shape[0]] = self.embeddings
            self.embeddings = new
            return
        file = Path(self.path)
        file = file / "embeddings.f16" if file.is_dir() or file.suffix == "" else file
        file.parent.mkdir(parents=True, exist_ok=True)
        have = 0 if self._emb_file is None or not same_dim else self._emb_file.shape[0]
        if have >= capacity and self._emb_file is not None:
            self.embeddings = self._emb_file[:capacity]
            return
        rows = max(capacity, 2 * have, 1024)  # geometric growth: re-mapped O(log n) times
        if self._emb_file is not None:
            self._emb_file.flush()
        self.embeddings = None
        self._emb_file = None
        with open(file, "r+b" if same_dim and file.exists() else "w+b") as fh:
            fh.truncate(rows * dim * 2)
        mm = np.memmap(file, dtype=np.float16, mode="r+", shape=(rows, dim))
        if have == 0:
            mm[:] = np.nan
        else:
            mm[have:] = np.nan
        self._emb_file = mm
        self.embeddings = mm[:capacity]

    # ---- updates -----------------------------------------------------------------------------------
    def reserve(self, capacity: int, n_classes: int, dtype: Any = np.float64) -> None:
        """Allocate the arrays for ``capacity`` records of ``n_classes`` classes ahead of the first :meth:`update`
        (the service does it while a first snapshot's chunks upload); results are the same without it.

        The latest probabilities are kept in the dtype of the first snapshot (float32 or float64), so float32
        probabilities cost half the memory and are never rounded.

        >>> h = History()
        >>> h.reserve(4, 3, np.float32)
        >>> h.capacity, h.probs.shape, h.probs.dtype.name, bool(h.seen.any())
        (4, (4, 3), 'float32', False)
        """
        self._check()
        if self.n_classes is None:
            self.n_classes = int(n_classes)
            self.probs = np.zeros((self.capacity, self.n_classes), dtype=np.dtype(dtype))
        self._grow(int(capacity))

    def prepared(self, capacity: int, n_classes: int, dtype: Any = np.float64) -> History:
        """An empty History with the same parameters whose arrays for ``capacity`` records are allocated and
        written once (every page faulted in), to be handed to :meth:`adopt`.

        This touches no state of ``self``, so a server can run it on another thread while a first snapshot
        uploads: the first pass over 10^6 records otherwise pays ~0.3 s of page faults (measured) inside the
        commit.
        """
        out = History(alpha=self.alpha, window=self.window, path=self.path, neighbours=self.neighbours)
        out._check()
        out.n_classes = int(n_classes)
        out.probs = np.empty((0, out.n_classes), dtype=np.dtype(dtype))
        out._grow(int(capacity))
        # write zeros over the zero-filled arrays (the others were filled): every page a pass writes is faulted in
        zeros = [out.probs, *(getattr(out, name) for name, _, fill in _SCALARS if fill == 0)]
        for a in zeros + [a for d in (out.mean, out.m2, out.ewm, out.ring) for a in d.values()]:
            a[...] = 0
        return out

    def adopt(self, other: History) -> bool:
        """Take ``other``'s arrays (from :meth:`prepared`) when this History has none yet (nothing allocated, so
        nothing folded); returns whether it did. Results are the same either way."""
        if self.capacity or self.n_classes is not None or other.loops_seen or self.embeddings is not None:
            return False
        self._check()
        if (self.alpha, self.window) != (other.alpha, other.window):
            return False
        self.n_classes = other.n_classes
        self.capacity = other.capacity
        self.probs = other.probs
        for name, _, _ in _SCALARS:
            setattr(self, name, getattr(other, name))
        self.mean, self.m2, self.ewm, self.ring = other.mean, other.m2, other.ewm, other.ring
        return True

    def update(self, index: np.ndarray, snapshot: Snapshot, loop: int) -> None:
        """Fold one INFER pass (rows at pool ``index``) into the statistics."""
        self.update_parts([(index, snapshot)], loop)

    def update_parts(self, parts: Sequence[tuple[np.ndarray, Snapshot]], loop: int) -> None:
        """Fold one INFER pass given in parts, ``(pool index, snapshot)`` each (e.g. a service's upload chunks):
        the same result as :meth:`update` with the parts concatenated, without the copy. Indices must be unique
        across the parts (the caller checks: :meth:`SelectionEngine.locate`)."""
        checked = []
        for index, snapshot in parts:
            index = np.asarray(index, dtype=np.int64)
            if index.shape != (snapshot.n_records,):
                raise DataError("History.update: 'index' must give one pool index per snapshot row.")
            if snapshot.n_classes != (self.n_classes if self.n_classes is not None else parts[0][1].n_classes):
                raise DataError(
                    f"'probs' has {snapshot.n_classes} columns but earlier snapshots had "
                    f"{self.n_classes or parts[0][1].n_classes}; the class set must stay the same across loops."
                )
            checked.append((index, snapshot))
        if not checked:
            return
        self._check()
        top = max((int(i.max()) + 1 for i, _ in checked if i.size), default=0)
        first = checked[0][1]
        self.reserve(top, first.n_classes, first.probs.dtype)
        if any(sn.probs.dtype == np.float64 for _, sn in checked) and self.probs.dtype != np.float64:
            self.probs = self.probs.astype(np.float64)  # a float64 pass after float32 ones: never round it
        for index, snapshot in checked:
            # rows are independent: fold them in blocks so temporaries stay in cache instead of costing fresh pages
            block = 65536
            for start in range(0, index.size, block):
                self._fold(index[start : start + block], snapshot.probs[start : start + block], loop)
            if snapshot.embeddings is not None:
                self._update_embeddings(index, snapshot.embeddings)
            if snapshot.dynamics:
                self._update_dynamics_from(index, snapshot.dynamics)
        self._last_parts = checked
        self._last = None
        self.loops_seen += 1
        self.loop = max(self.loop, int(loop))

    def _last_pass(self) -> tuple[Snapshot, np.ndarray] | None:
        if self._last is None and self._last_parts:
            snaps = [sn for _, sn in self._last_parts]
            self._last = (Snapshot.concat(snaps), np.concatenate([i for i, _ in self._last_parts]))
        return self._last

    @property
    def last_snapshot(self) -> Snapshot | None:
        """The latest INFER pass (its parts concatenated on first use)."""
        last = self._last_pass()
        return None if last is None else last[0]

    @property
    def last_index(self) -> np.ndarray | None:
        """Pool indices of :attr:`last_snapshot`'s rows."""
        last = self._last_pass()
        return None if last is None else last[1]

    def _fold(self, index: np.ndarray, probs: np.ndarray, loop: int) -> None:
        """Fold the probabilities of records at ``index`` (unique) into the per-record statistics."""
        # a snapshot over consecutive records (the usual full-pool pass) is read and written through views;
        # every read below happens before the write to the same array, so views are safe
        at: slice | np.ndarray = index
        if index.size and int(index[-1]) - int(index[0]) == index.size - 1 and bool((np.diff(index) == 1).all()):
            at = slice(int(index[0]), int(index[-1]) + 1)
        old = self.count[at].copy()
        if not old.any():  # records never seen (seen <=> count > 0): the same result with a fraction of the work
            self._fold_first(at, probs, loop)
            return
        p = np.asarray(probs, dtype=np.float64)
        prev_p = self.probs[at]
        was_seen = self.seen[at]
        d = p - prev_p
        tod = np.sqrt(np.einsum("ij,ij->i", d, d))
        self.tod_last[at] = np.where(was_seen, tod, 0.0)
        self.tod_sum[at] += np.where(was_seen, tod, 0.0)
        self.probs[at] = p
        stats = summary_stats(p)
        cnt = old + 1
        slot = np.mod(old, self.window)
        a = float(self.alpha)
        for s in SERIES:
            x = stats[s]
            mean = self.mean[s][at]
            delta = x - mean
            new_mean = mean + delta / cnt
            self.m2[s][at] += delta * (x - new_mean)
            self.mean[s][at] = new_mean
            self.ewm[s][at] = np.where(old == 0, x, a * x + (1 - a) * self.ewm[s][at])
            if slot.size and not (slot - slot[0]).any():
                self.ring[s][int(slot[0]), at] = x  # every record at the same pass count (the usual case)
            else:
                self.ring[s][slot, index] = x
        self.count[at] = cnt
        pred = np.argmax(p, axis=1).astype(np.int32)
        prev = self.predicted[at]
        flipped = (prev >= 0) & (prev != pred)
        self.flips[at] += flipped
        self.last_flip_loop[at] = np.where(flipped, loop, self.last_flip_loop[at])
        self.predicted[at] = pred
        self.first_loop[at] = np.where(self.first_loop[at] < 0, loop, self.first_loop[at])
        self.last_loop[at] = loop
        self.seen[at] = True

    def _fold_first(self, at: slice | np.ndarray, p: np.ndarray, loop: int) -> None:
        """:meth:`_fold` for records with ``count == 0``: every running statistic starts at the first value and
        the zero-filled ones (m2, TOD, flips) stay zero, so they are not read or written."""
        self.probs[at] = p
        stats = summary_stats(p)
        for s in SERIES:
            x = stats[s]
            self.mean[s][at] = x
            self.ewm[s][at] = x
            self.ring[s][0, at] = x
        self.count[at] = 1
        self.predicted[at] = np.argmax(p, axis=1)
        self.first_loop[at] = loop
        self.last_loop[at] = loop
        self.seen[at] = True

    def _update_embeddings(self, index: np.ndarray, emb: np.ndarray) -> None:
        dim = emb.shape[1]
        if self.embeddings is None or self.embeddings.shape[1] != dim:
            self._set_embedding_capacity(self.capacity, dim)
            self.drift_last[:] = np.nan  # drift is only defined between embeddings of one space
            self.drift_sum[:] = 0.0
            self.drift_count[:] = 0
        assert self.embeddings is not None
        new = np.asarray(emb, dtype=np.float32)
        chunk = 16384  # bounded temporaries on large pools
        for start in range(0, index.size, chunk):
            idx = index[start : start + chunk]
            rows = new[start : start + chunk]
            prev = np.asarray(self.embeddings[idx], dtype=np.float32)
            has = ~np.isnan(prev).any(axis=1)
            num = np.einsum("ij,ij->i", prev, rows, dtype=np.float64)
            den = np.sqrt(
                np.einsum("ij,ij->i", prev, prev, dtype=np.float64)
                * np.einsum("ij,ij->i", rows, rows, dtype=np.float64)
            )
            with np.errstate(invalid="ignore", divide="ignore"):
                cos = np.where(den > 0, num / den, 1.0)
            drift = np.clip(1.0 - cos, 0.0, 2.0)
            self.drift_last[idx] = np.where(has, drift, np.nan)
            self.drift_sum[idx] += np.where(has, drift, 0.0)
            self.drift_count[idx] += has
            self.embeddings[idx] = rows
        if isinstance(self.embeddings, np.memmap) and self._emb_file is not None:
            self._emb_file.flush()

    def _update_dynamics_from(self, index: np.ndarray, dynamics: Mapping[str, Any]) -> None:
        key = next((k for k in TRUE_PROB_KEYS if k in dynamics), None)
        if key is None:
            return
        tp = np.asarray(dynamics[key], dtype=np.float64)
        tp = tp[:, None] if tp.ndim == 1 else tp
        has = ~np.isnan(tp).all(axis=1)  # rows of records that were not trained on are NaN
        correct = dynamics.get("correct")
        self.update_dynamics(index[has], tp[has], correct=None if correct is None else np.asarray(correct)[has])

    def update_dynamics(self, index: np.ndarray, true_prob: np.ndarray, *, correct: np.ndarray | None = None) -> None:
        """Fold one TRAIN pass's training dynamics for labeled records at ``index``.

        ``true_prob`` is ``(n, E)``, the probability of the true label after each epoch (``TrainReport``
        ``extra["dynamics"]["p_true"]``). Cartography confidence/variability are those of this latest pass;
        forgetting events add up over passes.
        """
        index = np.asarray(index, dtype=np.int64)
        tp = np.asarray(true_prob, dtype=np.float64)
        tp = tp[:, None] if tp.ndim == 1 else tp
        if tp.shape[0] != index.size:
            raise DataError(
                f"History.update_dynamics: 'true_prob' has {tp.shape[0]} rows for {index.size} indices; "
                "give one row per record."
            )
        self._check()
        self._grow(int(index.max()) + 1 if index.size else 0)
        out = cartography(tp, correct)
        self.cart_conf[index] = out["confidence"]
        self.cart_var[index] = out["variability"]
        self.forgetting[index] += out["forgetting"]
        self.dyn_passes[index] += 1

    def forget(self, index: np.ndarray) -> None:
        """Erase everything known about records at ``index`` (data-protection removal)."""
        index = np.asarray(index, dtype=np.int64)
        index = index[index < self.capacity]
        if self.n_classes is not None:
            self.probs[index] = np.nan
        for name, _, fill in _SCALARS:
            getattr(self, name)[index] = fill
        for s in SERIES:
            self.mean[s][index] = 0.0
            self.m2[s][index] = 0.0
            self.ewm[s][index] = 0.0
            if self.ring[s].size:
                self.ring[s][:, index] = np.nan
        if self.embeddings is not None:
            self.embeddings[index] = np.nan
        last = self._last_pass()
        if last is not None:
            keep = ~np.isin(last[1], index)
            if not keep.all():
                self._last_parts = [(last[1][keep], last[0].subset(keep))]
                self._last = None

    # ---- reading -----------------------------------------------------------------------------------
    def variance(self, series: str) -> np.ndarray:
        """Population variance of ``series`` per record (0 where seen fewer than twice)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            v = self.m2[series] / np.maximum(self.count, 1)
        return np.where(self.count > 1, v, 0.0)

    def slope(self, series: str, index: np.ndarray) -> np.ndarray:
        """Least-squares slope of ``series`` per INFER pass over the last ``window`` passes (0 if < 2)."""
        index = np.asarray(index, dtype=np.int64)
        if not self.ring[series].size:
            return np.zeros(index.size)
        return window_slopes(self.ring[series][:, index].T, self.count[index])

    def neighbour_cartography(self, index: np.ndarray) -> dict[str, np.ndarray]:
        """Mean cartography values of the ``neighbours`` nearest records with training dynamics.

        Distances are Euclidean between last embeddings. NaN where there are no embeddings, no record with
        dynamics, or ``neighbours == 0``. A record never counts as its own neighbour.
        """
        index = np.asarray(index, dtype=np.int64)
        nan = np.full(index.size, np.nan)
        out = {"confidence": nan, "variability": nan.copy(), "forgetting": nan.copy()}
        if self.embeddings is None or not self.neighbours or not self.capacity:
            return out
        ref = np.flatnonzero(self.dyn_passes > 0)
        if ref.size == 0:
            return out
        ref_emb = np.asarray(self.embeddings[ref], dtype=np.float32)
        ok = ~np.isnan(ref_emb).any(axis=1)
        ref, ref_emb = ref[ok], ref_emb[ok]
        if ref.size == 0:
            return out
        k = min(int(self.neighbours), ref.size)
        vals = {
            "confidence": self.cart_conf[ref],
            "variability": self.cart_var[ref],
            "forgetting": self.forgetting[ref].astype(np.float64),
        }
        ref_sq = np.einsum("ij,ij->i", ref_emb, ref_emb)
        chunk = max(1, 2_000_000 // max(ref.size, 1))
        for start in range(0, index.size, chunk):
            idx = index[start : start + chunk]
            q = np.asarray(self.embeddings[idx], dtype=np.float32)
            good = ~np.isnan(q).any(axis=1)
            if not good.any():
                continue
            qg = q[good]
            d2 = np.einsum("ij,ij->i", qg, qg)[:, None] + ref_sq[None, :] - 2.0 * (qg @ ref_emb.T)
            d2[idx[good][:, None] == ref[None, :]] = np.inf  # not its own neighbour
            near = np.argpartition(d2, k - 1, axis=1)[:, :k]
            finite = np.isfinite(np.take_along_axis(d2, near, axis=1))
            rows = np.flatnonzero(good) + start
            for name, v in vals.items():
                nv = np.where(finite, v[near], 0.0)
                with np.errstate(invalid="ignore", divide="ignore"):
                    out[name][rows] = nv.sum(axis=1) / finite.sum(axis=1)
        return out

    def features(self, index: np.ndarray) -> dict[str, np.ndarray]:
        """Per-record history features for the records at ``index`` (keys: :data:`FEATURES`).

        Every key is always present (float64, finite, one value per index). Values that are not defined
        for a record are 0: drift before a second embedding, cartography before training dynamics
        (``dynamics_passes`` = 0), neighbour cartography when no labeled neighbour has dynamics
        (``nbr_known`` = 0).
        """
        index = np.asarray(index, dtype=np.int64)
        cnt = self.count[index]
        out: dict[str, np.ndarray] = {"count": cnt.astype(np.float64)}
        for s in SERIES:
            out[f"{s}_mean"] = self.mean[s][index]
            out[f"{s}_var"] = self.variance(s)[index]
            out[f"{s}_ewm"] = self.ewm[s][index]
            out[f"{s}_slope"] = self.slope(s, index)
            if self.probs.size and self.probs.shape[1]:
                last = summary_stats(np.nan_to_num(self.probs[index], nan=0.0))[s]
                out[f"{s}_last"] = np.where(self.seen[index], last, 0.0)
            else:
                out[f"{s}_last"] = np.zeros(index.size)
        flips = self.flips[index].astype(np.float64)
        out["flips"] = flips
        out["flip_rate"] = flips / np.maximum(cnt - 1, 1)
        lfl = self.last_flip_loop[index]
        out["last_flip_loop"] = lfl.astype(np.float64)
        first = self.first_loop[index]
        since = np.where(lfl >= 0, self.loop - lfl, self.loop - first)
        out["loops_since_flip"] = np.where(first >= 0, since, 0).astype(np.float64)
        out["first_loop"] = first.astype(np.float64)
        out["loops_seen"] = np.where(first >= 0, self.loop - first + 1, 0).astype(np.float64)
        out["tod"] = self.tod_last[index].copy()
        out["tod_mean"] = self.tod_sum[index] / np.maximum(cnt - 1, 1)
        dc = self.drift_count[index]
        out["drift"] = np.where(dc > 0, np.nan_to_num(self.drift_last[index], nan=0.0), 0.0)
        out["drift_mean"] = self.drift_sum[index] / np.maximum(dc, 1)
        passes = self.dyn_passes[index]
        out["dynamics_passes"] = passes.astype(np.float64)
        out["cartography_confidence"] = np.where(passes > 0, self.cart_conf[index], 0.0)
        out["cartography_variability"] = np.where(passes > 0, self.cart_var[index], 0.0)
        out["forgetting_events"] = self.forgetting[index].astype(np.float64)
        nbr = self.neighbour_cartography(index)
        known = ~np.isnan(nbr["confidence"])
        out["nbr_known"] = known.astype(np.float64)
        out["nbr_cartography_confidence"] = np.where(known, nbr["confidence"], 0.0)
        out["nbr_cartography_variability"] = np.where(known, nbr["variability"], 0.0)
        out["nbr_forgetting_events"] = np.where(known, nbr["forgetting"], 0.0)
        return out

    def nbytes(self) -> int:
        """Bytes held in RAM by the per-record arrays (the memory-mapped embedding file not counted)."""
        arrays: list[np.ndarray] = [self.probs]
        arrays += [getattr(self, name) for name, _, _ in _SCALARS]
        for d in (self.mean, self.m2, self.ewm, self.ring):
            arrays += list(d.values())
        if self.embeddings is not None and not isinstance(self.embeddings, np.memmap):
            arrays.append(self.embeddings)
        return int(sum(a.nbytes for a in arrays))
