"""Stream strategies and budget managers: decide record by record whether to ask for a label.

A :class:`StreamStrategy` sees one :class:`StreamRow` at a time (the record's id, its class
probabilities, optionally its embedding, and its position in the stream) and answers
``decide(row, budget) -> bool``. A :class:`BudgetManager` paces the queries so that the share of
records sent for labeling stays near its ``budget`` fraction. The protocol, per record:

1. the strategy computes the record's utility ``u`` and asks ``budget.admits(u)`` exactly once
   (strategies without a utility for the record ask ``budget.is_budget_left()`` instead);
2. the strategy applies its own rule and returns the decision;
3. the caller (:class:`alloop.loop.stream.StreamCampaign`) reports it with ``budget.update(queried)``.

Constructors only store their keyword arguments; parameters are validated and per-instance state
(adaptive thresholds, windows, the random generator ``np.random.default_rng([seed, tag])``) is built
lazily at the first ``decide``. :meth:`StreamStrategy.reset` and :meth:`BudgetManager.reset` start over.

>>> import numpy as np
>>> strategy = make_stream_strategy("stream-variable-uncertainty")
>>> budget = make_budget_manager("fixed-fraction", budget=0.2)
>>> rng = np.random.default_rng(0)
>>> asked = 0
>>> for i in range(1000):
...     p = rng.random()
...     queried = strategy.decide(StreamRow(id=i, probs=np.array([p, 1 - p]), index=i), budget)
...     budget.update(queried)
...     asked += queried
>>> asked
200
"""

from __future__ import annotations

import bisect
import importlib
import math
import numbers
import pkgutil
import zlib
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np

from alloop._validation import check_choice, check_float, check_int
from alloop.errors import ConfigError
from alloop.strategies._base import Parameterized
from alloop.strategies._registry import parse_spec
from alloop.strategies.uncertainty import entropy_scores, least_confidence_scores, margin_scores

__all__ = [
    "BalancedIncrementalQuantileFilter",
    "BudgetManager",
    "DensityUncertainty",
    "EstimatedBudget",
    "FixedFraction",
    "FixedThreshold",
    "PeriodicSampling",
    "RandomizedVariableUncertainty",
    "STREAM_COST_CLASSES",
    "SelectiveSampling",
    "SplitStrategy",
    "StreamRandom",
    "StreamRow",
    "StreamStrategy",
    "UNCERTAINTY_SCORES",
    "VariableUncertainty",
    "all_budget_managers",
    "all_stream_strategies",
    "local_density_counts",
    "make_budget_manager",
    "make_stream_strategy",
    "stream_uncertainty",
]

#: The uncertainty scores a stream strategy can threshold (the pure functions of ``uncertainty.py``).
UNCERTAINTY_SCORES = ("least-confidence", "margin", "entropy")
#: Cost classes of stream strategies, per record (w = window size, d = embedding dimension).
STREAM_COST_CLASSES = ("O(1)", "O(w·d)", "O(w²)")


@dataclass(frozen=True, eq=False)
class StreamRow:
    """One record as a stream strategy sees it.

    id         the record id
    probs      (C,) class probabilities from the current model
    embedding  (D,) representation, or None when not shared
    index      the record's position in the stream (0, 1, 2, ...)
    """

    id: Any
    probs: np.ndarray
    embedding: np.ndarray | None = None
    index: int = 0


