"""The labeling API for people (/v1/annotate, /v1/projects/{pid}/labeling) and the dashboard session, on a real
uvicorn process on 127.0.0.1."""

from __future__ import annotations

import threading
import time

import httpx
import numpy as np
import pytest

from tests.server_util import ADMIN, client, close_clients

pytest.importorskip("fastapi")

from tests.browser_util import PNG, LabelServer  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = LabelServer(tmp_path_factory.mktemp("label") / "data").start()
    yield srv
    srv.stop()
    close_clients()


@pytest.fixture(autouse=True)
def _close():
    yield
    close_clients()


def project(server: LabelServer, classes=("cat", "dog", "bird")) -> tuple[str, httpx.Client]:
    out = client(server.url, ADMIN).post("/v1/projects", json={"name": "pets", "classes": list(classes)}).json()
    return out["project_id"], client(server.url, out["api_key"])


def annotator(server: LabelServer, owner: httpx.Client, pid: str, name: str) -> httpx.Client:
    res = owner.post(f"/v1/projects/{pid}/labeling/annotators", json={"annotator": name})
    assert res.status_code == 201, res.text
    return client(server.url, res.json()["token"])


ANNOTATE = [
    ("GET", "/v1/annotate/me"),
    ("POST", "/v1/annotate/heartbeat"),
    ("POST", "/v1/annotate/next"),
    ("GET", "/v1/annotate/progress"),
    ("POST", "/v1/annotate/tasks/1/submit"),
    ("POST", "/v1/annotate/tasks/1/skip"),
    ("GET", "/v1/annotate/tasks/1/content"),
    ("POST", "/v1/annotate/signout"),
]


def test_every_annotate_route_answers_401_or_403_before_reading_the_body(server):
    pid, owner = project(server)
    annotator(server, owner, pid, "ann")
    garbage = b"{not json"
    forged = f"ann_{pid[2:]}_" + "x" * 43  # right shape, right project, never issued
    for method, path in ANNOTATE:
        assert httpx.request(method, server.url + path, content=garbage).status_code == 401
        for token, status in ((forged, 401), ("nonsense", 401), (ADMIN, 403)):
            auth = {"Authorization": f"Bearer {token}"}
            res = httpx.request(method, server.url + path, content=garbage, headers=auth)
            assert res.status_code == status, (path, token, res.text)
        assert owner.request(method, path, content=garbage).status_code == 403
    spec = httpx.get(server.url + "/openapi.json").json()
    assert {"/v1/annotate/next", "/v1/annotate/tasks/{task_id}/submit", "/v1/projects/{pid}/labeling/tasks"} <= set(
        spec["paths"]
    )


def test_a_wrong_token_sees_nothing_of_the_project(server):
    pid, owner = project(server)
    other_pid, other_owner = project(server)
    ann = annotator(server, owner, pid, "ann")
    stranger = annotator(server, other_owner, other_pid, "ann")  # same name, other project
    owner.post(f"/v1/projects/{pid}/labeling/tasks", json={"ids": [1, 2], "payload": ["secret one", "secret two"]})
    task = ann.post("/v1/annotate/next").json()["task"]
    assert task["text"] == "secret one"
    # the other project's annotator: no task, no content, no submit on this project's task
    assert stranger.post("/v1/annotate/next").json()["task"] is None
    for path in ("submit", "skip"):
        res = stranger.post(f"/v1/annotate/tasks/{task['task_id']}/{path}", json={"label": "cat"})
        assert res.status_code in (404, 422) and "secret" not in res.text
    # an annotator token is no key for the owner routes or the engine routes
    for path in (f"/v1/projects/{pid}", f"/v1/projects/{pid}/labeling/overview", "/v1/strategies"):
        assert ann.get(path).status_code == 401
    assert other_owner.get(f"/v1/projects/{pid}/labeling/overview").status_code == 403


