"""Where the Dask work runs: ``local``, ``local:N``, ``tcp://host:port`` or ``ALLOOP_DASK_SCHEDULER``.

``None`` (and no ``ALLOOP_DASK_SCHEDULER``) means single-process: nothing imports Dask. Asking for a cluster
without the ``dask`` extra raises :class:`~alloop.errors.MissingDependencyError` with the install command.

>>> parse_cluster("local:2")
('local', 2)
>>> parse_cluster("tcp://127.0.0.1:8786")
('tcp', 'tcp://127.0.0.1:8786')
>>> resolve_cluster_spec(None, env={}) is None
True
>>> resolve_cluster_spec(None, env={"ALLOOP_DASK_SCHEDULER": "local:1"})
'local:1'
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from alloop.errors import ConfigError, require_extra

__all__ = [
    "ENV_VAR",
    "WORKER_ENV",
    "cluster_client",
    "gather_in_order",
    "in_dask_task",
    "in_task",
    "parse_cluster",
    "resolve_cluster_spec",
    "start_local_cluster",
    "submit",
]

#: Environment variable naming the default scheduler (same syntax as ``--cluster``).
ENV_VAR = "ALLOOP_DASK_SCHEDULER"
_HINT = "Use 'local', 'local:N' (N worker processes on this machine) or 'tcp://host:port' (a running scheduler)."


def parse_cluster(spec: str, owner: str = "cluster") -> tuple[str, Any]:
    """``("local", n_workers or None)`` or ``("tcp", address)``; raises :class:`ConfigError` otherwise."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"The '{owner}' parameter must be a cluster address. Got {spec!r}. {_HINT}")
    s = spec.strip()
    if s == "local":
        return "local", None
    if s.startswith("local:"):
        raw = s[len("local:") :]
        if not raw.isdigit() or int(raw) < 1:
            raise ConfigError(f"The '{owner}' parameter 'local:N' needs an int N >= 1. Got {spec!r}. {_HINT}")
        return "local", int(raw)
    if s.startswith("tcp://"):
        hostport = s[len("tcp://") :]
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"The '{owner}' parameter must look like 'tcp://host:port'. Got {spec!r}. {_HINT}")
        return "tcp", s
    raise ConfigError(f"The '{owner}' parameter is not a cluster address. Got {spec!r}. {_HINT}")


def resolve_cluster_spec(cluster: Any, env: Mapping[str, str] | None = None) -> Any:
    """The cluster to use: ``cluster`` when given, else ``ALLOOP_DASK_SCHEDULER``, else ``None`` (no Dask)."""
    if cluster is not None:
        return cluster
    env = os.environ if env is None else env
    return env.get(ENV_VAR) or None


def _is_client(obj: Any) -> bool:
    return type(obj).__name__ == "Client" and type(obj).__module__.startswith("distributed")


#: Environment of local worker processes: one BLAS/OpenMP/numba thread each (one worker = one core). Dask's
#: default also sets ``MALLOC_TRIM_THRESHOLD_``, which turns off glibc's adaptive mmap threshold, so every large
#: numpy temporary is mmapped and page-faulted again; simulation tasks ran 2-4x slower with it on this machine.
WORKER_ENV = {"OMP_NUM_THREADS": 1, "MKL_NUM_THREADS": 1, "OPENBLAS_NUM_THREADS": 1, "NUMBA_NUM_THREADS": 1}


_TASK = threading.local()


def in_dask_task() -> bool:
    """True on a thread that is running an alloop Dask task (see :func:`in_task`): use one thread there.

    >>> in_dask_task()
    False
    """
    return bool(getattr(_TASK, "active", False))


def _one_numba_thread() -> None:
    """Make numba's parallel kernels run on this thread only (a Dask task owns exactly one worker thread)."""
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a core dependency
        return
    if numba.get_num_threads() != 1:
        numba.set_num_threads(1)  # thread-local: the worker thread that runs the task


def in_task(fn: Any, *args: Any) -> Any:
    """``fn(*args)`` as one Dask task, on its worker thread only: numba runs single-threaded and Parquet is
    decoded without Arrow's thread pool (:func:`in_dask_task` is true), so N worker threads use N cores, not
    N x cores. Otherwise each worker would decode on every core: one worker would already use the whole
    machine and a second one could only add contention."""
    _one_numba_thread()
    _TASK.active = True
    try:
        return fn(*args)
    finally:
        _TASK.active = False


def submit(client: Any, fn: Any, *args: Any) -> Any:
    """``client.submit(fn, *args)`` run through :func:`in_task` (never cached: every call is new work)."""
    return client.submit(in_task, fn, *args, pure=False)


def gather_in_order(futures: list[Any], on_done: Callable[[Any], None] | None = None) -> list[Any]:
    """The futures' results in the futures' order; ``on_done(result)`` is called as each one finishes."""
    distributed: Any = require_extra("distributed", "dask")
    if not futures:
        return []
    where = {f.key: i for i, f in enumerate(futures)}
    results: list[Any] = [None] * len(futures)
    for fut in distributed.as_completed(futures, loop=futures[0].client.loop):  # no default client needed
        results[where[fut.key]] = res = fut.result()
        if on_done is not None:
            on_done(res)
    return results


#: Without a dashboard the scheduler still serves its HTTP routes, on port 8787 by default: a second cluster on the
#: machine then warns "Port 8787 is already in use" (an error under ``-W error``). Any free port will do.
SCHEDULER_KWARGS = {"dashboard_address": "127.0.0.1:0"}


def start_local_cluster(n_workers: int) -> Any:
    """A ``LocalCluster`` of ``n_workers`` processes with one thread each, on 127.0.0.1, without dashboard."""
    dask: Any = require_extra("dask", "dask")
    distributed: Any = require_extra("distributed", "dask")
    with dask.config.set({"distributed.nanny.pre-spawn-environ": dict(WORKER_ENV)}):
        return distributed.LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            scheduler_kwargs=SCHEDULER_KWARGS,
        )


@contextmanager
def cluster_client(cluster: Any, owner: str = "cluster") -> Iterator[Any]:
    """Yield a ``distributed.Client`` for ``cluster`` (a spec string or a Client); ``None`` yields ``None``.

    A ``local[:N]`` cluster is started here (processes, one thread per worker, bound to 127.0.0.1, no
    dashboard) and closed on exit; a Client passed in is left open; a ``tcp://`` address is connected to
    and disconnected from on exit.
    """
    cluster = resolve_cluster_spec(cluster)
    if cluster is None:
        yield None
        return
    if _is_client(cluster):
        yield cluster
        return
    kind, arg = parse_cluster(cluster, owner)
    require_extra("dask", "dask")
    distributed: Any = require_extra("distributed", "dask")
    if kind == "tcp":
        client = distributed.Client(arg, set_as_default=False)
        try:
            yield client
        finally:
            client.close()
        return
    n_workers = arg if arg is not None else max(1, os.cpu_count() or 1)
    local = start_local_cluster(n_workers)
    client = distributed.Client(local, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        local.close()
