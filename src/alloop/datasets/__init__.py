"""Data sets: scikit-learn's bundled ones by name, and user files (``.npz``, ``.csv``, ``.parquet``).

>>> ds = load_dataset("wine")
>>> ds.name, ds.n_samples, len(ds.classes)
('wine', 178, 3)
"""

from alloop.datasets._dataset import Dataset
from alloop.datasets._loaders import BUILTIN, load_dataset

__all__ = ["BUILTIN", "Dataset", "load_dataset"]
