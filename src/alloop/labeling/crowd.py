"""``SimulatedCrowd``: a crowd of simulated annotators on a virtual clock, behind the LabelProvider interface.

Each annotator has an accuracy (or a confusion matrix), a latency distribution (log-normal around a
median) and an availability schedule; an allocator decides who judges what, exactly as for people.
Nothing sleeps: ``poll()`` advances a virtual clock (to the end of the outstanding work, or by ``step``
virtual seconds), so a simulated day takes milliseconds. ``speedup`` paces it on the wall clock instead.

With ``redundancy`` > 1 a record's judgements are merged by ``aggregate`` — majority vote by default
(:func:`majority_vote`) — and the event carries the consensus ``posterior`` and the comma-joined
``annotator`` ids.

>>> crowd = SimulatedCrowd({i: i % 2 for i in range(6)}, annotators=3, redundancy=3, seed=0)
>>> crowd.request(list(range(6)))
>>> events = crowd.poll()
>>> len(events), sorted(events[0].annotator.split(","))
(6, ['a0', 'a1', 'a2'])
>>> crowd.stats[0]["records"], crowd.stats[0]["accuracy"] >= 0.5
(6, True)
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alloop._validation import check_float, check_int
from alloop.errors import ConfigError, UnknownRecordError
from alloop.labeling._provider import LabelEvent
from alloop.labeling.allocation import (
    AllocationPolicy,
    Allocator,
    AnnotatorView,
    GreedyAllocator,
    TaskView,
)
from alloop.records import as_id_array

__all__ = ["Aggregate", "CrowdAnnotator", "SimulatedCrowd", "majority_vote"]

#: ``aggregate(judgements, classes) -> {record id: (label, posterior)}`` over (id, annotator, label) triples.
Aggregate = Callable[[Sequence[tuple[Any, str, Any]], Sequence[Any]], Mapping[Any, tuple[Any, float]]]


def majority_vote(judgements: Sequence[tuple[Any, str, Any]], classes: Sequence[Any]) -> dict[Any, tuple[Any, float]]:
    """The most frequent label per record; ties go to the class listed first; posterior = its vote share.

    >>> majority_vote([(1, "a", "x"), (1, "b", "y"), (1, "c", "y")], ["x", "y"])
    {1: ('y', 0.6666666666666666)}
    """
    order = {c: i for i, c in enumerate(classes)}
    votes: dict[Any, dict[Any, int]] = {}
    for rid, _, label in judgements:
        votes.setdefault(rid, {}).setdefault(label, 0)
        votes[rid][label] += 1
    out = {}
    for rid, counts in votes.items():
        best = min(counts, key=lambda c: (-counts[c], order.get(c, len(order))))
        out[rid] = (best, counts[best] / sum(counts.values()))
    return out


@dataclass(frozen=True)
class CrowdAnnotator:
    """One simulated annotator.

    accuracy   probability of the true class (a wrong answer is uniform over the others), or
    confusion  a row-stochastic (C, C) matrix over the crowd's classes (rows = truth), which wins
    seconds    median seconds per judgement; ``spread`` is the log-normal sigma
    schedule   online intervals ``[(start, end), …]`` in virtual seconds; None = always online. Whoever is
               still on a task when their interval ends leaves it: the lease expires and the task returns
    abandon    probability of walking away mid-task (then away for the crowd's ``away_seconds``)
    """

    id: str
    accuracy: float = 0.8
    confusion: Sequence[Sequence[float]] | None = None
    seconds: float = 30.0
    spread: float = 0.3
    schedule: Sequence[tuple[float, float]] | None = None
    abandon: float = 0.0
    skills: tuple[str, ...] = ()


@dataclass
class _Rec:
    task_id: int
    batch: int
    priority: float
    predicted: Any
    open_slots: int
    holding: dict[str, float] = field(default_factory=dict)  # live leases: annotator -> leased at
    judgements: list[tuple[str, Any]] = field(default_factory=list)
    done_at: float | None = None
    emitted: bool = False
    cancelled: bool = False


class SimulatedCrowd:
    """A simulated crowd (see the module docstring).

    truth          mapping id → true label (or an (ids, labels) pair)
    annotators     an int n (accuracies ``linspace(0.6, 0.95, n)``, 30 s median, always online) or a list
                   of :class:`CrowdAnnotator`
    classes        the label set (default: the sorted labels of ``truth``)
    redundancy     judgements per record, each by a different annotator
    allocator      who gets what (default :class:`~alloop.labeling.allocation.Allocator`)
    aggregate      consensus function (default :func:`majority_vote`), e.g. Dawid–Skene
    gold           mapping id → known answer of gold questions the allocator mixes in
    predicted      mapping id → the model's predicted class (allocation prefers accurate annotators on it)
    priority       mapping id → priority (higher = sooner)
    lease_seconds  a lease not submitted within this time returns the task to the queue
    step           virtual seconds per ``poll()``; None = run until the outstanding records are labeled
    speedup        pace on the wall clock: virtual seconds per real second (overrides ``step``)
    seed           every random draw (latencies, answers, walk-aways) comes from it
    """

    def __init__(
        self,
        truth: Mapping[Any, Any] | tuple[Sequence[Any], Sequence[Any]] | None = None,
        *,
        annotators: int | Sequence[CrowdAnnotator] = 5,
        classes: Sequence[Any] | None = None,
        redundancy: int = 1,
        allocator: AllocationPolicy | None = None,
        aggregate: Aggregate | None = None,
        gold: Mapping[Any, Any] | None = None,
        predicted: Mapping[Any, Any] | None = None,
        priority: Mapping[Any, float] | None = None,
        lease_seconds: float = 600.0,
        away_seconds: float = 900.0,
        step: float | None = None,
        speedup: float | None = None,
        seed: int = 0,
    ) -> None:
        self.truth = truth
        self.annotators = annotators
        self.classes = classes
        self.redundancy = redundancy
        self.allocator = allocator
        self.aggregate = aggregate
        self.gold = gold
        self.predicted = predicted
        self.priority = priority
        self.lease_seconds = lease_seconds
        self.away_seconds = away_seconds
        self.step = step
        self.speedup = speedup
        self.seed = seed
        self._ready = False

    # ---- setup -----------------------------------------------------------------------------------
    def _setup(self) -> None:
        if self._ready:
            return
        owner = "SimulatedCrowd"
        check_int(self.redundancy, "redundancy", owner, min=1)
        check_int(self.seed, "seed", owner, min=0)
        check_float(self.lease_seconds, "lease_seconds", owner, low=1e-6)
        check_float(self.away_seconds, "away_seconds", owner, low=0.0)
        check_float(self.step, "step", owner, low=1e-9, allow_none=True)
        check_float(self.speedup, "speedup", owner, low=1e-9, allow_none=True)
        if self.truth is None:
            raise ConfigError("The 'truth' parameter of SimulatedCrowd is required: a mapping id -> label.")
        if isinstance(self.truth, Mapping):
            table = dict(self.truth)
        else:
            ids, ys = self.truth
            id_list = as_id_array(ids, "truth ids").tolist()
            table = dict(zip(id_list, np.asarray(ys, dtype=object).tolist(), strict=True))
        self._truth = {_plain(k): _plain(v) for k, v in table.items()}
        self._gold = {_plain(k): _plain(v) for k, v in (self.gold or {}).items()}
        labels = set(self._truth.values()) | set(self._gold.values())
        by_type = sorted(labels, key=lambda v: (str(type(v)), v))
        self._classes = list(self.classes) if self.classes is not None else by_type
        unknown = labels - set(self._classes)
        if unknown:
            raise ConfigError(f"SimulatedCrowd: the labels {sorted(map(repr, unknown))} are not in 'classes'.")
        team = self._team_spec()
        if self.redundancy > len(team):
            raise ConfigError(
                f"The 'redundancy' parameter of SimulatedCrowd must be at most the number of annotators "
                f"({len(team)}): each judgement of a record comes from a different annotator. Got {self.redundancy}."
            )
        self._team = team
        self._rng = np.random.default_rng(self.seed)
        self._policy: AllocationPolicy = self.allocator if self.allocator is not None else Allocator()
        self._agg: Aggregate = self.aggregate if self.aggregate is not None else majority_vote
        self.now = 0.0
        self._records: dict[Any, _Rec] = {}
        self._by_task: dict[int, Any] = {}
        self._gold_tasks = {rid: 10**9 + i for i, rid in enumerate(self._gold)}
        self._gold_seen: dict[Any, set[str]] = {rid: set() for rid in self._gold}
        self._busy_until = {a.id: -math.inf for a in team}
        self._busy_est = {a.id: -math.inf for a in team}
        self._away_until = {a.id: -math.inf for a in team}
        self._durations: dict[str, list[float]] = {a.id: [] for a in team}
        self._medians: dict[str, float | None] = {a.id: None for a in team}
        self._confusion = {a.id: np.zeros((len(self._classes), len(self._classes))) for a in team}
        self._count = {a.id: 0 for a in team}
        self._gold_count = {a.id: 0 for a in team}
        self._events: list[tuple[float, int, str, tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self._batches: list[dict[str, Any]] = []
        self.judgements: list[dict[str, Any]] = []
        self.stats: list[dict[str, Any]] = []
        self._wall0: float | None = None
        for a in team:
            for start, end in a.schedule or ():
                self._push(float(start), "tick", ())
                self._push(float(end), "tick", ())
        self._ready = True

    def _team_spec(self) -> list[CrowdAnnotator]:
        spec = self.annotators
        if isinstance(spec, bool) or not isinstance(spec, int | Sequence):
            raise ConfigError(f"The 'annotators' parameter of SimulatedCrowd must be an int or a list. Got {spec!r}.")
        if isinstance(spec, int):
            n = check_int(spec, "annotators", "SimulatedCrowd", min=1)
            accs = np.linspace(0.6, 0.95, n) if n > 1 else np.array([0.8])
            return [CrowdAnnotator(id=f"a{i}", accuracy=float(accs[i])) for i in range(n)]
        team = list(spec)
        if not team:
            raise ConfigError("The 'annotators' parameter of SimulatedCrowd must name at least one annotator.")
        ids = [a.id for a in team]
        if len(set(ids)) != len(ids):
            raise ConfigError(f"SimulatedCrowd annotator ids must be distinct. Got {ids!r}.")
        c = len(self.classes) if self.classes is not None else None
        for a in team:
            where = f"CrowdAnnotator {a.id!r}"
            check_float(a.accuracy, "accuracy", where, low=0.0, high=1.0)
            check_float(a.seconds, "seconds", where, low=1e-6)
            check_float(a.spread, "spread", where, low=0.0)
            check_float(a.abandon, "abandon", where, low=0.0, high=1.0)
            if a.confusion is not None:
                m = np.asarray(a.confusion, dtype=np.float64)
                if m.ndim != 2 or m.shape[0] != m.shape[1] or (c is not None and m.shape[0] != c):
                    raise ConfigError(f"The 'confusion' of {where} must be (C, C) over the crowd's classes.")
                if np.any(m < 0) or not np.allclose(m.sum(axis=1), 1.0):
                    raise ConfigError(f"The rows of the 'confusion' of {where} must be probabilities summing to 1.")
        return team

    # ---- LabelProvider ---------------------------------------------------------------------------
    def request(self, ids: Any) -> None:
        self._setup()
        arr = as_id_array(ids, "ids").tolist()
        missing = [i for i in arr if i not in self._truth]
        if missing:
            raise UnknownRecordError(f"SimulatedCrowd has no ground truth for id {missing[0]!r}.")
        if self._wall0 is None:
            self._wall0 = time.monotonic()
        fresh = [i for i in arr if i not in self._records or self._records[i].cancelled]
        if not fresh:
            return
        batch = len(self._batches)
        self._batches.append({"batch": batch, "requested_at": self.now, "ids": fresh, "reported": False})
        for rid in fresh:
            task_id = len(self._by_task) + 1
            self._by_task[task_id] = rid
            self._records[rid] = _Rec(
                task_id=task_id,
                batch=batch,
                priority=float((self.priority or {}).get(rid, 0.0)),
                predicted=(self.predicted or {}).get(rid),
                open_slots=int(self.redundancy),
            )

    def cancel(self, ids: Any) -> None:
        self._setup()
        for rid in as_id_array(ids, "ids").tolist():
            rec = self._records.get(rid)
            if rec is not None and rec.done_at is None:
                rec.cancelled, rec.open_slots = True, 0

    def poll(self) -> list[LabelEvent]:
        self._setup()
        if self.speedup is not None:
            target = 0.0 if self._wall0 is None else (time.monotonic() - self._wall0) * float(self.speedup)
        elif self.step is not None:
            target = self.now + float(self.step)
        else:
            target = math.inf
        self._run(target)
        return self._emit()

    @property
    def pending(self) -> int:
        return sum(1 for r in self._records.values() if r.done_at is None and not r.cancelled) if self._ready else 0

    # ---- the simulation --------------------------------------------------------------------------
    def _push(self, t: float, kind: str, payload: tuple[Any, ...]) -> None:
        heapq.heappush(self._events, (t, next(self._seq), kind, payload))

    def _run(self, until: float) -> None:
        self._dispatch()
        while self._events and self._events[0][0] <= until:
            if until == math.inf and not self.pending:
                break
            t = self._events[0][0]
            self.now = max(self.now, t)
            while self._events and self._events[0][0] == t:
                _, _, kind, payload = heapq.heappop(self._events)
                self._handle(kind, payload)
            self._dispatch()
            if self.pending and not any(b > self.now for b in self._busy_until.values()):
                self._dispatch(fallback=True)  # nobody at work yet work left: never wait for nothing
        if math.isfinite(until):
            self.now = max(self.now, until)

    def _handle(self, kind: str, payload: tuple[Any, ...]) -> None:
        if kind == "finish":
            ann, rid, gold, label, seconds = payload
            self._durations[ann].append(seconds)
            self._medians[ann] = float(np.median(self._durations[ann]))
            self.judgements.append(
                {"id": rid, "annotator": ann, "label": label, "seconds": seconds, "at": self.now, "gold": gold}
            )
            if gold:
                self._gold_count[ann] += 1
                self._learn(ann, self._gold[rid], label)
                return
            rec = self._records[rid]
            rec.holding.pop(ann, None)
            if rec.cancelled or rec.done_at is not None:
                return  # a backup judgement that came second: wasted work
            self._count[ann] += 1
            rec.judgements.append((ann, label))
            if len(rec.judgements) >= self.redundancy and rec.done_at is None:
                rec.done_at = self.now
                consensus = majority_vote([(rid, a, y) for a, y in rec.judgements], self._classes)[rid][0]
                for a, y in rec.judgements:
                    self._learn(a, consensus, y)
        elif kind == "expire":
            ann, rid, gold = payload
            if gold:
                self._gold_seen[rid].discard(ann)
            else:
                rec = self._records[rid]
                rec.holding.pop(ann, None)
                short = self.redundancy - len(rec.judgements) - len(rec.holding) - rec.open_slots
                if not rec.cancelled and rec.done_at is None and short > 0:
                    rec.open_slots += 1
        # "tick": a schedule boundary or a walk-away ending; dispatch follows

    def _learn(self, ann: str, true: Any, given: Any) -> None:
        pos = {c: i for i, c in enumerate(self._classes)}
        self._confusion[ann][pos[true], pos[given]] += 1

    def _online(self, a: CrowdAnnotator, t: float) -> tuple[bool, float]:
        """(online at t, end of the current online interval)."""
        if t < self._away_until[a.id]:
            return False, t
        if a.schedule is None:
            return True, math.inf
        for start, end in a.schedule:
            if start <= t < end:
                return True, float(end)
        return False, t

    def _median(self, ann: str) -> float | None:
        return self._medians[ann]

    def _views(self) -> tuple[list[TaskView], list[AnnotatorView]]:
        tasks = [
            TaskView(
                task_id=r.task_id, rid=rid, priority=r.priority, open_slots=r.open_slots,
                seen=frozenset(r.holding) | frozenset(a for a, _ in r.judgements), predicted=r.predicted,
                batch=r.batch, holders=tuple(r.holding.items()),
            )
            for rid, r in self._records.items()
            if r.done_at is None and not r.cancelled
        ]
        tasks += [
            TaskView(task_id=self._gold_tasks[g], rid=g, open_slots=1, seen=frozenset(self._gold_seen[g]), gold=True)
            for g in self._gold
        ]
        team = []
        known = [m for m in (self._median(a.id) for a in self._team) if m is not None]
        fallback = float(np.median(known)) if known else 60.0
        for a in self._team:
            online, end = self._online(a, self.now)
            busy = self._busy_until[a.id] > self.now
            team.append(
                AnnotatorView(
                    id=a.id,
                    available=online,
                    skills=frozenset(a.skills),
                    leases=1 if busy else 0,
                    seconds=self._median(a.id),
                    free_at=max(self._busy_est[a.id], self.now) if busy else self.now,
                    shift_end=end,
                    classes=tuple(self._classes),
                    confusion=self._confusion[a.id],
                    judgements=self._count[a.id],
                    gold_judgements=self._gold_count[a.id],
                    extra={"fallback_seconds": fallback},
                )
            )
        return tasks, team

    def _dispatch(self, fallback: bool = False) -> None:
        policy: AllocationPolicy = GreedyAllocator() if fallback else self._policy
        if not self.pending:
            return
        order = [self._team[i] for i in self._rng.permutation(len(self._team))]
        for a in order:
            if self._busy_until[a.id] > self.now or not self._online(a, self.now)[0]:
                continue
            tasks, team = self._views()
            me = next(v for v in team if v.id == a.id)
            pick = policy.choose(me, tasks, team, self.now)
            if pick is not None:
                self._start(a, pick, me)

    def _start(self, a: CrowdAnnotator, pick: TaskView, view: AnnotatorView) -> None:
        rid, gold = pick.rid, pick.gold
        if gold:
            self._gold_seen[rid].add(a.id)
            true = self._gold[rid]
        else:
            rec = self._records[rid]
            rec.open_slots = max(rec.open_slots - 1, 0)  # 0 already: a backup judgement
            rec.holding[a.id] = self.now
            true = self._truth[rid]
        duration = float(a.seconds * math.exp(a.spread * self._rng.standard_normal()))
        label = self._answer(a, true)
        walk_away = a.abandon > 0 and self._rng.random() < a.abandon
        _, shift_end = self._online(a, self.now)
        est = view.seconds if view.seconds is not None else view.extra.get("fallback_seconds", 60.0)
        self._busy_est[a.id] = self.now + float(est)
        if walk_away or self.now + duration > shift_end:
            leave = min(self.now + duration * (self._rng.random() if walk_away else 1.0), shift_end)
            self._busy_until[a.id] = leave
            if walk_away:
                self._away_until[a.id] = leave + float(self.away_seconds)
                self._push(self._away_until[a.id], "tick", ())
            self._push(leave, "tick", ())
            self._push(self.now + float(self.lease_seconds), "expire", (a.id, rid, gold))
        else:
            self._busy_until[a.id] = self.now + duration
            self._push(self.now + duration, "finish", (a.id, rid, gold, label, duration))

    def _answer(self, a: CrowdAnnotator, true: Any) -> Any:
        k = len(self._classes)
        i = self._classes.index(true)
        if a.confusion is not None:
            return self._classes[int(self._rng.choice(k, p=np.asarray(a.confusion, dtype=np.float64)[i]))]
        if k == 1 or self._rng.random() < a.accuracy:
            return true
        j = int(self._rng.integers(k - 1))
        return self._classes[j if j < i else j + 1]

    # ---- results ---------------------------------------------------------------------------------
    def _emit(self) -> list[LabelEvent]:
        ready = [rid for rid, r in self._records.items() if r.done_at is not None and not r.emitted and not r.cancelled]
        if not ready:
            return []
        done = [(rid, a, y) for rid, r in self._records.items() if r.done_at is not None and not r.cancelled
                for a, y in r.judgements]
        result = self._agg(done, self._classes)
        events = []
        for rid in ready:
            rec = self._records[rid]
            rec.emitted = True
            label, posterior = result[rid]
            events.append(
                LabelEvent(
                    id=rid,
                    label=_plain(label),
                    source="human",
                    annotator=",".join(a for a, _ in rec.judgements),
                    posterior=float(posterior),
                )
            )
            self._batches[rec.batch].setdefault("labels", {})[rid] = _plain(label)
        self._report()
        return events

    def _report(self) -> None:
        for b in self._batches:
            if b["reported"]:
                continue
            recs = [self._records[r] for r in b["ids"] if not self._records[r].cancelled]
            if any(not r.emitted for r in recs):
                continue
            labels = b.get("labels", {})
            hits = [labels[r] == self._truth[r] for r in b["ids"] if r in labels]
            finish = max((r.done_at for r in recs if r.done_at is not None), default=b["requested_at"])
            ids = set(b["ids"])
            self.stats.append(
                {
                    "batch": b["batch"],
                    "records": len(recs),
                    "accuracy": float(np.mean(hits)) if hits else math.nan,
                    "seconds": float(finish - b["requested_at"]),
                    "judgements": sum(1 for j in self.judgements if not j["gold"] and j["id"] in ids),
                    "gold_judgements": sum(
                        1 for j in self.judgements if j["gold"] and b["requested_at"] <= j["at"] <= finish
                    ),
                }
            )
            b["reported"] = True


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value
