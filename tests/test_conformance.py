"""Every discovered strategy passes the conformance suite, and the suite catches broken strategies."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pytest

from alloop.strategies import RandomSampling, SelectionContext, Strategy, all_strategies, make_strategy
from alloop.strategies.compose import as_strategy
from alloop.testing import (
    CHECKS,
    check_class_counts,
    check_constructor_stores_params,
    check_engine_needs,
    check_float32_and_float64,
    check_inputs_not_mutated,
    check_k_one,
    check_needs_respected,
    check_no_global_randomness,
    check_only_candidates,
    check_pool_smaller_than_k,
    check_returns_k_unique,
    check_same_seed_same_result,
    check_scores_shape_and_values,
    check_spec_parses,
    check_strategy,
    conformance_context,
    strategy_checks,
)

CASES = list(strategy_checks())
NAMES = set(all_strategies())  # at collection, like CASES (doctests may define strategies later)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_strategy_conforms(case):
    if case.skip_reason:
        pytest.skip(case.skip_reason)
    case.run()


def test_every_discovered_strategy_and_check_is_parametrised():
    assert {"random", "margin", "entropy", "least-confidence"} <= NAMES
    covered = {(type(c.strategy).name, c.check) for c in CASES}
    assert covered == {(name, check) for name in NAMES for check in CHECKS}
    # each _test_params() set gives its own cases: RandomSampling has two
    random_specs = {c.strategy.spec for c in CASES if isinstance(c.strategy, RandomSampling)}
    assert random_specs == {"random", "random(seed=7)"}
    assert len({c.id for c in CASES}) == len(CASES)


# ---- the contexts the suite builds ------------------------------------------------------------------------
@pytest.mark.parametrize("id_kind", ["int", "str"])
def test_conformance_context_is_realistic_and_deterministic(id_kind):
    ctx = conformance_context(30, n_classes=4, id_kind=id_kind, n_samples=3, dim=6, seed=5)
    assert ctx.available == {"probs", "embeddings", "samples", "history"}
    assert ctx.probs.shape == (30, 4) and ctx.embeddings.shape == (30, 6) and ctx.samples.shape == (3, 30, 4)
    np.testing.assert_allclose(ctx.probs.sum(axis=1), 1.0, atol=1e-9)
    assert (ctx.probs >= 0).all()
    assert set(ctx.history) >= {"count", "margin_mean", "entropy_var", "flips"}
    assert (ctx.history["count"] == 3).all()
    assert (np.diff(ctx.index) > 0).all()  # pool order
    assert not set(ctx.ids.tolist()) & set(ctx.labeled_ids.tolist())
    assert ctx.labels.shape == ctx.labeled_ids.shape
    if id_kind == "int":
        assert ctx.ids.dtype == np.int64 and ctx.ids.min() >= 1000  # ids are never positions
    else:
        assert ctx.ids.dtype == object and all(isinstance(v, str) for v in ctx.ids)
    again = conformance_context(30, n_classes=4, id_kind=id_kind, n_samples=3, dim=6, seed=5)
    assert np.array_equal(ctx.ids, again.ids) and np.array_equal(ctx.probs, again.probs)
    # some exact ties, so that tie-breaking is exercised
    assert len(np.unique(ctx.probs, axis=0)) < ctx.n


def test_conformance_context_holds_only_what_is_included():
    ctx = conformance_context(10, include={"embeddings"})
    assert ctx.available == {"embeddings"}


# ---- broken strategies are caught -------------------------------------------------------------------------
# Class names start with "_" so that discovery (all_strategies) never lists them.
class _Base(Strategy):
    needs: ClassVar[frozenset[str]] = frozenset({"probs"})

    def __init__(self) -> None:
        pass

    def score(self, ctx: SelectionContext) -> np.ndarray:
        return -ctx.probs.max(axis=1)


class _DuplicateIds(_Base):
    name = "_duplicate-ids"

    def select(self, ctx: SelectionContext, k: int) -> np.ndarray:
        return np.repeat(ctx.ids[:1], min(k, ctx.n))


class _ReturnsPositions(_Base):
    name = "_positions"

    def select(self, ctx: SelectionContext, k: int) -> np.ndarray:
        return np.arange(min(k, ctx.n))


class _AlwaysK(_Base):
    name = "_always-k"

    def select(self, ctx: SelectionContext, k: int) -> np.ndarray:
        return ctx.ids[np.arange(k) % ctx.n]


class _OffByOne(_Base):
    name = "_off-by-one"

    def select(self, ctx: SelectionContext, k: int) -> np.ndarray:
        return ctx.ids[: k - 1]


class _MutatesProbs(_Base):
    name = "_mutates-probs"

    def score(self, ctx: SelectionContext) -> np.ndarray:
        ctx.probs.sort(axis=1)
        return ctx.probs[:, -1] - ctx.probs[:, -2]


class _ReplacesProbs(_Base):
    name = "_replaces-probs"

    def score(self, ctx: SelectionContext) -> np.ndarray:
        ctx.probs = np.sort(ctx.probs, axis=1)
        return -ctx.probs[:, -1]


class _GlobalRandom(_Base):
    name = "_global-random"
    needs: ClassVar[frozenset[str]] = frozenset()

    def score(self, ctx: SelectionContext) -> np.ndarray:
        return np.random.random(ctx.n)  # noqa: NPY002 - deliberately wrong


class _StatefulRandom(_Base):
    name = "_stateful-random"
    needs: ClassVar[frozenset[str]] = frozenset()

    def score(self, ctx: SelectionContext) -> np.ndarray:
        if not hasattr(self, "_rng"):
            self._rng = ctx.rng()
        return self._rng.random(ctx.n)


class _UndeclaredEmbeddings(_Base):
    name = "_undeclared-embeddings"

    def score(self, ctx: SelectionContext) -> np.ndarray:
        return -np.linalg.norm(ctx.embeddings, axis=1)


class _UnknownNeed(_Base):
    name = "_unknown-need"
    needs: ClassVar[frozenset[str]] = frozenset({"probs", "gradients"})


class _InfScores(_Base):
    name = "_inf-scores"

    def score(self, ctx: SelectionContext) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(ctx.probs.min(axis=1) * (ctx.index % 2))  # -inf for even pool indices


class _WrongShape(_Base):
    name = "_wrong-shape"

    def score(self, ctx: SelectionContext) -> np.ndarray:
        return ctx.probs


class _PositionalParam(_Base):
    name = "_positional"

    def __init__(self, power: float = 1.0) -> None:
        self.power = power


class _ValidatesInInit(_Base):
    name = "_validates"

    def __init__(self, *, power: float = 1.0) -> None:
        self.power = power
        self.fitted_ = False


class _MutableDefault(_Base):
    name = "_mutable"

    def __init__(self, *, weights: Any = []) -> None:  # noqa: B006 - deliberately wrong
        self.weights = weights


class _ThreeClassesOnly(_Base):
    name = "_three-classes"

    def score(self, ctx: SelectionContext) -> np.ndarray:
        return ctx.probs @ np.array([1.0, 0.0, -1.0])  # assumes C = 3


class _Float64Only(_Base):
    name = "_float64-only"

    def score(self, ctx: SelectionContext) -> np.ndarray:
        if ctx.probs.dtype != np.float64:
            raise TypeError(f"unsupported dtype {ctx.probs.dtype}")
        return -ctx.probs.max(axis=1)


class _Good(_Base):
    name = "_good"

    def __init__(self, *, power: int = 1) -> None:
        self.power = power


@pytest.mark.parametrize(
    ("strategy", "check", "message"),
    [
        (_DuplicateIds(), check_returns_k_unique, "more than once"),
        (_AlwaysK(), check_pool_smaller_than_k, "must return all of them once"),
        (_ReturnsPositions(), check_only_candidates, "not candidates"),
        (_OffByOne(), check_k_one, "must return one candidate id"),
        (_OffByOne(), check_returns_k_unique, "returned 0 ids for 40 candidates"),
        (_MutatesProbs(), check_inputs_not_mutated, "wrote into a context array in place"),
        (_ReplacesProbs(), check_inputs_not_mutated, "replaced ctx.probs"),
        (_GlobalRandom(), check_no_global_randomness, "global random state (numpy.random"),
        (_GlobalRandom(), check_same_seed_same_result, "same seed and loop"),
        (_StatefulRandom(), check_same_seed_same_result, "same seed and loop"),
        (_UndeclaredEmbeddings(), check_needs_respected, "only its declared needs ['probs']"),
        (_UnknownNeed(), check_needs_respected, "['gradients']"),
        (_InfScores(), check_scores_shape_and_values, "infinite score"),
        (_WrongShape(), check_scores_shape_and_values, "one score per candidate, shape ("),
        (_PositionalParam(), check_constructor_stores_params, "must be keyword-only"),
        (_ValidatesInInit(power=2), check_constructor_stores_params, "also sets ['fitted_']"),
        (_MutableDefault(), check_constructor_stores_params, "mutable default []"),
        (_Good(), check_spec_parses, "not discovered"),
        (_ThreeClassesOnly(), check_class_counts, "C=2"),
        (_Float64Only(), check_float32_and_float64, "float32"),
        (_UndeclaredEmbeddings(), check_engine_needs, "crashed with TypeError"),
    ],
    ids=lambda v: v.__name__ if callable(v) and not isinstance(v, Strategy) else None,
)
def test_broken_strategy_is_caught(strategy, check, message):
    with pytest.raises(AssertionError) as info:
        check(strategy)
    assert message in str(info.value)


def test_stored_value_must_be_unchanged():
    class _Converts(_Base):
        name = "_converts"

        def __init__(self, *, label: str = "a") -> None:
            self.label = str(label)

    with pytest.raises(AssertionError, match="must store 'label' unchanged"):
        check_constructor_stores_params(_Converts(label="b"))

    class _Checks(_Base):
        name = "_checks"

        def __init__(self, *, power: float = 1.0) -> None:
            if power <= 0:
                raise ValueError("power must be positive")
            self.power = power

    with pytest.raises(AssertionError, match="raised TypeError.*validate them at first use"):
        check_constructor_stores_params(_Checks())


def test_check_strategy_reports_every_failed_check_by_name():
    with pytest.raises(AssertionError) as info:
        check_strategy(_GlobalRandom)
    text = str(info.value)
    assert "check_no_global_randomness" in text
    assert "check_same_seed_same_result" in text
    assert "check_returns_k_unique" not in text  # only the failing checks are listed
    assert text.startswith(f"{text.split()[0]} of {len(CHECKS)} conformance checks failed")


def test_good_strategy_passes_every_check_but_discovery():
    failures = []
    for check in CHECKS:
        try:
            check(_Good(power=2))
        except AssertionError as exc:
            failures.append((check, str(exc)))
    assert [c for c, _ in failures] == [check_spec_parses]
    assert "not discovered" in failures[0][1]


def test_skips_are_honoured_and_need_known_names_and_reasons():
    class _SkipsGlobal(_GlobalRandom):
        @classmethod
        def _test_skips(cls) -> dict[str, str]:
            return {
                "check_no_global_randomness": "legacy",
                "check_same_seed_same_result": "legacy",
                "check_select_consistent_with_score": "legacy",
                "check_spec_parses": "test class, not discoverable",
            }

    check_strategy(_SkipsGlobal)  # the failing checks are exempt, everything else passes
    cases = list(strategy_checks([_SkipsGlobal]))
    assert {c.check.__name__ for c in cases if c.skip_reason} == {
        "check_no_global_randomness",
        "check_same_seed_same_result",
        "check_select_consistent_with_score",
        "check_spec_parses",
    }

    class _TypoSkip(_Good):
        @classmethod
        def _test_skips(cls) -> dict[str, str]:
            return {"check_k_once": "typo"}

    with pytest.raises(AssertionError, match="unknown checks \\['check_k_once'\\]"):
        check_strategy(_TypoSkip)

    class _NoReason(_Good):
        @classmethod
        def _test_skips(cls) -> dict[str, str]:
            return {"check_k_one": " "}

    with pytest.raises(AssertionError, match="give a reason"):
        check_strategy(_NoReason)


def test_overriding_select_skips_only_the_score_consistency_check():
    cases = list(strategy_checks([_DuplicateIds]))
    skipped = [c.check.__name__ for c in cases if c.skip_reason]
    assert skipped == ["check_select_consistent_with_score"]


def test_each_test_params_set_is_checked():
    class _BadParams(_Good):
        @classmethod
        def _test_params(cls) -> list[dict[str, Any]]:
            return [{"power": 1}, {"power": [1, 2]}]  # a list does not survive spec -> make_strategy

        @classmethod
        def _test_skips(cls) -> dict[str, str]:
            return {"check_spec_parses": "test class, not discoverable"}

    cases = list(strategy_checks([_BadParams]))
    assert {c.strategy.power if isinstance(c.strategy.power, int) else 0 for c in cases} == {1, 0}
    check_strategy(_BadParams(power=3))


# ---- composites and function strategies ------------------------------------------------------------------
def test_every_combinator_is_discovered_and_checked():
    combinators = {"weighted", "product", "two-stage", "schedule", "per-class-quota", "exclude"}
    assert combinators <= NAMES
    checked = {type(c.strategy).name for c in CASES if not c.skip_reason}
    assert combinators <= checked


@pytest.mark.parametrize(
    "spec",
    [
        "0.7*margin + 0.3*entropy",
        "margin * least-confidence",
        "top(margin, 2k) >> random",
        "top(entropy, 10) >> random(seed=5)",
        "random@0-1, margin",
        "margin@labeled<5, entropy",
        "top(margin + entropy, 3k) >> random@0, least-confidence",
        "per-class-quota(inner='top(margin, 2k) >> random')",
        "exclude(inner='0.5*margin + entropy', ids=(-1,))",
    ],
)
def test_composites_built_from_specs_conform(spec):
    check_strategy(make_strategy(spec))


class _InstanceNeeds(Strategy):
    """A strategy whose needs are known per instance only (as a composite's are)."""

    name = "_instance-needs"

    def __init__(self, *, kind: str = "embeddings") -> None:
        self.kind = kind

    @property  # type: ignore[override]
    def needs(self) -> frozenset[str]:
        return frozenset({self.kind})

    def score(self, ctx: SelectionContext) -> np.ndarray:
        data = getattr(ctx, self.kind)
        return -np.linalg.norm(data.reshape(ctx.n, -1), axis=1)


def test_instance_level_needs_are_what_the_checks_and_the_engine_use():
    for kind in ("embeddings", "probs"):
        strategy = _InstanceNeeds(kind=kind)
        for check in (check_needs_respected, check_engine_needs):
            check(strategy)  # the engine reads strategy.needs on the instance and refuses when it is missing


def test_function_strategies_conform():
    @as_strategy(name="conf-lowest-first-class", needs={"probs"}, register=False)
    def lowest_first_class(ctx: SelectionContext, *, column: int = 0) -> np.ndarray:
        return -ctx.probs[:, column]

    @as_strategy(name="conf-stride", register=False)
    def stride(ctx: SelectionContext, k: int) -> np.ndarray:
        order = np.argsort(ctx.index % 3, kind="stable")
        return ctx.ids[order[:k]]

    skip = {"check_spec_parses"}  # register=False: not discoverable by name, on purpose
    for cls in (lowest_first_class, stride):
        for check in CHECKS:
            if check.__name__ not in skip:
                check(cls())
