"""The ``alloop`` command line (Typer + rich). Commands translate arguments into library calls.

alloop demo [--resume]             the demo campaign on digits, embedded engine, SQLite store
alloop run CONFIG.toml [--resume] [--review]
alloop simulate --data … --strategy … --json OUT
alloop strategies [--json]
alloop export DIR --out labels.parquet|csv
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from alloop._cli_errors import friendly
from alloop._cli_label_sim import label_sim_command
from alloop._cli_meta_train import meta_train_command
from alloop._cli_models import models_command
from alloop._cli_report import report_command
from alloop._cli_score import score_command
from alloop._cli_simulate import simulate_command

__all__ = ["app", "main"]

app = typer.Typer(
    name="alloop",
    help="Active learning that learns how to select: SELECT → LABEL → TRAIN → INFER.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


app.command("simulate", help="Evaluate strategies on labeled data you already have (paired, seeded).")(simulate_command)
app.command("report", help="Show each loop of a campaign and when each stopping criterion would have fired.")(
    report_command
)
app.command("score", help="Rank a snapshot of any size and write the top k (Parquet); --cluster runs on Dask.")(
    score_command
)
app.command("meta-train", help="Rebuild the learned selector from simulated campaigns on synthetic task families.")(
    meta_train_command
)
app.command("models", help="List the built-in models (data kind, extra, metadata).")(models_command)
app.command("label-sim", help="Simulate a crowd and compare consensus methods (exact, seeded protocol).")(
    label_sim_command
)


@app.command()
@friendly
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Campaign directory.")] = Path("runs/demo"),
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the last demo campaign instead of starting afresh.")
    ] = False,
    strategy: Annotated[str, typer.Option("--strategy", help="Strategy to compare with random selection.")] = "auto",
    budget: Annotated[int, typer.Option("--budget", help="Total labels, initial set included.")] = 300,
    batch: Annotated[int, typer.Option("--batch", help="Labels per loop.")] = 20,
    engine: Annotated[
        str | None, typer.Option("--engine", help="URL of 'alloop serve' (default: the embedded engine).")
    ] = None,
    token: Annotated[
        str | None, typer.Option("--token", help="Project key or admin token for --engine.", envvar="ALLOOP_TOKEN")
    ] = None,
    labeler: Annotated[
        str,
        typer.Option(
            "--labeler",
            help="'crowd': 5 simulated annotators of mixed quality, redundancy 3, Dawid–Skene; 'oracle': the truth.",
        ),
    ] = "crowd",
) -> None:
    """Run a complete campaign on scikit-learn's digits with simulated annotators, then compare with random."""
    from alloop._demo import run_demo

    run_demo(
        directory,
        resume=resume,
        console=console,
        strategy=strategy,
        budget=budget,
        batch_size=batch,
        engine=engine,
        token=token,
        labeler=labeler,
    )


@app.command()
@friendly
def run(
    config: Annotated[Path, typer.Argument(help="TOML file describing data, model and loop.")],
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue the campaign in the configured directory.")
    ] = False,
    review: Annotated[
        bool, typer.Option("--review", help="Stop at each proposed batch and write review/loop-NNNN.csv to edit.")
    ] = False,
) -> None:
    """Run a campaign described by a config file (see docs: `alloop run`)."""
    from alloop._config import build_campaign, load_run_config
    from alloop._demo import run_with_progress

    cfg = load_run_config(config)
    camp = build_campaign(cfg, resume=resume, review=review)
    result = run_with_progress(camp, console, title=f"alloop run — {cfg.directory}")
    if result.stop_reason == "review":
        last = camp.store.last_loop() or {}
        path = Path(cfg.directory) / "review" / f"loop-{int(last.get('loop', 0)):04d}.csv"
        console.print(f"Batch proposed for review: edit {path} and run again with --resume.")
    else:
        console.print(f"Stopped: {result.stop_reason}; {result.n_labeled} labels.")
    camp.close()


