"""Consensus: majority vote, Dawid–Skene, one-coin, gold, pseudo-counts, warm start, dynamic overlap."""

import warnings

import numpy as np
import pytest

from alloop.errors import ConfigError, DataError, LabelError
from alloop.labeling.consensus import (
    DynamicOverlap,
    add_counts,
    dawid_skene,
    majority_vote,
    make_aggregator,
    one_coin_dawid_skene,
)
from alloop.labeling.labelsim import draw_crowd


def crowd(seed=0, n=1000, k=5, a=10, r=3, lo=0.55, hi=0.95):
    d = draw_crowd(seed, n_items=n, n_classes=k, accuracy=np.linspace(lo, hi, a))
    items, anns, labs = d.judgements(r)
    return d.truth, items, anns, labs


def test_hand_made_example_ds_trusts_the_reliable_annotators():
    # "good1"/"good2" always agree with each other; "bad" contradicts them on every item but one.
    items, anns, labs = [], [], []
    truth = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]
    for i, t in enumerate(truth):
        for who, lab in (("good1", t), ("good2", t), ("bad", t if i == 0 else (t + 1) % 3)):
            items.append(f"item{i}")
            anns.append(who)
            labs.append(["a", "b", "c"][lab])
    res = dawid_skene(items, anns, labs)
    assert res.labels.tolist() == [["a", "b", "c"][truth[int(s[4:])]] for s in res.items.tolist()]
    skill = res.annotator_skill()
    assert skill["good1"] > 0.99 and skill["good2"] > 0.99 and skill["bad"] < 0.2
    # the bad annotator's confusion: true a -> says b, true b -> says c
    w = res.annotators.tolist().index("bad")
    assert res.confusion[w, 1, 2] > 0.99 and res.confusion[w, 2, 0] > 0.99
    assert np.allclose(res.confusion.sum(axis=2), 1.0) and np.allclose(res.posteriors.sum(axis=1), 1.0)


def test_majority_vote_shares_and_seeded_uniform_ties():
    res = majority_vote([1, 1, 1, 2, 2], ["a", "b", "c", "a", "b"], ["x", "x", "y", "x", "y"], seed=3)
    assert np.allclose(res.posteriors[0], [2 / 3, 1 / 3]) and res.labels[0] == "x"
    picks = {majority_vote([2, 2], ["a", "b"], ["x", "y"], seed=s).labels[0] for s in range(40)}
    assert picks == {"x", "y"}  # both tie outcomes occur across seeds
    again = [majority_vote([2, 2], ["a", "b"], ["x", "y"], seed=s).labels[0] for s in range(40)]
    assert again == [majority_vote([2, 2], ["a", "b"], ["x", "y"], seed=s).labels[0] for s in range(40)]


def test_ds_and_one_coin_beat_majority_vote_on_simulated_crowd():
    accs = {"mv": [], "ds": [], "oc": []}
    for seed in range(3):
        truth, items, anns, labs = crowd(seed)
        accs["mv"].append(np.mean(majority_vote(items, anns, labs, seed=seed).labels == truth))
        accs["ds"].append(np.mean(dawid_skene(items, anns, labs).labels == truth))
        accs["oc"].append(np.mean(one_coin_dawid_skene(items, anns, labs).labels == truth))
    mv, ds, oc = (float(np.mean(v)) for v in accs.values())
    assert ds > mv + 0.005 and oc > mv + 0.015, (mv, ds, oc)
    # the estimated skills rank the annotators like their true accuracies
    truth, items, anns, labs = crowd(0)
    skill = one_coin_dawid_skene(items, anns, labs).skill
    assert np.corrcoef(skill, np.linspace(0.55, 0.95, 10))[0, 1] > 0.95


def _crowdkit_frame(items, anns, labs):
    pd = pytest.importorskip("pandas")
    return pd.DataFrame({"task": items, "worker": anns, "label": labs})


@pytest.mark.parametrize("method", ["dawid-skene", "one-coin", "dawid-skene+gold"])
def test_posteriors_agree_with_crowdkit_at_full_convergence(method):
    ck = pytest.importorskip("crowdkit.aggregation")
    truth, items, anns, labs = crowd(0, n=150, k=3, a=5, r=4, lo=0.7)
    gold = {int(i): int(truth[i]) for i in range(0, 150, 10)} if method.endswith("gold") else None
    fn = one_coin_dawid_skene if method == "one-coin" else dawid_skene
    mine = fn(items, anns, labs, gold=gold, max_iter=10_000, tol=1e-12)
    assert mine.converged
    # crowd-kit stops when its ELBO stops rising, which can be early: run it a fixed number of iterations past ours
    cls = ck.OneCoinDawidSkene if method == "one-coin" else ck.DawidSkene
    model = cls(n_iter=mine.n_iter + 3, tol=-np.inf)
    df = _crowdkit_frame(items, anns, labs)
    with warnings.catch_warnings():  # crowd-kit uses pandas APIs that pandas 3 deprecates
        warnings.simplefilter("ignore")
        if gold is None:
            probas = model.fit_predict_proba(df)
        else:
            import pandas as pd

            probas = model.fit_predict_proba(df, pd.Series(gold))
    theirs = probas.sort_index()[[0, 1, 2]].to_numpy()
    assert np.abs(theirs - mine.posteriors).max() < 1e-4


