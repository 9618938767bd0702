"""The metadata sharing policy: what leaves the user's side, decided before anything is sent.

levels  ``probs`` (default): ids + class probabilities only; ``probs+embeddings``; ``probs+samples``; ``full``
        (also training dynamics)
embedding_dims  project embeddings to this many dimensions (a seeded Gaussian random projection)
quantize        ``"float16"`` halves the size of embeddings and samples
hash_ids        replace record ids with HMAC-SHA256(key, id); the key never leaves the client
dashboard       a campaign on a remote engine reports per-loop counts and totals to the service's dashboard
                (metrics, labels per source and per class, predicted-class counts, CPU seconds; never a record
                id or a record's label); ``False`` keeps them on the client

>>> import numpy as np
>>> from alloop.metadata import Snapshot
>>> snap = Snapshot(ids=[1, 2], probs=np.array([[0.2, 0.8], [0.6, 0.4]]), embeddings=np.ones((2, 3)))
>>> shared = SharingPolicy().apply(snap)
>>> shared.embeddings is None, shared.ids.tolist()
(True, [1, 2])
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from alloop._validation import check_bool
from alloop.errors import ConfigError
from alloop.metadata import Snapshot
from alloop.metadata.snapshot import _check_finite
from alloop.records import as_id_array

__all__ = ["LEVELS", "SharingPolicy"]

LEVELS = ("probs", "probs+embeddings", "probs+samples", "full")


@dataclass(frozen=True)
class SharingPolicy:
    level: str = "probs"
    embedding_dims: int | None = None
    quantize: str | None = None
    hash_ids: bool = False
    key: str | None = field(default=None, repr=False)
    seed: int = 0
    dashboard: bool = True

    def check(self) -> SharingPolicy:
        if self.level not in LEVELS:
            raise ConfigError(f"The 'level' parameter of SharingPolicy must be one of {LEVELS}. Got {self.level!r}.")
        if self.embedding_dims is not None and (not isinstance(self.embedding_dims, int) or self.embedding_dims < 1):
            raise ConfigError(
                "The 'embedding_dims' parameter of SharingPolicy must be an int >= 1 or None. "
                f"Got {self.embedding_dims!r}."
            )
        if self.quantize not in (None, "float16"):
            raise ConfigError(
                f"The 'quantize' parameter of SharingPolicy must be None or 'float16'. Got {self.quantize!r}."
            )
        check_bool(self.dashboard, "dashboard", "SharingPolicy")
        if self.hash_ids and not self.key:
            raise ConfigError(
                "SharingPolicy(hash_ids=True) needs a 'key' (keep it secret; use SharingPolicy.with_new_key())."
            )
        return self

    @classmethod
    def with_new_key(cls, **kwargs: Any) -> SharingPolicy:
        import secrets

        return cls(hash_ids=True, key=secrets.token_hex(32), **kwargs).check()

    @property
    def shares(self) -> frozenset[str]:
        """The metadata kinds this policy lets through."""
        return frozenset(
            {
                "probs": {"probs"},
                "probs+embeddings": {"probs", "embeddings"},
                "probs+samples": {"probs", "samples"},
                "full": {"probs", "embeddings", "samples", "dynamics"},
            }[self.level]
        )

    def encode_ids(self, ids: Any) -> np.ndarray:
        """Ids as the engine will see them (HMAC hex strings when ``hash_ids``)."""
        arr = as_id_array(ids)
        if not self.hash_ids:
            return arr
        key = str(self.key).encode()
        return np.array(
            [hmac.new(key, repr(v).encode(), hashlib.sha256).hexdigest()[:32] for v in arr.tolist()], dtype=object
        )

    def _project(self, emb: np.ndarray) -> np.ndarray:
        if self.embedding_dims is None or self.embedding_dims >= emb.shape[1]:
            return emb
        rng = np.random.default_rng([self.seed, emb.shape[1], self.embedding_dims])
        proj = rng.normal(size=(emb.shape[1], self.embedding_dims)) / np.sqrt(self.embedding_dims)
        return np.asarray(emb, dtype=np.float64) @ proj

    def _quant(self, a: np.ndarray) -> np.ndarray:
        if self.quantize != "float16":
            return a
        with np.errstate(over="ignore"):  # values beyond 65504 become inf: apply() names them in a DataError
            return a.astype(np.float16)

    def apply(self, snapshot: Snapshot) -> Snapshot:
        """The snapshot as it may leave the client."""
        self.check()
        allowed = self.shares
        emb = None
        if "embeddings" in allowed and snapshot.embeddings is not None:
            emb = self._quant(self._project(snapshot.embeddings))
        samples = self._quant(snapshot.samples) if "samples" in allowed and snapshot.samples is not None else None
        for name, out, given in (("embeddings", emb, snapshot.embeddings), ("samples", samples, snapshot.samples)):
            if out is not None and out is not given:  # float16 overflows above 65504
                _check_finite(out, f"{name} (after the sharing policy's projection/quantisation)")
        # the rest is a validated snapshot's, and ids are replaced one for one by a 128-bit HMAC: not validated
        # again (that pass over the probabilities cost 20-80 ms per 10^6 records)
        return Snapshot._trusted(
            ids=self.encode_ids(snapshot.ids),
            probs=snapshot.probs,
            embeddings=emb,
            samples=samples,
            dynamics=snapshot.dynamics if "dynamics" in allowed else None,
            classes=snapshot.classes,
            loop=snapshot.loop,
            task=snapshot.task,
        )

    def to_config(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "embedding_dims": self.embedding_dims,
            "quantize": self.quantize,
            "hash_ids": self.hash_ids,
            "key": self.key,
            "seed": self.seed,
        }
