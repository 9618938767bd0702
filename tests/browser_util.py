"""A real server with the labeling routes, and Debian's Chromium driven by Playwright, for the page tests.

``python -m tests.browser_util --port P --data-dir D`` runs ``create_app`` + ``register_routes`` under uvicorn
(what ``alloop serve`` runs once the lead wires ``register_routes`` into ``create_app``).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.server_util import ADMIN, free_port, wait_healthy

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\x00\x05\x00\x01\xff\x89\x99=\x1d\x00\x00\x00\x00IEND\xaeB`\x82"
)

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        return "Debian's chromium is not installed (apt-get install -y chromium); `make test` installs it"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed (pip install playwright; no browser download)"
    return None


def build_asgi(data_dir: str) -> Any:
    """create_app, then the labeling routes, then the guard learns annotator tokens."""
    from alloop.engine.service import EngineService
    from alloop.server._annotate import register_routes
    from alloop.server._app import create_app
    from alloop.settings import Settings

    settings = Settings(admin_token=ADMIN, data_dir=data_dir, file_roots=(tempfile.gettempdir(),))
    service = EngineService(settings.database_url, settings.data_dir)
    guard, app = create_app(service, settings)
    if getattr(app.state, "labeling", None) is None:  # until create_app calls register_routes itself
        labeling = register_routes(app, service, settings)
        guard.annotator_for_token = labeling.annotator_for_token
    return guard


class LabelServer:
    """A uvicorn process on 127.0.0.1 serving the labeling API and pages."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> LabelServer:
        log_path = self.data_dir.parent / f"label-serve-{self.port}.log"
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop
        root = str(Path(__file__).parents[1])
        env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
        cmd = [sys.executable, "-m", "tests.browser_util", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        self.proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=self._log, stderr=self._log)
        wait_healthy(self.proc, self._log, log_path, self.url, timeout, "the label server")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self._log.close()


def _main(argv: list[str]) -> None:
    import uvicorn

    port = int(argv[argv.index("--port") + 1])
    data_dir = argv[argv.index("--data-dir") + 1]
    uvicorn.run(build_asgi(data_dir), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    _main(sys.argv[1:])
