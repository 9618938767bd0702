"""Composition: any sampling function becomes a strategy, and strategies combine into new ones.

``@as_strategy`` turns a plain function ``f(ctx) -> scores`` (or ``f(ctx, k) -> ids``, detected by its
signature) into a :class:`Strategy` class; its keyword-only arguments become the strategy's parameters.
The combinators are strategies whose keyword arguments are other strategies (instances or spec strings,
resolved at first use): :class:`WeightedSum`, :class:`Product`, :class:`TwoStage`, :class:`Schedule`,
:class:`PerClassQuota` and :class:`Exclude`. Each prints back as a spec in the grammar of
:mod:`alloop.strategies._spec` (``"0.7*margin + 0.3*entropy"``, ``"top(margin, 10k) >> coreset"``,
``"coreset@0-2, margin"``), and that spec parses to an equal composite.

>>> import numpy as np
>>> from alloop.strategies import SelectionContext, make_strategy
>>> @as_strategy(name="doc-first-class-prob", needs={"probs"}, register=False)
... def first_class(ctx, *, column=0):
...     '''Records whose probability of one class is highest.'''
...     return ctx.probs[:, column]
>>> ctx = SelectionContext(ids=np.array([10, 11, 12]), index=np.arange(3),
...                        probs=np.array([[0.2, 0.8], [0.5, 0.5], [0.9, 0.1]]))
>>> first_class(column=1).select(ctx, 2).tolist()
[10, 11]
>>> mix = make_strategy("0.7*margin + 0.3*entropy")
>>> mix.spec, sorted(mix.needs)
('0.7*margin + 0.3*entropy', ['probs'])
>>> make_strategy(mix.spec) == mix
True
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

from alloop.errors import ConfigError
from alloop.strategies._base import COST_CLASSES, NEEDS, SelectionContext, Strategy
from alloop.strategies._topk import top_k

__all__ = [
    "Exclude",
    "PerClassQuota",
    "Product",
    "Schedule",
    "TwoStage",
    "WeightedSum",
    "as_strategy",
    "rank_normalise",
    "subset_context",
]

T = TypeVar("T")

# Binding strength of spec syntax, loosest first: a part printed inside a tighter construct gets parentheses.
SCHEDULE, PIPELINE, SUM, PRODUCT, ATOM = range(5)
_NAME_RE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_RESERVED = frozenset({"top", "labeled"})


# ---- pure helpers -----------------------------------------------------------------------------------
def rank_normalise(scores: np.ndarray) -> np.ndarray:
    """Scores → ranks scaled to (0, 1]: the best gets 1, ties share their average rank, NaN gets 0.

    Only the order of each part's scores matters when parts are combined, so scales never dominate.

    >>> rank_normalise(np.array([0.1, 5.0, 0.1, np.nan])).tolist()
    [0.375, 0.75, 0.375, 0.0]
    """
    s = np.asarray(scores, dtype=np.float64)
    out = np.zeros(s.shape, dtype=np.float64)
    ok = ~np.isnan(s)
    if ok.any():
        from scipy.stats import rankdata  # lazy: scipy.stats costs ~0.4 s at ``import alloop`` (measured)

        out[ok] = rankdata(s[ok], method="average") / s.size
    return out


def subset_context(ctx: SelectionContext, positions: np.ndarray) -> SelectionContext:
    """The context restricted to the candidates at ``positions`` (kept in pool order; copies, never views)."""
    pos = np.sort(np.asarray(positions, dtype=np.int64))
    return dataclasses.replace(
        ctx,
        ids=ctx.ids[pos],
        index=ctx.index[pos],
        probs=None if ctx.probs is None else ctx.probs[pos],
        embeddings=None if ctx.embeddings is None else ctx.embeddings[pos],
        samples=None if ctx.samples is None else ctx.samples[:, pos],
        history=None if ctx.history is None else {key: value[pos] for key, value in ctx.history.items()},
    )


def _positions_of(ctx: SelectionContext, ids: np.ndarray) -> np.ndarray:
    where = {v: j for j, v in enumerate(ctx.ids.tolist())}
    return np.array([where[v] for v in np.asarray(ids).tolist()], dtype=np.int64)


def _select_positions(strategy: Strategy, ctx: SelectionContext, k: int) -> np.ndarray:
    """Positions (into ``ctx``) of what ``strategy`` selects, best first."""
    if type(strategy).select is Strategy.select:
        return top_k(strategy.score(ctx), k)
    return _positions_of(ctx, strategy.select(ctx, k))


def _num(value: float) -> str:
    v = float(value)
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


def _max_cost(parts: Iterable[Strategy]) -> str:
    order = {c: j for j, c in enumerate(COST_CLASSES)}
    costs = [p.cost for p in parts]
    return max(costs, key=lambda c: order.get(c, 0)) if costs else COST_CLASSES[0]


def _freeze(value: Any) -> Any:
    if isinstance(value, Strategy):
        return _strategy_key(value)
    if isinstance(value, np.ndarray):
        return ("ndarray", value.shape, value.dtype.str, value.tobytes())
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (set, frozenset)):
        return frozenset(_freeze(v) for v in value)
    return value


def _strategy_key(strategy: Strategy) -> Any:
    if isinstance(strategy, _Composite):
        return strategy._key()
    return (type(strategy), _freeze(strategy.get_params()))


def _spec_at(part: Strategy, level: int) -> str:
    """``part``'s spec, in parentheses when it binds more loosely than ``level`` requires."""
    text, own = part._spec_and_level() if isinstance(part, _Composite) else (part.spec, ATOM)
    return f"({text})" if own < level else text


