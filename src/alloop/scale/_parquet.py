"""Sharded snapshots: partitioned Parquet, read one piece (a run of row groups) at a time.

A *sharded snapshot* is a glob or directory of Parquet files with an ``id`` column and the class
probabilities, either one float column per class (in column order) or one fixed-size list column
(``probs``). An optional fixed-size list column ``embedding`` (or ``embeddings``) holds embeddings. A file
written by :meth:`alloop.metadata.Snapshot.to_parquet` is a one-file sharded snapshot. Files are taken in sorted
path order and rows in file order: that global row number is the pool order (ties go to the lower row).

A *piece* is one file's run of consecutive row groups holding at most ``rows_per_piece`` rows (a single
larger row group stays whole), so no task ever holds more than one piece: memory is bounded by the
partition size, not by the number of records.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from alloop.errors import ConfigError, DataError
from alloop.metadata.snapshot import fixed_size_list

__all__ = ["EMBEDDING_COLUMN", "PROBS_COLUMN", "Piece", "list_pieces", "read_piece", "write_snapshot_parts"]

PROBS_COLUMN = "probs"
EMBEDDING_COLUMN = "embedding"
DEFAULT_ROWS_PER_PIECE = 1 << 21


@dataclass(frozen=True)
class Piece:
    """Rows ``[offset, offset + n_rows)`` of the sharded snapshot: ``row_groups`` of the file at ``path``."""

    path: str
    row_groups: tuple[int, ...]
    offset: int
    n_rows: int


def _files(data: str | os.PathLike[str] | list[str]) -> list[str]:
    if isinstance(data, list):
        paths = sorted(os.fspath(p) for p in data)
    else:
        text = os.fspath(data)
        if os.path.isdir(text):
            paths = sorted(glob.glob(os.path.join(text, "**", "*.parquet"), recursive=True))
        elif any(ch in text for ch in "*?["):
            paths = sorted(glob.glob(text, recursive=True))
        else:
            paths = [text]
    if not paths:
        raise ConfigError(
            f"The 'data' parameter matched no Parquet file: {data!r}. Give a file, a directory of .parquet files "
            "or a glob such as 'snap/*.parquet'."
        )
    for p in paths:
        if not os.path.isfile(p):
            raise ConfigError(f"The 'data' parameter names {p!r}, which is not a file. Check the path.")
    return paths


def list_pieces(data: str | os.PathLike[str] | list[str], rows_per_piece: int = DEFAULT_ROWS_PER_PIECE) -> list[Piece]:
    """The pieces of a sharded snapshot in global row order (reads only Parquet footers)."""
    import pyarrow.parquet as pq

    pieces: list[Piece] = []
    offset = 0
    for path in _files(data):
        meta = pq.ParquetFile(path).metadata
        groups: list[int] = []
        rows = 0
        for g in range(meta.num_row_groups):
            n = meta.row_group(g).num_rows
            if groups and rows + n > rows_per_piece:
                pieces.append(Piece(path, tuple(groups), offset, rows))
                offset += rows
                groups, rows = [], 0
            groups.append(g)
            rows += n
        if groups:
            pieces.append(Piece(path, tuple(groups), offset, rows))
            offset += rows
    return pieces


def _matrix(column: Any, name: str, path: str) -> np.ndarray:
    """A (fixed-size) list column as an (n, width) numpy matrix, without copying when possible."""
    import pyarrow as pa

    arr = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if len(arr) == 0:
        width = arr.type.list_size if pa.types.is_fixed_size_list(arr.type) else 0
        return np.empty((0, width), dtype=arr.type.value_type.to_pandas_dtype())
    if pa.types.is_fixed_size_list(arr.type):
        width = arr.type.list_size
    elif pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        lengths = np.asarray(arr.value_lengths())
        width = int(lengths[0])
        if (lengths != width).any():
            raise DataError(f"Column {name!r} of {path} holds lists of different lengths; every row needs the same.")
    else:  # pragma: no cover - guarded by the caller
        raise DataError(f"Column {name!r} of {path} is not a list column.")
    if arr.null_count:
        raise DataError(f"Column {name!r} of {path} holds a null row; every row needs a value.")
    values = arr.flatten().to_numpy(zero_copy_only=False)
    return np.asarray(values).reshape(len(arr), width)


def _is_list(t: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_list(t) or pa.types.is_fixed_size_list(t) or pa.types.is_large_list(t))


def split_columns(table: Any, path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """``(ids, probs, embeddings or None)`` of one Arrow table of a sharded snapshot."""
    names = table.column_names
    if "id" not in names:
        raise DataError(f"{path} has no 'id' column; a snapshot file needs 'id' plus the class probabilities.")
    ids = table.column("id").to_numpy(zero_copy_only=False)
    if ids.dtype == object:
        ids = ids.astype(str)
    emb_name = next((c for c in (EMBEDDING_COLUMN, "embeddings") if c in names), None)
    emb = None if emb_name is None else _matrix(table.column(emb_name), emb_name, path)
    if PROBS_COLUMN in names:  # also what Snapshot.to_parquet writes (other list columns are ignored)
        probs = _matrix(table.column(PROBS_COLUMN), PROBS_COLUMN, path)
    else:
        rest = [n for n in names if n not in ("id", emb_name)]
        lists = [n for n in rest if _is_list(table.schema.field(n).type)]
        if lists:
            if len(lists) != 1 or len(rest) != 1:
                raise DataError(
                    f"{path} must hold 'id' and either one list column of probabilities or one float column per "
                    f"class; found columns {names}."
                )
            probs = _matrix(table.column(lists[0]), lists[0], path)
        else:
            if not rest:
                raise DataError(f"{path} has no probability columns; add one float column per class.")
            cols = [table.column(n).to_numpy(zero_copy_only=False) for n in rest]
            if {c.dtype.kind for c in cols} - {"f"}:
                raise DataError(f"{path}: probability columns must be floats; found columns {names}.")
            probs = np.empty((len(ids), len(cols)), dtype=np.result_type(*[c.dtype for c in cols]))
            for j, c in enumerate(cols):
                probs[:, j] = c
    if probs.dtype.kind != "f":
        raise DataError(f"{path}: probabilities must be floats; got {probs.dtype}.")
    return ids, probs, emb


def read_piece(piece: Piece, columns: list[str] | None = None) -> Any:
    """The Arrow table of one piece (memory-mapped; decoded on this thread alone inside a Dask task).

    Decoding a list column is ~90 % of a per-record selection's CPU; Arrow's thread pool would spread it over
    every core of the machine from each worker, so inside a task (:func:`~alloop.scale._cluster.in_dask_task`)
    it runs on the task's own thread and one worker is one core.
    """
    import pyarrow.parquet as pq

    from alloop.scale._cluster import in_dask_task

    return pq.ParquetFile(piece.path, memory_map=True).read_row_groups(
        list(piece.row_groups), columns=columns, use_threads=not in_dask_task()
    )


def write_snapshot_parts(
    out_dir: str | os.PathLike[str],
    ids: np.ndarray,
    probs: np.ndarray,
    *,
    rows_per_file: int,
    row_group_rows: int | None = None,
    embeddings: np.ndarray | None = None,
    start: int = 0,
) -> list[str]:
    """Write ``ids``/``probs`` as ``part-NNNNN.parquet`` files of ``rows_per_file`` rows (fixed-size list column).

    ``start`` numbers the first file (for writing a large snapshot in several calls). Returns the paths.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    os.makedirs(out_dir, exist_ok=True)
    paths = []
    n = len(ids)
    for i, lo in enumerate(range(0, n, rows_per_file)):
        hi = min(lo + rows_per_file, n)
        table = pa.table({"id": pa.array(ids[lo:hi]), PROBS_COLUMN: fixed_size_list(probs[lo:hi])})
        if embeddings is not None:
            table = table.append_column(EMBEDDING_COLUMN, fixed_size_list(embeddings[lo:hi]))
        path = os.path.join(os.fspath(out_dir), f"part-{start + i:05d}.parquet")
        tmp = path + ".tmp"
        # no dictionary: ids are unique and probabilities nearly so (the writer would try and fall back to
        # plain encoding, and every reader would decode a dictionary page first): ~25 % less CPU to read.
        pq.write_table(table, tmp, row_group_size=row_group_rows or rows_per_file, use_dictionary=False)
        os.replace(tmp, path)
        paths.append(path)
    return paths
