"""Allocation: which task an annotator who asks for work should get — or whether they should wait.

Every allocator answers one question, ``choose(annotator, tasks, team, now) -> TaskView | None``, on plain
views of the queue, so the same rule serves the store-backed :class:`~alloop.labeling.tasks.TaskQueue`
and the virtual-clock :class:`~alloop.labeling.crowd.SimulatedCrowd`.

:class:`Allocator` is alloop's rule (docs/labeling.md, "Allocation"); :class:`RoundRobinAllocator`,
:class:`RandomAllocator` and :class:`GreedyAllocator` are the baselines of the allocation benchmark.

>>> team = [AnnotatorView(id="fast", seconds=10.0), AnnotatorView(id="slow", seconds=100.0)]
>>> tasks = [TaskView(task_id=1, rid="r1")]
>>> Allocator().choose(team[1], tasks, team, now=0.0) is None   # the fast one will be done sooner
True
>>> Allocator().choose(team[0], tasks, team, now=0.0).rid
'r1'
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from alloop._validation import check_float, check_int

__all__ = [
    "AllocationPolicy",
    "Allocator",
    "AnnotatorView",
    "GreedyAllocator",
    "RandomAllocator",
    "RoundRobinAllocator",
    "TaskView",
    "completion_horizon",
]


@dataclass(frozen=True)
class TaskView:
    """One task as allocation sees it. ``open_slots``: judgements still to hand out (not leased, not done)."""

    task_id: int
    rid: Any
    priority: float = 0.0
    open_slots: int = 1
    seen: frozenset[str] = frozenset()  # annotators who judged it or hold a live lease on it
    label_set: str = "default"
    predicted: Any = None
    gold: bool = False
    deadline: float | None = None
    batch: int | None = None
    holders: tuple[tuple[str, float], ...] = ()  # live leases on it: (annotator, leased at)


@dataclass(frozen=True)
class AnnotatorView:
    """One annotator as allocation sees it.

    available   online or idle and inside working hours
    free_at     when their current work is expected to be done (<= now when free)
    seconds     median seconds per judgement (None until measured)
    shift_end   when their current working window ends (inf without hours)
    confusion   gold + consensus evidence, rows = true class, columns = answer, over ``classes``
    quota_left  judgements they may still give in this batch (None = no quota)
    """

    id: str
    available: bool = True
    skills: frozenset[str] = frozenset()  # empty = every label set
    leases: int = 0
    capacity: int = 1
    quota_left: int | None = None
    seconds: float | None = None
    free_at: float = -math.inf
    shift_end: float = math.inf
    classes: tuple[Any, ...] = ()
    confusion: np.ndarray | None = None
    judgements: int = 0
    gold_judgements: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def can_take(self, task: TaskView) -> bool:
        """Skill, spare capacity, quota, not judged before, a slot open."""
        return (
            self.available
            and self.leases < self.capacity
            and (self.quota_left is None or self.quota_left > 0 or task.gold)
            and task.open_slots > 0
            and self.id not in task.seen
            and (not self.skills or task.label_set in self.skills)
        )

    def accuracy_on(self, cls: Any, *, prior: float, strength: float) -> float:
        """Posterior-mean accuracy on true class ``cls`` (all classes pooled when ``cls`` is unknown)."""
        if self.confusion is None or self.confusion.size == 0:
            return prior
        m = np.asarray(self.confusion, dtype=np.float64)
        if cls in self.classes:
            i = self.classes.index(cls)
            return float((m[i, i] + prior * strength) / (m[i].sum() + strength))
        return float((np.trace(m) + prior * strength) / (m.sum() + strength))


class AllocationPolicy(Protocol):
    def choose(
        self, annotator: AnnotatorView, tasks: Sequence[TaskView], team: Sequence[AnnotatorView], now: float
    ) -> TaskView | None:
        """The task to lease to ``annotator`` now, or None (nothing suitable, or better to wait)."""


def completion_horizon(
    free_at: np.ndarray, seconds: np.ndarray, ends: np.ndarray, remaining: int, caps: np.ndarray | None = None
) -> float:
    """Earliest time T by which ``remaining`` judgements can be done by annotators who start at ``free_at``,
    take ``seconds`` each, stop at ``ends``, and can take at most ``caps`` more (list scheduling).

    >>> completion_horizon(np.array([0.0, 0.0]), np.array([10.0, 30.0]), np.array([np.inf, np.inf]), 4)
    30.0
    """
    if remaining <= 0:
        return float(np.min(free_at)) if free_at.size else 0.0
    caps = np.full(free_at.size, np.inf) if caps is None else caps
    instants = []
    for f, sec, end, cap in zip(free_at, seconds, ends, caps, strict=True):
        k = int(min(cap, remaining))
        if k <= 0:
            continue
        times = f + sec * np.arange(1, k + 1)
        instants.append(times[times <= end])
    pool = np.concatenate(instants) if instants else np.empty(0)
    if pool.size < remaining:
        return math.inf
    return float(np.partition(pool, remaining - 1)[remaining - 1])


class Allocator:
    """alloop's allocation rule: finish the batch soonest with the required quality.

    For an annotator who asks for work:

    1. nothing if they are offline, at capacity or out of quota; nothing that needs a skill they lack,
       a record they already judged or hold, or a task without an open slot;
    2. nothing they are not expected to finish before their working hours end;
    3. a gold question when their gold share is below ``gold_rate``;
    4. **speed**: nothing if their expected finish (now + their median seconds) is later than the
       time the remaining judgements would be done without them (:func:`completion_horizon` over the
       available team) times ``1 + slack`` — the slow wait at the tail instead of holding the last tasks;
    5. **quality**: skip tasks whose predicted class they are less accurate on than ``min_accuracy``
       (posterior mean with a ``prior_accuracy`` prior worth ``prior_strength`` answers) unless no one
       else available is;
    6. among the rest, the highest ``priority + quality_weight · accuracy on the predicted class``; ties
       go to the earlier deadline, then the task with fewer open slots (records complete sooner), then the
       older task;
    7. **backup**: with nothing else to do, a record none of whose slots is open but one of whose leases
       has run ``backup_after`` times its holder's median seconds (the holder has probably left) gets a
       backup judgement from this annotator — the returned task then has ``open_slots == 0`` and the
       caller adds a slot. The record completes with the first ``required`` judgements.
    """

    def __init__(
        self,
        *,
        gold_rate: float = 0.05,
        min_accuracy: float = 0.6,
        prior_accuracy: float = 0.7,
        prior_strength: float = 4.0,
        prior_seconds: float | None = None,
        quality_weight: float = 1.0,
        slack: float = 0.0,
        speed_aware: bool = True,
        backup_after: float | None = 3.0,
    ) -> None:
        self.gold_rate = gold_rate
        self.min_accuracy = min_accuracy
        self.prior_accuracy = prior_accuracy
        self.prior_strength = prior_strength
        self.prior_seconds = prior_seconds
        self.quality_weight = quality_weight
        self.slack = slack
        self.speed_aware = speed_aware
        self.backup_after = backup_after
        self._checked = False

    def _check(self) -> None:
        if not self._checked:
            owner = "Allocator"
            check_float(self.gold_rate, "gold_rate", owner, low=0.0, high=1.0)
            check_float(self.min_accuracy, "min_accuracy", owner, low=0.0, high=1.0)
            check_float(self.prior_accuracy, "prior_accuracy", owner, low=0.0, high=1.0)
            check_float(self.prior_strength, "prior_strength", owner, low=0.0)
            check_float(self.prior_seconds, "prior_seconds", owner, low=1e-9, allow_none=True)
            check_float(self.quality_weight, "quality_weight", owner, low=0.0)
            check_float(self.slack, "slack", owner, low=0.0)
            check_float(self.backup_after, "backup_after", owner, low=1.0, allow_none=True)
            self._checked = True

    def _seconds(self, a: AnnotatorView, team: Sequence[AnnotatorView]) -> float:
        if a.seconds is not None:
            return float(a.seconds)
        if self.prior_seconds is not None:
            return float(self.prior_seconds)
        known = [b.seconds for b in team if b.seconds is not None]
        return float(np.median(known)) if known else 60.0

    def _acc(self, a: AnnotatorView, cls: Any) -> float:
        key = (a.id, cls if cls in a.classes else None)
        if key not in self._memo:
            self._memo[key] = a.accuracy_on(cls, prior=self.prior_accuracy, strength=self.prior_strength)
        return self._memo[key]

    def choose(
        self, annotator: AnnotatorView, tasks: Sequence[TaskView], team: Sequence[AnnotatorView], now: float
    ) -> TaskView | None:
        self._check()
        self._memo: dict[tuple[str, Any], float] = {}  # per call: the views may change between calls
        a = annotator
        mine = [t for t in tasks if a.can_take(t)]
        work = [t for t in mine if not t.gold]
        s_a = self._seconds(a, team)
        if now + s_a > a.shift_end:
            return None
        if not work:
            return self._backup(a, tasks, team, now)
        gold = [t for t in mine if t.gold]
        if gold and a.gold_judgements + 1 <= self.gold_rate * (a.judgements + 1):
            return gold[0]
        if self.speed_aware and not self._worth_starting(a, s_a, tasks, team, now):
            return None
        others = [b for b in team if b.id != a.id and b.available]
        keep = []
        for t in work:
            if self._acc(a, t.predicted) >= self.min_accuracy or not any(
                b.can_take(t) and self._acc(b, t.predicted) >= self.min_accuracy for b in others
            ):
                keep.append(t)
        if not keep:
            return None
        return min(
            keep,
            key=lambda t: (
                -(t.priority + self.quality_weight * self._acc(a, t.predicted)),
                math.inf if t.deadline is None else t.deadline,
                t.open_slots,
                t.task_id,
            ),
        )

    def _backup(
        self, a: AnnotatorView, tasks: Sequence[TaskView], team: Sequence[AnnotatorView], now: float
    ) -> TaskView | None:
        if self.backup_after is None or not a.available or a.leases >= a.capacity:
            return None
        late = []
        for t in tasks:
            if t.gold or t.open_slots > 0 or a.id in t.seen or (a.skills and t.label_set not in a.skills):
                continue
            by_id = {b.id: b for b in team}
            overdue = [
                now - since
                for who, since in t.holders
                if now - since > self.backup_after * self._seconds(by_id.get(who, a), team)
            ]
            if overdue:
                late.append((-max(overdue), t.task_id, t))
        return min(late, key=lambda x: (x[0], x[1]))[2] if late else None

    def _worth_starting(
        self, a: AnnotatorView, s_a: float, tasks: Sequence[TaskView], team: Sequence[AnnotatorView], now: float
    ) -> bool:
        open_work = [t for t in tasks if not t.gold and t.open_slots > 0]
        remaining = sum(t.open_slots for t in open_work)
        members = [b for b in team if b.available and (not b.skills or any(t.label_set in b.skills for t in open_work))]
        if a.id not in {b.id for b in members}:
            members.append(a)
        free = np.array([now if b.id == a.id else max(now, b.free_at) for b in members])
        secs = np.array([s_a if b.id == a.id else self._seconds(b, team) for b in members])
        ends = np.array([b.shift_end for b in members])
        caps = np.array(
            [sum(1 for t in open_work if b.id not in t.seen and (not b.skills or t.label_set in b.skills))
             for b in members],
            dtype=np.float64,
        )
        horizon = completion_horizon(free, secs, ends, remaining, caps)
        return now + s_a <= horizon * (1.0 + self.slack) + 1e-9 or not math.isfinite(horizon)


class GreedyAllocator:
    """Baseline: whoever asks gets the first task they can take (priority, then age): earliest-available."""

    def choose(
        self, annotator: AnnotatorView, tasks: Sequence[TaskView], team: Sequence[AnnotatorView], now: float
    ) -> TaskView | None:
        for t in sorted(tasks, key=lambda t: (-t.priority, t.task_id)):
            if not t.gold and annotator.can_take(t):
                return t
        return None


class _DealingAllocator:
    """Deals every open slot to an owner when first seen; an owner only gets what was dealt to them.

    Slots dealt to someone who went offline are dealt again.
    """

    def __init__(self) -> None:
        self._deals: dict[int, list[str]] = {}

    def _owner(self, task: TaskView, candidates: list[AnnotatorView]) -> str | None:
        raise NotImplementedError

    def choose(
        self, annotator: AnnotatorView, tasks: Sequence[TaskView], team: Sequence[AnnotatorView], now: float
    ) -> TaskView | None:
        online = {b.id: b for b in team if b.available}
        for t in sorted(tasks, key=lambda t: (-t.priority, t.task_id)):
            if t.gold:
                continue
            owners = [o for o in self._deals.get(t.task_id, []) if o in online and o not in t.seen]
            while len(owners) < t.open_slots:
                cands = [
                    b for b in online.values()
                    if b.id not in t.seen and b.id not in owners and (not b.skills or t.label_set in b.skills)
                ]
                who = self._owner(t, cands) if cands else None
                if who is None:
                    break
                owners.append(who)
            self._deals[t.task_id] = owners[: t.open_slots]
        for t in sorted(tasks, key=lambda t: (-t.priority, t.task_id)):
            if not t.gold and annotator.id in self._deals.get(t.task_id, []) and annotator.can_take(t):
                self._deals[t.task_id].remove(annotator.id)
                return t
        return None


class RoundRobinAllocator(_DealingAllocator):
    """Baseline: slots dealt to the available annotators in a fixed rotation (by id)."""

    def __init__(self) -> None:
        super().__init__()
        self._next = 0

    def _owner(self, task: TaskView, candidates: list[AnnotatorView]) -> str | None:
        ring = sorted(b.id for b in candidates)
        who = ring[self._next % len(ring)]
        self._next += 1
        return who


class RandomAllocator(_DealingAllocator):
    """Baseline: slots dealt to an available annotator drawn uniformly at random (seeded)."""

    def __init__(self, *, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed
        self._rng: np.random.Generator | None = None

    def _owner(self, task: TaskView, candidates: list[AnnotatorView]) -> str | None:
        if self._rng is None:
            self._rng = np.random.default_rng(check_int(self.seed, "seed", "RandomAllocator", min=0))
        ring = sorted(b.id for b in candidates)
        return ring[int(self._rng.integers(len(ring)))]
