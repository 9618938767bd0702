"""The strategy contract: one small class, one required method.

A strategy's constructor only stores its keyword arguments (parameters are read back from the
``__init__`` signature, as in scikit-learn). ``score`` returns one number per candidate, higher =
label sooner; ``select`` defaults to the shared :func:`top_k` of those scores.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from alloop.strategies._topk import top_k

__all__ = ["COST_CLASSES", "NEEDS", "Parameterized", "SelectionContext", "Strategy"]

#: What a strategy may declare in ``needs``. ``labels`` = it reads ``labeled_ids``/``labels``.
NEEDS = frozenset({"probs", "embeddings", "samples", "history", "labels"})
#: Cost classes shown by ``alloop strategies`` (n = candidates, k = batch size).
COST_CLASSES = ("O(n)", "O(n log n)", "O(n·k)", "O(n²) capped")


@dataclass
class SelectionContext:
    """Everything a strategy may look at, for the current candidates only.

    ids          candidate record ids (unlabeled, not pending), in pool order
    index        their pool indices (ties are broken by lower index)
    probs        (n, C) latest class probabilities, or None when not shared
    embeddings   (n, D) or None
    samples      (S, n, C) or None
    history      per-record history features (name -> (n,) array) or None
    labeled_ids, labels   what has been labeled so far (labels as class positions)
    labeled_embeddings    (m, D) embeddings of the labeled records that have one (with ``embeddings``)
    labeled_embedding_rows  (m,) positions in ``labeled_ids``/``labels`` of those rows
    n_classes    number of classes, when known
    seed, loop   for randomness: use :meth:`rng`, never global state
    """

    ids: np.ndarray
    index: np.ndarray
    probs: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    samples: np.ndarray | None = None
    history: dict[str, np.ndarray] | None = None
    labeled_ids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    labels: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    labeled_embeddings: np.ndarray | None = None
    labeled_embedding_rows: np.ndarray | None = None
    n_classes: int | None = None
    seed: int = 0
    loop: int = 0

    @property
    def n(self) -> int:
        return int(self.ids.size)

    @property
    def available(self) -> frozenset[str]:
        have = set()
        for name in ("probs", "embeddings", "samples", "history"):
            if getattr(self, name) is not None:
                have.add(name)
        return frozenset(have)

    @property
    def labels_for_embeddings(self) -> np.ndarray:
        """``labels`` lined up with ``labeled_embeddings`` (labeled records without an embedding left out)."""
        if self.labeled_embedding_rows is None:
            return self.labels
        return self.labels[self.labeled_embedding_rows]

    def rng(self, seed: int | None = None) -> np.random.Generator:
        """A generator determined by the seed and the loop (same seed, same loop → same draws)."""
        return np.random.default_rng([self.seed if seed is None else seed, self.loop])


class Parameterized:
    """Parameters read back from the keyword-only ``__init__`` signature (scikit-learn style), a canonical spec
    string that :func:`make_strategy` parses back, and a one-line description — shared by pool strategies,
    stream strategies and budget managers."""

    name: ClassVar[str] = ""

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.name != "self" and p.kind == p.KEYWORD_ONLY]

    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._param_names()}

    @property
    def spec(self) -> str:
        """Canonical spec string, e.g. ``margin`` or ``random(seed=3)``; parsed by :func:`make_strategy`."""
        defaults = {
            p.name: p.default
            for p in inspect.signature(type(self).__init__).parameters.values()
            if p.default is not inspect.Parameter.empty
        }
        changed = {k: v for k, v in self.get_params().items() if defaults.get(k, object()) != v}
        if not changed:
            return self.name
        return f"{self.name}(" + ", ".join(f"{k}={v!r}" for k, v in changed.items()) + ")"

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"

    @classmethod
    def describe(cls) -> str:
        doc = inspect.getdoc(cls) or ""
        return doc.splitlines()[0] if doc else ""


class Strategy(Parameterized):
    """Base class of pool strategies.

    Subclasses set ``name`` (the registry key), ``needs`` (metadata kinds required, from :data:`NEEDS`)
    and implement ``score``; they may override ``select`` for batch-aware selection (then set
    ``batch_aware = True``). ``cost`` is one of :data:`COST_CLASSES`.
    """

    name: ClassVar[str] = ""
    kind: ClassVar[str] = "pool"
    needs: ClassVar[frozenset[str]] = frozenset()
    #: metadata used when available but not required (the engine passes it only if every candidate has it)
    optional_needs: ClassVar[frozenset[str]] = frozenset()
    task_types: ClassVar[frozenset[str]] = frozenset({"classification"})
    family: ClassVar[str] = ""
    batch_aware: ClassVar[bool] = False
    cost: ClassVar[str] = "O(n)"

    def score(self, ctx: SelectionContext) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement score(ctx)")

    def select(self, ctx: SelectionContext, k: int) -> np.ndarray:
        """Ids of the ``k`` candidates to label first (all of them if fewer than ``k``)."""
        return ctx.ids[top_k(self.score(ctx), k)]

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        """Parameter sets the conformance suite builds this strategy with."""
        return [{}]

    @classmethod
    def _test_skips(cls) -> dict[str, str]:
        """Conformance checks this strategy is exempt from: check name -> reason."""
        return {}

