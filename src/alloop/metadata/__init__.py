"""Metadata of INFER passes (:class:`Snapshot`) and its running history across loops (:class:`History`)."""

from alloop.metadata.history import History, summary_stats
from alloop.metadata.snapshot import Snapshot

__all__ = ["History", "Snapshot", "summary_stats"]
