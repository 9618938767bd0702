"""``ensemble(base, k)``: a committee of ``k`` copies of any model, for committee samples.

>>> import numpy as np
>>> X = np.array([[0.0], [0.2], [0.9], [1.1], [0.1], [1.0]]); y = np.array([0, 0, 1, 1, 0, 1])
>>> est = EnsembleClassifier("gaussian-nb", k=3, seed=0).fit(X, y)
>>> est.predict_samples(X).shape, est.predict_proba(X).shape
((3, 6, 2), (6, 2))
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from alloop.errors import ConfigError, DataError, StateError

__all__ = ["EnsembleClassifier"]


def _seeded(est: Any, seed: int) -> Any:
    """Give a member its own seed through whichever parameter it has (``seed`` or ``random_state``)."""
    params = est.get_params(deep=False)
    for name in ("seed", "random_state"):
        if name in params:
            return est.set_params(**{name: seed})
    return est


class EnsembleClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """``k`` members of one model; each is fit on its own bootstrap sample with its own seed.

    base       a built-in model name (``"mlp"``, ``"logreg"``, …) or an unfitted estimator
    k          committee size (>= 2)
    bootstrap  fit each member on a bootstrap resample of the training rows (drawn from
               ``default_rng([seed, member])``); without it members differ only through their seeds,
               so deterministic models (logreg) would all agree
    seed       member ``i`` gets seed ``seed + i``

    ``predict_proba`` is the members' mean; ``predict_samples`` gives the ``(k, n, C)`` member
    probabilities (a class a member never saw in its resample gets probability 0 from it);
    ``embed`` is the first member's, when it has one.
    """

    def __init__(self, base: Any = "logreg", *, k: int = 5, bootstrap: bool = True, seed: int = 0) -> None:
        self.base = base
        self.k = k
        self.bootstrap = bootstrap
        self.seed = seed

    def _member(self, i: int) -> Any:
        from sklearn.base import clone

        from alloop.models._registry import build_model

        if isinstance(self.base, str):
            return build_model(self.base, seed=self.seed + i)
        return _seeded(clone(self.base), self.seed + i)

    def fit(self, X: Any, y: Any) -> EnsembleClassifier:
        from alloop._validation import check_int

        k = check_int(self.k, "k", "EnsembleClassifier", min=2)
        check_int(self.seed, "seed", "EnsembleClassifier", min=0)
        y = np.asarray(y)
        n = y.shape[0]
        if n == 0:
            raise DataError("EnsembleClassifier.fit needs at least one labeled record.")
        self.classes_ = np.unique(y)
        self.members_ = []
        for i in range(k):
            rows = np.arange(n)
            if self.bootstrap:
                rng = np.random.default_rng([self.seed, i])
                rows = rng.integers(0, n, size=n)
                if np.unique(y[rows]).size < 2 <= self.classes_.size:
                    rows = np.concatenate([rows, np.arange(n)])  # a one-class resample cannot be fit
            self.members_.append(self._member(i).fit(_take(X, rows), y[rows]))
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "members_"):
            raise StateError("EnsembleClassifier is not fitted yet; call fit(X, y) first.")

    def predict_samples(self, X: Any, n_samples: int | None = None, seed: int = 0) -> np.ndarray:
        """``(k, n, C)`` member probabilities over ``classes_`` (``n_samples``/``seed`` are ignored)."""
        from alloop.models._sklearn import predict_proba_full

        self._check_fitted()
        return np.stack([predict_proba_full(m, X, self.classes_) for m in self.members_])

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(self.predict_samples(X).mean(axis=0))

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.classes_)[np.argmax(self.predict_proba(X), axis=1)]

    @property
    def can_embed(self) -> bool:
        """Whether ``embed`` works: the fitted members have embeddings of their own."""
        return hasattr(self, "members_") and hasattr(self.members_[0], "embed")

    def embed(self, X: Any) -> np.ndarray:
        self._check_fitted()
        first = self.members_[0]
        if not hasattr(first, "embed"):
            raise ConfigError(f"The ensemble's base model {self.base!r} has no embeddings; use mlp, cnn or minilm.")
        return np.asarray(first.embed(X))


def _take(X: Any, rows: np.ndarray) -> Any:
    return X[rows] if isinstance(X, np.ndarray) else np.asarray(X)[rows]
