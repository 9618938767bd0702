"""Labeling: tasks, their leasable slots, annotations and annotators.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tasks",
        sa.Column("task_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("rid", sa.String(512), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("label_set", sa.String(64), nullable=False),
        sa.Column("choices", sa.Text, nullable=False),
        sa.Column("priority", sa.Float, nullable=False),
        sa.Column("required", sa.Integer, nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("deadline", sa.Float, nullable=True),
        sa.Column("batch", sa.Integer, nullable=True),
        sa.Column("predicted", sa.Text, nullable=True),
        sa.Column("gold_label", sa.Text, nullable=True),
        sa.Column("payload", sa.Text, nullable=True),
        sa.Column("consensus", sa.Text, nullable=True),
        sa.Column("posterior", sa.Float, nullable=True),
        sa.Column("delivered", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_index("ix_tasks_state", "tasks", ["state", "kind"])
    op.create_index("ix_tasks_rid", "tasks", ["rid"])
    op.create_table(
        "task_slots",
        sa.Column("task_id", sa.Integer, sa.ForeignKey("tasks.task_id"), primary_key=True, autoincrement=False),
        sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("annotator", sa.String(128), nullable=True),
        sa.Column("leased_at", sa.Float, nullable=True),
        sa.Column("expires_at", sa.Float, nullable=True),
        sa.Column("done", sa.Boolean, nullable=False),
    )
    op.create_index("ix_task_slots_annotator", "task_slots", ["annotator"])
    op.create_table(
        "annotations",
        sa.Column("annotation_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.Integer, sa.ForeignKey("tasks.task_id"), nullable=False),
        sa.Column("annotator", sa.String(128), nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("seconds", sa.Float, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("task_id", "annotator", name="uq_annotations_task_annotator"),
    )
    op.create_table(
        "annotators",
        sa.Column("annotator", sa.String(128), primary_key=True),
        sa.Column("skills", sa.Text, nullable=False),
        sa.Column("hours", sa.Text, nullable=True),
        sa.Column("capacity", sa.Integer, nullable=False),
        sa.Column("quota", sa.Integer, nullable=True),
        sa.Column("last_seen", sa.Float, nullable=True),
        sa.Column("signed_in", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in ("annotators", "annotations", "task_slots", "tasks"):
        op.drop_table(table)
