"""Start and stop a real `alloop serve` process on 127.0.0.1 for tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

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



def wait_healthy(proc: subprocess.Popen[bytes], log: Any, log_path: Path, url: str, timeout: float, what: str) -> None:
    """Wait for ``GET url/healthz`` = 200; a process that exits or stays unhealthy is reaped and reported."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.close()
            raise RuntimeError(f"{what} exited: " + log_path.read_text())
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    proc.wait(timeout=15)
    log.close()
    raise RuntimeError(f"{what} did not become healthy in time")

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
        wait_healthy(self.proc, log, self.data_dir.parent / f"serve-{self.port}.log", self.url, timeout, "alloop serve")
        return self

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
