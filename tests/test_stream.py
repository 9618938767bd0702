"""Stream strategies, budget managers and StreamCampaign: budget windows, determinism, reference values."""

from __future__ import annotations

import inspect
import math
import re

import numpy as np
import pytest
import scipy.stats
from sklearn.linear_model import LogisticRegression

from alloop.errors import ConfigError, LabelError
from alloop.labeling import LabelEvent, SimulatedOracle
from alloop.loop import FunctionLearner, SklearnLearner
from alloop.loop.stream import StreamCampaign, StreamResult
from alloop.strategies import all_strategies
from alloop.strategies.stream import (
    STREAM_COST_CLASSES,
    BalancedIncrementalQuantileFilter,
    BudgetManager,
    DensityUncertainty,
    EstimatedBudget,
    FixedFraction,
    PeriodicSampling,
    RandomizedVariableUncertainty,
    SplitStrategy,
    StreamRandom,
    StreamRow,
    StreamStrategy,
    VariableUncertainty,
    all_budget_managers,
    all_stream_strategies,
    local_density_counts,
    make_budget_manager,
    make_stream_strategy,
    stream_uncertainty,
)

N = 5000


def drifting_stream(n: int = N, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two Gaussian classes in 2-D; halfway the class means rotate by 90 degrees (a concept drift)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    sign = np.where(y == 1, 1.0, -1.0)[:, None]
    mean = sign * np.array([1.0, 0.0])
    late = np.arange(n) >= n // 2
    mean[late] = sign[late] * np.array([0.0, 1.0])
    return rng.normal(size=(n, 2)) + mean, y


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return drifting_stream()


def campaign(X, y, **kw) -> StreamCampaign:
    kw.setdefault("block_size", 100)
    kw.setdefault("retrain_every", 200)
    return StreamCampaign(
        SklearnLearner(LogisticRegression(solver="liblinear"), X),
        SimulatedOracle(truth=dict(enumerate(y.tolist()))),
        classes=[0, 1],
        **kw,
    )


def rows(n: int, n_classes: int = 2, seed: int = 0, dtype=np.float64, dim: int | None = None) -> list[StreamRow]:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.full(n_classes, 0.5), size=n).astype(dtype)
    emb = rng.normal(size=(n, dim)).astype(dtype) if dim else None
    return [
        StreamRow(id=1000 + i, probs=probs[i], embedding=None if emb is None else emb[i], index=i) for i in range(n)
    ]


def decide_all(strategy: StreamStrategy, manager: BudgetManager, stream: list[StreamRow]) -> list[bool]:
    out = []
    for row in stream:
        q = strategy.decide(row, manager)
        assert type(q) is bool, f"{strategy!r}.decide returned {type(q).__name__}, not bool"
        manager.update(q)
        out.append(q)
    return out


# ---- the campaign keeps the budget ------------------------------------------------------------------------
@pytest.mark.parametrize("manager", ["fixed-fraction", "estimated-budget", "balanced-incremental-quantile"])
@pytest.mark.parametrize("strategy", ["stream-threshold", "stream-variable-uncertainty"])
def test_labeled_fraction_stays_within_ten_percent_of_budget_in_every_window(data, strategy, manager):
    X, y = data
    result = campaign(X, y, strategy=strategy, budget_manager=manager, budget=0.1).run(range(N))
    assert result.n_records == N and np.array_equal(result.ids, np.arange(N))
    windows = result.window_fractions(1000, start=1000)  # every window after the first 1,000 records
    assert windows.size == N - 1000 - 1000 + 1
    assert windows.min() >= 0.09 and windows.max() <= 0.11, (windows.min(), windows.max())
    assert abs(result.labeled_fraction - 0.1) <= 0.01
    # every queried record got its label, the model was retrained, and metrics are reported
    assert result.n_labeled == result.n_queried
    assert set(result.labeled_ids.tolist()) == set(result.ids[result.queried].tolist())
    assert len(result.trainings) >= 2 and result.trainings[1].mode in {"full", "warm"}


