"""The campaign store's tables (SQLAlchemy Core). Migrations in ``migrations/`` create and evolve them."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

meta = sa.Table(
    "campaign_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),  # JSON
)

records = sa.Table(
    "records",
    metadata,
    sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),  # insertion order, never reused
    sa.Column("rid", sa.String(512), nullable=True),  # NULL once removed (tombstone)
    sa.Column("state", sa.SmallInteger, nullable=False),  # RecordState, -1 = removed
    sa.Column("added_loop", sa.Integer, nullable=False),
)
sa.Index("ix_records_rid", records.c.rid, unique=True)

loops = sa.Table(
    "loops",
    metadata,
    sa.Column("loop", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("phase", sa.String(16), nullable=False),  # review, selected, labeled, trained, inferred
    sa.Column("strategy", sa.String(256), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("hand_edited", sa.Boolean, nullable=False, default=False),
    sa.Column("selected_by", sa.String(32), nullable=True),  # model version whose snapshot drove it
    sa.Column("model_version", sa.String(32), nullable=True),  # model trained in this loop
    sa.Column("train_mode", sa.String(16), nullable=True),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

selections = sa.Table(
    "selections",
    metadata,
    sa.Column("loop", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("rank", sa.Integer, nullable=False),
    sa.Column("score", sa.Float, nullable=True),
)

labels = sa.Table(
    "labels",
    metadata,
    sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("label", sa.Text, nullable=False),  # JSON-encoded class value
    sa.Column("source", sa.String(16), nullable=False),  # human, auto, weak, oracle
    sa.Column("annotator", sa.String(256), nullable=True),
    sa.Column("posterior", sa.Float, nullable=True),
    sa.Column("loop", sa.Integer, nullable=False),
    sa.Column("model_version", sa.String(32), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("loop", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("value", sa.Float, nullable=False),
)

compute = sa.Table(
    "compute",
    metadata,
    sa.Column("loop", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(64), primary_key=True),  # train_cpu_s, infer_cpu_s, select_cpu_s, ...
    sa.Column("value", sa.Float, nullable=False),
)
