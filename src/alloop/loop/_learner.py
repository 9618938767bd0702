"""The learner contract and its adapters. The learner is the user's: their model, their data.

The engine never sees features or the model, only what ``infer`` returns (a :class:`Snapshot`),
keyed by record id — never by position.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from alloop._validation import check_bool
from alloop.errors import ConfigError, DataError, StateError
from alloop.metadata import Snapshot
from alloop.records import as_id_array

__all__ = ["FunctionLearner", "Learner", "SklearnLearner", "TrainReport", "feature_embeddings", "feature_scaling"]


@dataclass(frozen=True)
class TrainReport:
    """What a TRAIN step did: ``mode`` is full, warm or incremental."""

    mode: str = "full"
    n_records: int = 0
    epochs: int | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Learner(Protocol):
    def train(self, ids: np.ndarray, y: np.ndarray, *, warm_start: bool) -> TrainReport: ...

    def infer(self, ids: np.ndarray) -> Snapshot: ...

    def evaluate(self) -> dict[str, float]: ...


def feature_scaling(X: Any, owner: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and standard deviation (1 where a column is constant) of a dense numeric 2-D ``X``.

    What a learner without embeddings of its own shares instead: the input features, standardised with these
    statistics (:func:`feature_embeddings`), for strategies that need embeddings (core-set, k-means, BADGE, …).

    >>> feature_scaling(np.array([[0.0, 5.0], [2.0, 5.0]]), "x")
    (array([1., 5.]), array([1., 1.]))
    """
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[0] == 0 or not np.issubdtype(X.dtype, np.number) or np.iscomplexobj(X):
        raise ConfigError(
            f"{owner} shares the input features as embeddings, which needs a dense numeric 2-D feature matrix with "
            f"at least one row; got {X.dtype} with shape {X.shape}. Share embeddings of your own model instead "
            "(FunctionLearner: an 'embedding' per record), or turn feature sharing off."
        )
    mean = X.mean(axis=0, dtype=np.float64)
    std = X.std(axis=0, dtype=np.float64)
    return mean, np.where(std > 0, std, 1.0)


