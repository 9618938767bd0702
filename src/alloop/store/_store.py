"""``CampaignStore``: one directory per campaign — ``alloop.db`` (SQLite, WAL) + ``snapshots/``.

Every state change is one transaction; snapshot files are written atomically before the
transaction that refers to them commits, so a process killed at any point reopens consistent.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from alloop.errors import StoreError
from alloop.records import Pool, RecordState
from alloop.store import _schema as T
from alloop.store._db import make_engine, migrate, schema_revision

__all__ = ["CampaignStore", "DB_NAME", "SCHEMA_HEAD"]

DB_NAME = "alloop.db"
SCHEMA_HEAD = "0002"
_MIGRATIONS = Path(__file__).parent / "migrations"


def _encode_label(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    return json.dumps(value)


class CampaignStore:
    """Durable state of one campaign. ``url`` defaults to SQLite in ``directory``."""

    def __init__(self, directory: str | os.PathLike[str], *, create: bool = False, url: str | None = None) -> None:
        self.directory = Path(directory)
        db = self.directory / DB_NAME
        if not create and url is None and not db.exists():
            raise StoreError(
                f"No campaign in {str(self.directory)!r} (no {DB_NAME}); "
                "start one first, e.g. 'alloop demo' or Campaign(...)."
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        self.url = url or f"sqlite:///{db}"
        self.engine: Engine = make_engine(self.url)
        migrate(self.engine, _MIGRATIONS, f"the campaign in {str(self.directory)!r}")

    def schema_version(self) -> str | None:
        return schema_revision(self.engine)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()

    # ---- meta ------------------------------------------------------------------------------------
    def get_meta(self, key: str, default: Any = None) -> Any:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(T.meta.c.value).where(T.meta.c.key == key)).first()
        return default if row is None else json.loads(row[0])

    def set_meta(self, conn: Connection, key: str, value: Any) -> None:
        payload = json.dumps(value)
        updated = conn.execute(sa.update(T.meta).where(T.meta.c.key == key).values(value=payload)).rowcount
        if not updated:
            conn.execute(sa.insert(T.meta).values(key=key, value=payload))

    # ---- records ---------------------------------------------------------------------------------
    def insert_records(
        self, conn: Connection, index: np.ndarray, ids: np.ndarray, state: RecordState, loop: int
    ) -> None:
        rows = [
            {"idx": int(i), "rid": str(r), "state": int(state), "added_loop": loop}
            for i, r in zip(index.tolist(), ids.tolist(), strict=True)
        ]
        if rows:
            conn.execute(sa.insert(T.records), rows)

    def set_states(self, conn: Connection, index: np.ndarray, state: RecordState) -> None:
        idx = [int(i) for i in np.asarray(index).tolist()]
        for start in range(0, len(idx), 900):
            chunk = idx[start : start + 900]
            conn.execute(sa.update(T.records).where(T.records.c.idx.in_(chunk)).values(state=int(state)))

    def tombstone(self, conn: Connection, index: np.ndarray) -> None:
        """Remove records everywhere: labels, selections and the id itself."""
        idx = [int(i) for i in np.asarray(index).tolist()]
        for start in range(0, len(idx), 900):
            chunk = idx[start : start + 900]
            conn.execute(sa.delete(T.labels).where(T.labels.c.idx.in_(chunk)))
            conn.execute(sa.delete(T.selections).where(T.selections.c.idx.in_(chunk)))
            conn.execute(sa.update(T.records).where(T.records.c.idx.in_(chunk)).values(rid=None, state=-1))

    def load_pool(self) -> Pool:
        kind = self.get_meta("id_kind", "int")
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(T.records.c.rid, T.records.c.state).order_by(T.records.c.idx)).all()
        ids: list[Any] = []
        for rid, _ in rows:
            if rid is None:
                ids.append(None)
            else:
                ids.append(int(rid) if kind == "int" else rid)
        states = [s for _, s in rows]
        alive = [rid is not None for rid, _ in rows]
        # removed records keep their index; give them a placeholder id no lookup can hit
        ids = [
            rid if rid is not None else (-(i + 1) if kind == "int" else f"\0removed{i}") for i, rid in enumerate(ids)
        ]
        return Pool.restore(ids, states, alive)

    # ---- loops -----------------------------------------------------------------------------------
    def insert_loop(self, conn: Connection, loop: int, phase: str, strategy: str, reason: str, **fields: Any) -> None:
        now = time.time()
        conn.execute(
            sa.insert(T.loops).values(
                loop=loop,
                phase=phase,
                strategy=strategy,
                reason=reason,
                hand_edited=bool(fields.pop("hand_edited", False)),
                started_at=now,
                updated_at=now,
                **fields,
            )
        )

    def update_loop(self, conn: Connection, loop: int, **fields: Any) -> None:
        conn.execute(sa.update(T.loops).where(T.loops.c.loop == loop).values(updated_at=time.time(), **fields))

    def delete_loop(self, conn: Connection, loop: int) -> None:
        conn.execute(sa.delete(T.loops).where(T.loops.c.loop == loop))

    def loops(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(T.loops).order_by(T.loops.c.loop)).mappings().all()
        return [dict(r) for r in rows]

    def last_loop(self) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(T.loops).order_by(T.loops.c.loop.desc()).limit(1)).mappings().first()
        return None if row is None else dict(row)

    def insert_selection(self, conn: Connection, loop: int, index: np.ndarray, scores: np.ndarray | None) -> None:
        rows = [
            {
                "loop": loop,
                "idx": int(i),
                "rank": r + 1,
                "score": None if scores is None or not np.isfinite(scores[r]) else float(scores[r]),
            }
            for r, i in enumerate(np.asarray(index).tolist())
        ]
        if rows:
            conn.execute(sa.insert(T.selections), rows)

    def selections(self) -> dict[int, list[int]]:
        """Loop → selected record indices in rank order."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(T.selections.c.loop, T.selections.c.idx).order_by(T.selections.c.loop, T.selections.c.rank)
            ).all()
        out: dict[int, list[int]] = {}
        for loop, idx in rows:
            out.setdefault(int(loop), []).append(int(idx))
        return out

    # ---- labels ----------------------------------------------------------------------------------
    def insert_labels(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        now = time.time()
        payload = [
            {
                "idx": int(r["idx"]),
                "label": _encode_label(r["label"]),
                "source": r.get("source", "oracle"),
                "annotator": r.get("annotator"),
                "posterior": r.get("posterior"),
                "loop": int(r["loop"]),
                "model_version": r.get("model_version"),
                "created_at": now,
            }
            for r in rows
        ]
        if payload:
            conn.execute(sa.insert(T.labels), payload)

    def labels(self) -> list[dict[str, Any]]:
        """Every label with its provenance, ordered by record index."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(T.labels).order_by(T.labels.c.idx)).mappings().all()
        out = []
        for r in rows:
            d = dict(r)
            d["label"] = json.loads(d["label"])
            out.append(d)
        return out

    # ---- metrics and compute ---------------------------------------------------------------------
    def insert_values(self, conn: Connection, table: str, loop: int, values: dict[str, float]) -> None:
        tbl = {"metrics": T.metrics, "compute": T.compute}[table]
        conn.execute(sa.delete(tbl).where(tbl.c.loop == loop))
        rows = [{"loop": loop, "name": k, "value": float(v)} for k, v in values.items()]
        if rows:
            conn.execute(sa.insert(tbl), rows)

    def values(self, table: str) -> dict[int, dict[str, float]]:
        tbl = {"metrics": T.metrics, "compute": T.compute}[table]
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(tbl).order_by(tbl.c.loop, tbl.c.name)).all()
        out: dict[int, dict[str, float]] = {}
        for loop, name, value in rows:
            out.setdefault(int(loop), {})[name] = float(value)
        return out

    # ---- snapshots -------------------------------------------------------------------------------
    def snapshot_path(self, loop: int) -> Path:
        return self.directory / "snapshots" / f"loop-{loop:04d}.parquet"
