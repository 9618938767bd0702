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