def test_window_fractions_are_the_brute_force_counts():
    rng = np.random.default_rng(3)
    queried = rng.random(50) < 0.3
    r = StreamResult(np.arange(50), queried, np.zeros(50, bool), np.zeros(50), np.arange(0), [], "s", "b", 0.3)
    brute = [queried[s : s + 10].mean() for s in range(5, 41)]
    np.testing.assert_allclose(r.window_fractions(10, start=5), brute)


def test_same_seed_same_decisions_and_other_seed_other_decisions(data):
    X, y = data
    n = 2000
    kw = {"strategy": "stream-randomized-variable-uncertainty", "budget": 0.2}
    a = campaign(X, y, seed=4, **kw)
    first = a.run(range(n))
    again = a.run(range(n))  # the same campaign object starts over
    fresh = campaign(X, y, seed=4, **kw).run(range(n))
    other = campaign(X, y, seed=5, **kw).run(range(n))
    assert np.array_equal(first.queried, again.queried) and np.array_equal(first.queried, fresh.queried)
    assert first.labels == fresh.labels
    assert not np.array_equal(first.queried, other.queried)


def test_uncertain_records_are_preferred(data):
    X, y = data
    result = campaign(X, y, strategy="stream-variable-uncertainty", budget=0.1).run(range(N))
    live = ~result.cold_start
    queried_conf = result.confidence[live & result.queried].mean()
    skipped_conf = result.confidence[live & ~result.queried].mean()
    assert queried_conf < skipped_conf - 0.05, (queried_conf, skipped_conf)
    # random sampling does not prefer them
    rand = campaign(X, y, strategy="stream-random", budget=0.1).run(range(N))
    live = ~rand.cold_start
    assert abs(rand.confidence[live & rand.queried].mean() - rand.confidence[live & ~rand.queried].mean()) < 0.03


def test_cold_start_queries_the_first_records_and_waits_for_two_classes():
    X, _ = drifting_stream(300, seed=1)
    y = np.zeros(300, dtype=int)
    y[12:] = np.random.default_rng(0).integers(0, 2, 288)
    y[12] = 1  # the first record of class 1 comes 13th
    result = campaign(X, y, initial=5, block_size=7, budget=0.2).run(range(300))
    assert result.cold_start.tolist()[:14] == [True] * 13 + [False]
    assert result.queried[:13].all() and np.isnan(result.confidence[:13]).all()
    assert not np.isnan(result.confidence[13:]).any()
    assert result.trainings[0].n_records == 13
    # the budget manager counted the cold start: no query until the fraction is back under the budget
    assert not result.queried[13:64].any()


def test_pretrained_learner_decides_from_the_first_record(data):
    X, y = data
    learner = SklearnLearner(LogisticRegression(solver="liblinear"), X)
    learner.train(np.arange(200), y[:200], warm_start=False)
    c = StreamCampaign(learner, SimulatedOracle(truth=dict(enumerate(y.tolist()))), [0, 1], initial=0, budget=0.5)
    result = c.run(range(200, 260))
    assert not result.cold_start.any() and 20 <= result.n_queried <= 30


def test_string_ids_and_label_checks():
    X, y = drifting_stream(400, seed=2)
    ids = [f"r{i}" for i in range(400)]
    learner = SklearnLearner(LogisticRegression(solver="liblinear"), X, ids=ids)
    oracle = SimulatedOracle(truth=dict(zip(ids, ["a" if v else "b" for v in y], strict=True)))
    result = StreamCampaign(learner, oracle, ["a", "b"], block_size=25, budget=0.2).run(iter(ids))
    assert result.ids.dtype == object and result.n_labeled == result.n_queried
    assert set(result.labels) == {"a", "b"}

    class WrongLabels(SimulatedOracle):
        def poll(self) -> list[LabelEvent]:
            return [LabelEvent(id=e.id, label="c") for e in super().poll()]

    bad = StreamCampaign(learner, WrongLabels(truth=dict(zip(ids, y.tolist(), strict=True))), ["a", "b"])
    with pytest.raises(LabelError, match="not one of the classes"):
        bad.run(iter(ids))