def stream_uncertainty(probs: np.ndarray, score: str = "least-confidence") -> np.ndarray:
    """Uncertainty of each row of ``probs`` (n, C) scaled to [0, 1], 1 = most uncertain.

    least-confidence  ``(1 - max p) / (1 - 1/C)``
    margin            ``1 - (p_top1 - p_top2)``
    entropy           ``H(p) / log C``

    The uniform distribution scores 1 under all three, a one-hot row 0.

    >>> stream_uncertainty(np.array([[0.5, 0.5], [1.0, 0.0], [0.75, 0.25]]), "margin").tolist()
    [1.0, 0.0, 0.5]
    """
    p = np.atleast_2d(np.asarray(probs))
    n_classes = p.shape[1]
    if n_classes < 2:
        return np.zeros(p.shape[0], dtype=np.float64)
    if score == "least-confidence":
        u = least_confidence_scores(p) / (1.0 - 1.0 / n_classes)
    elif score == "margin":
        u = 1.0 + margin_scores(p)
    elif score == "entropy":
        u = entropy_scores(p) / math.log(n_classes)
    else:
        raise ConfigError(f"Unknown uncertainty score {score!r}; use one of {', '.join(UNCERTAINTY_SCORES)}.")
    return np.clip(u, 0.0, 1.0)


def local_density_counts(distances: np.ndarray, nn_distances: np.ndarray) -> int:
    """How many window records would have the new record as their nearest neighbour (Ienco et al. 2014).

    ``distances[j]`` is the distance from the new record to window record j, ``nn_distances[j]`` the
    distance from window record j to its nearest neighbour inside the window.

    >>> local_density_counts(np.array([0.5, 2.0, 0.1]), np.array([1.0, 1.0, 1.0]))
    2
    """
    return int(np.count_nonzero(np.asarray(distances) < np.asarray(nn_distances)))


def _fail(name: str, owner: str, what: str, value: Any) -> ConfigError:
    return ConfigError(f"The {name!r} parameter of {owner} must be {what}. Got {value!r}.")


