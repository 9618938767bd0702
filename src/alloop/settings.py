"""Configuration read in one place, failing loudly. Environment variables are prefixed ``ALLOOP_``.

>>> s = Settings.from_env({"ALLOOP_MAX_BODY_MB": "8"})
>>> s.max_body_bytes
8388608
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from alloop.errors import ConfigError

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    """Server and library settings.

    ALLOOP_ADMIN_TOKEN   token for admin operations (creating projects); unset = no admin access
    ALLOOP_DB            database URL of the engine service (default: SQLite in the data directory)
    ALLOOP_DATA_DIR      where the service keeps Parquet files (default: ./alloop-data)
    ALLOOP_MAX_BODY_MB   largest request body accepted (default 256)
    ALLOOP_FILE_ROOTS    directories (separated by the OS path separator) inside which project owners may register
                         image folders and campaign directories for the pages; unset = none may be registered
    """

    admin_token: str | None = None
    db_url: str | None = None
    data_dir: str = "alloop-data"
    max_body_bytes: int = 256 * 2**20
    file_roots: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        raw = env.get("ALLOOP_MAX_BODY_MB", "256")
        try:
            mb = float(raw)
        except ValueError:
            raise ConfigError(f"ALLOOP_MAX_BODY_MB must be a number of megabytes. Got {raw!r}.") from None
        if mb <= 0:
            raise ConfigError(f"ALLOOP_MAX_BODY_MB must be > 0. Got {raw!r}.")
        token = env.get("ALLOOP_ADMIN_TOKEN") or None
        if token is not None and len(token) < 16:
            raise ConfigError("ALLOOP_ADMIN_TOKEN must be at least 16 characters long; use a random string.")
        return cls(
            admin_token=token,
            db_url=env.get("ALLOOP_DB") or None,
            data_dir=env.get("ALLOOP_DATA_DIR", "alloop-data"),
            max_body_bytes=int(mb * 2**20),
            file_roots=tuple(r for r in env.get("ALLOOP_FILE_ROOTS", "").split(os.pathsep) if r.strip()),
        )

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{os.path.join(self.data_dir, 'engine.db')}"
