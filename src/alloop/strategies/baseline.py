"""Baselines: random selection.

>>> import numpy as np
>>> from alloop.strategies import SelectionContext
>>> ctx = SelectionContext(ids=np.arange(5), index=np.arange(5), seed=1)
>>> (RandomSampling().select(ctx, 2) == RandomSampling().select(ctx, 2)).all()
np.True_
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from alloop.strategies._base import SelectionContext, Strategy

__all__ = ["RandomSampling"]


class RandomSampling(Strategy):
    """Random: label records drawn uniformly at random (the baseline every strategy must beat)."""

    name = "random"
    needs: ClassVar[frozenset[str]] = frozenset()
    family: ClassVar[str] = "baseline"

    def __init__(self, *, seed: int | None = None) -> None:
        self.seed = seed

    def score(self, ctx: SelectionContext) -> np.ndarray:
        return ctx.rng(self.seed).random(ctx.n)

    @classmethod
    def _test_params(cls) -> list[dict[str, object]]:
        return [{}, {"seed": 7}]