def test_density_strategy_needs_embeddings(data):
    X, y = data
    with pytest.raises(ConfigError, match="needs \\['embeddings'\\]"):
        campaign(X, y, strategy="stream-density-uncertainty").run(range(300))

    def infer(ids):
        p1 = 1 / (1 + np.exp(-2 * X[ids, 0]))
        return {int(i): {"probs": [1 - q, q], "embedding": X[i]} for i, q in zip(ids, p1, strict=True)}

    learner = FunctionLearner(lambda ids, y, warm_start: None, infer, classes=[0, 1])
    oracle = SimulatedOracle(truth=dict(enumerate(y.tolist())))
    result = StreamCampaign(
        learner, oracle, [0, 1], strategy="stream-density-uncertainty", budget=0.1, block_size=50
    ).run(range(2000))
    assert 0.08 <= result.labeled_fraction <= 0.11


def test_campaign_checks_its_parameters():
    X, y = drifting_stream(10)
    with pytest.raises(ConfigError, match="'budget' parameter of StreamCampaign must be a number in \\(0, 1\\]"):
        campaign(X, y, budget=0)
    with pytest.raises(ConfigError, match="Did you mean 'stream-periodic'"):
        campaign(X, y, strategy="stream-periodik")
    with pytest.raises(ConfigError, match="give it once"):
        campaign(X, y, budget_manager="fixed-fraction(budget=0.3)", budget=0.1)
    with pytest.raises(ConfigError, match="'block_size' parameter of StreamCampaign"):
        campaign(X, y, block_size=0)


# ---- discovery and the component contract -----------------------------------------------------------------
STRATEGIES = all_stream_strategies()
MANAGERS = all_budget_managers()
CASES = [(cls, params) for cls in STRATEGIES.values() for params in cls._test_params()]


def test_discovery_finds_the_strategies_and_managers():
    assert len(STRATEGIES) >= 8 and {
        "stream-threshold",
        "stream-variable-uncertainty",
        "stream-randomized-variable-uncertainty",
        "stream-split",
        "stream-periodic",
        "stream-random",
        "stream-density-uncertainty",
        "stream-selective-sampling",
    } <= set(STRATEGIES)
    assert set(MANAGERS) >= {"fixed-fraction", "estimated-budget", "balanced-incremental-quantile"}
    assert not set(STRATEGIES) & set(all_strategies())  # pool and stream names never clash
    for name, cls in STRATEGIES.items():
        assert re.fullmatch(r"stream(-[a-z]+)+", name)
        assert cls.kind == "stream" and cls.batch_aware is False and cls.family
        assert cls.needs <= {"probs", "embeddings"} and cls.cost in STREAM_COST_CLASSES
        assert re.search(r"\(.*\d{4}\)\.?$", cls.describe()), f"{name}: first docstring line needs a reference"
    for cls in MANAGERS.values():
        assert re.search(r"\(.*\d{4}\)\.?$", cls.describe()) and "budget" in cls._param_names()


