"""End-to-end: the labeling page and the dashboard in Debian's Chromium (Playwright), against a real server."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.browser_util import CHROMIUM, CHROMIUM_ARGS, PNG, LabelServer, chromium_missing
from tests.server_util import ADMIN, client, close_clients

pytest.importorskip("fastapi")
_why = chromium_missing()
if _why is not None:
    pytest.skip(f"browser tests skipped: {_why}", allow_module_level=True)

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

LONG = "A long review. " * 300


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    srv = LabelServer(tmp_path_factory.mktemp("pages") / "data").start()
    yield srv
    srv.stop()
    close_clients()


@pytest.fixture(scope="module")
def browser():
    pw = sync_playwright().start()
    b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield b
    b.close()
    pw.stop()


@pytest.fixture
def context(browser):
    ctx = browser.new_context(viewport={"width": 1000, "height": 760})
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


def setup_project(server, *, n=0, lease=None, preannotate=False, payload=None, people=("ann",)):
    out = client(server.url, ADMIN).post("/v1/projects", json={"name": "pets", "classes": ["cat", "dog", "bird"]})
    pid, owner = out.json()["project_id"], client(server.url, out.json()["api_key"])
    config: dict[str, object] = {"preannotate": preannotate}
    if lease is not None:
        config["lease_seconds"] = lease
    owner.post(f"/v1/projects/{pid}/labeling/config", json=config)
    issue = f"/v1/projects/{pid}/labeling/annotators"
    tokens = [owner.post(issue, json={"annotator": a}).json()["token"] for a in people]
    if n:
        body = {"ids": list(range(n)), "payload": payload or [f"text {i}" for i in range(n)]}
        assert owner.post(f"/v1/projects/{pid}/labeling/tasks", json=body).status_code == 201
    return pid, owner, tokens


def sign_in(page: Page, server, token: str) -> None:
    page.goto(server.url + "/label")
    page.get_by_label("Annotator token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def test_label_by_click_and_keyboard_without_reload(server, context, tmp_path):
    payload = [{"text": LONG}, {"image": True}, {"row": {"legs": 4, "wings": 0}}, "short text"]
    pid, owner, (token,) = setup_project(server, n=4, preannotate=True, payload=payload)
    owner.put(f"/v1/projects/{pid}/labeling/content/1?kind=int", content=PNG)
    owner.post(f"/v1/projects/{pid}/labeling/tasks", json={"ids": [99], "predicted": ["dog"]})
    page = context.new_page()
    sign_in(page, server, token)
    text = page.locator("#text")
    expect(text).to_contain_text("A long review.")
    assert page.evaluate("(e => e.scrollHeight > e.clientHeight)(document.getElementById('text'))")
    expect(page.locator("#remaining")).to_have_text("5")
    page.screenshot(path=str(tmp_path / "label.png"), full_page=True)
    page.evaluate("window.__sameDocument = true")
    page.get_by_role("button", name="dog", exact=True).click()
    expect(page.locator("#image")).to_be_visible()  # the next task (an image) appeared
    expect(page.locator("#done-today")).to_have_text("1")
    page.keyboard.press("3")  # bird
    expect(page.locator("#row")).to_contain_text("legs")
    page.keyboard.press("0")  # skip
    expect(page.locator("#text")).to_have_text("short text")
    page.keyboard.press("1")
    expect(page.locator("#suggestion")).to_contain_text("Model suggestion (pre-annotation): dog")
    page.get_by_role("button", name="cat", exact=True).click()
    expect(page.get_by_text("No task for you right now.")).to_be_visible()
    assert page.evaluate("window.__sameDocument") is True
    labels = {r["id"]: r["label"] for r in owner.post(f"/v1/projects/{pid}/labeling/results").json()}
    assert labels == {0: "dog", 1: "bird", 3: "cat", 99: "cat"}


def test_two_annotators_in_two_contexts_never_share_a_task(server, browser):
    pid, owner, tokens = setup_project(server, n=2, people=("a", "b"))
    shown = []
    contexts = [browser.new_context() for _ in tokens]
    try:
        for ctx, token in zip(contexts, tokens, strict=True):
            page = ctx.new_page()
            sign_in(page, server, token)
            expect(page.locator("#text")).to_contain_text("text")
            shown.append(page.locator("#rid").inner_text())
    finally:
        for ctx in contexts:
            ctx.close()
    assert sorted(shown) == ["0", "1"]


def test_expired_lease_is_shown(server, context):
    pid, owner, (token,) = setup_project(server, n=1, lease=2)
    page = context.new_page()
    sign_in(page, server, token)
    expect(page.locator("#text")).to_have_text("text 0")
    expect(page.get_by_role("alert").filter(has_text="expired")).to_be_visible(timeout=8000)
    page.get_by_role("button", name="Get a new task").click()
    expect(page.locator("#text")).to_have_text("text 0")  # the slot went back to the queue and can be leased again
    # an answer held back by a lost connection until the lease ran out: the server's refusal is shown
    context.set_offline(True)
    page.get_by_role("button", name="cat", exact=True).click()
    expect(page.locator("#banner")).to_contain_text("Connection lost")
    page.wait_for_timeout(2500)
    context.set_offline(False)
    expect(page.get_by_role("alert").filter(has_text="before the answer arrived")).to_be_visible(timeout=15_000)
    assert owner.post(f"/v1/projects/{pid}/labeling/results").json() == []


def test_lost_connection_keeps_the_answer_and_retries(server, context):
    pid, owner, (token,) = setup_project(server, n=2)
    page = context.new_page()
    sign_in(page, server, token)
    expect(page.locator("#text")).to_have_text("text 0")
    context.set_offline(True)
    page.get_by_role("button", name="bird", exact=True).click()
    expect(page.locator("#banner")).to_contain_text("Connection lost")
    expect(page.locator("#banner")).to_contain_text("bird")
    assert owner.post(f"/v1/projects/{pid}/labeling/results").json() == []
    context.set_offline(False)
    expect(page.locator("#text")).to_have_text("text 1", timeout=20_000)
    expect(page.locator("#banner")).to_be_hidden()
    assert [(r["id"], r["label"]) for r in owner.post(f"/v1/projects/{pid}/labeling/results").json()] == [(0, "bird")]


def test_wrong_token_sees_nothing(server, context):
    setup_project(server, n=1)
    page = context.new_page()
    sign_in(page, server, "ann_0123456789abcdef_" + "x" * 43)
    expect(page.locator("#signin-error")).to_contain_text("not a valid annotator token")
    expect(page.locator("#work")).to_be_hidden()
    assert "text 0" not in page.content()


def test_dashboard_renders_the_learning_curve(server, context, tmp_path):
    from alloop import Snapshot
    from alloop.engine.service import arrow_ipc_bytes

    pid, owner, (token,) = setup_project(server, n=3)
    ann = client(server.url, token)
    for _ in range(2):
        task = ann.post("/v1/annotate/next").json()["task"]
        ann.post(f"/v1/annotate/tasks/{task['task_id']}/submit", json={"label": "dog", "seconds": 3})
    owner.post(f"/v1/projects/{pid}/records", json={"ids": list(range(20))})
    probs = np.random.default_rng(0).dirichlet(np.ones(3), size=20)
    snap = Snapshot(ids=np.arange(20), probs=probs)
    owner.put(f"/v1/projects/{pid}/loops/0/snapshot/chunks/0", content=arrow_ipc_bytes(snap.to_arrow()),
              headers={"content-type": "application/vnd.apache.arrow.stream"})
    owner.post(f"/v1/projects/{pid}/loops/0/snapshot/commit", json={"n_chunks": 1})
    assert owner.post(f"/v1/projects/{pid}/recommend", json={"k": 5}).status_code == 200
    for loop in range(6):
        n = 10 + 10 * loop
        values = {"n_labels": n, "accuracy": 0.9 - 0.4 * np.exp(-n / 25)}
        values["accuracy_random"] = 0.8 - 0.3 * np.exp(-n / 40)
        assert owner.post(f"/v1/projects/{pid}/labeling/metrics", json={"loop": loop, "values": values}).is_success

    page = context.new_page()
    page.goto(server.url + "/")
    expect(page.get_by_label("Admin token or project key")).to_be_visible()
    assert pid not in page.content()  # signed out: only the form
    page.get_by_label("Admin token or project key").fill(owner.headers["authorization"][7:])
    page.get_by_role("button", name="Sign in").click()
    card = page.locator(f'section[data-project="{pid}"]')
    curve = card.get_by_role("img", name="Learning curve")
    expect(curve).to_be_visible()
    expect(curve.locator("path.series")).to_have_count(2)
    expect(card.get_by_role("img", name="Human labels by class").locator("rect.bar")).to_have_count(3)
    expect(card.locator("table").first).to_contain_text("margin")
    expect(card).to_contain_text("ann")
    assert page.locator("section.project").count() == 1  # a project key sees its own project only
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
    page.reload()
    expect(card.get_by_role("img", name="Learning curve")).to_be_visible()  # the session cookie persists


ARTIFACTS = Path(os.environ.get("ALLOOP_TEST_ARTIFACTS", Path(__file__).parent / "artifacts"))


def test_dashboard_shows_a_finished_demo_campaign(server, context, tmp_path):
    """`alloop demo` (small) against the served engine, attached to its project: every chart of the card."""
    import io

    from rich.console import Console

    from alloop._demo import run_demo
    from alloop.store import CampaignStore

    demo = tmp_path / "demo"
    run_demo(demo, engine=server.url, token=ADMIN, console=Console(file=io.StringIO()), budget=60, batch_size=20,
             labeler="oracle")
    store = CampaignStore(demo)
    pid, metrics, compute = store.get_meta("project_id"), store.values("metrics"), store.values("compute")
    store.close()
    admin = client(server.url, ADMIN)
    assert admin.post(f"/v1/projects/{pid}/labeling/campaign", json={"path": str(demo)}).status_code == 200

    page = context.new_page()
    page.goto(server.url + "/")
    page.get_by_label("Admin token or project key").fill(ADMIN)
    page.get_by_role("button", name="Sign in").click()
    card = page.locator(f'section[data-project="{pid}"]')
    curve = card.get_by_role("img", name="Learning curve")
    expect(curve).to_be_visible()
    assert len(metrics) == 3  # loops 0, 1, 2: 20 + 20 + 20 labels
    expect(curve.locator("circle.point-0")).to_have_count(len(metrics))
    expect(curve.locator("circle.point-1")).to_have_count(3)  # the random baseline the demo ran beside it
    sources = card.get_by_role("img", name="Labels per loop by source")
    expect(sources.locator("rect.source-oracle")).to_have_count(3)
    classes = card.get_by_role("img", name="Classes: labeled vs predicted")
    expect(classes.locator("rect.labeled")).to_have_count(10)
    expect(classes.locator("rect.predicted")).to_have_count(10)
    rows = card.locator("table.compute tr")
    expect(rows).to_have_count(1 + len(compute) + 1)  # header, one per loop, total
    expect(rows.last).to_contain_text(f"{sum(c['records_inferred'] for c in compute.values()):g}")
    expect(card.locator("p.saved")).to_contain_text("From scratch (estimated)")
    expect(card.locator("table.strategy")).to_contain_text("auto")  # the service's own log of each loop
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "dashboard-demo.png"
    card.screenshot(path=str(shot))  # the demo's card (an admin sees every project of the test server)
    print(f"screenshot: {shot}")
    assert shot.stat().st_size > 10_000


def test_dashboard_shows_a_remote_campaign_without_its_directory(server, context, tmp_path):
    """A campaign on "another machine" (remote engine, nothing attached): its reported loops draw every chart."""
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from alloop.labeling import SimulatedOracle
    from alloop.loop import Campaign, SklearnLearner

    X, y = load_iris(return_X_y=True)
    ids, test = np.arange(0, 150, 2), np.arange(1, 150, 2)
    camp = Campaign(
        tmp_path / "elsewhere", learner=SklearnLearner(LogisticRegression(max_iter=300), X[ids], ids, eval_X=X[test],
                                                       eval_y=y[test]),
        labeler=SimulatedOracle(truth={int(i): int(y[i]) for i in ids}), pool=ids, classes=[0, 1, 2], initial=6,
        batch_size=4, max_loops=2, seed=0, engine=server.url, token=ADMIN,
    )
    try:
        camp.run()
        pid, n_loops = camp.engine.project, len(camp.compute())
    finally:
        camp.close()
    page = context.new_page()
    page.goto(server.url + "/")
    page.get_by_label("Admin token or project key").fill(ADMIN)
    page.get_by_role("button", name="Sign in").click()
    card = page.locator(f'section[data-project="{pid}"]')
    expect(card.get_by_role("img", name="Learning curve").locator("circle.point-0")).to_have_count(n_loops)
    sources = card.get_by_role("img", name="Labels per loop by source")
    expect(sources.locator("rect.source-oracle")).to_have_count(n_loops)
    classes = card.get_by_role("img", name="Classes: labeled vs predicted")
    expect(classes.locator("rect.labeled")).to_have_count(3)
    expect(classes.locator("rect.predicted")).to_have_count(3)
    expect(card.locator("table.compute tr")).to_have_count(1 + n_loops + 1)
    expect(card.locator("p.saved")).to_contain_text("From scratch (estimated)")
    expect(card.locator("p.campaign-source")).to_contain_text("reported by the campaign")


def test_image_from_a_registered_folder_shows(server, context, tmp_path):
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "7.png").write_bytes(PNG)
    pid, owner, (token,) = setup_project(server, n=0)
    assert owner.post(f"/v1/projects/{pid}/labeling/folder", json={"path": str(folder)}).status_code == 200
    owner.post(f"/v1/projects/{pid}/labeling/tasks", json={"ids": [7], "payload": [{"image": True}]})
    page = context.new_page()
    sign_in(page, server, token)
    image = page.locator("#image")
    expect(image).to_be_visible()
    page.wait_for_function("document.getElementById('image').complete")
    assert page.evaluate("document.getElementById('image').naturalWidth") == 1  # the 1×1 PNG, decoded
