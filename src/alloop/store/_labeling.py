"""Labeling queries on the campaign store: tasks, leases (slots), annotations, annotators.

Plain functions over an open SQLAlchemy connection; the caller owns the transaction. They work on SQLite
and PostgreSQL alike. Lease acquisition is one conditional ``UPDATE … WHERE`` whose row count says who won,
so two annotators can never hold the same slot.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from alloop.store import _schema as T

__all__ = [
    "acquire_slot",
    "add_slot",
    "annotator_rows",
    "annotations_for",
    "complete_slot",
    "dumps",
    "insert_tasks",
    "loads",
    "open_task_rows",
    "slot_rows",
    "task_rows",
    "upsert_annotator",
]


def dumps(value: Any) -> str:
    """JSON with numpy scalars turned into Python ones."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        value = value.item()
    return json.dumps(value)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


# ---- tasks ---------------------------------------------------------------------------------------
def insert_tasks(conn: Connection, rows: Sequence[dict[str, Any]], now: float) -> list[int]:
    """Insert tasks (one row each) and their ``required`` empty slots; returns the new task ids."""
    ids: list[int] = []
    for row in rows:
        values = {
            "rid": dumps(row["rid"]),
            "kind": row.get("kind", "record"),
            "label_set": row.get("label_set", "default"),
            "choices": json.dumps(list(row["choices"])),
            "priority": float(row.get("priority", 0.0)),
            "required": int(row.get("required", 1)),
            "state": "open",
            "deadline": row.get("deadline"),
            "batch": row.get("batch"),
            "predicted": None if row.get("predicted") is None else dumps(row["predicted"]),
            "gold_label": None if row.get("gold_label") is None else dumps(row["gold_label"]),
            "payload": None if row.get("payload") is None else json.dumps(row["payload"]),
            "delivered": False,
            "created_at": now,
        }
        task_id = conn.execute(sa.insert(T.tasks).values(**values).returning(T.tasks.c.task_id)).scalar_one()
        ids.append(int(task_id))
        slots = [{"task_id": task_id, "slot": s, "done": False} for s in range(values["required"])]
        if slots:
            conn.execute(sa.insert(T.task_slots), slots)
    return ids


def _decode_task(row: Any) -> dict[str, Any]:
    d = dict(row)
    for key in ("rid", "predicted", "gold_label", "payload", "consensus"):
        d[key] = loads(d[key])
    d["choices"] = json.loads(d["choices"])
    return d


def task_rows(conn: Connection, task_ids: Iterable[int] | None = None, **where: Any) -> list[dict[str, Any]]:
    """Tasks (decoded JSON), filtered by ids and column equality, ordered by task id."""
    query = sa.select(T.tasks)
    if task_ids is not None:
        query = query.where(T.tasks.c.task_id.in_([int(t) for t in task_ids]))
    for key, value in where.items():
        query = query.where(T.tasks.c[key] == value)
    return [_decode_task(r) for r in conn.execute(query.order_by(T.tasks.c.task_id)).mappings()]


def open_task_rows(conn: Connection) -> list[dict[str, Any]]:
    return task_rows(conn, state="open")


