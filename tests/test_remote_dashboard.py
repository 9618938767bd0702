"""A campaign on another machine (remote engine, no directory attached) shows its sources, classes and compute on
the dashboard of a real `alloop serve`: the campaign reports each loop through POST …/labeling/metrics."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.server_util import ADMIN, Server, client, close_clients

pytest.importorskip("fastapi")

from sklearn.datasets import load_iris  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from alloop.labeling import LabelEvent  # noqa: E402
from alloop.labeling.web import campaign_summary  # noqa: E402
from alloop.loop import Campaign, SklearnLearner  # noqa: E402
from alloop.loop._remote import report_dashboard  # noqa: E402

X, Y = load_iris(return_X_y=True)
IDS = np.arange(0, 150, 2)
TEST = np.arange(1, 150, 2)
CARD = ("curve", "labels_by_loop", "classes", "n_predicted", "compute", "metric")


class MixedSources:
    """Labels from the iris truth; records whose id is a multiple of 3 come labeled by the model ("auto")."""

    def __init__(self) -> None:
        self.pending: list[int] = []

    def request(self, ids: Any) -> None:
        self.pending.extend(int(r) for r in ids)

    def poll(self) -> list[LabelEvent]:
        out = [
            LabelEvent(id=r, label=int(Y[r]), source="auto" if r % 3 == 0 else "human", annotator="t")
            for r in self.pending
        ]
        self.pending = []
        return out

    def cancel(self, ids: Any) -> None:
        self.pending = [r for r in self.pending if r not in set(np.asarray(ids).tolist())]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = Server(tmp_path_factory.mktemp("remote-dash") / "data").start()
    yield srv
    srv.stop()
    close_clients()


def learner() -> SklearnLearner:
    return SklearnLearner(LogisticRegression(max_iter=300), X[IDS], IDS, eval_X=X[TEST], eval_y=Y[TEST])


def remote_campaign(server: Server, directory: Path, max_loops: int) -> Campaign:
    return Campaign(
        directory, learner=learner(), labeler=MixedSources(), pool=IDS, classes=[0, 1, 2], initial=6, batch_size=4,
        max_loops=max_loops, seed=0, engine=server.url, token=ADMIN,
    )


def dashboard_card(server: Server, pid: str) -> dict[str, Any]:
    admin = client(server.url, ADMIN)
    assert admin.post("/v1/session").status_code == 200
    data = admin.get("/dashboard/data").json()
    return next(p for p in data["projects"] if p["id"] == pid)


def reported_rows(server: Server, pid: str) -> list[tuple[int, str, float]]:
    db = server.data_dir / pid / "labeling" / "alloop.db"
    with sqlite3.connect(db) as conn:
        return sorted(conn.execute("SELECT loop, name, value FROM metrics").fetchall())


def test_remote_campaign_shows_sources_classes_and_compute_without_a_directory(server, tmp_path):
    camp = remote_campaign(server, tmp_path / "c", max_loops=3)
    camp.run()
    pid = camp.engine.project
    labels, compute, metrics = camp.store.labels(), camp.compute(), camp.metrics()
    camp.close()

    card = dashboard_card(server, pid)
    got = card["campaign"]
    assert got["source"] == "reported" and got["directory"] is None
    # labels per loop by source, exactly as the campaign stored them
    expected: dict[int, dict[str, int]] = {}
    for row in labels:
        expected.setdefault(row["loop"], {}).setdefault(row["source"], 0)
        expected[row["loop"]][row["source"]] += 1
    assert {r["loop"]: r["sources"] for r in got["labels_by_loop"]} == expected
    assert {"human", "auto"} <= {s for r in got["labels_by_loop"] for s in r["sources"]}
    # classes: labeled so far and predicted by the last inference (all unlabeled records of the last loop)
    labeled = {c: sum(1 for r in labels if r["label"] == c) for c in (0, 1, 2)}
    assert {c["label"]: c["labeled"] for c in got["classes"]} == labeled
    last = max(compute)
    assert got["n_predicted"] == compute[last]["records_inferred"] > 0
    assert 'class="bar predicted"' in got["classes_svg"]
    # compute per loop and the from-scratch estimate
    assert [r["loop"] for r in got["compute"]["loops"]] == sorted(compute)
    for row in got["compute"]["loops"]:
        for f in ("train_cpu_s", "infer_cpu_s", "select_cpu_s", "records_trained", "records_inferred"):
            assert row[f] == pytest.approx(compute[row["loop"]].get(f, 0.0))
        assert row["from_scratch_cpu_s"] >= 0
    assert got["compute"]["saved"]["estimated"] is True
    assert got["curve"] == [[metrics[lp]["n_labeled"], metrics[lp]["accuracy"]] for lp in sorted(metrics)]
    # one code path: the same card as attaching the campaign directory
    attached = campaign_summary(tmp_path / "c")
    assert {k: got[k] for k in CARD} == {k: attached[k] for k in CARD}
    # the plain metrics list stays plain (no class counts or compute in the learning-curve series)
    assert all(":" not in k and "cpu" not in k for m in card["labeling"]["metrics"] for k in m)


def test_resume_and_a_replayed_report_never_double_count(server, tmp_path):
    camp = remote_campaign(server, tmp_path / "r", max_loops=2)
    camp.run()
    pid = camp.engine.project
    camp.close()
    resumed = Campaign.resume(tmp_path / "r", learner=learner(), labeler=MixedSources(), token=ADMIN)
    resumed.config["max_loops"] = 3
    resumed.run()
    before = reported_rows(server, pid)
    names = [(lp, n) for lp, n, _ in before]
    last = max(resumed.compute())
    assert last == 3 and len(names) == len(set(names)) and {lp for lp, _ in names} == {0, 1, 2, 3}
    card = dashboard_card(server, pid)["campaign"]
    # a crash between the report and its bookkeeping: every loop is sent again and overwrites itself
    with resumed.store.transaction() as conn:
        resumed.store.set_meta(conn, "dashboard_reported", -1)
    assert report_dashboard(resumed.engine, resumed.store, last, None) == last + 1
    resumed.close()
    after = reported_rows(server, pid)
    assert [(lp, n) for lp, n, _ in after] == names  # the last loop's predicted counts were kept, nothing duplicated
    assert dashboard_card(server, pid)["campaign"]["labels_by_loop"] == card["labels_by_loop"]


def test_a_failed_report_is_logged_and_never_breaks_the_campaign(server, caplog):
    from alloop.loop import RemoteEngine

    engine = RemoteEngine(server.url, ADMIN, classes=[0, 1], retries=1, backoff=0.01)
    try:
        assert engine.report_loop(0, {"accuracy": 0.5, "labels_source:human": 3.0, "bad": float("nan")})
        engine.url = "http://127.0.0.1:9"  # nothing listens there
        with caplog.at_level(logging.WARNING, logger="alloop.loop._remote"):
            assert engine.report_loop(1, {"accuracy": 0.6}) is False
        assert "did not reach" in caplog.text
    finally:
        engine.close()
    assert reported_rows(server, engine.project) == [(0, "accuracy", 0.5), (0, "labels_source:human", 3.0)]


def test_sharing_policy_can_keep_the_dashboard_counts_on_the_client(server, tmp_path):
    from alloop.loop import SharingPolicy

    camp = Campaign(
        tmp_path / "quiet", learner=learner(), labeler=MixedSources(), pool=IDS, classes=[0, 1, 2], initial=6,
        batch_size=4, max_loops=1, seed=0, engine=server.url, token=ADMIN, sharing=SharingPolicy(dashboard=False),
    )
    camp.run()
    pid = camp.engine.project
    assert camp.store.get_meta("dashboard_reported") is None
    camp.close()
    db = server.data_dir / pid / "labeling" / "alloop.db"
    rows = [] if not db.exists() else reported_rows(server, pid)
    assert rows == []
    from alloop.errors import ConfigError

    with pytest.raises(ConfigError, match="'dashboard' parameter of SharingPolicy"):
        SharingPolicy(dashboard="no").check()  # type: ignore[arg-type]
