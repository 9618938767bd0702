"""``Snapshot``: the metadata of one INFER pass, validated on construction.

>>> import numpy as np
>>> s = Snapshot(ids=[10, 11], probs=np.array([[0.9, 0.1], [0.5, 0.5]]))
>>> s.n_records, s.n_classes
(2, 2)
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alloop.errors import DataError
from alloop.records import as_id_array, first_duplicate

__all__ = ["Snapshot", "TASK_TYPES"]

TASK_TYPES = ("classification",)
PROB_TOLERANCE = 1e-3


def _float_array(value: Any, field: str) -> np.ndarray:
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover - numpy gives odd errors for ragged input
        raise DataError(f"{field!r} could not be read as an array: {exc}") from exc
    if arr.dtype.kind not in "fiu":
        raise DataError(f"{field!r} must be numeric; got dtype {arr.dtype}.")
    # float64 is kept as given so that rankings match full-precision computations exactly;
    # every other dtype becomes float32.
    return arr if arr.dtype == np.float64 else arr.astype(np.float32)


def _check_finite(arr: np.ndarray, field: str) -> None:
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise DataError(
            f"{field!r} contains a NaN or infinite value at position {tuple(int(b) for b in bad)}; "
            "every value must be finite."
        )


def _check_probs(probs: np.ndarray, ids: np.ndarray) -> None:
    """Rows finite, in [0, 1] and summing to 1: three passes over ``probs`` (row sums, min, max)."""
    # einsum sums short rows several times faster than sum(axis=1) (no BLAS threads involved); float32
    # rounding (~1e-6) is far below the tolerance
    sums = np.einsum("ij->i", probs).astype(np.float64, copy=False)
    if not np.isfinite(sums).all():  # a NaN or infinite entry makes its row sum non-finite
        _check_finite(probs, "probs")
    if probs.min() < 0 or probs.max() > 1 + PROB_TOLERANCE:
        raise DataError("'probs' must lie in [0, 1]; found a negative value or one above 1.")
    off = np.abs(sums - 1)
    worst = int(np.argmax(off))
    if off[worst] > PROB_TOLERANCE:
        rid = ids[worst : worst + 1].tolist()[0]  # a Python value: no np.int64(...) in the message
        raise DataError(
            f"Each row of 'probs' must sum to 1 (±{PROB_TOLERANCE}); row {worst} "
            f"(id {rid!r}) sums to {sums[worst]:.6g}. Apply softmax or normalise first."
        )


def _id_column(col: Any, where: str) -> np.ndarray:
    """The ``id`` column as an int64 or str (object) array, without a Python object per int id."""
    import pyarrow as pa

    if col.null_count:
        raise DataError(f"Column 'id' of {where} has {col.null_count} null id(s); give every record an id.")
    if pa.types.is_integer(col.type):
        return np.asarray(numpy_numbers(col), dtype=np.int64)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return np.asarray(col.to_numpy(zero_copy_only=False), dtype=object)
    raise DataError(f"Column 'id' of {where} must hold ints or strings; got {col.type}.")



def arrow_numbers(values: np.ndarray) -> Any:
    """A 1-D numeric array as an Arrow array, zero-copy for contiguous input.

    ``pa.array(ndarray)`` would import pandas on first use (~0.2 s in a fresh process, measured); building the
    array from the buffer does not.
    """
    import pyarrow as pa

    arr = np.ascontiguousarray(values).reshape(-1)
    if arr.dtype.kind not in "iuf":  # booleans are bit-packed in Arrow: converted element by element
        return pa.array(arr)
    return pa.Array.from_buffers(pa.from_numpy_dtype(arr.dtype), arr.size, [None, pa.py_buffer(arr)])


def numpy_numbers(values: Any) -> np.ndarray:
    """A numeric Arrow array (or chunked array) without nulls as a numpy array, zero-copy for one chunk.

    ``to_numpy()`` would import pandas on first use (see :func:`arrow_numbers`); the data buffer is read directly.
    """
    import pyarrow as pa

    arr = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    if arr.null_count or not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)):
        return np.asarray(arr.to_numpy(zero_copy_only=False))
    kind = "f" if pa.types.is_floating(arr.type) else "i" if pa.types.is_signed_integer(arr.type) else "u"
    dtype = np.dtype(f"{kind}{arr.type.bit_width // 8}")
    return np.frombuffer(arr.buffers()[1], dtype=dtype, count=len(arr), offset=arr.offset * dtype.itemsize)


def arrow_ids(ids: np.ndarray) -> Any:
    """Record ids (int64, or str as an object array) as an Arrow ``int64`` or ``string`` array: the one id column
    of snapshots, record batches and dynamics files (ints zero-copy, see :func:`arrow_numbers`).

    >>> arrow_ids(np.array([3, 1])).type, arrow_ids(np.array(["a"], dtype=object)).to_pylist()
    (DataType(int64), ['a'])
    """
    import pyarrow as pa

    if ids.dtype.kind in "iu":
        return arrow_numbers(ids.astype(np.int64, copy=False))
    return pa.array(ids.tolist(), type=pa.string())


def fixed_size_list(matrix: np.ndarray) -> Any:
    """An (n, w) matrix as an Arrow fixed-size list array (no copy for contiguous input).

    >>> fixed_size_list(np.array([[1.0, 2.0], [3.0, 4.0]], dtype=np.float32)).to_pylist()
    [[1.0, 2.0], [3.0, 4.0]]
    """
    import pyarrow as pa

    m = np.ascontiguousarray(matrix)
    return pa.FixedSizeListArray.from_arrays(arrow_numbers(m), m.shape[1])

@dataclass(frozen=True, eq=False)
class Snapshot:
    """One INFER pass over a set of records.

    ids        record ids, unique (ints or strings)
    probs      (n, C) class probabilities; each row in [0, 1] and summing to 1 (within 1e-3)
    embeddings optional (n, D) representation
    samples    optional (S, n, C) MC-dropout or ensemble member probabilities
    dynamics   optional per-record training dynamics: name -> (n,) or (n, E) arrays
    classes    optional class labels for the columns of ``probs``
    loop       the loop that produced it, when known
    """

    ids: Any
    probs: Any
    embeddings: Any = None
    samples: Any = None
    dynamics: Mapping[str, Any] | None = None
    classes: Any = None
    loop: int | None = None
    task: str = "classification"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.task not in TASK_TYPES:
            raise DataError(f"'task' must be one of {TASK_TYPES}; got {self.task!r}.")
        ids = as_id_array(self.ids, "ids")
        dup = first_duplicate(ids)
        if dup is not None:
            raise DataError(
                f"'ids' of a Snapshot must be unique; the id {ids[dup : dup + 1].tolist()[0]!r} appears more than once."
            )
        set_(self, "ids", ids)
        n = ids.size
        probs = _float_array(self.probs, "probs")
        if probs.ndim != 2 or probs.shape[0] != n:
            raise DataError(f"'probs' must have shape (n_ids={n}, n_classes); got {probs.shape}.")
        if probs.shape[1] < 1:
            raise DataError("'probs' must have at least one class column.")
        if n:
            _check_probs(probs, ids)
        set_(self, "probs", probs)
        if self.embeddings is not None:
            emb = _float_array(self.embeddings, "embeddings")
            if emb.ndim != 2 or emb.shape[0] != n:
                raise DataError(f"'embeddings' must have shape (n_ids={n}, dim); got {emb.shape}.")
            _check_finite(emb, "embeddings")
            set_(self, "embeddings", emb)
        if self.samples is not None:
            smp = _float_array(self.samples, "samples")
            if smp.ndim != 3 or smp.shape[1:] != probs.shape:
                raise DataError(
                    f"'samples' must have shape (n_samples, n_ids={n}, n_classes={probs.shape[1]}); "
                    f"got {smp.shape}."
                )
            _check_finite(smp, "samples")
            if smp.size and smp.min() < 0:
                raise DataError("'samples' must hold probabilities; found a negative value.")
            set_(self, "samples", smp)
        if self.dynamics is not None:
            dyn: dict[str, np.ndarray] = {}
            for name, value in dict(self.dynamics).items():
                arr = _float_array(value, f"dynamics[{name!r}]")
                if arr.ndim not in (1, 2) or arr.shape[0] != n:
                    raise DataError(
                        f"'dynamics[{name!r}]' must have shape (n_ids={n},) or (n_ids, n_epochs); got {arr.shape}."
                    )
                dyn[str(name)] = arr
            set_(self, "dynamics", dyn)
        if self.classes is not None:
            cls = list(np.asarray(self.classes).tolist())
            if len(cls) != probs.shape[1]:
                raise DataError(
                    f"'classes' has {len(cls)} entries but 'probs' has {probs.shape[1]} columns; they must match."
                )
            if len(set(cls)) != len(cls):
                raise DataError("'classes' must be unique.")
            set_(self, "classes", cls)

    # ---- shape ---------------------------------------------------------------------------------
    @property
    def n_records(self) -> int:
        return int(self.ids.size)

    @property
    def n_classes(self) -> int:
        return int(self.probs.shape[1])

    @property
    def available(self) -> frozenset[str]:
        """The kinds of metadata present: what strategies may ``need``."""
        have = {"probs"}
        if self.embeddings is not None:
            have.add("embeddings")
        if self.samples is not None:
            have.add("samples")
        if self.dynamics:
            have.add("dynamics")
        return frozenset(have)

    def subset(self, mask_or_index: np.ndarray | slice) -> Snapshot:
        """The rows at a boolean mask, an index array or a slice (rows are not validated again, only id
        uniqueness). A slice gives views of this snapshot's arrays, no copy (upload chunks use it)."""
        sel: np.ndarray | slice = mask_or_index if isinstance(mask_or_index, slice) else np.asarray(mask_or_index)
        if isinstance(sel, np.ndarray) and sel.dtype != bool:
            dup = first_duplicate(np.arange(self.n_records)[sel])
            if dup is not None:
                raise DataError(f"Snapshot.subset: the index selects row {int(sel[dup])} more than once.")
        return Snapshot._trusted(
            ids=self.ids[sel],
            probs=self.probs[sel],
            embeddings=None if self.embeddings is None else self.embeddings[sel],
            samples=None if self.samples is None else self.samples[:, sel],
            dynamics=None if self.dynamics is None else {k: v[sel] for k, v in self.dynamics.items()},
            classes=self.classes,
            loop=self.loop,
            task=self.task,
        )

    @classmethod
    def _trusted(cls, **fields: Any) -> Snapshot:
        """Build from parts of snapshots that were already validated, without validating again."""
        obj = object.__new__(cls)
        for f in dataclasses.fields(cls):
            if f.name in fields:
                value = fields[f.name]
            elif f.default_factory is not dataclasses.MISSING:
                value = f.default_factory()
            else:
                value = f.default
            object.__setattr__(obj, f.name, value)
        return obj

    @staticmethod
    def check_parts(parts: Sequence[Snapshot]) -> Snapshot:
        """The first of several snapshots of one INFER pass, after checking that they all have the same columns
        (ids type, classes, task, embedding width, samples, dynamics); ids across parts are not checked here."""
        if not parts:
            raise DataError("A snapshot needs at least one part.")
        head = parts[0]
        for j, p in enumerate(parts[1:], 1):
            same = (
                p.n_classes == head.n_classes
                and p.classes == head.classes
                and p.task == head.task
                and p.ids.dtype == head.ids.dtype
                and (p.embeddings is None) == (head.embeddings is None)
                and (p.embeddings is None or p.embeddings.shape[1] == head.embeddings.shape[1])
                and (p.samples is None) == (head.samples is None)
                and (p.samples is None or p.samples.shape[0] == head.samples.shape[0])
                and sorted(p.dynamics or {}) == sorted(head.dynamics or {})
                and all(v.shape[1:] == dict(head.dynamics or {})[k].shape[1:] for k, v in (p.dynamics or {}).items())
            )
            if not same:
                raise DataError(
                    f"Part {j} of the snapshot does not match part 0 (ids type, classes, task, embedding width, "
                    "samples or dynamics differ); every chunk of one INFER pass must have the same columns."
                )
        return head

    @classmethod
    def concat(cls, parts: Sequence[Snapshot]) -> Snapshot:
        """Rows of several snapshots of one INFER pass (e.g. upload chunks) as one; ids must stay unique.

        >>> a = Snapshot(ids=[1], probs=[[0.2, 0.8]]); b = Snapshot(ids=[2], probs=[[0.6, 0.4]])
        >>> Snapshot.concat([a, b]).ids.tolist()
        [1, 2]
        """
        head = cls.check_parts(parts)
        if len(parts) == 1:
            return head
        ids = np.concatenate([p.ids for p in parts])
        dup = first_duplicate(ids)
        if dup is not None:
            raise DataError(
                f"'ids' of a Snapshot must be unique; the id {ids[dup : dup + 1].tolist()[0]!r} appears more than once."
            )

        def cat(get: Any, axis: int = 0) -> Any:
            values = [get(p) for p in parts]
            if values[0] is None:
                return None
            dtype = np.result_type(*values)
            return np.concatenate([v.astype(dtype, copy=False) for v in values], axis=axis)

        return cls._trusted(
            ids=ids,
            probs=cat(lambda p: p.probs),
            embeddings=cat(lambda p: p.embeddings),
            samples=cat(lambda p: p.samples, axis=1),
            dynamics=None
            if not head.dynamics
            else {k: cat(lambda p, k=k: p.dynamics[k]) for k in head.dynamics},  # type: ignore[misc]
            classes=head.classes,
            loop=head.loop,
            task=head.task,
        )

    def aligned_to(self, classes: list[Any]) -> Snapshot:
        """Reorder/pad the class columns to ``classes`` (absent classes get probability 0)."""
        if self.classes is None or list(self.classes) == list(classes):
            if self.classes is None and self.n_classes != len(classes):
                raise DataError(
                    f"'probs' has {self.n_classes} columns but the campaign has {len(classes)} classes; "
                    "give Snapshot.classes so columns can be aligned."
                )
            return self
        pos = {c: j for j, c in enumerate(classes)}
        unknown = [c for c in self.classes if c not in pos]
        if unknown:
            raise DataError(f"Snapshot 'classes' contains {unknown[0]!r}, which is not a campaign class.")
        cols = [pos[c] for c in self.classes]

        def pad(a: np.ndarray) -> np.ndarray:
            out = np.zeros(a.shape[:-1] + (len(classes),), dtype=a.dtype)
            out[..., cols] = a
            return out

        return Snapshot(
            ids=self.ids,
            probs=pad(self.probs),
            embeddings=self.embeddings,
            samples=None if self.samples is None else pad(self.samples),
            dynamics=self.dynamics,
            classes=list(classes),
            loop=self.loop,
            task=self.task,
        )

    # ---- persistence (Parquet; no pickles) -----------------------------------------------------
    def to_arrow(self) -> Any:
        """An Arrow table: ``id``, fixed-size-list columns ``probs``/``embeddings``/``samples``/``dyn:*``."""
        import pyarrow as pa

        def fixed(a: np.ndarray) -> pa.Array:
            return fixed_size_list(a.reshape(a.shape[0], int(np.prod(a.shape[1:])) if a.ndim > 1 else 1))

        cols: dict[str, pa.Array] = {
            "id": arrow_ids(self.ids),
            "probs": fixed(self.probs),
        }
        if self.embeddings is not None:
            cols["embeddings"] = fixed(self.embeddings)
        if self.samples is not None:
            cols["samples"] = fixed(np.moveaxis(self.samples, 0, 1))
        for name, arr in (self.dynamics or {}).items():
            cols[f"dyn:{name}"] = fixed(arr.reshape(arr.shape[0], int(np.prod(arr.shape[1:]))))  # -1 fails when n = 0
        meta = {
            "alloop.snapshot": json.dumps(
                {
                    "classes": self.classes,
                    "loop": self.loop,
                    "task": self.task,
                    "n_samples": None if self.samples is None else int(self.samples.shape[0]),
                    "dynamics_ndim": {k: int(v.ndim) for k, v in (self.dynamics or {}).items()},
                    "version": 1,
                }
            )
        }
        return pa.table(cols).replace_schema_metadata(meta)

    def to_parquet(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically (temp file + rename) so a crash never leaves half a file."""
        import pyarrow.parquet as pq

        table = self.to_arrow()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, path)
        return path

    @classmethod
    def from_parquet(cls, path: str | os.PathLike[str]) -> Snapshot:
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (OSError, ValueError) as exc:
            raise DataError(f"Could not read snapshot file {str(path)!r}: {exc}") from exc
        return cls.from_arrow(table, where=repr(str(path)))

    @classmethod
    def from_arrow(cls, table: Any, *, where: str = "the Arrow table") -> Snapshot:
        """Read a table written by :meth:`to_arrow`; every problem is a DataError naming the column."""
        import pyarrow as pa

        raw = (table.schema.metadata or {}).get(b"alloop.snapshot")
        if raw is None:
            raise DataError(f"{where} is not an alloop snapshot (no 'alloop.snapshot' schema metadata).")
        for name in ("id", "probs"):
            if name not in table.column_names:
                raise DataError(f"{where} has no {name!r} column; columns are {table.column_names}.")
        meta = json.loads(raw)
        n = table.num_rows

        def unfixed(name: str) -> np.ndarray:
            col = table.column(name).combine_chunks()
            if not hasattr(col.type, "list_size"):
                raise DataError(
                    f"Column {name!r} of {where} must be a fixed-size list of floats (one list per record); "
                    f"got {col.type}."
                )
            width = col.type.list_size
            if col.null_count:
                raise DataError(f"Column {name!r} of {where} has {col.null_count} null row(s); every record needs one.")
            values = col.flatten()
            if not pa.types.is_floating(values.type) and not pa.types.is_integer(values.type):
                raise DataError(f"Column {name!r} of {where} must hold numbers; got {col.type}.")
            return numpy_numbers(values).reshape(n, width)

        ids = _id_column(table.column("id"), where)
        probs = unfixed("probs")
        emb = unfixed("embeddings") if "embeddings" in table.column_names else None
        samples = None
        if "samples" in table.column_names:
            s = int(meta["n_samples"])
            samples = np.moveaxis(unfixed("samples").reshape(n, s, -1), 1, 0)
        dyn = {}
        for name in table.column_names:
            if name.startswith("dyn:"):
                key = name[4:]
                arr = unfixed(name)
                dyn[key] = arr[:, 0] if meta["dynamics_ndim"].get(key) == 1 else arr
        return cls(
            ids=ids,
            probs=probs,
            embeddings=emb,
            samples=samples,
            dynamics=dyn or None,
            classes=meta.get("classes"),
            loop=meta.get("loop"),
            task=meta.get("task", "classification"),
        )
