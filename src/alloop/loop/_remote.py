"""``RemoteEngine``: the SDK's client for ``alloop serve`` — the same calls as :class:`SelectionEngine`.

The client keeps a local mirror of the pool's states (so the Campaign works unchanged) and sends the
service only what the :class:`SharingPolicy` allows. Every request is retried with exponential backoff on
connection errors and 502/503/504, and every call is idempotent server-side, so a retry never duplicates
and a restarted server picks up where it was.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from alloop._validation import check_int
from alloop.engine._engine import Selection
from alloop.errors import (
    AlloopError,
    AuthError,
    ConfigError,
    DataError,
    DuplicateRecordError,
    LabelError,
    PoolExhaustedError,
    StateError,
    UnknownRecordError,
)
from alloop.loop._sharing import SharingPolicy
from alloop.metadata import Snapshot
from alloop.metadata.snapshot import arrow_ids
from alloop.records import Pool, RecordState, as_id_array
from alloop.strategies import make_strategy

__all__ = ["RemoteEngine", "report_dashboard"]

log = logging.getLogger(__name__)
_METRICS_PER_REQUEST = 100  # the route's limit per body

ARROW = "application/vnd.apache.arrow.stream"
_ERRORS: dict[str, type[AlloopError]] = {
    cls.__name__: cls
    for cls in (
        AuthError,
        ConfigError,
        DataError,
        DuplicateRecordError,
        LabelError,
        PoolExhaustedError,
        StateError,
        UnknownRecordError,
    )
}


class RemoteEngine:
    """A selection engine reached over HTTP.

    url, token   the service and a project key (or the admin token: then a project is created, or
                 ``project`` names an existing one)
    classes, strategy, seed   as for SelectionEngine; the strategy is sent with each recommendation
    policy       what metadata may leave the client (default: ids + probabilities only)
    chunk_rows   snapshot rows per upload chunk
    upload_workers  chunks of one snapshot sent at a time (default 1; more may help when the server has spare
                 cores — on a 2-core machine serving itself, 1 was faster, docs/benchmarks.md); chunks are idempotent
                 by (loop, chunk index), so order does not matter
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        classes: list[Any],
        strategy: Any = "auto",
        seed: int = 0,
        project: str | None = None,
        name: str = "campaign",
        policy: SharingPolicy | None = None,
        chunk_rows: int = 250_000,
        upload_workers: int = 1,
        retries: int = 8,
        backoff: float = 0.25,
        timeout: float = 120.0,
        client: Any = None,
    ) -> None:
        import httpx

        if not token:
            raise ConfigError("A remote engine needs a 'token' (a project key or the admin token).")
        self.url = url.rstrip("/")
        self.token = token
        self.classes = list(classes)
        self.strategy = make_strategy(strategy)
        self.seed = seed
        self.policy = (policy or SharingPolicy()).check()
        self.chunk_rows = chunk_rows
        self.upload_workers = upload_workers
        self.retries = retries
        self.backoff = backoff
        self.http = client or httpx.Client(timeout=timeout)
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.pool = Pool()
        self.labels = np.empty(0, dtype=np.int64)
        self.loop = 0
        try:
            self._check_shared_needs()  # before anything is sent
            self.project = project or self._whoami_or_create(name)
        except BaseException:
            if client is None:
                self.http.close()
            raise

    def close(self) -> None:
        """Close the HTTP connections (the Campaign calls this from its own close())."""
        self.http.close()

    # ---- transport -------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kw: Any) -> Any:
        import httpx

        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                resp = self.http.request(method, self.url + path, **kw)
            except httpx.TransportError:
                if attempt == self.retries:
                    raise AlloopError(
                        f"Cannot reach the alloop engine at {self.url} after {self.retries + 1} attempts; "
                        "is 'alloop serve' running?"
                    ) from None
            else:
                if resp.status_code not in (502, 503, 504):
                    break
                if attempt == self.retries:
                    break
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        if resp.status_code >= 400:
            try:
                payload = resp.json()
            except ValueError:
                payload = {"detail": resp.text}
            detail = payload.get("detail", resp.text)
            if resp.status_code in (401, 403):
                raise AuthError(f"The engine refused the request ({resp.status_code}): {detail}")
            cls = _ERRORS.get(payload.get("error", ""), DataError if resp.status_code < 500 else AlloopError)
            raise cls(f"{detail}")
        return resp.json() if resp.content else None

    def _whoami_or_create(self, name: str) -> str:
        who = self._request("GET", "/v1/whoami")
        if who.get("project_id"):
            return str(who["project_id"])
        created = self._request(
            "POST",
            "/v1/projects",
            json={"name": name, "classes": self.classes, "strategy": self.strategy.spec, "seed": self.seed},
        )
        return str(created["project_id"])

    def _check_shared_needs(self) -> None:
        missing = self.strategy.needs & {"embeddings", "samples"} - self.policy.shares
        if missing:
            raise ConfigError(
                f"Strategy {self.strategy.spec!r} needs {sorted(missing)}, which the sharing policy "
                f"{self.policy.level!r} keeps on your side; share them (e.g. SharingPolicy(level='full')) "
                "or choose a probability-based strategy."
            )

    @property
    def base(self) -> str:
        return f"/v1/projects/{self.project}"

    def _ids(self, ids: Any) -> list[Any]:
        return self.policy.encode_ids(ids).tolist()

    def _grow_labels(self) -> None:
        grow = self.pool.capacity - self.labels.size
        if grow > 0:
            self.labels = np.concatenate([self.labels, np.full(grow, -1, dtype=np.int64)])

    # ---- the SelectionEngine interface --------------------------------------------------------------
    def add_records(self, ids: Any, *, holdout: bool = False) -> None:
        arr = as_id_array(ids)
        self.pool.add(arr, state=RecordState.EVAL if holdout else RecordState.UNLABELED)
        self._grow_labels()
        if not holdout:
            self._send_records(arr)

    def _send_records(self, arr: np.ndarray) -> None:
        import pyarrow as pa

        from alloop.engine.service import arrow_ipc_bytes

        enc = self.policy.encode_ids(arr)
        for start in range(0, enc.size, 1_000_000):
            part = enc[start : start + 1_000_000]
            col = arrow_ids(part)
            body = arrow_ipc_bytes(pa.table({"id": col}))
            self._request("POST", f"{self.base}/records", content=body, headers={"content-type": ARROW})

    def remove_records(self, ids: Any) -> None:
        arr = as_id_array(ids)
        idx = self.pool.index_of(arr)
        self._request("POST", f"{self.base}/records/remove", json={"ids": self._ids(arr)})
        self.pool.remove(arr)
        self.labels[idx] = -1

    def class_positions(self, y: Any, field: str = "y") -> np.ndarray:
        pos = {c: j for j, c in enumerate(self.classes)}
        out = []
        for v in list(y):
            key = v.item() if isinstance(v, np.generic) else v
            if key not in pos:
                raise LabelError(f"Label {key!r} in {field!r} is not one of the classes {self.classes!r}.")
            out.append(pos[key])
        return np.asarray(out, dtype=np.int64)

    def ingest(self, snapshot: Snapshot, *, loop: int | None = None) -> None:
        """Upload the shared part of ``snapshot`` in idempotent chunks, then commit it as ``loop``."""
        from alloop.engine.service import arrow_ipc_bytes

        loop = self.loop if loop is None else loop
        self.pool.index_of(snapshot.ids, "snapshot.ids")
        shared = self.policy.apply(snapshot.aligned_to(self.classes))
        n = shared.n_records
        chunks = max(1, -(-n // self.chunk_rows))

        def send(c: int) -> None:
            part = shared.subset(slice(c * self.chunk_rows, min(n, (c + 1) * self.chunk_rows)))  # views
            body = arrow_ipc_bytes(part.to_arrow())
            self._request(
                "PUT", f"{self.base}/loops/{loop}/snapshot/chunks/{c}", content=body, headers={"content-type": ARROW}
            )

        self._send_concurrently(send, chunks)
        self._request("POST", f"{self.base}/loops/{loop}/snapshot/commit", json={"n_chunks": chunks})

    def _send_concurrently(self, send: Any, chunks: int) -> None:
        """Run ``send(c)`` for every chunk, ``upload_workers`` at a time. Chunks are idempotent by (loop, chunk
        index), so their order does not matter. Each send keeps its own retries; on the first error the chunks not
        yet started are dropped and it is raised."""
        from concurrent.futures import ThreadPoolExecutor

        workers = min(chunks, check_int(self.upload_workers, "upload_workers", "RemoteEngine", min=1))
        if workers <= 1:
            for c in range(chunks):
                send(c)
            return
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="alloop-upload") as pool:
            futures = [pool.submit(send, c) for c in range(chunks)]
            try:
                for future in futures:
                    future.result()
            except BaseException:
                for future in futures:
                    future.cancel()
                raise

    def observe_labels(self, ids: Any, y: Any) -> None:
        arr = as_id_array(ids)
        values = [v.item() if isinstance(v, np.generic) else v for v in list(y)]
        pos = self.class_positions(values)
        idx = self.pool.index_of(arr)
        self.pool.check_state(idx, (RecordState.UNLABELED, RecordState.SELECTED, RecordState.LABELED))
        self._request("POST", f"{self.base}/labels", json={"ids": self._ids(arr), "labels": values})
        self.pool.transition(
            arr, (RecordState.UNLABELED, RecordState.SELECTED, RecordState.LABELED), RecordState.LABELED
        )
        self.labels[idx] = pos

    def mark_selected(self, ids: Any) -> None:
        arr = as_id_array(ids)
        self.pool.check_state(self.pool.index_of(arr), RecordState.UNLABELED)
        self._request("POST", f"{self.base}/selected", json={"ids": self._ids(arr)})
        self.pool.transition(arr, RecordState.UNLABELED, RecordState.SELECTED)

    def release(self, ids: Any) -> None:
        arr = as_id_array(ids)
        self._request("POST", f"{self.base}/selected/release", json={"ids": self._ids(arr)})
        self.pool.transition(arr, RecordState.SELECTED, RecordState.UNLABELED)

    def observe_training_dynamics(
        self, ids: Any, true_prob: Any, *, correct: Any = None, loop: int | None = None
    ) -> int:
        """Send one TRAIN pass's training dynamics when the policy shares them (level ``full``); else nothing.

        The service folds a loop once (a retried or replayed loop is ignored). Returns the number of records sent.
        """
        if "dynamics" not in self.policy.shares:
            return 0
        arr = as_id_array(ids)
        self.pool.index_of(arr, "ids")
        tp = np.asarray(true_prob, dtype=np.float64)
        tp = tp[:, None] if tp.ndim == 1 else tp
        body: dict[str, Any] = {
            "ids": self._ids(arr),
            "p_true": [[None if v != v else float(v) for v in row] for row in tp.tolist()],
            "correct": None if correct is None else np.asarray(correct, dtype=bool).tolist(),
        }
        loop = self.loop if loop is None else loop
        out = self._request("POST", f"{self.base}/loops/{loop}/training-dynamics", json=body)
        return int(out.get("folded", 0))

    def observe_holdout(self, value: float, *, loop: int) -> None:
        """Send a held-out metric of the model trained at ``loop`` (one number, for the service's learning strategy)."""
        self._request("POST", f"{self.base}/loops/{loop}/training-dynamics", json={"holdout": float(value)})

    def report_loop(self, loop: int, values: Mapping[str, float]) -> bool:
        """Store one loop's numbers for the service's dashboard (``POST …/labeling/metrics``); True when stored.

        Retried like every call; the service overwrites per (loop, name), so a replayed loop is not counted twice.
        A failure never stops the campaign: it is logged (logger ``alloop.loop._remote``, not a Python warning)
        and False returned, and :func:`report_dashboard` sends the loop again after the next loop.
        Non-finite values are left out (JSON has no NaN).
        """
        items = [(str(k), float(v)) for k, v in values.items() if math.isfinite(float(v))]
        try:
            for start in range(0, max(len(items), 1), _METRICS_PER_REQUEST):
                part = dict(items[start : start + _METRICS_PER_REQUEST])
                self._request("POST", f"{self.base}/labeling/metrics", json={"loop": int(loop), "values": part})
        except AlloopError as exc:
            log.warning("The dashboard numbers of loop %d did not reach %s: %s", loop, self.url, exc)
            return False
        return True

    def recommend(self, k: int, *, strategy: Any = None, loop: int | None = None) -> Selection:
        strat = self.strategy if strategy is None else make_strategy(strategy)
        if not self.pool.mask(RecordState.UNLABELED).any():
            raise PoolExhaustedError("No unlabeled record is left to select; add records or stop the campaign.")
        out = self._request(
            "POST",
            f"{self.base}/recommend",
            json={"k": int(k), "strategy": strat.spec, "loop": self.loop if loop is None else loop},
        )
        ids = self._decode(out["ids"])
        scores = np.array([np.nan if s is None else s for s in out["scores"]], dtype=np.float64)
        return Selection(ids=ids, scores=scores, strategy=out["strategy"], reason=out["reason"], loop=out["loop"])

    def _decode(self, remote_ids: list[Any]) -> np.ndarray:
        if not self.policy.hash_ids:
            return as_id_array(remote_ids)
        live = self.pool.ids(RecordState.UNLABELED)
        back = dict(zip(self.policy.encode_ids(live).tolist(), live.tolist(), strict=True))
        try:
            return as_id_array([back[r] for r in remote_ids])
        except KeyError as exc:
            raise StateError(f"The engine recommended an id this client does not know ({exc.args[0]}).") from None

    # ---- resuming -------------------------------------------------------------------------------------
    def sync(self, snapshots: dict[int, Any]) -> dict[str, int]:
        """Bring the service up to the client's state after either side restarted (all idempotent).

        ``snapshots`` maps loop → Snapshot or the path of its Parquet file (read only if the service lacks it).
        """
        status = self._request("GET", self.base)
        counts = status["counts"]
        sent = {"records": 0, "labels": 0, "selected": 0, "snapshots": 0}
        live = self.pool.all_ids()[self.pool._alive & (self.pool._state != int(RecordState.EVAL))]
        if sum(counts.values()) < live.size:
            known = int(sum(counts.values()))
            self._send_records(live[known:])
            sent["records"] = int(live.size - known)
        lab = self.pool.indices(RecordState.LABELED)
        if lab.size:
            ids = self.pool.ids_at(lab)
            self._request(
                "POST",
                f"{self.base}/labels",
                json={"ids": self._ids(ids), "labels": [self.classes[p] for p in self.labels[lab]]},
            )
            sent["labels"] = int(lab.size)
        sel = self.pool.ids(RecordState.SELECTED)
        if sel.size:
            self._request("POST", f"{self.base}/selected", json={"ids": self._ids(sel)})
            sent["selected"] = int(sel.size)
        done = {s["loop"] for s in status["snapshots"]}
        for loop in sorted(snapshots):
            if loop not in done:
                snap = snapshots[loop]
                self.ingest(snap if isinstance(snap, Snapshot) else Snapshot.from_parquet(snap), loop=loop)
                sent["snapshots"] += 1
        return sent


def report_dashboard(engine: Any, store: Any, loop: int, snapshot: Snapshot | None) -> int:
    """After INFER of ``loop``: send the loops not yet reported, up to ``loop``, to the service's dashboard.

    The values are :func:`alloop.labeling.web.loop_values` of the campaign store: metrics, compute, labels per
    source and per class — counts and totals only. ``predicted_class:*`` (the argmax counts of this loop's
    ``snapshot``) only when the sharing policy shares probabilities. The last loop stored is kept in the
    store's meta ``dashboard_reported``, so a loop whose report failed (or a campaign killed before it) is
    sent after the next loop; a resumed loop sent twice overwrites itself on the service. Returns the number
    of loops stored.
    """
    from alloop.labeling.web import loop_values

    if not engine.policy.dashboard:  # the user keeps even the counts on the client
        return 0
    done = store.get_meta("dashboard_reported", -1)
    loops = list(range(int(done) + 1, int(loop) + 1)) or [int(loop)]
    predicted = {}
    if snapshot is not None and "probs" in engine.policy.shares:
        predicted[int(loop)] = snapshot.probs
    sent = 0
    for lp, values in loop_values(store, loops, predicted=predicted).items():
        if not engine.report_loop(lp, values):
            break
        with store.transaction() as conn:
            store.set_meta(conn, "dashboard_reported", max(lp, int(done)))
        sent += 1
    return sent
