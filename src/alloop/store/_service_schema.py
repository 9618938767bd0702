"""Tables of the engine service database (``alloop serve``): projects and each project's engine state.

Record ids and snapshots live in Parquet files under the service's data directory; the database holds
only their metadata, the labels, the pending selections and the recommendation log.
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

projects = sa.Table(
    "svc_projects",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("config", sa.Text, nullable=False),  # JSON: classes, strategy, seed, id_kind
    sa.Column("created_at", sa.Float, nullable=False),
)

record_batches = sa.Table(
    "svc_record_batches",
    metadata,
    sa.Column("project_id", sa.String(40), primary_key=True),
    sa.Column("batch", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
)

labels = sa.Table(
    "svc_labels",
    metadata,
    sa.Column("project_id", sa.String(40), primary_key=True),
    sa.Column("rid", sa.String(512), primary_key=True),
    sa.Column("label", sa.Text, nullable=False),  # JSON class value
    sa.Column("created_at", sa.Float, nullable=False),
)

selected = sa.Table(
    "svc_selected",
    metadata,
    sa.Column("project_id", sa.String(40), primary_key=True),
    sa.Column("rid", sa.String(512), primary_key=True),
)

snapshot_chunks = sa.Table(
    "svc_snapshot_chunks",
    metadata,
    sa.Column("project_id", sa.String(40), primary_key=True),
    sa.Column("loop", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("chunk", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
)

snapshots = sa.Table(
    "svc_snapshots",
    metadata,
    sa.Column("project_id", sa.String(40), primary_key=True),
    sa.Column("loop", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("n_chunks", sa.Integer, nullable=False),
    sa.Column("n_rows", sa.Integer, nullable=False),
    sa.Column("committed_at", sa.Float, nullable=False),
)

recommendations = sa.Table(
    "svc_recommendations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.String(40), nullable=False, index=True),
    sa.Column("loop", sa.Integer, nullable=False),
    sa.Column("k", sa.Integer, nullable=False),
    sa.Column("strategy", sa.String(256), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("n_selected", sa.Integer, nullable=False),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)
