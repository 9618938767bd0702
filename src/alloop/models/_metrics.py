"""Classification metrics over a fixed class list.

>>> import numpy as np
>>> m = classification_metrics(np.array([0, 1]), np.array([[0.8, 0.2], [0.5, 0.5]]), [0, 1])
>>> m["accuracy"], m["recall[1]"]
(0.5, 0.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from alloop.errors import DataError

__all__ = ["classification_metrics"]

EPS = 1e-15


def classification_metrics(y_true: Any, probs: Any, classes: Sequence[Any] | np.ndarray) -> dict[str, float]:
    """Accuracy, macro F1, log loss and per-class recall of ``probs`` (one column per class).

    accuracy   mean(classes[argmax(probs)] == y_true); argmax ties go to the lowest column
    macro_f1   unweighted mean of the per-class F1 over every class in ``classes``
               (a class with no true and no predicted record counts as F1 = 0, as in scikit-learn)
    log_loss   mean of -log p(true class), probabilities clipped to [1e-15, 1 - 1e-15]
    recall[c]  recall of class ``c`` (0.0 when ``c`` does not occur in ``y_true``)
    """
    cls = list(np.asarray(classes).tolist())
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y_true)
    if p.ndim != 2 or p.shape[1] != len(cls):
        raise DataError(f"'probs' must have shape (n, {len(cls)}) (one column per class); got {p.shape}.")
    if y.ndim != 1 or y.shape[0] != p.shape[0]:
        raise DataError(f"'y_true' must have one label per row of 'probs' ({p.shape[0]}); got shape {y.shape}.")
    if y.size == 0:
        raise DataError("'y_true' is empty; metrics need at least one record.")
    pos = {c: j for j, c in enumerate(cls)}
    try:
        t = np.array([pos[v] for v in y.tolist()], dtype=np.int64)
    except KeyError as exc:
        raise DataError(f"'y_true' contains {exc.args[0]!r}, which is not in 'classes' {cls!r}.") from None
    pred = np.argmax(p, axis=1)
    out: dict[str, float] = {"accuracy": float(np.mean(pred == t))}
    f1s = []
    recalls = {}
    for j, c in enumerate(cls):
        tp = float(np.sum((pred == j) & (t == j)))
        n_true = float(np.sum(t == j))
        n_pred = float(np.sum(pred == j))
        denom = n_true + n_pred
        f1s.append(2 * tp / denom if denom else 0.0)
        recalls[f"recall[{c}]"] = tp / n_true if n_true else 0.0
    out["macro_f1"] = float(np.mean(f1s))
    p_true = np.clip(p[np.arange(t.size), t], EPS, 1 - EPS)
    out["log_loss"] = float(-np.mean(np.log(p_true)))
    out.update(recalls)
    return out