def test_label_a_batch_progress_skip_and_results(server):
    pid, owner = project(server)
    a = annotator(server, owner, pid, "alice")
    assert a.get("/v1/annotate/me").json() == {
        "project_id": pid, "annotator": "alice", "classes": ["cat", "dog", "bird"], "lease_seconds": 300.0,
        "preannotate": False,
    }
    owner.post(f"/v1/projects/{pid}/labeling/config", json={"preannotate": True})
    res = owner.post(
        f"/v1/projects/{pid}/labeling/tasks",
        json={"ids": ["r1", "r2", "r3"], "payload": [{"text": "t1"}, {"row": {"legs": 4}}, "t3"],
              "predicted": ["cat", "dog", None]},
    )
    assert res.status_code == 201 and len(res.json()["task_ids"]) == 3
    first = a.post("/v1/annotate/next").json()
    assert first["progress"] == {"done_today": 0, "done_total": 0, "remaining": 3, "skipped": 0}
    t1 = first["task"]
    assert (t1["rid"], t1["text"], t1["suggestion"]) == ("r1", "t1", "cat")
    # asking again gives the same lease (a reload loses nothing)
    assert a.post("/v1/annotate/next").json()["task"]["task_id"] == t1["task_id"]
    assert a.post(f"/v1/annotate/tasks/{t1['task_id']}/submit", json={"label": "zebra"}).status_code == 422
    done = a.post(f"/v1/annotate/tasks/{t1['task_id']}/submit", json={"label": "dog", "seconds": 1.5}).json()
    assert (done["done_today"], done["remaining"]) == (1, 2)
    again = a.post(f"/v1/annotate/tasks/{t1['task_id']}/submit", json={"label": "dog"})
    assert again.status_code == 404
    t2 = a.post("/v1/annotate/next").json()["task"]
    assert (t2["rid"], t2["row"]) == ("r2", {"legs": 4})
    assert a.post(f"/v1/annotate/tasks/{t2['task_id']}/skip").json()["skipped"] == 1
    t3 = a.post("/v1/annotate/next").json()["task"]
    assert t3["rid"] == "r3"  # the skipped task is not offered again to the same annotator
    a.post(f"/v1/annotate/tasks/{t3['task_id']}/submit", json={"label": "bird"})
    assert a.post("/v1/annotate/next").json()["task"] is None
    results = owner.post(f"/v1/projects/{pid}/labeling/results").json()
    got = sorted((r["id"], r["label"], r["source"]) for r in results)
    assert got == [("r1", "dog", "human"), ("r3", "bird", "human")]
    assert owner.post(f"/v1/projects/{pid}/labeling/results").json() == []  # each result is delivered once
    # the skipped task goes to someone else
    b = annotator(server, owner, pid, "bob")
    assert b.post("/v1/annotate/next").json()["task"]["rid"] == "r2"
    overview = owner.get(f"/v1/projects/{pid}/labeling/overview").json()
    assert overview["tasks"] == {"open": 1, "done": 2, "cancelled": 0}
    assert {x["annotator"]: x["judgements"] for x in overview["annotators"]} == {"alice": 2, "bob": 0}


def test_two_annotators_never_get_the_same_task(server):
    pid, owner = project(server)
    people = [annotator(server, owner, pid, f"a{i}") for i in range(4)]
    owner.post(f"/v1/projects/{pid}/labeling/tasks", json={"ids": list(range(40))})
    got: list[list[int]] = [[] for _ in people]

    def work(i: int) -> None:
        while True:
            task = people[i].post("/v1/annotate/next").json()["task"]
            if task is None:
                return
            got[i].append(task["rid"])
            assert people[i].post(f"/v1/annotate/tasks/{task['task_id']}/submit", json={"label": "cat"}).is_success

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(people))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    flat = [r for g in got for r in g]
    assert sorted(flat) == list(range(40))  # every task once, none twice
    assert sum(1 for g in got if g) >= 2


def test_expired_lease_is_reported(server):
    pid, owner = project(server)
    a = annotator(server, owner, pid, "slow")
    owner.post(f"/v1/projects/{pid}/labeling/config", json={"lease_seconds": 1})
    owner.post(f"/v1/projects/{pid}/labeling/tasks", json={"ids": [7]})
    task = a.post("/v1/annotate/next").json()["task"]
    assert 0 < task["expires_in"] <= 1
    time.sleep(1.2)
    res = a.post(f"/v1/annotate/tasks/{task['task_id']}/submit", json={"label": "cat"})
    assert res.status_code == 409 and res.json()["error"] == "LeaseExpiredError"
    assert "expired" in res.json()["detail"]
    assert owner.post(f"/v1/projects/{pid}/labeling/results").json() == []


