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

# ---- labeling (revision 0002) -------------------------------------------------------------------
# A task asks for ``required`` judgements of one record; each judgement is a slot that one annotator
# leases for a time limit. Gold questions are tasks of kind "gold" whose slots are added per annotator.

tasks = sa.Table(
    "tasks",
    metadata,
    sa.Column("task_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rid", sa.String(512), nullable=False),  # JSON-encoded record id (keeps int vs str)
    sa.Column("kind", sa.String(8), nullable=False),  # record, gold
    sa.Column("label_set", sa.String(64), nullable=False),  # the skill an annotator needs
    sa.Column("choices", sa.Text, nullable=False),  # JSON list: the allowed labels
    sa.Column("priority", sa.Float, nullable=False),
    sa.Column("required", sa.Integer, nullable=False),
    sa.Column("state", sa.String(12), nullable=False),  # open, done, cancelled
    sa.Column("deadline", sa.Float, nullable=True),
    sa.Column("batch", sa.Integer, nullable=True),  # loop or request number (quotas count per batch)
    sa.Column("predicted", sa.Text, nullable=True),  # JSON: the model's predicted class
    sa.Column("gold_label", sa.Text, nullable=True),  # JSON: the known answer of a gold question
    sa.Column("payload", sa.Text, nullable=True),  # JSON: what the annotator sees, pre-annotations
    sa.Column("consensus", sa.Text, nullable=True),  # JSON: the label delivered to the campaign
    sa.Column("posterior", sa.Float, nullable=True),
    sa.Column("delivered", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", sa.Float, nullable=False),
)
sa.Index("ix_tasks_state", tasks.c.state, tasks.c.kind)
sa.Index("ix_tasks_rid", tasks.c.rid)

task_slots = sa.Table(
    "task_slots",
    metadata,
    sa.Column("task_id", sa.Integer, sa.ForeignKey("tasks.task_id"), primary_key=True, autoincrement=False),
    sa.Column("slot", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("annotator", sa.String(128), nullable=True),  # holder of the lease (or its last holder)
    sa.Column("leased_at", sa.Float, nullable=True),
    sa.Column("expires_at", sa.Float, nullable=True),
    sa.Column("done", sa.Boolean, nullable=False, default=False),
)
sa.Index("ix_task_slots_annotator", task_slots.c.annotator)

task_annotations = sa.Table(
    "annotations",
    metadata,
    sa.Column("annotation_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("task_id", sa.Integer, sa.ForeignKey("tasks.task_id"), nullable=False),
    sa.Column("annotator", sa.String(128), nullable=False),
    sa.Column("label", sa.Text, nullable=False),  # JSON
    sa.Column("seconds", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("task_id", "annotator", name="uq_annotations_task_annotator"),
)

annotators = sa.Table(
    "annotators",
    metadata,
    sa.Column("annotator", sa.String(128), primary_key=True),
    sa.Column("skills", sa.Text, nullable=False),  # JSON list of label sets; [] = every label set
    sa.Column("hours", sa.Text, nullable=True),  # JSON list of [start_hour, end_hour) in UTC; null = any time
    sa.Column("capacity", sa.Integer, nullable=False),  # leases held at once
    sa.Column("quota", sa.Integer, nullable=True),  # judgements per batch; null = no limit
    sa.Column("last_seen", sa.Float, nullable=True),  # heartbeat
    sa.Column("signed_in", sa.Boolean, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)