def _check_fraction(value: Any, name: str, owner: str) -> float:
    """A number in (0, 1]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 < float(value) <= 1.0:
        raise _fail(name, owner, "a number in (0, 1]", value)
    return float(value)


class _Component(Parameterized):
    """Parameters, spec and description come from :class:`Parameterized`; state is built lazily."""

    name: ClassVar[str] = ""
    kind: ClassVar[str] = ""
    family: ClassVar[str] = ""

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        """Parameter sets the tests build this component with."""
        return [{}]

    # ---- lazily built per-instance state -------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        state: dict[str, Any] | None = self.__dict__.get("_state_")
        if state is None:
            self._validate()
            state = self._init_state()
            self.__dict__["_state_"] = state
        return state

    def _validate(self) -> None:
        """Check the parameters (called once, at first use)."""

    def _init_state(self) -> dict[str, Any]:
        return {}


# =============================================================================================
# Budget managers
# =============================================================================================
class BudgetManager(_Component):
    """Base class of budget managers: pace the queries so that about ``budget`` of the records are labeled.

    ``is_budget_left()`` says whether one more query now stays within the budget; ``admits(utility)``
    says whether a record of that utility deserves a query now (default: ``is_budget_left()``);
    ``update(queried)`` is called once per record with the final decision.
    """

    kind: ClassVar[str] = "budget"

    def __init__(self, *, budget: float = 0.1) -> None:
        self.budget = budget

    def _validate(self) -> None:
        _check_fraction(self.budget, "budget", type(self).__name__)

    def _init_state(self) -> dict[str, Any]:
        return {"seen": 0, "queried": 0}

    def is_budget_left(self) -> bool:
        raise NotImplementedError(f"{type(self).__name__} must implement is_budget_left()")

    def admits(self, utility: float) -> bool:
        """Whether a record of this utility may be queried now; call it at most once per record."""
        return self.is_budget_left()

    def update(self, queried: bool) -> None:
        """Record the decision taken for one record."""
        state = self._state()
        state["seen"] += 1
        state["queried"] += int(bool(queried))

    def reset(self) -> None:
        """Forget everything seen so far (a new stream)."""
        self.__dict__.pop("_state_", None)

    @property
    def seen(self) -> int:
        return int(self._state()["seen"])

    @property
    def queried(self) -> int:
        return int(self._state()["queried"])

    def _paced(self) -> bool:
        """Querying the next record keeps queried / seen ≤ budget."""
        state = self._state()
        return state["queried"] + 1 <= float(self.budget) * (state["seen"] + 1) + 1e-9


class FixedFraction(BudgetManager):
    """Fixed fraction: query only while queried / seen stays at most the budget (Žliobaitė et al. 2014).

    >>> bm = FixedFraction(budget=0.25)
    >>> decisions = []
    >>> for _ in range(8):
    ...     q = bm.is_budget_left()
    ...     bm.update(q)
    ...     decisions.append(q)
    >>> decisions
    [False, False, False, True, False, False, False, True]
    """

    name = "fixed-fraction"

    def __init__(self, *, budget: float = 0.1) -> None:
        self.budget = budget

    def is_budget_left(self) -> bool:
        return self._paced()


class EstimatedBudget(BudgetManager):
    """Estimated budget: spending estimated over a sliding window of w records (Žliobaitė et al. 2014).

    The labels spent recently are estimated as ``û ← û (w - 1) / w + queried`` (an exponential window
    of about ``w`` records); a query is allowed while the estimate after it, ``û (w - 1) / w + 1``, stays
    within half a label of ``budget · w``. (Žliobaitė's rule ``û / w < budget`` overspends by half a
    label per window on average: about 5 % at budget 0.1, w = 100.) Unlike a cumulative fraction it
    forgets, so a long quiet period is not followed by a long burst of queries. ``window`` defaults to
    ``max(100, ceil(10 / budget))`` and must hold at least ``1 / budget`` records.
    """

    name = "estimated-budget"

    def __init__(self, *, budget: float = 0.1, window: int | None = None) -> None:
        self.budget = budget
        self.window = window

    def _validate(self) -> None:
        super()._validate()
        owner = type(self).__name__
        check_int(self.window, "window", owner, min=1, allow_none=True)
        if self.window is not None and self.window * float(self.budget) < 1.0:
            raise _fail("window", owner, f"an int >= 1 / budget = {1.0 / float(self.budget):g}", self.window)

    def _init_state(self) -> dict[str, Any]:
        w = self.window if self.window is not None else max(100, math.ceil(10.0 / float(self.budget)))
        return {"seen": 0, "queried": 0, "u_hat": 0.0, "w": int(w)}

    def is_budget_left(self) -> bool:
        state = self._state()
        w = state["w"]
        return bool(state["u_hat"] * (w - 1) / w + 1.0 <= float(self.budget) * w + 0.5)

    def update(self, queried: bool) -> None:
        super().update(queried)
        state = self._state()
        w = state["w"]
        state["u_hat"] = state["u_hat"] * (w - 1) / w + float(bool(queried))

    @property
    def estimate(self) -> float:
        """The estimated share of recent records that were queried, ``û / w``."""
        state = self._state()
        return float(state["u_hat"] / state["w"])


class BalancedIncrementalQuantileFilter(BudgetManager):
    """Balanced incremental quantile filter: utilities above a balanced window quantile (Kottke et al. 2015).

    The threshold is the ``1 - budget`` quantile of the last ``window`` utilities, lowered when queries
    are behind the budget and raised when ahead: ``θ - range · (budget · seen - queried) / tolerance``.
    When the window's utilities are all equal the quantile carries no information, and the record is
    admitted by fixed-fraction pacing instead. ``is_budget_left()`` (asked by strategies that have no
    utility for a record) is fixed-fraction pacing too. The default ``tolerance`` of 5 balances more
    tightly than the 50 often used, so that every 1,000-record window stays within ±10 % of the budget.
    """

    name = "balanced-incremental-quantile"

    def __init__(self, *, budget: float = 0.1, window: int = 100, tolerance: float = 5.0) -> None:
        self.budget = budget
        self.window = window
        self.tolerance = tolerance

    def _validate(self) -> None:
        super()._validate()
        check_int(self.window, "window", type(self).__name__, min=1)
        tol = check_float(self.tolerance, "tolerance", type(self).__name__, low=0.0)
        if tol <= 0:
            raise _fail("tolerance", type(self).__name__, "a number > 0", self.tolerance)

    def _init_state(self) -> dict[str, Any]:
        # the window in arrival order (to evict the oldest) and sorted (for the quantile)
        return {"seen": 0, "queried": 0, "utilities": deque(), "sorted": []}

    def is_budget_left(self) -> bool:
        return self._paced()

    def threshold(self) -> float:
        """The balanced threshold for the next record (NaN before any utility was seen)."""
        state = self._state()
        values = state["sorted"]
        if not values:
            return float("nan")
        # the (1 - budget) quantile with linear interpolation, as np.quantile's default
        pos = (1.0 - float(self.budget)) * (len(values) - 1)
        lo = int(math.floor(pos))
        hi = min(lo + 1, len(values) - 1)
        theta = values[lo] + (values[hi] - values[lo]) * (pos - lo)
        spread = values[-1] - values[0]
        behind = float(self.budget) * (state["seen"] + 1) - state["queried"]
        return theta - spread * behind / float(self.tolerance)

    def admits(self, utility: float) -> bool:
        state = self._state()
        u = float(utility)
        window, values = state["utilities"], state["sorted"]
        window.append(u)
        bisect.insort(values, u)
        if len(window) > int(self.window):
            values.pop(bisect.bisect_left(values, window.popleft()))
        if len(values) < 2 or values[0] == values[-1]:
            return self._paced()
        return bool(u >= self.threshold())


# =============================================================================================
# Stream strategies
# =============================================================================================
class StreamStrategy(_Component):
    """Base class of stream strategies: ``decide(row, budget)`` for one record at a time.

    Subclasses set ``name`` (the registry key, kebab-case, starting with ``stream-``), ``family``,
    ``needs`` (``probs`` and/or ``embeddings``) and implement ``decide``. ``cost`` is per record, one of
    :data:`STREAM_COST_CLASSES`. Stochastic strategies take a ``seed``; when it is None the seed given
    to :meth:`reset` (the campaign's) is used, else 0.
    """

    kind: ClassVar[str] = "stream"
    needs: ClassVar[frozenset[str]] = frozenset({"probs"})
    task_types: ClassVar[frozenset[str]] = frozenset({"classification"})
    batch_aware: ClassVar[bool] = False
    cost: ClassVar[str] = "O(1)"

    def decide(self, row: StreamRow, budget: BudgetManager) -> bool:
        raise NotImplementedError(f"{type(self).__name__} must implement decide(row, budget)")

    def reset(self, seed: int | None = None) -> None:
        """Start over (a new stream); ``seed`` is used when the strategy's own ``seed`` is None."""
        self.__dict__.pop("_state_", None)
        self.__dict__["_fallback_seed_"] = seed

    def _validate(self) -> None:
        owner = type(self).__name__
        params = self.get_params()
        if "seed" in params:
            check_int(params["seed"], "seed", owner, min=0, allow_none=True)
        if "score" in params:
            check_choice(params["score"], "score", owner, UNCERTAINTY_SCORES)

    def _rng(self) -> np.random.Generator:
        state = self._state()
        rng: np.random.Generator | None = state.get("rng")
        if rng is None:
            own = getattr(self, "seed", None)
            fallback = self.__dict__.get("_fallback_seed_")
            seed = own if own is not None else (fallback if fallback is not None else 0)
            rng = np.random.default_rng([int(seed), zlib.crc32(self.name.encode())])
            state["rng"] = rng
        return rng

    @staticmethod
    def _uncertainty(row: StreamRow, score: str) -> float:
        return float(stream_uncertainty(np.asarray(row.probs)[None, :], score)[0])


class FixedThreshold(StreamStrategy):
    """Fixed uncertainty threshold: query when the uncertainty is at least `threshold` (Žliobaitė et al. 2014).

    ``score`` is least-confidence, margin or entropy, scaled to [0, 1] (:func:`stream_uncertainty`).
    It spends at most the budget; when fewer records than the budget pass the threshold it spends less
    (a fixed threshold cannot follow a model that grows confident: use variable uncertainty for that).
    """

    name = "stream-threshold"
    family: ClassVar[str] = "uncertainty"

    def __init__(self, *, score: str = "least-confidence", threshold: float = 0.2) -> None:
        self.score = score
        self.threshold = threshold

    def _validate(self) -> None:
        super()._validate()
        check_float(self.threshold, "threshold", type(self).__name__, low=0.0, high=1.0)

    def decide(self, row: StreamRow, budget: BudgetManager) -> bool:
        self._state()
        u = self._uncertainty(row, self.score)
        return bool(budget.admits(u) and u >= self.threshold)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"score": "margin", "threshold": 0.5}, {"score": "entropy"}]


