"""Task queue: tasks, leases, annotations, bad input, concurrency (threads and processes on one SQLite file)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from alloop.errors import ConfigError, DuplicateRecordError, LabelError, StateError, UnknownRecordError
from alloop.labeling.allocation import GreedyAllocator
from alloop.labeling.annotators import AnnotatorStatus
from alloop.labeling.tasks import TaskQueue
from alloop.store import SCHEMA_HEAD, CampaignStore
from alloop.store import _schema as T


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def make_queue(tmp_path: Path, **kw) -> tuple[TaskQueue, Clock]:
    clock = Clock()
    q = TaskQueue(CampaignStore(tmp_path / "camp", create=True), clock=clock, **kw)
    return q, clock


def snapshot(q: TaskQueue) -> tuple:
    with q.store.transaction() as conn:
        return tuple(
            tuple(tuple(r) for r in conn.execute(sa.select(t)).all())
            for t in (T.tasks, T.task_slots, T.task_annotations)
        )


def test_schema_head_and_tables(tmp_path: Path) -> None:
    store = CampaignStore(tmp_path / "c", create=True)
    assert store.schema_version() == SCHEMA_HEAD == "0002"
    names = set(sa.inspect(store.engine).get_table_names())
    assert {"tasks", "task_slots", "annotations", "annotators", "labels"} <= names


def test_lease_submit_complete(tmp_path: Path) -> None:
    q, clock = make_queue(tmp_path, lease_seconds=60)
    for a in ("ann1", "ann2"):
        q.annotators.register(a)
    ids = q.add_tasks([10, 11], classes=["cat", "dog"], required=2, priority=[0.0, 5.0])
    assert len(ids) == 2
    assert q.add_tasks([10], classes=["cat", "dog"]) == []  # idempotent
    first = q.lease("ann1")
    assert first is not None and first.rid == 11  # higher priority first
    q.submit(first.task_id, "ann1", "dog", seconds=3.0)
    again = q.lease("ann1")
    assert again is not None and again.rid == 10  # never the same record twice to the same annotator
    second = q.lease("ann2")
    assert second is not None and second.rid == 11
    q.submit(second.task_id, "ann2", "cat", seconds=5.0)
    done = q.completed()
    assert [(t["rid"], sorted(n["annotator"] for n in notes)) for t, notes in done] == [(11, ["ann1", "ann2"])]
    q.mark_delivered({done[0][0]["task_id"]: ("dog", 0.5)})
    assert q.completed() == []
    assert q.pending() == 1


@pytest.mark.parametrize("case", ["unknown task", "not leased", "bad label", "duplicate", "leased to other"])
def test_bad_submissions_change_nothing(tmp_path: Path, case: str) -> None:
    q, clock = make_queue(tmp_path)
    for a in ("a", "b"):
        q.annotators.register(a)
    (tid,) = q.add_tasks(["r"], classes=[0, 1], required=2, priority=1.0)
    q.add_tasks(["s"], classes=[0, 1], required=1)
    lease = q.lease("a")
    assert lease is not None and lease.task_id == tid
    if case == "duplicate":
        q.submit(tid, "a", 1)
    before = snapshot(q)
    expected, args = {
        "unknown task": (UnknownRecordError, (999, "a", 1)),
        "not leased": (StateError, (tid + 1, "a", 1)),
        "bad label": (LabelError, (tid, "a", "cat")),
        "duplicate": (DuplicateRecordError, (tid, "a", 0)),
        "leased to other": (StateError, (tid, "b", 0)),
    }[case]
    with pytest.raises(expected) as info:
        q.submit(*args)
    assert str(info.value)  # a message, naming the problem
    assert snapshot(q) == before


def test_expired_lease_returns_task(tmp_path: Path) -> None:
    q, clock = make_queue(tmp_path, lease_seconds=30)
    for a in ("gone", "here"):
        q.annotators.register(a)
    (tid,) = q.add_tasks(["x"], classes=["a", "b"])
    assert q.lease("gone").task_id == tid
    assert q.lease("here") is None  # still leased
    clock.t += 31
    lease = q.lease("here")
    assert lease is not None and lease.task_id == tid
    with pytest.raises(StateError, match="not leased"):
        q.submit(tid, "gone", "a")  # lost their lease to someone else
    q.submit(tid, "here", "b")
    assert q.tasks()[0]["state"] == "done"


def test_late_submission_honoured_when_nobody_took_it(tmp_path: Path) -> None:
    q, clock = make_queue(tmp_path, lease_seconds=30)
    q.annotators.register("slow")
    (tid,) = q.add_tasks(["x"], classes=["a", "b"])
    q.lease("slow")
    clock.t += 100
    q.submit(tid, "slow", "a")
    assert q.tasks()[0]["state"] == "done"


def test_cancel_and_extend(tmp_path: Path) -> None:
    q, clock = make_queue(tmp_path)
    for a in ("a", "b"):
        q.annotators.register(a)
    t1, t2 = q.add_tasks(["p", "q"], classes=[0, 1])
    assert q.cancel(["p"]) == 1
    lease = q.lease("a")
    assert lease.task_id == t2
    q.submit(t2, "a", 1)
    q.extend(t2, 1)  # dynamic overlap: one more judgement
    assert q.tasks(task_id=t2)[0]["state"] == "open"
    assert q.lease("a") is None  # a already judged it
    assert q.lease("b").task_id == t2
    with pytest.raises(StateError):
        q.extend(t1)


def test_gold_questions_are_mixed_in(tmp_path: Path) -> None:
    from alloop.labeling.allocation import Allocator

    q, clock = make_queue(tmp_path, allocator=Allocator(gold_rate=0.5, speed_aware=False))
    q.annotators.register("a", capacity=10)
    q.add_gold({"g1": "x", "g2": "y"}, classes=["x", "y"])
    q.add_tasks([f"r{i}" for i in range(6)], classes=["x", "y"])
    kinds = []
    for _ in range(6):
        lease = q.lease("a")
        kinds.append(lease.gold)
        q.submit(lease.task_id, "a", "x", seconds=2.0)
    assert kinds.count(True) == 2  # the two gold questions, each once
    prof = q.annotators.profile("a", classes=["x", "y"])
    assert prof.gold_judgements == 2 and prof.gold_accuracy == 0.5
    assert prof.gold_confusion.tolist() == [[1, 0], [1, 0]]


def test_annotator_status_and_quality(tmp_path: Path) -> None:
    q, clock = make_queue(tmp_path, lease_seconds=100)
    q.annotators.register("a", capacity=1)
    q.annotators.register("b", hours=[[0, 0.001]])
    assert q.annotators.profile("a").status is AnnotatorStatus.OFFLINE  # no heartbeat yet
    q.annotators.heartbeat("a")
    assert q.annotators.profile("a").status is AnnotatorStatus.IDLE
    (tid,) = q.add_tasks(["r"], classes=["x", "y"])
    q.lease("a")
    assert q.annotators.profile("a").status is AnnotatorStatus.BUSY
    q.submit(tid, "a", "y", seconds=7.0)
    q.mark_delivered({tid: ("x", 0.9)})
    prof = q.annotators.profile("a", classes=["x", "y"])
    assert prof.status is AnnotatorStatus.ONLINE and prof.seconds == 7.0
    assert prof.consensus_confusion.tolist() == [[0, 1], [0, 0]] and prof.agreement == 0.0
    q.annotators.heartbeat("b")
    assert q.annotators.profile("b").status is AnnotatorStatus.OFFLINE  # outside working hours
    clock.t += 10_000
    assert q.annotators.profile("a").status is AnnotatorStatus.OFFLINE  # heartbeat too old
    with pytest.raises(UnknownRecordError):
        q.annotators.heartbeat("nobody")
    with pytest.raises(ConfigError, match="skills"):
        q.annotators.register("c", skills="text")


def test_quota_and_skills(tmp_path: Path) -> None:
    q, clock = make_queue(tmp_path, allocator=GreedyAllocator())
    q.annotators.register("q", quota=2, capacity=10)
    q.annotators.register("img", skills=["images"], capacity=10)
    q.add_tasks([1, 2, 3], classes=[0, 1], batch=0)
    assert q.lease("img") is None  # no task of its label set
    got = [q.lease("q") for _ in range(3)]
    assert [g is not None for g in got] == [True, True, False]


def test_threads_never_share_a_lease(tmp_path: Path) -> None:
    store = CampaignStore(tmp_path / "camp", create=True)
    setup = TaskQueue(store)
    names = [f"t{i}" for i in range(4)]
    for n in names:
        setup.annotators.register(n, capacity=1000)
    setup.add_tasks(list(range(30)), classes=[0, 1], required=2)
    got: dict[str, list[int]] = {n: [] for n in names}
    errors: list[BaseException] = []

    def worker(name: str) -> None:
        q = TaskQueue(store, lease_seconds=3600)
        try:
            while (lease := q.lease(name)) is not None:
                got[name].append(lease.task_id * 10 + lease.slot)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    slots = [s for v in got.values() for s in v]
    assert len(slots) == len(set(slots)) == 60  # every slot leased exactly once
    for v in got.values():
        tasks = [s // 10 for s in v]
        assert len(tasks) == len(set(tasks))  # never one record twice to one annotator


WORKER = textwrap.dedent(
    """
    import json, os, sys
    from alloop.labeling.tasks import TaskQueue
    from alloop.store import CampaignStore
    name, directory, mode = sys.argv[1], sys.argv[2], sys.argv[3]
    q = TaskQueue(CampaignStore(directory), lease_seconds=3600 if mode == "hold" else 1)
    got = []
    while (lease := q.lease(name)) is not None:
        got.append([lease.task_id, lease.slot])
        if mode == "crash":
            print(json.dumps(got), flush=True)
            os._exit(1)  # dies between lease and submission
    print(json.dumps(got))
    """
)


def test_processes_never_share_a_lease(tmp_path: Path) -> None:
    directory = tmp_path / "camp"
    q = TaskQueue(CampaignStore(directory, create=True))
    names = [f"p{i}" for i in range(3)]
    for n in names:
        q.annotators.register(n, capacity=1000)
    q.add_tasks(list(range(24)), classes=[0, 1], required=1)
    procs = [
        subprocess.Popen([sys.executable, "-c", WORKER, n, str(directory), "hold"], stdout=subprocess.PIPE, text=True)
        for n in names
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    slots = [tuple(s) for out in outs for s in json.loads(out)]
    assert len(slots) == len(set(slots)) == 24


def test_crash_between_lease_and_submission_loses_nothing(tmp_path: Path) -> None:
    directory = tmp_path / "camp"
    clock = Clock()
    q = TaskQueue(CampaignStore(directory, create=True), clock=clock, lease_seconds=5)
    q.annotators.register("crasher")
    q.annotators.register("rescuer")
    (tid,) = q.add_tasks(["only"], classes=["a", "b"])
    proc = subprocess.run(
        [sys.executable, "-c", WORKER, "crasher", str(directory), "crash"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1 and json.loads(proc.stdout) == [[tid, 0]]
    import time

    clock.t = time.time() + 2  # the crasher's lease (1 s) has run out
    lease = q.lease("rescuer")
    assert lease is not None and lease.task_id == tid
    q.submit(tid, "rescuer", "a")
    assert q.tasks()[0]["state"] == "done"


def test_add_tasks_validates(tmp_path: Path) -> None:
    q, _ = make_queue(tmp_path)
    with pytest.raises(ConfigError, match="'required'"):
        q.add_tasks([1], classes=[0, 1], required=0)
    with pytest.raises(ConfigError, match="classes"):
        q.add_tasks([1], classes="ab")
    with pytest.raises(DuplicateRecordError):
        q.add_tasks([1, 1], classes=[0, 1])
    with pytest.raises(ConfigError, match="priority"):
        q.add_tasks([1, 2], classes=[0, 1], priority=[1.0])
    assert q.tasks() == []


def test_a_0001_campaign_upgrades_to_0002(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    import alloop.store

    directory = tmp_path / "old"
    directory.mkdir()
    engine = sa.create_engine(f"sqlite:///{directory / 'alloop.db'}")
    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(alloop.store.__file__).parent / "migrations"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    engine.dispose()
    store = CampaignStore(directory)
    assert store.schema_version() == "0002"
    q = TaskQueue(store)
    q.annotators.register("a")
    assert q.add_tasks([1], classes=[0, 1]) == [1]
