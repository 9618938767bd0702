"""Weak supervision: labeling functions, their label matrix and analysis, and a label model.

A labeling function (LF) maps one record to a class index or :data:`ABSTAIN` (-1). :func:`apply_lfs` gives the
label matrix ``L`` (n_records, n_lfs); :func:`lf_analysis` reports coverage, overlap, conflict and — where
gold labels exist — empirical accuracy, like Snorkel's ``LFAnalysis``. :class:`LabelModel` learns how reliable
each LF is without ground truth: a Dawid–Skene model over the LFs in which *abstaining is an observed answer*
(an LF that votes only for one class is informative through when it votes), fitted by the same EM as
:func:`alloop.labeling.consensus.dawid_skene`. Correlated LFs: :func:`lf_duplicates` groups near-duplicate
LFs (they give the same answer — a class or abstain — on nearly every record where either votes), and the
label model counts each group's evidence once (every member's log-likelihood is weighted by 1 / group size);
otherwise three copies of one mediocre LF outvote two good independent ones, and EM, seeing the copies agree
perfectly, believes them. :func:`weak_label_events` turns confident probabilistic labels into initial labels.

>>> @labeling_function
... def mentions_cat(text):
...     return 1 if "cat" in text else ABSTAIN
>>> @labeling_function(name="short")
... def short_is_zero(text):
...     return 0 if len(text) < 8 else ABSTAIN
>>> apply_lfs([mentions_cat, short_is_zero], ["a cat", "the dog barks"]).tolist()
[[1, 0], [-1, -1]]
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, overload

import numpy as np

from alloop._validation import check_choice, check_float, check_int
from alloop.errors import ConfigError, DataError, StateError
from alloop.labeling._provider import LabelEvent
from alloop.labeling.consensus import em, vote_counts

__all__ = [
    "ABSTAIN",
    "LFStats",
    "LabelModel",
    "LabelingFunction",
    "apply_lfs",
    "label_coverage",
    "labeling_function",
    "lf_analysis",
    "lf_duplicates",
    "lf_weights",
    "weak_label_events",
]

ABSTAIN = -1


class LabelingFunction:
    """A named function record → class index or :data:`ABSTAIN`."""

    def __init__(self, *, name: str, fn: Callable[[Any], int]) -> None:
        self.name = name
        self.fn = fn

    def __call__(self, record: Any) -> int:
        out = self.fn(record)
        if isinstance(out, bool) or not isinstance(out, numbers.Integral) or out < ABSTAIN:
            raise DataError(
                f"Labeling function {self.name!r} must return a class index >= 0 or ABSTAIN (-1). Got {out!r}."
            )
        return int(out)

    def __repr__(self) -> str:
        return f"LabelingFunction(name={self.name!r})"


@overload
def labeling_function(fn: Callable[[Any], int], *, name: str | None = None) -> LabelingFunction: ...
@overload
def labeling_function(
    fn: None = None, *, name: str | None = None
) -> Callable[[Callable[[Any], int]], LabelingFunction]: ...
def labeling_function(
    fn: Callable[[Any], int] | None = None, *, name: str | None = None
) -> LabelingFunction | Callable[[Callable[[Any], int]], LabelingFunction]:
    """Decorator: ``@labeling_function`` or ``@labeling_function(name="…")``."""

    def wrap(f: Callable[[Any], int]) -> LabelingFunction:
        return LabelingFunction(name=name or str(getattr(f, "__name__", "lf")), fn=f)

    return wrap if fn is None else wrap(fn)


def apply_lfs(lfs: Sequence[Callable[[Any], int]], records: Sequence[Any]) -> np.ndarray:
    """The label matrix ``L[i, j]`` = LF ``j`` on record ``i`` (int64, ABSTAIN = -1)."""
    if not lfs:
        raise ConfigError("'lfs' must hold at least one labeling function.")
    wrapped = [lf if isinstance(lf, LabelingFunction) else labeling_function(lf) for lf in lfs]
    out = np.empty((len(records), len(wrapped)), dtype=np.int64)
    for i, rec in enumerate(records):
        for j, lf in enumerate(wrapped):
            out[i, j] = lf(rec)
    return out


def _check_matrix(L: Any) -> np.ndarray:
    arr = np.asarray(L)
    if arr.ndim != 2 or arr.dtype.kind not in "iu":
        raise DataError(f"The label matrix must be a 2-D integer array (records × LFs). Got shape {arr.shape}.")
    if (arr < ABSTAIN).any():
        raise DataError("The label matrix may hold only class indices >= 0 and ABSTAIN (-1).")
    return arr.astype(np.int64)


def label_coverage(L: Any) -> float:
    """Fraction of records with at least one non-abstain vote."""
    arr = _check_matrix(L)
    return float(np.mean((arr != ABSTAIN).any(axis=1))) if arr.shape[0] else 0.0


@dataclass(frozen=True)
class LFStats:
    """One row of :func:`lf_analysis` (fractions are over all records)."""

    name: str
    polarity: tuple[int, ...]  # classes this LF ever votes for
    coverage: float  # fraction it labels
    overlap: float  # fraction it labels and at least one other LF labels too
    conflict: float  # fraction it labels and another LF labels differently
    correct: int | None = None
    incorrect: int | None = None
    accuracy: float | None = None  # correct / (correct + incorrect) where gold exists


def lf_analysis(L: Any, *, y: Any = None, names: Sequence[str] | None = None) -> list[LFStats]:
    """Per-LF coverage, overlap, conflict, and empirical accuracy when ``y`` (gold; -1 = unknown) is given.

    >>> L = np.array([[0, 0], [0, 1], [-1, 1], [-1, -1]])
    >>> [(s.coverage, s.overlap, s.conflict) for s in lf_analysis(L)]
    [(0.5, 0.5, 0.25), (0.75, 0.5, 0.25)]
    """
    arr = _check_matrix(L)
    n, m = arr.shape
    names = list(names) if names is not None else [f"lf{j}" for j in range(m)]
    if len(names) != m:
        raise ConfigError(f"'names' must name each of the {m} LFs. Got {len(names)}.")
    gold = None
    if y is not None:
        gold = np.asarray(y, dtype=np.int64)
        if gold.shape != (n,):
            raise DataError(f"'y' must hold one gold label (or -1) per record. Got shape {gold.shape} for {n}.")
    voted = arr != ABSTAIN
    n_voted = voted.sum(axis=1)
    out = []
    for j in range(m):
        mine = voted[:, j]
        others = n_voted - mine
        # a conflict: some other LF votes, and for a different class
        differs = np.zeros(n, dtype=bool)
        for k in range(m):
            if k != j:
                differs |= voted[:, k] & (arr[:, k] != arr[:, j])
        stats: dict[str, Any] = {}
        if gold is not None:
            known = mine & (gold != ABSTAIN)
            right = int(np.sum(arr[known, j] == gold[known]))
            wrong = int(known.sum()) - right
            stats = {
                "correct": right,
                "incorrect": wrong,
                "accuracy": right / (right + wrong) if right + wrong else None,
            }
        denom = max(n, 1)
        out.append(
            LFStats(
                name=names[j],
                polarity=tuple(int(c) for c in np.unique(arr[mine, j])),
                coverage=float(mine.sum() / denom),
                overlap=float(np.sum(mine & (others > 0)) / denom),
                conflict=float(np.sum(mine & differs) / denom),
                **stats,
            )
        )
    return out


def lf_duplicates(L: Any, *, threshold: float = 0.9) -> list[tuple[int, ...]]:
    """Groups of near-duplicate LFs (every LF is in exactly one group; singletons included).

    Two LFs are linked when, among the records where at least one of them votes, the share where both vote
    for the same class is at least ``threshold``; groups are the connected components of those links.
    Independent LFs rarely qualify: two 90 %-accurate LFs with coverage 0.5 give the same vote on about a
    quarter of the records where either votes.

    >>> L = np.array([[0, 0, 1], [1, 1, -1], [-1, -1, 0], [1, 1, 1]])
    >>> lf_duplicates(L)
    [(0, 1), (2,)]
    """
    check_float(threshold, "threshold", "lf_duplicates", low=0.0, high=1.0)
    arr = _check_matrix(L)
    m = arr.shape[1]
    voted = arr != ABSTAIN
    parent = list(range(m))

    def root(j: int) -> int:
        while parent[j] != j:
            parent[j] = parent[parent[j]]
            j = parent[j]
        return j

    for j in range(m):
        for k in range(j + 1, m):
            either = int(np.sum(voted[:, j] | voted[:, k]))
            same = int(np.sum(voted[:, j] & (arr[:, j] == arr[:, k])))
            if either and same / either >= threshold:
                parent[root(k)] = root(j)
    groups: dict[int, list[int]] = {}
    for j in range(m):
        groups.setdefault(root(j), []).append(j)
    return sorted(tuple(g) for g in groups.values())


def lf_weights(groups: Sequence[Sequence[int]], n_lfs: int) -> np.ndarray:
    """Per-LF weight 1 / (size of its group), so each group of near-duplicates counts as one LF."""
    w = np.ones(n_lfs)
    for g in groups:
        w[list(g)] = 1.0 / len(g)
    return w


class LabelModel:
    """Learn LF reliabilities without ground truth; return probabilistic labels.

    A Dawid–Skene model whose answers are the classes plus "abstain": for each LF and true class, a
    distribution over (class 0 … K−1, abstain). ``smoothing`` pseudo-counts (per cell) keep rarely seen cells
    away from 0 and 1. Fitted by EM from the (weighted) majority vote of the non-abstaining LFs.

    correlations  "duplicates" (default): near-duplicate LFs (:func:`lf_duplicates` at ``duplicate_threshold``)
                  share one vote — each member's evidence is weighted by 1 / group size in EM and in
                  :meth:`predict_proba`; "independent": every LF counts fully (the plain Dawid–Skene model).
                  Fitted groups and weights are in ``groups_`` and ``weights_``.

    >>> L = np.array([[0, 0, -1], [1, 1, 1], [1, -1, 1], [0, 0, 1], [-1, -1, -1]] * 20)
    >>> LabelModel(n_classes=2).fit(L).predict(L[:5]).tolist()
    [0, 1, 1, 0, -1]
    """

    def __init__(
        self,
        *,
        n_classes: int,
        max_iter: int = 200,
        tol: float = 1e-6,
        smoothing: float = 1.0,
        correlations: str = "duplicates",
        duplicate_threshold: float = 0.9,
    ) -> None:
        self.n_classes = n_classes
        self.max_iter = max_iter
        self.tol = tol
        self.smoothing = smoothing
        self.correlations = correlations
        self.duplicate_threshold = duplicate_threshold
        self.groups_: list[tuple[int, ...]] | None = None
        self.weights_: np.ndarray | None = None
        self.confusion_: np.ndarray | None = None  # (n_lfs, K, K + 1): [lf, true, answer], last column = abstain
        self.class_prior_: np.ndarray | None = None

    def _check(self, L: Any) -> np.ndarray:
        check_int(self.n_classes, "n_classes", "LabelModel", min=2)
        check_int(self.max_iter, "max_iter", "LabelModel", min=1)
        check_float(self.tol, "tol", "LabelModel", low=0.0)
        check_float(self.smoothing, "smoothing", "LabelModel", low=0.0)
        check_choice(self.correlations, "correlations", "LabelModel", ("duplicates", "independent"))
        check_float(self.duplicate_threshold, "duplicate_threshold", "LabelModel", low=0.0, high=1.0)
        arr = _check_matrix(L)
        if (arr >= self.n_classes).any():
            raise DataError(f"The label matrix holds a class index >= n_classes ({self.n_classes}).")
        return arr

    @staticmethod
    def _long(arr: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n, m = arr.shape
        item = np.repeat(np.arange(n), m)
        lf = np.tile(np.arange(m), n)
        obs = arr.ravel().copy()
        obs[obs == ABSTAIN] = k
        return item, lf, obs

    def fit(self, L: Any) -> LabelModel:
        arr = self._check(L)
        k = self.n_classes
        n, m = arr.shape
        if n == 0:
            raise DataError("The label matrix has no records to fit the LabelModel on.")
        item, lf, obs = self._long(arr, k)
        if self.correlations == "duplicates":
            self.groups_ = lf_duplicates(arr, threshold=self.duplicate_threshold)
        else:
            self.groups_ = [(j,) for j in range(m)]
        self.weights_ = lf_weights(self.groups_, m)
        weight = self.weights_[lf]
        votes = vote_counts(item, np.minimum(obs, k), n, k + 1, weight)[:, :k]
        start = np.where(votes.sum(axis=1, keepdims=True) > 0, votes, 1.0)
        start = start / start.sum(axis=1, keepdims=True)
        _, conf, _, prior, _, _ = em(
            item, lf, obs, start=start, n_annotators=m, n_observed=k + 1,
            prior_counts=np.full((m, k, k + 1), float(self.smoothing)), max_iter=self.max_iter, tol=self.tol,
            weight=weight,
        )  # fmt: skip
        self.confusion_, self.class_prior_ = conf, prior
        return self

    def predict_proba(self, L: Any) -> np.ndarray:
        """(n_records, n_classes) posteriors under the fitted model (abstains count as answers)."""
        arr = self._check(L)
        if self.confusion_ is None or self.class_prior_ is None or self.weights_ is None:
            raise StateError("LabelModel is not fitted. Call fit(L) first.")
        if arr.shape[1] != self.confusion_.shape[0]:
            raise DataError(f"The label matrix must have {self.confusion_.shape[0]} LF columns. Got {arr.shape[1]}.")
        k = self.n_classes
        item, lf, obs = self._long(arr, k)
        log_conf = np.log(self.confusion_)
        logp = np.tile(np.log(np.maximum(self.class_prior_, 1e-10)), (arr.shape[0], 1))
        contrib = log_conf[lf, :, obs] * self.weights_[lf][:, None]
        for t in range(k):  # abstaining is evidence too: it is part of the generative model
            logp[:, t] += np.bincount(item, weights=contrib[:, t], minlength=arr.shape[0])
        logp -= logp.max(axis=1, keepdims=True)
        p = np.exp(logp)
        return np.asarray(p / p.sum(axis=1, keepdims=True))

    def predict(self, L: Any) -> np.ndarray:
        """Most probable class per record; ABSTAIN where every LF abstains."""
        arr = self._check(L)
        pred = self.predict_proba(arr).argmax(axis=1)
        return np.asarray(np.where((arr != ABSTAIN).any(axis=1), pred, ABSTAIN))

    def lf_accuracy(self) -> np.ndarray:
        """Estimated accuracy of each LF when it votes: P(answer = true | not abstain), prior-weighted."""
        if self.confusion_ is None or self.class_prior_ is None:
            raise StateError("LabelModel is not fitted. Call fit(L) first.")
        k = self.n_classes
        right = np.einsum("mkk->mk", self.confusion_[:, :, :k])
        votes = self.confusion_[:, :, :k].sum(axis=2)
        return np.asarray((right * self.class_prior_).sum(axis=1) / (votes * self.class_prior_).sum(axis=1))


def weak_label_events(
    ids: Any, probs: Any, *, threshold: float = 0.9, classes: Sequence[Any] | None = None
) -> list[LabelEvent]:
    """Initial labels (``source="weak"``) for records whose weak-label confidence reaches ``threshold``.

    >>> ev = weak_label_events(["a", "b"], [[0.95, 0.05], [0.5, 0.5]], classes=["neg", "pos"])
    >>> [(e.id, e.label, e.source) for e in ev]
    [('a', 'neg', 'weak')]
    """
    check_float(threshold, "threshold", "weak_label_events", low=0.0, high=1.0)
    p = np.asarray(probs, dtype=np.float64)
    id_list = np.asarray(ids).tolist()
    if p.ndim != 2 or p.shape[0] != len(id_list):
        raise DataError(f"'probs' must be (len(ids), n_classes). Got {p.shape} for {len(id_list)} ids.")
    conf = p.max(axis=1)
    pred = p.argmax(axis=1)
    keep = np.flatnonzero(conf >= threshold)
    cls = list(classes) if classes is not None else None
    return [
        LabelEvent(
            id=id_list[i],
            label=cls[int(pred[i])] if cls is not None else int(pred[i]),
            source="weak",
            annotator="label-model",
            posterior=float(conf[i]),
        )
        for i in keep.tolist()
    ]
