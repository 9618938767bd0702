"""Weak supervision: labeling functions, label matrix, LF analysis, label model, weak label events."""

import numpy as np
import pytest

from alloop.errors import ConfigError, DataError, StateError
from alloop.labeling.weak import (
    ABSTAIN,
    LabelModel,
    apply_lfs,
    label_coverage,
    labeling_function,
    lf_analysis,
    lf_duplicates,
    weak_label_events,
)


def test_decorator_both_forms_and_apply():
    @labeling_function
    def has_x(r):
        return 1 if "x" in r else ABSTAIN

    @labeling_function(name="short")
    def short(r):
        return 0 if len(r) < 3 else ABSTAIN

    assert has_x.name == "has_x" and short.name == "short"
    L = apply_lfs([has_x, short, lambda r: 2], ["x", "abcd", "xyz"])
    assert L.dtype == np.int64 and L.tolist() == [[1, 0, 2], [-1, -1, 2], [1, -1, 2]]

    @labeling_function
    def broken(r):
        return "yes"

    with pytest.raises(DataError, match="'broken' must return a class index"):
        apply_lfs([broken], ["a"])
    with pytest.raises(ConfigError):
        apply_lfs([], ["a"])


def test_lf_analysis_counts_coverage_overlap_conflict_and_accuracy():
    L = np.array([[0, 0, -1], [0, 1, -1], [-1, 1, 1], [-1, -1, -1], [1, -1, -1]])
    y = np.array([0, 1, 1, 0, -1])  # the last record has no gold
    s = lf_analysis(L, y=y, names=["a", "b", "c"])
    assert [x.name for x in s] == ["a", "b", "c"]
    assert [x.coverage for x in s] == [0.6, 0.6, 0.2]
    assert [x.overlap for x in s] == [0.4, 0.6, 0.2]
    assert [x.conflict for x in s] == [0.2, 0.2, 0.0]
    assert (s[0].correct, s[0].incorrect, s[0].accuracy) == (1, 1, 0.5)  # record 4 has no gold: not counted
    assert (s[1].correct, s[1].incorrect, s[1].accuracy) == (3, 0, 1.0)
    assert s[0].polarity == (0, 1) and s[2].polarity == (1,)
    assert label_coverage(L) == 0.8
    assert lf_analysis(L)[0].accuracy is None
    with pytest.raises(DataError, match="2-D integer"):
        lf_analysis(np.array([0.5, 1.0]))


def _weak_data(seed, n=2000):
    """Three classes; LFs with different accuracies and coverage, some voting only one class."""
    rng = np.random.default_rng(seed)
    y = rng.integers(3, size=n)
    specs = [(0.9, 0.5, None), (0.85, 0.6, None), (0.6, 0.9, None), (0.55, 0.9, None), (0.9, 0.7, 0), (0.9, 0.7, 2)]
    cols = []
    for acc, cov, only in specs:
        vote = np.where(rng.random(n) < acc, y, (y + rng.integers(1, 3, size=n)) % 3)
        fires = rng.random(n) < cov
        if only is not None:  # a one-polarity LF fires mostly when its class is true
            vote = np.full(n, only)
            fires &= np.where(y == only, True, rng.random(n) < 0.1)
        cols.append(np.where(fires, vote, ABSTAIN))
    return np.stack(cols, axis=1), y


def test_label_model_beats_majority_of_lfs_and_learns_their_accuracy():
    L, y = _weak_data(0)
    model = LabelModel(n_classes=3).fit(L)
    pred = model.predict(L)
    covered = (L != ABSTAIN).any(axis=1)
    votes = np.stack([(L == k).sum(axis=1) for k in range(3)], axis=1)
    mv = votes.argmax(axis=1)
    acc_model = np.mean(pred[covered] == y[covered])
    acc_mv = np.mean(mv[covered] == y[covered])
    assert acc_model > acc_mv + 0.02, (acc_model, acc_mv)
    est = model.lf_accuracy()
    emp = np.array([s.accuracy for s in lf_analysis(L, y=y)])
    assert np.abs(est - emp).max() < 0.05, (est, emp)
    probs = model.predict_proba(L)
    assert probs.shape == (len(y), 3) and np.allclose(probs.sum(axis=1), 1.0)
    assert (pred[~covered] == ABSTAIN).all()


