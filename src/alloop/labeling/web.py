"""Labeling for people over the web: the library half of ``/v1/annotate``, ``/label`` and the dashboard.

Where tasks live: each project of an :class:`~alloop.engine.service.EngineService` gets its own labeling
store, a campaign-schema database at ``<data_dir>/<project>/labeling/alloop.db`` (SQLite, WAL; tables
``tasks``, ``task_slots``, ``annotations``, ``annotators``, ``metrics`` of revision 0002), created on first
use by the project owner. A :class:`~alloop.labeling.tasks.TaskQueue` over it does the leasing, so two
annotators never hold the same judgement slot.

Annotator tokens are ``ann_<project hex>_<secret>``: issued by the project owner, shown once, stored as
SHA-256 hashes in the store's ``meta`` table. The project part lets a token be checked without scanning
every project. A token answers only for its own project and annotator; its holder reads only the tasks
leased to it.

>>> import tempfile
>>> from alloop.engine.service import EngineService
>>> d = tempfile.mkdtemp()
>>> svc = EngineService(f"sqlite:///{d}/svc.db", d)
>>> pid, key = svc.create_project(name="demo", classes=["cat", "dog"])
>>> web = LabelingService(service=svc)
>>> token = web.issue_token(pid, "ann")
>>> web.annotator_for_token(token) == (pid, "ann")
True
>>> web.add_tasks(pid, ["r1"], payload=[{"text": "a small cat"}])
[1]
>>> task = web.next_task(pid, "ann")
>>> task["rid"], task["choices"], task["text"]
('r1', ['cat', 'dog'], 'a small cat')
>>> web.submit(pid, "ann", task["task_id"], "cat", seconds=2.0)["remaining"]
0
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from alloop._validation import check_bool, check_float, check_int
from alloop.errors import ConfigError, DataError, StateError, StoreError, UnknownRecordError
from alloop.labeling.allocation import Allocator, AnnotatorView, TaskView
from alloop.labeling.tasks import TaskQueue
from alloop.store import _labeling as L
from alloop.store import _schema as T

__all__ = [
    "LabelingService",
    "LeaseExpiredError",
    "NotLeasedError",
    "WebHumanProvider",
    "campaign_summary",
    "dashboard_summary",
    "folder_image",
    "is_dashboard_value",
    "loop_values",
]

_PID = re.compile(r"^p_[0-9a-f]{16}$")
_TOKEN = re.compile(r"^ann_([0-9a-f]{16})_[A-Za-z0-9_-]{20,100}$")
_IMAGE_TYPES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}
_MAX_IMAGE = 20 * 2**20


class LeaseExpiredError(StateError):
    """The annotator's lease on a task ran out before the answer arrived (HTTP 409, error 'LeaseExpiredError')."""


class NotLeasedError(UnknownRecordError):
    """The task is not leased to this annotator; to them it does not exist (HTTP 404)."""


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _media_type(data: bytes) -> str | None:
    for magic, kind in _IMAGE_TYPES.items():
        if data.startswith(magic):
            return kind
    return None


_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_UNSAFE_NAME = re.compile(r"[/\\\x00-\x1f:]|^\.\.?$|^$")


def _existing_dir(path: Any, field: str, what: str) -> Path:
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(f"The '{field}' parameter of {what} must be a directory path. Got {path!r}.")
    try:
        resolved = Path(path).expanduser().resolve()
        is_dir = resolved.is_dir()
    except (OSError, ValueError, RuntimeError):  # a NUL byte, a name too long, a symlink loop
        is_dir = False
    if not is_dir:
        raise ConfigError(
            f"The '{field}' parameter of {what} must name an existing directory on the server. Got {path!r}."
        )
    return resolved


def folder_image(folder: Path, rid: Any) -> tuple[bytes, str] | None:
    r"""The PNG/JPEG named ``<rid>.png|.jpg|.jpeg`` directly inside ``folder``; None when there is none.

    A record id that could leave the folder (``..``, a separator, a control character) finds nothing, and
    so does a symbolic link pointing outside it; a file that is not a PNG/JPEG by its first bytes is refused.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> _ = (d / "7.png").write_bytes(b"\x89PNG\r\n\x1a\n...")
    >>> folder_image(d, 7)[1], folder_image(d, "../7"), folder_image(d, 8)
    ('image/png', None, None)
    """
    name = str(rid)
    if _UNSAFE_NAME.search(name):
        return None
    root = folder.resolve()
    for suffix in _IMAGE_SUFFIXES:
        candidate = root / f"{name}{suffix}"
        try:
            real = candidate.resolve(strict=True)
        except (OSError, RuntimeError):
            continue
        if real.parent != root or not real.is_file():
            continue
        if real.stat().st_size > _MAX_IMAGE:
            raise DataError(f"The image of record {name!r} is larger than {_MAX_IMAGE} bytes.")
        data = real.read_bytes()
        kind = _media_type(data)
        if kind is None:
            raise DataError(f"The file for record {name!r} in the image folder is not a PNG or JPEG.")
        return data, kind
    return None