class _PerInstance(Generic[T]):
    """A class attribute that instances compute from their parts (the class itself shows ``default``).

    ``Strategy.needs`` and friends are class-level for ordinary strategies; a composite's depend on its parts.
    Listing code that reads them from the class gets the neutral default.
    """

    def __init__(self, default: T, compute: Callable[[Any], T]) -> None:
        self.default = default
        self.compute = compute

    def __get__(self, obj: Any, owner: Any = None) -> T:
        return self.default if obj is None else self.compute(obj)


# ---- composites -------------------------------------------------------------------------------------
class _Composite(Strategy):
    """Base of combinators: parts are Strategy instances or spec strings, resolved (and cached) at first use."""

    family: ClassVar[str] = "composite"
    _part_params: ClassVar[tuple[str, ...]] = ()  # parameters holding one part
    _parts_params: ClassVar[tuple[str, ...]] = ()  # parameters holding a tuple of parts

    needs: _PerInstance[frozenset[str]] = _PerInstance(frozenset(), lambda self: self._needs())  # type: ignore[assignment,misc]
    batch_aware: _PerInstance[bool] = _PerInstance(False, lambda self: any(p.batch_aware for p in self._parts()))  # type: ignore[assignment,misc]
    cost: _PerInstance[str] = _PerInstance("O(n)", lambda self: _max_cost(self._parts()))  # type: ignore[assignment,misc]

    # -- parts
    def _resolve(self, value: Any, param: str) -> Strategy:
        if isinstance(value, Strategy):
            return value
        if isinstance(value, str):
            from alloop.strategies._registry import make_strategy

            return make_strategy(value)
        raise ConfigError(
            f"The {param!r} parameter of {type(self).__name__} must be a Strategy or a spec string. Got {value!r}."
        )

    def _resolved(self) -> dict[str, Any]:
        """Part parameters → resolved Strategy (or tuple of them); cached while the parameters are unchanged."""
        raw = tuple(getattr(self, p) for p in (*self._part_params, *self._parts_params))
        cache = self.__dict__.get("_cache")
        if cache is not None and len(cache[0]) == len(raw) and all(a is b for a, b in zip(cache[0], raw, strict=True)):
            return dict(cache[1])
        out: dict[str, Any] = {}
        for p in self._part_params:
            out[p] = self._resolve(getattr(self, p), p)
        for p in self._parts_params:
            value = getattr(self, p)
            if isinstance(value, (str, Strategy)) or not isinstance(value, (tuple, list)) or not value:
                raise ConfigError(
                    f"The {p!r} parameter of {type(self).__name__} must be a non-empty tuple of strategies or "
                    f"spec strings. Got {value!r}."
                )
            out[p] = tuple(self._resolve(v, p) for v in value)
        self.__dict__["_cache"] = (raw, out)
        return dict(out)

    def _parts(self) -> list[Strategy]:
        parts: list[Strategy] = []
        for value in self._resolved().values():
            parts.extend(value if isinstance(value, tuple) else (value,))
        return parts

    def _needs(self) -> frozenset[str]:
        return frozenset().union(*(p.needs for p in self._parts()))

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names()}

    # -- identity
    def _normalised(self) -> dict[str, Any]:
        """Parameters in a canonical form (parts resolved); equal composites have equal ones."""
        params = self.get_params()
        params.update(self._resolved())
        return params

    def _key(self) -> Any:
        return (type(self), _freeze(self._normalised()))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Strategy):
            return NotImplemented
        try:
            return type(other) is type(self) and _strategy_key(self) == _strategy_key(other)
        except ConfigError:
            return self is other

    def __hash__(self) -> int:
        try:
            return hash(repr(self._key()))
        except ConfigError:
            return id(self)

    # -- spec
    def _spec_and_level(self) -> tuple[str, int]:
        """The spec in operator syntax and its binding level; the call form ``name(k=v)`` by default."""
        return self._call_spec(), ATOM

    def _call_spec(self) -> str:
        defaults = {
            p.name: p.default
            for p in inspect.signature(type(self).__init__).parameters.values()
            if p.default is not inspect.Parameter.empty
        }
        shown = []
        for key, value in self.get_params().items():
            if key in defaults and _freeze(defaults[key]) == _freeze(value):
                continue
            if isinstance(value, Strategy):
                value = value.spec
            elif key in self._parts_params and isinstance(value, (tuple, list)):
                value = tuple(v.spec if isinstance(v, Strategy) else v for v in value)
            shown.append(f"{key}={value!r}")
        return f"{self.name}({', '.join(shown)})" if shown else self.name

    @property
    def spec(self) -> str:
        """A spec string that :func:`make_strategy` parses back to an equal composite."""
        try:
            return self._spec_and_level()[0]
        except ConfigError:  # invalid parts or weights: still printable, the error comes at first use
            return self._call_spec()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r})"


