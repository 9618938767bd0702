"""The ``Dataset`` container shared by every loader."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Dataset"]


@dataclass(frozen=True, eq=False)
class Dataset:
    """A labeled table, ready for a simulation.

    X              (n, d) float64 features; for text data an (n, 1) object array of texts
    y              (n,) labels (ints or strings)
    ids            (n,) record ids: int64 row numbers 0..n-1 unless the file has an ``id`` column
    name           the built-in name or the file name
    feature_names  one name per column of ``X``
    classes        sorted unique values of ``y``
    kind           ``tabular``, ``image`` (rows of X are flattened pixels in [0, 1]) or ``text``
    image_shape    ``(channels, height, width)`` of each image, for image data
    """

    X: np.ndarray
    y: np.ndarray
    ids: np.ndarray
    name: str
    feature_names: tuple[str, ...]
    classes: np.ndarray
    kind: str = "tabular"
    image_shape: tuple[int, int, int] | None = None

    @property
    def n_samples(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def texts(self) -> list[str]:
        """The texts of a text data set (one per record)."""
        if self.kind != "text":
            from alloop.errors import DataError

            raise DataError(f"Data set {self.name!r} holds {self.kind} data, not texts.")
        return [str(v) for v in self.X[:, 0].tolist()]

    def __repr__(self) -> str:
        return (
            f"Dataset(name={self.name!r}, kind={self.kind!r}, n_samples={self.n_samples}, "
            f"n_features={self.n_features}, classes={self.classes.tolist()!r})"
        )
