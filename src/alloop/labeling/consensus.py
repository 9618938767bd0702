"""Consensus over redundant judgements: majority vote, Dawid–Skene, one-coin Dawid–Skene, dynamic overlap.

Judgements come in long format — three equal-length sequences ``items``, ``annotators``, ``labels`` — with
items and annotators as arbitrary hashable ids. Every method returns a :class:`ConsensusResult`: posteriors
(items × classes), labels, per-annotator confusion matrices and skills.

* :func:`majority_vote` — vote shares; ties broken uniformly at random with ``seed``.
* :func:`dawid_skene` — EM with one confusion matrix per annotator (Dawid & Skene, 1979). Gold answers clamp
  their items' posteriors; ``prior_counts`` (e.g. :meth:`ConsensusResult.annotator_counts` of an earlier loop)
  are added to the expected counts in every M-step as Dirichlet pseudo-counts; ``init`` warm-starts EM from an
  earlier result, so an incremental update after a few new judgements takes a few iterations.
* :func:`one_coin_dawid_skene` — the same EM with one accuracy per annotator (wrong answers uniform).
* :class:`DynamicOverlap` — ask for another judgement while the consensus confidence is below a target and the
  item has fewer than ``max_judgements``; items still uncertain at the cap go to expert review.

The EM follows crowd-kit's ``DawidSkene`` / ``OneCoinDawidSkene`` step for step (majority-vote start,
learned class prior, clamping of gold items after each E-step), so both reach the same fixed point;
``tests/test_consensus.py`` checks the posteriors agree to 1e-4.

>>> items = [1, 1, 1, 2, 2, 2]
>>> who = ["ann", "bob", "cyd", "ann", "bob", "cyd"]
>>> said = ["cat", "cat", "dog", "dog", "dog", "dog"]
>>> res = dawid_skene(items, who, said)
>>> res.labels.tolist()
['cat', 'dog']
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from alloop._validation import check_choice, check_float, check_int
from alloop.errors import ConfigError, DataError, LabelError
from alloop.labeling._provider import LabelEvent

__all__ = [
    "METHODS",
    "ConsensusResult",
    "DawidSkene",
    "DynamicOverlap",
    "MajorityVote",
    "OneCoinDawidSkene",
    "OverlapDecision",
    "add_counts",
    "dawid_skene",
    "make_aggregator",
    "majority_vote",
    "one_coin_dawid_skene",
]

_EPS = 1e-10  # the floor crowd-kit uses for probabilities before taking logs


# ---------------------------------------------------------------------------------------------- encoding
def factorize(values: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``(uniques, codes)`` for a sequence of hashable ids: sorted when sortable, else first-seen order.

    >>> u, c = factorize(["b", "a", "b"], "items")
    >>> u.tolist(), c.tolist()
    (['a', 'b'], [1, 0, 1])
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        arr = np.empty(len(values), dtype=object)
        arr[:] = list(values)
    if arr.dtype.kind in "biufUS":
        uniq, codes = np.unique(arr, return_inverse=True)
        return uniq, codes.astype(np.intp)
    table: dict[Any, int] = {}
    codes_list = []
    for v in arr.tolist():
        if not isinstance(v, Hashable):
            raise DataError(f"Every value in '{what}' must be hashable. Got {v!r}.")
        codes_list.append(table.setdefault(v, len(table)))
    uniq_obj = np.empty(len(table), dtype=object)
    uniq_obj[:] = list(table)
    return uniq_obj, np.asarray(codes_list, dtype=np.intp)


def _encode_labels(labels: Any, classes: Sequence[Any] | None) -> tuple[np.ndarray, np.ndarray]:
    if classes is None:
        return factorize(labels, "labels")
    cls = np.empty(len(classes), dtype=object)
    cls[:] = list(classes)
    if len(set(cls.tolist())) != cls.size:
        raise ConfigError("The 'classes' parameter must not repeat a class. Remove the duplicates.")
    index = {c: k for k, c in enumerate(cls.tolist())}
    arr = np.asarray(labels)
    values = arr.tolist() if arr.ndim == 1 else list(labels)
    codes = np.empty(len(values), dtype=np.intp)
    for j, v in enumerate(values):
        k = index.get(v)
        if k is None:
            raise LabelError(f"Label {v!r} is not one of the classes {cls.tolist()!r}. Fix the label or 'classes'.")
        codes[j] = k
    if all(isinstance(c, (int, np.integer)) and not isinstance(c, bool) for c in cls.tolist()):
        cls = cls.astype(np.int64)
    return cls, codes


@dataclass(frozen=True)
class _Judgements:
    items: np.ndarray
    annotators: np.ndarray
    classes: np.ndarray
    item: np.ndarray  # (J,) codes
    ann: np.ndarray
    lab: np.ndarray

    @property
    def n_items(self) -> int:
        return int(self.items.size)

    @property
    def n_annotators(self) -> int:
        return int(self.annotators.size)

    @property
    def n_classes(self) -> int:
        return int(self.classes.size)


def _judgements(items: Any, annotators: Any, labels: Any, classes: Sequence[Any] | None) -> _Judgements:
    n = len(items)
    if len(annotators) != n or len(labels) != n:
        raise DataError(
            "'items', 'annotators' and 'labels' must have the same length (one row per judgement). "
            f"Got {n}, {len(annotators)} and {len(labels)}."
        )
    if n == 0:
        raise DataError("There are no judgements to aggregate: 'items' is empty.")
    it_u, it_c = factorize(items, "items")
    an_u, an_c = factorize(annotators, "annotators")
    cl_u, cl_c = _encode_labels(labels, classes)
    return _Judgements(it_u, an_u, cl_u, it_c, an_c, cl_c)


# ---------------------------------------------------------------------------------------------- result
@dataclass(frozen=True)
class ConsensusResult:
    """What a consensus method concluded.

    posteriors  (n_items, n_classes) probability of each true class per item, rows sum to 1
    labels      the consensus class per item (argmax; majority-vote ties broken at random)
    confusion   (n_annotators, n_classes, n_classes): ``confusion[a, true, observed]``, rows sum to 1
    counts      the expected counts behind ``confusion`` (before pseudo-counts), same shape
    skill       per-annotator accuracy (expected under the class prior for Dawid–Skene)
    """

    method: str
    items: np.ndarray
    annotators: np.ndarray
    classes: np.ndarray
    posteriors: np.ndarray
    labels: np.ndarray
    confusion: np.ndarray
    counts: np.ndarray
    skill: np.ndarray
    class_prior: np.ndarray
    n_judgements: np.ndarray
    n_iter: int = 0
    converged: bool = True

    @property
    def confidence(self) -> np.ndarray:
        """The posterior probability of the consensus label, per item."""
        return np.asarray(self.posteriors.max(axis=1))

    def annotator_counts(self) -> dict[Any, np.ndarray]:
        """Per-annotator expected confusion counts — pass to the next loop as ``prior_counts``."""
        return {a: self.counts[w].copy() for w, a in enumerate(self.annotators.tolist())}

    def annotator_skill(self) -> dict[Any, float]:
        return {a: float(s) for a, s in zip(self.annotators.tolist(), self.skill.tolist(), strict=True)}

    def posterior_of(self, item: Any) -> np.ndarray:
        hits = np.flatnonzero(self.items == item) if self.items.dtype != object else None
        if hits is None:
            hits = np.asarray([k for k, v in enumerate(self.items.tolist()) if v == item])
        if hits.size == 0:
            raise DataError(f"Item {item!r} has no judgements in this consensus result.")
        return np.asarray(self.posteriors[int(hits[0])])

    def events(self, *, source: str = "human") -> list[LabelEvent]:
        """One :class:`LabelEvent` per item: the consensus label with its posterior confidence."""
        conf = self.confidence
        return [
            LabelEvent(id=i, label=lab, source=source, annotator=f"consensus:{self.method}", posterior=float(c))
            for i, lab, c in zip(self.items.tolist(), self.labels.tolist(), conf.tolist(), strict=True)
        ]


def add_counts(*count_maps: Mapping[Any, np.ndarray]) -> dict[Any, np.ndarray]:
    """Sum per-annotator count matrices from several loops (annotators missing from a map count zero)."""
    out: dict[Any, np.ndarray] = {}
    for m in count_maps:
        for a, c in m.items():
            arr = np.asarray(c, dtype=np.float64)
            out[a] = out[a] + arr if a in out else arr.copy()
    return out


# ---------------------------------------------------------------------------------------------- maths
def vote_counts(
    item: np.ndarray, lab: np.ndarray, n_items: int, n_classes: int, weight: np.ndarray | None = None
) -> np.ndarray:
    """(n_items, n_classes) number (or total ``weight``) of votes per class."""
    flat = item * n_classes + lab
    counts = np.bincount(flat, weights=weight, minlength=n_items * n_classes)
    return counts.reshape(n_items, n_classes).astype(np.float64)


def expected_counts(
    post: np.ndarray, item: np.ndarray, ann: np.ndarray, obs: np.ndarray, n_annotators: int, n_observed: int
) -> np.ndarray:
    """``counts[a, true, observed] = Σ_j post[item_j, true] · [ann_j = a, obs_j = observed]``."""
    n_classes = post.shape[1]
    flat = ann * n_observed + obs
    out = np.empty((n_annotators, n_classes, n_observed))
    for t in range(n_classes):
        out[:, t, :] = np.bincount(flat, weights=post[item, t], minlength=n_annotators * n_observed).reshape(
            n_annotators, n_observed
        )
    return out


def normalize_confusion(counts: np.ndarray) -> np.ndarray:
    """Row-normalise counts into ``confusion[a, true, observed]`` with crowd-kit's 1e-10 floor."""
    c = np.maximum(counts, _EPS)
    return np.asarray(c / c.sum(axis=2, keepdims=True))