# names of the flat per-loop values a campaign reports (and campaign_summary derives from a campaign store)
SOURCE = "labels_source:"  # + source: labels of this loop from that source (human, auto, weak, oracle, …)
LABELED = "labeled_class:"  # + JSON of the class: labels of that class so far (cumulative up to this loop)
PREDICTED = "predicted_class:"  # + JSON of the class: records this loop's inference predicts as that class
COMPUTE = ("train_cpu_s", "infer_cpu_s", "select_cpu_s", "records_inferred", "records_trained",
           "records_unlabeled", "train_full")  # alloop.compute FIELDS and what its from-scratch estimate needs
_MAX_NAME = 128


def _is_metric(name: str) -> bool:
    """A learning-curve metric (accuracy, macro_f1, n_labeled, …), not a count, class or compute figure."""
    return ":" not in name and name not in COMPUTE


def _main_metric(metrics: dict[int, dict[str, float]]) -> str | None:
    names = {n for row in metrics.values() for n in row if n != "n_labeled" and "[" not in n and _is_metric(n)}
    for preferred in ("accuracy", "macro_f1"):
        if preferred in names:
            return preferred
    return min(names) if names else None


def _curve(metrics: dict[int, dict[str, float]], name: str | None) -> list[list[float]]:
    if name is None:
        return []
    return [
        [row.get("n_labeled", float(loop)), row[name]] for loop, row in sorted(metrics.items()) if name in row
    ]


def is_dashboard_value(name: str) -> bool:
    """A name :func:`loop_values` produces beyond the plain metrics (sources, classes, compute).

    >>> is_dashboard_value("labels_source:human"), is_dashboard_value("train_cpu_s"), is_dashboard_value("accuracy")
    (True, True, False)
    """
    return not _is_metric(name)


def loop_values(
    store: Any, loops: Sequence[int], *, predicted: dict[int, np.ndarray] | None = None
) -> dict[int, dict[str, float]]:
    """The dashboard's numbers of ``loops`` of a campaign store, flat per loop — what a remote campaign reports.

    Per loop: the metrics (``accuracy``, ``n_labeled``, …), the compute figures (``train_cpu_s``, ``infer_cpu_s``,
    ``select_cpu_s``, ``records_trained``, ``records_inferred``, ``records_unlabeled``, ``train_full``),
    ``labels_source:<source>`` (labels of that loop), ``labeled_class:<JSON class>`` (labels so far) and, for the
    loops given in ``predicted`` (loop → probabilities), ``predicted_class:<JSON class>`` (argmax counts).
    Only counts and totals: no record id, label of a record or probability leaves in these numbers.
    Names longer than 128 characters (a very long class name) are left out.
    """
    classes = list(store.get_meta("classes", []))
    metrics = store.values("metrics")
    compute = store.values("compute")
    labels = store.labels()
    wanted = sorted({int(lp) for lp in loops})
    keys = [json.dumps(c) for c in classes]
    sources: dict[int, dict[str, int]] = {}
    per_class: dict[int, dict[str, int]] = {}
    for lab in labels:
        loop = int(lab["loop"])
        src = sources.setdefault(loop, {})
        src[lab["source"]] = src.get(lab["source"], 0) + 1
        key = json.dumps(lab["label"])
        cls = per_class.setdefault(loop, {})
        cls[key] = cls.get(key, 0) + 1
        if key not in keys:
            keys.append(key)
    out: dict[int, dict[str, float]] = {}
    so_far = dict.fromkeys(keys, 0)
    label_loops = sorted(per_class)
    i = 0
    for loop in wanted:
        while i < len(label_loops) and label_loops[i] <= loop:  # cumulative labels up to this loop
            for key, n in per_class[label_loops[i]].items():
                so_far[key] += n
            i += 1
        row: dict[str, float] = {k: v for k, v in metrics.get(loop, {}).items() if _is_metric(k)}
        row.update({k: v for k, v in compute.get(loop, {}).items() if k in COMPUTE})
        row.update({SOURCE + s: float(n) for s, n in sources.get(loop, {}).items()})
        row.update({LABELED + k: float(n) for k, n in so_far.items()})
        probs = (predicted or {}).get(loop)
        if probs is not None and classes and len(probs):
            counts = np.bincount(np.asarray(probs).argmax(axis=1), minlength=len(classes))
            row.update({PREDICTED + json.dumps(c): float(n) for c, n in zip(classes, counts.tolist(), strict=False)})
        out[loop] = {k: v for k, v in row.items() if len(k) <= _MAX_NAME}
    return out


