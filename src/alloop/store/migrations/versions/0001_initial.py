"""Initial campaign schema: meta, records, loops, selections, labels, metrics, compute.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "campaign_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "records",
        sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("rid", sa.String(512), nullable=True),
        sa.Column("state", sa.SmallInteger, nullable=False),
        sa.Column("added_loop", sa.Integer, nullable=False),
    )
    op.create_index("ix_records_rid", "records", ["rid"], unique=True)
    op.create_table(
        "loops",
        sa.Column("loop", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("strategy", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("hand_edited", sa.Boolean, nullable=False),
        sa.Column("selected_by", sa.String(32), nullable=True),
        sa.Column("model_version", sa.String(32), nullable=True),
        sa.Column("train_mode", sa.String(16), nullable=True),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "selections",
        sa.Column("loop", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("rank", sa.Integer, nullable=False),
        sa.Column("score", sa.Float, nullable=True),
    )
    op.create_table(
        "labels",
        sa.Column("idx", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("annotator", sa.String(256), nullable=True),
        sa.Column("posterior", sa.Float, nullable=True),
        sa.Column("loop", sa.Integer, nullable=False),
        sa.Column("model_version", sa.String(32), nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "metrics",
        sa.Column("loop", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
    )
    op.create_table(
        "compute",
        sa.Column("loop", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in ("compute", "metrics", "labels", "selections", "loops", "records", "campaign_meta"):
        op.drop_table(table)
