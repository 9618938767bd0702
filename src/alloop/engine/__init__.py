"""The selection engine: from History to a recommendation."""

from alloop.engine._engine import Selection, SelectionEngine

__all__ = ["Selection", "SelectionEngine"]