def one_coin_confusion(skill: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrices of annotators right with probability ``skill``, wrong uniformly otherwise."""
    off = (1.0 - skill) / (n_classes - 1)
    conf = np.repeat(off[:, None, None], n_classes, axis=1).repeat(n_classes, axis=2)
    idx = np.arange(n_classes)
    conf[:, idx, idx] = skill[:, None]
    return np.asarray(np.clip(conf, _EPS, 1.0 - _EPS))


def e_step(
    log_prior: np.ndarray, log_conf: np.ndarray, item: np.ndarray, ann: np.ndarray, obs: np.ndarray, n_items: int,
    weight: np.ndarray | None = None,
) -> np.ndarray:  # fmt: skip
    """Posteriors ∝ prior · Π over an item's judgements of ``confusion[a, :, observed] ** weight``.

    ``weight`` (one per judgement, default 1) tempers judgements that are not independent evidence, e.g. the
    votes of near-duplicate labeling functions (:class:`alloop.labeling.weak.LabelModel`).
    """
    n_classes = log_prior.size
    contrib = log_conf[ann, :, obs]  # (J, K)
    if weight is not None:
        contrib = contrib * weight[:, None]
    logp = np.empty((n_items, n_classes))
    for t in range(n_classes):
        logp[:, t] = np.bincount(item, weights=contrib[:, t], minlength=n_items)
    logp += log_prior
    logp -= logp.max(axis=1, keepdims=True)
    p = np.exp(logp)
    return np.asarray(p / p.sum(axis=1, keepdims=True))


def em(
    item: np.ndarray,
    ann: np.ndarray,
    obs: np.ndarray,
    *,
    start: np.ndarray,
    n_annotators: int,
    n_observed: int,
    one_coin: bool = False,
    gold: np.ndarray | None = None,
    prior_counts: np.ndarray | None = None,
    init_confusion: np.ndarray | None = None,
    init_prior: np.ndarray | None = None,
    max_iter: int = 100,
    tol: float = 1e-7,
    weight: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, bool]:
    """The Dawid–Skene EM loop on integer codes; returns ``(post, confusion, counts, class_prior, n_iter, converged)``.

    ``start`` (n_items, n_classes) is the first posterior (majority-vote shares); ``gold`` (n_items, n_classes)
    holds one-hot rows for items with a known answer and NaN rows elsewhere; ``prior_counts`` has the shape of
    the confusion array; ``init_confusion``/``init_prior`` warm-start EM (the first M-step is skipped);
    ``weight`` (J,) tempers each judgement's evidence in the E-step (see :func:`e_step`).
    Stops when no posterior moves by more than ``tol``.
    """
    n_items, n_classes = start.shape
    gold_rows = None if gold is None else ~np.isnan(gold[:, 0])

    def clamp(p: np.ndarray) -> np.ndarray:
        if gold_rows is not None and gold_rows.any():
            p = p.copy()
            p[gold_rows] = gold[gold_rows]  # type: ignore[index]
        return p

    def m_step(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        counts = expected_counts(p, item, ann, obs, n_annotators, n_observed)
        total = counts if prior_counts is None else counts + prior_counts
        if one_coin:
            right = np.einsum("akk->a", total)
            skill = right / np.maximum(total.sum(axis=(1, 2)), _EPS)
            return one_coin_confusion(skill, n_classes), counts
        return normalize_confusion(total), counts

    post = clamp(start)
    if init_confusion is not None:
        conf, counts = init_confusion, expected_counts(post, item, ann, obs, n_annotators, n_observed)
        prior = post.mean(axis=0) if init_prior is None else init_prior
    else:
        prior = post.mean(axis=0)
        conf, counts = m_step(post)
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 - n_iter is reported
        new = clamp(e_step(np.log(np.maximum(prior, _EPS)), np.log(conf), item, ann, obs, n_items, weight))
        prior = new.mean(axis=0)
        conf, counts = m_step(new)
        delta = float(np.abs(new - post).max())
        post = new
        if delta < tol:
            converged = True
            break
    return post, conf, counts, prior, n_iter, converged


def _argmax_random_ties(scores: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    top = scores.max(axis=1, keepdims=True)
    noise = rng.random(scores.shape)
    return np.asarray(np.where(scores == top, noise, -1.0).argmax(axis=1))


def _gold_matrix(gold: Mapping[Any, Any] | None, data: _Judgements) -> np.ndarray | None:
    if not gold:
        return None
    cls_index = {c: k for k, c in enumerate(data.classes.tolist())}
    item_index = {v: k for k, v in enumerate(data.items.tolist())}
    g = np.full((data.n_items, data.n_classes), np.nan)
    for it, lab in gold.items():
        row = item_index.get(it)
        if row is None:
            continue  # a gold item nobody judged says nothing about the annotators
        k = cls_index.get(lab)
        if k is None:
            raise LabelError(f"Gold label {lab!r} of item {it!r} is not one of the classes {data.classes.tolist()!r}.")
        g[row] = 0.0
        g[row, k] = 1.0
    return g


def _prior_array(prior_counts: Mapping[Any, Any] | None, data: _Judgements) -> np.ndarray | None:
    if not prior_counts:
        return None
    k = data.n_classes
    out = np.zeros((data.n_annotators, k, k))
    index = {a: w for w, a in enumerate(data.annotators.tolist())}
    for a, c in prior_counts.items():
        arr = np.asarray(c, dtype=np.float64)
        if arr.shape != (k, k) or not np.isfinite(arr).all() or (arr < 0).any():
            raise ConfigError(
                f"'prior_counts' for annotator {a!r} must be a ({k}, {k}) array of counts >= 0 "
                f"(rows: true class, columns: answer). Got shape {arr.shape}."
            )
        if a in index:
            out[index[a]] = arr
    return out


def _warm_start(init: ConsensusResult | None, data: _Judgements) -> tuple[np.ndarray | None, np.ndarray | None]:
    if init is None:
        return None, None
    if init.classes.tolist() != data.classes.tolist():
        raise ConfigError("'init' must come from a result over the same classes. Pass the same 'classes'.")
    # unknown annotators start as moderately reliable: 0.7 on the diagonal, the rest spread evenly
    k = data.n_classes
    default = one_coin_confusion(np.array([0.7]), k)[0]
    index = {a: w for w, a in enumerate(init.annotators.tolist())}
    conf = np.empty((data.n_annotators, k, k))
    for w, a in enumerate(data.annotators.tolist()):
        old = index.get(a)
        conf[w] = default if old is None else init.confusion[old]
    return conf, init.class_prior


def _result(
    method: str, data: _Judgements, post: np.ndarray, labels_idx: np.ndarray, conf: np.ndarray, counts: np.ndarray,
    skill: np.ndarray, prior: np.ndarray, n_iter: int, converged: bool,
) -> ConsensusResult:  # fmt: skip
    return ConsensusResult(
        method=method,
        items=data.items,
        annotators=data.annotators,
        classes=data.classes,
        posteriors=post,
        labels=data.classes[labels_idx],
        confusion=conf,
        counts=counts,
        skill=skill,
        class_prior=prior,
        n_judgements=np.bincount(data.item, minlength=data.n_items),
        n_iter=n_iter,
        converged=converged,
    )


# ---------------------------------------------------------------------------------------------- methods
def majority_vote(
    items: Any, annotators: Any, labels: Any, *, classes: Sequence[Any] | None = None, seed: int = 0
) -> ConsensusResult:
    """Vote shares as posteriors; ties broken uniformly at random with ``seed``.

    ``skill`` is each annotator's agreement with the consensus, ``confusion`` the same agreement by class.

    >>> majority_vote([7, 7, 7], ["a", "b", "c"], [0, 1, 1]).labels.tolist()
    [1]
    """
    check_int(seed, "seed", "majority_vote", min=0)
    data = _judgements(items, annotators, labels, classes)
    votes = vote_counts(data.item, data.lab, data.n_items, data.n_classes)
    post = votes / votes.sum(axis=1, keepdims=True)
    lab = _argmax_random_ties(votes, np.random.default_rng(seed))
    onehot = np.eye(data.n_classes)[lab]
    counts = expected_counts(onehot, data.item, data.ann, data.lab, data.n_annotators, data.n_classes)
    conf = normalize_confusion(counts)
    skill = np.einsum("akk->a", counts) / counts.sum(axis=(1, 2))
    return _result("majority", data, post, lab, conf, counts, skill, post.mean(axis=0), 0, True)


def _ds(
    method: str,
    items: Any,
    annotators: Any,
    labels: Any,
    *,
    classes: Sequence[Any] | None,
    gold: Mapping[Any, Any] | None,
    prior_counts: Mapping[Any, Any] | None,
    init: ConsensusResult | None,
    max_iter: int,
    tol: float,
) -> ConsensusResult:
    owner = "dawid_skene" if method == "dawid-skene" else "one_coin_dawid_skene"
    check_int(max_iter, "max_iter", owner, min=1)
    check_float(tol, "tol", owner, low=0.0)
    data = _judgements(items, annotators, labels, classes)
    if method == "one-coin" and data.n_classes < 2:
        raise ConfigError("One-coin Dawid–Skene needs at least 2 classes. Pass 'classes' with every class.")
    votes = vote_counts(data.item, data.lab, data.n_items, data.n_classes)
    conf0, prior0 = _warm_start(init, data)
    post, conf, counts, prior, n_iter, converged = em(
        data.item,
        data.ann,
        data.lab,
        start=votes / votes.sum(axis=1, keepdims=True),
        n_annotators=data.n_annotators,
        n_observed=data.n_classes,
        one_coin=method == "one-coin",
        gold=_gold_matrix(gold, data),
        prior_counts=_prior_array(prior_counts, data),
        init_confusion=conf0,
        init_prior=prior0,
        max_iter=max_iter,
        tol=tol,
    )
    diag = np.einsum("akk->ak", conf)
    skill = diag[:, 0] if method == "one-coin" else diag @ prior
    return _result(method, data, post, post.argmax(axis=1), conf, counts, skill, prior, n_iter, converged)


def dawid_skene(
    items: Any,
    annotators: Any,
    labels: Any,
    *,
    classes: Sequence[Any] | None = None,
    gold: Mapping[Any, Any] | None = None,
    prior_counts: Mapping[Any, Any] | None = None,
    init: ConsensusResult | None = None,
    max_iter: int = 100,
    tol: float = 1e-7,
) -> ConsensusResult:
    """Dawid–Skene EM: one confusion matrix per annotator, a learned class prior.

    gold          item → true label; those items' posteriors are clamped to the answer after every E-step
    prior_counts  annotator → (n_classes, n_classes) counts [true, answer] added as Dirichlet pseudo-counts
    init          an earlier result to warm-start from (incremental update after new judgements)

    >>> res = dawid_skene([1, 1, 2, 2], ["a", "b", "a", "b"], [0, 1, 1, 1], gold={1: 0})
    >>> res.labels.tolist(), round(float(res.annotator_skill()["b"]), 2)
    ([0, 1], 0.5)
    """
    return _ds(
        "dawid-skene", items, annotators, labels, classes=classes, gold=gold, prior_counts=prior_counts,
        init=init, max_iter=max_iter, tol=tol,
    )  # fmt: skip


def one_coin_dawid_skene(
    items: Any,
    annotators: Any,
    labels: Any,
    *,
    classes: Sequence[Any] | None = None,
    gold: Mapping[Any, Any] | None = None,
    prior_counts: Mapping[Any, Any] | None = None,
    init: ConsensusResult | None = None,
    max_iter: int = 100,
    tol: float = 1e-7,
) -> ConsensusResult:
    """One-coin Dawid–Skene: each annotator is right with probability ``skill``, else wrong uniformly.

    Same arguments as :func:`dawid_skene`; for ``prior_counts`` only the diagonal (right) and the total count
    matter. Fewer parameters than full Dawid–Skene, so it needs fewer judgements per annotator.
    """
    return _ds(
        "one-coin", items, annotators, labels, classes=classes, gold=gold, prior_counts=prior_counts,
        init=init, max_iter=max_iter, tol=tol,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- objects
class MajorityVote:
    """Aggregator object for :func:`majority_vote` (same ``aggregate`` signature as the others)."""

    name = "majority"

    def __init__(self, *, seed: int = 0) -> None:
        self.seed = seed

    def aggregate(
        self,
        items: Any,
        annotators: Any,
        labels: Any,
        *,
        classes: Sequence[Any] | None = None,
        gold: Mapping[Any, Any] | None = None,
        prior_counts: Mapping[Any, Any] | None = None,
        init: ConsensusResult | None = None,
    ) -> ConsensusResult:
        """Majority vote (``gold``, ``prior_counts`` and ``init`` are accepted and not used)."""
        return majority_vote(items, annotators, labels, classes=classes, seed=self.seed)


class DawidSkene:
    """Aggregator object for :func:`dawid_skene`.

    >>> DawidSkene(max_iter=50).aggregate([1, 1, 1], ["a", "b", "c"], ["x", "x", "y"]).labels.tolist()
    ['x']
    """

    name = "dawid-skene"
    _fn = staticmethod(dawid_skene)

    def __init__(self, *, max_iter: int = 100, tol: float = 1e-7) -> None:
        self.max_iter = max_iter
        self.tol = tol

    def aggregate(
        self,
        items: Any,
        annotators: Any,
        labels: Any,
        *,
        classes: Sequence[Any] | None = None,
        gold: Mapping[Any, Any] | None = None,
        prior_counts: Mapping[Any, Any] | None = None,
        init: ConsensusResult | None = None,
    ) -> ConsensusResult:
        return type(self)._fn(
            items, annotators, labels, classes=classes, gold=gold, prior_counts=prior_counts, init=init,
            max_iter=self.max_iter, tol=self.tol,
        )  # fmt: skip


class OneCoinDawidSkene(DawidSkene):
    """Aggregator object for :func:`one_coin_dawid_skene`."""

    name = "one-coin"
    _fn = staticmethod(one_coin_dawid_skene)


METHODS = ("majority", "dawid-skene", "one-coin")


def make_aggregator(name: str, *, seed: int = 0) -> MajorityVote | DawidSkene:
    """``"majority"``, ``"dawid-skene"`` or ``"one-coin"`` → an aggregator object."""
    check_choice(name, "method", "make_aggregator", METHODS)
    if name == "majority":
        return MajorityVote(seed=seed)
    return DawidSkene() if name == "dawid-skene" else OneCoinDawidSkene()


# ---------------------------------------------------------------------------------------------- overlap
@dataclass(frozen=True)
class OverlapDecision:
    """Per item of a :class:`ConsensusResult`: ``more`` (ask again), ``review`` (expert), ``done`` (accept)."""

    items: np.ndarray
    more: np.ndarray
    review: np.ndarray
    done: np.ndarray


class DynamicOverlap:
    """Ask for another judgement only while the consensus is unsure (Toloka-style dynamic overlap).

    An item needs more while it has fewer than ``min_judgements``, or its consensus confidence is below
    ``target_confidence`` and it has fewer than ``max_judgements``. At the cap, an item still below the target
    is flagged for expert review rather than silently accepted. ``min_judgements`` defaults to 2: one answer
    alone cannot be checked against anyone, so its confidence is only the annotator's estimated skill.

    >>> policy = DynamicOverlap(target_confidence=0.9, max_judgements=3)
    >>> policy.needs_more([0.95, 0.6, 0.6], [2, 2, 3]).tolist()
    [False, True, False]
    >>> policy.needs_review([0.95, 0.6, 0.6], [2, 2, 3]).tolist()
    [False, False, True]
    """

    def __init__(self, *, target_confidence: float = 0.95, max_judgements: int = 5, min_judgements: int = 2) -> None:
        self.target_confidence = target_confidence
        self.max_judgements = max_judgements
        self.min_judgements = min_judgements

    def _check(self) -> None:
        check_float(self.target_confidence, "target_confidence", "DynamicOverlap", low=0.0, high=1.0)
        check_int(self.max_judgements, "max_judgements", "DynamicOverlap", min=1)
        check_int(self.min_judgements, "min_judgements", "DynamicOverlap", min=1)
        if self.min_judgements > self.max_judgements:
            raise ConfigError(
                "The 'min_judgements' parameter of DynamicOverlap must be <= 'max_judgements'. "
                f"Got {self.min_judgements} > {self.max_judgements}."
            )

    def needs_more(self, confidence: Any, n_judgements: Any) -> np.ndarray:
        self._check()
        conf = np.asarray(confidence, dtype=np.float64)
        n = np.asarray(n_judgements)
        unsure = conf < self.target_confidence
        return np.asarray((n < self.min_judgements) | (unsure & (n < self.max_judgements)))

    def needs_review(self, confidence: Any, n_judgements: Any) -> np.ndarray:
        self._check()
        conf = np.asarray(confidence, dtype=np.float64)
        n = np.asarray(n_judgements)
        return np.asarray((conf < self.target_confidence) & (n >= self.max_judgements))

    def decide(self, result: ConsensusResult) -> OverlapDecision:
        more = self.needs_more(result.confidence, result.n_judgements)
        review = self.needs_review(result.confidence, result.n_judgements)
        return OverlapDecision(items=result.items, more=more, review=review, done=~(more | review))


def crowd_aggregator(method: str = "dawid-skene", *, seed: int = 0) -> Any:
    """An ``aggregate`` callable for :class:`alloop.labeling.SimulatedCrowd` / providers: judgements
    ``[(record id, annotator id, label), …]`` → ``{record id: (consensus label, posterior)}``.

    >>> agg = crowd_aggregator("majority")
    >>> agg([(1, "a", "x"), (1, "b", "y"), (1, "c", "y")], ["x", "y"])
    {1: ('y', 0.6666666666666666)}
    """
    check_choice(method, "method", "crowd_aggregator", METHODS)
    methods: dict[str, Callable[..., ConsensusResult]] = {
        "majority": majority_vote,
        "dawid-skene": dawid_skene,
        "one-coin": one_coin_dawid_skene,
    }
    fn = methods[method]

    def aggregate(judgements: Sequence[tuple[Any, Any, Any]], classes: Sequence[Any]) -> dict[Any, tuple[Any, float]]:
        if not judgements:
            return {}
        items, annotators, labels = (list(col) for col in zip(*judgements, strict=True))
        kwargs: dict[str, Any] = {"classes": list(classes)}
        if method == "majority":
            kwargs["seed"] = seed
        res = fn(items, annotators, labels, **kwargs)
        out = {}
        for j, item in enumerate(res.items.tolist()):
            label = res.labels[j]
            label = label.item() if isinstance(label, np.generic) else label
            out[item] = (label, float(res.posteriors[j].max()))
        return out

    return aggregate