class WeightedSum(_Composite):
    """Weighted sum of rank-normalised scores: each part votes with the rank of its score, not its scale.

    Spec: ``0.7*margin + 0.3*density-weighted``; ``margin + entropy`` weighs both 1; ``margin - random`` uses -1.
    Selection is the top-k of the combined score (so it is not batch-aware, whatever its parts are).

    >>> WeightedSum(parts=("margin", "entropy"), weights=(0.7, 0.3)).spec
    '0.7*margin + 0.3*entropy'
    """

    name = "weighted"
    _parts_params = ("parts",)
    batch_aware: _PerInstance[bool] = _PerInstance(False, lambda self: False)  # type: ignore[assignment,misc]

    def __init__(self, *, parts: tuple[str | Strategy, ...] = (), weights: tuple[float, ...] | None = None) -> None:
        self.parts = parts
        self.weights = weights

    def _weights(self, n_parts: int) -> np.ndarray:
        if self.weights is None:
            return np.ones(n_parts)
        w = self.weights
        ok = isinstance(w, (tuple, list)) and len(w) == n_parts
        ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in w)
        if not ok:
            raise ConfigError(
                f"The 'weights' parameter of WeightedSum must be a tuple of {n_parts} finite numbers "
                f"(one per part) or None. Got {w!r}."
            )
        return np.asarray(w, dtype=np.float64)

    def _normalised(self) -> dict[str, Any]:
        parts = self._resolved()["parts"]
        return {"parts": parts, "weights": tuple(self._weights(len(parts)).tolist())}

    def score(self, ctx: SelectionContext) -> np.ndarray:
        parts = self._resolved()["parts"]
        w = self._weights(len(parts))
        total = np.zeros(ctx.n, dtype=np.float64)
        for weight, part in zip(w, parts, strict=True):
            total += weight * rank_normalise(part.score(ctx))
        return total

    def _spec_and_level(self) -> tuple[str, int]:
        parts = self._resolved()["parts"]
        w = self._weights(len(parts))
        text = ""
        for j, (weight, part) in enumerate(zip(w, parts, strict=True)):
            body = _spec_at(part, PRODUCT)
            mag = abs(float(weight))
            term = body if mag == 1.0 and len(parts) > 1 else f"{_num(mag)}*{body}"
            if j == 0:
                text = f"-{term}" if weight < 0 else term
            else:
                text += f" - {term}" if weight < 0 else f" + {term}"
        return text, SUM

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"parts": ("margin", "entropy"), "weights": (0.7, 0.3)}, {"parts": ("least-confidence", "random")}]


