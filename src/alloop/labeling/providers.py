"""Label providers for people: the task queue, Label Studio files, and an external partner's webhook.

* :class:`HumanProvider` — ``request`` puts tasks in the store's :class:`~alloop.labeling.tasks.TaskQueue`,
  people lease and submit them (the web page comes later), ``poll`` returns the consensus of completed tasks;
* :class:`LabelStudioProvider` — writes Label Studio task JSON (with the model's predictions as
  pre-annotations) and reads Label Studio's JSON export back;
* :class:`WebhookProvider` — POSTs tasks to a partner's URL with httpx and accepts results on a callback
  signed with HMAC-SHA256 over ``timestamp + "." + raw body``; :func:`handle_callback`-style entry point
  ``provider.handle_callback(body, headers)`` works under any HTTP framework, :class:`CallbackServer` is a
  tiny stdlib receiver.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np

from alloop._validation import check_float, check_int
from alloop.errors import HTTP_STATUS, AlloopError, AuthError, ConfigError, DataError, LabelError
from alloop.labeling._provider import LabelEvent
from alloop.labeling.crowd import Aggregate, majority_vote
from alloop.labeling.tasks import TaskQueue
from alloop.records import as_id_array

__all__ = [
    "CallbackServer",
    "HumanProvider",
    "LabelStudioProvider",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WebhookProvider",
    "sign_body",
    "verify_signature",
]

SIGNATURE_HEADER = "X-Alloop-Signature"
TIMESTAMP_HEADER = "X-Alloop-Timestamp"


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _consensus(
    judgements: list[tuple[Any, str, Any]], classes: Sequence[Any], aggregate: Aggregate | None
) -> Mapping[Any, tuple[Any, float]]:
    return (aggregate or majority_vote)(judgements, list(classes))


# ---- people through the task queue ---------------------------------------------------------------
class HumanProvider:
    """Tasks served to people through the campaign store's task queue.

    queue        a :class:`~alloop.labeling.tasks.TaskQueue`
    classes      the label set
    redundancy   judgements per record
    aggregate    consensus over judgements (default majority vote), e.g. Dawid–Skene
    predicted    optional callable ids → predicted classes, for allocation and pre-annotation
    priority     optional callable ids → priorities (higher = sooner)
    """

    def __init__(
        self,
        queue: TaskQueue,
        *,
        classes: Sequence[Any],
        redundancy: int = 1,
        aggregate: Aggregate | None = None,
        predicted: Callable[[list[Any]], Sequence[Any]] | None = None,
        priority: Callable[[list[Any]], Sequence[float]] | None = None,
        label_set: str = "default",
        deadline_seconds: float | None = None,
    ) -> None:
        self.queue = queue
        self.classes = classes
        self.redundancy = redundancy
        self.aggregate = aggregate
        self.predicted = predicted
        self.priority = priority
        self.label_set = label_set
        self.deadline_seconds = deadline_seconds
        self._batches = 0

    def request(self, ids: Any) -> None:
        check_int(self.redundancy, "redundancy", "HumanProvider", min=1)
        check_float(self.deadline_seconds, "deadline_seconds", "HumanProvider", low=0.0, allow_none=True)
        rids = as_id_array(ids, "ids").tolist()
        if not rids:
            return
        deadline = None if self.deadline_seconds is None else time.time() + float(self.deadline_seconds)
        self.queue.add_tasks(
            rids,
            classes=list(self.classes),
            required=int(self.redundancy),
            priority=0.0 if self.priority is None else list(self.priority(rids)),
            predicted=None if self.predicted is None else list(self.predicted(rids)),
            deadline=deadline,
            label_set=self.label_set,
            batch=self._batches,
        )
        self._batches += 1

    def poll(self) -> list[LabelEvent]:
        done = self.queue.completed()
        if not done:
            return []
        judgements = [(t["rid"], n["annotator"], n["label"]) for t, notes in done for n in notes]
        result = _consensus(judgements, self.classes, self.aggregate)
        events, delivered = [], {}
        for task, notes in done:
            label, posterior = result[task["rid"]]
            events.append(
                LabelEvent(
                    id=task["rid"], label=_plain(label), source="human",
                    annotator=",".join(n["annotator"] for n in notes), posterior=float(posterior),
                )
            )
            delivered[task["task_id"]] = (_plain(label), float(posterior))
        self.queue.mark_delivered(delivered)
        return events

    def cancel(self, ids: Any) -> None:
        self.queue.cancel(as_id_array(ids, "ids").tolist())


# ---- Label Studio files --------------------------------------------------------------------------
class LabelStudioProvider:
    """Exchange tasks with Label Studio through its JSON formats (no server needed).

    ``request(ids)`` writes ``<directory>/tasks-NNNN.json``: Label Studio tasks whose ``data`` holds the
    record's fields (from ``data``) and ``alloop_id``, and whose ``predictions`` carry the model's class as
    a pre-annotation. Import that file into a project configured with :meth:`label_config`. Export the
    project as JSON into ``<directory>/imports/`` (or pass a file to :meth:`import_file`); ``poll()`` reads
    the exports and returns one consensus label per requested record (cancelled annotations skipped).
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        classes: Sequence[Any],
        data: Callable[[Any], Mapping[str, Any]] | None = None,
        predictions: Callable[[list[Any]], Sequence[tuple[Any, float]]] | None = None,
        from_name: str = "label",
        to_name: str = "text",
        data_key: str = "text",
        model_version: str = "alloop",
        redundancy: int = 1,
        aggregate: Aggregate | None = None,
    ) -> None:
        self.directory = directory
        self.classes = classes
        self.data = data
        self.predictions = predictions
        self.from_name = from_name
        self.to_name = to_name
        self.data_key = data_key
        self.model_version = model_version
        self.redundancy = redundancy
        self.aggregate = aggregate
        self._requested: set[str] = set()
        self._delivered: set[str] = set()
        self._judgements: dict[str, dict[str, Any]] = {}  # key -> {annotator id: label}
        self._ids: dict[str, Any] = {}
        self._read: set[tuple[str, float, int]] = set()
        self._files = 0

    def label_config(self) -> str:
        """The Label Studio labeling config matching the exported tasks (one choice per class)."""
        choices = "".join(f'<Choice value="{c}"/>' for c in self.classes)
        return (
            f'<View><Text name="{self.to_name}" value="${self.data_key}"/>'
            f'<Choices name="{self.from_name}" toName="{self.to_name}" choice="single">{choices}</Choices></View>'
        )

    def _dir(self) -> Path:
        path = Path(self.directory)
        (path / "imports").mkdir(parents=True, exist_ok=True)
        return path

    def request(self, ids: Any) -> Path | None:
        rids = [r for r in as_id_array(ids, "ids").tolist() if json.dumps(r) not in self._requested]
        if not rids:
            return None
        preds = None if self.predictions is None else list(self.predictions(rids))
        tasks = []
        for i, rid in enumerate(rids):
            data = dict(self.data(rid)) if self.data is not None else {self.data_key: str(rid)}
            data["alloop_id"] = rid
            task: dict[str, Any] = {"data": data}
            if preds is not None:
                label, score = preds[i]
                task["predictions"] = [
                    {
                        "model_version": self.model_version,
                        "score": float(score),
                        "result": [
                            {
                                "from_name": self.from_name, "to_name": self.to_name, "type": "choices",
                                "value": {"choices": [_plain(label)]},
                            }
                        ],
                    }
                ]
            tasks.append(task)
        path = self._dir() / f"tasks-{self._files:04d}.json"
        while path.exists():
            self._files += 1
            path = self._dir() / f"tasks-{self._files:04d}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(tasks, indent=1))
        tmp.replace(path)
        self._files += 1
        for rid in rids:
            self._requested.add(json.dumps(rid))
            self._ids[json.dumps(rid)] = rid
        return path

    def import_file(self, path: str | Path) -> int:
        """Read one Label Studio JSON export; returns how many annotations were taken in.

        Raises DataError for a file that is not a Label Studio export, LabelError for a choice outside
        ``classes``; nothing is taken from a file that fails.
        """
        try:
            payload = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{str(path)!r} is not a readable Label Studio JSON export: {exc}") from None
        if not isinstance(payload, list):
            raise DataError(f"{str(path)!r}: a Label Studio JSON export is a list of tasks.")
        found: list[tuple[str, str, Any]] = []
        for n, task in enumerate(payload):
            if not isinstance(task, dict) or not isinstance(task.get("data"), dict) or "alloop_id" not in task["data"]:
                raise DataError(f"{str(path)!r}: task #{n} has no data.alloop_id; export tasks that alloop wrote.")
            key = json.dumps(task["data"]["alloop_id"])
            for k, ann in enumerate(task.get("annotations") or []):
                if ann.get("was_cancelled"):
                    continue
                choice = None
                for res in ann.get("result") or []:
                    if res.get("from_name") == self.from_name and res.get("type") == "choices":
                        picked = (res.get("value") or {}).get("choices") or []
                        choice = picked[0] if picked else None
                if choice is None:
                    continue
                label = next((c for c in self.classes if str(c) == str(choice)), None)
                if label is None:
                    raise LabelError(
                        f"{str(path)!r}: task #{n} was labeled {choice!r}, not one of {list(self.classes)!r}; "
                        "fix the project's label config."
                    )
                who = ann.get("completed_by")
                who = str(who.get("email", who.get("id"))) if isinstance(who, dict) else str(who or f"ls-{k}")
                found.append((key, who, _plain(label)))
        for key, who, label in found:
            self._judgements.setdefault(key, {})[who] = label
        return len(found)

    def poll(self) -> list[LabelEvent]:
        check_int(self.redundancy, "redundancy", "LabelStudioProvider", min=1)
        for path in sorted((self._dir() / "imports").glob("*.json")):
            st = path.stat()
            tag = (str(path), st.st_mtime, st.st_size)
            if tag not in self._read:
                self.import_file(path)
                self._read.add(tag)
        ready = [
            k for k, v in self._judgements.items()
            if k in self._requested and k not in self._delivered and len(v) >= self.redundancy
        ]
        if not ready:
            return []
        judgements = [(k, who, y) for k in ready for who, y in self._judgements[k].items()]
        result = _consensus(judgements, self.classes, self.aggregate)
        events = []
        for k in ready:
            label, posterior = result[k]
            events.append(
                LabelEvent(
                    id=self._ids[k], label=label, source="human",
                    annotator=",".join(self._judgements[k]), posterior=float(posterior),
                )
            )
            self._delivered.add(k)
        return events

    def cancel(self, ids: Any) -> None:
        for rid in as_id_array(ids, "ids").tolist():
            self._requested.discard(json.dumps(rid))


