"""``alloop simulate --cluster``: the seeds × strategies of :func:`alloop.bench.simulate` as Dask tasks.

Each (seed, strategy) campaign is one task running :func:`alloop.bench.simulate.run_campaign` on that seed's
paired split, exactly as the single-process loop does; the data set is loaded once and sent to every worker
once. Every campaign is deterministic in its seed, so the result equals :func:`~alloop.bench.simulate`'s
except for the wall-clock ``seconds`` (summed task times here). Progress advances as tasks finish.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from alloop._validation import check_int
from alloop.bench.simulate import (
    OWNER,
    _baseline,
    _check_strategies,
    _check_test_size,
    _n_points,
    _paired,
    _Progress,
    paired_split,
    run_campaign,
)
from alloop.datasets import Dataset, load_dataset
from alloop.errors import ConfigError
from alloop.models import MODELS, build_model
from alloop.scale._cluster import cluster_client

__all__ = ["run_simulation_on_cluster"]


def _campaign_task(
    dataset: Dataset, model: str, spec: str, seed: int, initial: int, batch: int, budget: int, test_size: float
) -> tuple[str, int, list[float], list[int], float]:
    train, test, init = paired_split(dataset.y, seed, test_size, initial)
    start = time.perf_counter()
    trace = run_campaign(dataset, model, spec, train=train, test=test, initial_rows=init, batch=batch,
                         budget=budget, seed=seed)
    return spec, seed, list(trace.accuracy), list(trace.labels), time.perf_counter() - start


def run_simulation_on_cluster(
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
    *,
    cluster: Any = None,
) -> dict[str, Any]:
    """:func:`alloop.bench.simulate` with one Dask task per (seed, strategy); same arguments, same result.

    ``cluster`` is a spec (``local``, ``local:N``, ``tcp://host:port``), a ``distributed.Client``, or
    ``None`` (``ALLOOP_DASK_SCHEDULER`` when set, else the tasks run one after another in this process).
    """
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
    specs = _check_strategies(strategies)
    if not isinstance(model, str):
        raise ConfigError(f"The 'model' parameter of {OWNER} must be a model name such as 'logreg'. Got {model!r}.")
    try:
        build_model(model)
    except ConfigError as exc:
        raise ConfigError(f"The 'model' parameter of {OWNER} is invalid: {exc}") from None
    min_labels = MODELS[model].min_labels
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
    n = dataset.n_samples
    n_test = int(np.ceil(test_size * n))
    n_train = n - n_test
    if initial > n_train:
        raise ConfigError(
            f"The 'initial' parameter of {OWNER} must be an int <= the size of the train part "
            f"({n_train} of {n} records with test_size={test_size}). Got {initial}."
        )
    baseline = _baseline(specs)
    n_points = _n_points(n_train, initial, batch, budget)
    curves = {spec: np.zeros((seeds, n_points)) for spec in specs}
    seconds = dict.fromkeys(specs, 0.0)
    labels_axis: list[int] = []
    jobs = [(spec, s) for s in range(seeds) for spec in specs]
    bar = _Progress(enabled=bool(progress), total=len(jobs))
    with bar, cluster_client(cluster, "cluster") as client:
        bar.describe("simulate" if client is None else f"simulate on {len(client.scheduler_info()['workers'])} "
                     "worker(s)")
        if client is None:
            outcomes: Any = (
                _campaign_task(dataset, model, spec, s, initial, batch, budget, test_size) for spec, s in jobs
            )
        else:
            shared = client.scatter(dataset, broadcast=True)
            futures = [
                client.submit(_campaign_task, shared, model, spec, s, initial, batch, budget, test_size, pure=False)
                for spec, s in jobs
            ]
            outcomes = (f.result() for f in futures)  # all run at once; the bar moves as each, in order, is done
        for spec, s, accuracy, labels, secs in outcomes:
            curves[spec][s] = accuracy
            seconds[spec] += secs
            labels_axis = labels
            bar.advance()

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
        "baseline": baseline,
    }
    return {"protocol": protocol, "results": results}