class Product(_Composite):
    """Product of rank-normalised scores: a record must rank well under every part.

    Spec: ``margin * coreset``. Selection is the top-k of the product.

    >>> Product(parts=("margin", "entropy")).spec
    'margin * entropy'
    """

    name = "product"
    _parts_params = ("parts",)
    batch_aware: _PerInstance[bool] = _PerInstance(False, lambda self: False)  # type: ignore[assignment,misc]

    def __init__(self, *, parts: tuple[str | Strategy, ...] = ()) -> None:
        self.parts = parts

    def score(self, ctx: SelectionContext) -> np.ndarray:
        total = np.ones(ctx.n, dtype=np.float64)
        for part in self._resolved()["parts"]:
            total *= rank_normalise(part.score(ctx))
        return total

    def _spec_and_level(self) -> tuple[str, int]:
        parts = self._resolved()["parts"]
        if len(parts) < 2:
            return self._call_spec(), ATOM
        return " * ".join(_spec_at(p, ATOM) for p in parts), PRODUCT

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"parts": ("margin", "entropy")}]


_COUNT_RE = re.compile(r"\s*((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*k\s*")


def _prefilter_size(m: Any, k: int) -> int:
    """``m`` as an absolute count (an int) or a multiple of ``k`` (a string such as ``"10k"``)."""
    if isinstance(m, (int, np.integer)) and not isinstance(m, bool) and m >= 1:
        return int(m)
    if isinstance(m, str):
        match = _COUNT_RE.fullmatch(m)
        if match and float(match.group(1)) > 0:
            return max(1, math.ceil(float(match.group(1)) * k))
    raise ConfigError(f"The 'm' parameter of TwoStage must be an int >= 1 or a multiple of k such as '10k'. Got {m!r}.")


def _normalised_m(m: Any) -> Any:
    _prefilter_size(m, 1)  # validates
    if isinstance(m, str):
        match = _COUNT_RE.fullmatch(m)
        assert match is not None
        return ("k", float(match.group(1)))
    return ("abs", int(m))


