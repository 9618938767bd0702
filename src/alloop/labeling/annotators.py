"""Annotators: who they are, whether they are there, how fast and how right they are.

The maths are pure functions (:func:`within_hours`, :func:`annotator_status`, :func:`confusion_matrix`,
:func:`class_accuracy`); :class:`Annotators` keeps the registry in the campaign store.

>>> confusion_matrix(["a", "a", "b"], ["a", "b", "b"], ["a", "b"]).tolist()
[[1, 1], [0, 1]]
>>> class_accuracy(np.array([[9, 1], [0, 0]]), prior=0.5, strength=2.0).round(3).tolist()
[0.833, 0.5]
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from alloop._validation import check_float, check_int
from alloop.errors import ConfigError, UnknownRecordError

__all__ = [
    "AnnotatorProfile",
    "AnnotatorStatus",
    "Annotators",
    "annotator_status",
    "class_accuracy",
    "confusion_matrix",
    "hours_end",
    "within_hours",
]


class AnnotatorStatus(StrEnum):
    """ONLINE: working or ready; IDLE: heartbeat but no work for a while; BUSY: at capacity; OFFLINE."""

    ONLINE = "online"
    IDLE = "idle"
    BUSY = "busy"
    OFFLINE = "offline"


def _hour_of(t: float) -> float:
    return (t % 86400.0) / 3600.0


def within_hours(hours: Sequence[Sequence[float]] | None, t: float) -> bool:
    """Is UTC time ``t`` (epoch seconds) inside one of the ``[start_hour, end_hour)`` windows?

    A window whose end is before its start wraps midnight; ``None`` means any time.

    >>> within_hours([[9, 17]], 10 * 3600), within_hours([[22, 6]], 3 * 3600), within_hours([[9, 17]], 8 * 3600)
    (True, True, False)
    """
    if hours is None:
        return True
    h = _hour_of(t)
    for start, end in hours:
        if (start <= h < end) if start <= end else (h >= start or h < end):
            return True
    return False


def hours_end(hours: Sequence[Sequence[float]] | None, t: float) -> float:
    """Epoch seconds at which the working window that holds ``t`` ends (inf without hours; t if outside)."""
    if hours is None:
        return math.inf
    h = _hour_of(t)
    best = None
    for start, end in hours:
        if (start <= h < end) if start <= end else (h >= start or h < end):
            left = (end - h) % 24.0 or 24.0
            best = left if best is None else max(best, left)
    return t if best is None else t + best * 3600.0


def annotator_status(
    *,
    now: float,
    last_seen: float | None,
    signed_in: bool = True,
    hours: Sequence[Sequence[float]] | None = None,
    leases: int = 0,
    capacity: int = 1,
    last_active: float | None = None,
    heartbeat_timeout: float = 120.0,
    idle_after: float = 300.0,
) -> AnnotatorStatus:
    """The status rule: offline without a recent heartbeat or outside working hours; busy at capacity;
    idle when nothing was leased or submitted for ``idle_after`` seconds; online otherwise.

    >>> annotator_status(now=1000.0, last_seen=990.0, last_active=995.0).value
    'online'
    >>> annotator_status(now=1000.0, last_seen=700.0).value
    'offline'
    """
    if not signed_in or last_seen is None or now - last_seen > heartbeat_timeout or not within_hours(hours, now):
        return AnnotatorStatus.OFFLINE
    if leases >= capacity:
        return AnnotatorStatus.BUSY
    if leases == 0 and (last_active is None or now - last_active > idle_after):
        return AnnotatorStatus.IDLE
    return AnnotatorStatus.ONLINE


def confusion_matrix(true: Sequence[Any], given: Sequence[Any], classes: Sequence[Any]) -> np.ndarray:
    """Counts ``M[i, j]`` of answers ``classes[j]`` when the truth was ``classes[i]`` (unknown labels skipped)."""
    pos = {c: i for i, c in enumerate(classes)}
    out = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for t, g in zip(true, given, strict=True):
        if t in pos and g in pos:
            out[pos[t], pos[g]] += 1
    return out


def class_accuracy(confusion: np.ndarray, *, prior: float = 0.7, strength: float = 4.0) -> np.ndarray:
    """Posterior-mean accuracy per true class: ``(correct + prior·strength) / (n + strength)``."""
    m = np.asarray(confusion, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ConfigError(f"A confusion matrix must be square (C, C). Got shape {m.shape}.")
    return (np.diag(m) + prior * strength) / (m.sum(axis=1) + strength)


@dataclass(frozen=True)
class AnnotatorProfile:
    """What the store knows of one annotator right now."""

    id: str
    skills: tuple[str, ...] = ()
    hours: tuple[tuple[float, float], ...] | None = None
    capacity: int = 1
    quota: int | None = None
    status: AnnotatorStatus = AnnotatorStatus.OFFLINE
    leases: int = 0
    judgements: int = 0
    gold_judgements: int = 0
    seconds: float | None = None  # median seconds per judgement
    classes: tuple[Any, ...] = ()
    gold_confusion: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    consensus_confusion: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))

    @property
    def confusion(self) -> np.ndarray:
        """Gold and consensus evidence added together (what allocation uses)."""
        return self.gold_confusion + self.consensus_confusion

    @property
    def gold_accuracy(self) -> float | None:
        n = int(self.gold_confusion.sum())
        return None if n == 0 else float(np.trace(self.gold_confusion)) / n

    @property
    def agreement(self) -> float | None:
        n = int(self.consensus_confusion.sum())
        return None if n == 0 else float(np.trace(self.consensus_confusion)) / n


class Annotators:
    """The annotator registry of a campaign store.

    store              a :class:`alloop.store.CampaignStore`
    heartbeat_timeout  seconds without a heartbeat before an annotator counts as offline
    idle_after         seconds without a lease or a submission before an online annotator counts as idle
    clock              ``time.time`` by default; pass another for simulations and tests
    """

    def __init__(
        self,
        store: Any,
        *,
        heartbeat_timeout: float = 120.0,
        idle_after: float = 300.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.store = store
        self.heartbeat_timeout = heartbeat_timeout
        self.idle_after = idle_after
        self.clock = clock

    def _now(self) -> float:
        return float((self.clock or time.time)())

    def register(
        self,
        annotator: str,
        *,
        skills: Sequence[str] = (),
        hours: Sequence[Sequence[float]] | None = None,
        capacity: int = 1,
        quota: int | None = None,
    ) -> None:
        """Add or update an annotator. ``skills`` are label-set names (empty = every label set)."""
        from alloop.store import _labeling as L

        _check_id(annotator)
        check_int(capacity, "capacity", "Annotators.register", min=1)
        check_int(quota, "quota", "Annotators.register", min=0, allow_none=True)
        if isinstance(skills, str):
            raise ConfigError(
                f"The 'skills' parameter of Annotators.register must be a list of label sets. Got {skills!r}; "
                f"write [{skills!r}]."
            )
        for window in hours or ():
            if len(window) != 2:
                raise ConfigError(f"Each of 'hours' must be [start_hour, end_hour]. Got {window!r}.")
            for h in window:
                check_float(h, "hours", "Annotators.register", low=0.0, high=24.0)
        with self.store.transaction() as conn:
            L.upsert_annotator(
                conn, annotator, self._now(), skills=list(skills), hours=hours, capacity=capacity, quota=quota
            )

    def heartbeat(self, annotator: str, *, now: float | None = None) -> None:
        """The annotator is here (signs them in); call every ``heartbeat_timeout`` seconds or more often."""
        from alloop.store import _labeling as L

        _check_id(annotator)
        with self.store.transaction() as conn:
            if not L.annotator_rows(conn, annotator):
                raise UnknownRecordError(f"No annotator {annotator!r}; register it first with Annotators.register.")
            L.upsert_annotator(conn, annotator, self._now(), last_seen=self._now() if now is None else now,
                               signed_in=True)

    def sign_out(self, annotator: str) -> None:
        """The annotator leaves: offline at once (their leases still expire on their own)."""
        from alloop.store import _labeling as L

        with self.store.transaction() as conn:
            L.upsert_annotator(conn, annotator, self._now(), signed_in=False)

    def profiles(self, *, classes: Sequence[Any] | None = None, now: float | None = None) -> list[AnnotatorProfile]:
        """Every registered annotator with status, throughput and quality (confusions over ``classes``)."""
        import sqlalchemy as sa

        from alloop.store import _labeling as L
        from alloop.store import _schema as T

        now = self._now() if now is None else now
        with self.store.transaction() as conn:
            people = L.annotator_rows(conn)
            leases = dict(
                conn.execute(
                    sa.select(T.task_slots.c.annotator, sa.func.count())
                    .where(T.task_slots.c.done.is_(False), T.task_slots.c.expires_at >= now)
                    .group_by(T.task_slots.c.annotator)
                ).all()
            )
            last_lease = dict(
                conn.execute(
                    sa.select(T.task_slots.c.annotator, sa.func.max(T.task_slots.c.leased_at)).group_by(
                        T.task_slots.c.annotator
                    )
                ).all()
            )
            rows = conn.execute(
                sa.select(
                    T.task_annotations.c.annotator,
                    T.task_annotations.c.label,
                    T.task_annotations.c.seconds,
                    T.tasks.c.kind,
                    T.tasks.c.gold_label,
                    T.tasks.c.consensus,
                    T.tasks.c.choices,
                ).join(T.tasks, T.tasks.c.task_id == T.task_annotations.c.task_id)
            ).all()
        decoded = [
            (a, L.loads(lab), sec, kind, L.loads(gold), L.loads(cons), L.loads(ch))
            for a, lab, sec, kind, gold, cons, ch in rows
        ]
        if classes is None:
            seen: list[Any] = []
            for *_, choices in decoded:
                seen.extend(c for c in choices if c not in seen)
            classes = seen
        out = []
        for p in people:
            mine = [d for d in decoded if d[0] == p["annotator"]]
            gold = [(d[4], d[1]) for d in mine if d[3] == "gold" and d[4] is not None]
            agree = [(d[5], d[1]) for d in mine if d[3] == "record" and d[5] is not None]
            secs = [float(d[2]) for d in mine if d[2] is not None]
            status = annotator_status(
                now=now,
                last_seen=p["last_seen"],
                signed_in=bool(p["signed_in"]),
                hours=p["hours"],
                leases=int(leases.get(p["annotator"], 0)),
                capacity=int(p["capacity"]),
                last_active=last_lease.get(p["annotator"]),
                heartbeat_timeout=self.heartbeat_timeout,
                idle_after=self.idle_after,
            )
            out.append(
                AnnotatorProfile(
                    id=p["annotator"],
                    skills=tuple(p["skills"]),
                    hours=None if p["hours"] is None else tuple((float(a), float(b)) for a, b in p["hours"]),
                    capacity=int(p["capacity"]),
                    quota=p["quota"],
                    status=status,
                    leases=int(leases.get(p["annotator"], 0)),
                    judgements=sum(1 for d in mine if d[3] == "record"),
                    gold_judgements=len(gold),
                    seconds=float(np.median(secs)) if secs else None,
                    classes=tuple(classes),
                    gold_confusion=confusion_matrix([g for g, _ in gold], [y for _, y in gold], classes),
                    consensus_confusion=confusion_matrix([c for c, _ in agree], [y for _, y in agree], classes),
                )
            )
        return out

    def profile(self, annotator: str, **kwargs: Any) -> AnnotatorProfile:
        for p in self.profiles(**kwargs):
            if p.id == annotator:
                return p
        raise UnknownRecordError(f"No annotator {annotator!r}; register it first with Annotators.register.")


def _check_id(annotator: Any) -> None:
    if not isinstance(annotator, str) or not annotator or len(annotator) > 128:
        raise ConfigError(f"An annotator id must be a non-empty string of at most 128 characters. Got {annotator!r}.")
