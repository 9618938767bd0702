"""``alloop meta-train``: rebuild the learned selector from simulated campaigns (registered in :mod:`alloop.cli`)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from alloop._cli_errors import fail
from alloop.errors import AlloopError

__all__ = ["meta_train_command"]


def meta_train_command(
    out: Annotated[Path, typer.Option("--out", help="Where to write the selector JSON.")] = Path("selector.json"),
    seeds: Annotated[int, typer.Option("--seeds", help="Simulated campaigns per task family.")] = 6,
    workers: Annotated[int, typer.Option("--workers", help="Processes that run simulations in parallel.")] = 2,
    exclude: Annotated[
        list[str] | None, typer.Option("--exclude", help="Leave a task family out (repeatable).")
    ] = None,
    models: Annotated[
        list[str] | None,
        typer.Option("--model", help="Model class of the simulated campaigns (repeatable; default: all of MODELS)."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the task draws and of the fit.")] = 0,
    budget: Annotated[int, typer.Option("--budget", help="Labels per simulated campaign.")] = 100,
    lookahead: Annotated[int, typer.Option("--lookahead", help="Records evaluated by look-ahead per loop.")] = 16,
    cache: Annotated[
        Path | None, typer.Option("--cache", help="Directory that keeps each simulated campaign for reuse.")
    ] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            help="Run the campaigns as Dask tasks: 'local', 'local:N' or 'tcp://host:port' (default: "
            "ALLOOP_DASK_SCHEDULER when set, else --workers processes). Needs pip install 'alloop\\[dask]'.",
        ),
    ] = None,
) -> None:
    """Train the learned selector on synthetic task families (never on real data sets) and write it as JSON."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from alloop.engine.learned import FAMILIES, MODELS, meta_train
    from alloop.scale import resolve_cluster_spec

    console = Console(stderr=True)
    fams = [f for f in FAMILIES if f not in set(exclude or ())]
    chosen = list(models or MODELS)
    cluster = resolve_cluster_spec(cluster)
    start = time.perf_counter()
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            disable=not progress,
        ) as bar:
            task = bar.add_task("simulated campaigns", total=len(fams) * len(chosen) * seeds)
            sel = meta_train(
                exclude=list(exclude or ()),
                seeds=seeds,
                models=chosen,
                workers=workers,
                seed=seed,
                cache=cache,
                cluster=cluster,
                episode=None if (budget, lookahead) == (100, 16) else {"budget": budget, "lookahead": lookahead},
                progress=lambda fam: bar.update(task, advance=1, description=f"simulated campaigns · {fam}"),
            )
    except AlloopError as exc:
        fail(str(exc))
    sel.meta["command"] = (
        f"alloop meta-train --out {out} --seeds {seeds} --workers {workers} --seed {seed}"
        + (f" --cache {cache}" if cache else "")
        + "".join(f" --exclude {e}" for e in (exclude or ()))
        + "".join(f" --model {m}" for m in (models or ()))
        + ("" if (budget, lookahead) == (100, 16) else f" --budget {budget} --lookahead {lookahead}")
        + (f" --cluster {cluster}" if cluster else "")
    )
    sel.meta["seconds"] = round(time.perf_counter() - start, 1)
    sel.save(out)
    console.print(
        f"Wrote {out} ({sel.meta['n_examples']} look-ahead examples from {len(fams) * len(chosen) * seeds} campaigns, "
        f"{sel.meta['seconds']} s). Training rank correlation within loops per family: "
        f"{sel.meta['train_spearman_within_loop_per_family']}"
    )
