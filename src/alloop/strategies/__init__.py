"""Querying strategies: small classes over pure score functions, found by discovery.

>>> from alloop.strategies import make_strategy
>>> make_strategy("random(seed=3)").spec
'random(seed=3)'
"""

from alloop.strategies._base import COST_CLASSES, NEEDS, SelectionContext, Strategy
from alloop.strategies._registry import all_strategies, get_strategy_class, make_strategy, parse_spec
from alloop.strategies._topk import rank_order, top_k
from alloop.strategies.baseline import RandomSampling
from alloop.strategies.uncertainty import (
    EntropySampling,
    LeastConfidence,
    MarginSampling,
    entropy_scores,
    least_confidence_scores,
    margin_scores,
)

__all__ = [
    "COST_CLASSES",
    "NEEDS",
    "EntropySampling",
    "LeastConfidence",
    "MarginSampling",
    "RandomSampling",
    "SelectionContext",
    "Strategy",
    "all_strategies",
    "entropy_scores",
    "get_strategy_class",
    "least_confidence_scores",
    "make_strategy",
    "margin_scores",
    "parse_spec",
    "rank_order",
    "top_k",
]
