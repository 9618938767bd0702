"""Start and stop a real `alloop serve` process on 127.0.0.1 for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ADMIN = "admin-token-for-tests-0123456789"
_CLIENTS: list[httpx.Client] = []


def client(base_url: str, token: str) -> httpx.Client:
    """An httpx client closed at the end of the test session (see close_clients)."""
    cli = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=60)
    _CLIENTS.append(cli)
    return cli


def close_clients() -> None:
    while _CLIENTS:
        _CLIENTS.pop().close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, data_dir: Path, db_url: str | None = None, port: int | None = None) -> None:
        self.data_dir = data_dir
        self.db_url = db_url
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> Server:
        env = {**os.environ, "ALLOOP_ADMIN_TOKEN": ADMIN}
        cmd = [sys.executable, "-m", "alloop", "serve", "--port", str(self.port), "--data-dir", str(self.data_dir)]
        if self.db_url:
            cmd += ["--db", self.db_url]
        log = open(self.data_dir.parent / f"serve-{self.port}.log", "ab")  # noqa: SIM115 - closed in _reap
        self._log = log
        self.proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._log.close()
                raise RuntimeError(
                    "alloop serve exited: " + (self.data_dir.parent / f"serve-{self.port}.log").read_text()
                )
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.proc.kill()
        self.proc.wait(timeout=15)
        self._log.close()
        raise RuntimeError("alloop serve did not become healthy in time")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)
        self._log.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()
