"""Labeling: the provider interface and the simulated oracle (crowds, people and webhooks come later)."""

from alloop.labeling._provider import LabelEvent, LabelProvider, SimulatedOracle

__all__ = ["LabelEvent", "LabelProvider", "SimulatedOracle"]