class _AdaptiveThreshold(StreamStrategy):
    """Variable uncertainty's threshold θ on the certainty ``1 - u``: lowered after a query, raised after none."""

    score: str
    step: float

    def _init_state(self) -> dict[str, Any]:
        return {"theta": float(getattr(self, "theta", 1.0))}

    def _validate(self) -> None:
        super()._validate()
        owner = type(self).__name__
        step = check_float(self.step, "step", owner, low=0.0, high=1.0)
        if not 0.0 < step < 1.0:
            raise _fail("step", owner, "a number in (0, 1)", step)

    def _vary(self, u: float, scale: float = 1.0) -> bool:
        """Query if ``1 - u < θ · scale``; then θ ← θ(1 - s), else θ ← θ(1 + s)."""
        state = self._state()
        step = float(self.step)
        if 1.0 - u < state["theta"] * scale:
            state["theta"] *= 1.0 - step
            return True
        state["theta"] *= 1.0 + step
        return False

    @property
    def current_threshold(self) -> float:
        """The adaptive threshold θ on the certainty ``1 - u``."""
        return float(self._state()["theta"])


class VariableUncertainty(_AdaptiveThreshold):
    """Variable uncertainty: an uncertainty threshold that adapts to spend the budget (Žliobaitė et al. 2014).

    A record is queried when its certainty ``1 - u`` is below θ (θ starts at ``theta``); θ shrinks by
    the factor ``1 - step`` after a query and grows by ``1 + step`` after a record the budget allowed but
    the rule skipped, so the strategy keeps asking for the most uncertain records it can afford.

    >>> s, bm = VariableUncertainty(step=0.1), FixedFraction(budget=1.0)
    >>> [s.decide(StreamRow(id=i, probs=np.array([p, 1 - p])), bm) for i, p in enumerate([0.75, 0.99, 0.99])]
    [True, False, True]
    >>> round(s.current_threshold, 4)
    0.891
    """

    name = "stream-variable-uncertainty"
    family: ClassVar[str] = "uncertainty"

    def __init__(self, *, score: str = "least-confidence", step: float = 0.01, theta: float = 1.0) -> None:
        self.score = score
        self.step = step
        self.theta = theta

    def _validate(self) -> None:
        super()._validate()
        check_float(self.theta, "theta", type(self).__name__, low=0.0, high=1.0)

    def decide(self, row: StreamRow, budget: BudgetManager) -> bool:
        self._state()
        u = self._uncertainty(row, self.score)
        if not budget.admits(u):
            return False
        return self._vary(u)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"score": "entropy", "step": 0.05}]


