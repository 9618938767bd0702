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

from alloop.bench.simulate import _Progress, assemble, paired_split, prepare, run_campaign
from alloop.datasets import Dataset
from alloop.scale._cluster import cluster_client

__all__ = ["run_simulation_on_cluster"]


def _campaign_task(
    dataset: Dataset, model: str, spec: str, seed: int, initial: int, batch: int, budget: int, test_size: float
) -> tuple[str, int, list[float], list[int], float]:
    train, test, init = paired_split(dataset.y, seed, test_size, initial)
    start = time.perf_counter()
    trace = run_campaign(
        dataset, model, spec, train=train, test=test, initial_rows=init, batch=batch, budget=budget, seed=seed
    )
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
    setup = prepare(data, model, strategies, initial, batch, budget, seeds, test_size, target)
    dataset, specs, n_points = setup.dataset, setup.specs, setup.n_points
    initial, batch, budget, seeds, test_size = setup.initial, setup.batch, setup.budget, setup.seeds, setup.test_size
    curves = {spec: np.zeros((seeds, n_points)) for spec in specs}
    seconds = dict.fromkeys(specs, 0.0)
    labels_axis: list[int] = []
    jobs = [(spec, s) for s in range(seeds) for spec in specs]
    bar = _Progress(enabled=bool(progress), total=len(jobs))
    with bar, cluster_client(cluster, "cluster") as client:
        bar.describe(
            "simulate" if client is None else f"simulate on {len(client.scheduler_info()['workers'])} worker(s)"
        )
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

    return assemble(setup, curves, seconds, labels_axis)