def test_gold_clamps_posteriors_and_does_not_hurt():
    truth, items, anns, labs = crowd(1, n=400)
    gold = {i: int(truth[i]) for i in range(0, 400, 4)}
    res = dawid_skene(items, anns, labs, gold=gold)
    assert all(res.labels[i] == truth[i] and res.posteriors[i].max() == 1.0 for i in gold)
    free = np.array([i not in gold for i in range(400)])
    plain = dawid_skene(items, anns, labs)
    assert np.mean(res.labels[free] == truth[free]) >= np.mean(plain.labels[free] == truth[free]) - 0.01
    with pytest.raises(LabelError, match="Gold label 9"):
        dawid_skene(items, anns, labs, gold={0: 9}, classes=range(5))


def test_prior_counts_from_an_earlier_loop_help_a_small_later_loop():
    alone_acc, helped_acc = [], []
    for seed in range(5):
        truth, items, anns, labs = crowd(seed, n=1000)
        earlier = dawid_skene(items[:2400], anns[:2400], labs[:2400])  # loop 1: 800 items
        counts = add_counts(earlier.annotator_counts())
        late = slice(2400, None)  # loop 2: 200 items, few for 10 full confusion matrices alone
        alone = dawid_skene(items[late], anns[late], labs[late])
        helped = dawid_skene(items[late], anns[late], labs[late], prior_counts=counts)
        alone_acc.append(np.mean(alone.labels == truth[800:]))
        helped_acc.append(np.mean(helped.labels == truth[800:]))
    assert np.mean(helped_acc) > np.mean(alone_acc) + 0.005, (alone_acc, helped_acc)
    with pytest.raises(ConfigError, match="prior_counts"):
        dawid_skene(items, anns, labs, prior_counts={0: np.ones((2, 2))})
    summed = add_counts({"a": np.ones((2, 2))}, {"a": np.eye(2), "b": np.eye(2)})
    assert summed["a"].tolist() == [[2.0, 1.0], [1.0, 2.0]] and summed["b"].tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_warm_start_reaches_the_same_answer_in_fewer_iterations():
    truth, items, anns, labs = crowd(3, n=600)
    first = one_coin_dawid_skene(items[:-30], anns[:-30], labs[:-30], tol=1e-10, max_iter=5000)
    cold = one_coin_dawid_skene(items, anns, labs, tol=1e-10, max_iter=5000)
    warm = one_coin_dawid_skene(items, anns, labs, init=first, tol=1e-10, max_iter=5000)
    assert np.abs(cold.posteriors - warm.posteriors).max() < 1e-6
    assert warm.n_iter < cold.n_iter


def test_bad_input_is_reported():
    with pytest.raises(DataError, match="same length"):
        dawid_skene([1, 2], ["a"], [0, 1])
    with pytest.raises(DataError, match="no judgements"):
        majority_vote([], [], [])
    with pytest.raises(LabelError, match="'z' is not one of the classes"):
        dawid_skene([1], ["a"], ["z"], classes=["x", "y"])
    with pytest.raises(ConfigError, match="'method' parameter"):
        make_aggregator("median")
    with pytest.raises(ConfigError, match="max_iter"):
        dawid_skene([1], ["a"], [0], max_iter=0)


def test_dynamic_overlap_asks_again_until_sure_then_flags_review():
    policy = DynamicOverlap(target_confidence=0.9, max_judgements=4, min_judgements=2)
    res = dawid_skene([1, 1, 2, 2, 3, 3, 3, 3], list("abababcd"), [0, 0, 0, 1, 0, 1, 0, 1], classes=[0, 1])
    d = policy.decide(res)
    assert d.items.tolist() == [1, 2, 3]
    assert d.more.tolist()[1] and not d.review.tolist()[1]  # split 1-1: ask again
    assert d.review.tolist()[2] and not d.more.tolist()[2]  # split 2-2 at the cap: expert review
    assert (d.done == ~(d.more | d.review)).all()
    assert policy.needs_more([0.99], [1]).tolist() == [True]  # below min_judgements
    with pytest.raises(ConfigError, match="min_judgements"):
        DynamicOverlap(min_judgements=6, max_judgements=5).needs_more([0.5], [1])


def test_events_carry_label_source_and_posterior():
    res = one_coin_dawid_skene(["r1", "r1", "r1"], ["a", "b", "c"], ["cat", "cat", "dog"])
    (ev,) = res.events()
    assert (ev.id, ev.label, ev.source, ev.annotator) == ("r1", "cat", "human", "consensus:one-coin")
    assert ev.posterior == pytest.approx(res.posteriors[0].max())
    assert res.posterior_of("r1").shape == (2,)
