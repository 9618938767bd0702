"""Per-record features for the learned selector: History + the current loop, as one float matrix.

Each feature is a small pure function of a :class:`~alloop.strategies.SelectionContext` registered in
:data:`FEATURES` under its name; :func:`record_features` stacks the ones asked for into an ``(n, F)``
matrix. A selector stores the names it was trained on, so adding a feature later (for example a new
History time-series statistic) never breaks a shipped selector: unknown History keys read as 0.

>>> import numpy as np
>>> from alloop.strategies import SelectionContext
>>> ctx = SelectionContext(ids=np.arange(3), index=np.arange(3),
...                        probs=np.array([[0.9, 0.1], [0.5, 0.5], [0.6, 0.4]]), n_classes=2)
>>> record_features(ctx, ["uncertainty_margin", "labeled_fraction"]).round(2).tolist()
[[0.2, 0.0], [1.0, 0.0], [0.8, 0.0]]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from alloop.strategies import SelectionContext

__all__ = ["DEFAULT_FEATURES", "EPISODE_FEATURES", "FEATURES", "feature", "record_features"]

FeatureFn = Callable[[SelectionContext, dict[str, np.ndarray]], np.ndarray]
#: name -> function(ctx, cache) returning one float per candidate
FEATURES: dict[str, FeatureFn] = {}

_REF = 256  # reference records for density / scale estimates (evenly spaced, no randomness)
_KNN = 10


def feature(name: str) -> Callable[[FeatureFn], FeatureFn]:
    """Register a feature function under ``name`` (later registrations replace earlier ones)."""

    def deco(fn: FeatureFn) -> FeatureFn:
        FEATURES[name] = fn
        return fn

    return deco


def _probs(ctx: SelectionContext, cache: dict[str, np.ndarray]) -> np.ndarray:
    if "probs" not in cache:
        if ctx.probs is None:
            cache["probs"] = np.full((ctx.n, max(ctx.n_classes or 2, 2)), 1.0 / max(ctx.n_classes or 2, 2))
        else:
            cache["probs"] = np.asarray(ctx.probs, dtype=np.float64)
    return cache["probs"]


def _sorted_top2(ctx: SelectionContext, cache: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    if "top1" not in cache:
        p = _probs(ctx, cache)
        if p.shape[1] == 1:
            cache["top1"], cache["top2"] = p[:, 0], np.zeros(p.shape[0])
        else:
            part = np.partition(p, p.shape[1] - 2, axis=1)
            cache["top1"], cache["top2"] = part[:, -1], part[:, -2]
    return cache["top1"], cache["top2"]


def _hist(ctx: SelectionContext, key: str, default: np.ndarray | float = 0.0) -> np.ndarray:
    if ctx.history is not None and key in ctx.history:
        return np.asarray(ctx.history[key], dtype=np.float64)
    return np.broadcast_to(np.asarray(default, dtype=np.float64), (ctx.n,)).copy()


def _pct_rank(x: np.ndarray) -> np.ndarray:
    """Percentile rank in [0, 1] (ties share the mean rank); 0.5 for a single record."""
    if x.size <= 1:
        return np.full(x.size, 0.5)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(x.size)
    ranks[order] = np.arange(x.size)
    # average ties so that equal values get equal features
    _, inv, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    return (sums / counts)[inv] / (x.size - 1)


@feature("uncertainty_margin")
def _f_margin(ctx: SelectionContext, cache: dict[str, np.ndarray]) -> np.ndarray:
    top1, top2 = _sorted_top2(ctx, cache)
    return 1.0 - (top1 - top2)


@feature("uncertainty_margin_rank")
def _f_margin_rank(ctx: SelectionContext, cache: dict[str, np.ndarray]) -> np.ndarray:
    return _pct_rank(_f_margin(ctx, cache))


@feature("entropy_norm")
def _f_entropy(ctx: SelectionContext, cache: dict[str, np.ndarray]) -> np.ndarray:
    p = _probs(ctx, cache)
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=1)
    return ent / np.log(max(p.shape[1], 2))


@feature("least_confidence")
def _f_lc(ctx: SelectionContext, cache: dict[str, np.ndarray]) -> np.ndarray:
    top1, _ = _sorted_top2(ctx, cache)
    return 1.0 - top1


@feature("hist_margin_mean")
def _f_hist_margin(ctx: SelectionContext, cache: dict[str, np.ndarray]) -> np.ndarray:
    return 1.0 - _hist(ctx, "margin_mean", 1.0 - _f_margin(ctx, cache))


@feature("hist_margin_std")
def _f_hist_margin_std(ctx: SelectionContext, cache: dict[str, np.ndarray]) -> np.ndarray:
    return np.sqrt(np.maximum(_hist(ctx, "margin_var"), 0.0))


@feature("hist_confidence_std")
def _f_hist_conf_std(ctx: SelectionContext, cache: dict[str, np.ndarray]) -> np.ndarray:
    return np.sqrt(np.maximum(_hist(ctx, "confidence_var"), 0.0))


@feature("flip_rate")
def _f_flip_rate(ctx: SelectionContext, cache: dict[str, np.ndarray]) -> np.ndarray:
    count = _hist(ctx, "count", 1.0)
    return _hist(ctx, "flips") / np.maximum(count - 1.0, 1.0)


@feature("recent_flip")
def _f_recent_flip(ctx: SelectionContext, cache: dict[str, np.ndarray]) -> np.ndarray:
    last = _hist(ctx, "last_flip_loop", -1.0)
    return np.where(last >= 0, 1.0 / (1.0 + np.maximum(ctx.loop - last, 0.0)), 0.0)


@feature("predicted_class_share")
def _f_pred_share(ctx: SelectionContext, cache: dict[str, np.ndarray]) -> np.ndarray:
    p = _probs(ctx, cache)
    pred = np.argmax(p, axis=1)
    share = np.bincount(pred, minlength=p.shape[1]) / max(pred.size, 1)
    return share[pred]


@feature("labeled_class_share")
def _f_lab_share(ctx: SelectionContext, cache: dict[str, np.ndarray]) -> np.ndarray:
    p = _probs(ctx, cache)
    pred = np.argmax(p, axis=1)
    labels = np.asarray(ctx.labels, dtype=np.int64)
    labels = labels[(labels >= 0) & (labels < p.shape[1])]
    if labels.size == 0:
        return np.full(ctx.n, 1.0 / p.shape[1])
    share = np.bincount(labels, minlength=p.shape[1]) / labels.size
    return share[pred]


def _space(ctx: SelectionContext, cache: dict[str, np.ndarray]) -> np.ndarray:
    """The space density is measured in: embeddings when shared, else the probability simplex."""
    if "space" not in cache:
        x = ctx.embeddings if ctx.embeddings is not None else _probs(ctx, cache)
        cache["space"] = np.asarray(x, dtype=np.float64)
    return cache["space"]


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def _ref_rows(n: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, _REF)).round().astype(np.int64)) if n else np.empty(0, np.int64)


@feature("density")
def _f_density(ctx: SelectionContext, cache: dict[str, np.ndarray]) -> np.ndarray:
    """exp(−mean squared distance to the 10 nearest reference records / median squared distance)."""
    x = _space(ctx, cache)
    if ctx.n < 2:
        return np.ones(ctx.n)
    ref = x[_ref_rows(ctx.n)]
    d = _sq_dists(x, ref)
    kk = min(_KNN, ref.shape[0])
    near = np.partition(d, kk - 1, axis=1)[:, :kk].mean(axis=1)
    scale = float(np.median(d)) or 1.0
    cache["scale"] = np.array(scale)
    return np.exp(-near / scale)


@feature("distance_to_labeled")
def _f_dist_lab(ctx: SelectionContext, cache: dict[str, np.ndarray]) -> np.ndarray:
    """Distance to the nearest labeled record (embeddings only; 0 without them), over the median distance."""
    if ctx.embeddings is None or ctx.labeled_embeddings is None or len(ctx.labeled_embeddings) == 0:
        return np.zeros(ctx.n)
    x = _space(ctx, cache)
    if "scale" not in cache:
        _f_density(ctx, cache)
    scale = float(cache["scale"]) if "scale" in cache else 1.0
    lab = np.asarray(ctx.labeled_embeddings, dtype=np.float64)
    d = np.empty(ctx.n)
    for start in range(0, ctx.n, 4096):
        d[start : start + 4096] = _sq_dists(x[start : start + 4096], lab).min(axis=1)
    return np.sqrt(d / scale)


@feature("has_embeddings")
def _f_has_emb(ctx: SelectionContext, cache: dict[str, np.ndarray]) -> np.ndarray:
    return np.full(ctx.n, 1.0 if ctx.embeddings is not None else 0.0)


@feature("loop")
def _f_loop(ctx: SelectionContext, cache: dict[str, np.ndarray]) -> np.ndarray:
    return np.full(ctx.n, np.log1p(max(ctx.loop, 0)) / np.log(100.0))


@feature("labeled_fraction")
def _f_lab_frac(ctx: SelectionContext, cache: dict[str, np.ndarray]) -> np.ndarray:
    m = int(np.asarray(ctx.labeled_ids).size)
    return np.full(ctx.n, m / max(m + ctx.n, 1))


@feature("labels_per_class")
def _f_lab_per_class(ctx: SelectionContext, cache: dict[str, np.ndarray]) -> np.ndarray:
    c = _probs(ctx, cache).shape[1]
    m = int(np.asarray(ctx.labeled_ids).size)
    return np.full(ctx.n, np.log1p(m / max(c, 1)) / np.log(100.0))


# Percentile ranks among the candidates: the same distribution whatever the model's probability scale (a
# random forest's coarse votes vs a logistic regression's smooth probabilities), so a selector trained on one
# model class transfers to another.
def _ranked(fn: FeatureFn) -> FeatureFn:
    def rank(ctx: SelectionContext, cache: dict[str, np.ndarray]) -> np.ndarray:
        return _pct_rank(fn(ctx, cache))

    return rank


for _name, _fn in (
    ("entropy_rank", _f_entropy),
    ("density_rank", _f_density),
    ("hist_margin_std_rank", _f_hist_margin_std),
    ("hist_margin_mean_rank", _f_hist_margin),
):
    feature(_name)(_ranked(_fn))


@feature("distance_to_labeled_rank")
def _f_dist_lab_rank(ctx: SelectionContext, cache: dict[str, np.ndarray]) -> np.ndarray:
    """Percentile of the distance to the labeled set (0.5 for every record without embeddings)."""
    if ctx.embeddings is None or ctx.labeled_embeddings is None or len(ctx.labeled_embeddings) == 0:
        return np.full(ctx.n, 0.5)
    return _pct_rank(_f_dist_lab(ctx, cache))


#: the features the shipped selector uses, in order: percentile ranks among the candidates wherever a raw value
#: depends on the model's probability scale, plus the loop context
DEFAULT_FEATURES: tuple[str, ...] = (
    "uncertainty_margin_rank",
    "entropy_rank",
    "hist_margin_mean_rank",
    "hist_margin_std_rank",
    "flip_rate",
    "recent_flip",
    "predicted_class_share",
    "labeled_class_share",
    "density_rank",
    "distance_to_labeled_rank",
    "has_embeddings",
    "loop",
    "labeled_fraction",
    "labels_per_class",
)

#: every feature a simulated campaign records, in this order (a fit chooses among them by name; the order is
#: part of the episode cache format "e2": append new names, never reorder)
EPISODE_FEATURES: tuple[str, ...] = (
    "uncertainty_margin",
    "uncertainty_margin_rank",
    "entropy_norm",
    "least_confidence",
    "hist_margin_mean",
    "hist_margin_std",
    "hist_confidence_std",
    "flip_rate",
    "recent_flip",
    "predicted_class_share",
    "labeled_class_share",
    "density",
    "distance_to_labeled",
    "has_embeddings",
    "loop",
    "labeled_fraction",
    "labels_per_class",
    "entropy_rank",
    "density_rank",
    "distance_to_labeled_rank",
    "hist_margin_std_rank",
    "hist_margin_mean_rank",
)


def record_features(ctx: SelectionContext, names: Sequence[str] = DEFAULT_FEATURES) -> np.ndarray:
    """``(n, F)`` float64 features of the candidates in ``ctx`` (unknown names read as 0)."""
    cache: dict[str, np.ndarray] = {}
    out = np.zeros((ctx.n, len(names)))
    for j, name in enumerate(names):
        fn = FEATURES.get(name)
        if fn is not None and ctx.n:
            out[:, j] = fn(ctx, cache)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