@pytest.mark.parametrize(("cls", "params"), CASES, ids=[f"{c.name}-{i}" for i, (c, _) in enumerate(CASES)])
def test_stream_strategy_contract(cls, params):
    strategy = cls(**params)
    names = cls._param_names()
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        assert p.kind == p.KEYWORD_ONLY and p.default is not p.empty
    assert sorted(vars(strategy)) == sorted(names)  # the constructor only stores
    rebuilt = make_stream_strategy(strategy.spec)
    assert type(rebuilt) is cls and rebuilt.get_params() == strategy.get_params()
    needs_emb = "embeddings" in cls.needs
    for n_classes, dtype in [(2, np.float64), (100, np.float32)]:
        stream = rows(300, n_classes, dtype=dtype, dim=4 if needs_emb else None)
        before = [r.probs.copy() for r in stream]
        first = decide_all(cls(**params), FixedFraction(budget=0.3), stream)
        second = decide_all(cls(**params), FixedFraction(budget=0.3), stream)
        assert first == second, "same seed, same decisions"
        assert 0 < sum(first) <= 0.3 * len(stream) + 1
        assert all(np.array_equal(a, r.probs) for a, r in zip(before, stream, strict=True)), "row.probs mutated"
    # reset() starts over
    s = cls(**params)
    stream = rows(100, dim=4 if needs_emb else None)
    a = decide_all(s, FixedFraction(budget=0.5), stream)
    s.reset()
    assert decide_all(s, FixedFraction(budget=0.5), stream) == a


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("stream-threshold(threshold=2)", "The 'threshold' parameter of FixedThreshold must be a number in [0.0, 1.0]"),
        ("stream-threshold(score='ratio')", "The 'score' parameter of FixedThreshold must be one of"),
        (
            "stream-variable-uncertainty(step=0)",
            "The 'step' parameter of VariableUncertainty must be a number in (0, 1)",
        ),
        ("stream-random(seed=-1)", "The 'seed' parameter of StreamRandom must be an int >= 0 or None"),
        ("stream-density-uncertainty(window=1)", "The 'window' parameter of DensityUncertainty must be an int >= 2"),
    ],
)
def test_parameters_are_checked_at_first_use(spec, message):
    strategy = make_stream_strategy(spec)  # building never fails
    with pytest.raises(ConfigError) as info:
        strategy.decide(rows(1, dim=2)[0], FixedFraction())
    assert message in str(info.value)


def test_unknown_parameters_and_managers_are_reported():
    with pytest.raises(ConfigError, match="has no parameter 'theta'; its parameters are: score, threshold"):
        make_stream_strategy("stream-threshold(theta=0.3)")
    with pytest.raises(ConfigError, match="Did you mean 'fixed-fraction'"):
        make_budget_manager("fixed-fractions")
    with pytest.raises(ConfigError, match="The 'budget' parameter of FixedFraction must be a number in \\(0, 1\\]"):
        FixedFraction(budget=1.5).is_budget_left()
    with pytest.raises(ConfigError, match="'window' parameter of EstimatedBudget must be an int >= 1 / budget"):
        EstimatedBudget(budget=0.01, window=50).is_budget_left()


# ---- reference values ---------------------------------------------------------------------------------------
def test_stream_uncertainty_matches_reference_formulas():
    probs = np.random.default_rng(0).dirichlet(np.ones(5), size=20)
    np.testing.assert_allclose(
        stream_uncertainty(probs, "entropy"), scipy.stats.entropy(probs, axis=1) / math.log(5), rtol=1e-12
    )
    top2 = np.sort(probs, axis=1)[:, -2:]
    np.testing.assert_allclose(stream_uncertainty(probs, "margin"), 1 - (top2[:, 1] - top2[:, 0]))
    np.testing.assert_allclose(stream_uncertainty(probs, "least-confidence"), (1 - probs.max(axis=1)) / 0.8)
    uniform = np.full((1, 100), 0.01, dtype=np.float32)
    for score in ("least-confidence", "margin", "entropy"):
        assert stream_uncertainty(uniform, score)[0] == pytest.approx(1.0, abs=1e-5)


def test_fixed_fraction_spends_exactly_the_budget_when_always_wanted():
    bm = FixedFraction(budget=0.07)
    for t in range(1, 1001):
        bm.update(bm.is_budget_left())
        assert bm.queried == math.floor(0.07 * t + 1e-9)


def test_estimated_budget_follows_its_recurrence():
    bm, u_hat, w = EstimatedBudget(budget=0.1, window=20), 0.0, 20
    rng = np.random.default_rng(1)
    for _ in range(500):
        expected = u_hat * (w - 1) / w + 1 <= 0.1 * w + 0.5
        left = bm.is_budget_left()
        assert left == expected
        q = left and rng.random() < 0.8
        bm.update(q)
        u_hat = u_hat * (w - 1) / w + q
        assert bm.estimate == pytest.approx(u_hat / w)
    assert abs(bm.queried / bm.seen - 0.1) < 0.01


