"""``auto``, ``portfolio`` and ``learned``: strategies that learn across loops.

They keep a small JSON-serialisable state (``state_dict()`` / ``load_state_dict()``) that advances once
per loop — when ``select`` first sees a new ``ctx.loop`` it credits the rewards of the labels that
arrived — so calling ``select`` again in the same loop gives the same batch. ``explain()`` says why the
last batch was chosen (arm probabilities, which arm gave which records, the last reward).

>>> import numpy as np
>>> from alloop.testing import conformance_context
>>> auto = AutoStrategy()
>>> ids = auto.select(conformance_context(40, include={"probs", "history"}), 5)
>>> ids.size, auto.explain().startswith("auto")
(5, True)
"""

from __future__ import annotations

import copy
import json
import time
from typing import Any, ClassVar

import numpy as np

from alloop._validation import check_choice, check_float, check_int
from alloop.errors import ConfigError
from alloop.strategies._base import SelectionContext, Strategy
from alloop.strategies._topk import top_k

__all__ = ["AutoStrategy", "LearnedStrategy", "PortfolioStrategy"]


def _z(x: np.ndarray) -> np.ndarray:
    sd = float(x.std())
    return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)


def _labels_by_id(ctx: SelectionContext) -> dict[Any, int]:
    return {v: int(lab) for v, lab in zip(ctx.labeled_ids.tolist(), np.asarray(ctx.labels).tolist(), strict=False)}


