"""Control baselines against brute-force versions of their definitions."""

from __future__ import annotations

import numpy as np
import pytest

from alloop.errors import ConfigError
from alloop.strategies import SelectionContext, make_strategy
from alloop.strategies.control import class_balanced_order, stratified_order
from alloop.strategies.uncertainty import entropy_scores, margin_scores


def _ctx(probs, labels=(), seed=0):
    probs = np.asarray(probs, dtype=np.float64)
    n = len(probs)
    return SelectionContext(
        ids=np.arange(500, 500 + n), index=np.arange(n), probs=probs,
        labeled_ids=np.arange(len(labels)), labels=np.asarray(labels, dtype=np.int64),
        n_classes=probs.shape[1], seed=seed,
    )


def _brute_class_balanced(pred, inner, counts):
    counts = counts.copy()
    left = {c: sorted(np.flatnonzero(pred == c).tolist(), key=lambda i: (-inner[i], i)) for c in set(pred.tolist())}
    order = []
    while any(left.values()):
        c = min((c for c in left if left[c]), key=lambda c: (counts[c], c))
        order.append(left[c].pop(0))
        counts[c] += 1
    return order


def _brute_stratified(pred, inner):
    left = {c: sorted(np.flatnonzero(pred == c).tolist(), key=lambda i: (-inner[i], i)) for c in set(pred.tolist())}
    order = []
    while any(left.values()):
        heads = sorted((left[c][0] for c in left if left[c]), key=lambda i: (-inner[i], i))
        for i in heads:
            order.append(i)
            left[pred[i]].remove(i)
    return order


def test_sequential_is_pool_order():
    ctx = _ctx(np.full((6, 2), 0.5))
    assert make_strategy("sequential").select(ctx, 4).tolist() == [500, 501, 502, 503]


@pytest.mark.parametrize("seed", range(5))
def test_orders_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    pred = rng.integers(0, 4, size=60)
    inner = np.round(rng.random(60), 1)  # many ties
    counts = rng.integers(0, 6, size=4)
    assert stratified_order(pred, inner).tolist() == _brute_stratified(pred, inner)
    assert class_balanced_order(pred, inner, counts).tolist() == _brute_class_balanced(pred, inner, counts)


def test_stratified_predicted_round_robin_hand_example():
    probs = [[0.9, 0.1, 0.0], [0.55, 0.45, 0.0], [0.1, 0.5, 0.4], [0.2, 0.8, 0.0], [0.3, 0.1, 0.6]]
    ctx = _ctx(probs)
    m = margin_scores(np.array(probs))
    expected = _brute_stratified(np.argmax(probs, axis=1), m)
    assert make_strategy("stratified-predicted").select(ctx, 5).tolist() == [500 + i for i in expected]
    assert expected[:3] == [2, 1, 4]  # one per predicted class first; 0.5-0.4 < 0.55-0.45 in floating point
    ent = make_strategy("stratified-predicted(inner='entropy')").select(ctx, 5).tolist()
    assert ent == [500 + i for i in _brute_stratified(np.argmax(probs, axis=1), entropy_scores(np.array(probs)))]


def test_class_balanced_fills_the_least_labeled_class_first():
    probs = [[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.45, 0.55], [0.8, 0.2]]
    ctx = _ctx(probs, labels=[0, 0, 0, 1])  # class 0 has 3 labels, class 1 has 1
    # class 1 until it reaches 3 (rows 3 then 2, most uncertain first), then it runs out: class 0 by margin
    assert make_strategy("class-balanced").select(ctx, 5).tolist() == [503, 502, 501, 504, 500]


def test_rarest_class_hardest():
    probs = [[0.9, 0.1, 0.0], [0.6, 0.4, 0.0], [0.1, 0.2, 0.7], [0.3, 0.3, 0.4], [0.2, 0.7, 0.1]]
    ctx = _ctx(probs, labels=[0, 1, 1, 2, 2, 2])  # class 0 is rarest, then 1, then 2
    assert make_strategy("rarest-class-hardest").select(ctx, 5).tolist() == [501, 500, 504, 503, 502]
    # a class with no labels at all is the rarest
    ctx = _ctx(probs, labels=[0, 0, 1])
    assert make_strategy("rarest-class-hardest").select(ctx, 2).tolist() == [503, 502]


def test_inner_is_validated_at_first_use():
    strat = make_strategy("class-balanced(inner='bald')")
    with pytest.raises(ConfigError, match="The 'inner' parameter of ClassBalanced must be one of 'least-confidence'"):
        strat.score(_ctx([[0.5, 0.5]]))


def test_engine_builds_labels_for_class_balanced():
    from alloop import SelectionEngine, Snapshot

    eng = SelectionEngine(strategy="class-balanced", classes=["a", "b"])
    eng.add_records(np.arange(6))
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.45, 0.55], [0.8, 0.2], [0.7, 0.3]])
    eng.ingest(Snapshot(ids=np.arange(6), probs=probs))
    eng.observe_labels([5], ["a"])
    sel = eng.recommend(2)
    # 'b' has 0 labels, 'a' has 1: b's most uncertain first; then both are at 1 and the lower class wins
    assert sel.ids.tolist() == [3, 1]
