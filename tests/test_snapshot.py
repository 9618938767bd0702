"""Snapshot: validation with messages that name the field, Parquet round-trips, class alignment."""

from __future__ import annotations

import numpy as np
import pytest

from alloop.errors import DataError
from alloop.metadata import Snapshot

P = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [1 / 3, 1 / 3, 1 / 3]])


def _samples(n_samples: int = 2) -> np.ndarray:
    return np.stack([P] * n_samples)


@pytest.mark.parametrize(
    ("kwargs", "field", "fragment"),
    [
        ({"probs": np.where(np.eye(3, dtype=bool), np.nan, P)}, "'probs'", "NaN or infinite value at position (0, 0)"),
        ({"probs": np.array([[1.2, -0.2, 0.0], *P[1:]])}, "'probs'", "negative value"),
        ({"probs": np.array([[0.7, 0.2, 0.2], *P[1:]])}, "'probs'", "row 0 (id 1) sums to 1.1"),
        ({"probs": P[:2]}, "'probs'", "shape (n_ids=3, n_classes); got (2, 3)"),
        ({"probs": P[:, 0]}, "'probs'", "got (3,)"),
        ({"probs": P.astype(str)}, "'probs'", "must be numeric"),
        ({"embeddings": np.ones((2, 4))}, "'embeddings'", "shape (n_ids=3, dim); got (2, 4)"),
        ({"embeddings": np.ones(3)}, "'embeddings'", "got (3,)"),
        ({"embeddings": np.full((3, 2), np.inf)}, "'embeddings'", "NaN or infinite"),
        ({"samples": P}, "'samples'", "(n_samples, n_ids=3, n_classes=3); got (3, 3)"),
        ({"samples": np.ones((2, 3, 2)) / 2}, "'samples'", "got (2, 3, 2)"),
        ({"samples": -_samples()}, "'samples'", "negative value"),
        ({"samples": _samples() * np.nan}, "'samples'", "NaN or infinite"),
        ({"ids": [1, 2, 1]}, "'ids'", "unique"),
        ({"ids": [1, "b", 3]}, "'ids'", "mixes int and string ids"),
        ({"ids": [1.5, 2, 3]}, "'ids'", "found 1.5"),
        ({"classes": ["a", "b"]}, "'classes'", "2 entries but 'probs' has 3 columns"),
        ({"classes": ["a", "b", "a"]}, "'classes'", "unique"),
        ({"dynamics": {"loss": np.ones(2)}}, "'dynamics['loss']'", "got (2,)"),
        ({"task": "regression"}, "'task'", "must be one of"),
    ],
)
def test_validation_errors_name_the_field(kwargs, field, fragment):
    args = {"ids": [1, 2, 3], "probs": P, **kwargs}
    with pytest.raises(DataError) as info:
        Snapshot(**args)
    msg = str(info.value)
    assert field in msg, msg
    assert fragment in msg, msg


def test_probability_tolerance_and_dtypes():
    nearly = P + np.array([[5e-4, 0, 0], [0, 0, 0], [0, 0, 0]])
    assert Snapshot(ids=[1, 2, 3], probs=nearly).probs is not None  # within 1e-3 is accepted
    assert Snapshot(ids=[1, 2, 3], probs=P).probs.dtype == np.float64
    assert Snapshot(ids=[1, 2, 3], probs=P.astype(np.float16)).probs.dtype == np.float32
    assert Snapshot(ids=[1, 2], probs=np.eye(2, dtype=np.int64)).probs.dtype == np.float32
    s = Snapshot(ids=["a", "b", "c"], probs=P, embeddings=np.ones((3, 2)), samples=_samples())
    assert s.available == {"probs", "embeddings", "samples"} and s.n_records == 3 and s.n_classes == 3


def _full(ids, dtype) -> Snapshot:
    rng = np.random.default_rng(4)
    n = len(ids)
    samples = rng.dirichlet(np.ones(3), size=(5, n)).astype(dtype)
    return Snapshot(
        ids=ids,
        probs=samples.mean(axis=0),
        embeddings=rng.normal(size=(n, 7)).astype(dtype),
        samples=samples,
        dynamics={"loss": rng.random(n).astype(dtype), "confidence": rng.random((n, 4)).astype(dtype)},
        classes=["cat", "dog", "eel"],
        loop=12,
    )