class _Stateful(Strategy):
    """State kept across loops, created at first use (constructors only store their arguments)."""

    def _state(self) -> dict[str, Any]:
        st = self.__dict__.get("_st")
        if st is None:
            st = self._fresh_state()
            self.__dict__["_st"] = st
        return st

    def _fresh_state(self) -> dict[str, Any]:
        return {"version": 1, "loop": None, "pending": None}

    def state_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy of the state (persist it after each selection; restore on resume)."""
        return json.loads(json.dumps(self._state()))

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not isinstance(state, dict) or state.get("version") != 1:
            raise ConfigError(
                f"{type(self).__name__}.load_state_dict() needs a dict from state_dict() (version 1); "
                f"got {type(state).__name__}."
            )
        self.__dict__["_st"] = json.loads(json.dumps(state))

    def explain(self) -> str:
        """Why the last batch was chosen (empty before the first selection)."""
        return str(self.__dict__.get("_last_reason", ""))

    @property
    def last_reason(self) -> str:
        return self.explain()


# ---- the learned selector as a strategy ------------------------------------------------------------------
class LearnedStrategy(_Stateful):
    """Learned selector: a small MLP over History + current-loop features, refit online on this project's labels.

    The offline part is trained on simulated campaigns over synthetic task families (``alloop
    meta-train``; ``weights`` = a JSON file to use instead of the shipped one). With ``online=True``, once
    labels of its earlier picks arrive, a logistic model of "the model got this record wrong" is fit on
    them and blended in, with weight growing with the number of outcomes seen (up to equal weight at 100).
    With embeddings shared and ``diversity`` > 1, the batch is not the plain top-k: among the
    ``round(diversity · k)`` best-scored records, farthest-first traversal from the best one picks ``k``
    spread-out records (a per-record score alone sends near-duplicates to the labelers).
    """

    name = "learned"
    family = "learned"
    needs: ClassVar[frozenset[str]] = frozenset({"probs", "history"})
    optional_needs: ClassVar[frozenset[str]] = frozenset({"embeddings"})
    batch_aware = True

    def __init__(self, *, weights: str | None = None, online: bool = True, diversity: float = 2.0) -> None:
        self.weights = weights
        self.online = online
        self.diversity = diversity

    def _selector(self) -> Any:
        from alloop.engine.learned import load_selector

        if self.weights is not None and not isinstance(self.weights, str):
            raise ConfigError(
                f"The 'weights' parameter of LearnedStrategy must be a path to a selector JSON file or None. "
                f"Got {self.weights!r}."
            )
        if not isinstance(self.online, bool):
            raise ConfigError(f"The 'online' parameter of LearnedStrategy must be True or False. Got {self.online!r}.")
        check_float(self.diversity, "diversity", "LearnedStrategy", low=1.0)
        return load_selector(self.weights)

    def _fresh_state(self) -> dict[str, Any]:
        return {"version": 1, "loop": None, "pending": None, "online": None}

    def features(self, ctx: SelectionContext) -> np.ndarray:
        from alloop.engine.features import record_features

        return record_features(ctx, self._selector().features)

    def _scores(self, ctx: SelectionContext, F: np.ndarray, state: dict[str, Any]) -> np.ndarray:
        from alloop.engine.learned import OnlineErrorModel

        sel = self._selector()
        s = sel.score(F)
        om = OnlineErrorModel.from_state(state.get("online"), F.shape[1])
        if self.online and om.n >= 10 and ctx.n > 1:
            lam = min(1.0, om.n / 100.0)
            z_on = om.predict((F - sel.mean) / sel.scale)
            s = _z(s) + lam * _z(z_on)
        return np.nan_to_num(s, nan=0.0, posinf=0.0, neginf=0.0)

    def _advance(self, ctx: SelectionContext) -> None:
        from alloop.engine.learned import OnlineErrorModel

        st = self._state()
        if st["loop"] == ctx.loop:
            return
        pend = st.get("pending")
        if pend and self.online:
            labels = _labels_by_id(ctx)
            rows = [j for j, v in enumerate(pend["ids"]) if v in labels]
            if rows:
                sel = self._selector()
                F = np.asarray(pend["F"], dtype=np.float64)[rows]
                wrong = np.array([pend["pred"][j] != labels[pend["ids"][j]] for j in rows], dtype=np.float64)
                om = OnlineErrorModel.from_state(st.get("online"), F.shape[1])
                om.update((F - sel.mean) / sel.scale, wrong)
                st["online"] = om.state()
        st["loop"], st["pending"] = ctx.loop, None

    def remember(self, ctx: SelectionContext, positions: np.ndarray, F: np.ndarray | None = None) -> None:
        """Keep the features of the records actually sent for labeling, to learn from their labels next loop."""
        if F is None:
            F = self.features(ctx)
        pos = np.asarray(positions, dtype=np.int64)
        pred = np.argmax(ctx.probs[pos], axis=1) if ctx.probs is not None else np.full(pos.size, -1)
        self._state()["pending"] = {
            "ids": ctx.ids[pos].tolist(),
            "pred": [int(v) for v in pred],
            "F": [[float(x) for x in row] for row in F[pos]],
        }

    def score(self, ctx: SelectionContext) -> np.ndarray:
        st = copy.deepcopy(self._state())
        saved = self.__dict__.get("_st")
        try:
            self.__dict__["_st"] = st
            self._advance(ctx)
            return self._scores(ctx, self.features(ctx), st)
        finally:
            self.__dict__["_st"] = saved

    def select(self, ctx: SelectionContext, k: int) -> np.ndarray:
        self._advance(ctx)
        F = self.features(ctx)
        scores = self._scores(ctx, F, self._state())
        pos = self._batch(ctx, scores, k)
        self.remember(ctx, pos, F)
        n_online = int((self._state().get("online") or {}).get("n", 0))
        self.__dict__["_last_reason"] = f"learned selector v{self._selector().version}" + (
            f" + online error model on {n_online} labels" if self.online and n_online >= 10 else ""
        )
        return ctx.ids[pos]

    def select_among(self, ctx: SelectionContext, positions: np.ndarray, k: int) -> np.ndarray:
        """Positions of a batch of ``k`` chosen only among ``positions``, scored on the whole pool (the features are
        percentile ranks over all candidates, so a shortlist keeps their meaning)."""
        self._advance(ctx)
        F = self.features(ctx)
        pos = self._batch(ctx, self._scores(ctx, F, self._state()), k, among=np.asarray(positions, dtype=np.int64))
        self.remember(ctx, pos, F)
        return pos

    def _batch(self, ctx: SelectionContext, scores: np.ndarray, k: int, among: np.ndarray | None = None) -> np.ndarray:
        """Positions of the batch: farthest-first among the best ``diversity · k`` (plain top-k without embeddings)."""
        from alloop.strategies._geometry import as_matrix, kcenter_greedy, sq_dists_to_row

        pool = np.arange(ctx.n) if among is None else among
        m = min(pool.size, int(round(float(self.diversity) * k)))
        if ctx.embeddings is None or k <= 1 or m <= k:
            return pool[top_k(scores[pool], k)]
        cand = pool[top_k(scores[pool], m)]  # best first, so position 0 of cand is the best-scored record
        x = as_matrix(ctx.embeddings)[cand]
        x2 = (x * x).sum(axis=1)
        chosen = kcenter_greedy(k, m, lambda j: sq_dists_to_row(x, j, x2), None, 0)
        return cand[np.asarray(chosen, dtype=np.int64)]

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"online": False}, {"diversity": 1.0}]


# ---- the bandit over strategies -------------------------------------------------------------------------
class _Bandit(_Stateful):
    needs: ClassVar[frozenset[str]] = frozenset({"probs", "history"})
    optional_needs: ClassVar[frozenset[str]] = frozenset({"embeddings"})
    batch_aware = True
    cost = "O(n·k)"
    family = "portfolio"

    algorithm: str
    gamma: float
    eta: float
    selector: str | None
    holdout_weight: float
    seed: int | None

    def _validate(self) -> None:
        owner = type(self).__name__
        from alloop.engine.portfolio import ALGORITHMS

        check_choice(self.algorithm, "algorithm", owner, ALGORITHMS if self.name == "auto" else ALGORITHMS[:3])
        check_float(self.gamma, "gamma", owner, low=0.0, high=1.0)
        check_float(self.eta, "eta", owner, low=0.0)
        check_float(self.holdout_weight, "holdout_weight", owner, low=0.0, high=1.0)
        check_int(self.seed, "seed", owner, min=0, allow_none=True)

    def _fresh_state(self) -> dict[str, Any]:
        from alloop.engine.portfolio import new_state

        st = new_state([])
        st["learned"] = None
        return st

    # which arms, with what prior, on which subsets (portfolio: fixed; auto: the scheduler)
    def _plan(self, ctx: SelectionContext) -> Any:
        raise NotImplementedError

    def _fallback(self, ctx: SelectionContext) -> str | None:
        return None

    def _arm(self, name: str) -> Strategy:
        arms = self.__dict__.setdefault("_arms", {})
        if name not in arms:
            from alloop.strategies import make_strategy

            arms[name] = LearnedStrategy(weights=self.selector) if name == "learned" else make_strategy(name)
        return arms[name]

    def _learned(self) -> LearnedStrategy:
        arm = self._arm("learned")
        assert isinstance(arm, LearnedStrategy)
        st = self._state()
        if st.get("learned") is not None and arm.__dict__.get("_st") is None:
            arm.load_state_dict(st["learned"])
        return arm

    def observe_holdout(self, value: float, *, loop: int) -> None:
        """A held-out metric of the model trained at ``loop`` (kept for the last few loops; replays overwrite)."""
        from alloop.engine.portfolio import LOG_CAP

        held = self._state().setdefault("holdout", {})
        held[str(int(loop))] = float(value)
        for key in sorted(held, key=int)[:-LOG_CAP]:
            del held[key]

    def _advance(self, ctx: SelectionContext) -> None:
        from alloop.engine.portfolio import holdout_reward, iw_accuracy, update

        st = self._state()
        if st["loop"] == ctx.loop:
            return
        pend = st.get("pending")
        if pend:
            # held-out reward: the change of the held-out metric caused by this batch's labels, to its arms
            r_ho = holdout_reward(st.get("holdout") or {}, pend.get("loop"))
            w = float(self.holdout_weight) if st.get("holdout") else 0.0
            if r_ho is not None and w > 0:
                update(st, pend["credit"], reward=w * r_ho, algorithm=self.algorithm, eta=self.eta)
                st["last_holdout_reward"] = r_ho
            labels = _labels_by_id(ctx)
            rows = [j for j, v in enumerate(pend["ids"]) if v in labels]
            if rows:
                correct = np.array([pend["pred"][j] == labels[pend["ids"][j]] for j in rows], dtype=np.float64)
                acc = iw_accuracy(correct, np.asarray(pend["q"], dtype=np.float64)[rows])
                if st["prev_credit"] is not None and st["last_acc"] is not None:
                    reward = acc - float(st["last_acc"])
                    if w < 1.0:
                        update(st, st["prev_credit"], reward=(1.0 - w) * reward, algorithm=self.algorithm, eta=self.eta)
                    st["last_reward"] = reward
                st["prev_credit"], st["last_acc"] = pend["credit"], acc
        st["loop"], st["pending"] = ctx.loop, None

    def score(self, ctx: SelectionContext) -> np.ndarray:
        """The probability that each candidate is in the batch's first draw (the mixture ``q``)."""
        saved_st, saved_reason = self.__dict__.get("_st"), self.__dict__.get("_last_reason")
        learned_st = None
        if "_arms" in self.__dict__ and "learned" in self.__dict__["_arms"]:
            learned_st = self.__dict__["_arms"]["learned"].__dict__.get("_st")
        try:
            self.__dict__["_st"] = copy.deepcopy(self._state())
            _, q = self._choose(ctx, max(1, min(10, ctx.n)))
            return q
        finally:
            self.__dict__["_st"] = saved_st
            self.__dict__["_last_reason"] = saved_reason
            if learned_st is not None:
                self.__dict__["_arms"]["learned"].__dict__["_st"] = learned_st

    def select(self, ctx: SelectionContext, k: int) -> np.ndarray:
        chosen, _ = self._choose(ctx, k)
        return ctx.ids[chosen]

    def _choose(self, ctx: SelectionContext, k: int) -> tuple[np.ndarray, np.ndarray]:
        from alloop.engine.portfolio import (
            append_log,
            arm_probabilities,
            batch_credit,
            draw_batch,
            ensure_arms,
            mixture,
        )
        from alloop.engine.schedule import candidate_subset
        from alloop.strategies.compose import subset_context

        self._validate()
        self._advance(ctx)
        st = self._state()
        k = min(k, ctx.n)
        rng = ctx.rng(self.seed)
        fallback = self._fallback(ctx)
        p = self._plan(ctx)
        arms = [fallback] if fallback else p.arms
        ensure_arms(st, arms, p.prior)
        advice: list[np.ndarray] = []
        for a in arms:
            arm = self._learned() if a == "learned" else self._arm(a)
            start = time.perf_counter()
            if a in p.subset and p.subset[a] < ctx.n:
                sub = candidate_subset(ctx, p.subset[a], rng)
                picks = sub[_positions(subset_context(ctx, sub), _arm_select(arm, subset_context(ctx, sub), k))]
            else:
                picks = _positions(ctx, _arm_select(arm, ctx, k))
            ran = max(p.subset.get(a, ctx.n), 1)
            per = (time.perf_counter() - start) / ran
            e = st["arms"][a]
            e["seconds"] = per if e["seconds"] < 0 else 0.7 * e["seconds"] + 0.3 * per
            advice.append(picks)
        gamma = 0.0 if fallback else float(self.gamma)
        pi = np.ones(1) if fallback else arm_probabilities(st, arms, self.algorithm, rng)
        q = mixture(advice, pi, ctx.n, gamma)
        chosen = draw_batch(q, k, rng) if k else np.empty(0, dtype=np.int64)
        credit = batch_credit(advice, pi, chosen, n=ctx.n, gamma=gamma)
        pred = np.argmax(ctx.probs[chosen], axis=1) if ctx.probs is not None else np.full(chosen.size, -1)
        st["pending"] = {
            "loop": ctx.loop,
            "ids": ctx.ids[chosen].tolist(),
            "pred": [int(v) for v in pred],
            "q": [float(v) for v in q[chosen]],
            "credit": {a: float(c) for a, c in zip(arms, credit, strict=True)},
        }
        if "learned" in arms:
            learned = self._learned()
            learned.remember(ctx, chosen)
            st["learned"] = learned.state_dict()
        from_arm = {a: int(np.isin(chosen, adv).sum()) for a, adv in zip(arms, advice, strict=True)}
        probs = {a: round(float(v), 3) for a, v in zip(arms, pi, strict=True)}
        append_log(st, {"loop": ctx.loop, "pi": probs, "from": from_arm, "reward": st.get("last_reward")})
        reward = st.get("last_reward")
        r_ho = st.get("last_holdout_reward")
        self.__dict__["_last_reason"] = (
            f"{type(self).name}[{self.algorithm}]: "
            + (f"fallback to {fallback} (metadata too thin); " if fallback else f"{p.reason}; ")
            + "arm probabilities "
            + ", ".join(f"{a}={v:.2f}" for a, v in probs.items())
            + "; batch from "
            + ", ".join(f"{a}:{n}" for a, n in from_arm.items() if n)
            + (f"; last reward {reward:+.4f}" if reward is not None else "")
            + (f"; last held-out reward {r_ho:+.4f}" if r_ho is not None else "")
            + _bounds_text(st)
        )
        return chosen, q


