"""``SelectionEngine``: turns what is known about the pool into a recommendation.

>>> import numpy as np
>>> from alloop import SelectionEngine, Snapshot
>>> engine = SelectionEngine(strategy="margin", classes=[0, 1])
>>> engine.add_records([1, 2, 3])
>>> engine.ingest(Snapshot(ids=[1, 2, 3], probs=np.array([[0.9, 0.1], [0.55, 0.45], [0.7, 0.3]])))
>>> sel = engine.recommend(2)
>>> sel.ids.tolist(), sel.strategy
([2, 3], 'margin')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from alloop._validation import check_int
from alloop.errors import ConfigError, DataError, LabelError, PoolExhaustedError, StateError
from alloop.metadata import History, Snapshot
from alloop.records import Pool, RecordState, as_id_array
from alloop.strategies import SelectionContext, Strategy, make_strategy, top_k

__all__ = ["Selection", "SelectionEngine"]


@dataclass(frozen=True)
class Selection:
    """A recommendation: ids to label first, best first, with their scores and the reason."""

    ids: np.ndarray
    scores: np.ndarray
    strategy: str
    reason: str
    loop: int = 0

    def __len__(self) -> int:
        return int(self.ids.size)


class SelectionEngine:
    """Keeps the pool's states and History and recommends records with a strategy.

    strategy  a name (``"margin"``), a spec (``"random(seed=3)"``) or a :class:`Strategy`
    seed      randomness of every stochastic strategy derives from it (and the loop number)
    classes   the class labels, in the column order of ``probs``
    """

    def __init__(
        self, strategy: str | Strategy = "auto", *, seed: int = 0, classes: Sequence[Any] | None = None
    ) -> None:
        self.strategy = make_strategy(strategy)
        self.seed = check_int(seed, "seed", "SelectionEngine", min=0)
        self.classes: list[Any] | None = None if classes is None else list(classes)
        self.pool = Pool()
        self.history = History()
        self.labels = np.empty(0, dtype=np.int64)  # class position per pool index, -1 = none
        self.loop = 0
        self.dynamics_loop = -1  # the last loop whose training dynamics were folded (replays are ignored)

    # ---- pool -----------------------------------------------------------------------------------
    def add_records(self, ids: Any, *, holdout: bool = False) -> None:
        """Register records (``holdout=True`` puts them in the evaluation split, never selected)."""
        self.pool.add(ids, state=RecordState.EVAL if holdout else RecordState.UNLABELED)
        grow = self.pool.capacity - self.labels.size
        self.labels = np.concatenate([self.labels, np.full(grow, -1, dtype=np.int64)])

    def remove_records(self, ids: Any) -> None:
        """Forget records and everything known about them."""
        idx = self.pool.remove(ids)
        self.labels[idx] = -1
        self.history.forget(idx)

    # ---- metadata and labels ---------------------------------------------------------------------
    def ingest(self, snapshot: Snapshot, *, loop: int | None = None) -> None:
        """Fold one INFER pass into History; every id must be in the pool."""
        self.ingest_located(self.locate([snapshot]), loop=loop)

    def locate(self, snapshots: Sequence[Snapshot]) -> list[tuple[np.ndarray, Snapshot]]:
        """``(pool indices, snapshot aligned to the classes)`` for each part of one INFER pass; raises before
        anything changes when an id is not in the pool or appears in two parts."""
        Snapshot.check_parts(snapshots)
        out = []
        seen = np.zeros(self.pool.capacity, dtype=bool) if len(snapshots) > 1 else None
        for snap in snapshots:
            if self.classes is not None:
                snap = snap.aligned_to(self.classes)
            idx = self.pool.index_of(snap.ids, "snapshot.ids")
            if seen is not None:
                again = seen[idx]
                if again.any():
                    j = int(np.argmax(again))
                    raise DataError(
                        f"The id {snap.ids[j : j + 1].tolist()[0]!r} appears in two parts of one snapshot; "
                        "send each record once per INFER pass."
                    )
                seen[idx] = True
            out.append((idx, snap))
        return out

    def ingest_located(self, parts: Sequence[tuple[np.ndarray, Snapshot]], *, loop: int | None = None) -> None:
        """Fold the parts of one INFER pass that :meth:`locate` returned (no concatenated copy is made)."""
        self.history.update_parts(parts, self.loop if loop is None else loop)

    def class_positions(self, y: Any, field: str = "y") -> np.ndarray:
        values = list(np.asarray(y, dtype=object).tolist()) if not isinstance(y, list) else y
        if self.classes is None:
            raise ConfigError("SelectionEngine needs 'classes' before labels can be observed.")
        pos = {c: j for j, c in enumerate(self.classes)}
        out = np.empty(len(values), dtype=np.int64)
        for j, v in enumerate(values):
            key = v.item() if isinstance(v, np.generic) else v
            if key not in pos:
                raise LabelError(
                    f"Label {key!r} in {field!r} is not one of the classes {self.classes!r}; "
                    "fix the label or declare the class."
                )
            out[j] = pos[key]
        return out

    def observe_labels(self, ids: Any, y: Any) -> None:
        """Record labels (class values); records leave the candidate set."""
        id_arr = as_id_array(ids, "ids")
        pos = self.class_positions(y)
        if pos.size != id_arr.size:
            raise LabelError(f"'y' has {pos.size} labels for {id_arr.size} ids; give one label per id.")
        idx = self.pool.transition(
            id_arr, (RecordState.UNLABELED, RecordState.SELECTED, RecordState.LABELED), RecordState.LABELED
        )
        self.labels[idx] = pos

    def mark_selected(self, ids: Any) -> None:
        """Records sent for labeling: excluded from recommendations until labeled or released."""
        self.pool.transition(ids, RecordState.UNLABELED, RecordState.SELECTED)

    def release(self, ids: Any) -> None:
        """Return selected-but-unlabeled records to the pool."""
        self.pool.transition(ids, RecordState.SELECTED, RecordState.UNLABELED)

    def observe_training_dynamics(
        self, ids: Any, true_prob: Any, *, correct: Any = None, loop: int | None = None
    ) -> int:
        """Fold one TRAIN pass's training dynamics into History; returns the number of records folded.

        ``true_prob`` is ``(n, E)`` (or ``(n,)``): the probability of the true label after each epoch, as in
        ``TrainReport.extra["dynamics"]["p_true"]``; rows that are all NaN are skipped; ``correct`` the
        optional per-epoch correctness. With ``loop``, a pass for a loop at or before the last one folded is
        ignored, so retries and resume replays do not count forgetting events twice.
        """
        if loop is not None:
            loop = check_int(loop, "loop", "SelectionEngine.observe_training_dynamics", min=0)
            if loop <= self.dynamics_loop:
                return 0
        idx = self.pool.index_of(as_id_array(ids, "ids"), "ids")
        tp = np.asarray(true_prob, dtype=np.float64)
        tp = tp[:, None] if tp.ndim == 1 else tp
        if tp.ndim != 2 or tp.shape[0] != idx.size:
            raise LabelError(
                f"'true_prob' has shape {tp.shape} for {idx.size} ids; give one row of per-epoch probabilities per id."
            )
        has = ~np.isnan(tp).all(axis=1)
        ok = None if correct is None else np.asarray(correct)[has]
        if has.any():
            self.history.update_dynamics(idx[has], tp[has], correct=ok)
        if loop is not None:
            self.dynamics_loop = loop
        return int(has.sum())

    def observe_holdout(self, value: float, *, loop: int) -> None:
        """A held-out metric (higher is better, e.g. accuracy) of the model trained at ``loop``.

        Learning strategies that use it (``auto``, ``portfolio``) reward the arms that chose that loop's
        batch with the change from the previous model, in addition to the importance-weighted reward.
        """
        loop = check_int(loop, "loop", "SelectionEngine.observe_holdout", min=0)
        fn = getattr(self.strategy, "observe_holdout", None)
        if callable(fn):
            fn(float(value), loop=loop)

    # ---- selection --------------------------------------------------------------------------------
    def context(self, strategy: Strategy | None = None, *, loop: int | None = None) -> SelectionContext:
        """The candidates (unlabeled, not pending) and the metadata ``strategy`` needs."""
        strategy = strategy or self.strategy
        cand = self.pool.indices(RecordState.UNLABELED)
        if cand.size == 0:
            raise PoolExhaustedError(
                "No unlabeled record is left to select; add records with add_records() or stop the campaign."
            )
        h = self.history
        needs = strategy.needs
        if needs & {"probs", "samples", "embeddings", "history"}:
            seen = np.zeros(cand.size, dtype=bool)
            inside = cand < h.capacity
            seen[inside] = h.seen[cand[inside]]
            cand = cand[seen]
            if cand.size == 0:
                raise StateError(
                    f"Strategy {strategy.spec!r} needs {sorted(needs)} but no unlabeled record has been inferred yet; "
                    "ingest a Snapshot first or start with a cold-start strategy such as 'random'."
                )
        if "embeddings" in needs:
            if h.embeddings is None:
                raise ConfigError(
                    f"Strategy {strategy.spec!r} needs embeddings, but none were shared; share embeddings in the "
                    "Snapshot (SklearnLearner(share_features=True) shares the standardised input features; "
                    "alloop simulate --embeddings features) or choose a probability-based strategy."
                )
            # records inferred without embeddings hold NaN rows: they are not candidates for this strategy
            cand = cand[~np.isnan(h.embeddings[cand]).any(axis=1)]
            if cand.size == 0:
                raise StateError(
                    f"Strategy {strategy.spec!r} needs embeddings but no unlabeled record has one yet; "
                    "ingest a Snapshot with embeddings first."
                )
        probs = h.probs[cand] if "probs" in needs or "samples" in needs else None
        emb = h.embeddings[cand] if "embeddings" in needs and h.embeddings is not None else None
        samples = None
        if "samples" in needs:
            snap, sidx = h.last_snapshot, h.last_index
            if snap is None or snap.samples is None or sidx is None:
                raise ConfigError(
                    f"Strategy {strategy.spec!r} needs MC/ensemble samples, but the last snapshot has none; "
                    "share 'samples' or choose another strategy."
                )
            where = {int(i): j for j, i in enumerate(sidx.tolist())}
            keep = np.array([int(i) in where for i in cand.tolist()], dtype=bool)
            cand = cand[keep]
            probs = h.probs[cand]
            samples = snap.samples[:, [where[int(i)] for i in cand.tolist()]]
        optional: frozenset[str] = getattr(strategy, "optional_needs", frozenset()) - needs
        if "probs" in optional and probs is None and bool(h.seen[cand].all()):
            probs = h.probs[cand]
        if "embeddings" in optional and emb is None and h.embeddings is not None:
            rows = h.embeddings[cand]
            emb = None if np.isnan(rows).any() else rows
        labeled = self.pool.indices(RecordState.LABELED)
        labeled_emb = labeled_rows = None
        if emb is not None and h.embeddings is not None:
            rows = np.full((labeled.size, h.embeddings.shape[1]), np.nan, dtype=h.embeddings.dtype)
            inside = labeled < h.capacity
            rows[inside] = h.embeddings[labeled[inside]]
            has = ~np.isnan(rows).any(axis=1) if rows.size else np.zeros(labeled.size, dtype=bool)
            labeled_rows = np.flatnonzero(has)
            labeled_emb = rows[has]
        return SelectionContext(
            ids=self.pool.ids_at(cand),
            index=cand,
            probs=probs,
            embeddings=emb,
            samples=samples,
            history=h.features(cand) if "history" in needs else None,
            labeled_ids=self.pool.ids_at(labeled),
            labels=self.labels[labeled],
            labeled_embeddings=labeled_emb,
            labeled_embedding_rows=labeled_rows,
            n_classes=None if self.classes is None else len(self.classes),
            seed=self.seed,
            loop=self.loop if loop is None else loop,
        )

    @staticmethod
    def _scores(strat: Strategy, ctx: SelectionContext) -> np.ndarray:
        scores = np.asarray(strat.score(ctx), dtype=np.float64)
        if scores.shape != (ctx.n,):
            raise RuntimeError(f"Strategy {strat.spec!r} returned {scores.shape} scores for {ctx.n} candidates.")
        return scores

    def recommend(self, k: int, *, strategy: str | Strategy | None = None, loop: int | None = None) -> Selection:
        """The ``k`` records to label next (the whole remaining pool if fewer are left)."""
        k = check_int(k, "k", "SelectionEngine.recommend", min=1)
        strat = self.strategy if strategy is None else make_strategy(strategy)
        ctx = self.context(strat, loop=loop)
        if type(strat).select is Strategy.select:  # plain top-k: score once, rank with the shared helper
            scores = self._scores(strat, ctx)
            order = top_k(scores, k)
            ids, chosen_scores = ctx.ids[order], scores[order]
            how = "top {n} of {c} candidates by score"
        else:  # batch-aware: its own select; per-record scores only where they are cheap (O(n))
            ids = as_id_array(strat.select(ctx, k), f"{strat.spec}.select()")
            chosen_scores = np.full(ids.size, np.nan)
            if strat.cost == "O(n)":
                scores = self._scores(strat, ctx)
                where = {int(i): j for j, i in enumerate(ctx.index.tolist())}
                chosen_scores = scores[[where[int(i)] for i in self.pool.index_of(ids).tolist()]]
            how = "batch of {n} chosen jointly from {c} candidates"
        n_unlabeled = int(self.pool.mask(RecordState.UNLABELED).sum())
        reason = f"{strat.spec}: " + how.format(n=ids.size, c=ctx.n)
        if ctx.n < n_unlabeled:
            reason += f" ({n_unlabeled - ctx.n} unlabeled records lack the metadata it needs)"
        if chosen_scores.size and not np.isnan(chosen_scores).all():
            reason += f"; scores {np.nanmin(chosen_scores):.4g}..{np.nanmax(chosen_scores):.4g}"
        explain = getattr(strat, "explain", None)  # learning strategies say which arm chose what and why
        if callable(explain) and (text := explain()):
            reason += f"; {text}"
        return Selection(ids=ids, scores=chosen_scores, strategy=strat.spec, reason=reason, loop=ctx.loop)