def feature_embeddings(X: Any, scaling: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``X`` standardised with ``scaling`` (:func:`feature_scaling`), as float32 embeddings.

    >>> feature_embeddings(np.array([[0.0, 5.0], [2.0, 5.0]]), (np.array([1.0, 5.0]), np.array([1.0, 1.0])))
    array([[-1.,  0.],
           [ 1.,  0.]], dtype=float32)
    """
    mean, std = scaling
    return ((np.asarray(X, dtype=np.float64) - mean) / std).astype(np.float32)


def _class_list(*parts: Any) -> list[Any]:
    values: set[Any] = set()
    for p in parts:
        if p is not None:
            values.update(np.asarray(p).tolist())
    return sorted(values, key=lambda v: (str(type(v)), v))


class SklearnLearner:
    """Any scikit-learn estimator with ``predict_proba``, over features the user holds.

    estimator  an unfitted estimator; cloned for every full fit
    X          features, one row per id in ``ids``
    ids        record ids of the rows of ``X`` (default: the row numbers 0..n-1 as ids)
    eval_X, eval_y  the user's held-out data for ``evaluate``
    classes    the class list (default: classes seen in training and in ``eval_y``)
    warm_start continue from the previous fit when the estimator supports ``warm_start``
    share_features  also share the input features, standardised (statistics of the rows held at the first
               ``infer``, fixed afterwards), as the Snapshot's embeddings: what diversity strategies (core-set,
               k-means, BADGE, …) and ``auto`` use when the model has no embeddings of its own. Off by default;
               with a remote engine the :class:`SharingPolicy` still decides whether embeddings leave.

    >>> import numpy as np
    >>> from sklearn.linear_model import LogisticRegression
    >>> X = np.array([[0.0], [0.1], [1.0], [1.1]])
    >>> learner = SklearnLearner(LogisticRegression(), X, ids=["a", "b", "c", "d"])
    >>> learner.train(np.array(["a", "c"]), np.array([0, 1]), warm_start=False).mode
    'full'
    >>> learner.infer(np.array(["b", "d"])).probs.argmax(axis=1).tolist()
    [0, 1]
    """

    def __init__(
        self,
        estimator: Any,
        X: Any,
        ids: Any = None,
        *,
        eval_X: Any = None,
        eval_y: Any = None,
        classes: Any = None,
        warm_start: bool = False,
        share_features: bool = False,
    ) -> None:
        if not hasattr(estimator, "predict_proba") and not hasattr(estimator, "steps"):
            raise ConfigError(
                f"The 'estimator' parameter of SklearnLearner must have predict_proba; {type(estimator).__name__} "
                "has not (wrap it in CalibratedClassifierCV)."
            )
        self.estimator = estimator
        self.X = np.asarray(X)
        self.ids = np.arange(self.X.shape[0]) if ids is None else as_id_array(ids, "ids")
        if self.ids.size != self.X.shape[0]:
            raise DataError(
                f"'ids' has {self.ids.size} entries but 'X' has {self.X.shape[0]} rows; give one id per row."
            )
        self.eval_X = eval_X
        self.eval_y = eval_y
        self.classes = classes
        self.warm_start = warm_start
        self.share_features = share_features
        self.model: Any = None
        self._scaling: tuple[np.ndarray, np.ndarray] | None = None
        self._rows = {rid: j for j, rid in enumerate(self.ids.tolist())}

    def rows(self, ids: Any) -> np.ndarray:
        arr = as_id_array(ids, "ids")
        try:
            return np.fromiter((self._rows[r] for r in arr.tolist()), dtype=np.int64, count=arr.size)
        except KeyError as exc:
            raise DataError(
                f"SklearnLearner has no features for id {exc.args[0]!r}; add them with add_data()."
            ) from None

    def add_data(self, ids: Any, X: Any) -> None:
        """Features for records added to the pool after the start."""
        arr = as_id_array(ids, "ids")
        X = np.asarray(X)
        if X.shape[0] != arr.size:
            raise DataError(f"'X' has {X.shape[0]} rows for {arr.size} ids; give one row per id.")
        start = self.X.shape[0]
        self.X = np.concatenate([self.X, X])
        self.ids = np.concatenate([self.ids, arr])
        for j, rid in enumerate(arr.tolist()):
            self._rows[rid] = start + j

    def forget(self, ids: Any) -> None:
        """Drop the features of removed records (data-protection removal)."""
        for rid in as_id_array(ids, "ids").tolist():
            self._rows.pop(rid, None)

    def train(self, ids: np.ndarray, y: np.ndarray, *, warm_start: bool) -> TrainReport:
        from sklearn.base import clone

        t0 = time.perf_counter()
        Xl = self.X[self.rows(ids)]
        warm = bool(warm_start and self.warm_start and self.model is not None)
        if warm and "warm_start" in self.model.get_params():
            self.model.set_params(warm_start=True)
            self.model.fit(Xl, np.asarray(y))
            mode = "warm"
        else:
            self.model = clone(self.estimator)
            self.model.fit(Xl, np.asarray(y))
            mode = "full"
        return TrainReport(mode=mode, n_records=int(len(Xl)), seconds=time.perf_counter() - t0)

    def _model_classes(self) -> list[Any]:
        if self.model is None:
            raise StateError("SklearnLearner has not been trained yet; call train() first.")
        return list(np.asarray(self.model.classes_).tolist())

    def _full_classes(self) -> list[Any]:
        if self.classes is not None:
            return list(self.classes)
        return _class_list(self._model_classes(), self.eval_y)

    def infer(self, ids: np.ndarray) -> Snapshot:
        from alloop.models import predict_proba_full

        classes = self._full_classes()
        X = self.X[self.rows(ids)]
        probs = predict_proba_full(self.model, X, classes)
        emb = None
        if check_bool(self.share_features, "share_features", "SklearnLearner"):
            if self._scaling is None:  # fixed from the first inference on: embeddings comparable across loops
                self._scaling = feature_scaling(self.X, "SklearnLearner(share_features=True)")
            emb = feature_embeddings(X, self._scaling)
        return Snapshot(ids=ids, probs=probs, embeddings=emb, classes=classes)

    def evaluate(self) -> dict[str, float]:
        if self.eval_X is None or self.eval_y is None:
            return {}
        from alloop.models import classification_metrics, predict_proba_full

        classes = self._full_classes()
        probs = predict_proba_full(self.model, np.asarray(self.eval_X), classes)
        return classification_metrics(np.asarray(self.eval_y), probs, classes)


class FunctionLearner:
    """Plain functions as a learner (the Alectio-style contract).

    train_fn(ids, y, warm_start)   trains on the labeled records; may return a TrainReport or a dict
    infer_fn(ids)                  returns a Snapshot, or a mapping id -> probability vector
    evaluate_fn()                  returns metrics on the user's held-out data (optional)
    dataset_state_fn()             returns the pool's record ids (optional; used when no pool is given)

    >>> import numpy as np
    >>> fl = FunctionLearner(lambda ids, y, warm_start: None, lambda ids: {i: [0.5, 0.5] for i in ids})
    >>> fl.infer(np.array([3, 4])).probs.tolist()
    [[0.5, 0.5], [0.5, 0.5]]
    """

    def __init__(
        self,
        train_fn: Callable[..., Any],
        infer_fn: Callable[[np.ndarray], Any],
        evaluate_fn: Callable[[], Mapping[str, float]] | None = None,
        dataset_state_fn: Callable[[], Any] | None = None,
        *,
        classes: Any = None,
    ) -> None:
        self.train_fn = train_fn
        self.infer_fn = infer_fn
        self.evaluate_fn = evaluate_fn
        self.dataset_state_fn = dataset_state_fn
        self.classes = classes

    def train(self, ids: np.ndarray, y: np.ndarray, *, warm_start: bool) -> TrainReport:
        t0 = time.perf_counter()
        out = self.train_fn(ids, y, warm_start)
        if isinstance(out, TrainReport):
            return out
        extra = dict(out) if isinstance(out, Mapping) else {}
        return TrainReport(
            mode=str(extra.pop("mode", "full")), n_records=int(len(ids)), seconds=time.perf_counter() - t0, extra=extra
        )

    def infer(self, ids: np.ndarray) -> Snapshot:
        out = self.infer_fn(ids)
        if isinstance(out, Snapshot):
            return out
        if not isinstance(out, Mapping):
            raise DataError(
                f"infer_fn returned {type(out).__name__}; it must return a Snapshot or a mapping "
                "record id -> probabilities (outputs are keyed by id, never by position)."
            )
        wanted = as_id_array(ids, "ids").tolist()
        missing = [i for i in wanted if i not in out]
        if missing:
            raise DataError(f"infer_fn returned no output for id {missing[0]!r}; return one entry per requested id.")
        rows = []
        for i in wanted:
            v = out[i]
            rows.append(v["probs"] if isinstance(v, Mapping) else v)
        probs = np.asarray(rows, dtype=np.float64)
        emb = None
        if wanted and isinstance(out[wanted[0]], Mapping) and "embedding" in out[wanted[0]]:
            emb = np.asarray([out[i]["embedding"] for i in wanted])
        return Snapshot(ids=np.asarray(ids), probs=probs, embeddings=emb, classes=self.classes)

    def evaluate(self) -> dict[str, float]:
        if self.evaluate_fn is None:
            return {}
        return {str(k): float(v) for k, v in dict(self.evaluate_fn()).items()}

    def dataset_state(self) -> np.ndarray:
        if self.dataset_state_fn is None:
            raise ConfigError("FunctionLearner has no dataset_state_fn; pass the pool ids to Campaign(pool=...).")
        state = self.dataset_state_fn()
        return as_id_array(list(state.keys()) if isinstance(state, Mapping) else state, "dataset_state_fn()")
