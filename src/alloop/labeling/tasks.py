"""The task queue: records to label become tasks, tasks are leased to annotators, annotations come back.

Everything lives in the campaign store (SQLite or PostgreSQL), one transaction per change, so any
number of threads or processes can share a queue. A task asks for ``required`` judgements; each
judgement is a *slot* that one annotator leases for ``lease_seconds``. A lease that runs out returns the
slot to the queue, so no task is ever stuck with an annotator who left. Leasing is one conditional
``UPDATE`` whose row count says who won: two annotators never hold the same slot.

>>> import tempfile
>>> from alloop.store import CampaignStore
>>> q = TaskQueue(CampaignStore(tempfile.mkdtemp(), create=True))
>>> q.annotators.register("ann")
>>> q.add_tasks(["r1"], classes=["cat", "dog"])
[1]
>>> lease = q.lease("ann")
>>> q.submit(lease.task_id, "ann", "dog", seconds=4.0)
>>> [(t["rid"], t["state"]) for t in q.tasks()]
[('r1', 'done')]
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from alloop._validation import check_float, check_int
from alloop.errors import ConfigError, DuplicateRecordError, LabelError, StateError, UnknownRecordError
from alloop.labeling.allocation import AllocationPolicy, Allocator, AnnotatorView, TaskView
from alloop.labeling.annotators import Annotators, AnnotatorStatus, hours_end
from alloop.store import _labeling as L
from alloop.store import _schema as T

__all__ = ["Lease", "TaskQueue"]


@dataclass(frozen=True)
class Lease:
    """One judgement slot held by one annotator until ``expires_at``."""

    task_id: int
    slot: int
    annotator: str
    rid: Any
    choices: tuple[Any, ...]
    expires_at: float
    gold: bool = False
    payload: Any = None
    predicted: Any = None


class TaskQueue:
    """Tasks, leases and annotations in a campaign store.

    store           a :class:`alloop.store.CampaignStore` (or a campaign directory)
    lease_seconds   how long a lease lasts before the slot returns to the queue
    allocator       the allocation policy (default :class:`~alloop.labeling.allocation.Allocator`)
    clock           ``time.time`` by default; pass another for tests and simulations
    """

    def __init__(
        self,
        store: Any,
        *,
        lease_seconds: float = 300.0,
        allocator: AllocationPolicy | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.store = store
        self.lease_seconds = lease_seconds
        self.allocator = allocator
        self.clock = clock
        self._store_obj: Any = None
        self._annotators: Annotators | None = None

    # ---- plumbing --------------------------------------------------------------------------------
    def _store(self) -> Any:
        if self._store_obj is None:
            check_float(self.lease_seconds, "lease_seconds", "TaskQueue", low=1e-6)
            if isinstance(self.store, str | Path):
                from alloop.store import CampaignStore

                self._store_obj = CampaignStore(self.store)
            else:
                self._store_obj = self.store
        return self._store_obj

    def _now(self) -> float:
        return float((self.clock or time.time)())

    @property
    def annotators(self) -> Annotators:
        """The annotator registry of the same store (same clock)."""
        if self._annotators is None:
            self._annotators = Annotators(self._store(), clock=self.clock)
        return self._annotators

    # ---- tasks -----------------------------------------------------------------------------------
    def add_tasks(
        self,
        ids: Sequence[Any],
        *,
        classes: Sequence[Any],
        required: int = 1,
        priority: Sequence[float] | float = 0.0,
        deadline: float | None = None,
        predicted: Sequence[Any] | None = None,
        payload: Sequence[Any] | None = None,
        label_set: str = "default",
        batch: int | None = None,
    ) -> list[int]:
        """One task per record id (ids that already have an open or done task are skipped); returns task ids.

        ``priority`` (one number, or one per id: higher = sooner, e.g. loop urgency + engine score),
        ``predicted`` (the model's class per id, for allocation and pre-annotation) and ``payload``
        (JSON-able, shown to the annotator) are optional.
        """
        owner = "TaskQueue.add_tasks"
        check_int(required, "required", owner, min=1)
        check_float(deadline, "deadline", owner, allow_none=True)
        choices = _choices(classes, owner)
        rids = [_plain(r) for r in ids]
        if len(set(map(_key, rids))) != len(rids):
            raise DuplicateRecordError(f"{owner}: an id is given twice in 'ids'; give each record once.")
        if isinstance(priority, int | float | np.number):
            prios = [float(priority)] * len(rids)
        else:
            prios = [float(p) for p in priority]
        for name, seq in (("priority", prios), ("predicted", predicted), ("payload", payload)):
            if seq is not None and len(seq) != len(rids):
                raise ConfigError(f"The {name!r} parameter of {owner} must have one entry per id ({len(rids)}).")
        rows = []
        for i, rid in enumerate(rids):
            rows.append(
                {
                    "rid": rid,
                    "kind": "record",
                    "label_set": label_set,
                    "choices": choices,
                    "priority": prios[i],
                    "required": required,
                    "deadline": deadline,
                    "batch": batch,
                    "predicted": None if predicted is None else _plain(predicted[i]),
                    "payload": None if payload is None else payload[i],
                }
            )
        store = self._store()
        with store.transaction() as conn:
            live = {
                _key(L.loads(r))
                for (r,) in conn.execute(
                    sa.select(T.tasks.c.rid).where(T.tasks.c.kind == "record", T.tasks.c.state != "cancelled")
                )
            }
            rows = [r for r in rows if _key(r["rid"]) not in live]
            return L.insert_tasks(conn, rows, self._now())

    def add_gold(
        self, items: Mapping[Any, Any], *, classes: Sequence[Any], label_set: str = "default",
        payload: Mapping[Any, Any] | None = None,
    ) -> list[int]:
        """Gold questions: records whose answer is known; each annotator answers each one at most once."""
        choices = _choices(classes, "TaskQueue.add_gold")
        rows = []
        for rid, label in items.items():
            if _plain(label) not in choices:
                raise LabelError(f"The gold answer {label!r} of {rid!r} is not one of the classes {choices!r}.")
            rows.append(
                {
                    "rid": _plain(rid), "kind": "gold", "label_set": label_set, "choices": choices, "required": 0,
                    "gold_label": _plain(label), "payload": None if payload is None else payload.get(rid),
                }
            )
        with self._store().transaction() as conn:
            return L.insert_tasks(conn, rows, self._now())

    def extend(self, task_id: int, extra: int = 1) -> None:
        """Ask for ``extra`` more judgements of a task (dynamic overlap); reopens it if it was done."""
        check_int(extra, "extra", "TaskQueue.extend", min=1)
        with self._store().transaction() as conn:
            task = self._task(conn, task_id)
            if task["kind"] != "record" or task["state"] == "cancelled":
                raise StateError(f"Task {task_id} is a {task['state']} {task['kind']} task; it cannot be extended.")
            for _ in range(extra):
                L.add_slot(conn, task_id)
            conn.execute(
                sa.update(T.tasks)
                .where(T.tasks.c.task_id == task_id)
                .values(required=T.tasks.c.required + extra, state="open", delivered=False)
            )

    def cancel(self, ids: Sequence[Any]) -> int:
        """Cancel the open tasks of these record ids (leases die with them); returns how many."""
        keys = {_key(_plain(r)) for r in ids}
        with self._store().transaction() as conn:
            victims = [t["task_id"] for t in L.task_rows(conn, state="open", kind="record") if _key(t["rid"]) in keys]
            if victims:
                conn.execute(sa.update(T.tasks).where(T.tasks.c.task_id.in_(victims)).values(state="cancelled"))
        return len(victims)

    def tasks(self, **where: Any) -> list[dict[str, Any]]:
        """Task rows (decoded), e.g. ``tasks(state="open")``."""
        with self._store().transaction() as conn:
            return L.task_rows(conn, **where)

    def annotations(self, task_ids: Sequence[int] | None = None) -> list[dict[str, Any]]:
        with self._store().transaction() as conn:
            return L.annotations_for(conn, task_ids)

    def _task(self, conn: Any, task_id: int) -> dict[str, Any]:
        if isinstance(task_id, bool) or not isinstance(task_id, int | np.integer):
            raise UnknownRecordError(f"Task ids are integers. Got {task_id!r}.")
        rows = L.task_rows(conn, [int(task_id)])
        if not rows:
            raise UnknownRecordError(f"No task {task_id!r} in this queue; take task ids from lease().")
        return rows[0]

    # ---- leases ----------------------------------------------------------------------------------
    def views(self, now: float | None = None) -> tuple[list[TaskView], list[AnnotatorView]]:
        """The queue and the team as allocation sees them."""
        now = self._now() if now is None else now
        with self._store().transaction() as conn:
            open_tasks = L.task_rows(conn, state="open")
            slots = L.slot_rows(conn, [t["task_id"] for t in open_tasks]) if open_tasks else []
            judged = conn.execute(
                sa.select(T.task_annotations.c.annotator, T.tasks.c.batch)
                .join(T.tasks, T.tasks.c.task_id == T.task_annotations.c.task_id)
                .where(T.tasks.c.kind == "record")
            ).all()
            leased_batches = conn.execute(
                sa.select(T.task_slots.c.annotator, T.tasks.c.batch)
                .join(T.tasks, T.tasks.c.task_id == T.task_slots.c.task_id)
                .where(T.task_slots.c.done.is_(False), T.task_slots.c.expires_at >= now, T.tasks.c.kind == "record")
            ).all()
            gold_ids = [t["task_id"] for t in open_tasks if t["kind"] == "gold"]
            gold_answers: dict[int, set[str]] = {}
            for a in L.annotations_for(conn, gold_ids) if gold_ids else []:
                gold_answers.setdefault(a["task_id"], set()).add(a["annotator"])
        by_task: dict[int, list[dict[str, Any]]] = {}
        for s in slots:
            by_task.setdefault(s["task_id"], []).append(s)
        tasks = []
        for t in open_tasks:
            ss = by_task.get(t["task_id"], [])
            seen = frozenset(
                s["annotator"] for s in ss if s["annotator"] and (s["done"] or (s["expires_at"] or 0) >= now)
            )
            free = sum(1 for s in ss if not s["done"] and (s["annotator"] is None or s["expires_at"] < now))
            gold = t["kind"] == "gold"
            if gold:
                seen = seen | frozenset(gold_answers.get(t["task_id"], ()))
            tasks.append(
                TaskView(
                    task_id=t["task_id"], rid=t["rid"], priority=t["priority"], open_slots=1 if gold else free,
                    seen=seen, label_set=t["label_set"], predicted=t["predicted"], gold=gold,
                    deadline=t["deadline"], batch=t["batch"],
                )
            )
        batches = {t.batch for t in tasks if not t.gold}
        team = []
        for p in self.annotators.profiles(now=now):
            used = sum(1 for a, b in judged if a == p.id and b in batches) + sum(
                1 for a, b in leased_batches if a == p.id and b in batches
            )
            team.append(
                AnnotatorView(
                    id=p.id,
                    available=p.status != AnnotatorStatus.OFFLINE,
                    skills=frozenset(p.skills),
                    leases=p.leases,
                    capacity=p.capacity,
                    quota_left=None if p.quota is None else max(p.quota - used, 0),
                    seconds=p.seconds,
                    free_at=now if p.leases < p.capacity else now + (p.seconds or 0.0),
                    shift_end=hours_end(p.hours, now),
                    classes=p.classes,
                    confusion=p.confusion,
                    judgements=p.judgements,
                    gold_judgements=p.gold_judgements,
                )
            )
        return tasks, team

    def lease(self, annotator: str, *, now: float | None = None, attempts: int = 20) -> Lease | None:
        """Give ``annotator`` their next judgement (chosen by the allocator), or None if there is none now.

        The annotator must be registered; asking counts as a heartbeat. Safe under any concurrency: the
        slot is taken by one conditional UPDATE, and a lost race just moves on to the next choice.
        """
        now = self._now() if now is None else now
        self.annotators.heartbeat(annotator, now=now)
        policy = self.allocator if self.allocator is not None else Allocator()
        lease_s = float(self.lease_seconds)
        skip: set[int] = set()
        for _ in range(attempts):
            tasks, team = self.views(now)
            me = next(a for a in team if a.id == annotator)
            tasks = [t for t in tasks if t.task_id not in skip]
            pick = policy.choose(me, tasks, team, now)
            if pick is None:
                return None
            try:
                got = self._take(pick, annotator, now, lease_s)
            except sa.exc.IntegrityError:  # two gold slots numbered alike at once: try again
                got = None
            if got is not None:
                return got
            skip.add(pick.task_id)
        return None

    def _take(self, pick: TaskView, annotator: str, now: float, lease_s: float) -> Lease | None:
        with self._store().transaction() as conn:
            slot = -1
            if pick.gold:
                slot = L.add_slot(conn, pick.task_id, annotator, now, lease_s)
            else:
                for s in L.slot_rows(conn, [pick.task_id]):
                    if not s["done"] and (s["annotator"] is None or s["expires_at"] < now):
                        if L.acquire_slot(conn, pick.task_id, s["slot"], annotator, now, lease_s):
                            slot = s["slot"]
                            break
            if slot < 0:
                return None
            task = L.task_rows(conn, [pick.task_id])[0]
            return Lease(
                task_id=pick.task_id, slot=slot, annotator=annotator, rid=task["rid"],
                choices=tuple(task["choices"]), expires_at=now + lease_s, gold=pick.gold,
                payload=task["payload"], predicted=task["predicted"],
            )

    def release(self, task_id: int, annotator: str) -> None:
        """Give a leased slot back at once (the annotator skips the task)."""
        with self._store().transaction() as conn:
            conn.execute(
                sa.update(T.task_slots)
                .where(
                    T.task_slots.c.task_id == task_id, T.task_slots.c.annotator == annotator,
                    T.task_slots.c.done.is_(False),
                )
                .values(annotator=None, leased_at=None, expires_at=None)
            )

    # ---- annotations -----------------------------------------------------------------------------
    def submit(
        self, task_id: int, annotator: str, label: Any, *, seconds: float | None = None, now: float | None = None
    ) -> None:
        """Record one judgement. Raises (and changes nothing) for an unknown task, a label outside the task's
        label set, a duplicate submission, or a task not leased to this annotator."""
        now = self._now() if now is None else now
        check_float(seconds, "seconds", "TaskQueue.submit", low=0.0, allow_none=True)
        label = _plain(label)
        with self._store().transaction() as conn:
            task = self._task(conn, task_id)
            if label not in task["choices"]:
                raise LabelError(
                    f"The label {label!r} is not in task {task_id}'s label set {task['choices']!r}; submit one of them."
                )
            # write first (SQLite takes the write lock here, so no read-then-upgrade conflict)
            if not L.complete_slot(conn, task_id, annotator, now):
                mine = [a for a in L.annotations_for(conn, [task_id]) if a["annotator"] == annotator]
                if mine:
                    raise DuplicateRecordError(
                        f"Annotator {annotator!r} already submitted task {task_id}; each judges a task once."
                    )
                state = self._task(conn, task_id)["state"]
                if state != "open":
                    raise StateError(f"Task {task_id} is {state}; it takes no more judgements.")
                raise StateError(
                    f"Task {task_id} is not leased to {annotator!r} (never leased, released, or its lease expired "
                    "and went to someone else); ask for work with lease() first."
                )
            conn.execute(
                sa.insert(T.task_annotations).values(
                    task_id=task_id, annotator=annotator, label=L.dumps(label), seconds=seconds, created_at=now
                )
            )
            if task["kind"] == "record":
                done = conn.execute(
                    sa.select(sa.func.count()).where(T.task_slots.c.task_id == task_id, T.task_slots.c.done.is_(True))
                ).scalar_one()
                if done >= task["required"]:
                    conn.execute(sa.update(T.tasks).where(T.tasks.c.task_id == task_id).values(state="done"))

    # ---- completed work --------------------------------------------------------------------------
    def completed(self, *, undelivered_only: bool = True) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
        """Done record tasks with their annotations (those not yet delivered, by default)."""
        with self._store().transaction() as conn:
            done = [
                t for t in L.task_rows(conn, state="done", kind="record") if not (undelivered_only and t["delivered"])
            ]
            notes = L.annotations_for(conn, [t["task_id"] for t in done]) if done else []
        by: dict[int, list[dict[str, Any]]] = {}
        for n in notes:
            by.setdefault(n["task_id"], []).append(n)
        return [(t, by.get(t["task_id"], [])) for t in done]

    def mark_delivered(self, results: Mapping[int, tuple[Any, float | None]]) -> None:
        """Store the consensus (label, posterior) of tasks and mark them delivered (one transaction)."""
        with self._store().transaction() as conn:
            for task_id, (label, posterior) in results.items():
                conn.execute(
                    sa.update(T.tasks)
                    .where(T.tasks.c.task_id == int(task_id))
                    .values(consensus=L.dumps(label), posterior=posterior, delivered=True)
                )

    def pending(self) -> int:
        """Open record tasks."""
        with self._store().transaction() as conn:
            return int(
                conn.execute(
                    sa.select(sa.func.count()).where(T.tasks.c.state == "open", T.tasks.c.kind == "record")
                ).scalar_one()
            )


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _key(value: Any) -> str:
    return json.dumps(_plain(value))


def _choices(classes: Sequence[Any], owner: str) -> list[Any]:
    if isinstance(classes, str) or classes is None:
        raise ConfigError(f"The 'classes' parameter of {owner} must be a list of labels. Got {classes!r}.")
    choices = [_plain(c) for c in classes]
    if not choices or len(set(map(_key, choices))) != len(choices):
        raise ConfigError(f"The 'classes' parameter of {owner} must list distinct labels. Got {classes!r}.")
    for c in choices:
        try:
            json.dumps(c)
        except TypeError:
            raise ConfigError(f"Labels must be JSON values (str, int, float, bool). Got {c!r}.") from None
    return choices

