"""The labeling interface: the campaign asks for labels, labels arrive later.

A :class:`LabelProvider` receives ``request(ids)`` and hands back whatever has arrived on ``poll()``.
Providers for crowds, people on a web page and webhooks implement the same two methods.
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from alloop._validation import check_float, check_int
from alloop.errors import ConfigError, UnknownRecordError
from alloop.records import as_id_array

__all__ = ["LabelEvent", "LabelProvider", "SimulatedOracle"]


@dataclass(frozen=True)
class LabelEvent:
    """One label for one record, with its provenance."""

    id: Any
    label: Any
    source: str = "oracle"  # human, auto, weak, oracle
    annotator: str | None = None
    posterior: float | None = None


@runtime_checkable
class LabelProvider(Protocol):
    def request(self, ids: np.ndarray) -> None:
        """Ask for labels of ``ids`` (idempotent: asking twice for the same id is harmless)."""

    def poll(self) -> list[LabelEvent]:
        """Labels that have arrived since the last poll (never blocks)."""

    def cancel(self, ids: np.ndarray) -> None:
        """Stop waiting for ``ids`` (removed from the pool)."""


class SimulatedOracle:
    """Answers with the ground truth, optionally noisy and late — for simulations and demos.

    truth       mapping id → label, or a (ids, labels) pair
    noise_rate  probability of answering a uniformly drawn *wrong* class instead
    latency     seconds before an answer arrives (0 = at once)
    per_poll    at most this many answers per ``poll()`` (None = all that are due), like people
                who label one record at a time
    seed        the noise for a record depends only on (seed, id): same seed, same answers

    >>> oracle = SimulatedOracle(truth={1: "cat", 2: "dog"})
    >>> oracle.request([2])
    >>> [(e.id, e.label) for e in oracle.poll()]
    [(2, 'dog')]
    """

    def __init__(
        self,
        truth: Mapping[Any, Any] | tuple[Sequence[Any], Sequence[Any]] | None = None,
        *,
        noise_rate: float = 0.0,
        latency: float = 0.0,
        classes: Sequence[Any] | None = None,
        per_poll: int | None = None,
        seed: int = 0,
    ) -> None:
        self.truth = truth
        self.noise_rate = noise_rate
        self.latency = latency
        self.classes = classes
        self.per_poll = per_poll
        self.seed = seed
        self._pending: dict[Any, float] = {}
        self._table: dict[Any, Any] | None = None

    def _lookup(self) -> dict[Any, Any]:
        if self._table is None:
            check_float(self.noise_rate, "noise_rate", "SimulatedOracle", low=0.0, high=1.0)
            check_float(self.latency, "latency", "SimulatedOracle", low=0.0)
            check_int(self.seed, "seed", "SimulatedOracle", min=0)
            check_int(self.per_poll, "per_poll", "SimulatedOracle", min=1, allow_none=True)
            if self.truth is None:
                raise ConfigError("The 'truth' parameter of SimulatedOracle is required: a mapping id -> label.")
            if isinstance(self.truth, Mapping):
                table = dict(self.truth)
            else:
                ids, ys = self.truth
                id_arr = as_id_array(ids, "truth ids")
                ys_list = np.asarray(ys, dtype=object).tolist()
                if len(ys_list) != id_arr.size:
                    raise ConfigError("SimulatedOracle 'truth' must pair each id with one label.")
                table = dict(zip(id_arr.tolist(), ys_list, strict=True))
            self._table = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in table.items()}
        return self._table

    def _classes(self) -> list[Any]:
        if self.classes is not None:
            return list(self.classes)
        return sorted(set(self._lookup().values()), key=lambda v: (str(type(v)), v))

    def request(self, ids: Any) -> None:
        table = self._lookup()
        arr = as_id_array(ids, "ids")
        missing = [i for i in arr.tolist() if i not in table]
        if missing:
            raise UnknownRecordError(f"SimulatedOracle has no ground truth for id {missing[0]!r}.")
        due = time.monotonic() + float(self.latency)
        for rid in arr.tolist():
            self._pending.setdefault(rid, due)

    def cancel(self, ids: Any) -> None:
        for rid in as_id_array(ids, "ids").tolist():
            self._pending.pop(rid, None)

    def answer(self, rid: Any) -> Any:
        """The oracle's (possibly noisy) answer for ``rid``; deterministic in (seed, id)."""
        label = self._lookup()[rid]
        if self.noise_rate > 0:
            key = zlib.crc32(repr(rid).encode())
            rng = np.random.default_rng([int(self.seed), key])
            if rng.random() < self.noise_rate:
                others = [c for c in self._classes() if c != label]
                if others:
                    label = others[int(rng.integers(len(others)))]
        return label

    def poll(self) -> list[LabelEvent]:
        now = time.monotonic()
        ready = [rid for rid, due in self._pending.items() if due <= now]
        if self.per_poll is not None:
            ready = ready[: self.per_poll]
        events = [LabelEvent(id=rid, label=self.answer(rid), source="oracle", annotator="oracle") for rid in ready]
        for rid in ready:
            del self._pending[rid]
        return events

    @property
    def pending(self) -> int:
        return len(self._pending)