def _bounds_text(st: dict[str, Any]) -> str:
    """The lower confidence bounds vs margin of the ``lcb`` rule, for the reason (empty before any exists)."""
    bounds = {a: b for a, b in (st.get("lcb") or {}).get("bounds", {}).items() if b is not None}
    return "; lower bounds vs margin " + ", ".join(f"{a}={b:+.4f}" for a, b in bounds.items()) if bounds else ""


def _nearest_label(ctx: SelectionContext, positions: np.ndarray) -> np.ndarray:
    """The label of each candidate's nearest labeled record in embedding space (−1 without one)."""
    lab = ctx.labeled_embeddings
    if ctx.embeddings is None or lab is None or lab.shape[0] == 0 or positions.size == 0:
        return np.full(positions.size, -1, dtype=np.int64)
    from alloop.strategies._geometry import as_matrix, sq_dists

    d2 = sq_dists(as_matrix(ctx.embeddings[positions]), as_matrix(lab))  # few probes: one block
    return np.asarray(ctx.labels_for_embeddings, dtype=np.int64)[np.argmin(d2, axis=1)]


def _arm_select(arm: Strategy, ctx: SelectionContext, k: int) -> np.ndarray:
    if type(arm).select is Strategy.select:
        return ctx.ids[top_k(arm.score(ctx), k)]
    return arm.select(ctx, k)