class RandomizedVariableUncertainty(_AdaptiveThreshold):
    """Randomized variable uncertainty: the adaptive threshold times N(1, δ) noise (Žliobaitė et al. 2014).

    Like variable uncertainty, but each record is compared with ``θ · η``, ``η ~ N(1, delta)``, so that
    records far from the decision boundary are sometimes queried too (drift far from it is noticed).
    """

    name = "stream-randomized-variable-uncertainty"
    family: ClassVar[str] = "uncertainty"

    def __init__(
        self, *, score: str = "least-confidence", step: float = 0.01, delta: float = 1.0, seed: int | None = None
    ) -> None:
        self.score = score
        self.step = step
        self.delta = delta
        self.seed = seed

    def _validate(self) -> None:
        super()._validate()
        check_float(self.delta, "delta", type(self).__name__, low=0.0)

    def decide(self, row: StreamRow, budget: BudgetManager) -> bool:
        self._state()
        eta = float(self._rng().normal(1.0, float(self.delta)))
        u = self._uncertainty(row, self.score)
        if not budget.admits(u):
            return False
        return self._vary(u, eta)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"seed": 7, "delta": 0.5}]


class SplitStrategy(_AdaptiveThreshold):
    """Split: a random share ν sampled at random for drift, the rest variable uncertainty (Žliobaitė et al. 2014).

    With probability ``split`` (ν) a record goes to the random branch and is queried with probability
    ``budget.budget`` when the budget is left (an unbiased sample, so that a change far from the
    boundary is seen); otherwise variable uncertainty decides.
    """

    name = "stream-split"
    family: ClassVar[str] = "uncertainty"

    def __init__(
        self, *, score: str = "least-confidence", step: float = 0.01, split: float = 0.2, seed: int | None = None
    ) -> None:
        self.score = score
        self.step = step
        self.split = split
        self.seed = seed

    def _validate(self) -> None:
        super()._validate()
        check_float(self.split, "split", type(self).__name__, low=0.0, high=1.0)

    def decide(self, row: StreamRow, budget: BudgetManager) -> bool:
        self._state()
        rng = self._rng()
        branch, coin = rng.random(2)
        if branch < float(self.split):
            return bool(budget.is_budget_left() and coin < float(budget.budget))
        u = self._uncertainty(row, self.score)
        if not budget.admits(u):
            return False
        return self._vary(u)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"split": 0.5, "seed": 3}]


