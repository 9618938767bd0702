"""``Campaign``: SELECT → LABEL → TRAIN → INFER, durable, resumable, one step at a time.

The campaign is a state machine whose state lives in the store. Each step commits in one
transaction, so a process killed anywhere resumes with :meth:`Campaign.resume` and loses nothing.

Phases of a loop (the ``loops.phase`` column)::

    review ─► selected ─► labeled ─► trained ─► inferred ─► (next loop: review or selected)

``step()`` advances as far as it can without blocking: it returns at once while labels are still
outstanding (people label over minutes or hours). ``run()`` repeats ``step()`` until a stopping rule
fires: the budget, the loop count, a target metric, or an empty pool.

>>> import numpy as np, tempfile
>>> from sklearn.linear_model import LogisticRegression
>>> from alloop.labeling import SimulatedOracle
>>> X = np.r_[np.zeros((20, 1)), np.ones((20, 1))] + np.linspace(0, 0.5, 40)[:, None]
>>> y = np.r_[np.zeros(20, int), np.ones(20, int)]
>>> camp = Campaign(tempfile.mkdtemp(), learner=SklearnLearner(LogisticRegression(), X, eval_X=X, eval_y=y),
...                 labeler=SimulatedOracle(truth=dict(enumerate(y))), pool=np.arange(40), classes=[0, 1],
...                 initial=4, batch_size=2, budget=10)
>>> result = camp.run()
>>> result.stop_reason, result.n_labeled
('budget', 10)
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alloop._validation import check_float, check_int
from alloop.engine import Selection, SelectionEngine
from alloop.errors import ConfigError, DataError, LabelError, StateError, StoreError
from alloop.labeling import LabelEvent, LabelProvider
from alloop.loop._learner import Learner, SklearnLearner, TrainReport
from alloop.loop._sharing import SharingPolicy
from alloop.metadata import Snapshot
from alloop.records import Pool, RecordState, as_id_array
from alloop.store import DB_NAME, CampaignStore
from alloop.strategies import make_strategy

__all__ = ["CRASH_POINTS", "Campaign", "CampaignResult", "LoopReport", "SklearnLearner", "StepResult"]

CRASH_POINTS = ("select", "label", "train", "infer")
REVIEW_FILE = "file"


def directory_name(directory: str | os.PathLike[str]) -> str:
    return Path(directory).resolve().name[:200] or "campaign"


def _crash_point(name: str, loop: int) -> None:
    """Testing hook: ``ALLOOP_CRASH_AT=<point>[@<loop>]`` kills the process right after that commit."""
    spec = os.environ.get("ALLOOP_CRASH_AT")
    if not spec:
        return
    point, _, at = spec.partition("@")
    if point == name and (not at or int(at) == loop):
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class StepResult:
    """What one ``step()`` did. ``blocked`` means it is waiting for something outside (labels, a review)."""

    action: str  # select, review, label, wait, train, infer, done
    loop: int
    blocked: bool = False
    detail: str = ""


@dataclass(frozen=True)
class LoopReport:
    """One finished loop, as shown in progress displays."""

    loop: int
    n_labeled: int
    strategy: str
    metrics: dict[str, float]
    compute: dict[str, float]
    seconds: float
    hand_edited: bool = False


@dataclass
class CampaignResult:
    stop_reason: str | None
    n_labeled: int
    loops: list[LoopReport] = field(default_factory=list)


_CONFIG_FIELDS = (
    "classes",
    "strategy",
    "initial",
    "batch_size",
    "budget",
    "max_loops",
    "target",
    "seed",
    "label_timeout",
    "review_mode",
    "stop_when",
    "compute_saving",
)


_STREAM_ARGS = (
    "strategy",
    "budget",
    "budget_manager",
    "block_size",
    "retrain_every",
    "initial",
    "seed",
    "label_timeout",
)


class Campaign:
    """An active-learning campaign stored in ``directory``.

    ``mode="pool"`` (default) ranks the remaining pool each loop. ``mode="stream"`` returns a
    :class:`alloop.loop.stream.StreamCampaign` that decides record by record: ``Campaign(mode="stream",
    learner=…, labeler=…, classes=…, strategy="stream-variable-uncertainty", budget=0.1).run(records)``.

    learner      the user's model (see :class:`alloop.loop.Learner`)
    labeler      a :class:`alloop.labeling.LabelProvider` (e.g. SimulatedOracle)
    pool         record ids to select from (default: ``learner.dataset_state()``)
    classes      the class labels
    strategy     strategy spec for loops after the initial set
    initial      size of the initial set (drawn at random with ``seed``) or ``initial_ids``
    batch_size   records per loop; ``budget`` caps the total labels (initial set included)
    max_loops    loops after the initial set; ``target`` e.g. ``{"accuracy": 0.95}`` stops when met
    engine       None (embedded, in-process) or the URL of ``alloop serve``; ``token`` its project key
                 or admin token; ``sharing`` the :class:`SharingPolicy` (default: ids + probabilities)
    review       ``fn(proposed: Selection) -> ids`` to edit each batch, or ``"file"`` to stop and
                 write ``review/loop-NNNN.csv`` for a person to edit (read back on resume)
    label_timeout seconds after which a partial batch is trained on (the rest stay pending)
    stop_when    stopping criteria (names from ``alloop.engine.stopping.CRITERIA``) that end the campaign
                 when they fire, e.g. ``["stabilizing-predictions"]``; ``alloop report`` shows them all
    cluster      a Dask cluster (``local:2``, ``tcp://host:port`` or a distributed.Client) that ranks per-record
                 strategies over the stored snapshot (machine-specific: not stored, pass it again on resume)
    compute_saving  True/"on" (the policy of the learner's model class and the pool size, ``auto_policy``),
                 False/"off" or a :class:`alloop.compute.ComputePolicy`: warm-start/incremental training between
                 periodic full retrains and inference only where it can change the decision (see
                 docs/compute.md); TrainReport.mode says what ran, ``compute_savings()`` what it saved
    overwrite    start afresh in a directory that already holds a campaign
    """

    def __new__(cls, *args: Any, mode: str = "pool", **kwargs: Any) -> Any:
        if mode == "stream":
            from alloop.loop.stream import StreamCampaign

            unknown = sorted(set(kwargs) - {"learner", "labeler", "classes", *_STREAM_ARGS, "directory"})
            if unknown or args:
                raise ConfigError(
                    f"Campaign(mode='stream') takes learner, labeler, classes and {', '.join(_STREAM_ARGS)}; "
                    f"got {', '.join(unknown) or 'a positional directory'} as well."
                )
            kwargs.pop("directory", None)
            return StreamCampaign(kwargs.pop("learner"), kwargs.pop("labeler"), kwargs.pop("classes"), **kwargs)
        if mode != "pool":
            raise ConfigError(f"The 'mode' parameter of Campaign must be 'pool' or 'stream'. Got {mode!r}.")
        return super().__new__(cls)

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        mode: str = "pool",
        learner: Learner,
        labeler: LabelProvider,
        classes: Sequence[Any],
        pool: Any = None,
        strategy: str = "auto",
        initial: int = 20,
        initial_ids: Any = None,
        batch_size: int = 10,
        budget: int | None = None,
        max_loops: int | None = None,
        target: Mapping[str, float] | None = None,
        seed: int = 0,
        review: Callable[[Selection], Any] | str | None = None,
        label_timeout: float | None = None,
        overwrite: bool = False,
        holdout: Any = None,
        engine: str | None = None,
        token: str | None = None,
        sharing: SharingPolicy | None = None,
        stop_when: Any = None,
        compute_saving: Any = False,
        cluster: Any = None,
    ) -> None:
        owner = "Campaign"
        config = {
            "classes": self._check_classes(classes),
            "strategy": make_strategy(strategy).spec,
            "initial": check_int(initial, "initial", owner, min=1),
            "batch_size": check_int(batch_size, "batch_size", owner, min=1),
            "budget": check_int(budget, "budget", owner, min=1, allow_none=True),
            "max_loops": check_int(max_loops, "max_loops", owner, min=0, allow_none=True),
            "target": self._check_target(target),
            "seed": check_int(seed, "seed", owner, min=0),
            "label_timeout": check_float(label_timeout, "label_timeout", owner, low=0.0, allow_none=True),
            "review_mode": REVIEW_FILE if review == REVIEW_FILE else None,
            "stop_when": self._check_stop_when(stop_when),
            "compute_saving": self._check_compute(compute_saving),
        }
        if review is not None and review != REVIEW_FILE and not callable(review):
            raise ConfigError("The 'review' parameter of Campaign must be a function, 'file' or None. Got {review!r}.")
        if pool is None:
            if not hasattr(learner, "dataset_state"):
                raise ConfigError("The 'pool' parameter of Campaign is required (the record ids to select from).")
            pool = learner.dataset_state()
        pool_ids = as_id_array(pool, "pool")
        if pool_ids.size == 0:
            raise ConfigError("The 'pool' parameter of Campaign must hold at least one record id.")
        config["compute_saving"] = self._check_compute(compute_saving, learner, pool_ids.size)  # "on": per model
        holdout_ids = None if holdout is None else as_id_array(holdout, "holdout")
        directory = Path(directory)
        config["engine_url"] = config["project_id"] = config["sharing"] = None
        if (directory / DB_NAME).exists():
            if not overwrite:
                raise ConfigError(
                    f"{str(directory)!r} already holds a campaign; continue it with Campaign.resume(), "
                    "or pass overwrite=True to start afresh."
                )
        if initial_ids is not None:  # checked on a scratch pool, before anything is sent or written
            init = as_id_array(initial_ids, "initial_ids")
            scratch = Pool()
            scratch.add(pool_ids, field="pool")
            scratch.check_state(scratch.index_of(init, "initial_ids"), RecordState.UNLABELED, "initial_ids")
            config["initial_ids"] = init.tolist()
        if engine is not None and not (isinstance(engine, str) and engine.startswith(("http://", "https://"))):
            raise ConfigError(
                f"The 'engine' parameter of Campaign must be None (embedded) or an http(s) URL. Got {engine!r}."
            )
        # validate everything that could fail before touching the directory
        if engine is None:
            sel_engine: Any = SelectionEngine(
                strategy=config["strategy"], seed=config["seed"], classes=config["classes"]
            )
        else:
            from alloop.loop._remote import RemoteEngine

            sel_engine = RemoteEngine(
                engine,
                token or "",
                classes=config["classes"],
                strategy=config["strategy"],
                seed=config["seed"],
                name=directory_name(directory),
                policy=sharing,
            )
            config["engine_url"] = engine
            config["project_id"] = sel_engine.project
            config["sharing"] = sel_engine.policy.to_config()
        sel_engine.add_records(pool_ids)
        if holdout_ids is not None:
            sel_engine.add_records(holdout_ids, holdout=True)
        if overwrite and directory.exists():
            for name in (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm"):
                (directory / name).unlink(missing_ok=True)
            for sub in ("snapshots", "review", "dynamics"):
                shutil.rmtree(directory / sub, ignore_errors=True)
        store = CampaignStore(directory, create=True)
        with store.transaction() as conn:
            for key, value in config.items():
                store.set_meta(conn, key, value)
            store.set_meta(conn, "id_kind", sel_engine.pool.id_kind or "int")
            store.set_meta(conn, "created_at", time.time())
            all_idx = np.arange(sel_engine.pool.capacity)
            store.insert_records(conn, all_idx[: pool_ids.size], pool_ids, RecordState.UNLABELED, 0)
            if holdout_ids is not None:
                store.insert_records(conn, all_idx[pool_ids.size :], holdout_ids, RecordState.EVAL, 0)
        self._attach(store, sel_engine, learner, labeler, review if callable(review) else None)
        self.cluster = cluster

    # ---- construction --------------------------------------------------------------------------
    @staticmethod
    def _check_classes(classes: Sequence[Any]) -> list[Any]:
        if classes is None or isinstance(classes, (str, bytes)):
            raise ConfigError("The 'classes' parameter of Campaign must be a list of class labels. Got {classes!r}.")
        out = [c.item() if isinstance(c, np.generic) else c for c in list(classes)]
        if len(out) < 2 or len(set(out)) != len(out):
            raise ConfigError(f"The 'classes' parameter of Campaign must list at least 2 distinct labels. Got {out!r}.")
        return out

    @staticmethod
    def _check_compute(value: Any, learner: Any = None, n_pool: int | None = None) -> dict[str, Any] | None:
        from alloop.compute import resolve_compute

        policy = resolve_compute(value, "Campaign", model=learner, n_pool=n_pool)
        return None if policy is None else policy.to_config()

    @staticmethod
    def _check_stop_when(stop_when: Any) -> list[str] | None:
        if stop_when is None:
            return None
        from alloop.engine.stopping import CRITERIA

        names = [stop_when] if isinstance(stop_when, str) else list(stop_when)
        unknown = [n for n in names if n not in CRITERIA]
        if unknown or not names:
            raise ConfigError(
                f"The 'stop_when' parameter of Campaign must name criteria from {CRITERIA}. Got {stop_when!r}."
            )
        return names

    @staticmethod
    def _check_target(target: Mapping[str, float] | None) -> dict[str, float] | None:
        if target is None:
            return None
        if not isinstance(target, Mapping) or not target:
            raise ConfigError(
                f"The 'target' parameter of Campaign must be a mapping like {{'accuracy': 0.95}}. Got {target!r}."
            )
        return {str(k): check_float(v, f"target[{k!r}]", "Campaign") for k, v in target.items()}

    def _attach(
        self,
        store: CampaignStore,
        engine: SelectionEngine,
        learner: Learner,
        labeler: LabelProvider,
        review: Callable[[Selection], Any] | None,
    ) -> None:
        self.store = store
        self.directory = store.directory
        self.engine = engine
        self.learner = learner
        self.labeler = labeler
        self.review_fn = review
        self.config = {k: store.get_meta(k) for k in _CONFIG_FIELDS}
        self.config["initial_ids"] = store.get_meta("initial_ids")
        self._inference_policy: Any = None
        if self.config.get("compute_saving"):
            from alloop.compute import WarmStartLearner, resolve_compute

            policy = resolve_compute(self.config["compute_saving"])  # a stored config (True in older campaigns)
            if policy is not None and policy.warm_start and not isinstance(learner, WarmStartLearner):
                self.learner = WarmStartLearner(learner, policy.warm_policy())
            if hasattr(engine, "history"):  # inference skipping needs the engine's History (embedded engine)
                self._inference_policy = policy
        self._monitor: Any = None
        if self.config.get("stop_when"):
            from alloop.engine.stopping import StopMonitor

            self._monitor = StopMonitor(budget=self.config["budget"], seed=self.config["seed"])
        self._model_ready = False
        self._requested = False
        self._loop_started = time.perf_counter()

    @classmethod
    def resume(
        cls,
        directory: str | os.PathLike[str],
        *,
        learner: Learner,
        labeler: LabelProvider,
        review: Callable[[Selection], Any] | None = None,
        token: str | None = None,
        cluster: Any = None,
    ) -> Campaign:
        """Reopen a campaign where it stopped: pool, labels and History are rebuilt from the store.

        A campaign on a remote engine needs its ``token`` again (tokens are never stored); the service is
        brought up to date with whatever it missed.
        """
        store = CampaignStore(directory)
        classes = store.get_meta("classes")
        if classes is None:
            raise StoreError(f"{str(directory)!r} has no campaign configuration; it was not created by Campaign.")
        url = store.get_meta("engine_url")
        engine: Any
        if url is None:
            engine = SelectionEngine(strategy=store.get_meta("strategy"), seed=store.get_meta("seed"), classes=classes)
        else:
            from alloop.loop._remote import RemoteEngine

            engine = RemoteEngine(
                url,
                token or "",
                classes=classes,
                strategy=store.get_meta("strategy"),
                seed=store.get_meta("seed"),
                project=store.get_meta("project_id"),
                policy=SharingPolicy(**store.get_meta("sharing")),
            )
        engine.pool = store.load_pool()
        engine.labels = np.full(engine.pool.capacity, -1, dtype=np.int64)
        rows = store.labels()
        if rows:
            idx = np.array([r["idx"] for r in rows], dtype=np.int64)
            engine.labels[idx] = engine.class_positions([r["label"] for r in rows], "stored labels")
        snapshots = {
            row["loop"]: store.snapshot_path(row["loop"])
            for row in store.loops()
            if row["phase"] == "inferred" and store.snapshot_path(row["loop"]).exists()
        }
        if url is None:
            for loop in sorted(snapshots):
                engine.ingest(Snapshot.from_parquet(snapshots[loop]), loop=loop)
        else:
            engine.sync(snapshots)
        self = cls.__new__(cls)
        self._attach(store, engine, learner, labeler, review)
        self.cluster = cluster
        state = store.get_meta("strategy_state")
        load_state = getattr(engine.strategy, "load_state_dict", None)
        if state is not None and callable(load_state):
            load_state(state)
        if self._monitor is not None:  # the monitor is a deterministic function of the stored loops
            for loop in sorted(snapshots):
                self._watch(loop, Snapshot.from_parquet(snapshots[loop]))
        for path in sorted((store.directory / "dynamics").glob("train-*.npz")):  # training dynamics, in loop order
            with np.load(path, allow_pickle=False) as data:
                self._replay_dynamics(int(path.stem.split("-")[1]), {k: data[k] for k in data.files})
        for loop, values in sorted(self.metrics().items()):  # held-out rewards (kept per loop: replays overwrite)
            if "accuracy" in values and hasattr(engine, "observe_holdout"):
                engine.observe_holdout(float(values["accuracy"]), loop=loop)
        return self

    # ---- inspection ------------------------------------------------------------------------------
    @property
    def n_labeled(self) -> int:
        return int(self.engine.pool.mask(RecordState.LABELED).sum())

    @property
    def n_pending(self) -> int:
        return int(self.engine.pool.mask(RecordState.SELECTED).sum())

    def metrics(self) -> dict[int, dict[str, float]]:
        return self.store.values("metrics")

    def compute(self) -> dict[int, dict[str, float]]:
        """Per loop: train/infer/select CPU s, records trained/inferred, records_unlabeled, n_labeled."""
        return self.store.values("compute")

    def compute_savings(self) -> dict[str, Any]:
        """Compute used vs the estimated from-scratch baseline, per loop and in total
        (:func:`alloop.compute.campaign_savings`; ``["saved"]["cpu_x"]`` is "× less CPU")."""
        from alloop.compute import campaign_savings

        return campaign_savings(self.compute(), self.metrics())

    def loops(self) -> list[dict[str, Any]]:
        return self.store.loops()

    def labeled(self) -> tuple[np.ndarray, np.ndarray]:
        """Labeled ids (pool order) and their class labels."""
        idx = self.engine.pool.indices(RecordState.LABELED)
        classes = self.config["classes"]
        y = np.asarray([classes[p] for p in self.engine.labels[idx]], dtype=object)
        if all(isinstance(c, int) for c in classes):
            y = y.astype(np.int64)
        return self.engine.pool.ids_at(idx), y

    def stop_reason(self) -> str | None:
        """Why the campaign is finished, or None while it can go on."""
        last = self.store.last_loop()
        if last is None or last["phase"] != "inferred":
            return None
        loop = int(last["loop"])
        budget = self.config["budget"]
        spent = self.n_labeled + self.n_pending
        if budget is not None and spent >= budget:
            return "budget"
        if self.config["max_loops"] is not None and loop >= self.config["max_loops"]:
            return "max_loops"
        target = self.config["target"]
        if target:
            m = self.metrics().get(loop, {})
            if all(name in m and m[name] >= v for name, v in target.items()):
                return "target"
        if not self.engine.pool.mask(RecordState.UNLABELED).any():
            return "pool_exhausted"
        if self._monitor is not None:
            fired = [name for name in self.config["stop_when"] if name in self._monitor.fired]
            if fired:
                return f"stop:{fired[0]}"
        return None

    def _watch(self, loop: int, snap: Snapshot) -> None:
        """Feed the stopping monitor the predictions on records still unlabeled at ``loop``."""
        if self._monitor is None:
            return
        labeled_by_then = {
            r["idx"] for r in self.store.labels() if r["loop"] <= loop
        }  # records labeled in this loop or before
        idx = self.engine.pool.index_of(snap.ids)
        keep = np.array([int(i) not in labeled_by_then for i in idx.tolist()], dtype=bool)
        self._monitor.update(
            loop,
            ids=snap.ids[keep],
            probs=snap.probs[keep],
            metrics=self.metrics().get(loop),
            n_labeled=float(len(labeled_by_then)),
        )

    # ---- the state machine ------------------------------------------------------------------------
    def step(self) -> StepResult:
        """Advance one phase if possible; never blocks."""
        last = self.store.last_loop()
        if last is None:
            return self._select(0)
        loop, phase = int(last["loop"]), last["phase"]
        if phase == "review":
            return self._apply_review(loop)
        if phase == "selected":
            return self._collect_labels(loop, last)
        if phase == "labeled":
            return self._train(loop)
        if phase == "trained":
            return self._infer(loop)
        reason = self.stop_reason()
        if reason is not None:
            return StepResult("done", loop, detail=reason)
        return self._select(loop + 1)

    def run(
        self,
        *,
        progress: Callable[[LoopReport], None] | None = None,
        poll_interval: float = 0.05,
        max_wait: float | None = None,
    ) -> CampaignResult:
        """Step until done (or blocked on a review file, or ``max_wait`` seconds without progress)."""
        reports: list[LoopReport] = []
        waited_since: float | None = None
        while True:
            res = self.step()
            if res.action == "done":
                return CampaignResult(res.detail, self.n_labeled, reports)
            if res.action == "review" and res.blocked:
                return CampaignResult("review", self.n_labeled, reports)
            if res.action == "infer":
                report = self.loop_report(res.loop)
                reports.append(report)
                if progress is not None:
                    progress(report)
            if res.blocked:
                now = time.monotonic()
                waited_since = waited_since or now
                if max_wait is not None and now - waited_since > max_wait:
                    return CampaignResult("waiting", self.n_labeled, reports)
                time.sleep(poll_interval)
            else:
                waited_since = None

    def loop_report(self, loop: int) -> LoopReport:
        row = next(r for r in self.store.loops() if r["loop"] == loop)
        return LoopReport(
            loop=loop,
            n_labeled=self.n_labeled,
            strategy=row["strategy"],
            metrics=self.metrics().get(loop, {}),
            compute=self.compute().get(loop, {}),
            seconds=float(row["updated_at"] - row["started_at"]),
            hand_edited=bool(row["hand_edited"]),
        )

    # ---- SELECT ----------------------------------------------------------------------------------
    def _propose(self, loop: int) -> Selection:
        cfg = self.config
        if loop == 0:
            unl = self.engine.pool.ids(RecordState.UNLABELED)
            if cfg["initial_ids"] is not None:
                ids = as_id_array(cfg["initial_ids"], "initial_ids")
                reason = "initial set given by the user"
            else:
                size = (
                    min(cfg["initial"], unl.size)
                    if cfg["budget"] is None
                    else min(cfg["initial"], cfg["budget"], unl.size)
                )
                ids = np.random.default_rng(cfg["seed"]).choice(unl, size=size, replace=False)
                reason = f"initial set: {size} records drawn uniformly at random (seed {cfg['seed']})"
            return Selection(ids=ids, scores=np.full(ids.size, np.nan), strategy="initial", reason=reason, loop=0)
        k = cfg["batch_size"]
        if cfg["budget"] is not None:
            k = min(k, cfg["budget"] - self.n_labeled - self.n_pending)
        t0 = time.process_time()
        sel = self._recommend_on_cluster(k, loop)
        if sel is None:
            sel = self.engine.recommend(k, loop=loop)
        self._select_cpu = time.process_time() - t0
        return sel

    def _recommend_on_cluster(self, k: int, loop: int) -> Selection | None:
        """With a Dask cluster (``cluster=`` or ALLOOP_DASK_SCHEDULER), rank the stored snapshot there; None
        when the engine must do it (no cluster, a strategy that is not per-record, or a snapshot that does not
        cover exactly the current candidates). The result equals the engine's (tested)."""
        if getattr(self, "cluster", None) is None and not os.environ.get("ALLOOP_DASK_SCHEDULER"):
            return None
        path = self.store.snapshot_path(loop - 1)
        if not path.exists():
            return None
        from alloop.scale import select_from_snapshot

        cfg = self.config
        hooked = select_from_snapshot(
            path,
            self.engine.pool.ids(RecordState.UNLABELED),
            cfg["strategy"],
            k,
            cluster=self.cluster,
            seed=cfg["seed"],
            loop=loop,
        )
        if hooked is None:
            return None
        reason = f"{hooked.strategy}: top {len(hooked.ids)} ranked on Dask over the loop-{loop - 1} snapshot"
        return Selection(ids=hooked.ids, scores=hooked.scores, strategy=hooked.strategy, reason=reason, loop=loop)

    def _select(self, loop: int) -> StepResult:
        self._select_cpu = 0.0
        previous = self.store.last_loop()
        selected_by = None if previous is None else previous.get("model_version")
        proposal = self._propose(loop)
        if self.config["review_mode"] == REVIEW_FILE and loop > 0:
            path = self._review_path(loop)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".csv.tmp")
            with open(tmp, "w", newline="") as fh:
                w = csv.writer(fh)
                w.writerow(["id", "score", "rank", "reason"])
                for r, (rid, s) in enumerate(zip(proposal.ids.tolist(), proposal.scores.tolist(), strict=True)):
                    w.writerow([rid, repr(float(s)), r + 1, proposal.reason if r == 0 else ""])
            os.replace(tmp, path)
            with self.store.transaction() as conn:
                self.store.insert_loop(
                    conn, loop, "review", proposal.strategy, proposal.reason, selected_by=selected_by
                )
                self.store.insert_selection(conn, loop, self.engine.pool.index_of(proposal.ids), proposal.scores)
            return StepResult("review", loop, blocked=True, detail=str(path))
        ids, edited = proposal.ids, False
        if self.review_fn is not None and loop > 0:
            chosen = as_id_array(self.review_fn(proposal), "review(...) result")
            self._validate_batch(chosen, "review(...) result")
            edited = chosen.tolist() != proposal.ids.tolist()
            ids = chosen
        scores = self._scores_for(ids, proposal)
        self._commit_selection(
            loop, ids, scores, proposal.strategy, proposal.reason, edited, new_row=True, selected_by=selected_by
        )
        return StepResult("select", loop, detail=f"{ids.size} records")

    def _scores_for(self, ids: np.ndarray, proposal: Selection) -> np.ndarray:
        by_id = dict(zip(proposal.ids.tolist(), proposal.scores.tolist(), strict=True))
        return np.array([by_id.get(i, np.nan) for i in ids.tolist()], dtype=np.float64)

    def _validate_batch(self, ids: np.ndarray, field: str) -> None:
        """All problems at once: unknown, not unlabeled, duplicated. Nothing is applied on failure."""
        problems = []
        values = ids.tolist()
        seen: set[Any] = set()
        for rid in values:
            if rid in seen:
                problems.append(f"{rid!r} is listed twice")
            seen.add(rid)
            if rid not in self.engine.pool:
                problems.append(f"{rid!r} is not in the pool")
                continue
            state = RecordState(int(self.engine.pool.state_of([rid])[0]))
            if state != RecordState.UNLABELED:
                problems.append(f"{rid!r} is {state.name.lower()}, not unlabeled")
        if not values:
            problems.append("the batch is empty")
        if problems:
            raise DataError(
                f"The edited batch in {field} cannot be used: " + "; ".join(problems) + ". Fix it and retry."
            )

    def _commit_selection(
        self,
        loop: int,
        ids: np.ndarray,
        scores: np.ndarray,
        strategy: str,
        reason: str,
        edited: bool,
        *,
        new_row: bool,
        selected_by: str | None = None,
    ) -> None:
        idx = self.engine.pool.index_of(ids)
        self.engine.pool.check_state(idx, RecordState.UNLABELED)
        with self.store.transaction() as conn:
            if new_row:
                self.store.insert_loop(
                    conn, loop, "selected", strategy, reason, hand_edited=edited, selected_by=selected_by
                )
            else:
                self.store.update_loop(conn, loop, phase="selected", hand_edited=edited)
                from alloop.store import _schema as T

                conn.execute(T.selections.delete().where(T.selections.c.loop == loop))
            self.store.insert_selection(conn, loop, idx, scores)
            self.store.set_states(conn, idx, RecordState.SELECTED)
            self.store.insert_values(conn, "compute", loop, {"select_cpu_s": getattr(self, "_select_cpu", 0.0)})
            state_dict = getattr(self.engine.strategy, "state_dict", None)
            if callable(state_dict):  # learning strategies (auto, portfolio) carry state across loops
                self.store.set_meta(conn, "strategy_state", state_dict())
        self.engine.mark_selected(ids)
        self._loop_started = time.perf_counter()
        _crash_point("select", loop)
        self.labeler.request(ids)
        self._requested = True

    def _review_path(self, loop: int) -> Path:
        return self.directory / "review" / f"loop-{loop:04d}.csv"

    def _apply_review(self, loop: int) -> StepResult:
        path = self._review_path(loop)
        if not path.exists():
            raise StateError(
                f"Loop {loop} waits for review, but {str(path)!r} is missing; restore it or delete the loop."
            )
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or "id" not in reader.fieldnames:
                raise DataError(f"{str(path)!r} must have an 'id' column (as written by alloop).")
            raw = [row["id"].strip() for row in reader if row.get("id", "").strip()]
        kind = self.engine.pool.id_kind
        try:
            ids = as_id_array([int(v) for v in raw] if kind == "int" else raw, str(path))
        except ValueError:
            bad = next(v for v in raw if not v.lstrip("-").isdigit())
            raise DataError(f"{str(path)!r}: id {bad!r} is not an integer id; this pool uses int ids.") from None
        self._validate_batch(ids, repr(str(path)))
        proposed_idx = self.store.selections().get(loop, [])
        edited = self.engine.pool.index_of(ids).tolist() != proposed_idx
        row = self.store.last_loop() or {}
        proposal = Selection(
            ids=self.engine.pool.ids_at(np.asarray(proposed_idx, dtype=np.int64)),
            scores=np.full(len(proposed_idx), np.nan),
            strategy=row.get("strategy", ""),
            reason=row.get("reason", ""),
        )
        scores = self._scores_for(ids, proposal)
        self._commit_selection(loop, ids, scores, proposal.strategy, proposal.reason, edited, new_row=False)
        return StepResult("select", loop, detail=f"{ids.size} records (reviewed{', edited' if edited else ''})")

    # ---- LABEL -----------------------------------------------------------------------------------
    def _collect_labels(self, loop: int, row: Mapping[str, Any]) -> StepResult:
        pending = self.engine.pool.ids(RecordState.SELECTED)
        if not self._requested and pending.size:
            self.labeler.request(pending)
            self._requested = True
        events = self.labeler.poll()
        if events:
            self.add_labels(events, loop=loop)
        sel_idx = np.asarray(self.store.selections().get(loop, []), dtype=np.int64)
        states = self.engine.pool._state[sel_idx]
        remaining = int((states == int(RecordState.SELECTED)).sum())
        got = int((states == int(RecordState.LABELED)).sum())
        timeout = self.config["label_timeout"]
        timed_out = timeout is not None and time.time() - float(row["started_at"]) >= timeout and got > 0
        if remaining == 0 or timed_out:
            with self.store.transaction() as conn:
                self.store.update_loop(conn, loop, phase="labeled")
            return StepResult(
                "label", loop, detail=f"{got} labeled" + (f", {remaining} still pending" if remaining else "")
            )
        return StepResult("wait", loop, blocked=not events, detail=f"{remaining} labels outstanding")

    def add_labels(self, events: Sequence[LabelEvent], *, loop: int | None = None) -> int:
        """Record labels that arrived (one transaction). Labels for unknown or removed records are ignored."""
        classes = self.config["classes"]
        pool = self.engine.pool
        fresh: dict[Any, LabelEvent] = {}
        for ev in events:
            if ev.id in pool and RecordState(int(pool.state_of([ev.id])[0])) in (
                RecordState.SELECTED,
                RecordState.UNLABELED,
            ):
                label = ev.label.item() if isinstance(ev.label, np.generic) else ev.label
                if label not in classes:
                    raise LabelError(
                        f"The label {label!r} for record {ev.id!r} is not one of the classes {classes!r}; "
                        "fix the labeler or declare the class. No label of this batch was stored."
                    )
                fresh[ev.id] = ev
        if not fresh:
            return 0
        last = self.store.last_loop()
        loop = int(last["loop"]) if loop is None and last is not None else (loop or 0)
        ids = as_id_array(list(fresh), "labels")
        idx = pool.index_of(ids)
        model_version = None if last is None else last.get("selected_by")
        rows = [
            {
                "idx": int(i),
                "label": ev.label.item() if isinstance(ev.label, np.generic) else ev.label,
                "source": ev.source,
                "annotator": ev.annotator,
                "posterior": ev.posterior,
                "loop": loop,
                "model_version": model_version,
            }
            for i, ev in zip(idx.tolist(), fresh.values(), strict=True)
        ]
        with self.store.transaction() as conn:
            self.store.insert_labels(conn, rows)
            self.store.set_states(conn, idx, RecordState.LABELED)
        self.engine.observe_labels(ids, [r["label"] for r in rows])
        _crash_point("label", loop)
        return len(rows)

    # ---- TRAIN -----------------------------------------------------------------------------------
    def _fit(self, warm: bool) -> TrainReport:
        ids, y = self.labeled()
        report = self.learner.train(ids, y, warm_start=warm)
        self._model_ready = True
        return report if isinstance(report, TrainReport) else TrainReport(n_records=int(ids.size))

    def _train(self, loop: int) -> StepResult:
        t0 = time.process_time()
        report = self._fit(warm=self._model_ready and loop > 0)
        train_cpu = time.process_time() - t0
        metrics = {k: float(v) for k, v in self.learner.evaluate().items()}
        metrics["n_labeled"] = float(self.n_labeled)
        with self.store.transaction() as conn:
            self.store.update_loop(conn, loop, phase="trained", model_version=f"m{loop:04d}", train_mode=report.mode)
            self.store.insert_values(conn, "metrics", loop, metrics)
            comp = self.store.values("compute").get(loop, {})
            comp.update(
                {
                    "train_cpu_s": train_cpu,
                    "records_trained": float(report.n_records),
                    "train_full": float(report.mode == "full"),
                }
            )
            self.store.insert_values(conn, "compute", loop, comp)
        self._share_training(loop, report, metrics)
        _crash_point("train", loop)
        return StepResult("train", loop, detail=f"{report.mode} on {report.n_records} records")

    def _dynamics_path(self, loop: int) -> Path:
        return self.directory / "dynamics" / f"train-{loop:04d}.npz"

    def _share_training(self, loop: int, report: TrainReport, metrics: Mapping[str, float]) -> None:
        """Training dynamics (``report.extra["dynamics"]``: ids, p_true, optional correct) go to History, kept in
        ``dynamics/train-NNNN.npz`` for resume; the held-out accuracy goes to the engine's learning strategies."""
        dyn = report.extra.get("dynamics") if isinstance(report.extra, Mapping) else None
        tp = None if not dyn else dyn.get("p_true", dyn.get("true_prob"))
        if dyn and tp is not None and hasattr(self.engine, "observe_training_dynamics"):
            idx = self.engine.pool.index_of(as_id_array(dyn["ids"], "dynamics ids"))
            arrays: dict[str, Any] = {"idx": idx, "p_true": np.asarray(tp, dtype=np.float32)}
            if dyn.get("correct") is not None:
                arrays["correct"] = np.asarray(dyn["correct"], dtype=bool)
            path = self._dynamics_path(loop)
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path.with_suffix(".tmp"), "wb") as fh:
                np.savez(fh, **arrays)
            os.replace(path.with_suffix(".tmp"), path)
            self._replay_dynamics(loop, arrays)
        if "accuracy" in metrics and hasattr(self.engine, "observe_holdout"):
            self.engine.observe_holdout(float(metrics["accuracy"]), loop=loop)

    def _replay_dynamics(self, loop: int, arrays: Mapping[str, np.ndarray]) -> None:
        ids = self.engine.pool.ids_at(np.asarray(arrays["idx"], dtype=np.int64))
        self.engine.observe_training_dynamics(ids, arrays["p_true"], correct=arrays.get("correct"), loop=loop)

    # ---- INFER -----------------------------------------------------------------------------------
    def _infer(self, loop: int) -> StepResult:
        if not self._model_ready:  # resumed after a crash: the model lived in the killed process
            self._fit(warm=False)
        pool = self.engine.pool
        if loop == 0:  # the initial set too, once, so diversity strategies know where the labeled records lie
            ids = pool.ids_at(np.flatnonzero(pool.mask(RecordState.UNLABELED) | pool.mask(RecordState.LABELED)))
            n_unlabeled = ids.size
        else:
            idx = pool.indices(RecordState.UNLABELED)
            n_unlabeled = idx.size
            if self._inference_policy is not None and idx.size:
                from alloop.compute import choose_inference

                idx = choose_inference(self.engine.history, idx, loop, self._inference_policy)
            ids = pool.ids_at(idx)
        t0 = time.process_time()
        snap = None
        if ids.size:
            snap = self.learner.infer(ids)
            if not isinstance(snap, Snapshot):
                raise DataError(f"learner.infer returned {type(snap).__name__}; it must return a Snapshot.")
            if snap.n_records != ids.size or set(snap.ids.tolist()) != set(ids.tolist()):
                raise DataError(
                    f"learner.infer was asked for {ids.size} ids and returned {snap.n_records} others or fewer; "
                    "return exactly one row per requested id."
                )
            snap = Snapshot(
                ids=snap.ids,
                probs=snap.probs,
                embeddings=snap.embeddings,
                samples=snap.samples,
                dynamics=snap.dynamics,
                classes=snap.classes,
                loop=loop,
                task=snap.task,
            ).aligned_to(self.config["classes"])
            snap.to_parquet(self.store.snapshot_path(loop))
        infer_cpu = time.process_time() - t0
        with self.store.transaction() as conn:
            self.store.update_loop(conn, loop, phase="inferred")
            comp = self.store.values("compute").get(loop, {})
            comp.update(
                {
                    "infer_cpu_s": infer_cpu,
                    "records_inferred": float(ids.size),
                    "records_unlabeled": float(n_unlabeled),  # what a from-scratch loop infers
                    "n_labeled": float(self.n_labeled),
                }
            )
            self.store.insert_values(conn, "compute", loop, comp)
        if snap is not None:
            self.engine.ingest(snap, loop=loop)
            self._watch(loop, snap)
        if hasattr(self.engine, "report_loop"):  # remote: this loop's sources, classes, compute for the dashboard
            from alloop.loop._remote import report_dashboard

            report_dashboard(self.engine, self.store, loop, snap)
        _crash_point("infer", loop)
        return StepResult("infer", loop, detail=f"{ids.size} records")

    # ---- pool changes ----------------------------------------------------------------------------
    def add_records(self, ids: Any) -> None:
        """Add records to the pool after the start; they get metadata at the next INFER."""
        arr = as_id_array(ids, "ids")
        start = self.engine.pool.capacity
        self.engine.add_records(arr)  # validates (duplicates, id kind) before anything is stored
        last = self.store.last_loop()
        try:
            with self.store.transaction() as conn:
                self.store.insert_records(
                    conn,
                    np.arange(start, start + arr.size),
                    arr,
                    RecordState.UNLABELED,
                    int(last["loop"]) if last else 0,
                )
        except Exception:
            self.engine.pool.remove(arr)
            raise

    def remove_records(self, ids: Any) -> None:
        """Delete records and everything about them: labels, selections, stored metadata."""
        arr = as_id_array(ids, "ids")
        idx = self.engine.pool.index_of(arr)
        drop = set(arr.tolist())
        for path in sorted((self.directory / "snapshots").glob("loop-*.parquet")):
            snap = Snapshot.from_parquet(path)
            keep = np.array([i not in drop for i in snap.ids.tolist()], dtype=bool)
            if not keep.all():
                snap.subset(keep).to_parquet(path)
        for path in sorted((self.directory / "review").glob("loop-*.csv")):
            lines = path.read_text().splitlines()
            kept = [ln for ln in lines if ln.split(",", 1)[0] not in {str(d) for d in drop}]
            path.write_text("\n".join(kept) + "\n")
        with self.store.transaction() as conn:
            self.store.tombstone(conn, idx)
        self.engine.remove_records(arr)
        cancel = getattr(self.labeler, "cancel", None)
        if cancel is not None:
            cancel(arr)
        forget = getattr(self.learner, "forget", None)
        if forget is not None:
            forget(arr)

    def close(self) -> None:
        """Release the database and, for a remote engine, its HTTP connections."""
        self.store.close()
        closer = getattr(self.engine, "close", None)
        if closer is not None:
            closer()