class TwoStage(_Composite):
    """Two-stage selection: prefilter the top ``m`` by ``first``, then select ``k`` among them by ``then``.

    ``m`` is an absolute count (``500``) or a multiple of ``k`` (``"10k"``); it is never below ``k``. The
    classic use is uncertainty → diversity, ``top(margin, 10k) >> coreset`` (as in cluster-margin, Citovsky
    et al. 2021). ``score`` returns the first stage's scores.

    >>> TwoStage(first="margin", then="random", m="10k").spec
    'top(margin, 10k) >> random'
    """

    name = "two-stage"
    _part_params = ("first", "then")

    def __init__(
        self, *, first: str | Strategy | None = None, then: str | Strategy | None = None, m: Any = "10k"
    ) -> None:
        self.first = first
        self.then = then
        self.m = m

    def _normalised(self) -> dict[str, Any]:
        out = self._resolved()
        out["m"] = _normalised_m(self.m)
        return out

    def score(self, ctx: SelectionContext) -> np.ndarray:
        return np.asarray(self._resolved()["first"].score(ctx), dtype=np.float64)

    def select(self, ctx: SelectionContext, k: int) -> np.ndarray:
        parts = self._resolved()
        m = max(_prefilter_size(self.m, k), k)
        sub = ctx if m >= ctx.n else subset_context(ctx, _select_positions(parts["first"], ctx, m))
        return parts["then"].select(sub, k)

    def _spec_and_level(self) -> tuple[str, int]:
        parts = self._resolved()
        kind, value = _normalised_m(self.m)
        size = f"{_num(value)}k" if kind == "k" else str(value)
        return f"top({_spec_at(parts['first'], PIPELINE)}, {size}) >> {_spec_at(parts['then'], PIPELINE)}", PIPELINE

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [
            {"first": "margin", "then": "random(seed=1)", "m": "2k"},
            {"first": "entropy", "then": "margin", "m": 8},
        ]


