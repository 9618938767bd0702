"""Loaders: bundled data sets and user files (``.npz``, ``.csv``, ``.parquet``, ``.jsonl``, image folders)."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from alloop.datasets._dataset import Dataset
from alloop.errors import ConfigError, DataError

__all__ = ["BUILTIN", "TEXT_BUILTIN", "load_dataset"]

ID_COLUMN = "id"
LABEL_COLUMN = "label"
TEXT_COLUMN = "text"
EXTENSIONS = (".npz", ".csv", ".parquet", ".jsonl")
TEXT_BUILTIN = {"reviews": "all", "reviews-train": "train", "reviews-test": "test"}


def _sklearn_loader(name: str) -> Callable[[], Any]:
    def load() -> Any:
        import sklearn.datasets as skd

        return getattr(skd, f"load_{name}")()  # bundled with scikit-learn: nothing is downloaded

    return load


BUILTIN: dict[str, Callable[[], Any]] = {
    name: _sklearn_loader(name) for name in ("digits", "breast_cancer", "wine", "iris")
}


def _finish(X: np.ndarray, y: np.ndarray, ids: np.ndarray, name: str, features: list[str], where: str) -> Dataset:
    """Shared checks: shapes, finite features, unique ids, at least two classes."""
    if X.ndim != 2:
        raise DataError(f"The features of {where} must be a 2-D array (n_records, n_features); got shape {X.shape}.")
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise DataError(
            f"The labels of {where} must be a 1-D array with one label per row ({X.shape[0]}); got shape {y.shape}."
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"{where} has no records or no feature columns (shape {X.shape}); nothing to learn from.")
    bad = ~np.isfinite(X)
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise DataError(
            f"{where}: feature {features[col]!r} has a NaN or infinite value in row {row} "
            f"({int(bad.sum())} such value(s) in total); impute or drop those rows before loading."
        )
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise DataError(f"{where}: the label column has a missing (NaN) value; every record needs a label.")
        if np.all(y == np.round(y)):
            y = y.astype(np.int64)  # e.g. labels saved as 0.0/1.0
    elif y.dtype.kind in "OUS":
        if any(v is None for v in y.tolist()):
            raise DataError(f"{where}: the label column has a missing value; every record needs a label.")
        y = np.array([str(v) for v in y.tolist()], dtype=object)
    elif y.dtype.kind == "b":
        y = y.astype(np.int64)
    classes = np.array(sorted(set(y.tolist())), dtype=y.dtype)
    if classes.size < 2:
        raise DataError(
            f"{where} has {classes.size} class(es) ({classes.tolist()!r}); classification needs at least 2. "
            "Check that the right label column was chosen."
        )
    if len(set(ids.tolist())) != ids.size:
        raise DataError(f"{where}: the {ID_COLUMN!r} column has duplicate values; record ids must be unique.")
    return Dataset(
        X=np.ascontiguousarray(X, dtype=np.float64),
        y=y,
        ids=ids,
        name=name,
        feature_names=tuple(features),
        classes=classes,
    )


def _load_builtin(name: str) -> Dataset:
    bunch = BUILTIN[name]()
    X = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target).astype(np.int64)
    names = getattr(bunch, "feature_names", None)
    features = [str(f) for f in names] if names is not None else [f"x{j}" for j in range(X.shape[1])]
    ds = _finish(X, y, np.arange(X.shape[0], dtype=np.int64), name, features, f"built-in data set {name!r}")
    if name == "digits":  # 8x8 grey images, pixel values 0..16
        import dataclasses

        return dataclasses.replace(ds, kind="image", image_shape=(1, 8, 8))
    return ds


def _id_array(values: Any, where: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    if arr.dtype.kind in "OUS" and all(isinstance(v, str) for v in arr.tolist()):
        return np.array(arr.tolist(), dtype=object)
    raise DataError(
        f"{where}: the {ID_COLUMN!r} column must hold integers or strings (and no missing value); "
        f"got dtype {arr.dtype}. Fix the ids or rename the column."
    )


def _load_npz(path: Path, target: str | None) -> Dataset:
    where = f"file {str(path)!r}"
    label_key = target or "y"
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise DataError(
            f"Could not read {where} as .npz: {exc}. Save it with numpy.savez(path, X=..., y=...)."
        ) from exc
    for key in ("X", label_key):
        if key not in arrays:
            raise DataError(
                f"{where} has no array {key!r}; it holds {sorted(arrays)}. "
                f"Save it with numpy.savez(path, X=features, {label_key}=labels)"
                + (" or pass --target with the name of the label array." if target is None else ".")
            )
    X = arrays["X"]
    if X.dtype.kind not in "fiub":
        raise DataError(f"{where}: array 'X' must be numeric; got dtype {X.dtype}. Encode features as numbers.")
    y = arrays[label_key]
    n = X.shape[0] if X.ndim else 0
    ids = _id_array(arrays[ID_COLUMN], where) if ID_COLUMN in arrays else np.arange(n, dtype=np.int64)
    if ids.shape != (n,):
        raise DataError(f"{where}: array {ID_COLUMN!r} must hold one id per row of 'X' ({n}); got shape {ids.shape}.")
    if "feature_names" in arrays:
        features = [str(f) for f in arrays["feature_names"].tolist()]
    else:
        features = [f"x{j}" for j in range(X.shape[1] if X.ndim == 2 else 0)]
    if X.ndim == 2 and len(features) != X.shape[1]:
        raise DataError(f"{where}: 'feature_names' has {len(features)} names for {X.shape[1]} columns of 'X'.")
    return _finish(X.astype(np.float64), y, ids, path.name, features, where)


def _load_table(path: Path, target: str | None) -> Dataset:
    import pyarrow as pa

    where = f"file {str(path)!r}"
    try:
        if path.suffix.lower() == ".csv":
            import pyarrow.csv as pcsv

            table = pcsv.read_csv(path)
        else:
            import pyarrow.parquet as pq

            table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"Could not read {where}: {exc}") from exc
    columns = list(table.column_names)
    label = target or LABEL_COLUMN
    if label not in columns:
        fix = "Pass --target with the name of the label column" if target is None else "Check the --target value"
        raise DataError(f"{where} has no label column {label!r}; its columns are {columns}. {fix}.")
    if TEXT_COLUMN in columns and (
        pa.types.is_string(table.column(TEXT_COLUMN).type) or pa.types.is_large_string(table.column(TEXT_COLUMN).type)
    ):
        return _text_table(table, label, path, where)
    features = [c for c in columns if c not in (label, ID_COLUMN)]
    if not features:
        raise DataError(f"{where} has no feature column besides {label!r}; add numeric feature columns.")
    cols = []
    for name in features:
        col = table.column(name)
        if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_decimal(col.type)):
            raise DataError(
                f"{where}: feature column {name!r} is not numeric (type {col.type}). "
                "Encode it as numbers (e.g. one-hot) or drop it; only the label and 'id' columns may hold text."
            )
        cols.append(col.to_numpy(zero_copy_only=False).astype(np.float64))  # nulls become NaN
    X = np.column_stack(cols)
    y_col = table.column(label)
    if y_col.null_count:
        raise DataError(
            f"{where}: the label column {label!r} has {y_col.null_count} missing value(s); label every row."
        )
    y = np.asarray(y_col.to_numpy(zero_copy_only=False))
    if ID_COLUMN in columns:
        id_col = table.column(ID_COLUMN)
        if id_col.null_count:
            raise DataError(f"{where}: the {ID_COLUMN!r} column has missing values; give every row an id.")
        ids = _id_array(id_col.to_numpy(zero_copy_only=False), where)
    else:
        ids = np.arange(table.num_rows, dtype=np.int64)
    return _finish(X, y, ids, path.name, features, where)


def _text_table(table: Any, label: str, path: Path, where: str) -> Dataset:
    """A table with a string ``text`` column: a text data set (other feature columns are ignored)."""
    from alloop.datasets._more import text_dataset

    texts = table.column(TEXT_COLUMN)
    if texts.null_count:
        raise DataError(
            f"{where}: the {TEXT_COLUMN!r} column has {texts.null_count} empty value(s); give every row a text."
        )
    y_col = table.column(label)
    if y_col.null_count:
        raise DataError(
            f"{where}: the label column {label!r} has {y_col.null_count} missing value(s); label every row."
        )
    y = np.asarray(y_col.to_numpy(zero_copy_only=False))
    if ID_COLUMN in table.column_names:
        ids = _id_array(table.column(ID_COLUMN).to_numpy(zero_copy_only=False), where)
    else:
        ids = np.arange(table.num_rows, dtype=np.int64)
    return text_dataset(texts.to_pylist(), y, ids, path.name, where)


def load_dataset(source: str, target: str | None = None) -> Dataset:
    """Load a built-in data set by name or a ``.npz`` / ``.csv`` / ``.parquet`` file by path.

    Built-in names: ``digits``, ``breast_cancer``, ``wine``, ``iris`` (bundled with scikit-learn,
    never downloaded); ``reviews`` (and ``reviews-train``/``reviews-test``), the Amazon fine-food reviews
    shipped inside alloop as Parquet (no extra needed). Files: ``.npz`` with arrays ``X`` and ``y``;
    tables with a ``label`` column (or ``target``) and numeric feature columns, or a string ``text``
    column (a text data set); ``.jsonl`` with one ``{"text": ..., "label": ...}`` object per line; a
    folder with one sub-folder of images per class. An ``id`` column, when present, gives the record ids.

    >>> ds = load_dataset("iris")
    >>> ds.X.shape, ds.classes.tolist(), int(ds.ids[-1])
    ((150, 4), [0, 1, 2], 149)
    """
    if not isinstance(source, str | Path):
        raise ConfigError(f"The 'source' parameter of load_dataset must be a name or a path. Got {source!r}.")
    text = str(source)
    if text in BUILTIN:
        if target is not None:
            raise ConfigError(
                f"The 'target' parameter of load_dataset applies to files only; the built-in data set {text!r} "
                "has its own labels. Drop --target."
            )
        return _load_builtin(text)
    if text in TEXT_BUILTIN:
        if target is not None:
            raise ConfigError(f"The 'target' parameter of load_dataset applies to files only; drop it for {text!r}.")
        from alloop.datasets._more import load_reviews

        return load_reviews(TEXT_BUILTIN[text])
    path = Path(text).expanduser()
    if path.is_dir():
        if target is not None:
            raise ConfigError("The 'target' parameter of load_dataset does not apply to an image folder; drop it.")
        from alloop.datasets._more import load_image_folder

        return load_image_folder(path)
    ext = path.suffix.lower()
    if ext not in EXTENSIONS:
        names = [*BUILTIN, *TEXT_BUILTIN]
        close = difflib.get_close_matches(text, names, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DataError(
            f"Cannot load {text!r}: it is not a built-in data set ({', '.join(names)}), not a folder, and its "
            f"extension {ext or '(none)'!r} is not one of {', '.join(EXTENSIONS)}.{hint} "
            "Convert the file to .npz, .csv, .parquet or .jsonl."
        )
    if not path.is_file():
        raise DataError(f"Data file {text!r} does not exist (resolved to {str(path.resolve())!r}); check the path.")
    if ext == ".npz":
        return _load_npz(path, target)
    if ext == ".jsonl":
        from alloop.datasets._more import load_jsonl

        return load_jsonl(path, target)
    return _load_table(path, target)
