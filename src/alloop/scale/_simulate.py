"""``alloop simulate --cluster`` and ``alloop meta-train --cluster``: simulated campaigns as Dask tasks.

Each (seed, strategy) campaign is one task running :func:`alloop.bench.simulate.run_campaign` on that seed's
paired split, exactly as the single-process loop does; the data set is loaded once and sent to every worker
once. Every campaign is deterministic in its seed, so the result equals :func:`~alloop.bench.simulate`'s
except for the wall-clock ``seconds`` (summed task times here). Progress advances as tasks finish.

:func:`map_jobs` is the same fan-out for any list of independent jobs (``alloop meta-train``'s episodes): results
come back in job order whatever order the tasks finish in, so the caller sees what a serial loop would give.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from alloop.bench.simulate import _Progress, assemble, paired_split, prepare, run_campaign
from alloop.compute import ComputePolicy, resolve_compute
from alloop.datasets import Dataset
from alloop.scale._cluster import cluster_client, gather_in_order, submit

__all__ = ["map_jobs", "run_simulation_on_cluster"]


def _campaign_task(
    dataset: Dataset,
    model: str,
    spec: str,
    seed: int,
    initial: int,
    batch: int,
    budget: int,
    test_size: float,
    compute: ComputePolicy | None = None,
    embeddings: str = "none",
) -> tuple[str, int, list[float], list[int], float, list[dict[str, float]]]:
    train, test, init = paired_split(dataset.y, seed, test_size, initial)
    start = time.perf_counter()
    trace = run_campaign(
        dataset, model, spec, train=train, test=test, initial_rows=init, batch=batch, budget=budget, seed=seed,
        compute=compute, embeddings=embeddings,
    )
    return spec, seed, list(trace.accuracy), list(trace.labels), time.perf_counter() - start, list(trace.compute)


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
    compute_saving: Any = None,
    embeddings: str = "none",
    *,
    cluster: Any = None,
) -> dict[str, Any]:
    """:func:`alloop.bench.simulate` with one Dask task per (seed, strategy); same arguments, same result
    (but for the measured ``seconds`` and the CPU seconds in ``compute``).

    ``cluster`` is a spec (``local``, ``local:N``, ``tcp://host:port``), a ``distributed.Client``, or
    ``None`` (``ALLOOP_DASK_SCHEDULER`` when set, else the tasks run one after another in this process).
    """
    resolve_compute(compute_saving, "run_simulation_on_cluster")  # a wrong flag fails before the data are loaded
    setup = prepare(data, model, strategies, initial, batch, budget, seeds, test_size, target, embeddings)
    policy = resolve_compute(compute_saving, "run_simulation_on_cluster", model=model, n_pool=setup.n_train)
    dataset, specs, n_points = setup.dataset, setup.specs, setup.n_points
    initial, batch, budget, seeds, test_size = setup.initial, setup.batch, setup.budget, setup.seeds, setup.test_size
    curves = {spec: np.zeros((seeds, n_points)) for spec in specs}
    seconds = dict.fromkeys(specs, 0.0)
    compute: dict[str, list[list[dict[str, float]]]] = {spec: [] for spec in specs}
    labels_axis: list[int] = []
    jobs = [(spec, s) for s in range(seeds) for spec in specs]
    bar = _Progress(enabled=bool(progress), total=len(jobs))
    with bar, cluster_client(cluster, "cluster") as client:
        bar.describe(
            "simulate" if client is None else f"simulate on {len(client.scheduler_info()['workers'])} worker(s)"
        )
        if client is None:
            outcomes: Any = (
                _campaign_task(dataset, model, spec, s, initial, batch, budget, test_size, policy, setup.embeddings)
                for spec, s in jobs
            )
        else:
            shared = client.scatter(dataset, broadcast=True)
            futures = [
                submit(
                    client, _campaign_task, shared, model, spec, s, initial, batch, budget, test_size, policy,
                    setup.embeddings,
                )
                for spec, s in jobs
            ]
            outcomes = gather_in_order(futures, lambda _: bar.advance())  # the bar moves as each one finishes
        for spec, s, accuracy, labels, secs, rows in outcomes:  # in job order: seeds ascending per spec
            curves[spec][s] = accuracy
            seconds[spec] += secs
            compute[spec].append(rows)
            labels_axis = labels
            if client is None:
                bar.advance()

    return assemble(setup, curves, seconds, labels_axis, None if compute_saving is None else compute, policy)


def map_jobs(
    fn: Callable[[Any], Any],
    jobs: Sequence[Any],
    *,
    cluster: Any,
    on_done: Callable[[Any], None] | None = None,
) -> list[Any]:
    """``[fn(job) for job in jobs]`` with one Dask task per job on ``cluster``; ``on_done(result)`` as each finishes.

    ``cluster`` is a spec (``local``, ``local:N``, ``tcp://host:port``), a ``distributed.Client``, or ``None``
    (``ALLOOP_DASK_SCHEDULER`` when set, else one job after another in this process). ``fn`` must be importable
    by the workers (a module-level function); results are in job order.
    """
    with cluster_client(cluster, "cluster") as client:
        if client is None:
            results = []
            for job in jobs:
                results.append(fn(job))
                if on_done is not None:
                    on_done(results[-1])
            return results
        return gather_in_order([submit(client, fn, job) for job in jobs], on_done)