def dashboard_summary(
    values: dict[int, dict[str, float]],
    *,
    classes: Sequence[Any],
    loops: Sequence[dict[str, Any]] = (),
    baseline: Sequence[Sequence[float]] = (),
) -> dict[str, Any]:
    """The dashboard's card data from flat per-loop values (:func:`loop_values`, or what a campaign reported).

    ``curve``            [n_labeled, metric] per loop, for ``metric`` (accuracy when measured); ``baseline`` the same
                         for a random-selection run
    ``labels_by_loop``   per loop the number of labels of each source (human, auto, weak, oracle, …)
    ``classes``          per class the labels so far and the classes predicted by the latest inference
    ``compute``          per loop CPU seconds (train/infer/select), records trained/inferred and the from-scratch
                         CPU estimate, their total, and ``saved``: :func:`alloop.compute.campaign_savings`

    >>> s = dashboard_summary({0: {"n_labeled": 4, "accuracy": 0.5, "labels_source:human": 4, 'labeled_class:"a"': 4,
    ...                            'predicted_class:"a"': 7, 'predicted_class:"b"': 3, "train_cpu_s": 0.1}},
    ...                       classes=["a", "b"])
    >>> s["curve"], s["labels_by_loop"], s["classes"][1], s["n_predicted"]
    ([[4, 0.5]], [{'loop': 0, 'sources': {'human': 4}}], {'label': 'b', 'labeled': 0, 'predicted': 3}, 10)
    """
    from alloop.compute import FIELDS, campaign_savings

    metrics = {lp: {k: v for k, v in row.items() if _is_metric(k)} for lp, row in sorted(values.items())}
    metric = _main_metric(metrics)

    def named(prefix: str, row: dict[str, float]) -> dict[str, int]:
        return {k[len(prefix) :]: int(v) for k, v in row.items() if k.startswith(prefix)}

    by_loop = {lp: named(SOURCE, row) for lp, row in sorted(values.items())}
    last_labeled = max((lp for lp, row in values.items() if named(LABELED, row)), default=None)
    last_predicted = max((lp for lp, row in values.items() if named(PREDICTED, row)), default=None)
    labeled = {} if last_labeled is None else named(LABELED, values[last_labeled])
    predicted = {} if last_predicted is None else named(PREDICTED, values[last_predicted])
    compute = {
        lp: {k: v for k, v in row.items() if k in COMPUTE}
        for lp, row in sorted(values.items())
        if any(f in row for f in FIELDS)
    }
    comp_loops: dict[int, dict[str, float]] = {
        lp: {f: float(v.get(f, 0.0)) for f in FIELDS} for lp, v in compute.items()
    }
    saved = None
    if comp_loops:
        report = campaign_savings(compute, metrics)
        for lp, row in comp_loops.items():
            row["from_scratch_cpu_s"] = float(report["loops"][lp]["baseline_cpu_s"])
        saved = {"estimated": report["estimated"], "baseline_total": report["baseline_total"], **report["saved"]}
    total = {f: float(sum(r[f] for r in comp_loops.values())) for f in FIELDS}
    keys = [json.dumps(c) for c in classes]
    return {
        "metric": metric,
        "curve": _curve(metrics, metric),
        "baseline": [list(p) for p in baseline],
        "loops": list(loops),
        "labels_by_loop": [{"loop": lp, "sources": s} for lp, s in by_loop.items() if s],
        "classes": [
            {"label": json.loads(k), "labeled": labeled.get(k, 0), "predicted": predicted.get(k, 0)}
            for k in dict.fromkeys([*keys, *labeled, *predicted])
        ],
        "n_predicted": int(sum(predicted.values())),
        "compute": {
            "loops": [{"loop": lp, **row} for lp, row in comp_loops.items()],
            "total": total,
            "saved": saved,
        },
    }


def campaign_summary(directory: Path) -> dict[str, Any]:
    """What the dashboard shows of a campaign directory (see :func:`dashboard_summary`), plus ``directory``.

    The store's rows become the same flat per-loop values a remote campaign reports (:func:`loop_values`;
    predictions from the latest ``snapshots/loop-NNNN.parquet``), so both sources take one code path. The
    random baseline's curve comes from ``baseline-random/`` when it exists (the demo runs one).
    """
    from alloop.metadata import Snapshot
    from alloop.store import CampaignStore

    store = CampaignStore(directory)
    try:
        classes = list(store.get_meta("classes", []))
        loops = store.loops()
        last = max((lp["loop"] for lp in loops if store.snapshot_path(lp["loop"]).exists()), default=None)
        predicted = {} if last is None else {int(last): Snapshot.from_parquet(store.snapshot_path(int(last))).probs}
        every = {lp["loop"] for lp in loops} | set(store.values("metrics")) | set(store.values("compute"))
        every |= {int(r["loop"]) for r in store.labels()}
        values = loop_values(store, sorted(every), predicted=predicted)
    finally:
        store.close()
    baseline: list[list[float]] = []
    base_dir = directory / "baseline-random"
    if (base_dir / "alloop.db").is_file():
        base = CampaignStore(base_dir)
        try:
            baseline = _curve(base.values("metrics"), _main_metric(values))
        finally:
            base.close()
    summary = dashboard_summary(
        values,
        classes=classes,
        loops=[{"loop": lp["loop"], "strategy": lp["strategy"], "reason": lp["reason"]} for lp in loops],
        baseline=baseline,
    )
    return {"directory": str(directory), "source": "directory", **summary}


