"""History statistics per partition: the same running statistics as :class:`~alloop.metadata.History`.

A partition's state is a plain dict of arrays aligned with the partition's rows (``count``, ``<series>_mean``,
``<series>_m2`` for confidence/margin/entropy, ``predicted``, ``flips``, ``last_flip_loop``, ``first_loop``,
``last_loop``). :func:`update_partition_stats` folds one INFER pass of that partition into it with the very
update History uses (Welford), so applying it per partition and concatenating gives History's numbers.
:func:`update_history` runs it over aligned sharded snapshots, one task per partition, and writes the new
state as Parquet next to them.

>>> p = np.array([[0.9, 0.1], [0.4, 0.6]])
>>> s = update_partition_stats(None, p, loop=0)
>>> s = update_partition_stats(s, np.array([[0.3, 0.7], [0.4, 0.6]]), loop=1)
>>> s["flips"].tolist()
[1, 0]
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from alloop.errors import DataError
from alloop.metadata.history import SERIES, summary_stats
from alloop.scale._cluster import cluster_client, submit
from alloop.scale._parquet import list_pieces, read_piece, split_columns

__all__ = ["update_history", "update_partition_stats"]


def _empty(n: int) -> dict[str, np.ndarray]:
    state: dict[str, np.ndarray] = {"count": np.zeros(n, dtype=np.int32)}
    for s in SERIES:
        state[f"{s}_mean"] = np.zeros(n)
        state[f"{s}_m2"] = np.zeros(n)
    state["predicted"] = np.full(n, -1, dtype=np.int32)
    state["flips"] = np.zeros(n, dtype=np.int32)
    for name in ("last_flip_loop", "first_loop", "last_loop"):
        state[name] = np.full(n, -1, dtype=np.int32)
    return state


def update_partition_stats(state: dict[str, np.ndarray] | None, probs: np.ndarray, loop: int) -> dict[str, np.ndarray]:
    """The partition's statistics after one more INFER pass (``probs`` rows aligned with ``state``'s)."""
    p = np.asarray(probs)
    old = _empty(p.shape[0]) if state is None else state
    if old["count"].shape[0] != p.shape[0]:
        raise DataError(f"History state has {old['count'].shape[0]} rows but the snapshot partition has {p.shape[0]}.")
    new = {key: value.copy() for key, value in old.items()}
    stats = summary_stats(p)
    cnt = old["count"] + 1
    for s in SERIES:
        x = stats[s]
        mean = old[f"{s}_mean"]
        delta = x - mean
        new_mean = mean + delta / cnt
        new[f"{s}_m2"] = old[f"{s}_m2"] + delta * (x - new_mean)
        new[f"{s}_mean"] = new_mean
    new["count"] = cnt
    pred = np.argmax(p, axis=1).astype(np.int32)
    flipped = (old["predicted"] >= 0) & (old["predicted"] != pred)
    new["flips"] = old["flips"] + flipped
    new["last_flip_loop"] = np.where(flipped, loop, old["last_flip_loop"]).astype(np.int32)
    new["predicted"] = pred
    new["first_loop"] = np.where(old["first_loop"] < 0, loop, old["first_loop"]).astype(np.int32)
    new["last_loop"] = np.full(p.shape[0], loop, dtype=np.int32)
    return new


def _update_piece(snap_piece: Any, state_path: str | None, out_path: str, loop: int) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    ids, probs, _ = split_columns(read_piece(snap_piece), snap_piece.path)
    state = None
    if state_path is not None:
        table = pq.read_table(state_path)
        if not np.array_equal(table.column("id").to_numpy(zero_copy_only=False), ids):
            raise DataError(f"{state_path} does not hold the ids of {snap_piece.path} in the same order.")
        state = {name: table.column(name).to_numpy() for name in table.column_names if name != "id"}
    new = update_partition_stats(state, probs, loop)
    tmp = out_path + ".tmp"
    pq.write_table(pa.table({"id": ids, **new}), tmp)
    os.replace(tmp, out_path)
    return int(ids.size)


def update_history(
    snapshot: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    loop: int,
    state_dir: str | os.PathLike[str] | None = None,
    cluster: Any = None,
) -> list[str]:
    """Fold the sharded ``snapshot`` into the per-partition state in ``state_dir`` (None = first pass).

    Partition ``i`` of the state belongs to part file ``i`` of the snapshot (same ids, same order). Writes
    ``history-NNNNN.parquet`` files into ``out_dir`` and returns their paths.
    """
    pieces = list_pieces(snapshot, rows_per_piece=1 << 62)  # one piece per file
    out = os.fspath(out_dir)
    os.makedirs(out, exist_ok=True)
    paths = [os.path.join(out, f"history-{i:05d}.parquet") for i in range(len(pieces))]
    olds: list[str | None] = [None] * len(pieces)
    if state_dir is not None:
        olds = [os.path.join(os.fspath(state_dir), f"history-{i:05d}.parquet") for i in range(len(pieces))]
    with cluster_client(cluster, "cluster") as client:
        if client is None:
            for piece, old, path in zip(pieces, olds, paths, strict=True):
                _update_piece(piece, old, path, loop)
        else:
            client.gather([submit(client, _update_piece, piece, old, path, loop)
                           for piece, old, path in zip(pieces, olds, paths, strict=True)])
    return paths