def test_images_are_served_only_to_the_lease_holder(server):
    pid, owner = project(server)
    a, b = annotator(server, owner, pid, "a"), annotator(server, owner, pid, "b")
    bad = owner.put(f"/v1/projects/{pid}/labeling/content/img1", content=b"GIF89a....")
    assert bad.status_code == 422
    assert owner.put(f"/v1/projects/{pid}/labeling/content/img1", content=PNG).json() == {"media_type": "image/png"}
    owner.post(f"/v1/projects/{pid}/labeling/tasks", json={"ids": ["img1"], "payload": [{"image": True}]})
    task = a.post("/v1/annotate/next").json()["task"]
    assert task["image"] is True
    img = a.get(f"/v1/annotate/tasks/{task['task_id']}/content")
    assert img.status_code == 200 and img.content == PNG and img.headers["content-type"] == "image/png"
    assert b.get(f"/v1/annotate/tasks/{task['task_id']}/content").status_code == 404


def test_dashboard_data_needs_a_signed_session(server):
    pid, owner = project(server)
    other, _ = project(server)
    assert httpx.get(server.url + "/dashboard/data").status_code == 401
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and pid not in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    with httpx.Client(base_url=server.url) as browser:
        assert browser.post("/v1/session", headers={"Authorization": "Bearer wrong"}).status_code == 401
        signed = browser.post("/v1/session", headers={"Authorization": f"Bearer {owner.headers['authorization'][7:]}"})
        assert signed.status_code == 200 and "httponly" in signed.headers["set-cookie"].lower()
        data = browser.get("/dashboard/data").json()
        assert [p["id"] for p in data["projects"]] == [pid] and not data["admin"]
        cookie = browser.cookies["alloop_session"]
        body, mac = cookie.rsplit(".", 1)
        browser.cookies.clear()
        browser.cookies.set("alloop_session", body + "." + ("0" if mac[0] != "0" else "1") + mac[1:])
        assert browser.get("/dashboard/data").status_code == 401
    with httpx.Client(base_url=server.url) as admin:
        admin.post("/v1/session", headers={"Authorization": f"Bearer {ADMIN}"})
        ids = [p["id"] for p in admin.get("/dashboard/data").json()["projects"]]
        assert {pid, other} <= set(ids)


def test_static_files_are_local(server):
    for name in ("label.js", "dashboard.js", "style.css"):
        res = httpx.get(f"{server.url}/static/{name}")
        assert res.status_code == 200 and "http://" not in res.text.replace("http://www.w3.org/2000/svg", "")
    assert httpx.get(server.url + "/static/../_pages.py").status_code == 404
    label = httpx.get(server.url + "/label").text
    assert "<script src=\"/static/label.js\">" in label and "https://" not in label


