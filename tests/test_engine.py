"""SelectionEngine: candidates, errors that leave state unchanged, seeds and specs."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest

from alloop import SelectionEngine, Snapshot
from alloop.errors import ConfigError, LabelError, PoolExhaustedError, StateError, UnknownRecordError
from alloop.records import RecordState
from alloop.strategies import RandomSampling, SelectionContext, Strategy


def _probs(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(3), size=n)


def _engine(ids, strategy="margin", *, seed: int = 0) -> SelectionEngine:
    engine = SelectionEngine(strategy=strategy, seed=seed, classes=["a", "b", "c"])
    engine.add_records(ids)
    return engine


def _history_state(engine: SelectionEngine) -> dict:
    h = engine.history
    return {
        "probs": h.probs.copy(),
        "count": h.count.copy(),
        "mean": {k: v.copy() for k, v in h.mean.items()},
        "flips": h.flips.copy(),
        "loops_seen": h.loops_seen,
        "capacity": h.capacity,
    }


def _same(a: dict, b: dict) -> bool:
    return all(
        np.array_equal(a[k], b[k], equal_nan=True)
        if isinstance(a[k], np.ndarray)
        else (_same(a[k], b[k]) if isinstance(a[k], dict) else a[k] == b[k])
        for k in a
    )


@pytest.mark.parametrize("strategy", ["margin", "random"])
def test_recommend_excludes_labeled_selected_eval_and_removed_records(strategy):
    ids = [f"r{i}" for i in range(12)]
    engine = _engine(ids, strategy)
    engine.add_records(["e0", "e1"], holdout=True)
    engine.ingest(Snapshot(ids=ids + ["e0", "e1"], probs=_probs(14)))
    engine.observe_labels(["r0", "r1"], ["a", "c"])
    engine.mark_selected(["r2", "r3"])
    engine.remove_records(["r4"])
    sel = engine.recommend(100)
    assert sorted(sel.ids.tolist()) == sorted(f"r{i}" for i in range(5, 12))
    assert sel.strategy == strategy and len(sel) == 7 and sel.scores.shape == (7,)
    engine.release(["r2"])
    assert "r2" in engine.recommend(100).ids.tolist()


def test_margin_recommendation_is_ranked_and_scores_match():
    engine = _engine([10, 11, 12, 13])
    engine.ingest(
        Snapshot(ids=[10, 11, 12, 13], probs=[[0.9, 0.05, 0.05], [0.4, 0.35, 0.25], [0.5, 0.5, 0.0], [0.6, 0.3, 0.1]])
    )
    sel = engine.recommend(3)
    assert sel.ids.tolist() == [12, 11, 13]
    np.testing.assert_allclose(sel.scores, [0.0, -0.05, -0.3])
    assert sel.reason.startswith("margin: top 3 of 4 candidates")


def test_pool_exhausted():
    engine = _engine([1, 2])
    engine.observe_labels([1, 2], ["a", "b"])
    with pytest.raises(PoolExhaustedError, match="No unlabeled record is left"):
        engine.recommend(1, strategy="random")
    with pytest.raises(PoolExhaustedError):
        SelectionEngine("random").recommend(1)
    only_eval = SelectionEngine("random")
    only_eval.add_records([1], holdout=True)
    with pytest.raises(PoolExhaustedError):
        only_eval.recommend(1)


def test_k_larger_than_the_remaining_pool_returns_all_of_it():
    engine = _engine([1, 2, 3, 4, 5], "random")
    engine.observe_labels([2, 4], ["a", "a"])
    assert sorted(engine.recommend(10).ids.tolist()) == [1, 3, 5]


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_bad_k_is_a_config_error(k):
    engine = _engine([1, 2], "random")
    with pytest.raises(ConfigError, match="The 'k' parameter of SelectionEngine.recommend must be an int >= 1"):
        engine.recommend(k)


def test_strategy_needing_probs_before_any_snapshot_is_a_state_error():
    engine = _engine([1, 2, 3])
    with pytest.raises(StateError) as info:
        engine.recommend(2)
    msg = str(info.value)
    assert not isinstance(info.value, PoolExhaustedError)
    assert "'margin'" in msg and "['probs']" in msg and "ingest a Snapshot" in msg and "'random'" in msg
    assert engine.recommend(2, strategy="random").ids.size == 2  # cold start works


def test_only_inferred_records_are_candidates_for_probability_strategies():
    engine = _engine([1, 2, 3, 4])
    engine.ingest(Snapshot(ids=[3, 1], probs=_probs(2)))
    sel = engine.recommend(4)
    assert sorted(sel.ids.tolist()) == [1, 3]
    assert "2 unlabeled records lack the metadata it needs" in sel.reason


def test_observe_labels_with_an_unknown_class_changes_nothing():
    engine = _engine(["x", "y", "z"])
    with pytest.raises(LabelError) as info:
        engine.observe_labels(["x", "y"], ["a", "dog"])
    assert "'dog'" in str(info.value) and "'y'" in str(info.value)
    assert engine.pool.ids(RecordState.LABELED).tolist() == []
    assert engine.pool.ids(RecordState.UNLABELED).tolist() == ["x", "y", "z"]
    assert (engine.labels == -1).all()
    with pytest.raises(LabelError, match="1 labels for 2 ids"):
        engine.observe_labels(["x", "y"], ["a"])
    assert engine.pool.ids(RecordState.LABELED).tolist() == []


def test_observe_labels_records_class_positions_and_refuses_eval_records():
    engine = _engine(["x", "y", "z"])
    engine.add_records(["e"], holdout=True)
    engine.observe_labels(np.array(["z", "x"]), np.array(["c", "a"]))
    assert engine.pool.ids(RecordState.LABELED).tolist() == ["x", "z"]
    assert engine.labels[engine.pool.index_of(["x", "z"])].tolist() == [0, 2]
    ctx = engine.context(RandomSampling())
    assert ctx.labeled_ids.tolist() == ["x", "z"] and ctx.labels.tolist() == [0, 2]
    with pytest.raises(StateError, match="'e' in 'ids' is eval"):
        engine.observe_labels(["y", "e"], ["a", "b"])
    assert engine.pool.ids(RecordState.LABELED).tolist() == ["x", "z"]


def test_ingest_with_an_unknown_id_leaves_history_unchanged():
    engine = _engine([1, 2, 3])
    engine.ingest(Snapshot(ids=[1, 2, 3], probs=_probs(3, 1)))
    before = _history_state(engine)
    with pytest.raises(UnknownRecordError) as info:
        engine.ingest(Snapshot(ids=[1, 99], probs=_probs(2, 2)))
    assert "99" in str(info.value) and "'snapshot.ids'" in str(info.value)
    assert _same(_history_state(engine), before)


def test_ingest_aligns_class_columns():
    engine = _engine([1, 2])
    engine.ingest(Snapshot(ids=[1, 2], probs=[[0.8, 0.2], [0.3, 0.7]], classes=["c", "a"]))
    np.testing.assert_allclose(engine.history.probs[:2], [[0.2, 0.0, 0.8], [0.7, 0.0, 0.3]])


def test_same_seed_same_random_selection_different_loop_different():
    ids = list(range(200))

    def pick(seed: int, loop: int, strategy: str = "random") -> list[int]:
        return _engine(ids, strategy, seed=seed).recommend(10, loop=loop).ids.tolist()

    assert pick(0, 1) == pick(0, 1)
    assert pick(0, 1) != pick(0, 2)
    assert pick(0, 1) != pick(1, 1)
    assert pick(0, 1, "random(seed=3)") == pick(5, 1, "random(seed=3)")  # the strategy's own seed wins
    assert pick(0, 1, "random(seed=3)") != pick(0, 1, "random(seed=4)")


def test_spec_strings_and_instances():
    assert SelectionEngine("random(seed=3)").strategy.get_params() == {"seed": 3}
    assert SelectionEngine(" entropy ").strategy.spec == "entropy"
    s = RandomSampling(seed=9)
    assert SelectionEngine(s).strategy is s
    engine = _engine([1, 2, 3], "margin")
    assert engine.recommend(2, strategy="random(seed=3)").strategy == "random(seed=3)"


def test_unknown_strategy_name_gets_a_did_you_mean_hint():
    with pytest.raises(ConfigError, match="Unknown strategy 'margn'. Did you mean 'margin'\\?"):
        SelectionEngine("margn")
    with pytest.raises(ConfigError, match="Unknown strategy 'zzzzzz'. Run 'alloop strategies'"):
        SelectionEngine("zzzzzz")


def test_unknown_parameter_names_are_reported():
    with pytest.raises(ConfigError, match="Strategy 'random' has no parameter 'sed'; its parameters are: seed."):
        SelectionEngine("random(sed=3)")
    with pytest.raises(ConfigError, match="no parameter 'x'; its parameters are: \\(none\\)"):
        SelectionEngine("margin(x=1)")


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("random(3)", "give parameters by name"),
        ("random(seed=3", "must look like"),
        ("", "spec is empty"),
        ("random(seed=abs(3))", "must be a literal"),
        ("random(seed=)", "is not valid"),
    ],
)
def test_malformed_specs_are_config_errors(spec, fragment):
    with pytest.raises(ConfigError, match=fragment):
        SelectionEngine(spec)


def test_bad_engine_arguments():
    with pytest.raises(ConfigError, match="The 'seed' parameter of SelectionEngine must be an int >= 0. Got -1."):
        SelectionEngine("random", seed=-1)
    with pytest.raises(ConfigError, match="must be a name, a spec string or a Strategy; got int"):
        SelectionEngine(3)  # type: ignore[arg-type]
    engine = SelectionEngine("random")
    engine.add_records([1])
    with pytest.raises(ConfigError, match="needs 'classes'"):
        engine.observe_labels([1], ["a"])


class _NeedsEmbeddings(Strategy):
    needs: ClassVar[frozenset[str]] = frozenset({"embeddings"})

    def __init__(self) -> None:
        pass

    def score(self, ctx: SelectionContext) -> np.ndarray:
        return ctx.embeddings[:, 0].astype(np.float64)


class _NeedsSamples(Strategy):
    needs: ClassVar[frozenset[str]] = frozenset({"samples"})

    def __init__(self) -> None:
        pass

    def score(self, ctx: SelectionContext) -> np.ndarray:
        return ctx.samples.var(axis=0).sum(axis=1)


def test_context_holds_only_what_the_strategy_needs_and_explains_what_is_missing():
    engine = _engine([1, 2, 3, 4])
    engine.ingest(Snapshot(ids=[1, 2, 3, 4], probs=_probs(4)))
    assert engine.context().available == {"probs"}
    assert engine.context(RandomSampling()).available == frozenset()
    with pytest.raises(ConfigError, match="needs embeddings, but none were shared"):
        engine.recommend(1, strategy=_NeedsEmbeddings())
    with pytest.raises(ConfigError, match="needs MC/ensemble samples"):
        engine.recommend(1, strategy=_NeedsSamples())
    samples = np.stack([_probs(3, 5), _probs(3, 6)])
    engine.ingest(
        Snapshot(ids=[4, 2, 3], probs=samples.mean(axis=0), samples=samples, embeddings=np.arange(6.0).reshape(3, 2))
    )
    ctx = engine.context(_NeedsSamples())
    assert ctx.ids.tolist() == [2, 3, 4] and ctx.samples.shape == (2, 3, 3)
    np.testing.assert_array_equal(ctx.samples[:, 2], samples[:, 0])  # record 4 was row 0 of the snapshot
    # record 1 was inferred without embeddings: it is not a candidate (no NaN rows reach the strategy)
    sel = engine.recommend(4, strategy=_NeedsEmbeddings())
    assert sel.ids.tolist() == [3, 2, 4] and sel.scores.tolist() == [4.0, 2.0, 0.0]
    assert "1 unlabeled records lack the metadata it needs" in sel.reason
    ctx = engine.context(_NeedsEmbeddings())
    assert ctx.available == {"embeddings"} and np.isfinite(ctx.embeddings).all()


def test_locate_checks_every_part_before_anything_is_folded():
    from alloop.errors import DataError

    eng = SelectionEngine("margin", classes=[0, 1])
    eng.add_records([10, 11, 12, 13])
    p = np.array([[0.6, 0.4], [0.3, 0.7]])
    a, b = Snapshot(ids=[10, 11], probs=p), Snapshot(ids=[12, 11], probs=p)
    with pytest.raises(DataError, match="11 appears in two parts"):
        eng.locate([a, b])
    with pytest.raises(UnknownRecordError):
        eng.locate([a, Snapshot(ids=[99, 12], probs=p)])
    with pytest.raises(DataError, match="Part 1 of the snapshot does not match"):
        eng.locate([a, Snapshot(ids=[12, 13], probs=p, embeddings=np.ones((2, 3)))])
    assert eng.history.loops_seen == 0
    eng.ingest_located(eng.locate([a, Snapshot(ids=[12, 13], probs=p)]), loop=0)
    assert eng.history.loops_seen == 1 and eng.history.seen[:4].all()
    assert eng.recommend(1, loop=1).ids.tolist() == [10]  # margin 0.2 ties: the lowest pool index first
