"""Engine service schema: projects, record batches, labels, selections, snapshots, recommendations.

Revision ID: s0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "s0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "svc_projects",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "svc_record_batches",
        sa.Column("project_id", sa.String(40), primary_key=True),
        sa.Column("batch", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
    )
    op.create_table(
        "svc_labels",
        sa.Column("project_id", sa.String(40), primary_key=True),
        sa.Column("rid", sa.String(512), primary_key=True),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "svc_selected",
        sa.Column("project_id", sa.String(40), primary_key=True),
        sa.Column("rid", sa.String(512), primary_key=True),
    )
    op.create_table(
        "svc_snapshot_chunks",
        sa.Column("project_id", sa.String(40), primary_key=True),
        sa.Column("loop", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("chunk", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
    )
    op.create_table(
        "svc_snapshots",
        sa.Column("project_id", sa.String(40), primary_key=True),
        sa.Column("loop", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("n_chunks", sa.Integer, nullable=False),
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("committed_at", sa.Float, nullable=False),
    )
    op.create_table(
        "svc_recommendations",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.String(40), nullable=False),
        sa.Column("loop", sa.Integer, nullable=False),
        sa.Column("k", sa.Integer, nullable=False),
        sa.Column("strategy", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("n_selected", sa.Integer, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_svc_recommendations_project_id", "svc_recommendations", ["project_id"])


def downgrade() -> None:
    for table in (
        "svc_recommendations",
        "svc_snapshots",
        "svc_snapshot_chunks",
        "svc_selected",
        "svc_labels",
        "svc_record_batches",
        "svc_projects",
    ):
        op.drop_table(table)
