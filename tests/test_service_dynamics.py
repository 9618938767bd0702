"""Training dynamics sent to the service survive a restart and a record removal (no HTTP: EngineService itself)."""

from __future__ import annotations

import numpy as np

from alloop import Snapshot
from alloop.engine.service import EngineService, arrow_ipc_bytes


def test_training_dynamics_are_rebuilt_after_a_restart_and_forgotten_on_removal(tmp_path):
    url = f"sqlite:///{tmp_path / 'engine.db'}"
    svc = EngineService(url, tmp_path / "data")
    pid, _ = svc.create_project(name="p", classes=[0, 1])
    ids = np.arange(100, 110)
    svc.add_records(pid, ids)
    rng = np.random.default_rng(0)
    snap = Snapshot(ids=ids, probs=rng.dirichlet(np.ones(2), size=10))
    svc.put_chunk(pid, 0, 0, arrow_ipc_bytes(snap.to_arrow()))
    svc.commit_snapshot(pid, 0, 1)
    svc.observe_labels(pid, ids[:4], [0, 1, 0, 1])
    tp = rng.random((4, 3))
    tp[3] = np.nan  # not trained on: skipped
    correct = tp > 0.5
    import pytest

    from alloop.errors import DataError, UnknownRecordError

    with pytest.raises(DataError, match="'p_true' has shape \\(3, 3\\)"):
        svc.observe_training_dynamics(pid, 0, ids[:4], tp[:3], None)
    with pytest.raises(UnknownRecordError):
        svc.observe_training_dynamics(pid, 0, [999], tp[:1], None)
    assert not list((tmp_path / "data").rglob("dynamics/*"))  # nothing stored for bad input
    assert svc.observe_training_dynamics(pid, 0, ids[:4], tp, correct) == 3
    assert svc.observe_training_dynamics(pid, 0, ids[:4], tp, correct) == 0  # a retried loop is not folded twice
    svc.observe_training_dynamics(pid, 1, ids[:2], rng.random((2, 3)), None)
    before = svc.engine(pid).history
    want = {k: getattr(before, k)[:10].copy() for k in ("cart_conf", "cart_var", "forgetting", "dyn_passes")}
    assert want["dyn_passes"].tolist() == [2, 2, 1, 0, 0, 0, 0, 0, 0, 0]
    svc.close()

    again = EngineService(url, tmp_path / "data")  # a restarted server: everything from the database and files
    after = again.engine(pid).history
    for k, v in want.items():
        np.testing.assert_array_equal(getattr(after, k)[:10], v, err_msg=k)
    assert again.engine(pid).dynamics_loop == 1

    again.remove_records(pid, ids[:1])
    again.close()
    third = EngineService(url, tmp_path / "data")
    h = third.engine(pid).history
    pos = third.engine(pid).pool.index_of(ids[1:3])
    assert h.dyn_passes[pos].tolist() == [2, 1] and h.dyn_passes.sum() == 3  # the removed record's rows are gone
    third.close()


def test_a_learning_strategy_continues_its_state_after_a_restart(tmp_path):
    """auto's bandit state is kept by the service: a restarted service selects what one that kept running does
    (the bandit algorithm: the default "surprise" rule has no arms' state without embeddings)."""
    rng = np.random.default_rng(1)
    ids = np.arange(200)
    x = rng.normal(size=(200, 2))
    y = (x[:, 0] > 0).astype(int)
    services = [EngineService(f"sqlite:///{tmp_path / f'e{i}.db'}", tmp_path / f"d{i}") for i in range(2)]
    pids = [svc.create_project(name="p", classes=[0, 1], strategy="auto(algorithm='lcb')", seed=3)[0]
            for svc in services]
    picks: list[list[list[int]]] = [[], []]
    for loop in range(4):
        if loop == 2:  # the second service restarts between loops
            services[1].close()
            services[1] = EngineService(f"sqlite:///{tmp_path / 'e1.db'}", tmp_path / "d1")
        for i, (svc, pid) in enumerate(zip(services, pids, strict=True)):
            if loop == 0:
                svc.add_records(pid, ids)
            p1 = 1 / (1 + np.exp(-(x[:, 0] + 0.3 * loop * x[:, 1])))
            snap = Snapshot(ids=ids, probs=np.column_stack([1 - p1, p1]))
            svc.put_chunk(pid, loop, 0, arrow_ipc_bytes(snap.to_arrow()))
            svc.commit_snapshot(pid, loop, 1)
            sel = svc.recommend(pid, 6, loop=loop)
            picks[i].append(sel.ids.tolist())
            svc.observe_labels(pid, sel.ids, y[sel.ids].tolist())
    assert picks[0] == picks[1]

    def learned(state: dict) -> dict:  # all but the measured seconds per arm (wall-clock, differ run to run)
        return {k: learned(v) if isinstance(v, dict) else v for k, v in state.items() if k != "seconds"}

    state = learned(services[1].engine(pids[1]).strategy.state_dict())
    assert state == learned(services[0].engine(pids[0]).strategy.state_dict())
    assert state["arms"]["margin"]["n"] > 0  # rewards were booked: not a fresh bandit
    for svc in services:
        svc.close()
