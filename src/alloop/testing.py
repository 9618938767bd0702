"""The strategy conformance suite: every strategy, built in or third party, passes the same checks.

:func:`check_strategy` builds a strategy with each parameter set of its ``_test_params()``, runs every
check in :data:`CHECKS` on it (except those its ``_test_skips()`` exempts, with a reason) and raises
one :class:`AssertionError` that names each failed check and says what to fix. The checks run on
contexts made by :func:`conformance_context`: Dirichlet class probabilities with some exact ties,
embeddings, MC samples ``(S, n, C)`` and History features, with int ids and with string ids. They cover
k = 1, k = n, k > n, a pool of one, C = 2 and C = 100, float32 and float64 metadata, and a real
``SelectionEngine`` that must refuse with a clear :class:`~alloop.errors.AlloopError` when something the
strategy declares in ``needs`` (read on the instance: a composite's are its parts') is not shared. Contexts
are small and built once per argument set, so the whole suite stays fast.

A third party checks its own strategy class like this:

>>> import numpy as np
>>> from alloop.strategies import SelectionContext, Strategy
>>> from alloop.testing import check_strategy
>>> class SmallestTopProb(Strategy):
...     '''Smallest top probability first.'''
...     name = "doc-smallest-top-prob"
...     needs = frozenset({"probs"})
...     def __init__(self, *, power: float = 1.0) -> None:
...         self.power = power
...     def score(self, ctx: SelectionContext) -> np.ndarray:
...         return -(ctx.probs.max(axis=1) ** self.power)
>>> check_strategy(SmallestTopProb)
>>> check_strategy(SmallestTopProb(power=2.0), seed=3)

A strategy that writes into its inputs is caught:

>>> class Sloppy(SmallestTopProb):
...     name = "doc-sloppy"
...     def score(self, ctx):
...         ctx.probs /= ctx.probs.sum(axis=1, keepdims=True)
...         return ctx.probs[:, 0]
>>> check_strategy(Sloppy)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
AssertionError: 1 of 15 conformance checks failed:
- doc-sloppy-check_inputs_not_mutated: Sloppy(power=1.0) wrote into a context array in place ...

In a pytest suite, one item per (strategy, check)::

    @pytest.mark.parametrize("case", strategy_checks([SmallestTopProb]), ids=lambda c: c.id)
    def test_conformance(case):
        if case.skip_reason:
            pytest.skip(case.skip_reason)
        case.run()
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from alloop.errors import AlloopError, ConfigError
from alloop.metadata import History, Snapshot
from alloop.strategies import NEEDS, SelectionContext, Strategy, all_strategies, make_strategy, parse_spec, top_k

__all__ = [
    "CHECKS",
    "METADATA_KINDS",
    "StrategyCheck",
    "check_class_counts",
    "check_constructor_stores_params",
    "check_engine_needs",
    "check_float32_and_float64",
    "check_inputs_not_mutated",
    "check_k_one",
    "check_needs_respected",
    "check_no_global_randomness",
    "check_only_candidates",
    "check_pool_smaller_than_k",
    "check_returns_k_unique",
    "check_same_seed_same_result",
    "check_scores_shape_and_values",
    "check_select_consistent_with_score",
    "check_spec_parses",
    "check_strategy",
    "conformance_context",
    "strategy_checks",
]

#: Metadata kinds a :class:`SelectionContext` can hold, i.e. what a strategy may declare in ``needs``.
METADATA_KINDS = NEEDS

_IMMUTABLE_DEFAULTS = (type(None), bool, int, float, complex, str, bytes, frozenset, range)


# ---- contexts ---------------------------------------------------------------------------------------
def conformance_context(
    n: int = 40,
    *,
    n_classes: int = 3,
    id_kind: str = "int",
    include: Iterable[str] | None = None,
    n_labeled: int = 6,
    n_samples: int = 4,
    dim: int = 5,
    dtype: Any = np.float64,
    seed: int = 0,
    loop: int = 0,
) -> SelectionContext:
    """A realistic :class:`SelectionContext` with ``n`` candidates, built through real Snapshots and History.

    ``include`` limits the metadata to those kinds (``None`` = all of :data:`METADATA_KINDS`). Candidate
    ids are never positions (ints start at 1000, strings look like ``"rec-0007"``), candidates are in pool
    order with gaps where labeled records sit, and a few rows repeat exactly so that scores tie. The same
    arguments always give the same context.
    """
    if id_kind not in ("int", "str"):
        raise ValueError(f"id_kind must be 'int' or 'str'; got {id_kind!r}")
    kinds = METADATA_KINDS if include is None else frozenset(include)
    built = _built_context(n, n_classes, id_kind, kinds, n_labeled, n_samples, dim, np.dtype(dtype).str, seed, loop)
    return _copy_context(built)


@functools.lru_cache(maxsize=256)
def _built_context(
    n: int,
    n_classes: int,
    id_kind: str,
    kinds: frozenset[str],
    n_labeled: int,
    n_samples: int,
    dim: int,
    dtype: str,
    seed: int,
    loop: int,
) -> SelectionContext:
    """Built once per argument set (History over three snapshots is the slow part); callers get copies."""
    rng = np.random.default_rng([seed, n, n_classes, n_labeled, 0 if id_kind == "int" else 1])
    total = n + n_labeled
    ids = (
        np.arange(1000, 1000 + 3 * total, 3, dtype=np.int64)
        if id_kind == "int"
        else np.array([f"rec-{i:04d}" for i in range(total)], dtype=object)
    )
    order = rng.permutation(total)
    labeled_pos = np.sort(order[:n_labeled])
    cand_pos = np.sort(order[n_labeled:])
    history = History()
    snap: Snapshot | None = None
    for lp in range(3):  # three INFER passes so that History features have variance and flips
        samples = rng.dirichlet(np.full(n_classes, 0.7), size=(n_samples, total))
        if total >= 6:  # exact ties: a few records repeat an earlier one
            samples[:, total - 3 :] = samples[:, :3]
        probs = samples.mean(axis=0)
        probs /= probs.sum(axis=1, keepdims=True)
        emb = rng.normal(size=(total, dim))
        if total >= 6:
            emb[total - 3 :] = emb[:3]
        snap = Snapshot(
            ids=ids,
            probs=probs.astype(dtype),
            embeddings=emb.astype(dtype),
            samples=samples.astype(dtype),
            loop=lp,
        )
        history.update(np.arange(total), snap, loop=lp)
    assert snap is not None and snap.samples is not None and snap.embeddings is not None
    return SelectionContext(
        ids=ids[cand_pos],
        index=cand_pos.astype(np.int64),
        probs=np.array(snap.probs[cand_pos]) if "probs" in kinds else None,
        embeddings=np.array(snap.embeddings[cand_pos]) if "embeddings" in kinds else None,
        samples=np.array(snap.samples[:, cand_pos]) if "samples" in kinds else None,
        history=history.features(cand_pos) if "history" in kinds else None,
        labeled_embeddings=np.array(snap.embeddings[labeled_pos]) if "embeddings" in kinds else None,
        labeled_ids=ids[labeled_pos],
        labels=rng.integers(0, n_classes, size=labeled_pos.size).astype(np.int64),
        n_classes=n_classes,
        seed=seed,
        loop=loop,
    )


def _copy_context(ctx: SelectionContext) -> SelectionContext:
    def copy(a: np.ndarray | None) -> Any:
        return None if a is None else a.copy()

    return dataclasses.replace(
        ctx,
        ids=ctx.ids.copy(),
        index=ctx.index.copy(),
        probs=copy(ctx.probs),
        embeddings=copy(ctx.embeddings),
        samples=copy(ctx.samples),
        history=None if ctx.history is None else {key: value.copy() for key, value in ctx.history.items()},
        labeled_ids=ctx.labeled_ids.copy(),
        labels=ctx.labels.copy(),
        labeled_embeddings=copy(ctx.labeled_embeddings),
    )


def _contexts(seed: int, include: Iterable[str] | None = None, **kw: Any) -> list[tuple[str, SelectionContext]]:
    """The standard contexts every check runs on: int ids, and string ids with float32 metadata."""
    inc = None if include is None else frozenset(include)
    return [
        ("int ids, float64", conformance_context(40, n_classes=3, id_kind="int", include=inc, seed=seed, **kw)),
        (
            "str ids, float32",
            conformance_context(25, n_classes=4, id_kind="str", include=inc, dtype=np.float32, seed=seed, **kw),
        ),
    ]


# ---- helpers ------------------------------------------------------------------------------------------
def _who(strategy: Strategy) -> str:
    try:
        return repr(strategy)
    except Exception:  # a broken get_params must not hide the real failure
        return type(strategy).__name__


def _select(strategy: Strategy, ctx: SelectionContext, k: int, where: str) -> np.ndarray:
    out = strategy.select(ctx, k)
    assert isinstance(out, np.ndarray), (
        f"{_who(strategy)}.select() must return a numpy array of ids; got {type(out).__name__} ({where}, k={k})."
    )
    assert out.ndim == 1, f"{_who(strategy)}.select() must return a 1-D array of ids; got shape {out.shape} ({where})."
    return out


def _score(strategy: Strategy, ctx: SelectionContext, where: str) -> np.ndarray:
    raw = strategy.score(ctx)
    try:
        s = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{_who(strategy)}.score() must return numbers; got {type(raw).__name__}: {exc}") from None
    assert s.shape == (ctx.n,), (
        f"{_who(strategy)}.score() must return one score per candidate, shape ({ctx.n},); got {s.shape} ({where})."
    )
    return s


class _Placeholder:
    """A stand-in argument: a constructor that only stores its arguments accepts it unchanged."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<placeholder for {self.name!r}>"


