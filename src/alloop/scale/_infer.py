"""Distributed inference: the user's ``infer`` runs where each partition lives; results go straight to Parquet.

The features are a sharded Parquet data set (an ``id`` column plus feature columns). ``infer(model, frame)``
gets one partition as a pandas DataFrame of the feature columns and returns its ``(n, C)`` probabilities. The
model is sent to every worker once (``client.scatter(model, broadcast=True)``); each task then reads its
partition, calls ``infer`` and writes ``part-NNNNN.parquet`` (``id`` + fixed-size list ``probs``) of the
sharded snapshot, returning only a row count. Dask moves the model and the function with its own
serialization inside the user's cluster; nothing alloop writes to disk or sends over HTTP is a pickle.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from alloop.errors import ConfigError, DataError
from alloop.scale._cluster import cluster_client, submit
from alloop.scale._parquet import DEFAULT_ROWS_PER_PIECE, Piece, list_pieces, read_piece, write_snapshot_parts

__all__ = ["map_partitions"]


def _infer_piece(piece: Piece, index: int, model: Any, infer: Callable[[Any, Any], Any], out_dir: str) -> int:
    table = read_piece(piece)
    if "id" not in table.column_names:
        raise DataError(f"{piece.path} has no 'id' column; the feature files need one.")
    ids = table.column("id").to_numpy(zero_copy_only=False)
    frame = table.drop(["id"]).to_pandas()
    probs = np.asarray(infer(model, frame))
    if probs.ndim != 2 or probs.shape[0] != ids.size:
        raise DataError(
            f"infer returned shape {probs.shape} for a partition of {ids.size} rows ({piece.path}); it must return "
            "one row of class probabilities per input row."
        )
    write_snapshot_parts(out_dir, ids, probs, rows_per_file=max(ids.size, 1), start=index)
    return int(ids.size)


def map_partitions(
    features: str | os.PathLike[str] | list[str],
    infer: Callable[[Any, Any], Any],
    model: Any,
    out_dir: str | os.PathLike[str],
    *,
    cluster: Any = None,
    rows_per_piece: int = DEFAULT_ROWS_PER_PIECE,
) -> list[str]:
    """Run ``infer(model, partition_frame)`` on every partition of ``features``; return the written part files.

    Part ``i`` of the output holds the rows of input piece ``i`` in the same order, so global row order
    (the pool order) is kept. Without a cluster the pieces run one after another in this process.
    """
    if not callable(infer):
        raise ConfigError(f"The 'infer' parameter of map_partitions must be a function (model, frame) -> probs. "
                          f"Got {infer!r}.")
    out = os.fspath(out_dir)
    os.makedirs(out, exist_ok=True)
    pieces = list_pieces(features, rows_per_piece)
    with cluster_client(cluster, "cluster") as client:
        if client is None:
            for i, p in enumerate(pieces):
                _infer_piece(p, i, model, infer, out)
        else:
            shared = client.scatter(model, broadcast=True)  # once per worker, not once per task
            futures = [submit(client, _infer_piece, p, i, shared, infer, out) for i, p in enumerate(pieces)]
            client.gather(futures)
    return [os.path.join(out, f"part-{i:05d}.parquet") for i in range(len(pieces))]