@pytest.mark.parametrize("ids", [[5, 3, 9, 1], ["r9", "r1", "r5", "r3"]], ids=["int-ids", "str-ids"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_parquet_round_trip_with_every_part(tmp_path, ids, dtype):
    snap = _full(ids, dtype)
    path = snap.to_parquet(tmp_path / "snapshots" / "loop-0012.parquet")
    assert path.exists() and not path.with_suffix(".parquet.tmp").exists()
    back = Snapshot.from_parquet(path)
    assert back.ids.tolist() == ids and back.ids.dtype == snap.ids.dtype
    for name in ("probs", "embeddings", "samples"):
        a, b = getattr(snap, name), getattr(back, name)
        assert b.dtype == dtype and b.shape == a.shape and np.array_equal(a, b), name
    assert back.dynamics.keys() == snap.dynamics.keys()
    for key, value in snap.dynamics.items():
        got = back.dynamics[key]
        assert got.dtype == dtype and got.shape == value.shape and np.array_equal(got, value), key
    assert back.classes == ["cat", "dog", "eel"] and back.loop == 12 and back.task == "classification"


def test_parquet_round_trip_probs_only(tmp_path):
    snap = Snapshot(ids=[7, 8, 9], probs=P)
    back = Snapshot.from_parquet(snap.to_parquet(tmp_path / "s.parquet"))
    assert back.available == {"probs"} and back.embeddings is None and back.samples is None
    assert back.dynamics is None and back.classes is None and back.loop is None
    assert np.array_equal(back.probs, P) and back.ids.tolist() == [7, 8, 9]


def test_reading_a_foreign_or_missing_file_is_a_data_error(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    with pytest.raises(DataError, match="Could not read snapshot file"):
        Snapshot.from_parquet(tmp_path / "missing.parquet")
    pq.write_table(pa.table({"id": [1]}), tmp_path / "other.parquet")
    with pytest.raises(DataError, match="not an alloop snapshot"):
        Snapshot.from_parquet(tmp_path / "other.parquet")


def test_aligned_to_reorders_and_pads_absent_classes_with_zero():
    snap = Snapshot(ids=[1, 2, 3], probs=P, samples=_samples(2), classes=["b", "c", "a"])
    out = snap.aligned_to(["a", "b", "c", "d"])
    assert out.classes == ["a", "b", "c", "d"]
    expected = np.column_stack([P[:, 2], P[:, 0], P[:, 1], np.zeros(3)])
    assert np.array_equal(out.probs, expected)
    assert out.samples.shape == (2, 3, 4) and np.array_equal(out.samples[1], expected)
    assert snap.aligned_to(["b", "c", "a"]) is snap
    with pytest.raises(DataError, match="'z', which is not a campaign class"):
        Snapshot(ids=[1], probs=[[1.0]], classes=["z"]).aligned_to(["a", "b"])
    with pytest.raises(DataError, match="give Snapshot.classes"):
        Snapshot(ids=[1, 2, 3], probs=P).aligned_to(["a", "b"])


def test_subset_keeps_rows_of_every_part():
    snap = _full([5, 3, 9, 1], np.float32)
    sub = snap.subset(np.array([True, False, False, True]))
    assert sub.ids.tolist() == [5, 1]
    assert np.array_equal(sub.samples, snap.samples[:, [0, 3]])
    assert np.array_equal(sub.dynamics["confidence"], snap.dynamics["confidence"][[0, 3]])
    rows = snap.subset(slice(1, 3))  # a slice: views, equal to the same rows by index
    by_index = snap.subset(np.array([1, 2]))
    assert rows.ids.tolist() == [3, 9] and np.shares_memory(rows.probs, snap.probs)
    for name in ("probs", "embeddings", "samples"):
        assert np.array_equal(getattr(rows, name), getattr(by_index, name)), name
    assert np.array_equal(rows.dynamics["confidence"], by_index.dynamics["confidence"])


def test_parquet_round_trip_of_an_empty_pass(tmp_path):
    snap = Snapshot(ids=np.empty(0, dtype=np.int64), probs=np.empty((0, 3)), dynamics={"loss": np.empty(0)})
    back = Snapshot.from_parquet(snap.to_parquet(tmp_path / "empty.parquet"))
    assert back.n_records == 0 and back.probs.shape == (0, 3) and back.dynamics["loss"].shape == (0,)


def test_arrow_conversion_does_not_import_pandas():
    """pa.array(ndarray) imports pandas (~0.2 s in a fresh process); every upload chunk goes through to_arrow."""
    import subprocess
    import sys

    code = (
        "import sys, numpy as np\n"
        "from alloop import Snapshot\n"
        "s = Snapshot(ids=np.arange(3), probs=np.full((3, 2), 0.5, dtype=np.float32), embeddings=np.ones((3, 4)))\n"
        "t = s.to_arrow()\n"
        "assert Snapshot.from_arrow(t).probs.tolist() == s.probs.tolist()\n"
        "print('pandas' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
