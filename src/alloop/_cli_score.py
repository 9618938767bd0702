"""``alloop score``: rank a snapshot of any size and write the top k (registered in :mod:`alloop.cli`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from alloop._cli_errors import fail
from alloop.errors import AlloopError

__all__ = ["ClusterOption", "score_command"]

#: The ``--cluster`` option, shared with ``alloop simulate`` and ``alloop serve``.
ClusterOption = Annotated[
    str | None,
    typer.Option(
        "--cluster",
        help="Run on Dask: 'local', 'local:N' or 'tcp://host:port' (default: $ALLOOP_DASK_SCHEDULER, else "
        "this process). Needs pip install 'alloop\\[dask]'.",
    ),
]


def score_command(
    data: Annotated[
        str, typer.Option("--data", help="Snapshot Parquet file, directory or glob: 'id' plus class probabilities.")
    ],
    strategy: Annotated[str, typer.Option("--strategy", help="Strategy spec, e.g. margin or random(seed=3).")],
    k: Annotated[int, typer.Option("--k", help="How many records to select.")],
    out: Annotated[Path, typer.Option("--out", help="Output Parquet: id, score, rank (1 = label first).")],
    cluster: ClusterOption = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for stochastic strategies (the context's seed).")] = 0,
) -> None:
    """Score a (sharded) snapshot and write the k records to label first."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from alloop.scale import score_top_k

    console = Console(stderr=True)
    try:
        sel = score_top_k(data, strategy, k, cluster=cluster, seed=seed)
        table = pa.table(
            {
                "id": pa.array(sel.ids),
                "score": pa.array(sel.scores, type=pa.float64()),
                "rank": pa.array(np.arange(1, sel.ids.size + 1, dtype=np.int64)),
            }
        )
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = str(out) + ".tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, out)
        note = "" if sel.exact else " (two-stage diversity: approximate across partitions)"
        console.print(
            f"Selected {sel.ids.size} of {sel.n_records} records with {escape(sel.strategy)}{note}; "
            f"wrote {escape(str(out))}"
        )
    except AlloopError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"Could not read the data or write the output: {exc}")
