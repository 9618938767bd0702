"""Built-in scikit-learn models, by name.

>>> est = build_model("random-forest", seed=3)
>>> est.get_params()["random_state"]
3
>>> build_model("logreg").__class__.__name__
'Pipeline'
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from alloop.errors import ConfigError, DataError

__all__ = ["MODELS", "ModelInfo", "build_model", "list_models", "predict_proba_full"]


def _logreg(seed: int) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def _svm_rbf(seed: int) -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return make_pipeline(StandardScaler(), CalibratedClassifierCV(SVC(), ensemble=False))


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


def _naive_bayes(seed: int) -> Any:
    from sklearn.naive_bayes import GaussianNB

    return GaussianNB()


@dataclass(frozen=True)
class ModelInfo:
    """A built-in model: registry name, one-line description, factory ``seed -> estimator``.

    ``min_labels`` is the fewest labeled records it can be fit on (5 neighbours, 5 calibration folds).
    """

    name: str
    description: str
    factory: Callable[[int], Any]
    min_labels: int = 1


MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        ModelInfo("logreg", "Standardised logistic regression (max_iter=1000).", _logreg),
        ModelInfo("svm-rbf", "Standardised RBF SVM with sigmoid-calibrated probabilities (5-fold CV).", _svm_rbf, 5),
        ModelInfo("random-forest", "Random forest of 100 trees (random_state=seed).", _random_forest),
        ModelInfo("knn", "Standardised 5-nearest-neighbours.", _knn, 5),
        ModelInfo("gradient-boosting", "Histogram gradient boosting (random_state=seed).", _gradient_boosting),
        ModelInfo("naive-bayes", "Gaussian naive Bayes.", _naive_bayes),
    )
}


def list_models() -> list[tuple[str, str]]:
    """``(name, description)`` of every built-in model, in registry order."""
    return [(m.name, m.description) for m in MODELS.values()]


def build_model(name: str, seed: int = 0) -> Any:
    """A fresh, unfitted scikit-learn estimator for the built-in model ``name``."""
    from alloop._validation import check_int

    seed = check_int(seed, "seed", "build_model", min=0)
    info = MODELS.get(name) if isinstance(name, str) else None
    if info is None:
        close = difflib.get_close_matches(str(name), list(MODELS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"Unknown model {name!r}.{hint} The built-in models are: {', '.join(MODELS)}.")
    return info.factory(seed)


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
