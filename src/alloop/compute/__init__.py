"""Compute-saving active learning: warm start, candidate reduction, inference skipping, compute accounting.

>>> from alloop.compute import subsample_size
>>> subsample_size(0.01, 0.99)
459
"""

from alloop.compute._accounting import FIELDS, campaign_savings, saved_text, savings_report, savings_summary
from alloop.compute._candidates import (
    BACKENDS,
    NeighbourIndex,
    ProxyLearner,
    SealsIndex,
    best_backend,
    subsample_guarantee,
    subsample_size,
)
from alloop.compute._policy import LARGE_POOL, ComputePolicy, auto_policy, choose_inference, is_network, resolve_compute
from alloop.compute._skip import InferencePolicy, plan_inference
from alloop.compute._torch import fresh_like, shrink_perturb, shrink_perturb_state
from alloop.compute._warm import WarmStartLearner, WarmStartPolicy, choose_mode, replay_sample

__all__ = [
    "BACKENDS",
    "FIELDS",
    "LARGE_POOL",
    "ComputePolicy",
    "InferencePolicy",
    "NeighbourIndex",
    "ProxyLearner",
    "SealsIndex",
    "WarmStartLearner",
    "WarmStartPolicy",
    "auto_policy",
    "best_backend",
    "campaign_savings",
    "choose_inference",
    "choose_mode",
    "fresh_like",
    "is_network",
    "plan_inference",
    "replay_sample",
    "resolve_compute",
    "saved_text",
    "savings_report",
    "savings_summary",
    "shrink_perturb",
    "shrink_perturb_state",
    "subsample_guarantee",
    "subsample_size",
]
