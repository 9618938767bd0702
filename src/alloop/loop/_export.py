"""Export the labeled set with its provenance."""

from __future__ import annotations

import os
from pathlib import Path

from alloop.errors import ConfigError
from alloop.store import CampaignStore

__all__ = ["EXPORT_COLUMNS", "export_labels"]

EXPORT_COLUMNS = ("id", "label", "source", "annotator", "posterior", "loop", "model_version")


def export_labels(directory: str | os.PathLike[str], out: str | os.PathLike[str]) -> int:
    """Write every label of the campaign in ``directory`` to ``out`` (.parquet or .csv); returns the row count."""
    import pyarrow as pa

    out = Path(out)
    if out.suffix not in (".parquet", ".csv"):
        raise ConfigError(f"The 'out' parameter of export must end in .parquet or .csv. Got {str(out)!r}.")
    store = CampaignStore(directory)
    try:
        pool = store.load_pool()
        ids = pool.all_ids()
        rows = store.labels()
    finally:
        store.close()
    table = pa.table(
        {
            "id": pa.array([ids[r["idx"]].item() if hasattr(ids[r["idx"]], "item") else ids[r["idx"]] for r in rows]),
            "label": pa.array([r["label"] for r in rows]),
            "source": pa.array([r["source"] for r in rows], type=pa.string()),
            "annotator": pa.array([r["annotator"] for r in rows], type=pa.string()),
            "posterior": pa.array([r["posterior"] for r in rows], type=pa.float64()),
            "loop": pa.array([r["loop"] for r in rows], type=pa.int64()),
            "model_version": pa.array([r["model_version"] for r in rows], type=pa.string()),
        }
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, out)
    else:
        import pyarrow.csv as pcsv

        pcsv.write_csv(table, out)
    return table.num_rows
