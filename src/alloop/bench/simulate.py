"""Simulated campaigns on labeled data: learning curves, AUBC and paired comparisons.

The protocol, for seed ``s`` in ``0 … seeds-1`` (identical for every strategy, so comparisons are paired):

1. ``train, test = train_test_split(arange(n), test_size=F, stratify=y, random_state=s)``;
2. the initial labeled set is ``default_rng(s).choice(train, size=initial, replace=False)``;
3. the model (``build_model(model, seed=s)``) is fit on the labeled rows (in ascending row order) and
   its accuracy on ``test`` is recorded; then, until ``budget`` labels (initial set included) or the pool
   is empty: the engine ranks the unlabeled train rows on fresh float64 probabilities, the top
   ``min(batch, budget - labeled)`` are labeled, the model is refit from scratch and accuracy recorded.

The test rows are never registered with the engine. Ties are broken by the lower row number because the
train rows are registered in ascending row order. AUBC is the mean of the accuracy points.

With ``compute_saving`` on (a :class:`~alloop.compute.ComputePolicy`), step 3 changes: the model is trained
by a :class:`~alloop.compute.WarmStartLearner` (warm/incremental between periodic full retrains) and only the
records chosen by :func:`~alloop.compute.choose_inference` are re-inferred; the engine ranks on the latest
probabilities it holds for each record. The policy's seed is the simulation seed. Each strategy's
``compute`` holds the process CPU seconds of training, inference (of the unlabeled pool; the test-set
evaluation is the protocol's, not counted) and selection (ingest + recommend), and the records trained on
and inferred, summed over seeds and loops, with the from-scratch estimate (:func:`campaign_savings`).

>>> out = simulate("iris", "gaussian-nb", ["margin"], initial=6, batch=3, budget=12, seeds=1, test_size=0.3)
>>> out["results"]["margin"]["labels"]
[6, 9, 12]
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from alloop._validation import check_choice, check_int
from alloop.compute import ComputePolicy, campaign_savings, choose_inference, resolve_compute
from alloop.compute._accounting import FIELDS
from alloop.datasets import Dataset, load_dataset
from alloop.engine import SelectionEngine
from alloop.errors import ConfigError, DataError
from alloop.loop._learner import feature_embeddings, feature_scaling
from alloop.metadata import Snapshot
from alloop.models import build_model, model_info, predict_proba_full
from alloop.records import RecordState
from alloop.strategies import make_strategy

__all__ = ["CampaignTrace", "paired_split", "run_campaign", "simulate"]

OWNER = "simulate"
#: what the engine is given besides probabilities: nothing, or the standardised input features as embeddings
EMBEDDINGS = ("none", "features")


@dataclass
class CampaignTrace:
    """One simulated campaign: the accuracy after the initial fit and after each batch.

    labels     number of labels at each accuracy point (initial set included)
    accuracy   test accuracy at each point
    initial    the initial labeled rows (as drawn)
    batches    the rows labeled by each batch, in the order the engine ranked them
    """

    labels: list[int] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    initial: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    batches: list[np.ndarray] = field(default_factory=list)
    compute: list[dict[str, float]] = field(default_factory=list)

    @property
    def aubc(self) -> float:
        """Area under the budget curve: the mean of the accuracy points."""
        return float(np.mean(self.accuracy))

    @property
    def selected(self) -> np.ndarray:
        """Every row the strategy selected, in selection order."""
        return np.concatenate(self.batches) if self.batches else np.empty(0, dtype=np.int64)


def paired_split(y: np.ndarray, seed: int, test_size: float, initial: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(train, test, initial_rows)`` for one seed; shared by every strategy (the paired design).

    >>> tr, te, init = paired_split(np.array([0, 1] * 10), seed=0, test_size=0.5, initial=3)
    >>> len(tr), len(te), bool(np.isin(init, tr).all())
    (10, 10, True)
    """
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    try:
        train, test = train_test_split(rows, test_size=test_size, stratify=y, random_state=seed)
    except ValueError as exc:
        raise DataError(
            f"Cannot make a stratified train/test split with test_size={test_size}: {exc} "
            "Use a larger data set, drop classes with a single record, or change 'test_size'."
        ) from exc
    init = np.random.default_rng(seed).choice(train, size=initial, replace=False)
    return np.asarray(train, dtype=np.int64), np.asarray(test, dtype=np.int64), np.asarray(init, dtype=np.int64)