class PeriodicSampling(StreamStrategy):
    """Periodic: query every m-th record, m = round(1 / budget) by default (baseline as in Kottke et al. 2021).

    Records whose stream position ``index`` is a multiple of ``period`` are queried when the budget
    manager has budget left. Periodic sampling is the stream baseline of scikit-activeml (Kottke et al.
    2021, "scikit-activeml: a library and toolbox for active learning algorithms").
    """

    name = "stream-periodic"
    family: ClassVar[str] = "baseline"
    needs: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, period: int | None = None) -> None:
        self.period = period

    def _validate(self) -> None:
        check_int(self.period, "period", type(self).__name__, min=1, allow_none=True)

    def decide(self, row: StreamRow, budget: BudgetManager) -> bool:
        self._state()
        period = self.period if self.period is not None else max(1, round(1.0 / float(budget.budget)))
        if int(row.index) % int(period) != 0:
            return False
        return bool(budget.is_budget_left())

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"period": 3}]


class StreamRandom(StreamStrategy):
    """Random: query each record with probability `rate` (default: the budget) (Žliobaitė et al. 2014).

    Queries only while the budget manager has budget left. The baseline that every stream strategy
    must beat; its labeled records are an unbiased sample.
    """

    name = "stream-random"
    family: ClassVar[str] = "baseline"
    needs: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, rate: float | None = None, seed: int | None = None) -> None:
        self.rate = rate
        self.seed = seed

    def _validate(self) -> None:
        super()._validate()
        if self.rate is not None:
            _check_fraction(self.rate, "rate", type(self).__name__)

    def decide(self, row: StreamRow, budget: BudgetManager) -> bool:
        self._state()
        rate = float(budget.budget) if self.rate is None else float(self.rate)
        draw = float(self._rng().random())
        return bool(budget.is_budget_left() and draw < rate)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"rate": 0.5, "seed": 11}]


