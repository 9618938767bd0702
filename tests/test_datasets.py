"""Data set loaders: built-ins and small .npz/.csv/.parquet files."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alloop.datasets import Dataset, load_dataset
from alloop.errors import ConfigError, DataError


@pytest.mark.parametrize(
    ("name", "shape", "n_classes"),
    [("digits", (1797, 64), 10), ("breast_cancer", (569, 30), 2), ("wine", (178, 13), 3), ("iris", (150, 4), 3)],
)
def test_builtin_data_sets(name, shape, n_classes):
    ds = load_dataset(name)
    assert isinstance(ds, Dataset)
    assert ds.X.shape == shape and ds.X.dtype == np.float64
    assert ds.y.shape == (shape[0],)
    np.testing.assert_array_equal(ds.ids, np.arange(shape[0]))
    assert ds.ids.dtype == np.int64
    assert ds.classes.tolist() == list(range(n_classes))
    assert len(ds.feature_names) == shape[1] and ds.name == name


def test_dataset_is_frozen():
    ds = load_dataset("iris")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"  # type: ignore[misc]


def test_target_with_a_builtin_is_a_config_error():
    with pytest.raises(ConfigError, match="'target'"):
        load_dataset("iris", target="species")


def test_npz_round_trip(tmp_path):
    X = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0], [6.0, 7.0]])
    path = tmp_path / "small.npz"
    np.savez(path, X=X, y=np.array([1, 0, 1, 0]))
    ds = load_dataset(str(path))
    np.testing.assert_array_equal(ds.X, X)
    assert ds.y.tolist() == [1, 0, 1, 0]
    assert ds.ids.tolist() == [0, 1, 2, 3]
    assert ds.classes.tolist() == [0, 1]
    assert ds.name == "small.npz" and ds.feature_names == ("x0", "x1")


def test_npz_with_other_label_array_and_ids(tmp_path):
    path = tmp_path / "t.npz"
    np.savez(path, X=np.eye(3), cls=np.array(["b", "a", "b"]), id=np.array([10, 20, 30]))
    ds = load_dataset(str(path), target="cls")
    assert ds.classes.tolist() == ["a", "b"]
    assert ds.ids.tolist() == [10, 20, 30]


def test_npz_missing_label_array_lists_the_arrays(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, X=np.eye(3), labels=np.array([0, 1, 0]))
    with pytest.raises(DataError) as info:
        load_dataset(str(path))
    msg = str(info.value)
    assert "'y'" in msg and "labels" in msg and "bad.npz" in msg


def _csv(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_csv_with_label_and_id_columns(tmp_path):
    path = _csv(tmp_path, "id,a,label,b\n7,1.5,x,2\n3,2.5,y,4\n9,3.5,x,6\n")
    ds = load_dataset(path)
    assert ds.feature_names == ("a", "b")
    np.testing.assert_array_equal(ds.X, [[1.5, 2.0], [2.5, 4.0], [3.5, 6.0]])
    assert ds.y.tolist() == ["x", "y", "x"]
    assert ds.ids.tolist() == [7, 3, 9]
    assert ds.classes.tolist() == ["x", "y"]


def test_csv_target_column(tmp_path):
    path = _csv(tmp_path, "a,kind\n1,0\n2,1\n3,1\n")
    ds = load_dataset(path, target="kind")
    assert ds.feature_names == ("a",) and ds.y.tolist() == [0, 1, 1]
    np.testing.assert_array_equal(ds.ids, [0, 1, 2])


def test_csv_missing_label_column_lists_the_columns(tmp_path):
    path = _csv(tmp_path, "a,b,kind\n1,2,0\n3,4,1\n")
    with pytest.raises(DataError) as info:
        load_dataset(path)
    msg = str(info.value)
    assert "'label'" in msg and "['a', 'b', 'kind']" in msg and "--target" in msg


def test_csv_non_numeric_feature_column_is_named(tmp_path):
    path = _csv(tmp_path, "a,colour,label\n1,red,0\n2,blue,1\n")
    with pytest.raises(DataError, match="'colour' is not numeric"):
        load_dataset(path)


def test_csv_nan_in_features_names_column_and_row(tmp_path):
    path = _csv(tmp_path, "a,b,label\n1,2,0\n3,,1\n5,6,1\n")
    with pytest.raises(DataError, match=r"'b' has a NaN.*row 1"):
        load_dataset(path)


def test_fewer_than_two_classes(tmp_path):
    path = _csv(tmp_path, "a,label\n1,0\n2,0\n")
    with pytest.raises(DataError, match="at least 2"):
        load_dataset(path)


def test_duplicate_ids_are_rejected(tmp_path):
    path = _csv(tmp_path, "id,a,label\n1,1,0\n1,2,1\n")
    with pytest.raises(DataError, match="duplicate"):
        load_dataset(path)


def test_parquet_round_trip(tmp_path):
    path = tmp_path / "d.parquet"
    table = pa.table({"f1": [0.1, 0.2, 0.3, 0.4], "f2": [1, 2, 3, 4], "y": ["no", "yes", "no", "yes"]})
    pq.write_table(table, path)
    ds = load_dataset(str(path), target="y")
    assert ds.feature_names == ("f1", "f2")
    np.testing.assert_array_equal(ds.X[:, 1], [1.0, 2.0, 3.0, 4.0])
    assert ds.classes.tolist() == ["no", "yes"]


def test_parquet_string_feature_is_rejected(tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"f": ["a", "b"], "label": [0, 1]}), path)
    with pytest.raises(DataError, match="'f' is not numeric"):
        load_dataset(str(path))


def test_missing_file_names_the_path(tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(DataError, match="does not exist") as info:
        load_dataset(str(missing))
    assert "nope.csv" in str(info.value)


def test_unknown_extension_and_unknown_name(tmp_path):
    with pytest.raises(DataError, match=r"\.xlsx"):
        load_dataset(str(tmp_path / "data.xlsx"))
    with pytest.raises(DataError, match="Did you mean 'digits'"):
        load_dataset("digit")
