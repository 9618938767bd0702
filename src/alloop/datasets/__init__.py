"""Data sets: bundled ones by name, and user files (``.npz``, ``.csv``, ``.parquet``, ``.jsonl``, image folders).

>>> ds = load_dataset("wine")
>>> ds.name, ds.n_samples, len(ds.classes)
('wine', 178, 3)
"""

from alloop.datasets._dataset import Dataset
from alloop.datasets._loaders import BUILTIN, TEXT_BUILTIN, load_dataset
from alloop.datasets._more import load_image_folder, load_jsonl, load_reviews

__all__ = ["BUILTIN", "TEXT_BUILTIN", "Dataset", "load_dataset", "load_image_folder", "load_jsonl", "load_reviews"]
