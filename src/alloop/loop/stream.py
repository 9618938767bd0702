"""Stream mode: records arrive one by one (or in small blocks); each is labeled now or never.

:class:`StreamCampaign` reads an iterator of record ids. For each block of ``block_size`` records it
asks the learner for outputs (``learner.infer(ids)`` → Snapshot), lets the stream strategy decide per
record under a budget manager, sends the chosen ids to the labeler (``request``; whatever has
arrived is collected with ``poll`` after each block), and retrains the learner on all labels so far
every ``retrain_every`` new labels (``learner.train(ids, y, warm_start=True)``).

**Cold start.** Before the first model exists nothing can be inferred: the first ``initial`` records
are queried as they come, the campaign then waits (polling) for their labels, up to
``label_timeout`` seconds, and trains the first model. Cold-start queries count against the budget
(so the budget manager holds back until the labeled fraction is back under the budget). If the
labels that arrived hold fewer than two classes, the following records are queried too, one by one,
until they do. ``initial=0`` means the learner is already trained: deciding starts at the first record.

>>> import numpy as np
>>> from sklearn.linear_model import LogisticRegression
>>> from alloop.labeling import SimulatedOracle
>>> from alloop.loop import SklearnLearner
>>> rng = np.random.default_rng(0)
>>> y = rng.integers(0, 2, 2000)
>>> X = rng.normal(size=(2000, 2)) + 2.0 * y[:, None]
>>> campaign = StreamCampaign(SklearnLearner(LogisticRegression(), X), SimulatedOracle(truth=dict(enumerate(y))),
...                           classes=[0, 1], budget=0.1, block_size=20, retrain_every=50)
>>> result = campaign.run(range(2000))
>>> round(result.labeled_fraction, 2), result.n_labeled == result.n_queried
(0.1, True)
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alloop._validation import check_float, check_int
from alloop.errors import ConfigError, DataError, LabelError
from alloop.labeling import LabelProvider
from alloop.loop._learner import Learner, TrainReport
from alloop.metadata import Snapshot
from alloop.records import as_id_array
from alloop.strategies.stream import (
    BudgetManager,
    StreamRow,
    StreamStrategy,
    make_budget_manager,
    make_stream_strategy,
)

__all__ = ["StreamCampaign", "StreamResult"]


@dataclass
class StreamResult:
    """What a stream run did, record by record.

    ids          the records in stream order
    queried      (n,) bool: sent for labeling (cold start included)
    cold_start   (n,) bool: queried before the first model existed
    confidence   (n,) top class probability when the record was decided (NaN during cold start)
    labeled_ids, labels   the labels that arrived, in arrival order
    metrics      ``learner.evaluate()`` after the last training
    trainings    one TrainReport per training
    """

    ids: np.ndarray
    queried: np.ndarray
    cold_start: np.ndarray
    confidence: np.ndarray
    labeled_ids: np.ndarray
    labels: list[Any]
    strategy: str
    budget_manager: str
    budget: float
    metrics: dict[str, float] = field(default_factory=dict)
    trainings: list[TrainReport] = field(default_factory=list)

    @property
    def n_records(self) -> int:
        return int(self.ids.size)

    @property
    def n_queried(self) -> int:
        return int(np.count_nonzero(self.queried))

    @property
    def n_labeled(self) -> int:
        return int(self.labeled_ids.size)

    @property
    def labeled_fraction(self) -> float:
        """Queried records / records seen (the budget is spent when a label is asked for)."""
        return self.n_queried / self.n_records if self.n_records else 0.0

    def window_fractions(self, window: int = 1000, *, start: int = 0) -> np.ndarray:
        """Queried fraction of every ``window``-record window starting at position ``start`` or later.

        >>> r = StreamResult(np.arange(6), np.array([1, 0, 0, 1, 0, 0], bool), np.zeros(6, bool),
        ...                  np.zeros(6), np.arange(0), [], "s", "b", 0.3)
        >>> r.window_fractions(3).tolist()
        [0.3333333333333333, 0.3333333333333333, 0.3333333333333333, 0.3333333333333333]
        """
        counts = np.concatenate([[0], np.cumsum(self.queried, dtype=np.int64)])
        starts = np.arange(start, self.n_records - window + 1)
        return (counts[starts + window] - counts[starts]) / window


def _blocks(records: Iterable[Any], size: int) -> Iterator[list[Any]]:
    it = iter(records)
    while True:
        block = list(itertools.islice(it, size))
        if not block:
            return
        yield block


class StreamCampaign:
    """Stream-based active learning: decide per record whether to label it, within a budget fraction.

    learner         the user's model (:class:`alloop.loop.Learner`): ``infer`` on each block, ``train`` on labels
    labeler         a :class:`alloop.labeling.LabelProvider` (request + poll)
    classes         the class labels (columns of the learner's probabilities)
    strategy        a stream strategy name, spec (``"stream-split(split=0.3)"``) or instance
    budget          the fraction of records to label, in (0, 1]
    budget_manager  a budget manager name, spec or instance (its budget must equal ``budget``)
    block_size      records inferred together (decisions stay per record, in order)
    retrain_every   retrain after this many new labels
    initial         records queried at cold start (see the module docstring); 0 = learner already trained
    seed            seed for stochastic strategies whose own ``seed`` is None
    label_timeout   seconds to wait for outstanding labels at cold start and at the end of the stream
    poll_interval   seconds between polls while waiting
    """

    def __init__(
        self,
        learner: Learner,
        labeler: LabelProvider,
        classes: Sequence[Any],
        *,
        strategy: str | StreamStrategy = "stream-variable-uncertainty",
        budget: float = 0.1,
        budget_manager: str | BudgetManager = "fixed-fraction",
        block_size: int = 1,
        retrain_every: int = 50,
        initial: int = 10,
        seed: int = 0,
        label_timeout: float = 60.0,
        poll_interval: float = 0.01,
    ) -> None:
        owner = "StreamCampaign"
        if classes is None or isinstance(classes, (str, bytes)) or len(set(list(classes))) < 2:
            raise ConfigError(
                f"The 'classes' parameter of {owner} must list at least 2 distinct labels. Got {classes!r}."
            )
        if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not 0.0 < float(budget) <= 1.0:
            raise ConfigError(f"The 'budget' parameter of {owner} must be a number in (0, 1]. Got {budget!r}.")
        self.learner = learner
        self.labeler = labeler
        self.classes = [c.item() if isinstance(c, np.generic) else c for c in list(classes)]
        self.strategy = strategy
        self.budget = float(budget)
        self.budget_manager = budget_manager
        self.block_size = check_int(block_size, "block_size", owner, min=1)
        self.retrain_every = check_int(retrain_every, "retrain_every", owner, min=1)
        self.initial = check_int(initial, "initial", owner, min=0)
        self.seed = check_int(seed, "seed", owner, min=0)
        self.label_timeout = check_float(label_timeout, "label_timeout", owner, low=0.0)
        self.poll_interval = check_float(poll_interval, "poll_interval", owner, low=0.0)
        # fail now, not at the first record, on an unknown strategy or budget manager
        make_stream_strategy(strategy)
        make_budget_manager(budget_manager, budget=self.budget)

    # ---- one run -----------------------------------------------------------------------------------
    def run(self, records: Iterable[Any]) -> StreamResult:
        """Consume ``records`` (an iterable of ids) and return the per-record decisions and final metrics."""
        strategy = make_stream_strategy(self.strategy)
        manager = make_budget_manager(self.budget_manager, budget=self.budget)
        strategy.reset(self.seed)
        manager.reset()
        run = _Run(self, strategy, manager)
        for block in _blocks(records, self.block_size):
            run.block(as_id_array(block, "records"))
        return run.finish()


class _Run:
    """The state of one pass over a stream."""

    def __init__(self, campaign: StreamCampaign, strategy: StreamStrategy, manager: BudgetManager) -> None:
        self.c = campaign
        self.strategy = strategy
        self.manager = manager
        self.ids: list[np.ndarray] = []
        self.queried: list[np.ndarray] = []
        self.cold: list[np.ndarray] = []
        self.confidence: list[np.ndarray] = []
        self.position = 0
        self.trained = campaign.initial == 0
        self.n_cold = 0
        self.pending: set[Any] = set()
        self.requested: set[Any] = set()
        self.labeled_ids: list[Any] = []
        self.labels: list[Any] = []
        self.new_labels = 0
        self.trainings: list[TrainReport] = []
        self.class_set = set(campaign.classes)
        self.checked_needs = False

    # ---- labels ----------------------------------------------------------------------------------
    def request(self, ids: list[Any]) -> None:
        if ids:
            self.c.labeler.request(as_id_array(ids, "ids"))
            self.pending.update(ids)
            self.requested.update(ids)

    def collect(self) -> None:
        for ev in self.c.labeler.poll():
            rid = ev.id.item() if isinstance(ev.id, np.generic) else ev.id
            if rid not in self.requested:
                raise DataError(f"The labeler returned a label for {rid!r}, which this stream never asked for.")
            if rid not in self.pending:
                continue  # a repeated answer
            label = ev.label.item() if isinstance(ev.label, np.generic) else ev.label
            if label not in self.class_set:
                raise LabelError(
                    f"The label {label!r} for record {rid!r} is not one of the classes {self.c.classes!r}; "
                    "fix the labeler or add the class."
                )
            self.pending.discard(rid)
            self.labeled_ids.append(rid)
            self.labels.append(label)
            self.new_labels += 1

    def wait(self, until: Any) -> None:
        """Poll until ``until()`` is true, nothing is pending, or the label timeout passes."""
        deadline = time.monotonic() + self.c.label_timeout
        self.collect()
        while self.pending and not until() and time.monotonic() < deadline:
            time.sleep(self.c.poll_interval)
            self.collect()

    # ---- the model ---------------------------------------------------------------------------------
    def can_train(self) -> bool:
        return len(set(self.labels)) >= 2

    def train(self) -> None:
        ids = as_id_array(self.labeled_ids, "labeled ids")
        if all(isinstance(c, int) for c in self.c.classes):
            y = np.asarray(self.labels, dtype=np.int64)
        else:
            y = np.asarray(self.labels, dtype=object)
        self.trainings.append(self.c.learner.train(ids, y, warm_start=bool(self.trainings)))
        self.trained = True
        self.new_labels = 0

    def infer(self, ids: np.ndarray) -> Snapshot:
        snap = self.c.learner.infer(ids)
        if not isinstance(snap, Snapshot):
            raise DataError(f"Learner.infer must return a Snapshot; got {type(snap).__name__}.")
        if snap.n_records != ids.size or list(snap.ids.tolist()) != list(ids.tolist()):
            order = {rid: j for j, rid in enumerate(snap.ids.tolist())}
            missing = [rid for rid in ids.tolist() if rid not in order]
            if missing or snap.n_records != ids.size:
                raise DataError(
                    f"Learner.infer returned outputs for other ids than requested (e.g. missing {missing[:1]!r}); "
                    "return exactly one row per requested id."
                )
            snap = snap.subset(np.asarray([order[rid] for rid in ids.tolist()], dtype=np.int64))
        snap = snap.aligned_to(self.c.classes)
        if not self.checked_needs:
            missing_needs = sorted(self.strategy.needs - snap.available - {"history", "labels"})
            if missing_needs:
                raise ConfigError(
                    f"The stream strategy {self.strategy.name!r} needs {missing_needs} but the learner's Snapshot "
                    f"has only {sorted(snap.available)}; return them from Learner.infer or choose another strategy."
                )
            self.checked_needs = True
        return snap

    # ---- one block ---------------------------------------------------------------------------------
    def block(self, ids: np.ndarray) -> None:
        n = ids.size
        id_list = ids.tolist()
        queried = np.zeros(n, dtype=bool)
        cold = np.zeros(n, dtype=bool)
        confidence = np.full(n, np.nan)
        i = 0
        while i < n and not self.trained:  # cold start, one record at a time
            queried[i] = cold[i] = True
            self.request([id_list[i]])
            self.manager.update(True)
            self.n_cold += 1
            i += 1
            if self.n_cold >= self.c.initial:
                self.wait(until=lambda: False)
                if self.can_train():
                    self.train()
        if i < n:
            snap = self.infer(ids[i:])
            probs = snap.probs
            emb = snap.embeddings
            chosen: list[Any] = []
            for j in range(n - i):
                row = StreamRow(
                    id=id_list[i + j],
                    probs=probs[j],
                    embedding=None if emb is None else emb[j],
                    index=self.position + i + j,
                )
                q = bool(self.strategy.decide(row, self.manager))
                self.manager.update(q)
                queried[i + j] = q
                confidence[i + j] = float(probs[j].max())
                if q:
                    chosen.append(row.id)
            self.request(chosen)
        self.position += n
        self.ids.append(ids)
        self.queried.append(queried)
        self.cold.append(cold)
        self.confidence.append(confidence)
        self.collect()
        if self.trained and self.new_labels >= self.c.retrain_every:
            self.train()

    def finish(self) -> StreamResult:
        self.wait(until=lambda: False)
        if self.new_labels and self.can_train():
            self.train()
        metrics = self.c.learner.evaluate() if self.trained else {}

        def cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
            return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)

        return StreamResult(
            ids=cat(self.ids, np.int64),
            queried=cat(self.queried, bool),
            cold_start=cat(self.cold, bool),
            confidence=cat(self.confidence, np.float64),
            labeled_ids=as_id_array(self.labeled_ids, "labeled ids"),
            labels=list(self.labels),
            strategy=self.strategy.spec,
            budget_manager=self.manager.spec,
            budget=self.c.budget,
            metrics=dict(metrics),
            trainings=list(self.trainings),
        )
