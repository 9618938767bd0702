"""The exact crowd simulation behind ``alloop label-sim`` (other tools compare numbers with it).

Protocol, per seed ``s`` in 0 … S−1, with ``rng = np.random.default_rng(s)`` drawn in this order:

1. annotator accuracies ``np.linspace(lo, hi, n_annotators)`` (fixed, not drawn);
2. true labels ``rng.integers(n_classes, size=n_items)`` (uniform over classes);
3. each item's annotator order ``np.argsort(rng.random((n_items, n_annotators)), axis=1)`` — a uniformly
   random permutation, so its first ``r`` entries are ``r`` distinct annotators drawn uniformly, and taking
   them one at a time draws uniformly among those who have not judged the item yet;
4. whether each (item, position) judgement is right: ``rng.random((n_items, n_annotators)) < accuracy``;
5. a wrong judgement's offset ``rng.integers(1, n_classes, size=(n_items, n_annotators))``: the answer is
   ``(truth + offset) % n_classes``, uniform over the other classes.

Static methods see the first ``redundancy`` judgements of every item (the same judgements for every method
of a seed, so methods are compared paired). ``dynamic`` asks in rounds: every item gets ``min_judgements``,
then each round every item whose consensus confidence is below ``target_confidence`` and that has fewer than
``redundancy`` (the cap) judgements gets its next one, and the consensus is refit on all judgements so far
(warm start). It aggregates with ``dynamic_aggregator`` — one-coin Dawid–Skene by default, the best static
method in ``benchmarks/labeling.py``. Majority-vote ties are broken with ``np.random.default_rng([s, 1])``.
Accuracy is the fraction of items whose consensus label equals the truth; ``judgements_mean`` is
judgements per item. :func:`tune_target_confidence` chooses dynamic overlap's target on tuning seeds (kept
apart from the reported ones) as the lowest that never loses, seed by seed, to fixed redundancy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from alloop._validation import check_choice, check_float, check_int
from alloop.errors import ConfigError
from alloop.labeling.consensus import METHODS, ConsensusResult, DynamicOverlap, make_aggregator

__all__ = [
    "ALL_METHODS",
    "CrowdDraw",
    "draw_crowd",
    "run_dynamic",
    "run_static",
    "simulate_labels",
    "tune_target_confidence",
]

ALL_METHODS = (*METHODS, "dynamic")


@dataclass(frozen=True)
class CrowdDraw:
    """One seed's draw: the truth and every item's full sequence of (annotator, answer)."""

    truth: np.ndarray  # (n_items,)
    order: np.ndarray  # (n_items, n_annotators) annotator judging at each position
    answers: np.ndarray  # (n_items, n_annotators) the answer that annotator gives
    accuracy: np.ndarray  # (n_annotators,)
    n_classes: int

    def judgements(self, n_per_item: np.ndarray | int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Long format (items, annotators, labels) of each item's first ``n_per_item`` judgements."""
        n_items, n_ann = self.order.shape
        counts = np.broadcast_to(np.asarray(n_per_item), (n_items,))
        mask = np.arange(n_ann)[None, :] < counts[:, None]
        rows = np.nonzero(mask)[0]
        return rows, self.order[mask], self.answers[mask]


def draw_crowd(seed: int, *, n_items: int, n_classes: int, accuracy: np.ndarray) -> CrowdDraw:
    """Draw one seed of the protocol in the module docstring."""
    rng = np.random.default_rng(seed)
    n_ann = accuracy.size
    truth = rng.integers(n_classes, size=n_items)
    order = np.argsort(rng.random((n_items, n_ann)), axis=1)
    right = rng.random((n_items, n_ann)) < accuracy[order]
    offset = rng.integers(1, n_classes, size=(n_items, n_ann)) if n_classes > 1 else np.zeros((n_items, n_ann), int)
    answers = np.where(right, truth[:, None], (truth[:, None] + offset) % n_classes)
    return CrowdDraw(truth=truth, order=order, answers=answers, accuracy=accuracy, n_classes=n_classes)