@app.command()
@friendly
def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to bind (keep 127.0.0.1 unless behind a proxy).")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    db: Annotated[
        str | None, typer.Option("--db", help="Database URL: sqlite:///path (default) or postgresql+psycopg://…")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option("--data-dir", help="Where snapshots and id files are kept.")] = None,
    cluster: Annotated[
        str | None, typer.Option("--cluster", help="Dask scheduler (local:N or tcp://host:port) for large pools.")
    ] = None,
) -> None:
    """Run the selection engine as a service (needs: pip install 'alloop\\[server]').

    Admin token: the ALLOOP_ADMIN_TOKEN environment variable."""
    from dataclasses import replace

    from alloop.server import serve as run_server
    from alloop.settings import Settings

    settings = Settings.from_env()
    if db is not None:
        settings = replace(settings, db_url=db)
    if data_dir is not None:
        settings = replace(settings, data_dir=str(data_dir))
    if cluster is not None:
        import os

        from alloop.scale import parse_cluster

        parse_cluster(cluster)  # a clear error for a bad spec, before serving
        os.environ["ALLOOP_DASK_SCHEDULER"] = cluster
    if settings.admin_token is None:
        err_console.print("[yellow]ALLOOP_ADMIN_TOKEN is not set: no one can create projects.[/]")
    console.print(f"alloop engine on http://{host}:{port} (database {settings.database_url.split('@')[-1]})")
    run_server(settings, host=host, port=port)


@app.command()
@friendly
def strategies(as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False) -> None:
    """List every querying strategy (found by discovery)."""
    from rich.table import Table

    from alloop.strategies import all_strategies, all_stream_strategies

    rows: list[dict[str, Any]] = [
        {
            "name": name,
            "kind": cls.kind,
            "family": cls.family,
            "needs": sorted(cls.needs),
            "batch_aware": cls.batch_aware,
            "cost": cls.cost,
            "params": cls._param_names(),
            "description": cls.describe(),
        }
        for name, cls in all_strategies().items()
    ]
    rows += [
        {
            "name": name,
            "kind": "stream",
            "family": cls.family,
            "needs": sorted(cls.needs),
            "batch_aware": False,
            "cost": cls.cost,
            "params": cls._param_names(),
            "description": cls.describe(),
        }
        for name, cls in all_stream_strategies().items()
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich import box
    from rich.markup import escape

    # names never cut, grouped by kind and family; what each needs and its parameters go under the description,
    # where they wrap between words (columns of their own were cut to "max_selecti…" in an 80-column console)
    table = Table(title=f"{len(rows)} strategies (--json for every field)", box=box.SIMPLE_HEAD, show_edge=False)
    table.add_column("name", no_wrap=True)
    table.add_column("description · needs · parameters", ratio=1)
    for (kind, family), group in itertools.groupby(
        sorted(rows, key=lambda r: (r["kind"], r["family"], r["name"])), key=lambda r: (r["kind"], r["family"])
    ):
        table.add_row(f"[bold]{kind} · {escape(family)}[/bold]", "")
        for r in group:
            needs = ", ".join(r["needs"]) or "nothing"
            params = ", ".join(r["params"]) or "none"
            table.add_row(
                f"  {r['name']}",
                f"{escape(r['description'])}\n[dim]needs {escape(needs)} · parameters: {escape(params)}[/dim]",
            )
    console.print(table)


@app.command()
@friendly
def export(
    directory: Annotated[Path, typer.Argument(help="Campaign directory.")],
    out: Annotated[Path, typer.Option("--out", help="labels.parquet or labels.csv")],
) -> None:
    """Write the labeled set with provenance (id, label, source, annotator, posterior, loop, model_version)."""
    from alloop.loop import export_labels

    n = export_labels(directory, out)
    console.print(f"Wrote {n} labels to {out}.")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