def test_a_campaign_gets_its_labels_from_people_on_the_service(server, tmp_path):
    """WebHumanProvider: the campaign asks, people answer through /v1/annotate, labels land in the campaign store."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from alloop.labeling.web import WebHumanProvider
    from alloop.loop import Campaign, SklearnLearner
    from alloop.store import CampaignStore

    X, y = load_iris(return_X_y=True)
    ids = np.arange(0, 150, 3)
    pid, owner = project(server, classes=(0, 1, 2))
    provider = WebHumanProvider(
        url=server.url, project=pid, key=owner.headers["authorization"][7:],
        payload=lambda rids: [{"row": {"petal length": float(X[r, 2])}} for r in rids],
    )
    person = client(server.url, provider.issue_token("pat"))
    answered: list[int] = []
    stop = threading.Event()

    def work() -> None:  # a careful person who always knows the answer
        while not stop.is_set():
            task = person.post("/v1/annotate/next").json()["task"]
            if task is None:
                time.sleep(0.05)
                continue
            person.post(f"/v1/annotate/tasks/{task['task_id']}/submit", json={"label": int(y[task["rid"]])})
            answered.append(task["rid"])

    worker = threading.Thread(target=work)
    worker.start()
    try:
        campaign = Campaign(
            tmp_path / "c", learner=SklearnLearner(LogisticRegression(max_iter=300), X[ids], ids), labeler=provider,
            pool=ids, classes=[0, 1, 2], initial=6, batch_size=3, max_loops=2, seed=0,
        )
        result = campaign.run(max_wait=60)
    finally:
        stop.set()
        worker.join(timeout=30)
        provider.close()
    assert result.n_labeled == 12 and sorted(answered) == sorted(set(answered)) and len(answered) == 12
    with CampaignStore(tmp_path / "c").transaction() as conn:
        import sqlalchemy as sa

        from alloop.store import _schema as T

        rows = conn.execute(sa.select(T.labels.c.label, T.labels.c.source, T.labels.c.annotator)).all()
    assert len(rows) == 12 and {(r.source, r.annotator) for r in rows} == {("human", "pat")}


def test_images_from_a_registered_folder_never_leave_it(server, tmp_path):
    pid, owner = project(server)
    other_pid, other = project(server)
    ann = annotator(server, owner, pid, "a")
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "r1.png").write_bytes(PNG)
    (folder / "fake.jpg").write_bytes(b"GIF89a not a jpeg")
    (tmp_path / "secret.png").write_bytes(PNG)  # next to the folder, outside it
    (folder / "link.png").symlink_to(tmp_path / "secret.png")
    route = f"/v1/projects/{pid}/labeling/folder"
    assert other.post(route, json={"path": str(folder)}).status_code == 403  # another project's key
    assert owner.post(route, json={"path": str(tmp_path / "missing")}).status_code == 422
    assert owner.post(route, json={"path": str(folder / "r1.png")}).status_code == 422  # a file, not a directory
    outside = owner.post(route, json={"path": "/etc"})  # exists, but outside the server's ALLOOP_FILE_ROOTS
    assert outside.status_code == 422 and "ALLOOP_FILE_ROOTS" in outside.text
    assert owner.post(route, json={"path": str(folder)}).json() == {"image_folder": str(folder.resolve())}
    assert other_pid != pid

    rids = ["r1", "../secret", "..%2Fsecret", "link", "fake", "/etc/passwd", "sub/../r1"]
    owner.post(f"/v1/projects/{pid}/labeling/tasks", json={"ids": rids, "payload": [{"image": True}] * len(rids)})
    served = {}
    for _ in rids:
        task = ann.post("/v1/annotate/next").json()["task"]
        res = ann.get(f"/v1/annotate/tasks/{task['task_id']}/content")
        served[task["rid"]] = (res.status_code, res.content == PNG)
        ann.post(f"/v1/annotate/tasks/{task['task_id']}/submit", json={"label": "cat"})
    assert served == {
        "r1": (200, True),
        "../secret": (404, False),
        "..%2Fsecret": (404, False),
        "link": (404, False),  # a symbolic link out of the folder
        "fake": (422, False),  # not a PNG/JPEG by its first bytes
        "/etc/passwd": (404, False),
        "sub/../r1": (404, False),
    }


def test_a_campaign_directory_is_attached_to_its_own_project_only(server, tmp_path):
    from alloop.store import CampaignStore

    pid, owner = project(server)
    route = f"/v1/projects/{pid}/labeling/campaign"
    assert owner.post(route, json={"path": str(tmp_path)}).status_code == 422  # no alloop.db there
    store = CampaignStore(tmp_path / "camp", create=True)
    with store.transaction() as conn:
        store.set_meta(conn, "project_id", "p_0000000000000000")
    store.close()
    res = owner.post(route, json={"path": str(tmp_path / "camp")})
    assert res.status_code == 422 and "p_0000000000000000" in res.json()["detail"]
    store = CampaignStore(tmp_path / "empty", create=True)  # ran embedded: no project recorded, any may attach
    store.close()
    assert owner.post(route, json={"path": str(tmp_path / "empty")}).status_code == 200
    with httpx.Client(base_url=server.url) as browser:
        browser.post("/v1/session", headers={"Authorization": owner.headers["authorization"]})
        camp = browser.get("/dashboard/data").json()["projects"][0]["campaign"]
        assert camp["curve"] == [] and camp["compute"]["saved"] is None and "<svg" in camp["classes_svg"]
        (tmp_path / "empty" / "alloop.db").unlink()  # the directory moved away: the card says so, the page stays
        camp = browser.get("/dashboard/data").json()["projects"][0]["campaign"]
        assert "No campaign" in camp["error"]