class DensityUncertainty(_AdaptiveThreshold):
    """Density-focused uncertainty: variable uncertainty on records in dense regions (Ienco et al. 2014).

    DBALStream: the local density of a record is the number of records of the last ``window``
    embeddings that would have it as their nearest neighbour (:func:`local_density_counts`). Only
    records with a local density above zero (or while the window holds fewer than two records) are
    candidates; among them variable uncertainty decides, so outliers are not queried however
    uncertain. The window keeps its pairwise distances: O(w·d + w²) per record.
    """

    name = "stream-density-uncertainty"
    family: ClassVar[str] = "density"
    needs: ClassVar[frozenset[str]] = frozenset({"probs", "embeddings"})
    cost: ClassVar[str] = "O(w²)"

    def __init__(self, *, score: str = "least-confidence", step: float = 0.01, window: int = 100) -> None:
        self.score = score
        self.step = step
        self.window = window

    def _validate(self) -> None:
        super()._validate()
        check_int(self.window, "window", type(self).__name__, min=2)

    def _init_state(self) -> dict[str, Any]:
        state = super()._init_state()
        state.update(points=None, dist=None, filled=0, next=0)
        return state

    def density(self, embedding: np.ndarray) -> tuple[int, int]:
        """Add ``embedding`` to the window; return (its local density count, the window size before)."""
        state = self._state()
        x = np.asarray(embedding, dtype=np.float64).ravel()
        w = int(self.window)
        if state["points"] is None:
            state["points"] = np.zeros((w, x.size))
            state["dist"] = np.full((w, w), np.inf)
        points, dist, filled = state["points"], state["dist"], state["filled"]
        if points.shape[1] != x.size:
            raise ConfigError(
                f"{self.name}: embeddings changed dimension from {points.shape[1]} to {x.size} within one stream."
            )
        d = np.sqrt(((points[:filled] - x) ** 2).sum(axis=1))
        count = local_density_counts(d, dist[:filled, :filled].min(axis=1)) if filled else 0
        # insert x into the ring buffer (overwriting the oldest record when full)
        slot = state["next"] if filled == w else filled
        all_d = np.full(w, np.inf)
        all_d[:filled] = d
        all_d[slot] = np.inf
        points[slot] = x
        dist[slot, :] = all_d
        dist[:, slot] = all_d
        state["filled"] = min(filled + 1, w)
        state["next"] = (slot + 1) % w
        return count, filled

    def decide(self, row: StreamRow, budget: BudgetManager) -> bool:
        self._state()
        if row.embedding is None:
            raise ConfigError(
                f"{self.name} needs embeddings; the learner's Snapshot has none. Return embeddings from "
                "Learner.infer or choose a strategy that needs only probs."
            )
        count, before = self.density(row.embedding)
        if count == 0 and before >= 2:
            return False
        u = self._uncertainty(row, self.score)
        if not budget.admits(u):
            return False
        return self._vary(u)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"window": 5, "score": "margin"}]


class SelectiveSampling(StreamStrategy):
    """Selective sampling: query with probability b / (b + margin), b = `smoothing` (Cesa-Bianchi et al. 2006).

    ``margin`` is the gap between the two most probable classes; records on the boundary are always
    queried (when the budget allows), confident ones rarely but with a probability above zero, which keeps the labeled
    sample from collapsing onto the current boundary.
    """

    name = "stream-selective-sampling"
    family: ClassVar[str] = "uncertainty"

    def __init__(self, *, smoothing: float = 0.1, seed: int | None = None) -> None:
        self.smoothing = smoothing
        self.seed = seed

    def _validate(self) -> None:
        super()._validate()
        value = check_float(self.smoothing, "smoothing", type(self).__name__, low=0.0)
        if value <= 0:
            raise _fail("smoothing", type(self).__name__, "a number > 0", self.smoothing)

    def decide(self, row: StreamRow, budget: BudgetManager) -> bool:
        self._state()
        draw = float(self._rng().random())
        u = float(stream_uncertainty(np.asarray(row.probs)[None, :], "margin")[0])
        if not budget.admits(u):
            return False
        gap = 1.0 - u
        b = float(self.smoothing)
        return bool(draw < b / (b + gap))

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"smoothing": 1.0, "seed": 5}]