def slot_rows(conn: Connection, task_ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
    query = sa.select(T.task_slots)
    if task_ids is not None:
        query = query.where(T.task_slots.c.task_id.in_([int(t) for t in task_ids]))
    return [dict(r) for r in conn.execute(query.order_by(T.task_slots.c.task_id, T.task_slots.c.slot)).mappings()]


def add_slot(conn: Connection, task_id: int, annotator: str | None = None, now: float = 0.0, lease: float = 0.0) -> int:
    """Append one slot to a task (optionally leased at once); returns its number."""
    top = conn.execute(
        sa.select(sa.func.max(T.task_slots.c.slot)).where(T.task_slots.c.task_id == task_id)
    ).scalar_one_or_none()
    slot = 0 if top is None else int(top) + 1
    conn.execute(
        sa.insert(T.task_slots).values(
            task_id=task_id,
            slot=slot,
            annotator=annotator,
            leased_at=now if annotator else None,
            expires_at=now + lease if annotator else None,
            done=False,
        )
    )
    return slot


# ---- leases --------------------------------------------------------------------------------------
def acquire_slot(conn: Connection, task_id: int, slot: int, annotator: str, now: float, lease: float) -> bool:
    """Lease ``slot`` of ``task_id`` to ``annotator`` if it is free or expired; True if this call won.

    One statement: the slot must be undone and free (or its lease expired), its task open, and the
    annotator must hold no live lease on, nor have judged, another slot of the same task.
    """
    s = T.task_slots
    other = s.alias("other")
    stmt = (
        sa.update(s)
        .where(
            s.c.task_id == task_id,
            s.c.slot == slot,
            s.c.done.is_(False),
            sa.or_(s.c.annotator.is_(None), s.c.expires_at < now),
            sa.exists().where(T.tasks.c.task_id == task_id, T.tasks.c.state == "open"),
            ~sa.exists().where(
                other.c.task_id == task_id,
                other.c.annotator == annotator,
                sa.or_(other.c.done.is_(True), other.c.expires_at >= now),
            ),
        )
        .values(annotator=annotator, leased_at=now, expires_at=now + lease)
    )
    return conn.execute(stmt).rowcount == 1


def complete_slot(conn: Connection, task_id: int, annotator: str, now: float) -> bool:
    """Mark the annotator's slot of ``task_id`` done; False if they hold none (or someone else took it).

    A lease that expired but that nobody else took is still honoured: the work is not thrown away.
    """
    s = T.task_slots
    mine = s.alias("mine")
    first = (
        sa.select(sa.func.min(mine.c.slot))
        .where(mine.c.task_id == task_id, mine.c.annotator == annotator, mine.c.done.is_(False))
        .scalar_subquery()
    )
    stmt = (
        sa.update(s)
        .where(
            s.c.task_id == task_id,
            s.c.slot == first,
            s.c.annotator == annotator,
            s.c.done.is_(False),
            sa.exists().where(T.tasks.c.task_id == task_id, T.tasks.c.state == "open"),
        )
        .values(done=True, expires_at=now)
    )
    return conn.execute(stmt).rowcount == 1


def annotations_for(conn: Connection, task_ids: Iterable[int] | None = None) -> list[dict[str, Any]]:
    query = sa.select(T.task_annotations)
    if task_ids is not None:
        query = query.where(T.task_annotations.c.task_id.in_([int(t) for t in task_ids]))
    rows = conn.execute(query.order_by(T.task_annotations.c.annotation_id)).mappings()
    return [{**dict(r), "label": json.loads(r["label"])} for r in rows]


# ---- annotators ----------------------------------------------------------------------------------
def upsert_annotator(conn: Connection, annotator: str, now: float, **fields: Any) -> None:
    values = dict(fields)
    if "skills" in values:
        values["skills"] = json.dumps(list(values["skills"] or []))
    if "hours" in values:
        values["hours"] = None if values["hours"] is None else json.dumps([list(h) for h in values["hours"]])
    updated = conn.execute(
        sa.update(T.annotators).where(T.annotators.c.annotator == annotator).values(**values)
    ).rowcount
    if not updated:
        base: dict[str, Any] = {
            "annotator": annotator,
            "skills": "[]",
            "hours": None,
            "capacity": 1,
            "quota": None,
            "last_seen": None,
            "signed_in": False,
            "created_at": now,
        }
        base.update(values)
        conn.execute(sa.insert(T.annotators).values(**base))


def annotator_rows(conn: Connection, annotator: str | None = None) -> list[dict[str, Any]]:
    query = sa.select(T.annotators)
    if annotator is not None:
        query = query.where(T.annotators.c.annotator == annotator)
    out = []
    for r in conn.execute(query.order_by(T.annotators.c.annotator)).mappings():
        d = dict(r)
        d["skills"] = json.loads(d["skills"])
        d["hours"] = loads(d["hours"])
        out.append(d)
    return out
