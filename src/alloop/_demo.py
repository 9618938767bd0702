"""The demo campaign behind ``alloop demo``: digits, a simulated annotator, the chosen strategy vs random.

Library code (rich for display, no Typer): the CLI only parses arguments and calls :func:`run_demo`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from alloop.datasets import load_dataset
from alloop.labeling import SimulatedOracle
from alloop.loop import Campaign, LoopReport, SharingPolicy, SklearnLearner
from alloop.models import build_model

__all__ = ["DEMO_DEFAULTS", "aubc", "run_demo", "run_with_progress"]

DEMO_DEFAULTS: dict[str, Any] = {
    "data": "digits",
    "model": "logreg",
    "strategy": "auto",
    "initial": 20,
    "batch_size": 20,
    "budget": 300,
    "test_size": 0.3,
    "seed": 0,
    "labeler": "crowd",
    "compute_saving": False,
}

#: The demo's crowd: five annotators of mixed quality and speed (median seconds per judgement).
DEMO_CROWD = ((0.62, 45.0), (0.72, 30.0), (0.82, 25.0), (0.90, 20.0), (0.96, 40.0))


def make_labeler(kind: str, ids: Any, y: Any, classes: list[Any], seed: int) -> Any:
    """``"crowd"``: 5 simulated annotators, allocation, redundancy 3, Dawid–Skene; ``"oracle"``: the truth."""
    if kind == "oracle":
        return SimulatedOracle(truth=(ids, y), seed=seed)
    if kind != "crowd":
        from alloop.errors import ConfigError

        raise ConfigError(f"The 'labeler' parameter of the demo must be 'crowd' or 'oracle'. Got {kind!r}.")
    from alloop.labeling import CrowdAnnotator, SimulatedCrowd, crowd_aggregator

    annotators = [CrowdAnnotator(id=f"ann-{i + 1}", accuracy=a, seconds=sec) for i, (a, sec) in enumerate(DEMO_CROWD)]
    return SimulatedCrowd(
        truth=(ids, y),
        annotators=annotators,
        classes=classes,
        redundancy=3,
        aggregate=crowd_aggregator("dawid-skene"),
        seed=seed,
    )


def aubc(values: list[float]) -> float:
    """Area under the budget curve: the mean of the accuracy points."""
    return float(np.mean(values)) if values else float("nan")


def _setup(params: dict[str, Any]) -> tuple[Any, ...]:
    from sklearn.model_selection import train_test_split

    ds = load_dataset(params["data"])
    train, test = train_test_split(
        np.arange(ds.n_samples), test_size=params["test_size"], stratify=ds.y, random_state=params["seed"]
    )
    return ds, train, test


def _campaign(
    directory: Path,
    params: dict[str, Any],
    strategy: str,
    resume: bool,
    engine: str | None = None,
    token: str | None = None,
) -> Campaign:
    ds, train, test = _setup(params)
    learner = SklearnLearner(
        build_model(params["model"], seed=params["seed"]),
        ds.X[train],
        ds.ids[train],
        eval_X=ds.X[test],
        eval_y=ds.y[test],
        classes=ds.classes,
        share_features=True,  # auto uses them
    )
    oracle = make_labeler(params["labeler"], ds.ids[train], ds.y[train], list(ds.classes), params["seed"])
    if resume and (directory / "alloop.db").exists():
        return Campaign.resume(directory, learner=learner, labeler=oracle, token=token)
    return Campaign(
        directory,
        learner=learner,
        labeler=oracle,
        pool=ds.ids[train],
        classes=ds.classes,
        strategy=strategy,
        initial=params["initial"],
        batch_size=params["batch_size"],
        budget=params["budget"],
        seed=params["seed"],
        overwrite=True,
        engine=engine,
        token=token,
        # public data: a remote engine gets the same embeddings as the embedded one, so both select alike
        sharing=SharingPolicy(level="probs+embeddings") if engine else None,
        compute_saving=params.get("compute_saving", False),
    )


def _curve(camp: Campaign) -> tuple[list[int], list[float]]:
    metrics = camp.metrics()
    loops = sorted(metrics)
    return [int(metrics[lp]["n_labeled"]) for lp in loops], [metrics[lp].get("accuracy", float("nan")) for lp in loops]


def run_demo(
    directory: str | Path = "runs/demo",
    *,
    resume: bool = False,
    console: Any = None,
    engine: str | None = None,
    token: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Run the demo campaign and its random baseline; write ``summary.json`` and ``learning_curve.png``.

    With ``engine`` (the URL of ``alloop serve``) and ``token`` (a project key, or the admin token — then
    the demo creates its own projects), selection runs on the service instead of in-process.
    """
    from rich.console import Console

    params = {**DEMO_DEFAULTS, **overrides}
    console = console or Console()
    directory = Path(directory)
    strategy = params["strategy"]
    runs = {strategy: directory, "random": directory / "baseline-random"}
    if strategy == "random":
        runs = {"random": directory}
    started = time.perf_counter()
    crowd_stats: dict[str, list[dict[str, Any]]] = {}
    for name, path in runs.items():
        camp = _campaign(path, params, name, resume, engine, token)
        result = run_with_progress(camp, console, title=f"alloop demo — {name} on {params['data']} ({path})")
        crowd_stats[name] = list(getattr(camp.labeler, "stats", []))
        console.print(f"[bold]{name}[/]: stopped ({result.stop_reason}) with {result.n_labeled} labels.\n")
        camp.close()
    seconds = time.perf_counter() - started
    from alloop.compute import savings_summary

    curves, compute = {}, {}
    for name, path in runs.items():
        camp = _campaign(path, params, name, True, engine, token)
        curves[name] = _curve(camp)
        compute[name] = savings_summary(camp.compute_savings())
        camp.close()
    summary = _summarise(params, curves, seconds)
    for name, comp in compute.items():
        summary["strategies"][name]["compute"] = comp
    for name, stats in crowd_stats.items():
        if stats:  # label quality and labeling time of the simulated crowd, per batch (this run's batches)
            summary["strategies"][name]["labeling"] = {
                "label_accuracy": [round(float(b["accuracy"]), 4) for b in stats],
                "labeling_seconds": [round(float(b["seconds"]), 1) for b in stats],
            }
    (directory / "summary.json").write_text(json.dumps(summary, indent=2))
    _plot(curves, directory / "learning_curve.png", params)
    _print_comparison(console, summary)
    console.print(f"Wrote {directory / 'summary.json'} and {directory / 'learning_curve.png'} ({seconds:.1f} s).")
    return summary


