"""``alloop serve``: the selection engine over HTTP (extra ``server``: FastAPI + uvicorn).

>>> import tempfile
>>> from alloop.settings import Settings
>>> asgi = build_app(Settings(data_dir=tempfile.mkdtemp(), admin_token="x" * 16))
>>> callable(asgi)
True
"""

from __future__ import annotations

from typing import Any

from alloop.errors import require_extra
from alloop.settings import Settings

__all__ = ["build_app", "openapi_schema", "serve"]


def _fastapi_app(settings: Settings) -> tuple[Any, Any]:
    require_extra("fastapi", "server")
    from alloop.engine.service import EngineService
    from alloop.server._app import create_app

    service = EngineService(settings.database_url, settings.data_dir)
    return create_app(service, settings)


def build_app(settings: Settings | None = None) -> Any:
    """The ASGI app for ``settings`` (default: from ``ALLOOP_*`` environment variables)."""
    return _fastapi_app(settings or Settings.from_env())[0]


def openapi_schema(settings: Settings) -> dict[str, Any]:
    return dict(_fastapi_app(settings)[1].openapi())


def serve(settings: Settings, *, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the service with uvicorn until interrupted."""
    require_extra("uvicorn", "server")
    import uvicorn

    uvicorn.run(build_app(settings), host=host, port=port, log_level="warning")