# =============================================================================================
# Discovery
# =============================================================================================
_C = TypeVar("_C", bound=_Component)


def _import_all() -> None:
    import alloop.strategies as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{pkg.__name__}.{mod.name}")


def _crawl(base: type[_C]) -> dict[str, type[_C]]:
    _import_all()
    found: dict[str, type[_C]] = {}
    todo = list(base.__subclasses__())
    while todo:
        sub = todo.pop()
        todo.extend(sub.__subclasses__())
        if sub.name and not sub.__name__.startswith("_"):
            other = found.get(sub.name)
            if other is not None and other is not sub:
                raise RuntimeError(f"Two {base.__name__} classes are named {sub.name!r}: {other} and {sub}")
            found[sub.name] = sub
    return dict(sorted(found.items()))


def all_stream_strategies() -> dict[str, type[StreamStrategy]]:
    """Every concrete stream strategy class, keyed by its ``name``, sorted by name."""
    return _crawl(StreamStrategy)


def all_budget_managers() -> dict[str, type[BudgetManager]]:
    """Every concrete budget manager class, keyed by its ``name``, sorted by name."""
    return _crawl(BudgetManager)


def _build(spec: str, registry: dict[str, type[_C]], what: str, extra: dict[str, Any] | None = None) -> _C:
    name, kwargs = parse_spec(spec)
    if name not in registry:
        import difflib

        close = difflib.get_close_matches(name, registry, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"Unknown {what} {name!r}.{hint} Known: {', '.join(registry)}.")
    cls = registry[name]
    allowed = cls._param_names()
    unknown = [k for k in kwargs if k not in allowed]
    if unknown:
        raise ConfigError(
            f"The {what} {name!r} has no parameter {unknown[0]!r}; its parameters are: "
            + (", ".join(allowed) if allowed else "(none)")
            + "."
        )
    for key, value in (extra or {}).items():
        if key in kwargs and kwargs[key] != value:
            raise ConfigError(
                f"The {what} spec {spec!r} sets {key}={kwargs[key]!r} but {key}={value!r} is given too; give it once."
            )
        kwargs[key] = value
    return cls(**kwargs)


def make_stream_strategy(spec: str | StreamStrategy) -> StreamStrategy:
    """Build a stream strategy from ``"name"`` or ``"name(key=value, ...)"`` (or pass an instance through).

    >>> make_stream_strategy("stream-random(seed=3)")
    StreamRandom(rate=None, seed=3)
    """
    if isinstance(spec, StreamStrategy):
        return spec
    if not isinstance(spec, str):
        raise ConfigError(
            f"A stream strategy must be a name, a spec string or a StreamStrategy; got {type(spec).__name__}."
        )
    return _build(spec, all_stream_strategies(), "stream strategy")


def make_budget_manager(spec: str | BudgetManager, *, budget: float | None = None) -> BudgetManager:
    """Build a budget manager from a spec; ``budget`` (when given) sets its budget fraction.

    >>> make_budget_manager("estimated-budget(window=500)", budget=0.05).spec
    'estimated-budget(budget=0.05, window=500)'
    """
    if isinstance(spec, BudgetManager):
        if budget is not None and spec.budget != budget:
            raise ConfigError(
                f"The budget manager {spec!r} has budget {spec.budget!r} but budget={budget!r} is given too; "
                "give it once."
            )
        return spec
    if not isinstance(spec, str):
        raise ConfigError(
            f"A budget manager must be a name, a spec string or a BudgetManager; got {type(spec).__name__}."
        )
    return _build(spec, all_budget_managers(), "budget manager", None if budget is None else {"budget": budget})