# ---- a labeling partner behind a webhook ---------------------------------------------------------
def sign_body(secret: str | bytes, body: bytes, timestamp: float | int | None = None) -> dict[str, str]:
    """Headers that sign ``body``: HMAC-SHA256 over ``b"<timestamp>." + body``.

    >>> h = sign_body("s3cret", b"{}", timestamp=1700000000)
    >>> h["X-Alloop-Timestamp"], h["X-Alloop-Signature"][:7]
    ('1700000000', 'sha256=')
    """
    ts = str(int(time.time() if timestamp is None else timestamp))
    key = secret.encode() if isinstance(secret, str) else secret
    digest = hmac.new(key, ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {TIMESTAMP_HEADER: ts, SIGNATURE_HEADER: f"sha256={digest}"}


def verify_signature(
    secret: str | bytes,
    body: bytes,
    headers: Mapping[str, str],
    *,
    tolerance: float = 300.0,
    now: float | None = None,
) -> str:
    """Check a callback's signature and freshness; return the signature (to detect replays) or raise AuthError.

    >>> body = b'{"results": []}'
    >>> verify_signature("k", body, sign_body("k", body, 100), now=120).startswith("sha256=")
    True
    """
    lower = {k.lower(): v for k, v in headers.items()}
    sig = lower.get(SIGNATURE_HEADER.lower())
    ts = lower.get(TIMESTAMP_HEADER.lower())
    if not sig or not ts:
        raise AuthError(f"Unsigned callback: the {SIGNATURE_HEADER} and {TIMESTAMP_HEADER} headers are required.")
    try:
        stamp = int(ts)
    except ValueError:
        raise AuthError(f"The {TIMESTAMP_HEADER} header must be integer Unix seconds. Got {ts!r}.") from None
    expected = sign_body(secret, body, stamp)[SIGNATURE_HEADER]
    if not hmac.compare_digest(expected, sig):
        raise AuthError("Wrong callback signature: sign 'timestamp.body' with HMAC-SHA256 and the shared secret.")
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance:
        raise AuthError(f"Stale callback: its timestamp is {current - stamp:.0f} s away (limit {tolerance:.0f} s).")
    return sig


class WebhookProvider:
    """Send tasks to an external labeling partner; take their results on a signed callback.

    url            where ``request`` POSTs ``{"tasks": [{"id", "choices", "data"?, "prediction"?}],
                   "callback_url"}`` (signed the same way, so the partner can check it came from us)
    secret         the shared HMAC-SHA256 key
    callback_url   where the partner sends ``{"results": [{"id", "label", "annotator"?}]}``
    tolerance      callbacks whose timestamp is further than this from now are stale (401)
    redundancy     results per record before its consensus is delivered
    """

    def __init__(
        self,
        url: str,
        *,
        secret: str | bytes,
        classes: Sequence[Any],
        callback_url: str | None = None,
        data: Callable[[Any], Mapping[str, Any]] | None = None,
        predictions: Callable[[list[Any]], Sequence[tuple[Any, float]]] | None = None,
        tolerance: float = 300.0,
        timeout: float = 10.0,
        redundancy: int = 1,
        aggregate: Aggregate | None = None,
        client: Any = None,
    ) -> None:
        self.url = url
        self.secret = secret
        self.classes = classes
        self.callback_url = callback_url
        self.data = data
        self.predictions = predictions
        self.tolerance = tolerance
        self.timeout = timeout
        self.redundancy = redundancy
        self.aggregate = aggregate
        self.client = client
        self._lock = threading.Lock()
        self._requested: dict[str, Any] = {}
        self._judgements: dict[str, dict[str, Any]] = {}
        self._delivered: set[str] = set()
        self._seen_signatures: dict[str, float] = {}

    def _check(self) -> None:
        if not self.secret:
            raise ConfigError("The 'secret' parameter of WebhookProvider must be a non-empty shared key.")
        check_float(self.tolerance, "tolerance", "WebhookProvider", low=1.0)
        check_int(self.redundancy, "redundancy", "WebhookProvider", min=1)

    def request(self, ids: Any) -> None:
        import httpx

        self._check()
        rids = [r for r in as_id_array(ids, "ids").tolist() if json.dumps(r) not in self._requested]
        if not rids:
            return
        preds = None if self.predictions is None else list(self.predictions(rids))
        tasks = []
        for i, rid in enumerate(rids):
            task: dict[str, Any] = {"id": rid, "choices": [_plain(c) for c in self.classes]}
            if self.data is not None:
                task["data"] = dict(self.data(rid))
            if preds is not None:
                task["prediction"] = {"label": _plain(preds[i][0]), "score": float(preds[i][1])}
            tasks.append(task)
        body = json.dumps({"tasks": tasks, "callback_url": self.callback_url}).encode()
        headers = {"Content-Type": "application/json", **sign_body(self.secret, body)}
        client = self.client or httpx.Client(timeout=self.timeout)
        try:
            response = client.post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise AlloopError(f"Cannot POST tasks to {self.url!r}: {exc}; nothing was requested.") from None
        finally:
            if self.client is None:
                client.close()
        if response.status_code >= 300:
            raise AlloopError(
                f"The labeling partner at {self.url!r} refused the tasks (HTTP {response.status_code}); "
                "nothing was requested."
            )
        with self._lock:
            for rid in rids:
                self._requested[json.dumps(rid)] = rid

    def handle_callback(self, body: bytes, headers: Mapping[str, str], *, now: float | None = None) -> tuple[int, dict]:
        """Verify and take in one callback; returns ``(HTTP status, JSON reply)``. Usable by any framework.

        401 for an unsigned, wrongly signed, stale or replayed callback; 422/404 for bad content. A refused
        callback changes nothing.
        """
        try:
            taken = self.accept(body, headers, now=now)
        except AlloopError as exc:
            status = next(code for cls, code in HTTP_STATUS.items() if isinstance(exc, cls))
            return status, {"error": type(exc).__name__, "detail": str(exc)}
        return 200, {"accepted": taken}

    def accept(self, body: bytes, headers: Mapping[str, str], *, now: float | None = None) -> int:
        """Like :meth:`handle_callback` but raising alloop errors; returns the number of results taken."""
        self._check()
        current = time.time() if now is None else now
        sig = verify_signature(self.secret, body, headers, tolerance=float(self.tolerance), now=current)
        try:
            payload = json.loads(body)
        except json.JSONDecodeError as exc:
            raise DataError(f"The callback body is not JSON: {exc}.") from None
        results = payload.get("results") if isinstance(payload, dict) else None
        if not isinstance(results, list):
            raise DataError('The callback body must be {"results": [{"id": ..., "label": ...}, ...]}.')
        rows = []
        for n, r in enumerate(results):
            if not isinstance(r, dict) or "id" not in r or "label" not in r:
                raise DataError(f"Callback result #{n} needs 'id' and 'label'.")
            if r["label"] not in list(self.classes):
                raise LabelError(f"Callback result #{n}: label {r['label']!r} is not one of {list(self.classes)!r}.")
            rows.append((json.dumps(r["id"]), str(r.get("annotator") or "partner"), r["label"]))
        with self._lock:
            self._seen_signatures = {
                s: t for s, t in self._seen_signatures.items() if current - t <= 2 * float(self.tolerance)
            }
            if sig in self._seen_signatures:
                raise AuthError("Replayed callback: this signed body was already accepted.")
            unknown = [k for k, _, _ in rows if k not in self._requested]
            if unknown:
                raise DataError(f"Callback result for id {json.loads(unknown[0])!r}, which was never requested.")
            self._seen_signatures[sig] = current
            for key, who, label in rows:
                self._judgements.setdefault(key, {})[who] = label
        return len(rows)

    def poll(self) -> list[LabelEvent]:
        with self._lock:
            ready = [
                k for k, v in self._judgements.items()
                if k in self._requested and k not in self._delivered and len(v) >= int(self.redundancy)
            ]
            if not ready:
                return []
            judgements = [(k, who, y) for k in ready for who, y in self._judgements[k].items()]
            result = _consensus(judgements, self.classes, self.aggregate)
            events = []
            for k in ready:
                label, posterior = result[k]
                events.append(
                    LabelEvent(
                        id=self._requested[k], label=label, source="human",
                        annotator=",".join(self._judgements[k]), posterior=float(posterior),
                    )
                )
                self._delivered.add(k)
        return events

    def cancel(self, ids: Any) -> None:
        with self._lock:
            for rid in as_id_array(ids, "ids").tolist():
                self._requested.pop(json.dumps(rid), None)


class CallbackServer:
    """A tiny stdlib HTTP receiver for a :class:`WebhookProvider`'s callbacks (tests, small setups).

    >>> with CallbackServer(WebhookProvider("http://127.0.0.1:9/", secret="k", classes=[0, 1])) as server:
    ...     server.url.startswith("http://127.0.0.1:")
    True
    """

    def __init__(self, provider: WebhookProvider, *, host: str = "127.0.0.1", port: int = 0, path: str = "/callback"):
        self.provider = provider
        self.host = host
        self.port = port
        self.path = path
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> CallbackServer:
        provider, route = self.provider, self.path

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (stdlib name)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.path != route:
                    status, reply = 404, {"error": "NotFound", "detail": f"POST callbacks to {route}"}
                else:
                    status, reply = provider.handle_callback(body, dict(self.headers.items()))
                data = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        if self._server is None:
            raise ConfigError("CallbackServer is not started; call start() or use it as a context manager.")
        host, port = self._server.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else str(host)
        return f"http://{host}:{port}{self.path}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> CallbackServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
