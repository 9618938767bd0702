"""Texts and images: the bundled reviews, JSONL files of texts, CSV/Parquet text columns, image folders."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from alloop.datasets._dataset import Dataset
from alloop.errors import ConfigError, DataError

__all__ = ["IMAGE_EXTENSIONS", "TEXT_COLUMN", "load_image_folder", "load_jsonl", "load_reviews", "text_dataset"]

TEXT_COLUMN = "text"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
REVIEW_PARTS = ("all", "train", "test")


def text_dataset(texts: list[Any], y: np.ndarray, ids: np.ndarray, name: str, where: str) -> Dataset:
    """A text Dataset: ``X`` is the ``(n, 1)`` object column of texts; labels/ids checked as for tables."""
    from alloop.datasets._loaders import _finish

    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise DataError(
                f"{where}: the {TEXT_COLUMN!r} of record {i} is {type(t).__name__} ({t!r}); every record needs a text."
            )
    base = _finish(np.zeros((len(texts), 1)), y, ids, name, [TEXT_COLUMN], where)
    column = np.empty((len(texts), 1), dtype=object)
    column[:, 0] = texts
    return dataclasses.replace(base, X=column, kind="text")


REVIEWS_FILE = Path(__file__).resolve().parent / "data" / "reviews.parquet"


def load_reviews(part: str = "all") -> Dataset:
    """The Amazon fine-food reviews of the R package ``modeldata``, shipped inside alloop as Parquet.

    5,000 reviews (4,000 from 10 products in ``training_data``, 1,000 from 500 other products in
    ``testing_data``), labeled ``great`` (5 stars, 65 %) or ``other``. ``part`` is ``all`` (ids 0–4999: the
    training rows first), ``train`` (ids 0–3999) or ``test`` (ids 4000–4999). Read with pyarrow (a core
    dependency); no pickle is loaded and nothing is downloaded. ``alloop/datasets/_make_reviews.py`` says
    where the file comes from and how it was made.

    >>> ds = load_reviews("test")
    >>> ds.n_samples, ds.classes.tolist(), int(ds.ids[0])
    (1000, ['great', 'other'], 4000)
    """
    import pyarrow.parquet as pq

    if part not in REVIEW_PARTS:
        raise ConfigError(f"The 'part' parameter of load_reviews must be one of {REVIEW_PARTS}. Got {part!r}.")
    if not REVIEWS_FILE.is_file():
        raise DataError(
            f"The bundled reviews file {REVIEWS_FILE} is missing; reinstall alloop (pip install --force-reinstall "
            "alloop), or regenerate it with: python -m alloop.datasets._make_reviews"
        )
    table = pq.read_table(REVIEWS_FILE, columns=["id", "part", "label", "text"]).to_pydict()
    keep = [i for i, p in enumerate(table["part"]) if part == "all" or p == part]
    texts = [table["text"][i] for i in keep]
    labels = np.array([table["label"][i] for i in keep], dtype=object)
    ids = np.array([table["id"][i] for i in keep], dtype=np.int64)
    name = "reviews" if part == "all" else f"reviews-{part}"
    return text_dataset(texts, labels, ids, name, f"built-in data set {name!r}")


def load_jsonl(path: Path, target: str | None = None) -> Dataset:
    """A JSON-lines file: one object per line with a ``text``, a ``label`` (or ``target``), optionally an ``id``."""
    from alloop.datasets._loaders import ID_COLUMN, LABEL_COLUMN, _id_array

    where = f"file {str(path)!r}"
    label = target or LABEL_COLUMN
    texts: list[Any] = []
    labels: list[Any] = []
    ids: list[Any] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"Could not read {where}: {exc}") from exc
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}, line {lineno}: not valid JSON ({exc.msg}); write one object per line.") from None
        if not isinstance(obj, dict):
            raise DataError(f"{where}, line {lineno}: expected a JSON object like {{\"text\": ..., \"label\": ...}}.")
        for key in (TEXT_COLUMN, label):
            if key not in obj:
                fix = "; pass --target with the label key" if key == label and target is None else ""
                raise DataError(f"{where}, line {lineno}: no {key!r} key (keys: {sorted(obj)}){fix}.")
        if obj[label] is None:
            raise DataError(f"{where}, line {lineno}: the label {label!r} is null; every record needs a label.")
        texts.append(obj[TEXT_COLUMN])
        labels.append(obj[label])
        if ID_COLUMN in obj:
            ids.append(obj[ID_COLUMN])
    if ids and len(ids) != len(texts):
        raise DataError(f"{where}: some lines have an {ID_COLUMN!r} and some have not; give every line an id or none.")
    id_arr = _id_array(ids, where) if ids else np.arange(len(texts), dtype=np.int64)
    y = np.array(labels) if all(isinstance(v, int | float) and not isinstance(v, bool) for v in labels) else None
    if y is None:
        y = np.array([str(v) for v in labels], dtype=object)
    return text_dataset(texts, y, id_arr, path.name, where)


def load_image_folder(path: str | Path, *, size: tuple[int, int] | None = None, color: str = "L") -> Dataset:
    """A folder with one sub-folder per class, each holding images (PNG, JPEG, …).

    size   ``(width, height)`` every image is resized to; by default all images must share the first
           image's size
    color  ``L`` (grey, 1 channel) or ``RGB`` (3 channels)

    Ids are the paths relative to the folder (``"cat/001.png"``); labels are the sub-folder names; rows of
    ``X`` are the pixels scaled to [0, 1], flattened channel-first, and ``image_shape`` is
    ``(channels, height, width)``.
    """
    from PIL import Image, UnidentifiedImageError

    root = Path(path)
    where = f"image folder {str(root)!r}"
    if color not in ("L", "RGB"):
        raise ConfigError(f"The 'color' parameter of load_image_folder must be 'L' or 'RGB'. Got {color!r}.")
    if not root.is_dir():
        raise DataError(f"{where} does not exist or is not a folder.")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not class_dirs:
        raise DataError(f"{where} has no sub-folders; put the images of each class in a sub-folder named after it.")
    files: list[tuple[Path, str]] = []
    for d in class_dirs:
        files += [(f, d.name) for f in sorted(d.iterdir()) if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS]
    if not files:
        raise DataError(f"{where} holds no image ({', '.join(IMAGE_EXTENSIONS)}) in its class sub-folders.")
    rows = []
    want: tuple[int, int] | None = (int(size[0]), int(size[1])) if size is not None else None
    for f, _ in files:
        try:
            with Image.open(f) as opened:
                img = opened.convert(color)
                if want is None:
                    want = img.size
                elif img.size != want:
                    if size is None:
                        raise DataError(
                            f"{where}: {f.relative_to(root)} is {img.size[0]}x{img.size[1]} but the first image is "
                            f"{want[0]}x{want[1]}; pass size=(width, height) to resize them all."
                        )
                    img = img.resize(want)
                arr = np.asarray(img, dtype=np.float64) / 255.0
        except (OSError, UnidentifiedImageError) as exc:
            raise DataError(f"{where}: cannot read {f.relative_to(root)} as an image: {exc}") from None
        rows.append(arr.reshape(arr.shape[0], arr.shape[1], -1).transpose(2, 0, 1).reshape(-1))
    assert want is not None
    channels = 1 if color == "L" else 3
    X = np.stack(rows)
    y = np.array([label for _, label in files], dtype=object)
    ids = np.array([f.relative_to(root).as_posix() for f, _ in files], dtype=object)
    features = [f"c{c}_y{i}_x{j}" for c in range(channels) for i in range(want[1]) for j in range(want[0])]
    from alloop.datasets._loaders import _finish

    ds = _finish(X, y, ids, root.name, features, where)
    return dataclasses.replace(ds, kind="image", image_shape=(channels, int(want[1]), int(want[0])))
