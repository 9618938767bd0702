"""Training dynamics from TRAIN into History through a real Campaign (embedded and remote), kept on resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import SGDClassifier

from alloop import Snapshot
from alloop.labeling import SimulatedOracle
from alloop.loop import Campaign, SharingPolicy, TrainReport

X, Y = make_classification(
    n_samples=160, n_features=4, n_informative=3, n_redundant=0, flip_y=0.2, class_sep=0.6, random_state=3
)
IDS = np.arange(120)
TEST = np.arange(120, 160)
EPOCHS = 4


class EpochLearner:
    """Logistic regression by SGD, one partial_fit per epoch: reports the real per-epoch p(true label)."""

    def __init__(self) -> None:
        self.model: Any = None

    def train(self, ids: np.ndarray, y: np.ndarray, *, warm_start: bool) -> TrainReport:
        self.model = SGDClassifier(loss="log_loss", random_state=0, learning_rate="constant", eta0=2.0)
        y = np.asarray(y)
        p_true = np.empty((ids.size, EPOCHS))
        for e in range(EPOCHS):
            self.model.partial_fit(X[ids], y, classes=[0, 1])
            p_true[:, e] = self.model.predict_proba(X[ids])[np.arange(ids.size), y]
        return TrainReport(n_records=int(ids.size), epochs=EPOCHS, extra={"dynamics": {"ids": ids, "p_true": p_true}})

    def infer(self, ids: np.ndarray) -> Snapshot:
        return Snapshot(ids=ids, probs=self.model.predict_proba(X[ids]), embeddings=X[ids].astype(np.float32))

    def evaluate(self) -> dict[str, float]:
        return {"accuracy": float(self.model.score(X[TEST], Y[TEST]))}


def _campaign(path: Path, strategy: str, **kw: Any) -> Campaign:
    return Campaign(
        path,
        learner=EpochLearner(),
        labeler=SimulatedOracle(truth=dict(zip(IDS.tolist(), Y[IDS].tolist(), strict=True))),
        pool=IDS,
        classes=[0, 1],
        strategy=strategy,
        initial=10,
        batch_size=5,
        max_loops=3,
        seed=1,
        **kw,
    )


def _dynamics(camp: Campaign) -> dict[str, np.ndarray]:
    h = camp.engine.history
    return {"conf": h.cart_conf.copy(), "var": h.cart_var.copy(), "fe": h.forgetting.copy(), "n": h.dyn_passes.copy()}


@pytest.mark.parametrize("strategy", ["forgetting-weighted", "cartography-ambiguous"])
def test_embedded_campaign_feeds_dynamics_to_history_and_resume_keeps_them(tmp_path, strategy):
    camp = _campaign(tmp_path / "c", strategy)
    camp.run()
    labeled = camp.engine.pool.index_of(camp.labeled()[0])
    dyn = _dynamics(camp)
    # one TRAIN pass per loop (initial + 3): the initial records have 4, the last batch 1
    assert dyn["n"][labeled].max() == 4 and dyn["n"][labeled].min() == 1
    assert np.all(dyn["conf"][labeled] > 0) and np.any(dyn["var"][labeled] > 0) and dyn["fe"].sum() > 0
    assert len(list((tmp_path / "c" / "dynamics").glob("train-*.npz"))) == 4
    # the strategies read the labeled neighbours' dynamics
    feats = camp.engine.history.features(np.setdiff1d(np.arange(IDS.size), labeled))
    assert feats["nbr_known"].min() == 1.0 and feats["nbr_cartography_variability"].max() > 0
    camp.close()
    again = Campaign.resume(tmp_path / "c", learner=EpochLearner(), labeler=camp.labeler)
    for key, value in _dynamics(again).items():
        np.testing.assert_array_equal(value, dyn[key], err_msg=key)
    again.close()


def test_replayed_or_retried_loop_is_folded_once(tmp_path):
    camp = _campaign(tmp_path / "c", "forgetting-weighted")
    camp.run()
    before = _dynamics(camp)
    ids, _ = camp.labeled()
    assert camp.engine.observe_training_dynamics(ids, np.full((ids.size, 2), 0.9), loop=2) == 0
    for key, value in _dynamics(camp).items():
        np.testing.assert_array_equal(value, before[key])
    camp.close()


def test_remote_campaign_sends_dynamics_when_the_policy_shares_them(tmp_path):
    pytest.importorskip("fastapi")
    from tests.server_util import ADMIN, Server, close_clients

    srv = Server(tmp_path / "srv").start()
    try:
        local = _campaign(tmp_path / "local", "forgetting-weighted")
        local.run()
        margin = _campaign(tmp_path / "margin", "margin")
        margin.run()
        assert local.store.selections() != margin.store.selections()  # the dynamics change the ranking
        full = _campaign(
            tmp_path / "full", "forgetting-weighted", engine=srv.url, token=ADMIN, sharing=SharingPolicy(level="full")
        )
        full.run()
        # the service's History got the same dynamics, so it selected exactly like the embedded engine
        assert full.store.selections() == local.store.selections()
        thin = _campaign(tmp_path / "thin", "forgetting-weighted", engine=srv.url, token=ADMIN)
        thin.run()  # probabilities only: no dynamics (nor embeddings) leave the client: the margin ranking
        assert thin.store.selections() == margin.store.selections()
        for camp in (local, margin, full, thin):
            camp.close()
    finally:
        srv.stop()
        close_clients()
