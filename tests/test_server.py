"""`alloop serve` against a real uvicorn process on 127.0.0.1: auth, idempotent uploads, remote SDK parity."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from alloop import Snapshot
from alloop.engine.service import arrow_ipc_bytes
from alloop.errors import AuthError, ConfigError
from alloop.labeling import SimulatedOracle
from alloop.loop import Campaign, SharingPolicy, SklearnLearner
from alloop.store import CampaignStore
from tests.server_util import ADMIN, Server, client, close_clients

pytest.importorskip("fastapi")

X, Y = load_iris(return_X_y=True)
IDS = np.arange(0, 150, 2)
TEST = np.arange(1, 150, 2)
ARROW = {"content-type": "application/vnd.apache.arrow.stream"}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _db_url(backend: str, request: pytest.FixtureRequest) -> str | None:
    if backend == "sqlite":
        return None
    cluster = request.getfixturevalue("postgres")
    return cluster.create_database(f"srv_{abs(hash(request.node.nodeid)) % 10**9}_{id(request)}")


@pytest.fixture(scope="module")
def server(backend: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    srv = Server(tmp_path_factory.mktemp("srv"), db_url=_db_url(backend, request)).start()
    yield srv
    srv.stop()
    close_clients()


@pytest.fixture(autouse=True)
def _close_clients():
    yield
    close_clients()


def admin(server: Server) -> httpx.Client:
    return client(server.url, ADMIN)


def new_project(server: Server, classes=(0, 1, 2)) -> tuple[str, httpx.Client]:
    out = admin(server).post("/v1/projects", json={"name": "t", "classes": list(classes)}).json()
    return out["project_id"], client(server.url, out["api_key"])


def test_health_ready_metrics_openapi(server):
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(server.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    spec = httpx.get(server.url + "/openapi.json").json()
    assert "/v1/projects/{pid}/recommend" in spec["paths"]
    httpx.get(server.url + "/healthz")
    assert 'alloop_requests_total{path="/healthz",status="200"}' in httpx.get(server.url + "/metrics").text


def test_auth_answers_before_the_body(server):
    pid_a, a = new_project(server)
    pid_b, b = new_project(server)
    garbage = b"{not json"
    r = httpx.post(f"{server.url}/v1/projects/{pid_a}/labels", content=garbage)
    assert r.status_code == 401 and "Missing credentials" in r.json()["detail"]
    r = httpx.post(
        f"{server.url}/v1/projects/{pid_a}/labels", content=garbage, headers={"Authorization": "Bearer nope"}
    )
    assert r.status_code == 401
    assert a.post(f"/v1/projects/{pid_b}/labels", content=garbage).status_code == 403
    assert a.get(f"/v1/projects/{pid_b}").status_code == 403
    assert a.post("/v1/projects", json={"name": "x", "classes": [0, 1]}).status_code == 403
    assert a.get(f"/v1/projects/{pid_a}").status_code == 200
    # with valid credentials, a malformed body is a 4xx naming the problem, never a 500
    r = a.post(f"/v1/projects/{pid_a}/labels", json={"ids": [1], "labelz": [0]})
    assert r.status_code == 422 and "labels" in r.json()["detail"]
    r = a.post(f"/v1/projects/{pid_a}/recommend", json={"k": 0})
    assert r.status_code == 422 and "k" in r.json()["detail"]


def test_body_limit(tmp_path):
    import os

    os.environ["ALLOOP_MAX_BODY_MB"] = "0.01"
    try:
        srv = Server(tmp_path).start()
    finally:
        del os.environ["ALLOOP_MAX_BODY_MB"]
    try:
        pid, cli = new_project(srv)
        r = cli.post(f"/v1/projects/{pid}/records", json={"ids": list(range(5000))})
        assert r.status_code == 413
        assert cli.post(f"/v1/projects/{pid}/records", json={"ids": [1, 2]}).json() == {"added": 2}
    finally:
        srv.stop()


def _chunk(ids, probs, loop=0) -> bytes:
    return arrow_ipc_bytes(Snapshot(ids=ids, probs=probs, loop=loop).to_arrow())


def test_chunks_are_idempotent_and_commit_is_atomic(server):
    pid, cli = new_project(server, classes=(0, 1))
    assert cli.post(f"/v1/projects/{pid}/records", json={"ids": [10, 11, 12, 13]}).json() == {"added": 4}
    assert cli.post(f"/v1/projects/{pid}/records", json={"ids": [10, 11, 12, 13]}).json() == {"added": 0}
    p = np.array([[0.9, 0.1], [0.5, 0.5], [0.6, 0.4], [0.52, 0.48]])
    body0, body1 = _chunk([10, 11], p[:2]), _chunk([12, 13], p[2:])
    base = f"/v1/projects/{pid}/loops/0/snapshot"
    assert cli.put(f"{base}/chunks/0", content=body0, headers=ARROW).json()["status"] == "stored"
    assert cli.put(f"{base}/chunks/0", content=body0, headers=ARROW).json()["status"] == "duplicate"
    r = cli.post(f"{base}/commit", json={"n_chunks": 2})
    assert r.status_code == 409 and "never uploaded" in r.json()["detail"]
    assert cli.get(f"/v1/projects/{pid}").json()["snapshots"] == []
    cli.put(f"{base}/chunks/1", content=body1, headers=ARROW)
    assert cli.post(f"{base}/commit", json={"n_chunks": 2}).json()["n_rows"] == 4
    rec = cli.post(f"/v1/projects/{pid}/recommend", json={"k": 2, "strategy": "margin", "loop": 1}).json()
    assert rec["ids"] == [11, 13] and rec["strategy"] == "margin"
    bad = _chunk([99], np.array([[0.5, 0.5]]), loop=1)
    r = cli.put(f"/v1/projects/{pid}/loops/1/snapshot/chunks/0", content=bad, headers=ARROW)
    assert r.status_code == 404 and "99" in r.json()["detail"]
    r = cli.put(f"/v1/projects/{pid}/loops/1/snapshot/chunks/0", content=b"garbage", headers=ARROW)
    assert r.status_code == 422 and "Arrow" in r.json()["detail"]


def _campaign(tmp: Path, **kw) -> Campaign:
    learner = SklearnLearner(LogisticRegression(max_iter=500), X[IDS], IDS, eval_X=X[TEST], eval_y=Y[TEST])
    oracle = SimulatedOracle(truth=dict(zip(IDS.tolist(), Y[IDS].tolist(), strict=True)))
    return Campaign(
        tmp,
        learner=learner,
        labeler=oracle,
        pool=IDS,
        classes=[0, 1, 2],
        initial=6,
        batch_size=4,
        budget=22,
        seed=5,
        **kw,
    )


def test_remote_campaign_selects_exactly_like_embedded(server, tmp_path):
    local = _campaign(tmp_path / "local")
    local.run()
    remote = _campaign(tmp_path / "remote", engine=server.url, token=ADMIN)
    remote.run()
    assert remote.store.selections() == local.store.selections()
    assert remote.metrics() == local.metrics()
    hashed = _campaign(tmp_path / "hashed", engine=server.url, token=ADMIN, sharing=SharingPolicy.with_new_key())
    hashed.run()
    assert hashed.store.selections() == local.store.selections()
    for camp in (local, remote, hashed):
        camp.close()


def test_default_policy_sends_only_ids_and_probabilities(server, tmp_path):
    sent: list[tuple[str, bytes, str]] = []

    def record(request: httpx.Request) -> None:
        sent.append((request.url.path, request.read(), request.headers.get("content-type", "")))

    from alloop.loop import RemoteEngine

    recorder = httpx.Client(event_hooks={"request": [record]}, timeout=60)
    engine = RemoteEngine(server.url, ADMIN, classes=[0, 1, 2], client=recorder)
    engine.add_records(IDS)
    snap = Snapshot(
        ids=IDS, probs=np.full((IDS.size, 3), 1 / 3), embeddings=X[IDS], samples=np.full((2, IDS.size, 3), 1 / 3)
    )
    engine.ingest(snap, loop=0)
    engine.observe_labels(IDS[:3], [0, 1, 2])
    engine.recommend(2, loop=1)
    kinds = set()
    for path, body, ctype in sent:
        if not body:
            continue
        if ctype.startswith("application/vnd.apache.arrow"):
            table = pa.ipc.open_stream(body).read_all()
            kinds.add(tuple(table.column_names))
            assert set(table.column_names) <= {"id", "probs"}, path
        else:
            payload = json.loads(body)
            assert set(payload) <= {"ids", "labels", "k", "strategy", "loop", "name", "classes", "seed", "n_chunks"}, (
                path
            )
    assert ("id", "probs") in kinds and ("id",) in kinds
    recorder.close()


def test_hashed_ids_never_leave_the_client_and_selections_map_back(server):
    from alloop import SelectionEngine
    from alloop.loop import RemoteEngine

    sent: list[bytes] = []
    recorder = httpx.Client(event_hooks={"request": [lambda r: sent.append(r.read())]}, timeout=60)
    policy = SharingPolicy.with_new_key()
    engine = RemoteEngine(server.url, ADMIN, classes=[0, 1, 2], client=recorder, policy=policy, chunk_rows=20)
    rng = np.random.default_rng(3)
    ids = np.arange(1_000_003, 1_000_003 + 60)  # ids that cannot appear in a body by accident
    probs = rng.dirichlet(np.ones(3), size=ids.size)
    local = SelectionEngine("margin", classes=[0, 1, 2])
    for eng in (engine, local):
        eng.add_records(ids)
        eng.ingest(Snapshot(ids=ids, probs=probs), loop=0)
        eng.observe_labels(ids[:4], [0, 1, 2, 0])
    got = engine.recommend(5, loop=1)
    assert got.ids.tolist() == local.recommend(5, loop=1).ids.tolist()  # mapped back to the caller's ids
    text = b"".join(sent)
    assert sent and not any(str(int(i)).encode() in text for i in ids)  # neither in JSON nor in Arrow bodies
    hashed = policy.encode_ids(ids)
    assert all(len(h) == 32 for h in hashed) and hashed[0].encode() in text  # the engine saw HMACs instead
    other = SharingPolicy.with_new_key().encode_ids(ids)
    assert not set(other.tolist()) & set(hashed.tolist())  # another key, other ids: the key decides
    recorder.close()


def test_strategy_needing_unshared_metadata_is_refused(server):
    from alloop.loop import RemoteEngine

    with pytest.raises(ConfigError, match="keeps on your side"):
        RemoteEngine(server.url, ADMIN, classes=[0, 1], strategy=_needs_embeddings())


def _needs_embeddings():
    from alloop.strategies import Strategy

    class _Emb(Strategy):  # leading underscore: not registered by discovery
        name = "test-needs-embeddings"
        needs = frozenset({"embeddings"})

        def __init__(self) -> None:
            pass

        def score(self, ctx):
            return ctx.embeddings[:, 0]

    return _Emb()


def test_wrong_token_is_an_auth_error(server, tmp_path):
    with pytest.raises(AuthError):
        _campaign(tmp_path / "c", engine=server.url, token="not-a-real-token")
    assert not (tmp_path / "c").exists()


def test_server_restart_and_sigkill_mid_upload(tmp_path, backend, request):
    srv = Server(tmp_path / "data", db_url=_db_url(backend, request)).start()
    try:
        pid, cli = new_project(srv, classes=(0, 1))
        cli.post(f"/v1/projects/{pid}/records", json={"ids": [1, 2, 3]})
        p = np.array([[0.9, 0.1], [0.5, 0.5], [0.7, 0.3]])
        base = f"/v1/projects/{pid}/loops/0/snapshot"
        cli.put(f"{base}/chunks/0", content=_chunk([1, 2], p[:2]), headers=ARROW)
        srv.kill()  # dies between chunks: nothing committed
        srv.start()
        status = cli.get(f"/v1/projects/{pid}").json()
        assert status["snapshots"] == [] and status["counts"]["unlabeled"] == 3
        assert cli.put(f"{base}/chunks/0", content=_chunk([1, 2], p[:2]), headers=ARROW).json()["status"] == "duplicate"
        cli.put(f"{base}/chunks/1", content=_chunk([3], p[2:]), headers=ARROW)
        assert cli.post(f"{base}/commit", json={"n_chunks": 2}).json()["n_rows"] == 3
        srv.kill()
        srv.start()  # state rebuilt from the database and the Parquet files
        rec = cli.post(f"/v1/projects/{pid}/recommend", json={"k": 1, "loop": 1}).json()
        assert rec["ids"] == [2]
    finally:
        srv.stop()


def test_campaign_survives_a_server_restart(tmp_path, backend, request):
    srv = Server(tmp_path / "data", db_url=_db_url(backend, request)).start()
    try:
        local = _campaign(tmp_path / "local")
        local.run()
        remote = _campaign(tmp_path / "remote", engine=srv.url, token=ADMIN)
        for _ in range(6):
            remote.step()
        srv.kill()
        threading.Timer(1.0, srv.start).start()  # the client retries with backoff meanwhile
        remote.run()
        assert remote.store.selections() == local.store.selections()
        # the client process "crashes" too: resume against the service
        learner = SklearnLearner(LogisticRegression(max_iter=500), X[IDS], IDS, eval_X=X[TEST], eval_y=Y[TEST])
        again = Campaign.resume(tmp_path / "remote", learner=learner, labeler=SimulatedOracle(truth={}), token=ADMIN)
        assert again.stop_reason() == "budget"
        for camp in (local, remote, again):
            camp.close()
    finally:
        srv.stop()


def test_fifty_concurrent_clients(server):
    errors: list[BaseException] = []

    def client(i: int) -> None:
        try:
            pid, cli = new_project(server, classes=(0, 1))
            ids = list(range(i * 1000, i * 1000 + 50))
            assert cli.post(f"/v1/projects/{pid}/records", json={"ids": ids}).status_code == 200
            rng = np.random.default_rng(i)
            p = rng.dirichlet([1, 1], size=50)
            base = f"/v1/projects/{pid}/loops/0/snapshot"
            assert cli.put(f"{base}/chunks/0", content=_chunk(ids, p), headers=ARROW).status_code == 200
            assert cli.post(f"{base}/commit", json={"n_chunks": 1}).status_code == 200
            rec = cli.post(f"/v1/projects/{pid}/recommend", json={"k": 5, "loop": 1}).json()
            margin = np.abs(p[:, 0] - p[:, 1])
            assert rec["ids"] == [ids[j] for j in np.argsort(margin, kind="stable")[:5]]
        except BaseException as exc:  # collected and re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


def test_store_of_remote_campaign_has_no_token(server, tmp_path):
    camp = _campaign(tmp_path / "c", engine=server.url, token=ADMIN)
    store = CampaignStore(tmp_path / "c")
    meta = {k: store.get_meta(k) for k in ("engine_url", "project_id", "sharing")}
    assert meta["engine_url"] == server.url and meta["project_id"] == camp.engine.project
    assert ADMIN not in (tmp_path / "c" / "alloop.db").read_bytes().decode("latin-1")
    camp.close()


def test_demo_against_the_service_with_the_admin_token(server, tmp_path):
    from typer.testing import CliRunner

    from alloop.cli import app

    args = ["demo", "--budget", "60", "--batch", "20"]
    local = CliRunner().invoke(app, [*args, "--dir", str(tmp_path / "local")])
    remote = CliRunner().invoke(
        app, [*args, "--dir", str(tmp_path / "remote"), "--engine", server.url, "--token", ADMIN]
    )
    assert local.exit_code == 0 and remote.exit_code == 0, remote.output
    a = json.loads((tmp_path / "local" / "summary.json").read_text())["strategies"]
    b = json.loads((tmp_path / "remote" / "summary.json").read_text())["strategies"]
    for s in (*a.values(), *b.values()):  # measured CPU seconds differ between runs; the rest must not
        assert set(s.pop("compute")["per_loop"]) == {"0", "1", "2"}
    assert a == b
    assert CampaignStore(tmp_path / "remote").get_meta("engine_url") == server.url
