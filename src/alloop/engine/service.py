"""``EngineService``: many projects' selection engines behind one database — the library half of ``alloop serve``.

The HTTP layer (``alloop.server``) only translates requests into these calls. State per project:

* record ids: append-only Parquet batches (``<data>/<project>/records-NNNNNN.parquet``), metadata in the DB;
* labels and pending selections: DB rows keyed by (project, record id);
* snapshots: uploaded in chunks (Arrow IPC), each chunk idempotent by (loop, chunk index) and stored as a
  Parquet file before its DB row commits; a loop's snapshot becomes visible only when committed, so a
  server killed mid-upload shows no partial snapshot.

* training dynamics (``full`` sharing): one Parquet file per loop (``dynamics/loop-NNNNNN.parquet``).

A project's in-memory :class:`SelectionEngine` is rebuilt lazily from that state after a restart, replaying
committed snapshots in loop order, then the training dynamics, so recommendations are identical to the embedded
engine's.

>>> import tempfile, numpy as np
>>> from alloop import Snapshot
>>> d = tempfile.mkdtemp()
>>> svc = EngineService(f"sqlite:///{d}/svc.db", d)
>>> pid, key = svc.create_project(name="demo", classes=[0, 1])
>>> svc.project_for_key(key) == pid
True
>>> svc.add_records(pid, [1, 2, 3])
3
>>> snap = Snapshot(ids=[1, 2, 3], probs=np.array([[0.9, 0.1], [0.5, 0.5], [0.7, 0.3]]))
>>> svc.put_chunk(pid, 0, 0, arrow_ipc_bytes(snap.to_arrow()))["status"]
'stored'
>>> svc.commit_snapshot(pid, 0, 1)["n_rows"]
3
>>> svc.recommend(pid, 1, loop=1).ids.tolist()
[2]
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from alloop._validation import check_int
from alloop.engine._engine import Selection, SelectionEngine
from alloop.errors import ConfigError, DataError, DuplicateRecordError, StateError, UnknownRecordError
from alloop.metadata import Snapshot
from alloop.metadata.snapshot import arrow_ids, fixed_size_list
from alloop.records import RecordState, as_id_array
from alloop.store import _service_schema as S
from alloop.store._db import make_engine, migrate, schema_revision
from alloop.strategies import make_strategy

__all__ = ["EngineService", "arrow_ipc_bytes", "hash_key", "read_arrow_ipc"]

_MIGRATIONS = Path(__file__).parents[1] / "store" / "service_migrations"
SERVICE_HEAD = "s0001"


def hash_key(key: str) -> str:
    """SHA-256 of an API key; only the hash is stored."""
    return hashlib.sha256(key.encode()).hexdigest()


def arrow_ipc_bytes(table: Any) -> bytes:
    """Serialise an Arrow table as an IPC stream."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def read_arrow_ipc(body: bytes, what: str) -> Any:
    import pyarrow as pa

    try:
        return pa.ipc.open_stream(pa.py_buffer(body)).read_all()
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"The body of {what} is not a valid Arrow IPC stream: {exc}") from None


def _encode(value: Any) -> str:
    return json.dumps(value.item() if isinstance(value, np.generic) else value)


def _write_parquet_durably(table: Any, path: Path, *, digest: bool = False, **options: Any) -> str:
    """Write ``table`` to ``path`` and fsync it; the file's SHA-256 when ``digest``."""
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, **options)
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
        return hashlib.sha256(fh.read()).hexdigest() if digest else ""


def _atomic_write_parquet(table: Any, path: Path, *, digest: bool = True, **options: Any) -> str:
    """Write ``table`` to ``path`` durably (temp file, fsync, rename); the file's SHA-256 when ``digest``."""
    tmp = path.with_suffix(".parquet.tmp")
    hexdigest = _write_parquet_durably(table, tmp, digest=digest, **options)
    os.replace(tmp, path)
    return hexdigest


# Snapshot chunks: probabilities are near-incompressible floats, for which dictionary pages, compression and
# per-page statistics only cost time (together ~2x the write); the id column keeps its statistics.
_CHUNK_PARQUET: dict[str, Any] = {"use_dictionary": False, "compression": "none", "write_statistics": ["id"]}