def test_biqf_threshold_is_the_balanced_window_quantile():
    bm = BalancedIncrementalQuantileFilter(budget=0.2, window=30, tolerance=4.0)
    rng = np.random.default_rng(2)
    seen, queried, window = 0, 0, []
    for _ in range(300):
        u = float(rng.random())
        window = (window + [u])[-30:]
        q = bm.admits(u)
        if len(window) >= 2:
            theta = np.quantile(window, 0.8) - (max(window) - min(window)) * (0.2 * (seen + 1) - queried) / 4.0
            assert bm.threshold() == pytest.approx(theta)
            assert q == (u >= theta)
        bm.update(q)
        seen, queried = seen + 1, queried + q
    assert abs(queried / seen - 0.2) < 0.02


def test_biqf_falls_back_to_pacing_on_constant_utilities():
    bm = BalancedIncrementalQuantileFilter(budget=0.25)
    for _ in range(100):
        bm.update(bm.admits(0.5))
    assert bm.queried == 25


def test_variable_uncertainty_threshold_by_hand():
    s, bm = VariableUncertainty(step=0.5, theta=0.8), FixedFraction(budget=1.0)
    # certainty 1-u for [p, 1-p] under least-confidence (C=2) is |2p - 1|
    decisions = [s.decide(StreamRow(id=i, probs=np.array([p, 1 - p])), bm) for i, p in enumerate([0.95, 0.7, 0.85])]
    # 0.9 >= 0.8 -> skip, θ=1.2; 0.4 < 1.2 -> query, θ=0.6; 0.7 >= 0.6 -> skip, θ=0.9
    assert decisions == [False, True, False] and s.current_threshold == pytest.approx(0.9)


def test_randomized_and_split_reduce_to_variable_uncertainty():
    stream = rows(400, seed=3)
    vu = decide_all(VariableUncertainty(), FixedFraction(budget=0.2), stream)
    assert decide_all(RandomizedVariableUncertainty(delta=0.0), FixedFraction(budget=0.2), stream) == vu
    assert decide_all(SplitStrategy(split=0.0), FixedFraction(budget=0.2), stream) == vu
    rvu = decide_all(RandomizedVariableUncertainty(seed=1), FixedFraction(budget=0.2), stream)
    assert rvu != vu


def test_periodic_and_random_baselines():
    stream = rows(100)
    assert [i for i, q in enumerate(decide_all(PeriodicSampling(), FixedFraction(budget=0.1), stream)) if q] == [
        10 * k for k in range(1, 10)
    ]  # index 0 is refused: querying the first record would exceed a 10 % budget
    assert sum(decide_all(PeriodicSampling(period=4), FixedFraction(budget=1.0), stream)) == 25
    hits = decide_all(StreamRandom(rate=0.3, seed=2), FixedFraction(budget=1.0), rows(2000))
    assert abs(np.mean(hits) - 0.3) < 0.03


def test_local_density_matches_brute_force_nearest_neighbours():
    rng = np.random.default_rng(4)
    points = rng.normal(size=(60, 3))
    s = DensityUncertainty(window=10)
    for t, x in enumerate(points):
        count, before = s.density(x)
        window = points[max(0, t - 10) : t]
        assert before == len(window)
        if len(window) < 2:
            continue
        d_ww = np.linalg.norm(window[:, None] - window[None], axis=2)
        np.fill_diagonal(d_ww, np.inf)
        d_x = np.linalg.norm(window - x, axis=1)
        assert count == int((d_x < d_ww.min(axis=1)).sum()) == local_density_counts(d_x, d_ww.min(axis=1))


def test_density_strategy_skips_outliers_however_uncertain():
    rng = np.random.default_rng(5)
    s, bm = DensityUncertainty(window=20), FixedFraction(budget=1.0)
    for i in range(40):
        s.decide(StreamRow(id=i, probs=np.array([0.9, 0.1]), embedding=rng.normal(size=2) * 0.1, index=i), bm)
    outlier = StreamRow(id=99, probs=np.array([0.5, 0.5]), embedding=np.array([50.0, 50.0]), index=40)
    inlier = StreamRow(id=100, probs=np.array([0.5, 0.5]), embedding=np.array([0.0, 0.0]), index=41)
    assert s.decide(outlier, bm) is False
    assert s.decide(inlier, bm) is True