def _positions(ctx: SelectionContext, ids: np.ndarray) -> np.ndarray:
    where = {v: j for j, v in enumerate(ctx.ids.tolist())}
    return np.array([where[v] for v in np.asarray(ids).tolist()], dtype=np.int64)


class PortfolioStrategy(_Bandit):
    """Portfolio: an ALBL-style bandit (EXP4.P or Thompson sampling) over a fixed set of strategies.

    ``arms`` are strategy specs; those whose needs are not shared this loop are left out. Rewards are
    importance-weighted accuracy changes measured on the queried records (no held-out labels needed).
    ``selector`` is the learned arm's weights file (default: the shipped selector).
    """

    name = "portfolio"

    def __init__(
        self,
        *,
        arms: tuple[str, ...] = ("margin", "entropy", "random", "learned"),
        algorithm: str = "exp4p",
        gamma: float = 0.1,
        eta: float = 2.0,
        selector: str | None = None,
        holdout_weight: float = 0.5,
        seed: int | None = None,
    ) -> None:
        self.arms = arms
        self.algorithm = algorithm
        self.gamma = gamma
        self.eta = eta
        self.selector = selector
        self.holdout_weight = holdout_weight
        self.seed = seed

    def _plan(self, ctx: SelectionContext) -> Any:
        from alloop.engine.schedule import Plan
        from alloop.strategies import make_strategy

        if not isinstance(self.arms, tuple) or not self.arms or not all(isinstance(a, str) for a in self.arms):
            raise ConfigError(
                f"The 'arms' parameter of PortfolioStrategy must be a non-empty tuple of strategy specs. "
                f"Got {self.arms!r}."
            )
        have = set(ctx.available) | {"labels"}
        arms = [a for a in self.arms if make_strategy(a).needs <= have]
        arms = arms or ["random"]
        return Plan(arms=arms, prior={a: 1.0 / len(arms) for a in arms}, phase="fixed arms")

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [{}, {"algorithm": "thompson", "arms": ("margin", "random", "coreset"), "seed": 3}]


