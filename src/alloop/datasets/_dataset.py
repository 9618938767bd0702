"""The ``Dataset`` container shared by every loader."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Dataset"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labeled table, ready for a simulation.

    X              (n, d) float64 features
    y              (n,) labels (ints or strings)
    ids            (n,) record ids: int64 row numbers 0..n-1 unless the file has an ``id`` column
    name           the built-in name or the file name
    feature_names  one name per column of ``X``
    classes        sorted unique values of ``y``
    """

    X: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    name: str
    feature_names: tuple[str, ...]
    classes: np.ndarray

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, n_samples={self.n_samples}, n_features={self.n_features}, "
            f"classes={self.classes.tolist()!r})"
        )