def _accuracy(probs: np.ndarray, y: np.ndarray, classes: np.ndarray) -> float:
    """mean(classes[argmax(probs)] == y); argmax ties go to the lowest column."""
    return float(np.mean(classes[np.argmax(probs, axis=1)] == y))


def _only_class(y: np.ndarray, classes: np.ndarray) -> int | None:
    """The column of the only class among the labels, or None when there are two or more."""
    present = np.unique(y)
    if present.size >= 2:
        return None
    return int(classes.tolist().index(present[0].item() if isinstance(present[0], np.generic) else present[0]))


def _fit(model: str, seed: int, X_fit: np.ndarray, y_fit: np.ndarray, classes: np.ndarray) -> Any:
    """A fresh fitted model, or the column of the only class present (no classifier can be fit on one class)."""
    col = _only_class(y_fit, classes)
    if col is not None:
        return col
    est = build_model(model, seed=seed)
    est.fit(X_fit, y_fit)
    return est


def _predict(est: Any, X: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Full-class float64 probabilities; a one-class "model" gives probability 1 to its class (all
    uncertainty scores tie, so the lowest rows are taken next)."""
    if isinstance(est, int):
        p = np.zeros((X.shape[0], classes.size), dtype=np.float64)
        p[:, est] = 1.0
        return p
    return predict_proba_full(est, X, classes)


def _fit_predict(
    model: str, seed: int, X_fit: np.ndarray, y_fit: np.ndarray, X_out: list[np.ndarray], classes: np.ndarray
) -> list[np.ndarray]:
    """Fit a fresh model and return full-class float64 probabilities for each array in ``X_out``."""
    est = _fit(model, seed, X_fit, y_fit, classes)
    return [_predict(est, X, classes) for X in X_out]


class _SavingModel:
    """The compute-saving side of :func:`run_campaign`: a WarmStartLearner over the data set's rows."""

    def __init__(
        self,
        *,
        data: Dataset,
        model: str,
        policy: ComputePolicy,
        seed: int,
        validation: np.ndarray | None,
    ) -> None:
        from alloop.compute import WarmStartLearner
        from alloop.loop import SklearnLearner

        base = SklearnLearner(  # ids = row numbers of the whole data set: no copy of the train rows
            build_model(model, seed=seed),
            data.X,
            eval_X=None if validation is None else data.X[validation],
            eval_y=None if validation is None else data.y[validation],
            classes=data.classes.tolist(),
        )
        warm = ComputePolicy.from_config({**policy.to_config(), "seed": seed})
        self.policy = warm
        self.learner = WarmStartLearner(base, warm.warm_policy()) if warm.warm_start else base
        self.constant: int | None = None
        self.last_mode = "full"

    def fit(self, labeled: np.ndarray, y: np.ndarray, classes: np.ndarray, loop: int) -> int:
        self.constant = _only_class(y, classes)
        if self.constant is not None:
            self.last_mode = "full"
            return 0
        has_model = getattr(self.learner, "model", None) is not None
        report = self.learner.train(labeled, y, warm_start=loop > 0 and has_model)
        self.last_mode = report.mode
        return int(report.n_records)

    def estimator(self) -> Any:
        return self.constant if self.constant is not None else self.learner.model


@threadpool_limits.wrap(limits=1, user_api="blas")  # small matrices: idle OpenBLAS threads spin (docs/compute.md)
def run_campaign(
    data: Dataset,
    model: str,
    strategy: str,
    *,
    train: np.ndarray,
    test: np.ndarray,
    initial_rows: np.ndarray,
    batch: int,
    budget: int,
    seed: int,
    advance: Callable[[], None] | None = None,
    compute: ComputePolicy | None = None,
    validation: np.ndarray | None = None,
    embeddings: str = "none",
) -> CampaignTrace:
    """Simulate one campaign of ``strategy`` on one seed's split (see the module docstring).

    ``compute`` turns compute saving on; ``validation`` (rows outside ``train`` and ``test``) is what its
    drift check evaluates on (without it there is no drift check). ``embeddings="features"`` shares the
    features, standardised with the train rows' statistics, as every snapshot's embeddings (``"none"``: the
    probabilities only). ``trace.compute`` has one row per
    accuracy point: the CPU seconds and records of that loop's train, inference and selection.
    BLAS runs on one thread: with ≤ ``budget`` labeled rows, multi-threaded OpenBLAS spent 11x the CPU of one
    thread on a LogisticRegression fit, and 2.7x on inference over 190,000 rows (docs/compute.md).
    """
    X, y, classes = data.X, data.y, data.classes
    scaling = None
    if check_choice(embeddings, "embeddings", OWNER, EMBEDDINGS) == "features":
        scaling = feature_scaling(X[train], f"{OWNER}(embeddings='features')")
    engine = SelectionEngine(strategy=strategy, seed=seed, classes=classes.tolist())
    engine.add_records(np.sort(train))  # row order = pool order: ties go to the lower row
    engine.observe_labels(initial_rows, y[initial_rows])
    trace = CampaignTrace(initial=np.array(initial_rows, dtype=np.int64))
    saving = None
    if compute is not None:
        saving = _SavingModel(data=data, model=model, policy=compute, seed=seed, validation=validation)
    labeled = np.sort(initial_rows)
    loop = 0
    clock = time.process_time
    while True:
        unl_idx = engine.pool.indices(RecordState.UNLABELED)
        more = labeled.size < budget and unl_idx.size > 0
        t0 = clock()
        if saving is None:
            est = _fit(model, seed, X[labeled], y[labeled], classes)
            n_trained = labeled.size if not isinstance(est, int) else 0
        else:
            n_trained = saving.fit(labeled, y[labeled], classes, loop)
            est = saving.estimator()
        row = {"train_cpu_s": clock() - t0, "records_trained": float(n_trained), "n_labeled": float(labeled.size)}
        row["train_full"] = float(saving is None or saving.last_mode == "full")
        trace.labels.append(int(labeled.size))
        trace.accuracy.append(_accuracy(_predict(est, X[test], classes), y[test], classes))
        trace.compute.append(row)
        row.update(infer_cpu_s=0.0, select_cpu_s=0.0, records_inferred=0.0)
        row["records_unlabeled"] = float(unl_idx.size) if more else 0.0  # what a from-scratch loop would infer
        if advance is not None:
            advance()
        if not more:
            return trace
        t0 = clock()
        if saving is not None:
            unl_idx = choose_inference(engine.history, unl_idx, loop, saving.policy)
        if loop == 0 and scaling is not None:  # as Campaign does: the initial set once, so that diversity
            unl_idx = np.union1d(unl_idx, engine.pool.indices(RecordState.LABELED))  # knows where labels lie
        unlabeled = engine.pool.ids_at(unl_idx)
        probs = _predict(est, X[unlabeled], classes)
        row.update(infer_cpu_s=clock() - t0, records_inferred=float(unlabeled.size))
        t0 = clock()
        emb = None if scaling is None else feature_embeddings(X[unlabeled], scaling)
        engine.ingest(Snapshot(ids=unlabeled, probs=probs, embeddings=emb, classes=classes.tolist()), loop=loop)
        chosen = engine.recommend(min(batch, budget - labeled.size), loop=loop).ids
        row["select_cpu_s"] = clock() - t0
        engine.observe_labels(chosen, y[chosen])
        trace.batches.append(np.asarray(chosen, dtype=np.int64))
        labeled = np.sort(np.concatenate([labeled, chosen]))
        loop += 1


def _n_points(n_train: int, initial: int, batch: int, budget: int) -> int:
    top = min(budget, n_train)
    return 1 + -(-(top - initial) // batch)


def _pvalue(value: float) -> float | None:
    return None if value != value else float(value)


def _paired(aubc: np.ndarray, base: np.ndarray, baseline: str) -> dict[str, Any]:
    """Paired comparison of per-seed AUBCs against the baseline's (t-test and Wilcoxon signed-rank)."""
    from scipy import stats

    diff = aubc - base
    out: dict[str, Any] = {
        "baseline": baseline,
        "aubc_diff_mean": float(diff.mean()),
        "aubc_diff_std": float(diff.std()),
        "wins": int(np.sum(diff > 0)),
        "ties": int(np.sum(diff == 0)),
        "losses": int(np.sum(diff < 0)),
        "t_pvalue": None,
        "wilcoxon_pvalue": None,
    }
    if diff.size >= 2 and np.ptp(diff) > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # precision-loss notes on near-equal samples
            out["t_pvalue"] = _pvalue(stats.ttest_rel(aubc, base).pvalue)
    if diff.size >= 2 and np.any(diff != 0):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (RuntimeWarning, UserWarning))  # zeros/ties → normal approximation
            out["wilcoxon_pvalue"] = _pvalue(stats.wilcoxon(aubc, base).pvalue)
    return out


def _check_test_size(value: Any) -> float:
    import numbers

    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < float(value) < 1:
        raise ConfigError(f"The 'test_size' parameter of {OWNER} must be a number in (0, 1). Got {value!r}.")
    return float(value)


def _check_strategies(strategies: Any, embeddings: str = "none") -> list[str]:
    if isinstance(strategies, str):
        strategies = [strategies]
    specs = list(strategies) if isinstance(strategies, Sequence) else None
    if not specs or not all(isinstance(s, str) for s in specs):
        raise ConfigError(
            f"The 'strategies' parameter of {OWNER} must be a non-empty list of strategy specs "
            f"such as ['margin', 'random']. Got {strategies!r}."
        )
    needs = []
    for spec in specs:
        if specs.count(spec) > 1:
            raise ConfigError(f"The 'strategies' parameter of {OWNER} lists {spec!r} twice; give each spec once.")
        try:
            needs.append(make_strategy(spec).needs)
        except ConfigError as exc:
            raise ConfigError(f"The 'strategies' parameter of {OWNER} is invalid: {exc}") from None
    for spec, need in zip(specs, needs, strict=True):
        if embeddings == "none" and "embeddings" in need:
            raise ConfigError(
                f"Strategy {spec!r} needs embeddings, but the 'embeddings' parameter of {OWNER} is 'none'; pass "
                "embeddings='features' (alloop simulate --embeddings features) to give the engine the "
                "standardised input features."
            )
    return specs


def _baseline(specs: list[str]) -> str:
    for spec in specs:
        if make_strategy(spec).name == "random":
            return spec
    return specs[0]


@dataclass(frozen=True)
class SimulationSetup:
    """Validated arguments of a simulation and what follows from them (shared by the Dask path)."""

    data: Any
    dataset: Dataset
    model: str
    specs: list[str]
    initial: int
    batch: int
    budget: int
    seeds: int
    test_size: float
    target: str | None
    n: int
    n_train: int
    n_test: int
    baseline: str
    n_points: int
    embeddings: str = "none"


def prepare(
    data: str | os.PathLike[str] | Dataset,
    model: str,
    strategies: Sequence[str],
    initial: int,
    batch: int,
    budget: int,
    seeds: int,
    test_size: float,
    target: str | None,
    embeddings: str = "none",
) -> SimulationSetup:
    """Check every argument (ConfigError naming the parameter) and load the data."""
    check_choice(embeddings, "embeddings", OWNER, EMBEDDINGS)
    initial = check_int(initial, "initial", OWNER, min=1)
    batch = check_int(batch, "batch", OWNER, min=1)
    budget = check_int(budget, "budget", OWNER, min=1)
    seeds = check_int(seeds, "seeds", OWNER, min=1)
    test_size = _check_test_size(test_size)
    if budget < initial:
        raise ConfigError(
            f"The 'budget' parameter of {OWNER} must be an int >= initial ({initial}), since the budget counts "
            f"the initial labels too. Got {budget}."
        )
    specs = _check_strategies(strategies, embeddings)
    if not isinstance(model, str):
        raise ConfigError(f"The 'model' parameter of {OWNER} must be a model name such as 'logreg'. Got {model!r}.")
    try:
        build_model(model)
    except ConfigError as exc:
        raise ConfigError(f"The 'model' parameter of {OWNER} is invalid: {exc}") from None
    min_labels = model_info(model).min_labels
    if initial < min_labels:
        raise ConfigError(
            f"The 'initial' parameter of {OWNER} must be an int >= {min_labels} for model {model!r}, "
            f"which cannot be fit on fewer labeled records. Got {initial}."
        )
    if isinstance(data, Dataset):
        if target is not None:
            raise ConfigError(f"The 'target' parameter of {OWNER} applies only when 'data' is a name or a path.")
        dataset = data
    elif isinstance(data, str | os.PathLike):
        data = os.fspath(data)
        dataset = load_dataset(data, target=target)
    else:
        raise ConfigError(
            f"The 'data' parameter of {OWNER} must be a data set name, a path or a Dataset. Got {data!r}."
        )

    if embeddings == "features":
        feature_scaling(dataset.X, f"{OWNER}(embeddings='features')")  # non-numeric features fail here, not mid-run
    n = dataset.n_samples
    n_test = int(np.ceil(test_size * n))  # what train_test_split does for a float test_size
    n_train = n - n_test
    if initial > n_train:
        raise ConfigError(
            f"The 'initial' parameter of {OWNER} must be an int <= the size of the train part "
            f"({n_train} of {n} records with test_size={test_size}). Got {initial}."
        )
    baseline = _baseline(specs)
    n_points = _n_points(n_train, initial, batch, budget)

    return SimulationSetup(
        data,
        dataset,
        model,
        specs,
        initial,
        batch,
        budget,
        seeds,
        test_size,
        target,
        n,
        n_train,
        n_test,
        baseline,
        n_points,
        embeddings,
    )


def compute_totals(per_seed: Sequence[Sequence[Mapping[str, float]]]) -> dict[str, Any]:
    """The ``compute`` entry of one strategy: the FIELDS summed over seeds and loops, and the from-scratch
    estimate (full retrain on every label, full inference of the unlabeled pool every loop).

    >>> row = {"train_cpu_s": 1.0, "infer_cpu_s": 2.0, "select_cpu_s": 0.5, "records_trained": 10,
    ...        "records_inferred": 100, "records_unlabeled": 100, "n_labeled": 10}
    >>> out = compute_totals([[row], [row]])
    >>> out["train_cpu_s"], out["records_inferred"], out["from_scratch"]["cpu_x"]
    (2.0, 200.0, 1.0)
    """
    totals = dict.fromkeys(FIELDS, 0.0)
    base = {"cpu_s": 0.0, "records_trained": 0.0, "records_inferred": 0.0}
    for loops in per_seed:
        rows = dict(enumerate(loops))
        for r in rows.values():
            for f in FIELDS:
                totals[f] += float(r.get(f, 0.0))
        rep = campaign_savings(rows)
        for k in base:
            base[k] += float(rep["baseline_total"][k])
    out: dict[str, Any] = {f: round(v, 6) for f, v in totals.items()}
    cpu = totals["train_cpu_s"] + totals["infer_cpu_s"] + totals["select_cpu_s"]
    out["cpu_s"] = round(cpu, 6)
    out["from_scratch"] = {
        **{k: round(v, 6) for k, v in base.items()},
        "estimated": True,
        "cpu_x": None if cpu <= 0 else round(base["cpu_s"] / cpu, 4),
    }
    return out


def assemble(
    setup: SimulationSetup,
    curves: dict[str, np.ndarray],
    seconds: dict[str, float],
    labels_axis: list[int],
    compute: Mapping[str, Sequence[Sequence[Mapping[str, float]]]] | None = None,
    compute_saving: ComputePolicy | None = None,
) -> dict[str, Any]:
    """The result contract of ``alloop simulate`` from per-seed accuracy curves (and per-seed, per-loop
    compute rows when measured)."""
    specs, baseline, data, dataset = setup.specs, setup.baseline, setup.data, setup.dataset
    model, initial, batch, budget = setup.model, setup.initial, setup.batch, setup.budget
    seeds, test_size, target = setup.seeds, setup.test_size, setup.target
    n, n_train, n_test = setup.n, setup.n_train, setup.n_test
    aubc = {spec: curves[spec].mean(axis=1) for spec in specs}
    results: dict[str, Any] = {}
    for spec in specs:
        c = curves[spec]
        results[spec] = {
            "aubc_mean": float(aubc[spec].mean()),
            "aubc_std": float(aubc[spec].std()),
            "aubc_per_seed": [float(v) for v in aubc[spec]],
            "final_accuracy_mean": float(c[:, -1].mean()),
            "labels": list(labels_axis),
            "curve_mean": [float(v) for v in c.mean(axis=0)],
            "curve_std": [float(v) for v in c.std(axis=0)],
            "seconds": round(seconds[spec], 3),
            "paired_vs": None if spec == baseline else _paired(aubc[spec], aubc[baseline], baseline),
        }
        if compute is not None and spec in compute:
            results[spec]["compute"] = compute_totals(compute[spec])
    protocol = {
        "data": dataset.name if isinstance(data, Dataset) else data,
        "model": model,
        "strategies": specs,
        "initial": initial,
        "batch": batch,
        "budget": budget,
        "seeds": seeds,
        "test_size": test_size,
        "target": target,
        "n_records": n,
        "n_train": n_train,
        "n_test": n_test,
        "embeddings": setup.embeddings,
        "baseline": baseline,
    }
    if compute is not None:  # measured when asked for (compute_saving "off" or "on")
        protocol["compute_saving"] = None if compute_saving is None else compute_saving.to_config()
    return {"protocol": protocol, "results": results}


def simulate(
    data: str | os.PathLike[str] | Dataset,
    model: str = "logreg",
    strategies: Sequence[str] = ("random",),
    initial: int = 20,
    batch: int = 10,
    budget: int = 200,
    seeds: int = 5,
    test_size: float = 0.3,
    target: str | None = None,
    progress: bool | None = None,
    compute_saving: Any = None,
    embeddings: str = "none",
) -> dict[str, Any]:
    """Run every strategy on ``seeds`` paired splits; return the protocol and per-strategy results.

    ``data`` is a built-in data set name, a file path (see :func:`alloop.datasets.load_dataset`) or a
    :class:`~alloop.datasets.Dataset`. Per strategy spec (exactly as given) the results hold
    ``aubc_mean``, ``aubc_std`` (population std over seeds), ``aubc_per_seed``, ``final_accuracy_mean``,
    ``labels``, ``curve_mean``, ``curve_std``, ``seconds`` and ``paired_vs`` (the comparison with the
    baseline: the ``random`` spec when given, else the first spec; ``None`` for the baseline itself).
    ``compute_saving`` is None (default: compute not reported), ``"off"``, ``"on"`` (the policy of the model
    class and pool size, :func:`~alloop.compute.auto_policy`) or a :class:`~alloop.compute.ComputePolicy`;
    unless None, each result also holds ``compute`` (see the module docstring) and the protocol
    ``compute_saving`` (the policy's settings, or null when off). ``embeddings="features"`` gives the engine the
    input features, standardised, as embeddings (needed by core-set, k-means, BADGE, …; used by ``auto``);
    ``"none"`` (default) gives it the probabilities only, as a user sharing only probabilities would.
    """
    resolve_compute(compute_saving, OWNER)  # a wrong flag fails before the data are loaded
    setup = prepare(data, model, strategies, initial, batch, budget, seeds, test_size, target, embeddings)
    policy = resolve_compute(compute_saving, OWNER, model=model, n_pool=setup.n_train)  # "on": per model class
    dataset, specs, n_points = setup.dataset, setup.specs, setup.n_points
    initial, batch, budget, seeds, test_size = setup.initial, setup.batch, setup.budget, setup.seeds, setup.test_size
    curves = {spec: np.zeros((seeds, n_points)) for spec in specs}
    seconds = dict.fromkeys(specs, 0.0)
    compute: dict[str, list[list[dict[str, float]]]] = {spec: [] for spec in specs}
    labels_axis: list[int] = []
    bar = _Progress(enabled=bool(progress), total=seeds * len(specs) * n_points)
    with bar:
        for s in range(seeds):
            train, test, init = paired_split(dataset.y, s, test_size, initial)
            for spec in specs:
                bar.describe(f"{spec} · seed {s + 1}/{seeds}")
                start = time.perf_counter()
                trace = run_campaign(
                    dataset,
                    model,
                    spec,
                    train=train,
                    test=test,
                    initial_rows=init,
                    batch=batch,
                    budget=budget,
                    seed=s,
                    advance=bar.advance,
                    compute=policy,
                    embeddings=setup.embeddings,
                )
                seconds[spec] += time.perf_counter() - start
                curves[spec][s] = trace.accuracy
                compute[spec].append(trace.compute)
                labels_axis = trace.labels

    return assemble(setup, curves, seconds, labels_axis, None if compute_saving is None else compute, policy)


class _Progress:
    """A rich progress bar on stderr, or nothing."""

    def __init__(self, *, enabled: bool, total: int) -> None:
        self.enabled = enabled
        self.total = total
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task("simulate", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)

    def describe(self, text: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, description=text)

    def advance(self) -> None:
        if self._bar is not None:
            self._bar.advance(self._task)
