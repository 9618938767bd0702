"""The campaign store: SQLAlchemy tables (SQLite by default), Alembic migrations, Parquet snapshots."""

from alloop.store._store import DB_NAME, SCHEMA_HEAD, CampaignStore

__all__ = ["DB_NAME", "SCHEMA_HEAD", "CampaignStore"]
