"""Switching by loop and compute: which strategies are eligible this loop, with what prior weight.

:func:`plan` reads the labeled-set size, the metadata shared, the pool size and each arm's cost class and
measured seconds, and returns a :class:`Plan`:

- **cold start** (fewer than ``cold_per_class`` labels per class): typical/diverse records first when
  embeddings are shared (TypiClust, core-set — Hacohen et al. 2022 find they beat uncertainty at low
  budgets), otherwise margin with some random; **later loops**: uncertainty (margin, entropy) and the
  learned selector, with random and core-set kept as hedges;
- **compute**: an arm whose measured seconds (per candidate, extrapolated to this pool) exceed its share
  of ``max_selection_seconds`` is dropped; arms costlier than O(n) run on a candidate subset of
  ``max_candidates`` records (the most uncertain half, the rest spread evenly) when the pool is larger.

>>> import numpy as np
>>> from alloop.strategies import SelectionContext
>>> ctx = SelectionContext(ids=np.arange(50), index=np.arange(50), probs=np.full((50, 2), 0.5), n_classes=2,
...                        labeled_ids=np.arange(100, 140), labels=np.zeros(40, dtype=np.int64))
>>> plan(ctx).arms
['margin', 'entropy', 'random', 'learned']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alloop.strategies import SelectionContext

__all__ = ["ARMS", "ArmInfo", "Plan", "candidate_subset", "plan"]


@dataclass(frozen=True)
class ArmInfo:
    spec: str
    needs: frozenset[str]
    cost: str  # one of alloop.strategies.COST_CLASSES
    cold: float  # prior weight at cold start
    warm: float  # prior weight later


#: the arms ``auto`` chooses among (name → info); the learned selector is an arm like any other
ARMS: dict[str, ArmInfo] = {
    "margin": ArmInfo("margin", frozenset({"probs"}), "O(n)", cold=0.45, warm=0.40),
    "entropy": ArmInfo("entropy", frozenset({"probs"}), "O(n)", cold=0.05, warm=0.10),
    "random": ArmInfo("random", frozenset(), "O(n)", cold=0.20, warm=0.10),
    "learned": ArmInfo("learned", frozenset({"probs"}), "O(n)", cold=0.10, warm=0.30),
    "typiclust": ArmInfo("typiclust", frozenset({"embeddings"}), "O(n log n)", cold=0.35, warm=0.0),
    "coreset": ArmInfo("coreset", frozenset({"embeddings"}), "O(n·k)", cold=0.15, warm=0.10),
}


@dataclass
class Plan:
    arms: list[str]
    prior: dict[str, float]
    subset: dict[str, int] = field(default_factory=dict)  # arm -> candidate subset size
    phase: str = "warm"
    notes: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        text = f"{self.phase} phase, eligible {self.arms}"
        if self.subset:
            text += ", on candidate subsets " + ", ".join(f"{a}:{n}" for a, n in self.subset.items())
        if self.notes:
            text += " (" + "; ".join(self.notes) + ")"
        return text


def plan(
    ctx: SelectionContext,
    *,
    arms: dict[str, ArmInfo] | None = None,
    seconds_per_candidate: dict[str, float] | None = None,
    max_selection_seconds: float | None = None,
    max_candidates: int = 20_000,
    cold_per_class: float = 3.0,
    explore: float | None = None,
) -> Plan:
    """The eligible arms and their prior weights for this loop (see the module docstring).

    ``explore`` (in [0, 1]) — when given, margin's prior is ``1 − explore`` and the other eligible arms share
    ``explore`` in proportion to their table priors (a strong prior toward margin, the best fixed strategy on
    most data, that the bandit moves away from only when other arms earn better rewards).
    """
    arms = ARMS if arms is None else arms
    have = set(ctx.available) | {"labels"}
    n_classes = ctx.n_classes or (ctx.probs.shape[1] if ctx.probs is not None else 2)
    m = int(np.asarray(ctx.labeled_ids).size)
    cold = m < cold_per_class * n_classes
    out = Plan(arms=[], prior={}, phase="cold-start" if cold else "warm")
    eligible = [a for a, info in arms.items() if info.needs <= have and (info.cold if cold else info.warm) > 0]
    timings = seconds_per_candidate or {}
    budget = None if max_selection_seconds is None else max_selection_seconds / max(len(eligible), 1)
    for a in eligible:
        info = arms[a]
        n_run = ctx.n
        if info.cost != "O(n)" and ctx.n > max_candidates:
            out.subset[a] = max_candidates
            n_run = max_candidates
        per = timings.get(a, -1.0)
        if budget is not None and per > 0 and per * n_run > budget and a != "margin":
            shrink = int(budget / per)
            if info.cost != "O(n)" and shrink >= 100:
                out.subset[a] = min(shrink, n_run)
                out.notes.append(f"{a} on {out.subset[a]} candidates to fit max_selection_seconds")
            else:
                out.notes.append(f"{a} dropped: {per * n_run:.2g} s > {budget:.2g} s share of max_selection_seconds")
                continue
        out.arms.append(a)
        out.prior[a] = info.cold if cold else info.warm
    if not out.arms:
        out.arms, out.prior = ["margin"], {"margin": 1.0}
    total = sum(out.prior.values())
    out.prior = {a: w / total for a, w in out.prior.items()}
    if explore is not None and "margin" in out.prior and len(out.prior) > 1:
        rest = sum(w for a, w in out.prior.items() if a != "margin") or 1.0
        out.prior = {a: (1.0 - explore) if a == "margin" else explore * w / rest for a, w in out.prior.items()}
    return out


def candidate_subset(ctx: SelectionContext, size: int, rng: np.random.Generator) -> np.ndarray:
    """Positions of ``size`` candidates: the most uncertain half (by margin) plus a seeded uniform rest."""
    if size >= ctx.n:
        return np.arange(ctx.n)
    from alloop.strategies import margin_scores, top_k

    half = size // 2 if ctx.probs is not None else 0
    first = top_k(margin_scores(ctx.probs), half) if half and ctx.probs is not None else np.empty(0, dtype=np.int64)
    rest = np.setdiff1d(np.arange(ctx.n), first)
    more = rng.choice(rest, size=size - first.size, replace=False)
    return np.sort(np.concatenate([first, more]).astype(np.int64))


def describe_plan(p: Plan) -> dict[str, Any]:
    return {"phase": p.phase, "arms": p.arms, "prior": p.prior, "subset": p.subset, "notes": p.notes}
