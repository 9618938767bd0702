"""``alloop label-sim``: the exact crowd-consensus simulation (registered in :mod:`alloop.cli`).

The protocol is documented in :mod:`alloop.labeling.labelsim`; other tools compare numbers with its JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from alloop._cli_errors import fail
from alloop.errors import AlloopError, ConfigError

__all__ = ["label_sim_command", "parse_accuracy", "render_label_sim_table"]


def parse_accuracy(text: str) -> tuple[float, float]:
    """``"0.55:0.95"`` → ``(0.55, 0.95)``; a single number means every annotator has that accuracy."""
    parts = text.split(":")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2:
        raise ConfigError(f"The '--accuracy' option must be LO:HI, e.g. 0.55:0.95. Got {text!r}.")
    return values[0], values[1]


def render_label_sim_table(result: dict[str, Any]) -> Table:
    """The summary table of a :func:`alloop.labeling.labelsim.simulate_labels` result."""
    p = result["protocol"]
    lo, hi = p["accuracy"]
    table = Table(
        title=(
            f"{p['items']} items · {p['classes']} classes · {p['annotators']} annotators ({lo:g}–{hi:g}) · "
            f"redundancy {p['redundancy']} · {p['seeds']} seed(s)"
        )
    )
    for name in ("method", "accuracy mean ± std", "judgements / item", "note"):
        table.add_column(name, justify="left" if name in ("method", "note") else "right")
    for method, r in result["results"].items():
        note = ""
        if method == "dynamic":
            note = (
                f"aggregated with {r['aggregator']}; target {p['target_confidence']:g}, cap {p['redundancy']}; "
                f"{100 * r['review_fraction_mean']:.1f}% flagged for review"
            )
        table.add_row(
            escape(method), f"{r['accuracy_mean']:.4f} ± {r['accuracy_std']:.4f}", f"{r['judgements_mean']:.3f}", note
        )
    return table


def label_sim_command(
    json_out: Annotated[Path, typer.Option("--json", help="Where to write the JSON result.")],
    method: Annotated[
        list[str],
        typer.Option("--method", help="majority, dawid-skene, one-coin or dynamic; repeat to compare several."),
    ],
    items: Annotated[int, typer.Option("--items", help="Number of items.")] = 1000,
    classes: Annotated[int, typer.Option("--classes", help="Number of classes (true labels uniform).")] = 5,
    annotators: Annotated[int, typer.Option("--annotators", help="Number of annotators.")] = 10,
    accuracy: Annotated[
        str, typer.Option("--accuracy", help="Annotator accuracies np.linspace(LO, HI, annotators), as LO:HI.")
    ] = "0.55:0.95",
    redundancy: Annotated[int, typer.Option("--redundancy", help="Judgements per item (for dynamic: the cap).")] = 3,
    target_confidence: Annotated[
        float, typer.Option("--target-confidence", help="Dynamic overlap stops asking at this posterior confidence.")
    ] = 0.95,
    seeds: Annotated[int, typer.Option("--seeds", help="Number of seeds (0 … S-1).")] = 20,
    dynamic_aggregator: Annotated[
        str, typer.Option("--dynamic-aggregator", help="Consensus method used by dynamic overlap.")
    ] = "one-coin",
) -> None:
    """Simulate a crowd and compare consensus methods (exact, seeded protocol; see docs/labeling.md)."""
    from alloop.labeling.labelsim import simulate_labels

    console = Console()
    try:
        lo, hi = parse_accuracy(accuracy)
        methods = list(dict.fromkeys(method))
        with Progress(
            TextColumn("[bold]label-sim[/] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("", total=max(1, seeds * len(methods)))

            def tick(name: str, seed: int) -> None:
                progress.update(task, advance=1, description=f"{name} · seed {seed}")

            result = simulate_labels(
                items=items,
                classes=classes,
                annotators=annotators,
                accuracy=(lo, hi),
                redundancy=redundancy,
                methods=methods,
                target_confidence=target_confidence,
                seeds=seeds,
                dynamic_aggregator=dynamic_aggregator,
                progress=tick,
            )
        console.print(render_label_sim_table(result))
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2) + "\n")
        console.print(f"Wrote {escape(str(json_out))}")
    except AlloopError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"Could not write the output: {exc}. Check --json.")
