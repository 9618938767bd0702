"""Autolabeling: a confident model labels records itself (SageMaker-Ground-Truth-style).

On a human-labeled validation slice (the model's probabilities and the true labels), :func:`choose_threshold`
finds the lowest confidence threshold whose records above it are accurate enough: the one-sided lower
confidence bound (Clopper–Pearson by default, or Wilson) of their accuracy must reach the target. Records at
or above the threshold are labeled with ``source="auto"``; the rest go to people. :class:`AutoLabeler` keeps
checking: human answers for auto-labeled records are fed back with :meth:`AutoLabeler.observe`, and when
the achieved accuracy drifts below the target the threshold is re-chosen on the checked records and only
ever raised.

>>> import numpy as np
>>> conf = np.r_[np.full(200, 0.99), np.full(100, 0.6)]
>>> correct = np.r_[np.ones(200, bool), np.arange(100) % 2 == 0]
>>> choice = choose_threshold(conf, correct, target=0.95)
>>> choice.threshold, choice.n_above
(0.99, 200)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from alloop._validation import check_choice, check_float, check_int
from alloop.errors import DataError, StateError
from alloop.labeling._provider import LabelEvent

__all__ = [
    "AutoLabeler",
    "ThresholdChoice",
    "accuracy_lower_bound",
    "choose_threshold",
    "clopper_pearson_lower",
    "wilson_lower",
]

NEVER = math.inf  # the threshold when no threshold reaches the target: nothing is auto-labeled


def clopper_pearson_lower(k: Any, n: Any, level: float = 0.95) -> np.ndarray:
    """One-sided exact (Clopper–Pearson) lower bound of a binomial proportion at confidence ``level``.

    >>> round(float(clopper_pearson_lower(59, 59)), 4)  # 59 right of 59: the true rate is >= 0.95 w.p. 95 %
    0.9505
    """
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        lb = stats.beta.ppf(1.0 - level, k, n - k + 1.0)
    return np.asarray(np.where(k <= 0, 0.0, np.nan_to_num(lb, nan=0.0)))


def wilson_lower(k: Any, n: Any, level: float = 0.95) -> np.ndarray:
    """One-sided Wilson score lower bound of a binomial proportion.

    >>> round(float(wilson_lower(90, 100)), 4)
    0.8396
    """
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    z = float(stats.norm.ppf(level))
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        centre = p + z * z / (2 * n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        lb = (centre - half) / (1 + z * z / n)
    return np.asarray(np.where(n > 0, np.nan_to_num(lb, nan=0.0), 0.0))


def accuracy_lower_bound(k: Any, n: Any, level: float = 0.95, bound: str = "clopper-pearson") -> np.ndarray:
    check_choice(bound, "bound", "accuracy_lower_bound", ("clopper-pearson", "wilson"))
    return clopper_pearson_lower(k, n, level) if bound == "clopper-pearson" else wilson_lower(k, n, level)


def batch_shortfall(accuracy: Any, batch: Any, target: float) -> np.ndarray:
    """P(a batch of ``ceil(batch)`` records, each right with prob. ``accuracy``, is less than ``target`` accurate).

    >>> round(float(batch_shortfall(0.99, 200, 0.98)), 3)  # a 0.99-accurate region, 200 auto-labels
    0.052
    """
    p = np.clip(np.asarray(accuracy, dtype=np.float64), 0.0, 1.0)
    m = np.maximum(np.ceil(np.asarray(batch, dtype=np.float64)), 1.0)
    below = np.ceil(target * m - 1e-9) - 1.0  # the most right answers that still miss the target
    return np.asarray(stats.binom.cdf(below, m, p))


@dataclass(frozen=True)
class ThresholdChoice:
    """The chosen threshold (``inf`` = none reaches the target) and what it achieves on the slice."""

    threshold: float
    n_above: int
    accuracy: float  # on the slice, records at or above the threshold (nan if none)
    lower_bound: float
    coverage: float  # fraction of the slice at or above the threshold


def choose_threshold(
    confidence: Any,
    correct: Any,
    *,
    target: float = 0.95,
    level: float = 0.99,
    bound: str = "clopper-pearson",
    correction: str = "fixed-sequence",
    batch_size: int | None = None,
) -> ThresholdChoice:
    """The lowest threshold whose records at or above it have accuracy lower bound >= ``target``.

    confidence  the model's top probability per slice record
    correct     whether the model's predicted class equals the human label, per record
    correction  "fixed-sequence" (default): test thresholds from the highest down, starting at twice the count
                a perfect run needs to pass, and stop at the first that fails (Learn-then-Test; the chosen set
                reaches the target with probability >= ``level`` despite scanning many thresholds).
                "none": the lowest passing threshold anywhere — more coverage, but scanning inflates the risk
                (on digits it met a 0.90 target in only 90 % of seeds).

    batch_size  the number of records the threshold will be applied to, when the *achieved* accuracy of that batch
                must reach the target (not only the accuracy of the confidence region): half of ``1 - level`` goes
                to the region bound, half to the batch, and a threshold passes only if a batch of
                ``coverage * batch_size`` records drawn from a region as accurate as that bound falls below the
                target with probability <= ``(1 - level) / 2`` (binomial tail).

    Candidate thresholds are the distinct confidence values; records tied at a threshold are all in or all out.
    """
    check_choice(correction, "correction", "choose_threshold", ("fixed-sequence", "none"))
    check_int(batch_size, "batch_size", "choose_threshold", min=1, allow_none=True)
    check_float(target, "target", "choose_threshold", low=0.0, high=1.0)
    check_float(level, "level", "choose_threshold", low=0.5, high=1.0)
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    ok = np.asarray(correct, dtype=bool).ravel()
    if conf.size != ok.size:
        raise DataError(f"'confidence' and 'correct' must have the same length. Got {conf.size} and {ok.size}.")
    if conf.size == 0 or not np.isfinite(conf).all():
        raise DataError("'confidence' must hold at least one finite value per validation record.")
    order = np.argsort(-conf, kind="stable")
    c, r = conf[order], ok[order]
    n = np.arange(1, c.size + 1)
    k = np.cumsum(r)
    last_of_tie = np.r_[c[1:] != c[:-1], True]  # a threshold includes every record tied with it
    region_level = level if batch_size is None else 1.0 - (1.0 - level) / 2.0
    lb = np.where(last_of_tie, accuracy_lower_bound(k, n, region_level, bound), -1.0)
    ok_at = lb >= target
    if batch_size is not None:
        ok_at &= batch_shortfall(lb, n / c.size * batch_size, target) <= (1.0 - level) / 2.0
    passing = np.flatnonzero(ok_at)
    if correction == "fixed-sequence":
        # start where even a couple of errors can pass (twice the count a perfect run needs), so one early
        # error among the most confident records does not end the sequence
        perfect = accuracy_lower_bound(n, n, region_level, bound)
        can_pass = perfect >= target
        if batch_size is not None:
            can_pass &= batch_shortfall(perfect, n / c.size * batch_size, target) <= (1.0 - level) / 2.0
        n_min = float(n[np.argmax(can_pass)]) if can_pass.any() else math.inf
        tested = np.flatnonzero(last_of_tie & (n >= min(2.0 * n_min, float(c.size))))
        failed = tested[~ok_at[tested]]
        if failed.size:
            passing = passing[passing < failed[0]]
    if passing.size == 0:
        return ThresholdChoice(threshold=NEVER, n_above=0, accuracy=math.nan, lower_bound=math.nan, coverage=0.0)
    j = int(passing[-1])
    return ThresholdChoice(
        threshold=float(c[j]),
        n_above=int(n[j]),
        accuracy=float(k[j] / n[j]),
        lower_bound=float(lb[j]),
        coverage=float(n[j] / c.size),
    )


class AutoLabeler:
    """Label confident records automatically; keep checking and tighten when accuracy drifts.

    target        accuracy the auto-labels must reach (default 0.95)
    level         confidence of the one-sided bound (default 0.99: the auto-labels of one seed are a finite
                  sample, so a 95 % bound on the region's accuracy met the target in only 92.5 % of digits seeds)
    bound         "clopper-pearson" (exact, default) or "wilson"
    correction    "fixed-sequence" (default) or "none": see :func:`choose_threshold`
    min_checked   human-checked auto-labels needed before drift is judged
    batch_size    records the threshold is applied to per loop; when set, the achieved accuracy of such a batch
                  (not only of the confidence region) must reach the target — see :func:`choose_threshold`

    The calibration set can grow across loops: :meth:`update` adds human-labeled records that the *same* model
    scored before their labels were known and re-chooses the threshold on everything pooled (certifying 0.98
    needs ~1,000 records; one loop's 300 are not enough). Pooling is valid only while the model is unchanged:
    after retraining, call :meth:`fit` again (it restarts the pool) — the new model has seen those labels.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> probs = rng.dirichlet(np.full(3, 0.1), size=400)
    >>> y = np.array([rng.choice(3, p=p) for p in probs])  # a calibrated model
    >>> al = AutoLabeler(target=0.9).fit(probs, y)
    >>> events, rest = al.split(np.arange(400), probs)
    >>> events[0].source, len(events) + len(rest)
    ('auto', 400)
    """

    def __init__(
        self,
        *,
        target: float = 0.95,
        level: float = 0.99,
        bound: str = "clopper-pearson",
        min_checked: int = 50,
        correction: str = "fixed-sequence",
        classes: Sequence[Any] | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.batch_size = batch_size
        self.correction = correction
        self.target = target
        self.level = level
        self.bound = bound
        self.min_checked = min_checked
        self.classes = classes
        self.threshold_: float | None = None
        self.choice_: ThresholdChoice | None = None
        self._checked_conf: list[float] = []
        self._checked_ok: list[bool] = []
        self._calib_conf = np.empty(0)
        self._calib_ok = np.empty(0, dtype=bool)
        self.history_: list[dict[str, float]] = []

    def _check(self) -> None:
        check_float(self.target, "target", "AutoLabeler", low=0.0, high=1.0)
        check_float(self.level, "level", "AutoLabeler", low=0.5, high=1.0)
        check_choice(self.bound, "bound", "AutoLabeler", ("clopper-pearson", "wilson"))
        check_int(self.min_checked, "min_checked", "AutoLabeler", min=1)
        check_choice(self.correction, "correction", "AutoLabeler", ("fixed-sequence", "none"))
        check_int(self.batch_size, "batch_size", "AutoLabeler", min=1, allow_none=True)

    def _choice_kwargs(self) -> dict[str, Any]:
        return {
            "target": self.target, "level": self.level, "bound": self.bound, "correction": self.correction,
            "batch_size": self.batch_size,
        }  # fmt: skip

    def _probs(self, probs: Any) -> np.ndarray:
        p = np.asarray(probs, dtype=np.float64)
        if p.ndim != 2 or p.shape[1] < 2:
            raise DataError(f"'probs' must be a (n_records, n_classes) array with n_classes >= 2. Got {p.shape}.")
        return p

    def _class_index(self, y: Any, n_classes: int) -> np.ndarray:
        if self.classes is None:
            return np.asarray(y, dtype=np.int64)
        index = {c: k for k, c in enumerate(self.classes)}
        try:
            return np.asarray([index[v] for v in np.asarray(y).tolist()], dtype=np.int64)
        except KeyError as exc:
            raise DataError(f"Label {exc.args[0]!r} is not one of AutoLabeler 'classes'.") from None

    def _scored(self, probs: Any, y_true: Any) -> tuple[np.ndarray, np.ndarray]:
        p = self._probs(probs)
        y = self._class_index(y_true, p.shape[1])
        if y.shape != (p.shape[0],):
            raise DataError(f"'y_true' must have one label per row of 'probs'. Got {y.shape} for {p.shape[0]} rows.")
        return p.max(axis=1), p.argmax(axis=1) == y

    def fit(self, probs: Any, y_true: Any) -> AutoLabeler:
        """Choose the threshold on a human-labeled validation slice (restarts the calibration pool)."""
        self._check()
        self._calib_conf, self._calib_ok = self._scored(probs, y_true)
        return self._recertify()

    def update(self, probs: Any, y_true: Any) -> AutoLabeler:
        """Add human-labeled records scored by the same model to the calibration pool; re-choose the threshold.

        >>> import numpy as np
        >>> sure = np.tile([[0.995, 0.005]], (300, 1))
        >>> al = AutoLabeler(target=0.98).fit(sure, np.r_[np.zeros(298, int), 1, 1])
        >>> al.threshold_, al.update(sure, np.r_[np.zeros(299, int), 1]).threshold_, al.n_calibration
        (inf, 0.995, 600)
        """
        self._check()
        conf, ok = self._scored(probs, y_true)
        self._calib_conf = np.r_[self._calib_conf, conf]
        self._calib_ok = np.r_[self._calib_ok, ok]
        return self._recertify()

    @property
    def n_calibration(self) -> int:
        """Records in the calibration pool."""
        return int(self._calib_ok.size)

    def _recertify(self) -> AutoLabeler:
        self.choice_ = choose_threshold(self._calib_conf, self._calib_ok, **self._choice_kwargs())
        self.threshold_ = self.choice_.threshold
        return self

    def _threshold(self) -> float:
        if self.threshold_ is None:
            raise StateError("AutoLabeler has no threshold yet. Call fit(probs, y_true) on a validation slice first.")
        return self.threshold_

    def mask(self, probs: Any) -> np.ndarray:
        """Which rows are confident enough to be labeled automatically."""
        return np.asarray(self._probs(probs).max(axis=1) >= self._threshold())

    def split(self, ids: Any, probs: Any) -> tuple[list[LabelEvent], np.ndarray]:
        """``(auto-label events, ids left for people)``."""
        p = self._probs(probs)
        id_arr = np.asarray(ids)
        if id_arr.shape[0] != p.shape[0]:
            raise DataError(f"'ids' and 'probs' must have the same length. Got {id_arr.shape[0]} and {p.shape[0]}.")
        m = self.mask(p)
        pred = p.argmax(axis=1)
        conf = p.max(axis=1)
        labels = pred if self.classes is None else np.asarray(list(self.classes), dtype=object)[pred]
        events = [
            LabelEvent(id=i, label=lab, source="auto", annotator="model", posterior=float(c))
            for i, lab, c in zip(id_arr[m].tolist(), labels[m].tolist(), conf[m].tolist(), strict=True)
        ]
        return events, id_arr[~m]

    def observe(self, probs: Any, y_human: Any) -> bool:
        """Record human answers for auto-labeled records; re-choose the threshold if accuracy drifted.

        Returns True when the threshold was raised. Drift: at least ``min_checked`` checked records and their
        accuracy below ``target``; the new threshold is chosen on the checked records (the current
        distribution) and never lowered; if none reaches the target, auto-labeling stops (``inf``).
        """
        self._check()
        p = self._probs(probs)
        y = self._class_index(y_human, p.shape[1])
        self._checked_conf.extend(p.max(axis=1).tolist())
        self._checked_ok.extend((p.argmax(axis=1) == y).tolist())
        n = len(self._checked_ok)
        achieved = float(np.mean(self._checked_ok)) if n else math.nan
        raised = False
        current = self._threshold()
        if n >= self.min_checked and achieved < self.target:
            choice = choose_threshold(self._checked_conf, self._checked_ok, **self._choice_kwargs())
            new = max(current, choice.threshold)
            if new > current:
                self.threshold_ = new
                raised = True
                # the records checked so far belong to the old regime
                self._checked_conf, self._checked_ok = [], []
        self.history_.append({"checked": float(n), "achieved": achieved, "threshold": float(self._threshold())})
        return raised

    @property
    def achieved_accuracy(self) -> float:
        """Accuracy of auto-labels checked by people since the threshold was last set (nan if none)."""
        return float(np.mean(self._checked_ok)) if self._checked_ok else math.nan