def _aggregate(method: str, draw: CrowdDraw, n_per_item: Any, seed: int, init: ConsensusResult | None = None):
    items, anns, labs = draw.judgements(n_per_item)
    agg = make_aggregator(method, seed=int(np.random.default_rng([seed, 1]).integers(2**31)))
    return agg.aggregate(items, anns, labs, classes=list(range(draw.n_classes)), init=init)


def run_static(method: str, draw: CrowdDraw, redundancy: int, seed: int) -> tuple[float, float]:
    """(accuracy, judgements per item) of a static method at fixed redundancy."""
    res = _aggregate(method, draw, redundancy, seed)
    acc = float(np.mean(res.labels[np.argsort(res.items)] == draw.truth))
    return acc, float(redundancy)


def run_dynamic(
    draw: CrowdDraw, policy: DynamicOverlap, seed: int, *, aggregator: str = "one-coin"
) -> tuple[float, float, float]:
    """(accuracy, judgements per item, fraction flagged for review) of dynamic overlap."""
    n_items = draw.truth.size
    counts = np.full(n_items, min(policy.min_judgements, policy.max_judgements))
    res: ConsensusResult | None = None
    while True:
        res = _aggregate(aggregator, draw, counts, seed, init=res)
        more = policy.needs_more(res.confidence, counts)  # items are 0..n-1 in order
        if not more.any():
            break
        counts = counts + more
    acc = float(np.mean(res.labels == draw.truth))
    review = float(np.mean(policy.needs_review(res.confidence, counts)))
    return acc, float(counts.mean()), review


def simulate_labels(
    *,
    items: int = 1000,
    classes: int = 5,
    annotators: int = 10,
    accuracy: tuple[float, float] = (0.55, 0.95),
    redundancy: int = 3,
    methods: Sequence[str] = ("majority", "dawid-skene", "one-coin", "dynamic"),
    target_confidence: float = 0.95,
    seeds: int = 20,
    dynamic_aggregator: str = "one-coin",
    min_judgements: int = 2,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, Any]:
    """Run the protocol of the module docstring; returns the JSON-ready dict of ``alloop label-sim``.

    >>> out = simulate_labels(items=50, annotators=5, seeds=2, methods=["majority", "dynamic"])
    >>> sorted(out["results"]), out["results"]["dynamic"]["aggregator"]
    (['dynamic', 'majority'], 'one-coin')
    """
    owner = "label-sim"
    check_int(items, "items", owner, min=1)
    check_int(classes, "classes", owner, min=2)
    check_int(annotators, "annotators", owner, min=1)
    check_int(redundancy, "redundancy", owner, min=1)
    check_int(seeds, "seeds", owner, min=1)
    check_float(target_confidence, "target_confidence", owner, low=0.0, high=1.0)
    check_choice(dynamic_aggregator, "dynamic_aggregator", owner, METHODS)
    lo, hi = (check_float(a, "accuracy", owner, low=0.0, high=1.0) for a in accuracy)
    if lo > hi:
        raise ConfigError(f"The 'accuracy' parameter of {owner} must be LO:HI with LO <= HI. Got {lo}:{hi}.")
    if redundancy > annotators:
        raise ConfigError(
            f"The 'redundancy' parameter of {owner} must be <= 'annotators' ({annotators}): each item is judged "
            f"by distinct annotators. Got {redundancy}."
        )
    methods = list(dict.fromkeys(methods))
    if not methods:
        raise ConfigError(f"The 'methods' parameter of {owner} must name at least one method of {ALL_METHODS}.")
    for m in methods:
        check_choice(m, "method", owner, ALL_METHODS)
    acc_levels = np.linspace(lo, hi, annotators)
    policy = DynamicOverlap(
        target_confidence=target_confidence, max_judgements=redundancy, min_judgements=min(min_judgements, redundancy)
    )
    per: dict[str, dict[str, list[float]]] = {m: {"acc": [], "judg": [], "review": []} for m in methods}
    for seed in range(seeds):
        draw = draw_crowd(seed, n_items=items, n_classes=classes, accuracy=acc_levels)
        for m in methods:
            if m == "dynamic":
                a, j, r = run_dynamic(draw, policy, seed, aggregator=dynamic_aggregator)
                per[m]["review"].append(r)
            else:
                a, j = run_static(m, draw, redundancy, seed)
            per[m]["acc"].append(a)
            per[m]["judg"].append(j)
            if progress is not None:
                progress(m, seed)
    results: dict[str, dict[str, Any]] = {}
    for m in methods:
        accs = np.asarray(per[m]["acc"])
        entry: dict[str, Any] = {
            "accuracy_mean": float(accs.mean()),
            "accuracy_std": float(accs.std()),
            "judgements_mean": float(np.mean(per[m]["judg"])),
            "accuracy_per_seed": accs.tolist(),
        }
        if m == "dynamic":
            entry["aggregator"] = dynamic_aggregator
            entry["review_fraction_mean"] = float(np.mean(per[m]["review"]))
        results[m] = entry
    protocol = {
        "items": items,
        "classes": classes,
        "annotators": annotators,
        "accuracy": [lo, hi],
        "annotator_accuracies": acc_levels.tolist(),
        "redundancy": redundancy,
        "methods": methods,
        "target_confidence": target_confidence,
        "seeds": seeds,
        "dynamic_aggregator": dynamic_aggregator,
        "dynamic_min_judgements": policy.min_judgements,
        "accuracy_std": "population std over seeds (ddof=0)",
    }
    return {"protocol": protocol, "results": results}


