"""Database plumbing shared by the campaign store and the engine service store.

``make_engine(url)`` opens SQLite (WAL, synchronous=FULL) or PostgreSQL; ``migrate(...)`` brings a
database to the newest Alembic revision of a migration folder, and refuses one stamped by a newer alloop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from alloop.errors import MissingDependencyError, StoreError

__all__ = ["make_engine", "migrate", "schema_revision"]


def make_engine(url: str) -> Engine:
    """A SQLAlchemy engine for ``url``; SQLite gets WAL + full sync, PostgreSQL needs the 'postgres' extra."""
    if url.startswith("postgresql"):
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise MissingDependencyError(
                "A PostgreSQL URL needs the psycopg driver. Install it with: pip install 'alloop[postgres]'"
            ) from exc
    try:
        engine = sa.create_engine(url, future=True, pool_pre_ping=True)
    except sa.exc.ArgumentError as exc:
        raise StoreError(
            f"The database URL {url!r} is not valid ({exc}); use sqlite:///path or postgresql+psycopg://…"
        ) from None
    if engine.dialect.name == "sqlite":

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    return engine


def _config(connection: Any, location: Path) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(location))
    cfg.attributes["connection"] = connection
    return cfg


def migrate(engine: Engine, location: Path, where: str) -> None:
    """Upgrade to head; raise StoreError if the database was written by a newer alloop."""
    from alembic import command
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    try:
        with engine.begin() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
            cfg = _config(conn, location)
            script = ScriptDirectory.from_config(cfg)
            known = {rev.revision for rev in script.walk_revisions()}
            if current is not None and current not in known:
                raise StoreError(
                    f"The database of {where} was written by a newer alloop (schema {current!r}); "
                    "upgrade alloop to open it."
                )
            if current != script.get_current_head():
                command.upgrade(cfg, "head")
    except sa.exc.OperationalError as exc:
        raise StoreError(f"Cannot open the database of {where}: {exc.orig}") from None


def schema_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