def run_with_progress(camp: Campaign, console: Any, *, title: str) -> Any:
    """``camp.run()`` with a live rich table: one row per finished loop (with label accuracy and labeling
    time per batch when the labeler reports them, as :class:`SimulatedCrowd` does)."""
    from rich import box
    from rich.live import Live
    from rich.markup import escape
    from rich.table import Table

    # fits an 80-column console (two-line headers, no vertical rules, collapsed padding): numbers never wrap, and
    # rich never has to drop a column (it does, silently, when one does not fit); only the strategy wraps
    table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, collapse_padding=True)
    from alloop.labeling import SimulatedCrowd

    crowd = camp.labeler if isinstance(camp.labeler, SimulatedCrowd) else None
    cols = ["loop", "labeled", "accuracy", "macro-F1", "strategy", "wall\ns", "CPU\ns", "CPU\nsaved"]
    if crowd is not None:
        cols += ["label\nacc", "label\nmin"]
    for col in cols:
        if col == "strategy":
            table.add_column(col, justify="left", min_width=8, ratio=1)
        else:
            table.add_column(col, justify="right", no_wrap=True)

    def show(r: LoopReport) -> None:
        row = [
            str(r.loop),
            str(r.n_labeled),
            f"{r.metrics.get('accuracy', float('nan')):.4f}",
            f"{r.metrics.get('macro_f1', float('nan')):.4f}",
            escape(r.strategy) + (" (edited)" if r.hand_edited else ""),
            f"{r.seconds:.2f}",
            *_loop_compute(camp, r.loop),
        ]
        if crowd is not None:
            stats = getattr(crowd, "stats", [])
            batch = stats[-1] if stats else None
            row += ["-", "-"] if batch is None else [f"{batch['accuracy']:.3f}", f"{batch['seconds'] / 60:.1f}"]
        table.add_row(*row)

    from alloop.compute import saved_text, savings_summary

    with Live(table, console=console, refresh_per_second=8):
        result = camp.run(progress=show)
    console.print()  # off a terminal, Live leaves its last row without a line end
    console.print(saved_text(savings_summary(camp.compute_savings())))  # wraps; a caption would be cut at 80
    console.print()
    return result


def _loop_compute(camp: Campaign, loop: int) -> tuple[str, str]:
    """CPU seconds of a loop, and how many times less than the estimated from-scratch loop."""
    s = camp.compute_savings()["loops"].get(loop)
    if not s or s["cpu_s"] <= 0:
        return "-", "-"
    return f"{s['cpu_s']:.2f}", f"{s['baseline_cpu_s'] / s['cpu_s']:.1f}×"


def _summarise(
    params: dict[str, Any], curves: dict[str, tuple[list[int], list[float]]], seconds: float
) -> dict[str, Any]:
    out: dict[str, Any] = {"params": params, "seconds": round(seconds, 3), "strategies": {}}
    for name, (labels, acc) in curves.items():
        reach = next((n for n, a in zip(labels, acc, strict=True) if a >= 0.9), None)
        out["strategies"][name] = {
            "labels": labels,
            "accuracy": acc,
            "aubc": aubc(acc),
            "final_accuracy": acc[-1] if acc else None,
            "labels_to_90pct": reach,
        }
    return out


def _print_comparison(console: Any, summary: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title="Chosen strategy vs random selection (same initial set, same model)")
    table.add_column("strategy")
    for col in ("AUBC", "final accuracy", "labels to 90% accuracy"):
        table.add_column(col, justify="right")
    for name, s in summary["strategies"].items():
        table.add_row(
            name,
            f"{s['aubc']:.4f}",
            f"{s['final_accuracy']:.4f}",
            "not reached" if s["labels_to_90pct"] is None else str(s["labels_to_90pct"]),
        )
    console.print(table)


def _plot(curves: dict[str, tuple[list[int], list[float]]], path: Path, params: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    for name, (labels, acc) in curves.items():
        ax.plot(labels, acc, marker="o", markersize=3, label=f"{name} (AUBC {aubc(acc):.3f})")
    ax.set_xlabel("labeled records")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"alloop demo: {params['data']}, {params['model']}")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
