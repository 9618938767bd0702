"""The pages: ``/label`` (annotators) and ``/`` (the campaign dashboard), plus their static files.

Everything is served by alloop (no CDN): plain HTML, CSS and JavaScript from ``server/static``; charts are
inline SVG drawn by the page's script. The dashboard's data needs a signed session cookie, set by
``POST /v1/session`` with the admin token or a project key (checked by the guard like any ``/v1`` route);
without the cookie the page shows only its sign-in form.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import json
import secrets
import time
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from alloop.errors import AlloopError

__all__ = ["class_bars_svg", "pages_router", "read_session", "sign_session"]

STATIC = Path(__file__).parent / "static"
COOKIE = "alloop_session"
SESSION_SECONDS = 12 * 3600
_FILES = {
    "label.js": "text/javascript",
    "dashboard.js": "text/javascript",
    "style.css": "text/css",
}
_CSP = (
    "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def sign_session(secret: bytes, claims: dict[str, Any]) -> str:
    """``base64(json).hmac`` — tamper-evident, not secret (holds only the project id and role).

    >>> s = sign_session(b"k", {"project": "p_1", "admin": False, "exp": 2e9})
    >>> read_session(b"k", s, now=0.0)["project"], read_session(b"other", s, now=0.0)
    ('p_1', None)
    """
    body = base64.urlsafe_b64encode(json.dumps(claims, sort_keys=True).encode()).decode().rstrip("=")
    mac = hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def read_session(secret: bytes, value: str | None, *, now: float | None = None) -> dict[str, Any] | None:
    if not value or "." not in value:
        return None
    body, mac = value.rsplit(".", 1)
    if not hmac.compare_digest(mac, hmac.new(secret, body.encode(), hashlib.sha256).hexdigest()):
        return None
    try:
        claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except ValueError:
        return None
    if not isinstance(claims, dict) or float(claims.get("exp", 0)) < (time.time() if now is None else now):
        return None
    return claims


def class_bars_svg(rows: list[dict[str, Any]], *, title: str = "Classes: labeled vs predicted") -> str:
    """A grouped bar chart (SVG text) of ``labeled`` and ``predicted`` per class, each as a share of its total.

    Drawn on the server so the page needs no chart library; every text is escaped.

    >>> svg = class_bars_svg([{"label": "<cat>", "labeled": 3, "predicted": 10}, {"label": 1, "labeled": 1,
    ...                       "predicted": 30}])
    >>> svg.count('class="bar labeled"'), svg.count('class="bar predicted"'), "&lt;cat&gt;" in svg
    (2, 2, True)
    """
    W, H, L, R, T, B = 440, 240, 40, 12, 40, 36
    tot = {k: max(sum(float(r[k]) for r in rows), 1.0) for k in ("labeled", "predicted")}
    share = [{k: float(r[k]) / tot[k] for k in ("labeled", "predicted")} for r in rows]
    top = max([1e-9, *(v for sh in share for v in sh.values())])
    width = (W - L - R) / max(len(rows), 1)
    esc = html.escape
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
        f'aria-label="{esc(title)}" class="chart-svg">',
        f'<text x="{L}" y="16" font-weight="600">{esc(title)}</text>',
        f'<rect x="{W - 190}" y="24" width="10" height="10" fill="#2459d6"/>'
        f'<text x="{W - 176}" y="33">labeled ({int(tot["labeled"]) if rows else 0})</text>',
        f'<rect x="{W - 95}" y="24" width="10" height="10" fill="#e07a10"/><text x="{W - 81}" y="33">predicted</text>',
        f'<line x1="{L}" y1="{H - B}" x2="{W - R}" y2="{H - B}" stroke="#999"/>',
        f'<text x="12" y="{(T + H - B) / 2:.0f}" transform="rotate(-90 12 {(T + H - B) / 2:.0f})" '
        'text-anchor="middle">share of class</text>',
    ]
    for i, (row, sh) in enumerate(zip(rows, share, strict=True)):
        x = L + i * width
        bar = max(width / 2 - 3, 1.0)
        for j, (kind, color) in enumerate((("labeled", "#2459d6"), ("predicted", "#e07a10"))):
            h = sh[kind] / top * (H - T - B)
            parts.append(
                f'<rect class="bar {kind}" x="{x + 2 + j * (bar + 1):.1f}" y="{H - B - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{color}"><title>{esc(str(row["label"]))}: {kind} '
                f'{int(row[kind])} ({sh[kind]:.0%})</title></rect>'
            )
        parts.append(
            f'<text x="{x + width / 2:.1f}" y="{H - B + 14}" text-anchor="middle">{esc(str(row["label"]))}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _page(name: str) -> FileResponse:
    return FileResponse(
        STATIC / name,
        media_type="text/html",
        headers={"content-security-policy": _CSP, "cache-control": "no-store", "x-content-type-options": "nosniff"},
    )


def pages_router(service: Any, labeling: Any, settings: Any) -> APIRouter:
    r = APIRouter()
    # a restart keeps sessions when an admin token is set (the key derives from it); otherwise they end
    admin = getattr(settings, "admin_token", None)
    secret = hashlib.sha256(b"alloop-session\0" + admin.encode()).digest() if admin else secrets.token_bytes(32)

    @r.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return _page("dashboard.html")

    @r.get("/label", include_in_schema=False)
    def label_page() -> FileResponse:
        return _page("label.html")

    @r.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in _FILES:
            return JSONResponse({"detail": "Not found"}, status_code=404)
        return FileResponse(STATIC / name, media_type=_FILES[name], headers={"cache-control": "no-cache"})

    @r.post("/v1/session", tags=["dashboard"])
    def sign_in(request: Request) -> JSONResponse:
        """Trade the bearer credential (admin token or project key) for a signed dashboard cookie."""
        state = request.scope.get("state", {})
        expires = time.time() + SESSION_SECONDS
        claims = {"project": state.get("project"), "admin": bool(state.get("admin")), "exp": expires}
        out = JSONResponse({"project_id": claims["project"], "admin": claims["admin"]})
        out.set_cookie(
            COOKIE, sign_session(secret, claims), max_age=SESSION_SECONDS, httponly=True, samesite="strict", path="/"
        )
        return out

    @r.post("/dashboard/signout", include_in_schema=False)
    def sign_out() -> JSONResponse:
        out = JSONResponse({"status": "signed out"})
        out.delete_cookie(COOKIE, path="/")
        return out

    @r.get("/dashboard/data", include_in_schema=False)
    def data(request: Request) -> JSONResponse:
        claims = read_session(secret, request.cookies.get(COOKIE))
        if claims is None:
            return JSONResponse({"detail": "Sign in with the admin token or a project key."}, status_code=401)
        if claims["admin"]:
            pids = [p["id"] for p in service.projects()]
        else:
            pids = [str(claims["project"])]
        names = {p["id"]: p["name"] for p in service.projects()}
        projects = []
        for pid in pids:
            status = service.status(pid)
            history = service.history(pid)
            projects.append(
                {
                    "id": pid,
                    "name": names.get(pid, pid),
                    "classes": status["classes"],
                    "strategy": status["strategy"],
                    "counts": status["counts"],
                    "loops": len(status["snapshots"]),
                    "history": [
                        {k: h[k] for k in ("loop", "k", "strategy", "reason", "n_selected", "seconds", "created_at")}
                        for h in history
                    ],
                    "labeling": labeling.overview(pid),
                }
            )
            try:
                campaign = labeling.campaign(pid)
            except AlloopError as exc:  # the directory moved or broke: say so on the card, keep the page
                campaign = {"error": str(exc)}
            if campaign is not None and "classes" in campaign:
                campaign["classes_svg"] = class_bars_svg(campaign["classes"])
            projects[-1]["campaign"] = campaign
        return JSONResponse({"admin": claims["admin"], "projects": projects}, headers={"cache-control": "no-store"})

    return r