class _SkipAware:
    """Allocation that never offers an annotator a task they skipped (delegates the rest)."""

    def __init__(self, *, policy: Any, skipped: dict[str, set[int]]) -> None:
        self.policy = policy
        self.skipped = skipped

    def choose(
        self, annotator: AnnotatorView, tasks: Sequence[TaskView], team: Sequence[AnnotatorView], now: float
    ) -> TaskView | None:
        mine = self.skipped.get(annotator.id, set())
        return self.policy.choose(annotator, [t for t in tasks if t.task_id not in mine], team, now)


class LabelingService:
    """Per-project task queues, annotator tokens and progress for :class:`EngineService` projects.

    service         the engine service (projects, classes, data directory)
    lease_seconds   default lease length (a project may set its own with :meth:`configure`)
    content         optional callable ``(project, record id) -> (bytes, media type) | None`` for images;
                    without it (or when it returns None) images come from files the owner uploaded
    clock           ``time.time`` by default
    file_roots      directories inside which owners may register image folders and campaign directories (the
                    server's ``ALLOOP_FILE_ROOTS``); empty = none, so a project key cannot make the server read
                    arbitrary files of its machine
    """

    def __init__(
        self,
        *,
        service: Any,
        lease_seconds: float = 300.0,
        content: Callable[[str, Any], tuple[bytes, str] | None] | None = None,
        clock: Callable[[], float] | None = None,
        file_roots: tuple[str, ...] = (),
    ) -> None:
        self.service = service
        self.file_roots = file_roots
        self.lease_seconds = lease_seconds
        self.content = content
        self.clock = clock
        self._stores: dict[str, Any] = {}
        self._skipped: dict[str, dict[str, set[int]]] = {}
        self._lock = threading.RLock()

    # ---- plumbing ----------------------------------------------------------------------------------
    def _now(self) -> float:
        return float((self.clock or time.time)())

    def _dir(self, pid: str) -> Path:
        if not isinstance(pid, str) or not _PID.match(pid):
            raise UnknownRecordError(f"No project {pid!r}.")
        return Path(self.service.data_dir) / pid / "labeling"

    def _store(self, pid: str, *, create: bool = True) -> Any:
        from alloop.store import CampaignStore

        with self._lock:
            store = self._stores.get(pid)
            if store is None:
                directory = self._dir(pid)
                if not create and not (directory / "alloop.db").exists():
                    return None
                self.service.config(pid)  # 404 for an unknown project
                store = CampaignStore(directory, create=True)
                self._stores[pid] = store
            return store

    def _queue(self, pid: str) -> TaskQueue:
        store = self._store(pid)
        with self._lock:
            skipped = self._skipped.get(pid)
            if skipped is None:
                raw = store.get_meta("labeling_skips", {})
                skipped = self._skipped[pid] = {a: set(ids) for a, ids in raw.items()}
        lease = self.settings(pid)["lease_seconds"]
        return TaskQueue(
            store, lease_seconds=lease, allocator=_SkipAware(policy=Allocator(), skipped=skipped), clock=self.clock
        )

    def close(self) -> None:
        with self._lock:
            for store in self._stores.values():
                store.close()
            self._stores.clear()

    # ---- project settings (owner) --------------------------------------------------------------------
    def settings(self, pid: str) -> dict[str, Any]:
        """``lease_seconds`` and ``preannotate`` (show the model's suggestion) of a project."""
        stored = self._store(pid).get_meta("labeling", {})
        return {"lease_seconds": float(self.lease_seconds), "preannotate": False, **stored}

    def configure(
        self, pid: str, *, lease_seconds: float | None = None, preannotate: bool | None = None
    ) -> dict[str, Any]:
        check_float(lease_seconds, "lease_seconds", "LabelingService.configure", low=1.0, allow_none=True)
        check_bool(preannotate, "preannotate", "LabelingService.configure", allow_none=True)
        store = self._store(pid)
        with self._lock, store.transaction() as conn:
            current = dict(store.get_meta("labeling", {}))
            if lease_seconds is not None:
                current["lease_seconds"] = float(lease_seconds)
            if preannotate is not None:
                current["preannotate"] = preannotate
            store.set_meta(conn, "labeling", current)
        return self.settings(pid)

    # ---- annotators and tokens (owner) ---------------------------------------------------------------
    def issue_token(
        self, pid: str, annotator: str, *, skills: Sequence[str] = (), capacity: int = 1, quota: int | None = None
    ) -> str:
        """Register (or update) ``annotator`` and return a new token for them; older tokens stay valid."""
        queue = self._queue(pid)
        queue.annotators.register(annotator, skills=skills, capacity=capacity, quota=quota)
        token = f"ann_{pid[2:]}_{secrets.token_urlsafe(32)}"
        store = self._store(pid)
        with self._lock, store.transaction() as conn:
            tokens = dict(store.get_meta("annotator_tokens", {}))
            tokens[_hash(token)] = annotator
            store.set_meta(conn, "annotator_tokens", tokens)
        return token

    def revoke(self, pid: str, annotator: str) -> int:
        """Invalidate every token of ``annotator``; returns how many."""
        store = self._store(pid)
        with self._lock, store.transaction() as conn:
            tokens = dict(store.get_meta("annotator_tokens", {}))
            keep = {h: a for h, a in tokens.items() if a != annotator}
            store.set_meta(conn, "annotator_tokens", keep)
        return len(tokens) - len(keep)

    def annotator_for_token(self, token: str) -> tuple[str, str] | None:
        """(project, annotator) of a valid annotator token, else None. Never creates anything."""
        match = _TOKEN.match(token or "")
        if match is None:
            return None
        pid = "p_" + match.group(1)
        try:
            store = self._store(pid, create=False)
        except UnknownRecordError:
            return None
        if store is None:
            return None
        digest = _hash(token)
        for stored, annotator in store.get_meta("annotator_tokens", {}).items():
            if hmac.compare_digest(stored, digest):
                return pid, str(annotator)
        return None

    # ---- tasks (owner) -----------------------------------------------------------------------------------
    def add_tasks(
        self,
        pid: str,
        ids: Sequence[Any],
        *,
        payload: Sequence[Any] | None = None,
        predicted: Sequence[Any] | None = None,
        required: int = 1,
        priority: Sequence[float] | float = 0.0,
    ) -> list[int]:
        """Tasks for records of the project, labeled with the project's classes; returns new task ids.

        A payload is what the annotator sees: ``{"text": ...}``, ``{"row": {column: value}}``,
        ``{"image": true}`` (bytes from :meth:`put_content` or the ``content`` callable), or a plain string.
        """
        classes = self.service.config(pid)["classes"]
        store = self._store(pid)
        with self._lock, store.transaction() as conn:
            batch = int(store.get_meta("labeling_batches", 0))
            store.set_meta(conn, "labeling_batches", batch + 1)
        return self._queue(pid).add_tasks(
            list(ids), classes=classes, required=required, priority=priority, payload=payload,
            predicted=predicted, batch=batch,
        )

    def cancel(self, pid: str, ids: Sequence[Any]) -> int:
        """Cancel the open tasks of these records (their leases die with them); returns how many."""
        return self._queue(pid).cancel(list(ids))

    def put_content(self, pid: str, rid: Any, data: bytes) -> str:
        """Store a PNG or JPEG for record ``rid`` in the project's content folder; returns its media type."""
        kind = _media_type(data)
        if kind is None:
            raise DataError("Record content must be a PNG or JPEG image (checked by its first bytes).")
        if len(data) > _MAX_IMAGE:
            raise DataError(f"Record content is limited to {_MAX_IMAGE} bytes; got {len(data)}.")
        path = self._content_path(pid, rid)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return kind

    def _content_path(self, pid: str, rid: Any) -> Path:
        return self._dir(pid) / "content" / hashlib.sha256(L.dumps(rid).encode()).hexdigest()

    def results(self, pid: str) -> list[dict[str, Any]]:
        """Consensus labels of finished tasks not delivered yet (marks them delivered), as HumanProvider.poll."""
        from alloop.labeling.providers import HumanProvider

        classes = self.service.config(pid)["classes"]
        events = HumanProvider(self._queue(pid), classes=classes).poll()
        return [
            {"id": e.id, "label": e.label, "annotator": e.annotator, "posterior": e.posterior, "source": e.source}
            for e in events
        ]

    def report_metrics(self, pid: str, loop: int, values: dict[str, float]) -> None:
        """Store the campaign's metrics of one loop (e.g. ``{"n_labels": 40, "accuracy": 0.8}``) for the dashboard."""
        check_int(loop, "loop", "LabelingService.report_metrics", min=0)
        rows = []
        for name, value in values.items():
            if not isinstance(name, str) or not 0 < len(name) <= 128:
                raise ConfigError(f"Metric names must be strings of 1 to 128 characters. Got {name!r}.")
            rows.append({"loop": loop, "name": name, "value": check_float(value, name, "a metric")})
        store = self._store(pid)
        with store.transaction() as conn:
            conn.execute(sa.delete(T.metrics).where(T.metrics.c.loop == loop, T.metrics.c.name.in_(list(values))))
            if rows:
                conn.execute(sa.insert(T.metrics), rows)

    def reported(self, pid: str) -> dict[int, dict[str, float]]:
        """Every value reported with :meth:`report_metrics`, per loop."""
        with self._store(pid).transaction() as conn:
            rows = conn.execute(
                sa.select(T.metrics.c.loop, T.metrics.c.name, T.metrics.c.value).order_by(T.metrics.c.loop)
            ).all()
        out: dict[int, dict[str, float]] = {}
        for loop, name, value in rows:
            out.setdefault(int(loop), {})[name] = float(value)
        return out

    # ---- the annotator's side ------------------------------------------------------------------------
    def me(self, pid: str, annotator: str) -> dict[str, Any]:
        cfg = self.service.config(pid)
        return {"project_id": pid, "annotator": annotator, "classes": cfg["classes"], **self.settings(pid)}

    def heartbeat(self, pid: str, annotator: str) -> dict[str, Any]:
        queue = self._queue(pid)
        queue.annotators.heartbeat(annotator)
        return {"status": queue.annotators.profile(annotator).status.value}

    def sign_out(self, pid: str, annotator: str) -> None:
        self._queue(pid).annotators.sign_out(annotator)

    def _held(self, conn: Any, annotator: str, now: float) -> list[Any]:
        return conn.execute(
            sa.select(T.task_slots.c.task_id, T.task_slots.c.expires_at).where(
                T.task_slots.c.annotator == annotator, T.task_slots.c.done.is_(False), T.task_slots.c.expires_at >= now
            ).order_by(T.task_slots.c.expires_at)
        ).all()

    def next_task(self, pid: str, annotator: str) -> dict[str, Any] | None:
        """The annotator's current lease (if one is still running) or a new one; None when there is no work."""
        queue = self._queue(pid)
        now = self._now()
        with self._store(pid).transaction() as conn:
            held = self._held(conn, annotator, now)
        if held:
            queue.annotators.heartbeat(annotator, now=now)
            task_id, expires = int(held[0].task_id), float(held[0].expires_at)
        else:
            lease = queue.lease(annotator, now=now)
            if lease is None:
                return None
            task_id, expires = lease.task_id, lease.expires_at
        return self._view(pid, task_id, expires, now)

    def _view(self, pid: str, task_id: int, expires: float, now: float) -> dict[str, Any]:
        with self._store(pid).transaction() as conn:
            task = L.task_rows(conn, [task_id])[0]
        payload = task["payload"]
        view: dict[str, Any] = {
            "task_id": task_id,
            "rid": task["rid"],
            "choices": task["choices"],
            "expires_at": expires,
            "expires_in": max(expires - now, 0.0),
            "text": None,
            "row": None,
            "image": False,
            "suggestion": task["predicted"] if self.settings(pid)["preannotate"] else None,
        }
        if isinstance(payload, str):
            view["text"] = payload
        elif isinstance(payload, dict):
            view["text"] = payload.get("text") if isinstance(payload.get("text"), str) else None
            view["row"] = payload.get("row") if isinstance(payload.get("row"), dict) else None
            view["image"] = bool(payload.get("image"))
        return view

    def _lease_of(self, conn: Any, task_id: int, annotator: str) -> Any:
        if isinstance(task_id, bool) or not isinstance(task_id, int):
            raise NotLeasedError(f"Task ids are integers. Got {task_id!r}.")
        return conn.execute(
            sa.select(T.task_slots.c.expires_at, T.task_slots.c.done).where(
                T.task_slots.c.task_id == task_id, T.task_slots.c.annotator == annotator
            ).order_by(T.task_slots.c.done)
        ).first()

    def _check_lease(self, pid: str, annotator: str, task_id: int, now: float) -> None:
        with self._store(pid).transaction() as conn:
            row = self._lease_of(conn, task_id, annotator)
        if row is None:
            raise NotLeasedError(f"Task {task_id} is not leased to you; ask for your next task.")
        if row.done:
            raise NotLeasedError(f"You already answered task {task_id}; ask for your next task.")
        if row.expires_at is None or row.expires_at < now:
            raise LeaseExpiredError(
                f"Your lease on task {task_id} expired before the answer arrived; the task went back to the queue "
                "and your answer was not recorded. Ask for your next task."
            )

    def task_content(self, pid: str, annotator: str, task_id: int) -> tuple[bytes, str]:
        """The image of a task leased to ``annotator`` (PNG or JPEG)."""
        self._check_lease(pid, annotator, task_id, self._now())
        with self._store(pid).transaction() as conn:
            rid = L.task_rows(conn, [task_id])[0]["rid"]
        if self.content is not None:
            got = self.content(pid, rid)
            if got is not None:
                return got
        path = self._content_path(pid, rid)
        if path.exists():
            data = path.read_bytes()
            return data, _media_type(data) or "application/octet-stream"
        folder = self._store(pid).get_meta("image_folder")
        if folder is not None:
            got = folder_image(Path(folder), rid)
            if got is not None:
                return got
        raise UnknownRecordError(
            f"Task {task_id} has no image; the project owner uploads one per record or registers a folder."
        )

    def _allowed(self, resolved: Path, path: str) -> Path:
        roots = [Path(r).expanduser().resolve() for r in self.file_roots]
        if not any(resolved == r or r in resolved.parents for r in roots):
            where = os.pathsep.join(map(str, roots)) or "unset"
            raise ConfigError(
                f"The 'path' parameter {path!r} is outside the directories this server may read "
                f"(ALLOOP_FILE_ROOTS={where}); restart `alloop serve` with that directory in ALLOOP_FILE_ROOTS."
            )
        return resolved

    def register_folder(self, pid: str, path: str) -> dict[str, Any]:
        """Serve images of this project's records from ``path`` (``<record id>.png|.jpg|.jpeg`` inside it).

        The folder must exist on the server's machine; only files directly inside it are read, and only
        PNG/JPEG (checked by their first bytes). ``path=""`` unregisters the folder.
        """
        store = self._store(pid)
        folder: str | None = None
        if path:
            resolved = self._allowed(_existing_dir(path, "path", "the image folder"), path)
            folder = str(resolved)
        with self._lock, store.transaction() as conn:
            store.set_meta(conn, "image_folder", folder)
        return {"image_folder": folder}

    def attach_campaign(self, pid: str, path: str) -> dict[str, Any]:
        """Show the campaign stored in directory ``path`` (its ``alloop.db``) on this project's dashboard.

        A campaign that ran against this service records its project; one that names another project is refused.
        """
        from alloop.store import DB_NAME, CampaignStore

        directory = self._allowed(_existing_dir(path, "path", "the campaign directory"), path)
        if not (directory / DB_NAME).is_file():
            raise ConfigError(
                f"The 'path' parameter of the campaign directory must hold a campaign ({DB_NAME}). "
                f"Got {path!r}; run the campaign there first."
            )
        try:
            camp = CampaignStore(directory)
            try:
                owner = camp.get_meta("project_id")
            finally:
                camp.close()
        except sa.exc.SQLAlchemyError as exc:
            raise ConfigError(f"The campaign store in {path!r} cannot be read: {exc.__class__.__name__}.") from None
        if owner not in (None, pid):
            raise ConfigError(
                f"The campaign in {path!r} ran for project {owner!r}, not {pid!r}; attach it to its own project."
            )
        store = self._store(pid)
        with self._lock, store.transaction() as conn:
            store.set_meta(conn, "campaign_dir", str(directory))
        return {"campaign_dir": str(directory)}

    def campaign(self, pid: str) -> dict[str, Any] | None:
        """The dashboard's view of the campaign (see :func:`dashboard_summary`): of the attached directory when
        there is one (:func:`campaign_summary`), else of what the campaign reported per loop (a remote campaign's
        sources, classes and compute, ``source: "reported"``); None when there is neither."""
        store = self._store(pid, create=False)
        directory = None if store is None else store.get_meta("campaign_dir")
        if directory is None:
            values = {} if store is None else self.reported(pid)
            if not any(is_dashboard_value(n) for row in values.values() for n in row):
                return None
            classes = self.service.config(pid)["classes"]
            return {"directory": None, "source": "reported", **dashboard_summary(values, classes=classes)}
        try:
            return campaign_summary(Path(directory))
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"The campaign store in {directory!r} cannot be read: {exc.__class__.__name__}.") from None

    def submit(
        self, pid: str, annotator: str, task_id: int, label: Any, *, seconds: float | None = None
    ) -> dict[str, Any]:
        """Record the annotator's answer to their leased task; returns their progress."""
        now = self._now()
        self._check_lease(pid, annotator, task_id, now)
        self._queue(pid).submit(task_id, annotator, label, seconds=seconds, now=now)
        return self.progress(pid, annotator)

    def skip(self, pid: str, annotator: str, task_id: int) -> dict[str, Any]:
        """Give the task back ("skip" / "not sure"); it is not offered to this annotator again."""
        now = self._now()
        self._check_lease(pid, annotator, task_id, now)
        queue = self._queue(pid)
        store = self._store(pid)
        with self._lock:
            mine = self._skipped[pid].setdefault(annotator, set())
            mine.add(int(task_id))
            with store.transaction() as conn:
                store.set_meta(conn, "labeling_skips", {a: sorted(s) for a, s in self._skipped[pid].items()})
        queue.release(task_id, annotator)
        return self.progress(pid, annotator)

    def progress(self, pid: str, annotator: str) -> dict[str, Any]:
        """Judgements today (UTC) and in total, and the open tasks this annotator could still answer."""
        now = self._now()
        midnight = now - now % 86400.0
        skipped = self._skipped.get(pid, {}).get(annotator, set())
        with self._store(pid).transaction() as conn:
            mine = conn.execute(
                sa.select(T.task_annotations.c.task_id, T.task_annotations.c.created_at).where(
                    T.task_annotations.c.annotator == annotator
                )
            ).all()
            open_ids = [t["task_id"] for t in L.task_rows(conn, state="open", kind="record")]
        answered = {r.task_id for r in mine}
        return {
            "done_today": sum(1 for r in mine if r.created_at >= midnight),
            "done_total": len(mine),
            "remaining": sum(1 for t in open_ids if t not in answered and t not in skipped),
            "skipped": len(skipped),
        }

    # ---- the owner's overview (dashboard) ------------------------------------------------------------
    def overview(self, pid: str) -> dict[str, Any] | None:
        """Tasks, annotators (throughput, quality), label distribution and reported metrics; None without labeling."""
        store = self._store(pid, create=False)
        if store is None:
            return None
        queue = self._queue(pid)
        classes = self.service.config(pid)["classes"]
        with store.transaction() as conn:
            states = dict(
                conn.execute(
                    sa.select(T.tasks.c.state, sa.func.count())
                    .where(T.tasks.c.kind == "record")
                    .group_by(T.tasks.c.state)
                ).all()
            )
            labels = conn.execute(sa.select(T.task_annotations.c.label, T.task_annotations.c.created_at)).all()
        now = self._now()
        dist = {json.dumps(c): 0 for c in classes}
        for lab, _ in labels:
            dist[lab] = dist.get(lab, 0) + 1
        team = []
        for p in queue.annotators.profiles(classes=classes, now=now):
            team.append(
                {
                    "annotator": p.id, "status": p.status.value, "judgements": p.judgements,
                    "seconds": p.seconds, "gold_accuracy": p.gold_accuracy, "agreement": p.agreement,
                }
            )
        curve = {  # the plain metrics; sources, classes and compute go to the campaign card (see campaign())
            loop: metrics
            for loop, row in self.reported(pid).items()
            if (metrics := {k: v for k, v in row.items() if not is_dashboard_value(k)})
        }
        return {
            "tasks": {s: int(states.get(s, 0)) for s in ("open", "done", "cancelled")},
            "annotators": team,
            "labels_by_class": [{"label": json.loads(k), "count": v} for k, v in dist.items()],
            "judgements_last_hour": sum(1 for _, t in labels if t >= now - 3600.0),
            "metrics": [{"loop": k, **v} for k, v in sorted(curve.items())],
        }