def _clone(strategy: Strategy) -> Strategy:
    return type(strategy)(**strategy.get_params())


def _same_value(a: Any, b: Any) -> bool:
    if a is b:
        return True
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b)
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return type(a) is type(b) and bool(a == b)


def _same_params(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.keys() == b.keys() and all(_same_value(a[key], b[key]) for key in a)


def _ids_text(ids: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(repr(v) for v in ids.tolist()[:limit])
    return f"[{shown}{', …' if ids.size > limit else ''}]"


# ---- the checks -------------------------------------------------------------------------------------
def check_returns_k_unique(strategy: Strategy, *, seed: int = 0) -> None:
    """``select(ctx, k)`` returns exactly ``min(k, n)`` ids, none twice: k = 1, a few, n - 1, n and n + 7."""
    for where, ctx in _contexts(seed):
        for k in (1, 3, ctx.n // 2, ctx.n - 1, ctx.n, ctx.n + 7):
            out = _select(strategy, ctx, k, where)
            assert out.size == min(k, ctx.n), (
                f"{_who(strategy)}.select(ctx, k={k}) returned {out.size} ids for {ctx.n} candidates ({where}); "
                f"it must return exactly min(k, n) = {min(k, ctx.n)}."
            )
            values, counts = np.unique(out, return_counts=True)
            assert (counts == 1).all(), (
                f"{_who(strategy)}.select(ctx, k={k}) returned the id {values[counts > 1][0]!r} more than once "
                f"({where}); selected ids must be unique."
            )


def check_only_candidates(strategy: Strategy, *, seed: int = 0) -> None:
    """Every selected id is a candidate id (never a position, a labeled id or an id of another type)."""
    for where, ctx in _contexts(seed):
        out = _select(strategy, ctx, 5, where)
        cand = set(ctx.ids.tolist())
        bad = np.array([v for v in out.tolist() if v not in cand], dtype=object)
        assert bad.size == 0, (
            f"{_who(strategy)}.select() returned ids that are not candidates ({where}): {_ids_text(bad)}; "
            f"candidates look like {_ids_text(ctx.ids, 3)}. Return ctx.ids[positions], never positions."
        )
        labeled = set(ctx.labeled_ids.tolist()) & set(out.tolist())
        assert not labeled, f"{_who(strategy)}.select() returned labeled ids {sorted(labeled)!r} ({where})."
        assert out.dtype.kind == ctx.ids.dtype.kind or out.size == 0, (
            f"{_who(strategy)}.select() returned ids of dtype {out.dtype} for candidate ids of dtype "
            f"{ctx.ids.dtype} ({where}); index ctx.ids instead of building a new array."
        )


def check_same_seed_same_result(strategy: Strategy, *, seed: int = 0) -> None:
    """Two fresh instances on two contexts built with the same seed and loop agree, call after call."""
    for where, _ in _contexts(seed):
        ctx_a = dict(_contexts(seed, loop=2))[where]
        ctx_b = dict(_contexts(seed, loop=2))[where]
        a, b = _clone(strategy), _clone(strategy)
        sa, sb = _score(a, ctx_a, where), _score(b, ctx_b, where)
        assert np.array_equal(sa, sb, equal_nan=True), (
            f"{_who(strategy)}.score() differs between two runs with the same seed and loop ({where}); "
            "draw randomness only from ctx.rng() (or ctx.rng(self.seed)), never from global state."
        )
        first = _select(a, ctx_a, 7, where)
        for again in (_select(b, ctx_b, 7, where), _select(a, ctx_a, 7, where)):
            assert np.array_equal(first, again), (
                f"{_who(strategy)}.select() differs between runs with the same seed and loop ({where}): "
                f"{_ids_text(first)} vs {_ids_text(again)}. Keep no state that advances between calls, "
                "and draw randomness only from ctx.rng()."
            )


def check_no_global_randomness(strategy: Strategy, *, seed: int = 0) -> None:
    """``score`` and ``select`` leave the global ``numpy.random`` and ``random`` states untouched."""
    for where, ctx in _contexts(seed):
        # reading the legacy global state is the point here: a strategy must leave it untouched
        np_before: Any = np.random.get_state()  # noqa: NPY002
        py_before = random.getstate()
        _score(strategy, ctx, where)
        _select(strategy, ctx, 5, where)
        np_after: Any = np.random.get_state()  # noqa: NPY002
        py_after = random.getstate()
        np_same = np.array_equal(np_before[1], np_after[1]) and np_before[2:] == np_after[2:]
        assert np_same and py_before == py_after, (
            f"{_who(strategy)} used the global random state ({'numpy.random' if not np_same else 'random'}, "
            f"{where}); use ctx.rng() so that results depend only on the seed and the loop."
        )


def _array_fields(ctx: SelectionContext) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name in ("ids", "index", "probs", "embeddings", "samples", "labeled_ids", "labels"):
        value = getattr(ctx, name)
        if value is not None:
            out[name] = value
    for key, value in (ctx.history or {}).items():
        out[f"history[{key!r}]"] = value
    return out


def check_inputs_not_mutated(strategy: Strategy, *, seed: int = 0) -> None:
    """Context arrays are read-only to strategies: not written in place, not replaced."""
    for where, ctx in _contexts(seed):
        arrays = _array_fields(ctx)
        copies = {name: a.copy() for name, a in arrays.items()}
        attrs = {name: getattr(ctx, name) for name in vars(ctx)}
        history_keys = None if ctx.history is None else set(ctx.history)
        for a in arrays.values():
            a.flags.writeable = False
        try:
            _score(strategy, ctx, where)
            _select(strategy, ctx, 5, where)
        except ValueError as exc:
            if "read-only" not in str(exc):
                raise
            raise AssertionError(
                f"{_who(strategy)} wrote into a context array in place ({where}): {exc}. "
                "Work on a copy (e.g. probs = ctx.probs.astype(float, copy=True))."
            ) from None
        finally:
            for a in arrays.values():
                a.flags.writeable = True
        for name, value in attrs.items():
            assert getattr(ctx, name) is value, (
                f"{_who(strategy)} replaced ctx.{name} ({where}); a strategy must not change its context."
            )
        assert history_keys is None or set(ctx.history or {}) == history_keys, (
            f"{_who(strategy)} added or removed keys of ctx.history ({where})."
        )
        for name, a in arrays.items():
            same = np.array_equal(a, copies[name], equal_nan=a.dtype.kind in "fc")
            assert same, f"{_who(strategy)} changed ctx.{name} ({where}); a strategy must not change its inputs."


def check_pool_smaller_than_k(strategy: Strategy, *, seed: int = 0) -> None:
    """With fewer candidates than ``k`` (or exactly ``k``), every candidate is returned once."""
    for n in (1, 2, 5):
        for kind in ("int", "str"):
            where = f"{n} {kind} candidate(s)"
            ctx = conformance_context(n, id_kind=kind, n_labeled=3, seed=seed)
            for k in (n, n + 1, n + 10):
                out = _select(strategy, ctx, k, where)
                assert out.size == n and set(out.tolist()) == set(ctx.ids.tolist()), (
                    f"{_who(strategy)}.select(ctx, k={k}) with only {n} candidates ({where}) must return all of "
                    f"them once; got {_ids_text(out)} for candidates {_ids_text(ctx.ids)}."
                )


def check_k_one(strategy: Strategy, *, seed: int = 0) -> None:
    """``k=1`` returns a single candidate id."""
    for where, ctx in _contexts(seed):
        out = _select(strategy, ctx, 1, where)
        assert out.shape == (1,) and out[0] in set(ctx.ids.tolist()), (
            f"{_who(strategy)}.select(ctx, k=1) must return one candidate id ({where}); got {_ids_text(out)}."
        )


def check_scores_shape_and_values(strategy: Strategy, *, seed: int = 0) -> None:
    """``score`` returns a numeric array of shape ``(n,)`` whose values are finite or NaN (no ±inf)."""
    for where, ctx in _contexts(seed):
        raw = strategy.score(ctx)
        assert np.asarray(raw).dtype.kind in "biuf", (
            f"{_who(strategy)}.score() must return a numeric array; got dtype {np.asarray(raw).dtype} ({where})."
        )
        s = _score(strategy, ctx, where)
        inf = np.isinf(s)
        assert not inf.any(), (
            f"{_who(strategy)}.score() returned an infinite score at position {int(np.flatnonzero(inf)[0])} "
            f"({where}); scores must be finite, or NaN for 'cannot score this record'."
        )


def check_needs_respected(strategy: Strategy, *, seed: int = 0) -> None:
    """``needs`` names known metadata kinds, and the strategy works with a context holding only those."""
    needs = strategy.needs  # the instance's: a composite's needs are the union of its parts'
    assert isinstance(needs, frozenset), f"{type(strategy).__name__}.needs must be a frozenset; got {needs!r}."
    unknown = needs - METADATA_KINDS
    assert not unknown, (
        f"{type(strategy).__name__}.needs names {sorted(unknown)!r}, which a SelectionContext never holds; "
        f"choose from {sorted(METADATA_KINDS)}."
    )
    for where, ctx in _contexts(seed, include=needs):
        where = f"{where}, context holding only {sorted(needs)}"
        try:
            _score(strategy, ctx, where)
            out = _select(strategy, ctx, 4, where)
        except AssertionError:
            raise
        except Exception as exc:
            raise AssertionError(
                f"{_who(strategy)} failed with {type(exc).__name__}: {exc} on a context holding only its "
                f"declared needs {sorted(needs)} ({where}). Add every metadata kind it reads to 'needs'."
            ) from exc
        assert out.size == min(4, ctx.n), f"{_who(strategy)}.select(ctx, k=4) returned {out.size} ids ({where})."


def _overrides_select(cls: type[Strategy]) -> bool:
    return cls.select is not Strategy.select


def check_select_consistent_with_score(strategy: Strategy, *, seed: int = 0) -> None:
    """For strategies that keep the default ``select``: it equals the top-k of ``score`` (ties: lower position)."""
    if _overrides_select(type(strategy)):
        return
    for where, ctx in _contexts(seed):
        scores = _score(strategy, ctx, where)
        for k in (1, 5, ctx.n):
            expected = ctx.ids[top_k(scores, k)]
            out = _select(strategy, ctx, k, where)
            assert np.array_equal(out, expected), (
                f"{_who(strategy)}.select(ctx, k={k}) returned {_ids_text(out)} but the top-{k} of its scores is "
                f"{_ids_text(expected)} ({where}); score() must not depend on anything that changes between calls."
            )


def check_constructor_stores_params(strategy: Strategy, *, seed: int = 0) -> None:
    """``__init__`` takes keyword-only arguments with immutable defaults and only stores them, unchanged."""
    cls = type(strategy)
    name = cls.__name__
    names: list[str] = []
    if cls.__init__ is not object.__init__:
        for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
            assert p.kind == p.KEYWORD_ONLY, (
                f"Parameter {p.name!r} of {name}.__init__ is {p.kind.description}; parameters must be keyword-only "
                "(def __init__(self, *, name=default)) with no *args or **kwargs."
            )
            assert p.default is not p.empty, (
                f"Parameter {p.name!r} of {name}.__init__ has no default; give every parameter one so that "
                f"make_strategy({cls.name!r}) works."
            )
            immutable = isinstance(p.default, _IMMUTABLE_DEFAULTS) or (
                isinstance(p.default, tuple) and all(isinstance(v, _IMMUTABLE_DEFAULTS) for v in p.default)
            )
            assert immutable, (
                f"Parameter {p.name!r} of {name}.__init__ has the mutable default {p.default!r}; use None or a tuple."
            )
            names.append(p.name)
    assert cls._param_names() == names, (
        f"{name}._param_names() gives {cls._param_names()!r} but __init__ takes {names!r}."
    )
    try:
        params = strategy.get_params()
    except AttributeError as exc:
        raise AssertionError(
            f"{name}.__init__ must store each keyword argument as an attribute of the same name: {exc}."
        ) from None
    placeholders = {key: _Placeholder(key) for key in names}
    try:
        probe = cls(**placeholders)
    except Exception as exc:
        raise AssertionError(
            f"{name}.__init__ raised {type(exc).__name__}: {exc} when given placeholder values; it must only store "
            "its arguments (validate them at first use, not in __init__)."
        ) from None
    for key, value in placeholders.items():
        assert getattr(probe, key, None) is value, (
            f"{name}.__init__ must store {key!r} unchanged (no validation or conversion in __init__); "
            f"passed {value!r}, stored {getattr(probe, key, None)!r}."
        )
    fresh = cls(**params)
    extra = sorted(set(vars(fresh)) - set(names))
    missing = sorted(set(names) - set(vars(fresh)))
    assert not extra and not missing, (
        f"{name}.__init__ must only store its keyword arguments under their own names; "
        + (f"it also sets {extra!r} (compute those at first use instead)" if extra else "")
        + ("; " if extra and missing else "")
        + (f"it does not store {missing!r}" if missing else "")
        + "."
    )
    assert _same_params(fresh.get_params(), params), (
        f"{name}(**get_params()) does not round-trip: {fresh.get_params()!r} != {params!r}."
    )


def check_spec_parses(strategy: Strategy, *, seed: int = 0) -> None:
    """``spec`` parses back (simple or composite spec) and ``make_strategy(spec)`` rebuilds an equal strategy."""
    cls = type(strategy)
    assert isinstance(cls.name, str) and cls.name, f"{cls.__name__} must set a non-empty class attribute 'name'."
    spec = strategy.spec
    assert isinstance(spec, str), f"{cls.__name__}.spec must be a string; got {spec!r}."
    registered = all_strategies().get(cls.name)
    assert registered is cls, f"make_strategy({spec!r}) cannot find {cls.__name__}: " + (
        f"the name {cls.name!r} belongs to {registered.__module__}.{registered.__qualname__}."
        if registered is not None
        else "the class is not discovered (it must subclass Strategy, be imported, and not start with '_')."
    )
    try:
        made = make_strategy(spec)
    except ConfigError as exc:
        raise AssertionError(f"{cls.__name__}.spec {spec!r} does not parse back: {exc}") from None
    assert type(made) is cls, f"make_strategy({spec!r}) gave a {type(made).__name__}, not a {cls.__name__}."
    if cls.__eq__ is not object.__eq__:  # composites compare their (resolved) parts
        assert made == strategy, f"make_strategy({spec!r}) gave {made!r}, which is not equal to {_who(strategy)}."
        return
    name, kwargs = parse_spec(spec)
    assert name == cls.name, f"{cls.__name__}.spec {spec!r} parses to the name {name!r}, not {cls.name!r}."
    params = strategy.get_params()
    rebuilt = cls(**kwargs).get_params()
    assert _same_params(rebuilt, params), (
        f"{cls.__name__}.spec {spec!r} rebuilds the parameters {rebuilt!r}, not {params!r}; parameter values must "
        "be Python literals whose repr() parses back."
    )
    assert _same_params(made.get_params(), params), f"make_strategy({spec!r}) gave {made!r}, not {_who(strategy)}."


def _check_valid_selection(strategy: Strategy, ctx: SelectionContext, where: str, ks: Iterable[int]) -> None:
    try:
        _valid_selection(strategy, ctx, where, ks)
    except AssertionError:
        raise
    except Exception as exc:
        raise AssertionError(f"{_who(strategy)} failed with {type(exc).__name__}: {exc} ({where}).") from exc


def _valid_selection(strategy: Strategy, ctx: SelectionContext, where: str, ks: Iterable[int]) -> None:
    s = _score(strategy, ctx, where)
    assert not np.isinf(s).any(), f"{_who(strategy)}.score() returned an infinite score ({where})."
    cand = set(ctx.ids.tolist())
    for k in ks:
        out = _select(strategy, ctx, k, where)
        assert out.size == min(k, ctx.n) and len(set(out.tolist())) == out.size, (
            f"{_who(strategy)}.select(ctx, k={k}) returned {out.size} ids ({len(set(out.tolist()))} distinct) for "
            f"{ctx.n} candidates ({where}); it must return min(k, n) = {min(k, ctx.n)} distinct ids."
        )
        assert all(v in cand for v in out.tolist()), (
            f"{_who(strategy)}.select(ctx, k={k}) returned ids that are not candidates ({where}): {_ids_text(out)}."
        )


def check_class_counts(strategy: Strategy, *, seed: int = 0) -> None:
    """Works with two classes and with a hundred (k = 1, a few, n)."""
    for n_classes, n, kind, ks in ((2, 20, "int", (1, 4, 20)), (2, 12, "str", (1, 12)), (100, 10, "int", (1, 10))):
        where = f"C={n_classes}, {n} {kind} candidates"
        ctx = conformance_context(n, n_classes=n_classes, id_kind=kind, n_samples=3, seed=seed)
        _check_valid_selection(strategy, ctx, where, ks)


def check_float32_and_float64(strategy: Strategy, *, seed: int = 0) -> None:
    """The same data as float32 and as float64 (probs, embeddings, samples) both give valid selections."""
    for dtype in (np.float32, np.float64):
        where = f"{np.dtype(dtype).name} metadata, int ids"
        ctx = conformance_context(30, n_classes=3, dtype=dtype, seed=seed)
        _check_valid_selection(strategy, ctx, where, (1, 6, 30))


def _engine_data(seed: int, n: int = 24, n_classes: int = 3) -> dict[str, Any]:
    rng = np.random.default_rng([seed, 17])
    samples = rng.dirichlet(np.full(n_classes, 0.7), size=(3, n))
    probs = samples.mean(axis=0)
    return {
        "ids": np.arange(500, 500 + n, dtype=np.int64),
        "probs": probs / probs.sum(axis=1, keepdims=True),
        "embeddings": rng.normal(size=(n, 4)),
        "samples": samples,
        "labels": rng.integers(0, n_classes, size=4),
        "classes": list(range(n_classes)),
    }


def check_engine_needs(strategy: Strategy, *, seed: int = 0) -> None:
    """Through a real ``SelectionEngine``: works with everything shared; with a declared need missing, the engine
    raises a clear :class:`AlloopError` (never an AttributeError or TypeError from inside the strategy)."""
    from alloop.engine import SelectionEngine

    data = _engine_data(seed)
    needs = strategy.needs
    labeled = data["ids"][:4]

    def engine(share: frozenset[str] | None) -> SelectionEngine:
        eng = SelectionEngine(strategy, seed=seed, classes=data["classes"])
        eng.add_records(data["ids"])
        eng.observe_labels(labeled, data["labels"])
        if share is not None:
            extra = {key: data[key] for key in ("embeddings", "samples") if key in share}
            eng.ingest(Snapshot(ids=data["ids"], probs=data["probs"], **extra))
        return eng

    try:
        sel = engine(frozenset({"embeddings", "samples"})).recommend(5)
    except Exception as exc:
        raise AssertionError(
            f"SelectionEngine({_who(strategy)}).recommend(5) with probs, embeddings and samples shared crashed with "
            f"{type(exc).__name__}: {exc}. The engine gives a strategy only what it declares in needs "
            f"{sorted(needs)}; declare every metadata kind it reads."
        ) from None
    ok = sel.ids.size == 5 and len(set(sel.ids.tolist())) == 5 and not set(sel.ids.tolist()) & set(labeled.tolist())
    assert ok, (
        f"SelectionEngine({_who(strategy)}).recommend(5) with everything shared returned {_ids_text(sel.ids)}; "
        "expected 5 distinct unlabeled ids."
    )
    missing: list[tuple[str, frozenset[str] | None]] = []
    if needs & {"probs", "embeddings", "samples", "history"}:
        missing.append(("no snapshot ingested yet", None))
    for kind in sorted(needs & {"embeddings", "samples"}):
        missing.append((f"a snapshot without {kind}", frozenset({"embeddings", "samples"} - {kind})))
    for what, share in missing:
        eng = engine(share)
        try:
            eng.recommend(5)
        except AlloopError:
            continue
        except Exception as exc:
            raise AssertionError(
                f"SelectionEngine({_who(strategy)}).recommend(5) after {what} crashed with {type(exc).__name__}: "
                f"{exc}. Its needs {sorted(needs)} must list every metadata kind it reads, so that the engine "
                "refuses with a clear error before calling it."
            ) from None
        raise AssertionError(
            f"SelectionEngine({_who(strategy)}).recommend(5) after {what} did not raise, although the strategy "
            f"declares needs {sorted(needs)}; the engine must refuse with a clear AlloopError."
        )


#: Every check, in the order they run.
CHECKS: tuple[Callable[..., None], ...] = (
    check_constructor_stores_params,
    check_spec_parses,
    check_needs_respected,
    check_scores_shape_and_values,
    check_returns_k_unique,
    check_only_candidates,
    check_k_one,
    check_pool_smaller_than_k,
    check_class_counts,
    check_float32_and_float64,
    check_select_consistent_with_score,
    check_same_seed_same_result,
    check_no_global_randomness,
    check_inputs_not_mutated,
    check_engine_needs,
)
_CHECK_NAMES = {c.__name__ for c in CHECKS}


# ---- running ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StrategyCheck:
    """One (strategy, check) pair; ``skip_reason`` is set when the strategy is exempt from the check."""

    strategy: Strategy
    check: Callable[..., None]
    id: str
    skip_reason: str | None = None
    seed: int = 0

    def run(self) -> None:
        self.check(self.strategy, seed=self.seed)


def _instances(strategy_or_class: Strategy | type[Strategy]) -> list[Strategy]:
    if isinstance(strategy_or_class, Strategy):
        return [strategy_or_class]
    if not (isinstance(strategy_or_class, type) and issubclass(strategy_or_class, Strategy)):
        raise TypeError(f"Expected a Strategy subclass or instance; got {strategy_or_class!r}.")
    param_sets = strategy_or_class._test_params()
    assert param_sets and all(isinstance(p, dict) for p in param_sets), (
        f"{strategy_or_class.__name__}._test_params() must return a non-empty list of dicts; got {param_sets!r}."
    )
    return [strategy_or_class(**params) for params in param_sets]


def _skips(cls: type[Strategy]) -> dict[str, str]:
    skips = dict(cls._test_skips())
    unknown = sorted(set(skips) - _CHECK_NAMES)
    assert not unknown, (
        f"{cls.__name__}._test_skips() names unknown checks {unknown!r}; known checks: {sorted(_CHECK_NAMES)}."
    )
    empty = [k for k, reason in skips.items() if not (isinstance(reason, str) and reason.strip())]
    assert not empty, f"{cls.__name__}._test_skips() must give a reason for each skipped check; missing for {empty!r}."
    return skips


def strategy_checks(
    strategies: Iterable[Strategy | type[Strategy]] | None = None, *, seed: int = 0
) -> Iterator[StrategyCheck]:
    """Every (strategy, check) pair, for pytest parametrisation (``ids=lambda c: c.id``).

    ``strategies`` defaults to every discovered strategy class; each class is built with each of its
    ``_test_params()``. Exempt checks come with ``skip_reason`` set rather than being left out.
    """
    items = list(all_strategies().values()) if strategies is None else list(strategies)
    for item in items:
        for strategy in _instances(item):
            cls = type(strategy)
            skips = _skips(cls)
            label = strategy.spec if cls.name else cls.__name__
            for check in CHECKS:
                reason = skips.get(check.__name__)
                if reason is None and check is check_select_consistent_with_score and _overrides_select(cls):
                    reason = "overrides select(); top-k consistency with score() does not apply"
                yield StrategyCheck(strategy, check, f"{label}-{check.__name__}", reason, seed)


def check_strategy(strategy_or_class: Strategy | type[Strategy], *, seed: int = 0) -> None:
    """Run every conformance check on a strategy class (each ``_test_params()`` set) or instance.

    Checks named in ``_test_skips()`` are not run. Raises one :class:`AssertionError` listing every failed
    check with its message; returns ``None`` when all pass.
    """
    failures = []
    cases = list(strategy_checks([strategy_or_class], seed=seed))
    for case in cases:
        if case.skip_reason:
            continue
        try:
            case.run()
        except Exception as exc:  # AssertionError, or the strategy's own crash
            kind = "" if isinstance(exc, AssertionError) else f"{type(exc).__name__}: "
            failures.append(f"- {case.id}: {kind}{exc}")
    if failures:
        raise AssertionError(f"{len(failures)} of {len(cases)} conformance checks failed:\n" + "\n".join(failures))