_LOOPS_RE = re.compile(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?")
_LABELED_RE = re.compile(r"\s*labeled\s*<\s*(\d+)\s*")


def _condition(text: Any) -> tuple[str, int, int]:
    """``"0-2"`` → ("loop", 0, 2); ``"3"`` → ("loop", 3, 3); ``"labeled<100"`` → ("labeled", 0, 100)."""
    if isinstance(text, str):
        match = _LOOPS_RE.fullmatch(text)
        if match:
            low = int(match.group(1))
            high = low if match.group(2) is None else int(match.group(2))
            if low <= high:
                return ("loop", low, high)
        match = _LABELED_RE.fullmatch(text)
        if match:
            return ("labeled", 0, int(match.group(1)))
    raise ConfigError(
        "Each entry of the 'when' parameter of Schedule must be a loop range such as '0-2' or '3', or a "
        f"labeled-set bound such as 'labeled<100'. Got {text!r}."
    )


def _condition_text(cond: tuple[str, int, int]) -> str:
    kind, low, high = cond
    if kind == "labeled":
        return f"labeled<{high}"
    return str(low) if low == high else f"{low}-{high}"


class Schedule(_Composite):
    """Schedule: switch strategies by loop number or by labeled-set size; the last part is the default.

    ``parts[i]`` is used while ``when[i]`` holds (the first that holds wins), else the last part. Spec:
    ``coreset@0-2, margin`` (loops 0 to 2, inclusive) or ``margin@labeled<100, entropy``.

    >>> Schedule(parts=("random", "margin"), when=("0-2",)).spec
    'random@0-2, margin'
    """

    name = "schedule"
    _parts_params = ("parts",)

    def __init__(self, *, parts: tuple[str | Strategy, ...] = (), when: tuple[str, ...] = ()) -> None:
        self.parts = parts
        self.when = when

    def _conditions(self, n_parts: int) -> list[tuple[str, int, int]]:
        when = self.when
        if isinstance(when, str) or not isinstance(when, (tuple, list)) or len(when) != n_parts - 1:
            raise ConfigError(
                f"The 'when' parameter of Schedule must be a tuple of {n_parts - 1} conditions, one per part but "
                f"the last (the default). Got {when!r}."
            )
        return [_condition(c) for c in when]

    def _normalised(self) -> dict[str, Any]:
        parts = self._resolved()["parts"]
        return {"parts": parts, "when": tuple(self._conditions(len(parts)))}

    def _needs(self) -> frozenset[str]:
        needs = super()._needs()
        if any(c[0] == "labeled" for c in self._conditions(len(self._resolved()["parts"]))):
            needs |= {"labels"}
        return needs

    def active(self, ctx: SelectionContext) -> Strategy:
        """The part in force for this context's loop and labeled-set size."""
        parts = self._resolved()["parts"]
        for (kind, low, high), part in zip(self._conditions(len(parts)), parts[:-1], strict=True):
            value = ctx.loop if kind == "loop" else int(ctx.labeled_ids.size)
            if low <= value <= high if kind == "loop" else value < high:
                return part
        return parts[-1]

    def score(self, ctx: SelectionContext) -> np.ndarray:
        return np.asarray(self.active(ctx).score(ctx), dtype=np.float64)

    def select(self, ctx: SelectionContext, k: int) -> np.ndarray:
        return self.active(ctx).select(ctx, k)

    def _spec_and_level(self) -> tuple[str, int]:
        parts = self._resolved()["parts"]
        conds = self._conditions(len(parts))
        if len(parts) < 2:
            return self._call_spec(), ATOM
        items = [f"{_spec_at(p, PIPELINE)}@{_condition_text(c)}" for p, c in zip(parts[:-1], conds, strict=True)]
        return ", ".join([*items, _spec_at(parts[-1], PIPELINE)]), SCHEDULE

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [
            {"parts": ("random(seed=2)", "margin"), "when": ("0-1",)},
            {"parts": ("margin", "entropy"), "when": ("labeled<5",)},
        ]


def _allocate(k: int, weights: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """Split ``k`` over groups in proportion to ``weights`` (largest remainder, ties → lower group), capped."""
    alloc = np.zeros(caps.size, dtype=np.int64)
    active = (weights > 0) & (caps > 0)
    remaining = int(min(k, caps[active].sum()))
    while remaining > 0 and active.any():
        share = np.where(active, weights, 0.0)
        raw = remaining * share / share.sum()
        base = np.floor(raw).astype(np.int64)
        extra = remaining - int(base.sum())
        frac = np.where(active, raw - base, np.nan)
        base[top_k(frac, extra)] += 1
        give = np.minimum(base, caps - alloc)
        alloc += give
        remaining -= int(give.sum())
        active &= alloc < caps
    return alloc


class PerClassQuota(_Composite):
    """Per-class quotas: split ``k`` over the predicted classes, then select within each class by ``inner``.

    ``quota`` is None (equal shares over the predicted classes present), ``"proportional"`` (shares follow the
    predicted class counts) or a tuple of one weight per class. A class with fewer candidates than its share
    passes the rest on. Results interleave the classes, best first within each.
    """

    name = "per-class-quota"
    _part_params = ("inner",)

    def __init__(self, *, inner: str | Strategy | None = None, quota: Any = None) -> None:
        self.inner = inner
        self.quota = quota

    def _needs(self) -> frozenset[str]:
        return super()._needs() | {"probs"}

    def _weights(self, counts: np.ndarray) -> np.ndarray:
        q = self.quota
        if q is None:
            return (counts > 0).astype(np.float64)
        if q == "proportional":
            return counts.astype(np.float64)
        ok = isinstance(q, (tuple, list)) and len(q) == counts.size
        ok = ok and all(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in q)
        if not ok or not any(q):
            raise ConfigError(
                "The 'quota' parameter of PerClassQuota must be None, 'proportional' or a tuple of "
                f"{counts.size} non-negative weights (one per class, not all 0). Got {q!r}."
            )
        return np.asarray(q, dtype=np.float64)

    def score(self, ctx: SelectionContext) -> np.ndarray:
        return np.asarray(self._resolved()["inner"].score(ctx), dtype=np.float64)

    def select(self, ctx: SelectionContext, k: int) -> np.ndarray:
        inner = self._resolved()["inner"]
        if ctx.probs is None:
            raise ConfigError("PerClassQuota needs 'probs' to know each record's predicted class.")
        predicted = np.asarray(ctx.probs).argmax(axis=1)
        counts = np.bincount(predicted, minlength=ctx.probs.shape[1])
        alloc = _allocate(k, self._weights(counts), counts)
        picks: list[np.ndarray] = []
        for c in np.flatnonzero(alloc):
            members = np.flatnonzero(predicted == c)
            picks.append(members[_select_positions(inner, subset_context(ctx, members), int(alloc[c]))])
        # interleave: the best of each class first, then the second best, ...
        order = sorted(
            ((rank, j, int(pos)) for j, chosen in enumerate(picks) for rank, pos in enumerate(chosen.tolist())),
        )
        return ctx.ids[np.array([pos for _, _, pos in order], dtype=np.int64)]

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{"inner": "margin"}, {"inner": "random(seed=4)", "quota": "proportional"}]


class Exclude(_Composite):
    """Exclusion rule: never select records with a flag (a History feature > 0) or whose id is listed.

    Excluded records are not candidates: with fewer eligible records than ``k``, fewer are returned.
    ``score`` gives them NaN.
    """

    name = "exclude"
    _part_params = ("inner",)

    def __init__(
        self, *, inner: str | Strategy | None = None, ids: tuple[Any, ...] = (), flag: str | None = None
    ) -> None:
        self.inner = inner
        self.ids = ids
        self.flag = flag

    def _needs(self) -> frozenset[str]:
        return super()._needs() | ({"history"} if self.flag is not None else frozenset())

    def _excluded(self, ctx: SelectionContext) -> np.ndarray:
        if isinstance(self.ids, (str, bytes)) or not isinstance(self.ids, (tuple, list, np.ndarray)):
            raise ConfigError(f"The 'ids' parameter of Exclude must be a tuple of record ids. Got {self.ids!r}.")
        skip = set(np.asarray(self.ids, dtype=object).tolist())
        out = np.array([v in skip for v in ctx.ids.tolist()], dtype=bool) if skip else np.zeros(ctx.n, dtype=bool)
        if self.flag is not None:
            history = ctx.history or {}
            if not isinstance(self.flag, str) or self.flag not in history:
                raise ConfigError(
                    f"The 'flag' parameter of Exclude must name a History feature, one of {sorted(history)}. "
                    f"Got {self.flag!r}."
                )
            values = np.asarray(history[self.flag], dtype=np.float64)
            out |= np.nan_to_num(values, nan=0.0) > 0
        return out

    def score(self, ctx: SelectionContext) -> np.ndarray:
        s = np.array(self._resolved()["inner"].score(ctx), dtype=np.float64)
        s[self._excluded(ctx)] = np.nan
        return s

    def select(self, ctx: SelectionContext, k: int) -> np.ndarray:
        inner = self._resolved()["inner"]
        excluded = self._excluded(ctx)
        if not excluded.any():
            return inner.select(ctx, k)
        keep = np.flatnonzero(~excluded)
        if keep.size == 0:
            return ctx.ids[:0]
        return inner.select(subset_context(ctx, keep), k)

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        # conformance contexts must keep every candidate (the checks count ids), so these exclude none there
        return [{"inner": "margin", "ids": (-1, "rec-none")}, {"inner": "entropy", "flag": "first_loop"}]


# ---- functions as strategies ----------------------------------------------------------------------
def _positional(func: Callable[..., Any]) -> list[inspect.Parameter]:
    return [
        p for p in inspect.signature(func).parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]


def as_strategy(
    *,
    name: str,
    needs: Iterable[str] = (),
    family: str = "custom",
    cost: str = "O(n)",
    register: bool = True,
) -> Callable[[Callable[..., Any]], type[Strategy]]:
    """Decorator: a plain function becomes a :class:`Strategy` class named ``name``.

    ``f(ctx) -> scores`` (one number per candidate, higher = label sooner) keeps the default top-k select;
    ``f(ctx, k) -> ids`` is a batch-aware selector (``k`` is capped at the number of candidates), whose
    ``score`` is its own order (``n`` for the first pick down to 1, NaN for records it leaves out).
    Keyword-only arguments of ``f`` with defaults become the strategy's parameters. The class is found by
    discovery (``make_strategy(name)`` works) unless ``register=False``.
    """
    need_set = frozenset(needs)
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name) or name in _RESERVED:
        raise ConfigError(
            f"The 'name' parameter of as_strategy must be a kebab-case name such as 'my-margin' (not 'top' or "
            f"'labeled'). Got {name!r}."
        )
    if not need_set <= NEEDS:
        raise ConfigError(
            f"The 'needs' parameter of as_strategy must be a subset of {sorted(NEEDS)}. Got {sorted(need_set)!r}."
        )
    if cost not in COST_CLASSES:
        raise ConfigError(f"The 'cost' parameter of as_strategy must be one of {COST_CLASSES!r}. Got {cost!r}.")

    def wrap(func: Callable[..., Any]) -> type[Strategy]:
        positional = _positional(func)
        if len(positional) not in (1, 2) or any(p.default is not p.empty for p in positional):
            raise ConfigError(
                f"A function made into a strategy takes (ctx) and returns scores, or (ctx, k) and returns ids; "
                f"{func.__name__}{inspect.signature(func)} does not."
            )
        params = [p for p in inspect.signature(func).parameters.values() if p.kind == p.KEYWORD_ONLY]
        missing = [p.name for p in params if p.default is p.empty]
        if missing or any(p.kind == p.VAR_KEYWORD for p in inspect.signature(func).parameters.values()):
            raise ConfigError(
                f"The keyword-only parameters of {func.__name__} become strategy parameters and need defaults "
                f"(no **kwargs); {missing or '**kwargs'} do not."
            )
        selects = len(positional) == 2
        owner = func.__name__
        defaults = {p.name: p.default for p in params}

        def __init__(self: Strategy, **kwargs: Any) -> None:
            unknown = sorted(set(kwargs) - set(defaults))
            if unknown:
                raise TypeError(f"{type(self).__name__}() got unexpected keyword arguments {unknown}")
            for key, default in defaults.items():
                setattr(self, key, kwargs.get(key, default))

        __init__.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD), *params]
        )

        def _call(self: Strategy, *args: Any) -> Any:
            return func(*args, **self.get_params())

        def score(self: Strategy, ctx: SelectionContext) -> np.ndarray:
            if selects:
                return _order_scores(ctx, self.select(ctx, ctx.n))
            scores = np.asarray(_call(self, ctx), dtype=np.float64)
            if scores.shape != (ctx.n,):
                raise ConfigError(
                    f"Strategy function {owner} must return one score per candidate, shape ({ctx.n},); "
                    f"got {scores.shape}."
                )
            return scores

        def select(self: Strategy, ctx: SelectionContext, k: int) -> np.ndarray:
            ids = np.asarray(_call(self, ctx, min(int(k), ctx.n)))
            cand = set(ctx.ids.tolist())
            if ids.ndim != 1 or any(v not in cand for v in ids.tolist()):
                raise ConfigError(f"Strategy function {owner} must return a 1-D array of candidate ids (ctx.ids).")
            return ids.astype(ctx.ids.dtype, copy=False)

        namespace: dict[str, Any] = {
            "__init__": __init__,
            "__doc__": inspect.getdoc(func) or f"Custom strategy from the function {owner}.",
            "__module__": func.__module__,
            "__qualname__": owner,
            "name": name,
            "needs": need_set,
            "family": family,
            "cost": cost,
            "batch_aware": selects,
            "score": score,
            "func": staticmethod(func),
        }
        if selects:
            namespace["select"] = select
        class_name = "".join(part.capitalize() for part in re.split(r"[_\W]+", owner) if part) or "Function"
        return type(class_name if register else f"_{class_name}", (Strategy,), namespace)

    return wrap


def _order_scores(ctx: SelectionContext, ids: np.ndarray) -> np.ndarray:
    """Scores that reproduce a selection order: n for the first pick, n-1 for the next, NaN if not picked."""
    scores = np.full(ctx.n, np.nan)
    scores[_positions_of(ctx, ids)] = np.arange(ctx.n, ctx.n - len(ids), -1, dtype=np.float64)
    return scores
