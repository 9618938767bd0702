"""ASGI middleware that authenticates before any route reads the body, and caps body size.

* ``/v1/projects/{pid}/…`` needs that project's key (or the admin token): 401 without valid credentials,
  403 with a valid key of another project;
* ``/v1/projects`` (create, list) needs the admin token; ``/v1/strategies`` any valid credential;
* ``/v1/annotate/…`` needs an annotator token (``annotator_for_token``): 401 without a valid one, 403 for a
  project key or the admin token; the route sees ``state["project"]`` and ``state["annotator"]``;
* bodies larger than the limit get 413, whether or not they declare a Content-Length.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from typing import Any

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _reply(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        project_for_key: Callable[[str], str | None],
        admin_token: str | None,
        max_body_bytes: int,
        annotator_for_token: Callable[[str], tuple[str, str] | None] | None = None,
    ) -> None:
        self.app = app
        self.project_for_key = project_for_key
        self.admin_token = admin_token
        self.max_body_bytes = max_body_bytes
        self.annotator_for_token = annotator_for_token

    def _is_admin(self, token: str) -> bool:
        return self.admin_token is not None and hmac.compare_digest(token.encode(), self.admin_token.encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        auth = headers.get(b"authorization", b"").decode("latin-1")
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        parts = [p for p in scope["path"].split("/") if p]
        if not token:
            await _reply(send, 401, "Missing credentials: send 'Authorization: Bearer <project key or admin token>'.")
            return
        annotator: str | None = None
        project: str | None = None
        if parts[:2] == ["v1", "annotate"]:
            who = None if self.annotator_for_token is None else self.annotator_for_token(token)
            if who is None:
                if self._is_admin(token) or self.project_for_key(token) is not None:
                    await _reply(send, 403, "The labeling API needs an annotator token; the project owner issues one.")
                else:
                    await _reply(send, 401, "Invalid credentials: the token is not an annotator token.")
                return
            admin, project, annotator = False, who[0], who[1]
        else:
            admin = self._is_admin(token)
            project = None if admin else self.project_for_key(token)
        if not admin and project is None:
            await _reply(send, 401, "Invalid credentials: the token is not a project key or the admin token.")
            return
        if parts[:2] == ["v1", "projects"]:
            if len(parts) == 2 and not admin:
                await _reply(send, 403, "Creating and listing projects needs the admin token (ALLOOP_ADMIN_TOKEN).")
                return
            if len(parts) >= 3 and not admin and parts[2] != project:
                await _reply(send, 403, "This key belongs to another project.")
                return
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await _reply(
                send, 413, f"The body is larger than the limit of {self.max_body_bytes} bytes; send it in chunks."
            )
            return
        seen = 0
        limit = self.max_body_bytes

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _TooLarge()
            return message

        scope.setdefault("state", {})["project"] = project
        scope["state"]["admin"] = admin
        scope["state"]["annotator"] = annotator
        try:
            await self.app(scope, capped, send)
        except _TooLarge:
            await _reply(send, 413, f"The body is larger than the limit of {limit} bytes; send it in chunks.")


class _TooLarge(Exception):
    pass