class AutoStrategy(_Bandit):
    """auto: margin sampling, unless the labels of a few confident predictions say diversity pays.

    Default ``algorithm="surprise"``: in the first loops, ``probes`` records of each batch (``early_probes`` until
    4 are labeled; up to loop ``probe_loops`` while fewer are) are drawn by ``probe`` among the candidates the model
    is sure about; when their labels show more *novel* errors (wrong, and unlike the nearest labeled record) than a
    calibrated model makes (binomial p < ``alpha``) — and more novel errors than misfits — the batch goes to
    ``diverse`` (the learned selector, ``selector``; ``diverse_share`` of the batch); otherwise it is ``base``'s
    (margin, taken in order among its best ``shortlist · k`` but skipping records closer than ``spread`` × the
    pool's typical nearest-neighbour distance to one already taken; ``base="learned"`` picks among margin's best
    ``shortlist · k`` instead) — maths and constants in
    :mod:`alloop.engine.portfolio`; ``min_probes`` labeled probes make a verdict, ``trust_after`` right ones end
    the probing. Without embeddings it is plain margin. ``algorithm="lcb"``,
    ``"exp4p"`` or ``"thompson"`` give the bandit instead: scheduler (:mod:`alloop.engine.schedule`) → portfolio
    over the eligible arms, the learned selector (``selector``) included, with ``gamma``, ``eta``, ``explore``,
    ``holdout_weight``, ``max_selection_seconds``. Arms costlier than O(n) run on ``max_candidates`` candidates of
    a larger pool.
    """

    name = "auto"

    def __init__(
        self,
        *,
        algorithm: str = "surprise",
        gamma: float = 0.02,
        eta: float = 2.0,
        max_selection_seconds: float | None = None,
        max_candidates: int = 20_000,
        selector: str | None = None,
        explore: float | None = 0.1,
        holdout_weight: float = 0.5,
        diverse: str = "learned",
        diverse_share: float = 1.0,
        probe: str = "random",
        probes: int = 1,
        early_probes: int | None = 2,
        probe_loops: int = 8,
        alpha: float = 0.05,
        min_probes: int = 4,
        trust_after: int | None = None,
        base: str = "margin",
        shortlist: float | None = 3.0,
        spread: float | None = 4.0,
        seed: int | None = None,
    ) -> None:
        self.algorithm = algorithm
        self.gamma = gamma
        self.eta = eta
        self.explore = explore
        self.holdout_weight = holdout_weight
        self.max_selection_seconds = max_selection_seconds
        self.max_candidates = max_candidates
        self.selector = selector
        self.diverse = diverse
        self.diverse_share = diverse_share
        self.probe = probe
        self.probes = probes
        self.early_probes = early_probes
        self.probe_loops = probe_loops
        self.alpha = alpha
        self.min_probes = min_probes
        self.trust_after = trust_after
        self.base = base
        self.shortlist = shortlist
        self.spread = spread
        self.seed = seed

    def _plan(self, ctx: SelectionContext) -> Any:
        from alloop.engine.schedule import plan

        owner = "AutoStrategy"
        check_float(self.max_selection_seconds, "max_selection_seconds", owner, low=0.0, allow_none=True)
        check_int(self.max_candidates, "max_candidates", owner, min=1)
        check_float(self.explore, "explore", owner, low=0.0, high=1.0, allow_none=True)
        st = self._state()
        timings = {a: float(e["seconds"]) for a, e in st["arms"].items() if e["seconds"] > 0}
        return plan(
            ctx,
            seconds_per_candidate=timings,
            max_selection_seconds=self.max_selection_seconds,
            max_candidates=self.max_candidates,
            explore=self.explore,
        )

    def _fallback(self, ctx: SelectionContext) -> str | None:
        """Margin while there is no history behind the probabilities and no embeddings to use instead."""
        count = None if ctx.history is None else ctx.history.get("count")
        thin = count is None or count.size == 0 or float(np.max(count)) <= 1.0
        return "margin" if thin and ctx.embeddings is None else None

    # ---- algorithm="surprise": margin, unless labeled confident predictions say diversity pays ----------------
    def _advance(self, ctx: SelectionContext) -> None:
        from alloop.engine.portfolio import surprise_update

        st = self._state()
        if st["loop"] != ctx.loop and st.get("probe_pending"):
            pend, labels = st["probe_pending"], _labels_by_id(ctx)
            rows = [j for j, v in enumerate(pend["ids"]) if v in labels]
            y = np.array([labels[pend["ids"][j]] for j in rows], dtype=np.int64)
            wrong = y != np.array([pend["pred"][j] for j in rows], dtype=np.int64)
            novel = wrong & (y != np.array([pend["nearest"][j] for j in rows], dtype=np.int64))
            conf = np.array([pend["conf"][j] for j in rows], dtype=np.float64)
            st["surprise"] = surprise_update(st.get("surprise"), conf=conf, wrong=wrong, novel=novel)
            st["probe_pending"] = None
        super()._advance(ctx)

    def _choose(self, ctx: SelectionContext, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self.algorithm != "surprise":
            return super()._choose(ctx, k)
        from alloop.engine.portfolio import (
            SURPRISE_CONFIDENT,
            SURPRISE_MIN_SHARE,
            SURPRISE_PROBE_LOOPS,
            append_log,
            surprise_p_value,
            surprise_verdict,
        )
        from alloop.strategies import make_strategy, margin_scores

        self._validate()
        owner = "AutoStrategy"
        check_float(self.diverse_share, "diverse_share", owner, low=0.0, high=1.0)
        n_probes = check_int(self.probes, "probes", owner, min=0)
        n_early = check_int(self.early_probes, "early_probes", owner, min=0, allow_none=True)
        probe_loops = check_int(self.probe_loops, "probe_loops", owner, min=0)
        alpha = check_float(self.alpha, "alpha", owner, low=0.0, high=1.0)
        min_n = check_int(self.min_probes, "min_probes", owner, min=1)
        n_trust = check_int(self.trust_after, "trust_after", owner, min=1, allow_none=True)
        shortlist = check_float(self.shortlist, "shortlist", owner, low=1.0, allow_none=True)
        spread = check_float(self.spread, "spread", owner, low=0.0, allow_none=True)
        for param in ("diverse", "probe", "base"):
            if not isinstance(getattr(self, param), str):
                raise ConfigError(
                    f"The '{param}' parameter of AutoStrategy must be a strategy spec. Got {getattr(self, param)!r}."
                )
        self._advance(ctx)
        st = self._state()
        k = min(k, ctx.n)
        probs = np.asarray(ctx.probs, dtype=np.float64)
        stats = st.get("surprise")
        verdict = surprise_verdict(stats, alpha=alpha, min_n=min_n)
        if verdict == "undecided" and n_early is not None:
            n_probes = n_early  # more probes per batch until min_probes are labeled
        # every labeled probe right so far: the model is right where it is sure, probing ends early
        trusted = n_trust is not None and stats is not None and stats["n"] >= n_trust and stats["wrong"] == 0
        have = set(ctx.available) | {"labels"}
        # novelty needs the nearest labeled record (embeddings), whatever the diverse arm itself needs
        can_diversify = (
            "embeddings" in have
            and make_strategy(self.diverse).needs <= have
            and make_strategy(self.probe).needs <= have
        )
        conf = probs.max(axis=1)
        diverse: np.ndarray = np.empty(0, dtype=np.int64)
        probes: np.ndarray = np.empty(0, dtype=np.int64)
        # probes only in the first loops of the campaign: the cold start, where diversity pays if it ever does
        sp = st.setdefault("probing", {"age": 0, "loop": None, "probed": None})
        if sp["loop"] != ctx.loop:
            sp["age"], sp["loop"] = int(sp["age"]) + 1, ctx.loop
        if verdict == "diverse" and can_diversify:
            n_div = int(round(k * float(self.diverse_share)))
            everyone = np.arange(ctx.n)
            diverse = self._picks_among(ctx, everyone, self.diverse, n_div) if n_div else diverse
        elif can_diversify and k > n_probes > 0:
            confident = np.flatnonzero(conf >= SURPRISE_CONFIDENT)
            enough = confident.size >= max(n_probes, SURPRISE_MIN_SHARE * ctx.n)
            window = SURPRISE_PROBE_LOOPS if verdict != "undecided" else max(SURPRISE_PROBE_LOOPS, probe_loops)
            if sp["age"] <= window and enough and not trusted:
                sp["probed"] = ctx.loop
            if sp["probed"] == ctx.loop:
                probes = np.sort(self._picks_among(ctx, confident, self.probe, n_probes))
        taken = np.concatenate([diverse, probes])
        # the rest of the batch: margin's best — or the base arm's, among margin's best shortlist · k when given
        use_base = self.base != "margin" and can_diversify and not diverse.size
        use_base = use_base and make_strategy(self.base).needs <= have
        # margin's batch without near-duplicates (``spread``): its best, skipping records closer to one already taken
        # than ``spread`` × the pool's typical nearest-neighbour distance, among its best shortlist · k
        use_spread = bool(spread) and not use_base and not diverse.size and ctx.embeddings is not None
        wide = use_base or use_spread
        m = (ctx.n if shortlist is None else int(round(k * shortlist))) if wide else k
        order = top_k(margin_scores(probs), min(ctx.n, max(m, k) + taken.size))
        rest = order[~np.isin(order, taken)]
        if use_base:
            rest = self._base_picks(ctx, np.sort(rest), k - taken.size)
        replaced = 0
        if use_spread:
            plain = rest[: k - taken.size]
            rest = self._spread(ctx, rest[: max(self.max_candidates, k)], k - taken.size, float(spread or 0.0))
            replaced = int(np.setdiff1d(rest, plain).size)
        rest = rest[: k - taken.size]
        chosen = np.concatenate([taken, rest]).astype(np.int64)
        tracked = taken[conf[taken] >= SURPRISE_CONFIDENT]  # confident records whose labels say if it was right
        st["probe_pending"] = {
            "ids": ctx.ids[tracked].tolist(),
            "pred": [int(v) for v in np.argmax(probs[tracked], axis=1)],
            "nearest": [int(v) for v in _nearest_label(ctx, tracked)],
            "conf": [float(v) for v in conf[tracked]],
        }
        st["loop"], st["pending"] = ctx.loop, None
        main = self.base if use_base else "margin"
        arm = self.diverse if diverse.size else main
        pi: dict[str, float] = {}
        from_arm: dict[str, int] = {}
        share = diverse.size / max(k, 1)
        for a, p_a, n_a in ((main, 1.0 - share, rest.size), (self.diverse, share, diverse.size)):  # main may be diverse
            pi[a] = round(pi.get(a, 0.0) + p_a, 3)
            from_arm[a] = from_arm.get(a, 0) + int(n_a)
        from_arm["probe"] = int(probes.size)
        entry = {"loop": ctx.loop, "pi": pi, "from": from_arm, "verdict": verdict, "surprise": stats}
        append_log(st, entry | ({"spread_replaced": replaced} if use_spread else {}))
        n, w, v = (0, 0, 0) if not stats else (int(stats["n"]), int(stats["wrong"]), int(stats["novel"]))
        self.__dict__["_last_reason"] = (
            f"auto[surprise]: {arm} ({verdict}: {w} of {n} confident predictions wrong, {v} outside what the labels "
            f"covered, p={surprise_p_value(stats):.2g} vs a calibrated model, level {alpha:g})"
            + ("" if can_diversify else f"; no probes and no {self.diverse}: embeddings or its metadata not shared")
            + "; arm probabilities "
            + ", ".join(f"{a}={share:.2f}" for a, share in pi.items())
            + (f"; probes: {probes.size} among the confident" if probes.size else "")
            + (
                f"; {main}'s batch spread out: {replaced} of {rest.size} replaced by records farther apart (no two "
                f"closer than {spread:g} × the typical spacing)"
                if use_spread
                else ""
            )
        )
        q = np.zeros(ctx.n)
        q[chosen] = 1.0 / max(chosen.size, 1)
        return chosen, q if chosen.size else np.full(ctx.n, 1.0 / max(ctx.n, 1))

    def _spread(self, ctx: SelectionContext, order: np.ndarray, k: int, factor: float) -> np.ndarray:
        """``k`` of ``order`` (best first), none closer to another than ``factor`` × the pool's typical spacing (the
        median nearest-neighbour distance, measured in a seeded ``max_candidates`` sample of a larger pool)."""
        from alloop.strategies._geometry import as_matrix, spread_in_order, subsample, typical_spacing

        emb = ctx.embeddings
        if emb is None:
            return order[:k]
        rng = ctx.rng(self.seed)
        ref = subsample(ctx.n, self.max_candidates, 1, rng)
        radius = factor * typical_spacing(as_matrix(emb if ref is None else emb[ref]), rng)
        return order[spread_in_order(as_matrix(emb[order]), np.arange(order.size), k, radius)]

    def _base_picks(self, ctx: SelectionContext, positions: np.ndarray, k: int) -> np.ndarray:
        """``k`` positions chosen by ``base`` among ``positions`` (the learned selector scores the whole pool)."""
        if self.base != "learned":
            return self._picks_among(ctx, positions, self.base, k)
        arm = self._learned()
        picks = arm.select_among(ctx, positions, k)
        self._state()["learned"] = arm.state_dict()  # its online error model learns from its picks' labels
        return picks

    def _picks_among(self, ctx: SelectionContext, positions: np.ndarray, spec: str, k: int) -> np.ndarray:
        """``k`` positions chosen by strategy ``spec`` among ``positions`` (a seeded ``max_candidates`` of them)."""
        from alloop.strategies.compose import subset_context

        check_int(self.max_candidates, "max_candidates", "AutoStrategy", min=1)
        if positions.size > self.max_candidates:
            positions = np.sort(ctx.rng(self.seed).choice(positions, self.max_candidates, replace=False))
        sub = subset_context(ctx, positions)
        arm = self._learned() if spec == "learned" else self._arm(spec)
        picks = positions[_positions(sub, _arm_select(arm, sub, k))]
        if isinstance(arm, LearnedStrategy):  # its online error model learns from its picks' labels: keep it
            self._state()["learned"] = arm.state_dict()
        return picks

    @classmethod
    def _test_params(cls) -> list[dict[str, Any]]:
        return [
            {},
            {"algorithm": "thompson", "max_candidates": 8, "seed": 2},
            {"algorithm": "surprise", "max_candidates": 8, "seed": 1},
        ]
