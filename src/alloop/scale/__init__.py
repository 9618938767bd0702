"""Scale-out on Dask: sharded snapshots, distributed selection, inference, History and simulations.

Everything here works without Dask (one piece after another in this process); a cluster is used when one
is given (``local``, ``local:N``, ``tcp://host:port``, a ``distributed.Client``) or named by
``ALLOOP_DASK_SCHEDULER``. Asking for a cluster without ``pip install 'alloop[dask]'`` raises
:class:`~alloop.errors.MissingDependencyError`. Importing this package does not import Dask.
"""

from __future__ import annotations

from alloop.scale._cluster import ENV_VAR, cluster_client, parse_cluster, resolve_cluster_spec, start_local_cluster
from alloop.scale._history import update_history, update_partition_stats
from alloop.scale._infer import map_partitions
from alloop.scale._parquet import Piece, list_pieces, write_snapshot_parts
from alloop.scale._select import PER_RECORD, ScaleSelection, random_scores, score_top_k, select_from_snapshot
from alloop.scale._simulate import map_jobs, run_simulation_on_cluster

__all__ = [
    "ENV_VAR",
    "PER_RECORD",
    "Piece",
    "ScaleSelection",
    "cluster_client",
    "list_pieces",
    "map_jobs",
    "map_partitions",
    "parse_cluster",
    "random_scores",
    "resolve_cluster_spec",
    "run_simulation_on_cluster",
    "score_top_k",
    "select_from_snapshot",
    "start_local_cluster",
    "update_history",
    "update_partition_stats",
    "write_snapshot_parts",
]
