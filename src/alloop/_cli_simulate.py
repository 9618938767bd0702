"""``alloop simulate``: compare strategies on labeled data (registered in :mod:`alloop.cli`)."""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from alloop._cli_errors import fail
from alloop._cli_score import ClusterOption
from alloop.errors import AlloopError, ConfigError

__all__ = ["render_table", "simulate_command"]


def _p(value: float | None) -> str:
    return "—" if value is None else f"{value:.2g}"


def render_table(result: dict[str, Any]) -> Group:
    """The summary of a :func:`alloop.bench.simulate` result: AUBC and the paired comparison with the baseline,
    then (when reported) the compute used. Fits an 80-column console: numbers never wrap or get cut."""
    proto = result["protocol"]
    results = result["results"]
    table = Table(
        title=(
            f"{escape(str(proto['data']))} · {escape(proto['model'])} · initial {proto['initial']}, batch "
            f"{proto['batch']}, budget {proto['budget']}, {proto['seeds']} seed(s), test size {proto['test_size']}"
        ),
        box=box.SIMPLE_HEAD,
        collapse_padding=True,
    )
    table.add_column("strategy", ratio=1, min_width=10, overflow="fold")
    for name in (
        "AUBC\nmean",
        "\n± std",
        "final\nacc.",
        "Δ AUBC\nmean",
        "\n± std",
        "p\nt-test",
        "p\nWilcoxon",
        "\ns",
    ):
        table.add_column(name, justify="right", no_wrap=True)
    for spec, r in results.items():
        pv = r["paired_vs"]
        paired = (
            ["baseline", "", "", ""]
            if pv is None
            else [
                f"{pv['aubc_diff_mean']:+.4f}",
                f"{pv['aubc_diff_std']:.4f}",
                _p(pv["t_pvalue"]),
                _p(pv["wilcoxon_pvalue"]),
            ]
        )
        table.add_row(
            escape(spec),
            f"{r['aubc_mean']:.4f}",
            f"{r['aubc_std']:.4f}",
            f"{r['final_accuracy_mean']:.4f}",
            *paired,
            f"{r['seconds']:.1f}",
        )
    note = f"Δ: the paired difference of AUBC from {proto['baseline']} (the baseline); mean and std over seeds."
    parts: list[Any] = [table, Text(note, style="dim")]
    if any("compute" in r for r in results.values()):
        comp = Table(title="Compute (CPU seconds, all seeds)", box=box.SIMPLE_HEAD, collapse_padding=True)
        comp.add_column("strategy", ratio=1, min_width=8)
        for name in ("used", "from scratch ≈", "× less"):
            comp.add_column(name, justify="right", no_wrap=True)
        for spec, r in results.items():
            if "compute" in r:
                fs = r["compute"].get("from_scratch") or {}
                x = fs.get("cpu_x")
                comp.add_row(
                    escape(spec),
                    f"{r['compute']['cpu_s']:.2f}",
                    f"{fs.get('cpu_s', float('nan')):.2f}",
                    "—" if x is None else f"{x:.1f}×",
                )
        parts.append(comp)
    return Group(*parts)


def simulate_command(
    data: Annotated[
        str,
        typer.Option(
            "--data", help="Built-in data set (digits, breast_cancer, wine, iris) or a .npz/.csv/.parquet path."
        ),
    ],
    json_out: Annotated[Path, typer.Option("--json", help="Where to write the JSON result.")],
    strategy: Annotated[
        list[str],
        typer.Option(
            "--strategy", help="Strategy spec; repeat to compare several, e.g. --strategy margin --strategy random."
        ),
    ],
    model: Annotated[str, typer.Option("--model", help="Built-in model name.")] = "logreg",
    initial: Annotated[int, typer.Option("--initial", help="Size of the initial labeled set.")] = 20,
    batch: Annotated[int, typer.Option("--batch", help="Labels per loop.")] = 10,
    budget: Annotated[int, typer.Option("--budget", help="Total labels, initial set included.")] = 200,
    seeds: Annotated[int, typer.Option("--seeds", help="Number of seeds (0 … S-1), each with its own split.")] = 5,
    test_size: Annotated[float, typer.Option("--test-size", help="Fraction held out for accuracy.")] = 0.3,
    plot: Annotated[Path | None, typer.Option("--plot", help="Also write learning curves to this PNG.")] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="Label column of a .csv/.parquet file (default 'label').")
    ] = None,
    cluster: ClusterOption = None,
    compute_saving: Annotated[
        str | None,
        typer.Option(
            "--compute-saving",
            help="off or on: report the compute used (per strategy, 'compute' in the JSON); on also warm-starts "
            "training and re-infers only where it can change the selection (docs/compute.md).",
        ),
    ] = None,
    embeddings: Annotated[
        str,
        typer.Option(
            "--embeddings",
            help="none or features: also give the engine the input features (standardised) as embeddings, which "
            "core-set, k-means, BADGE and other diversity strategies need and auto uses.",
        ),
    ] = "none",
) -> None:
    """Simulate campaigns on labeled data and compare strategies by AUBC (paired over seeds)."""
    from alloop.bench import plot_learning_curves, simulate

    console = Console()
    try:
        if compute_saving not in (None, "off", "on"):
            raise ConfigError(f"--compute-saving must be 'off' or 'on'. Got {compute_saving!r}.")
        if cluster is not None or os.environ.get("ALLOOP_DASK_SCHEDULER"):
            from alloop.scale import run_simulation_on_cluster

            run: Any = partial(
                run_simulation_on_cluster, cluster=cluster, compute_saving=compute_saving, embeddings=embeddings
            )
        else:
            run = partial(simulate, compute_saving=compute_saving, embeddings=embeddings)
        result = run(
            data,
            model=model,
            strategies=list(strategy),
            initial=initial,
            batch=batch,
            budget=budget,
            seeds=seeds,
            test_size=test_size,
            target=target,
            progress=True,
        )
        console.print(render_table(result))
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2) + "\n")
        console.print(f"Wrote {escape(str(json_out))}")
        if plot is not None:
            plot_learning_curves(result, plot)
            console.print(f"Wrote {escape(str(plot))}")
    except AlloopError as exc:
        fail(str(exc))
    except OSError as exc:  # e.g. the JSON or plot path is not writable
        fail(f"Could not write the output: {exc}. Check the --json/--plot paths.")