class WebHumanProvider:
    """A :class:`~alloop.labeling.LabelProvider` whose labels come from people on ``/label`` of ``alloop serve``.

    url          the service, e.g. ``http://127.0.0.1:8000``
    project      the project id; ``key`` its API key (issues annotator tokens, adds tasks, fetches results)
    payload      optional callable ids → what each annotator sees (``{"text": ...}``, ``{"row": {...}}``, …)
    predicted    optional callable ids → the model's classes (shown when the project enables pre-annotation)
    redundancy   judgements per record (the service returns their majority vote)
    timeout      seconds per HTTP call
    """

    def __init__(
        self,
        *,
        url: str,
        project: str,
        key: str,
        payload: Callable[[list[Any]], Sequence[Any]] | None = None,
        predicted: Callable[[list[Any]], Sequence[Any]] | None = None,
        redundancy: int = 1,
        timeout: float = 60.0,
    ) -> None:
        self.url = url
        self.project = project
        self.key = key
        self.payload = payload
        self.predicted = predicted
        self.redundancy = redundancy
        self.timeout = timeout
        self._client: Any = None

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        import httpx

        from alloop.errors import AuthError

        if self._client is None:
            check_int(self.redundancy, "redundancy", "WebHumanProvider", min=1)
            self._client = httpx.Client(
                base_url=self.url.rstrip("/"), headers={"Authorization": f"Bearer {self.key}"}, timeout=self.timeout
            )
        res = self._client.request(method, f"/v1/projects/{self.project}/labeling{path}", **kwargs)
        if res.status_code in (401, 403):
            raise AuthError(f"The service refused the project key for {self.project!r} ({res.status_code}).")
        if res.is_error:
            raise StateError(f"The labeling service answered {res.status_code}: {res.text[:500]}")
        return res.json()

    def issue_token(self, annotator: str) -> str:
        """A new annotator token for ``annotator`` (hand it to that person; it is shown once)."""
        return str(self._call("POST", "/annotators", json={"annotator": annotator})["token"])

    def request(self, ids: Any) -> None:
        from alloop.labeling.providers import _plain

        rids = [_plain(r) for r in list(ids)]
        if not rids:
            return
        body: dict[str, Any] = {"ids": rids, "required": int(self.redundancy)}
        if self.payload is not None:
            body["payload"] = list(self.payload(rids))
        if self.predicted is not None:
            body["predicted"] = [_plain(p) for p in self.predicted(rids)]
        self._call("POST", "/tasks", json=body)

    def poll(self) -> list[Any]:
        from alloop.labeling._provider import LabelEvent

        return [
            LabelEvent(id=r["id"], label=r["label"], source="human", annotator=r["annotator"], posterior=r["posterior"])
            for r in self._call("POST", "/results")
        ]

    def cancel(self, ids: Any) -> None:
        from alloop.labeling.providers import _plain

        rids = [_plain(r) for r in list(ids)]
        if rids:
            self._call("POST", "/tasks/cancel", json={"ids": rids})

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