def tune_target_confidence(
    *,
    seeds: Sequence[int],
    grid: Sequence[float] = (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95),
    items: int = 1000,
    classes: int = 5,
    annotators: int = 10,
    accuracy: tuple[float, float] = (0.55, 0.95),
    cap: int = 5,
    compare_redundancy: int = 3,
    aggregator: str = "one-coin",
    min_judgements: int = 2,
) -> dict[str, Any]:
    """Choose dynamic overlap's ``target_confidence`` on tuning seeds (keep them apart from the reported ones).

    The chosen target is the lowest on ``grid`` (fewest judgements) whose accuracy, paired seed by seed with the
    same aggregator at fixed ``compare_redundancy``, is at least as high on *every* tuning seed. Returns
    ``{"chosen": target or None, "rows": [{"target", "accuracy_mean", "judgements_mean", "diff_mean",
    "diff_min"}, …], "static_accuracy_mean": …}``.

    >>> out = tune_target_confidence(seeds=[100], grid=[0.7, 0.9], items=200, cap=5)
    >>> [r["target"] for r in out["rows"]], out["chosen"] in (0.7, 0.9, None)
    ([0.7, 0.9], True)
    """
    owner = "tune_target_confidence"
    check_int(cap, "cap", owner, min=1)
    check_int(compare_redundancy, "compare_redundancy", owner, min=1)
    check_choice(aggregator, "aggregator", owner, METHODS)
    if not seeds or not grid:
        raise ConfigError(f"The 'seeds' and 'grid' parameters of {owner} must each hold at least one value.")
    targets = sorted(check_float(t, "grid", owner, low=0.0, high=1.0) for t in grid)
    acc_levels = np.linspace(accuracy[0], accuracy[1], annotators)
    draws = [(s, draw_crowd(s, n_items=items, n_classes=classes, accuracy=acc_levels)) for s in seeds]
    static = np.asarray([run_static(aggregator, d, compare_redundancy, s)[0] for s, d in draws])
    rows = []
    chosen = None
    for t in targets:
        policy = DynamicOverlap(target_confidence=t, max_judgements=cap, min_judgements=min(min_judgements, cap))
        runs = [run_dynamic(d, policy, s, aggregator=aggregator) for s, d in draws]
        acc = np.asarray([r[0] for r in runs])
        diff = acc - static
        rows.append(
            {
                "target": t,
                "accuracy_mean": float(acc.mean()),
                "judgements_mean": float(np.mean([r[1] for r in runs])),
                "diff_mean": float(diff.mean()),
                "diff_min": float(diff.min()),
            }
        )
        if chosen is None and diff.min() >= 0.0:
            chosen = t
    return {"chosen": chosen, "rows": rows, "static_accuracy_mean": float(static.mean()), "seeds": list(seeds)}
