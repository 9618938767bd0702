"""HumanProvider (task queue), LabelStudioProvider (files), WebhookProvider (real HTTP on 127.0.0.1)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest

from alloop.errors import AlloopError, DataError, LabelError
from alloop.labeling import LabelProvider
from alloop.labeling.providers import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    CallbackServer,
    HumanProvider,
    LabelStudioProvider,
    WebhookProvider,
    sign_body,
)
from alloop.labeling.tasks import TaskQueue
from alloop.store import CampaignStore


# ---- HumanProvider -------------------------------------------------------------------------------
def test_human_provider_through_the_queue(tmp_path: Path) -> None:
    queue = TaskQueue(CampaignStore(tmp_path / "c", create=True))
    provider = HumanProvider(queue, classes=["cat", "dog"], redundancy=2, predicted=lambda ids: ["dog"] * len(ids))
    assert isinstance(provider, LabelProvider)
    provider.request(np.array([7, 8]))
    assert provider.poll() == []
    for name in ("ann", "bob"):
        queue.annotators.register(name, capacity=5)
    answers = {"ann": {7: "dog", 8: "cat"}, "bob": {7: "dog", 8: "dog"}}
    for name in ("ann", "bob"):
        while (lease := queue.lease(name)) is not None:
            assert lease.predicted == "dog"
            queue.submit(lease.task_id, name, answers[name][lease.rid], seconds=1.0)
    events = {e.id: e for e in provider.poll()}
    assert set(events) == {7, 8}
    assert events[7].label == "dog" and events[7].posterior == 1.0
    assert events[8].posterior == 0.5 and sorted(events[8].annotator.split(",")) == ["ann", "bob"]
    assert provider.poll() == []  # delivered once
    assert {t["rid"]: t["consensus"] for t in queue.tasks()} == {7: "dog", 8: events[8].label}
    provider.request([9])
    provider.cancel([9])
    assert queue.pending() == 0


# ---- Label Studio --------------------------------------------------------------------------------
def test_label_studio_round_trip_on_files(tmp_path: Path) -> None:
    provider = LabelStudioProvider(
        tmp_path / "ls",
        classes=["neg", "pos"],
        data=lambda rid: {"text": f"review number {rid}"},
        predictions=lambda ids: [("pos", 0.8)] * len(ids),
        redundancy=2,
    )
    path = provider.request([1, 2, 3])
    tasks = json.loads(path.read_text())
    assert [t["data"]["alloop_id"] for t in tasks] == [1, 2, 3]
    pre = tasks[0]["predictions"][0]
    assert pre["score"] == 0.8 and pre["result"][0]["value"] == {"choices": ["pos"]}
    assert pre["result"][0]["from_name"] == "label" and pre["result"][0]["type"] == "choices"
    assert '<Choice value="neg"/>' in provider.label_config()
    # what Label Studio exports after people annotated the imported tasks
    export = []
    for i, t in enumerate(tasks):
        anns = []
        for who, choice in ((10, "pos"), (11, "neg" if t["data"]["alloop_id"] == 3 else "pos")):
            anns.append({
                "id": 100 + i * 2 + who, "completed_by": who, "was_cancelled": False, "lead_time": 4.2,
                "result": [
                    {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [choice]}}
                ],
            })
        if t["data"]["alloop_id"] == 2:
            anns = anns[:1] + [{**anns[1], "was_cancelled": True}]
        export.append({"id": 50 + i, "data": t["data"], "annotations": anns, "predictions": t["predictions"]})
    (tmp_path / "ls" / "imports" / "project-1.json").write_text(json.dumps(export))
    events = {e.id: e for e in provider.poll()}
    assert set(events) == {1, 3}  # record 2 has one valid annotation of the two required
    assert events[1].label == "pos" and events[1].posterior == 1.0 and events[1].annotator == "10,11"
    assert events[3].posterior == 0.5
    assert provider.poll() == []


def test_label_studio_bad_exports(tmp_path: Path) -> None:
    provider = LabelStudioProvider(tmp_path / "ls", classes=["a", "b"])
    provider.request(["x"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"not": "a list"}))
    with pytest.raises(DataError):
        provider.import_file(bad)
    bad.write_text(json.dumps([{"data": {"alloop_id": "x"}, "annotations": [
        {"result": [{"from_name": "label", "type": "choices", "value": {"choices": ["zzz"]}}]}]}]))
    with pytest.raises(LabelError, match="zzz"):
        provider.import_file(bad)
    assert provider.poll() == []


# ---- Webhook -------------------------------------------------------------------------------------
class Partner:
    """A labeling partner on 127.0.0.1 that records the tasks it receives."""

    def __init__(self, status: int = 202) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append((body, dict(self.headers.items())))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/tasks"

    def __enter__(self) -> Partner:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


SECRET = "shared-secret"


def test_webhook_round_trip_and_rejections() -> None:
    with Partner() as partner:
        provider = WebhookProvider(partner.url, secret=SECRET, classes=["spam", "ham"],
                                   predictions=lambda ids: [("spam", 0.6)] * len(ids))
        with CallbackServer(provider) as receiver:
            provider.callback_url = receiver.url
            provider.request(np.array([1, 2]))
            body, headers = partner.received[0]
            sent = json.loads(body)
            assert [t["id"] for t in sent["tasks"]] == [1, 2] and sent["callback_url"] == receiver.url
            assert sent["tasks"][0]["prediction"] == {"label": "spam", "score": 0.6}
            expected = sign_body(SECRET, body, int(headers[TIMESTAMP_HEADER]))[SIGNATURE_HEADER]
            assert headers[SIGNATURE_HEADER] == expected

            result = json.dumps({"results": [{"id": 1, "label": "ham", "annotator": "p1"}]}).encode()
            with httpx.Client() as client:
                def post(content: bytes, hdrs: dict) -> httpx.Response:
                    return client.post(receiver.url, content=content, headers=hdrs)

                assert post(result, {}).status_code == 401  # unsigned
                assert post(result, sign_body("wrong", result)).status_code == 401
                assert post(result, sign_body(SECRET, result, time.time() - 3600)).status_code == 401  # stale
                tampered = result.replace(b"ham", b"spam")
                assert post(tampered, sign_body(SECRET, result)).status_code == 401
                assert provider.poll() == []  # nothing refused got in
                good = sign_body(SECRET, result)
                ok = post(result, good)
                assert ok.status_code == 200 and ok.json() == {"accepted": 1}
                replay = post(result, good)
                assert replay.status_code == 401 and "Replayed" in replay.json()["detail"]
                bad_label = json.dumps({"results": [{"id": 2, "label": "eggs"}]}).encode()
                assert post(bad_label, sign_body(SECRET, bad_label)).status_code == 422
                never = json.dumps({"results": [{"id": 99, "label": "ham"}]}).encode()
                assert post(never, sign_body(SECRET, never)).status_code == 422
        events = provider.poll()
        assert [(e.id, e.label, e.annotator) for e in events] == [(1, "ham", "p1")]
        assert provider.poll() == []


def test_webhook_partner_refusal_requests_nothing() -> None:
    with Partner(status=500) as partner:
        provider = WebhookProvider(partner.url, secret=SECRET, classes=[0, 1])
        with pytest.raises(AlloopError, match="HTTP 500"):
            provider.request([1])
        body = json.dumps({"results": [{"id": 1, "label": 0}]}).encode()
        status, reply = provider.handle_callback(body, sign_body(SECRET, body))
        assert status == 422 and "never requested" in reply["detail"]