def _dynamics_table(ids: np.ndarray, true_prob: Any, correct: Any, loop: int) -> Any:
    """One TRAIN pass's training dynamics as an Arrow table: ``id``, ``p_true`` (and ``correct``) per epoch."""
    import pyarrow as pa

    tp = np.asarray(true_prob, dtype=np.float64)
    tp = tp[:, None] if tp.ndim == 1 else tp
    cols = {
        "id": arrow_ids(ids),
        "p_true": fixed_size_list(tp),
    }
    if correct is not None:
        ok = np.asarray(correct, dtype=np.uint8)
        cols["correct"] = fixed_size_list(ok if ok.ndim > 1 else ok[:, None])
    return pa.table(cols).replace_schema_metadata({"alloop.dynamics": json.dumps({"loop": int(loop)})})


def _read_dynamics(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
    """``(ids, true_prob, correct or None, loop)`` from a file written with :func:`_dynamics_table`."""
    import pyarrow.parquet as pq

    from alloop.metadata.snapshot import _id_column, numpy_numbers

    table = pq.read_table(path)
    n = table.num_rows
    meta = json.loads((table.schema.metadata or {})[b"alloop.dynamics"])

    def matrix(name: str) -> np.ndarray:
        col = table.column(name).combine_chunks()
        return numpy_numbers(col.flatten()).reshape(n, col.type.list_size)

    correct = matrix("correct").astype(bool) if "correct" in table.column_names else None
    return _id_column(table.column("id"), str(path)), matrix("p_true"), correct, int(meta["loop"])


class EngineService:
    """Selection engines for many projects, persisted in a database (SQLite or PostgreSQL) plus Parquet files."""

    def __init__(self, url: str, data_dir: str | os.PathLike[str], *, cluster: Any = None) -> None:
        self.cluster = cluster  # a Dask cluster spec or Client: per-record strategies rank the stored snapshot there
        self.url = url
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = make_engine(url)
        migrate(self.db, _MIGRATIONS, f"the engine service ({url.split('@')[-1]})")
        self._engines: dict[str, SelectionEngine] = {}
        self._locks: dict[str, threading.RLock] = {}
        self._guard = threading.Lock()
        self._cost: dict[tuple[str, str], float] = {}  # (project, strategy) -> seconds per candidate
        # validated chunks of each project's open loop, (loop, chunk) -> (body sha256, Snapshot): the commit
        # uses them instead of reading the Parquet files back; after a restart it reads the files
        self._pending: dict[str, dict[tuple[int, int], tuple[str, Snapshot]]] = {}
        self._preparing: dict[str, threading.Thread] = {}  # a first snapshot's History being prepared, per project

    # ---- health ------------------------------------------------------------------------------------
    def ready(self) -> tuple[bool, str]:
        """Database reachable and migrated to the head revision."""
        try:
            rev = schema_revision(self.db)
        except sa.exc.SQLAlchemyError as exc:
            return False, f"database unreachable: {exc.__class__.__name__}"
        if rev != SERVICE_HEAD:
            return False, f"schema at {rev!r}, expected {SERVICE_HEAD!r}"
        return True, "ok"

    def close(self) -> None:
        self.db.dispose()

    # ---- projects -----------------------------------------------------------------------------------
    def create_project(
        self, *, name: str, classes: Sequence[Any], strategy: str = "auto", seed: int = 0
    ) -> tuple[str, str]:
        """Create a project; returns (project id, API key). The key is shown once and stored hashed."""
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise ConfigError("The 'name' parameter of a project must be a non-empty string of at most 200 characters.")
        cls = [c.item() if isinstance(c, np.generic) else c for c in list(classes)]
        if len(cls) < 2 or len(set(map(repr, cls))) != len(cls):
            raise ConfigError(
                f"The 'classes' parameter of a project must list at least 2 distinct labels. Got {cls!r}."
            )
        if not all(isinstance(c, (int, str)) and not isinstance(c, bool) for c in cls):
            raise ConfigError("The 'classes' parameter of a project must hold ints or strings.")
        spec = make_strategy(strategy).spec
        seed = check_int(seed, "seed", "a project", min=0)
        pid = "p_" + secrets.token_hex(8)
        key = "alk_" + secrets.token_urlsafe(32)
        config = {"classes": cls, "strategy": spec, "seed": seed, "id_kind": None}
        with self.db.begin() as conn:
            conn.execute(
                sa.insert(S.projects).values(
                    id=pid, name=name, key_hash=hash_key(key), config=json.dumps(config), created_at=time.time()
                )
            )
        return pid, key

    def project_for_key(self, key: str) -> str | None:
        """The project a key belongs to, or None. The stored hash is compared in constant time."""
        digest = hash_key(key)
        with self.db.connect() as conn:
            row = conn.execute(
                sa.select(S.projects.c.id, S.projects.c.key_hash).where(S.projects.c.key_hash == digest)
            ).first()
        if row is None or not hmac.compare_digest(row.key_hash, digest):
            return None
        return str(row.id)

    def projects(self) -> list[dict[str, Any]]:
        with self.db.connect() as conn:
            rows = conn.execute(sa.select(S.projects.c.id, S.projects.c.name, S.projects.c.created_at)).all()
        return [{"id": r.id, "name": r.name, "created_at": r.created_at} for r in rows]

    def config(self, pid: str) -> dict[str, Any]:
        with self.db.connect() as conn:
            row = conn.execute(sa.select(S.projects.c.config).where(S.projects.c.id == pid)).first()
        if row is None:
            raise UnknownRecordError(f"No project {pid!r}.")
        return dict(json.loads(row.config))

    def _set_config(self, conn: Any, pid: str, config: dict[str, Any]) -> None:
        conn.execute(sa.update(S.projects).where(S.projects.c.id == pid).values(config=json.dumps(config)))

    def _lock(self, pid: str) -> threading.RLock:
        with self._guard:
            return self._locks.setdefault(pid, threading.RLock())

    def _dir(self, pid: str) -> Path:
        return self.data_dir / pid

    # ---- the in-memory engine, rebuilt from stored state ---------------------------------------------
    def engine(self, pid: str) -> SelectionEngine:
        with self._lock(pid):
            eng = self._engines.get(pid)
            if eng is None:
                eng = self._rebuild(pid)
                self._engines[pid] = eng
            return eng

    def _decode_ids(self, pid: str, values: list[str]) -> np.ndarray:
        kind = self.config(pid)["id_kind"]
        return as_id_array([int(v) for v in values] if kind == "int" else list(values))

    def _rebuild(self, pid: str) -> SelectionEngine:
        import pyarrow as pa
        import pyarrow.parquet as pq

        cfg = self.config(pid)
        eng = SelectionEngine(strategy=cfg["strategy"], seed=cfg["seed"], classes=cfg["classes"])
        with self.db.connect() as conn:
            batches = conn.execute(
                sa.select(S.record_batches.c.path)
                .where(S.record_batches.c.project_id == pid)
                .order_by(S.record_batches.c.batch)
            ).all()
            labels = conn.execute(sa.select(S.labels.c.rid, S.labels.c.label).where(S.labels.c.project_id == pid)).all()
            sel = conn.execute(sa.select(S.selected.c.rid).where(S.selected.c.project_id == pid)).all()
            snaps = conn.execute(
                sa.select(S.snapshots.c.loop, S.snapshots.c.n_chunks)
                .where(S.snapshots.c.project_id == pid)
                .order_by(S.snapshots.c.loop)
            ).all()
        for (path,) in batches:
            eng.add_records(as_id_array(pq.read_table(path).column("id").to_numpy(zero_copy_only=False)))
        if labels:
            eng.observe_labels(self._decode_ids(pid, [r.rid for r in labels]), [json.loads(r.label) for r in labels])
        if sel:
            eng.mark_selected(self._decode_ids(pid, [r.rid for r in sel]))
        for loop, n_chunks in snaps:
            tables = [pq.read_table(self._chunk_path(pid, loop, c)) for c in range(n_chunks)]
            eng.ingest(Snapshot.from_arrow(pa.concat_tables(tables)), loop=loop)
        for path in sorted((self._dir(pid) / "dynamics").glob("loop-*.parquet")):
            ids, true_prob, correct, loop = _read_dynamics(path)
            eng.observe_training_dynamics(ids, true_prob, correct=correct, loop=loop)
        saved = self._dir(pid) / "strategy_state.json"
        load_state = getattr(eng.strategy, "load_state_dict", None)
        if saved.exists() and callable(load_state):
            kept = json.loads(saved.read_text())
            if kept.get("spec") == eng.strategy.spec:
                load_state(kept["state"])
        return eng

    def save_strategy_state(self, pid: str) -> None:
        """Keep the state of a learning project strategy (auto's or a portfolio's bandit) in
        ``strategy_state.json`` (atomic write), so that a restarted service continues it; call with the lock held."""
        eng = self.engine(pid)
        state_dict = getattr(eng.strategy, "state_dict", None)
        if not callable(state_dict):
            return
        path = self._dir(pid) / "strategy_state.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            with open(tmp, "w") as fh:
                json.dump({"spec": eng.strategy.spec, "state": state_dict()}, fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def observe_training_dynamics(
        self, pid: str, loop: int, ids: Any, true_prob: np.ndarray, correct: np.ndarray | None = None
    ) -> int:
        """Fold one TRAIN pass's training dynamics and keep them (``dynamics/loop-NNNNNN.parquet``), so that a
        restarted service rebuilds the same History. A loop at or before the last one folded is ignored."""
        loop = check_int(loop, "loop", "a training-dynamics upload", min=0)
        with self._lock(pid):
            eng = self.engine(pid)
            if loop <= eng.dynamics_loop:
                return 0
            arr = as_id_array(ids, "ids")
            eng.pool.index_of(arr, "ids")  # every check before anything is written
            tp = np.asarray(true_prob, dtype=np.float64)
            ok = None if correct is None else np.asarray(correct)
            if tp.ndim not in (1, 2) or tp.shape[0] != arr.size or (ok is not None and ok.shape[:1] != tp.shape[:1]):
                raise DataError(
                    f"'p_true' has shape {tp.shape} (and 'correct' {None if ok is None else ok.shape}) for {arr.size} "
                    "ids; send one row of per-epoch values per id."
                )
            path = self._dir(pid) / "dynamics" / f"loop-{loop:06d}.parquet"
            tmp = path.with_name(f"{path.name}.{secrets.token_hex(6)}.tmp")
            try:
                _write_parquet_durably(_dynamics_table(arr, true_prob, correct, loop), tmp)
                folded = eng.observe_training_dynamics(arr, true_prob, correct=correct, loop=loop)  # validates
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        return folded

    # ---- records ----------------------------------------------------------------------------------------
    def add_records(self, pid: str, ids: Any) -> int:
        """Register record ids (idempotent when every id is already registered). Returns the number added."""
        import pyarrow as pa

        arr = as_id_array(ids, "ids")
        with self._lock(pid):
            eng = self.engine(pid)
            present = eng.pool.contains(arr)
            if arr.size and present.all():
                return 0
            if present.any():
                first = arr[np.flatnonzero(present)[0]]
                raise DuplicateRecordError(
                    f"{int(present.sum())} of the ids are already registered (first: {first!r}); send only new ids."
                )
            eng.add_records(arr)  # validates id kind, duplicates
            try:
                cfg = self.config(pid)
                with self.db.begin() as conn:
                    batch = (
                        conn.execute(
                            sa.select(sa.func.coalesce(sa.func.max(S.record_batches.c.batch), -1)).where(
                                S.record_batches.c.project_id == pid
                            )
                        ).scalar_one()
                        + 1
                    )
                    path = self._dir(pid) / f"records-{batch:06d}.parquet"
                    col = arrow_ids(arr)
                    digest = _atomic_write_parquet(pa.table({"id": col}), path)
                    conn.execute(
                        sa.insert(S.record_batches).values(
                            project_id=pid, batch=batch, path=str(path), n_rows=int(arr.size), sha256=digest
                        )
                    )
                    if cfg["id_kind"] is None:
                        cfg["id_kind"] = eng.pool.id_kind
                        self._set_config(conn, pid, cfg)
            except Exception:
                self._engines.pop(pid, None)  # memory may be ahead of the store: rebuild on next use
                raise
        return int(arr.size)

    def remove_records(self, pid: str, ids: Any) -> int:
        """Forget records everywhere: id files, labels, selections, snapshot chunks, memory."""
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        arr = as_id_array(ids, "ids")
        with self._lock(pid):
            eng = self.engine(pid)
            eng.pool.index_of(arr)  # all known, or UnknownRecordError before anything changes
            drop = arrow_ids(arr)
            keys = [str(i) for i in arr.tolist()]
            with self.db.begin() as conn:
                files = [
                    (S.record_batches, r.batch, None, r.path)
                    for r in conn.execute(sa.select(S.record_batches).where(S.record_batches.c.project_id == pid))
                ] + [
                    (S.snapshot_chunks, r.loop, r.chunk, r.path)
                    for r in conn.execute(sa.select(S.snapshot_chunks).where(S.snapshot_chunks.c.project_id == pid))
                ]
                for path in sorted((self._dir(pid) / "dynamics").glob("loop-*.parquet")):
                    table = pq.read_table(path)
                    keep = pc.invert(pc.is_in(table.column("id"), value_set=drop))
                    if not pc.all(keep).as_py():
                        _atomic_write_parquet(table.filter(keep), path, digest=False)
                for table_def, a, b, path in files:
                    table = pq.read_table(path)
                    keep = pc.invert(pc.is_in(table.column("id"), value_set=drop))
                    if pc.all(keep).as_py():
                        continue
                    kept = table.filter(keep)
                    digest = _atomic_write_parquet(kept, Path(path))
                    cond = table_def.c.project_id == pid
                    if table_def is S.record_batches:
                        cond = cond & (table_def.c.batch == a)
                    else:
                        cond = cond & (table_def.c.loop == a) & (table_def.c.chunk == b)
                    conn.execute(sa.update(table_def).where(cond).values(n_rows=kept.num_rows, sha256=digest))
                for start in range(0, len(keys), 900):
                    chunk = keys[start : start + 900]
                    conn.execute(sa.delete(S.labels).where((S.labels.c.project_id == pid) & S.labels.c.rid.in_(chunk)))
                    conn.execute(
                        sa.delete(S.selected).where((S.selected.c.project_id == pid) & S.selected.c.rid.in_(chunk))
                    )
            eng.remove_records(arr)
        return int(arr.size)

    # ---- snapshots -----------------------------------------------------------------------------------
    def _chunk_path(self, pid: str, loop: int, chunk: int) -> Path:
        return self._dir(pid) / "snapshots" / f"loop-{loop:06d}-chunk-{chunk:06d}.parquet"

    def put_chunk(self, pid: str, loop: int, chunk: int, body: bytes) -> dict[str, Any]:
        """Store one chunk of a loop's snapshot. Re-sending the same chunk is a no-op.

        Chunks of one loop may arrive concurrently: decoding, validation and the Parquet write (which releases
        the GIL) run outside the project's lock, into a private temporary file; only the checks against the
        stored state, the rename and the DB row run under it, so a late chunk never replaces a committed one.
        """
        loop = check_int(loop, "loop", "a snapshot upload", min=0)
        chunk = check_int(chunk, "chunk", "a snapshot upload", min=0)
        digest = hashlib.sha256(body).hexdigest()
        with self._lock(pid):
            prev = self._check_chunk_slot(pid, loop, chunk, digest)
            classes = self.engine(pid).classes
        if prev == digest:
            return {"status": "duplicate", "loop": loop, "chunk": chunk}
        where = f"chunk {chunk} of loop {loop}"
        table = read_arrow_ipc(body, where)
        snap = Snapshot.from_arrow(table, where=where)
        if classes is not None:
            snap = snap.aligned_to(classes)  # validates the class columns
        path = self._chunk_path(pid, loop, chunk)
        tmp = path.with_name(f"{path.name}.{secrets.token_hex(6)}.tmp")
        try:
            _write_parquet_durably(table, tmp, **_CHUNK_PARQUET)  # the same buffers, no re-read
            with self._lock(pid):
                prev = self._check_chunk_slot(pid, loop, chunk, digest)  # the state may have moved while writing
                if prev == digest:
                    return {"status": "duplicate", "loop": loop, "chunk": chunk}
                self.engine(pid).pool.index_of(snap.ids, "snapshot ids")
                os.replace(tmp, path)
                with self.db.begin() as conn:
                    values = {"path": str(path), "n_rows": snap.n_records, "sha256": digest}
                    if prev is None:
                        conn.execute(
                            sa.insert(S.snapshot_chunks).values(project_id=pid, loop=loop, chunk=chunk, **values)
                        )
                    else:
                        conn.execute(
                            sa.update(S.snapshot_chunks)
                            .where(
                                (S.snapshot_chunks.c.project_id == pid)
                                & (S.snapshot_chunks.c.loop == loop)
                                & (S.snapshot_chunks.c.chunk == chunk)
                            )
                            .values(**values)
                        )
                pending = self._pending.setdefault(pid, {})
                for key in [k for k in pending if k[0] != loop]:  # one open loop per project is kept in memory
                    del pending[key]
                if not pending:  # the loop's first chunk: the History of a first snapshot is allocated meanwhile
                    self._reserve_history_soon(pid, self.engine(pid), snap.probs.dtype)
                pending[(loop, chunk)] = (digest, snap)
        finally:
            tmp.unlink(missing_ok=True)
        return {"status": "stored", "loop": loop, "chunk": chunk, "n_rows": snap.n_records}

    def _reserve_history_soon(self, pid: str, eng: SelectionEngine, dtype: Any) -> None:
        """Allocate the History of a project's first snapshot in the background while its chunks upload.

        The first pass over a pool writes ~200 bytes of History per record (~0.2 GB for 10^6 records): in a fresh
        process that is mostly page faults (~0.3 s, measured). They are taken here, on another thread and outside
        the project's lock, in arrays that no one else sees (:meth:`History.prepared`); the lock is held only to
        hand them over. The commit takes the project's lock, so it folds into the handed-over arrays or, when it
        comes first, allocates as usual (the late arrays are then dropped: History grows only when short).
        """
        if eng.classes is None or eng.history.loops_seen or eng.history.capacity >= eng.pool.capacity:
            return
        capacity, n_classes = eng.pool.capacity, len(eng.classes)

        def run() -> None:
            ready = eng.history.prepared(capacity, n_classes, dtype)
            with self._lock(pid):
                if self._engines.get(pid) is eng:
                    eng.history.adopt(ready)

        thread = threading.Thread(target=run, name=f"alloop-reserve-{pid}", daemon=True)
        self._preparing[pid] = thread
        thread.start()

    def _check_chunk_slot(self, pid: str, loop: int, chunk: int, digest: str) -> str | None:
        """The stored digest of (loop, chunk), or None; StateError when the loop is committed with another one."""
        with self.db.connect() as conn:
            done = conn.execute(
                sa.select(S.snapshots.c.loop).where((S.snapshots.c.project_id == pid) & (S.snapshots.c.loop == loop))
            ).first()
            prev = conn.execute(
                sa.select(S.snapshot_chunks.c.sha256).where(
                    (S.snapshot_chunks.c.project_id == pid)
                    & (S.snapshot_chunks.c.loop == loop)
                    & (S.snapshot_chunks.c.chunk == chunk)
                )
            ).first()
        if done is not None and (prev is None or prev.sha256 != digest):
            raise StateError(f"The snapshot of loop {loop} is already committed; start a new loop to send another.")
        return None if prev is None else str(prev.sha256)

    def commit_snapshot(self, pid: str, loop: int, n_chunks: int) -> dict[str, Any]:
        """Make a loop's uploaded chunks 0..n_chunks-1 the loop's snapshot and feed it to the engine."""
        loop = check_int(loop, "loop", "a snapshot commit", min=0)
        n_chunks = check_int(n_chunks, "n_chunks", "a snapshot commit", min=1)
        preparing = self._preparing.pop(pid, None)
        if preparing is not None:  # the History being prepared is handed over first (not allocated twice)
            preparing.join()
        with self._lock(pid):
            with self.db.connect() as conn:
                done = conn.execute(
                    sa.select(S.snapshots).where((S.snapshots.c.project_id == pid) & (S.snapshots.c.loop == loop))
                ).first()
                have = {
                    r.chunk: r.sha256
                    for r in conn.execute(
                        sa.select(S.snapshot_chunks.c.chunk, S.snapshot_chunks.c.sha256).where(
                            (S.snapshot_chunks.c.project_id == pid) & (S.snapshot_chunks.c.loop == loop)
                        )
                    )
                }
                later = conn.execute(
                    sa.select(sa.func.max(S.snapshots.c.loop)).where(S.snapshots.c.project_id == pid)
                ).scalar_one()
            if done is not None:
                if done.n_chunks != n_chunks:
                    raise StateError(f"Loop {loop} was committed with {done.n_chunks} chunks, not {n_chunks}.")
                return {"status": "duplicate", "loop": loop, "n_rows": done.n_rows}
            if later is not None and later > loop:
                raise StateError(f"Loop {later} is already committed; snapshots must arrive in loop order.")
            missing = sorted(set(range(n_chunks)) - set(have))
            if missing:
                raise StateError(f"Chunks {missing[:10]} of loop {loop} were never uploaded; upload them, then commit.")
            eng = self.engine(pid)
            # every check (same columns, ids known and unique across chunks) before the commit is recorded; the
            # chunks are folded as they are, not copied into one snapshot
            parts = eng.locate([self._chunk(pid, loop, c, have[c]) for c in range(n_chunks)])
            n_rows = sum(int(idx.size) for idx, _ in parts)
            with self.db.begin() as conn:
                conn.execute(
                    sa.insert(S.snapshots).values(
                        project_id=pid, loop=loop, n_chunks=n_chunks, n_rows=n_rows, committed_at=time.time()
                    )
                )
            self._pending.pop(pid, None)
            eng.ingest_located(parts, loop=loop)
        return {"status": "committed", "loop": loop, "n_rows": n_rows}

    def _chunk(self, pid: str, loop: int, chunk: int, digest: str) -> Snapshot:
        """A stored chunk: the validated one kept from its upload when it is the stored version, else its file."""
        import pyarrow.parquet as pq

        kept = self._pending.get(pid, {}).get((loop, chunk))
        if kept is not None and kept[0] == digest:
            return kept[1]
        where = f"chunk {chunk} of loop {loop}"
        snap = Snapshot.from_arrow(pq.read_table(self._chunk_path(pid, loop, chunk)), where=where)
        eng = self.engine(pid)
        return snap if eng.classes is None else snap.aligned_to(eng.classes)

    # ---- labels and selections -------------------------------------------------------------------------
    def observe_labels(self, pid: str, ids: Any, labels: Sequence[Any]) -> int:
        arr = as_id_array(ids, "ids")
        values = list(labels)
        if len(values) != arr.size:
            raise DataError(f"'labels' has {len(values)} entries for {arr.size} ids; give one label per id.")
        with self._lock(pid):
            eng = self.engine(pid)
            eng.class_positions(values, "labels")
            idx = eng.pool.index_of(arr)
            eng.pool.check_state(idx, (RecordState.UNLABELED, RecordState.SELECTED, RecordState.LABELED))
            now = time.time()
            keys = [str(i) for i in arr.tolist()]
            with self.db.begin() as conn:
                for start in range(0, len(keys), 900):
                    chunk = keys[start : start + 900]
                    conn.execute(sa.delete(S.labels).where((S.labels.c.project_id == pid) & S.labels.c.rid.in_(chunk)))
                    conn.execute(
                        sa.delete(S.selected).where((S.selected.c.project_id == pid) & S.selected.c.rid.in_(chunk))
                    )
                conn.execute(
                    sa.insert(S.labels),
                    [
                        {"project_id": pid, "rid": k, "label": _encode(v), "created_at": now}
                        for k, v in zip(keys, values, strict=True)
                    ],
                )
            eng.observe_labels(arr, values)
        return int(arr.size)

    def mark_selected(self, pid: str, ids: Any) -> int:
        """Records sent for labeling (idempotent for records already selected)."""
        arr = as_id_array(ids, "ids")
        with self._lock(pid):
            eng = self.engine(pid)
            idx = eng.pool.index_of(arr)
            states = eng.pool._state[idx]
            fresh = arr[states == int(RecordState.UNLABELED)]
            eng.pool.check_state(idx, (RecordState.UNLABELED, RecordState.SELECTED))
            if fresh.size:
                with self.db.begin() as conn:
                    conn.execute(sa.insert(S.selected), [{"project_id": pid, "rid": str(i)} for i in fresh.tolist()])
                eng.mark_selected(fresh)
        return int(fresh.size)

    def release(self, pid: str, ids: Any) -> int:
        arr = as_id_array(ids, "ids")
        with self._lock(pid):
            eng = self.engine(pid)
            eng.pool.check_state(eng.pool.index_of(arr), RecordState.SELECTED)
            keys = [str(i) for i in arr.tolist()]
            with self.db.begin() as conn:
                conn.execute(sa.delete(S.selected).where((S.selected.c.project_id == pid) & S.selected.c.rid.in_(keys)))
            eng.release(arr)
        return int(arr.size)

    # ---- recommendations -----------------------------------------------------------------------------
    def recommend(
        self,
        pid: str,
        k: int,
        *,
        strategy: str | None = None,
        loop: int | None = None,
        time_budget: float | None = None,
    ) -> Selection:
        """The engine's recommendation. With ``time_budget`` (seconds), a strategy measured as too slow for it
        on this project is replaced by ``margin`` (when probabilities are shared), and the reason says so."""
        with self._lock(pid):
            eng = self.engine(pid)
            # the engine's own strategy keeps its state (a portfolio's weights, auto's held-out values) across
            # requests; a spec equal to it must reuse it rather than start a fresh bandit each call
            strat = eng.strategy if strategy is None else make_strategy(strategy)
            if getattr(strat, "spec", None) == getattr(eng.strategy, "spec", None):
                strat = eng.strategy
            note = ""
            n = int(eng.pool.mask(RecordState.UNLABELED).sum())
            per = self._cost.get((pid, strat.spec))
            if time_budget is not None and per is not None and per * n > time_budget and strat.spec != "margin":
                note = f" (switched from {strat.spec}: expected {per * n:.2f}s > time budget {time_budget:.2f}s)"
                strat = make_strategy("margin")
            t0 = time.perf_counter()
            sel = self._recommend_on_cluster(pid, eng, strat, k, loop) or eng.recommend(k, strategy=strat, loop=loop)
            seconds = time.perf_counter() - t0
            self._cost[(pid, strat.spec)] = seconds / max(n, 1)
            if note:
                sel = Selection(sel.ids, sel.scores, sel.strategy, sel.reason + note, sel.loop)
            if strat is eng.strategy:
                self.save_strategy_state(pid)
            with self.db.begin() as conn:
                conn.execute(
                    sa.insert(S.recommendations).values(
                        project_id=pid,
                        loop=sel.loop,
                        k=k,
                        strategy=sel.strategy,
                        reason=sel.reason,
                        n_selected=len(sel),
                        seconds=seconds,
                        created_at=time.time(),
                    )
                )
        return sel

    def _recommend_on_cluster(self, pid: str, eng: SelectionEngine, strat: Any, k: int, loop: int | None) -> Any:
        """Rank the latest committed snapshot on Dask (``cluster`` or ALLOOP_DASK_SCHEDULER); None = use the engine."""
        if self.cluster is None and not os.environ.get("ALLOOP_DASK_SCHEDULER"):
            return None
        with self.db.connect() as conn:
            last = conn.execute(
                sa.select(S.snapshots.c.loop, S.snapshots.c.n_chunks)
                .where(S.snapshots.c.project_id == pid)
                .order_by(S.snapshots.c.loop.desc())
                .limit(1)
            ).first()
        if last is None:
            return None
        from alloop.scale import select_from_snapshot

        paths = [str(self._chunk_path(pid, last.loop, c)) for c in range(last.n_chunks)]
        loop = eng.loop if loop is None else loop
        hooked = select_from_snapshot(
            paths, eng.pool.ids(RecordState.UNLABELED), strat, k, cluster=self.cluster, seed=eng.seed, loop=loop
        )
        if hooked is None:
            return None
        reason = f"{hooked.strategy}: top {len(hooked.ids)} ranked on Dask over the loop-{last.loop} snapshot"
        return Selection(hooked.ids, hooked.scores, hooked.strategy, reason, loop)

    # ---- reading ----------------------------------------------------------------------------------------
    def status(self, pid: str) -> dict[str, Any]:
        eng = self.engine(pid)
        cfg = self.config(pid)
        with self.db.connect() as conn:
            loops = [
                {"loop": r.loop, "n_chunks": r.n_chunks, "n_rows": r.n_rows, "committed_at": r.committed_at}
                for r in conn.execute(
                    sa.select(S.snapshots).where(S.snapshots.c.project_id == pid).order_by(S.snapshots.c.loop)
                )
            ]
        return {"project_id": pid, **cfg, "counts": eng.pool.counts(), "snapshots": loops}

    def history(self, pid: str) -> list[dict[str, Any]]:
        with self.db.connect() as conn:
            rows = (
                conn.execute(
                    sa.select(S.recommendations)
                    .where(S.recommendations.c.project_id == pid)
                    .order_by(S.recommendations.c.id)
                )
                .mappings()
                .all()
            )
        return [{k: v for k, v in dict(r).items() if k not in ("project_id",)} for r in rows]
