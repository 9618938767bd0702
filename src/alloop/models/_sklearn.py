"""Factories of the built-in scikit-learn models, and full-class probabilities."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from alloop.errors import ConfigError, DataError

__all__ = ["predict_proba_full"]


def _logreg(seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def _svm_rbf(seed: int) -> Any:
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), SmallSampleCalibratedSVC())


class SmallSampleCalibratedSVC(ClassifierMixin, BaseEstimator):
    """``CalibratedClassifierCV(SVC(), ensemble=False)`` that also fits when a class has fewer than 5 examples.

    With at least ``cv`` examples of every class it is exactly the 5-fold sigmoid calibration. With fewer
    (early active-learning loops), the folds shrink to the smallest class count; when some class has a
    single example no cross-validated calibration is possible, and the probabilities are a softmax of the
    SVC's one-vs-rest decision values (a sigmoid for two classes) — uncalibrated, but a valid ranking.

    >>> import numpy as np
    >>> X = np.array([[0.0], [0.1], [0.2], [1.0], [1.1], [5.0]]); y = np.array([0, 0, 0, 1, 1, 2])
    >>> SmallSampleCalibratedSVC().fit(X, y).predict_proba(X).shape
    (6, 3)
    """

    def __init__(self, cv: int = 5) -> None:
        self.cv = cv

    def fit(self, X: Any, y: Any) -> SmallSampleCalibratedSVC:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.svm import SVC

        y = np.asarray(y)
        self.classes_, counts = np.unique(y, return_counts=True)
        folds = int(min(self.cv, counts.min()))
        if folds >= 2:
            self.model_ = CalibratedClassifierCV(SVC(), cv=folds, ensemble=False).fit(X, y)
            self.calibrated_ = True
        else:
            self.model_ = SVC(decision_function_shape="ovr").fit(X, y)
            self.calibrated_ = False
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        if self.calibrated_:
            return np.asarray(self.model_.predict_proba(X))
        d = np.asarray(self.model_.decision_function(X), dtype=np.float64)
        if d.ndim == 1:  # two classes: decision > 0 means the second class
            p1 = 1.0 / (1.0 + np.exp(-d))
            return np.column_stack([1.0 - p1, p1])
        e = np.exp(d - d.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.classes_[np.argmax(self.predict_proba(X), axis=1)])


def _random_forest(seed: int) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=100, random_state=seed)


def _knn(seed: int) -> Any:
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), KNeighborsClassifier())


def _gradient_boosting(seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(random_state=seed)


def _gaussian_nb(seed: int) -> Any:
    from sklearn.naive_bayes import GaussianNB

    return GaussianNB()


def _texts_column(X: Any) -> Any:
    """The texts of an ``(n, 1)`` text column (or a 1-D array of texts) as a 1-D array.

    Numbers instead of texts most likely mean a configuration written when ``naive-bayes`` was Gaussian:

    >>> _texts_column(np.array([[0.5, 1.0]]))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    alloop.errors.ConfigError: Model 'naive-bayes' is multinomial naive Bayes on the word counts of texts ...
    """
    arr = np.asarray(X, dtype=object)
    col = arr[:, 0] if arr.ndim == 2 and arr.shape[1] == 1 else arr
    if col.ndim != 1 or not all(isinstance(t, str) for t in col.tolist()):
        raise ConfigError(
            "Model 'naive-bayes' is multinomial naive Bayes on the word counts of texts and needs one text per "
            f"record; got {np.asarray(X).dtype} features of shape {np.shape(X)}. For Gaussian naive Bayes on "
            "numeric features use 'gaussian-nb' (called 'naive-bayes' before 2026-11-24)."
        )
    return col


def _naive_bayes(seed: int) -> Any:
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    return make_pipeline(FunctionTransformer(_texts_column), CountVectorizer(), MultinomialNB())


def predict_proba_full(estimator: Any, X: Any, classes: Sequence[Any] | np.ndarray) -> np.ndarray:
    """``estimator.predict_proba(X)`` with one float64 column per entry of ``classes``, in that order.

    Classes the estimator never saw during training get probability 0.

    >>> from sklearn.naive_bayes import GaussianNB
    >>> est = GaussianNB().fit(np.array([[0.0], [1.0], [0.1], [0.9]]), np.array([0, 2, 0, 2]))
    >>> predict_proba_full(est, np.array([[0.0]]), [0, 1, 2]).round(3).tolist()
    [[1.0, 0.0, 0.0]]
    """
    probs = np.asarray(estimator.predict_proba(X), dtype=np.float64)
    seen = list(np.asarray(estimator.classes_).tolist())
    full = list(np.asarray(classes).tolist())
    if seen == full:
        return probs
    pos = {c: j for j, c in enumerate(full)}
    unknown = [c for c in seen if c not in pos]
    if unknown:
        raise DataError(
            f"The estimator was trained on class {unknown[0]!r}, which is not in 'classes' {full!r}; "
            "pass the full class list."
        )
    out = np.zeros((probs.shape[0], len(full)), dtype=np.float64)
    out[:, [pos[c] for c in seen]] = probs
    return out