def test_label_model_errors():
    with pytest.raises(StateError, match="fit"):
        LabelModel(n_classes=2).predict_proba(np.zeros((2, 2), dtype=int))
    with pytest.raises(DataError, match="n_classes"):
        LabelModel(n_classes=2).fit(np.array([[0, 2]]))
    with pytest.raises(ConfigError, match="n_classes"):
        LabelModel(n_classes=1).fit(np.array([[0, 0]]))


def test_weak_label_events_keep_only_confident_records():
    ev = weak_label_events([10, 11, 12], [[0.1, 0.9], [0.6, 0.4], [0.97, 0.03]], threshold=0.85)
    assert [(e.id, e.label, e.source, e.annotator) for e in ev] == [
        (10, 1, "weak", "label-model"),
        (12, 0, "weak", "label-model"),
    ]
    assert ev[1].posterior == pytest.approx(0.97)
    with pytest.raises(DataError):
        weak_label_events([1], [[0.5, 0.5], [0.5, 0.5]])


def _with_copies(seed, copies, flip=0.0, n=2000):
    """Three good independent LFs and one poor LF (accuracy 0.55, coverage 0.95) plus ``copies`` of it."""
    rng = np.random.default_rng(seed)
    y = rng.integers(3, size=n)
    cols = []
    for acc, cov in [(0.85, 0.8), (0.85, 0.8), (0.8, 0.8), (0.55, 0.95)]:
        vote = np.where(rng.random(n) < acc, y, (y + rng.integers(1, 3, size=n)) % 3)
        cols.append(np.where(rng.random(n) < cov, vote, ABSTAIN))
    for _ in range(copies):  # a copy that, with probability ``flip``, votes another class where the LF voted
        noisy = np.where(rng.random(n) < flip, (cols[3] + rng.integers(1, 3, size=n)) % 3, cols[3])
        cols.append(np.where(cols[3] == ABSTAIN, ABSTAIN, noisy))
    return np.stack(cols, axis=1), y


def test_duplicated_lfs_dominate_an_independent_model_but_not_the_default_one():
    L, y = _with_copies(0, copies=4)
    base = LabelModel(n_classes=3).fit(L[:, :4])
    naive = LabelModel(n_classes=3, correlations="independent").fit(L)
    aware = LabelModel(n_classes=3).fit(L)
    acc = {name: np.mean(m.predict(X) == y) for name, m, X in [("base", base, L[:, :4]), ("naive", naive, L),
                                                                ("aware", aware, L)]}  # fmt: skip
    assert acc["naive"] < acc["base"] - 0.2, acc  # five votes of the poor LF outvote three good ones
    assert aware.groups_ == [(0,), (1,), (2,), (3, 4, 5, 6, 7)]
    assert aware.weights_.tolist() == [1.0, 1.0, 1.0] + [0.2] * 5
    # exact copies sharing one vote give exactly the model without the copies
    assert np.allclose(aware.predict_proba(L), base.predict_proba(L[:, :4]), atol=1e-6)
    assert naive.lf_accuracy()[3] > 0.8 > 0.65 > aware.lf_accuracy()[3]  # the naive model believes the copies


def test_near_duplicates_are_grouped_and_independent_lfs_are_not():
    L, y = _with_copies(1, copies=3, flip=0.03)
    aware = LabelModel(n_classes=3).fit(L)
    assert aware.groups_ == [(0,), (1,), (2,), (3, 4, 5, 6)]
    base = LabelModel(n_classes=3).fit(L[:, :4])
    assert abs(np.mean(aware.predict(L) == y) - np.mean(base.predict(L[:, :4]) == y)) < 0.01
    L2, _ = _weak_data(0)
    assert lf_duplicates(L2) == [(j,) for j in range(L2.shape[1])]
    assert lf_duplicates(L, threshold=0.99) == [(0,), (1,), (2,), (3,), (4,), (5,), (6,)]
    with pytest.raises(ConfigError, match="'correlations'"):
        LabelModel(n_classes=3, correlations="snorkel").fit(L)
