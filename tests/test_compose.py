"""Composition: functions as strategies and the combinators, checked against hand-computed selections."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import rankdata

from alloop import SelectionEngine, Snapshot
from alloop.errors import ConfigError
from alloop.strategies import SelectionContext, Strategy, all_strategies, make_strategy, margin_scores, top_k
from alloop.strategies.compose import (
    Exclude,
    PerClassQuota,
    Product,
    Schedule,
    TwoStage,
    WeightedSum,
    as_strategy,
    rank_normalise,
    subset_context,
)
from alloop.testing import check_strategy, conformance_context


# A registered function strategy: discovery finds it, so the conformance suite checks it too.
@as_strategy(name="test-compose-low-top-prob", needs={"probs"})
def low_top_prob(ctx: SelectionContext, *, power: float = 1.0) -> np.ndarray:
    """Lowest top-class probability first (a least-confidence variant for tests)."""
    return -(ctx.probs.max(axis=1) ** power)


@as_strategy(name="test-compose-every-other", register=False)
def every_other(ctx: SelectionContext, k: int) -> np.ndarray:
    """Every other candidate, in pool order."""
    return ctx.ids[::2][:k]


def _ctx(probs, ids=None, **kw) -> SelectionContext:
    probs = np.asarray(probs, dtype=np.float64)
    n = probs.shape[0]
    ids = np.arange(100, 100 + n) if ids is None else np.asarray(ids)
    return SelectionContext(ids=ids, index=np.arange(n), probs=probs, n_classes=probs.shape[1], **kw)


P = np.array(
    [
        [0.50, 0.45, 0.05],  # margin 0.05, entropy high
        [0.90, 0.05, 0.05],
        [0.34, 0.33, 0.33],  # margin 0.01, entropy highest
        [0.60, 0.20, 0.20],
        [0.10, 0.80, 0.10],
        [0.40, 0.30, 0.30],
    ]
)


# ---- functions as strategies --------------------------------------------------------------------------
def test_score_function_becomes_a_registered_strategy_class():
    cls = low_top_prob
    assert isinstance(cls, type) and issubclass(cls, Strategy)
    assert all_strategies()["test-compose-low-top-prob"] is cls
    assert cls.needs == frozenset({"probs"}) and cls.family == "custom" and cls.batch_aware is False
    assert cls.describe() == "Lowest top-class probability first (a least-confidence variant for tests)."
    assert cls._param_names() == ["power"]
    s = make_strategy("test-compose-low-top-prob(power=2.0)")
    assert isinstance(s, cls) and s.power == 2.0 and s.spec == "test-compose-low-top-prob(power=2.0)"
    ctx = _ctx(P)
    np.testing.assert_array_equal(s.score(ctx), -(P.max(axis=1) ** 2))
    assert s.select(ctx, 2).tolist() == [102, 105]
    check_strategy(cls)


def test_select_function_is_batch_aware_and_its_score_is_its_order():
    s = every_other()
    assert type(s).batch_aware is True and s.name not in all_strategies()  # register=False
    ctx = _ctx(P)
    assert s.select(ctx, 2).tolist() == [100, 102]
    assert s.select(ctx, 50).tolist() == [100, 102, 104]  # k is capped at n before the call
    np.testing.assert_array_equal(s.score(ctx), [6, np.nan, 5, np.nan, 4, np.nan])


def test_function_strategies_work_in_the_engine_by_class_and_by_name():
    engine = SelectionEngine(low_top_prob, classes=[0, 1, 2])
    engine.add_records(list(range(6)))
    engine.ingest(Snapshot(ids=list(range(6)), probs=P))
    assert engine.recommend(2).ids.tolist() == [2, 5]
    assert engine.recommend(1, strategy="test-compose-low-top-prob").strategy == "test-compose-low-top-prob"
    engine.strategy = every_other()
    assert engine.recommend(2).ids.tolist() == [0, 2]


def test_bad_functions_and_decorator_arguments_are_config_errors():
    with pytest.raises(ConfigError, match="takes \\(ctx\\) and returns scores, or \\(ctx, k\\)"):
        as_strategy(name="x-bad", register=False)(lambda ctx, k, extra: None)
    with pytest.raises(ConfigError, match="need defaults"):

        @as_strategy(name="x-bad", register=False)
        def no_default(ctx, *, beta):  # noqa: ANN001, ANN202
            return ctx.probs[:, 0]

    with pytest.raises(ConfigError, match="'name' parameter of as_strategy must be a kebab-case name"):
        as_strategy(name="My Strategy")
    with pytest.raises(ConfigError, match="'needs' parameter of as_strategy must be a subset"):
        as_strategy(name="x-bad", needs={"gradients"})

    @as_strategy(name="x-wrong-shape", register=False)
    def wrong_shape(ctx):  # noqa: ANN001, ANN202
        return np.zeros(3)

    with pytest.raises(ConfigError, match="must return one score per candidate, shape \\(6,\\); got \\(3,\\)"):
        wrong_shape().score(_ctx(P))

    @as_strategy(name="x-positions", register=False)
    def positions(ctx, k):  # noqa: ANN001, ANN202
        return np.arange(k)

    with pytest.raises(ConfigError, match="must return a 1-D array of candidate ids"):
        positions().select(_ctx(P), 2)


# ---- helpers ----------------------------------------------------------------------------------------------
def test_rank_normalise_matches_scipy_average_ranks():
    s = np.array([3.0, 1.0, 3.0, 7.0, np.nan, -2.0])
    finite = ~np.isnan(s)
    expected = np.zeros(6)
    expected[finite] = rankdata(s[finite], method="average") / 6
    np.testing.assert_allclose(rank_normalise(s), expected)
    np.testing.assert_allclose(rank_normalise(s), [3.5 / 6, 2 / 6, 3.5 / 6, 5 / 6, 0.0, 1 / 6])


def test_subset_context_keeps_pool_order_and_copies():
    ctx = conformance_context(10, seed=1)
    sub = subset_context(ctx, np.array([7, 2, 4]))
    assert sub.ids.tolist() == ctx.ids[[2, 4, 7]].tolist()
    np.testing.assert_array_equal(sub.samples, ctx.samples[:, [2, 4, 7]])
    assert set(sub.history) == set(ctx.history) and sub.history["flips"].shape == (3,)
    sub.probs[0, 0] = -1.0
    assert ctx.probs[2, 0] != -1.0


# ---- combinators against hand-computed results ------------------------------------------------------
def test_weighted_sum_is_a_weighted_sum_of_ranks():
    ctx = _ctx(P)
    w = WeightedSum(parts=("margin", "least-confidence"), weights=(0.7, 0.3))
    m, lc = margin_scores(P), 1 - P.max(axis=1)
    expected = 0.7 * rankdata(m) / 6 + 0.3 * rankdata(lc) / 6
    np.testing.assert_allclose(w.score(ctx), expected)
    assert w.select(ctx, 3).tolist() == ctx.ids[top_k(expected, 3)].tolist()
    # a large-scale part does not dominate: only ranks count
    scaled = WeightedSum(parts=("margin", "test-compose-low-top-prob(power=3.0)"), weights=(1, 1))
    same = WeightedSum(parts=("margin", "least-confidence"), weights=(1, 1))
    np.testing.assert_allclose(scaled.score(ctx), same.score(ctx))


def test_product_multiplies_ranks():
    ctx = _ctx(P)
    p = Product(parts=("margin", "entropy"))
    from alloop.strategies import entropy_scores

    expected = rankdata(margin_scores(P)) / 6 * rankdata(entropy_scores(P)) / 6
    np.testing.assert_allclose(p.score(ctx), expected)


def test_two_stage_prefilters_then_selects_within():
    ctx = _ctx(P)
    # margin's top 3: rows 2 (0.01), 0 (0.05), 5 (0.10); among them least confidence ranks 2, 5, 0
    two = TwoStage(first="margin", then="least-confidence", m=3)
    assert two.select(ctx, 2).tolist() == [102, 105]
    # m as a multiple of k: 2k with k=1 keeps rows 2 and 0; k=2 keeps 4 rows (adds 5 and 3)
    rel = TwoStage(first="margin", then="every-other-registered", m="2k")
    with pytest.raises(ConfigError, match="Unknown strategy 'every-other-registered'"):
        rel.select(ctx, 1)
    pick_last = TwoStage(first="margin", then=every_other(), m="2k")
    assert pick_last.select(ctx, 1).tolist() == [100]  # prefilter {0, 2} in pool order → every other → 0
    assert pick_last.select(ctx, 2).tolist() == [100, 103]  # prefilter {0, 2, 3, 5} → 0 and 3
    # never fewer than k, and the whole pool when m >= n
    assert TwoStage(first="margin", then="least-confidence", m=1).select(ctx, 2).tolist() == [102, 100]
    assert TwoStage(first="margin", then="least-confidence", m=500).select(ctx, 9).size == 6
    np.testing.assert_array_equal(two.score(ctx), margin_scores(P))


def test_two_stage_random_within_prefilter_is_seeded():
    ctx = _ctx(P, seed=4)
    two = make_strategy("top(margin, 3) >> random(seed=9)")
    picks = two.select(ctx, 2)
    assert set(picks.tolist()) <= {100, 102, 105}
    assert np.array_equal(picks, make_strategy("top(margin, 3) >> random(seed=9)").select(ctx, 2))


def test_schedule_switches_by_loop_and_by_labeled_size():
    s = Schedule(parts=("least-confidence", "margin", "entropy"), when=("0-1", "2"))
    for loop, expected in ((0, "least-confidence"), (1, "least-confidence"), (2, "margin"), (3, "entropy")):
        assert s.active(_ctx(P, loop=loop)).name == expected
    by_size = make_strategy("margin@labeled<3, entropy")
    few = _ctx(P, labeled_ids=np.array([1, 2]), labels=np.array([0, 1]))
    many = _ctx(P, labeled_ids=np.array([1, 2, 3]), labels=np.array([0, 1, 1]))
    assert by_size.active(few).name == "margin" and by_size.active(many).name == "entropy"
    np.testing.assert_array_equal(by_size.score(few), margin_scores(P))


def test_per_class_quota_splits_k_over_predicted_classes():
    # predicted classes: rows 0,1,2,3,5 → class 0; row 4 → class 1
    ctx = _ctx(P)
    q = PerClassQuota(inner="margin")
    # equal shares: 2 each, but class 1 has one candidate, so class 0 takes the rest
    out = q.select(ctx, 4)
    assert sorted(out.tolist()) == [100, 102, 104, 105]
    assert out.tolist()[:2] == [102, 104]  # interleaved: the best of each class first
    weights = PerClassQuota(inner="margin", quota=(0, 1, 0))
    assert weights.select(ctx, 3).tolist() == [104]  # a zero quota means none from that class
    prop = PerClassQuota(inner="margin", quota="proportional")
    assert sorted(prop.select(ctx, 6).tolist()) == ctx.ids.tolist()
    with pytest.raises(ConfigError, match="'quota' parameter of PerClassQuota must be None, 'proportional'"):
        PerClassQuota(inner="margin", quota=(1, 2)).select(ctx, 2)


def test_per_class_quota_matches_a_brute_force_fair_split():
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.full(4, 0.3), size=40)
    ctx = _ctx(probs)
    pred = probs.argmax(axis=1)
    counts = np.bincount(pred, minlength=4)
    for k in (1, 5, 12, 39, 40):
        out = PerClassQuota(inner="margin").select(ctx, k)
        got = np.bincount(pred[out - 100], minlength=4)
        # brute force: the most even split of k under the class counts (lexicographically smallest
        # sorted-descending vector; ties go to the lower class)
        best = None
        for a in np.ndindex(*(counts + 1)):
            if sum(a) == k:
                key = (sorted(a, reverse=True), [-v for v in a])
                if best is None or key < best[0]:
                    best = (key, a)
        assert best is not None and got.tolist() == list(best[1]), (k, got, best)
        # within each class: the class's own top by margin
        for c in range(4):
            members = np.flatnonzero(pred == c)
            expected = members[top_k(margin_scores(probs[members]), int(got[c]))] + 100
            assert sorted(out[np.isin(out, members + 100)].tolist()) == sorted(expected.tolist())


def test_exclude_skips_listed_ids_and_flagged_records():
    ctx = _ctx(P, history={"flips": np.array([0, 0, 1, 0, 0, 2.0])})
    by_id = Exclude(inner="margin", ids=(102,))
    assert by_id.select(ctx, 2).tolist() == [100, 105]
    assert np.isnan(by_id.score(ctx)[2])
    flagged = Exclude(inner="margin", flag="flips")
    assert flagged.needs == {"probs", "history"}
    assert flagged.select(ctx, 2).tolist() == [100, 103]
    assert flagged.select(ctx, 10).size == 4  # excluded records are never returned
    assert Exclude(inner="margin", ids=tuple(range(100, 106))).select(ctx, 2).size == 0
    with pytest.raises(ConfigError, match="'flag' parameter of Exclude must name a History feature"):
        Exclude(inner="margin", flag="nope").select(ctx, 2)


# ---- needs, batch-awareness, equality --------------------------------------------------------------------
def test_composite_needs_and_batch_awareness_come_from_the_parts():
    two = TwoStage(first="margin", then=every_other())
    assert two.needs == {"probs"} and two.batch_aware is True
    assert TwoStage(first="margin", then="random").batch_aware is False
    sched = Schedule(parts=("random", "margin @labeled<5, entropy"), when=("0",))
    assert sched.needs == {"probs", "labels"}
    assert PerClassQuota(inner="random").needs == {"probs"}
    assert WeightedSum(parts=("margin", every_other())).batch_aware is False  # ranks one combined score
    # the class itself shows neutral values (for listings), the instance the real ones
    assert TwoStage.needs == frozenset() and TwoStage.batch_aware is False


def test_engine_reads_the_instance_needs_of_a_composite():
    engine = SelectionEngine(TwoStage(first="margin", then="random"), classes=[0, 1, 2])
    engine.add_records(list(range(6)))
    from alloop.errors import StateError

    with pytest.raises(StateError, match="needs \\['probs'\\] but no unlabeled record has been inferred"):
        engine.recommend(2)
    engine.ingest(Snapshot(ids=list(range(6)), probs=P))
    assert engine.recommend(2).ids.size == 2


def test_equality_resolves_parts_and_ignores_spelling():
    assert WeightedSum(parts=("margin", "entropy")) == make_strategy("1*margin + 1.0*entropy")
    assert TwoStage(first="margin", then="random", m="10k") == TwoStage(first="margin", then="random", m=" 10.0k")
    assert TwoStage(first="margin", then="random", m=10) != TwoStage(first="margin", then="random", m="10k")
    assert Schedule(parts=("random", "margin"), when=("0-2",)) != Schedule(parts=("random", "margin"), when=("0-3",))
    assert len({make_strategy("margin + entropy"), WeightedSum(parts=("margin", "entropy"))}) == 1


def test_constructors_only_store():
    w = WeightedSum(parts=("not a spec at all",), weights="nonsense")  # type: ignore[arg-type]
    assert w.parts == ("not a spec at all",) and w.weights == "nonsense"
    assert w.spec == "weighted(parts=('not a spec at all',), weights='nonsense')"  # still printable
