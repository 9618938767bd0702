"""``alloop report DIR [--json]``: what happened in a finished campaign, loop by loop, and when to stop.

The per-loop table comes from the campaign store (strategy, reason, metrics, compute; "compute saved" is the
estimated from-scratch CPU over the measured, :func:`alloop.compute.campaign_savings`); the stopping
criteria of :mod:`alloop.engine.stopping` are replayed over the stored snapshots (``snapshots/loop-NNNN.parquet``)
to show at which loop each would have fired and the accuracy reached then. Registered in :mod:`alloop.cli`.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alloop._cli_errors import fail
from alloop.engine.stopping import CRITERIA, StopMonitor
from alloop.errors import AlloopError

__all__ = ["build_report", "render_report", "report_command"]


def _finite(value: Any) -> Any:
    """JSON has no NaN: NaN/inf become None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def build_report(directory: str | Path, *, monitor: StopMonitor | None = None) -> dict[str, Any]:
    """The report of the campaign in ``directory`` as plain JSON-ready data.

    ``monitor`` sets the stopping thresholds (default :class:`StopMonitor` with the campaign's budget).
    Each criterion is fed, per loop, the predictions of that loop's snapshot on records still unlabeled
    then, the loop's metrics and its labeled count.
    """
    from alloop.metadata import Snapshot
    from alloop.store import CampaignStore

    store = CampaignStore(directory)
    try:
        loops = store.loops()
        metrics = store.values("metrics")
        compute = store.values("compute")
        budget = store.get_meta("budget")
        pool = store.load_pool()
        labels = store.labels()
        snap_paths = {lp["loop"]: store.snapshot_path(int(lp["loop"])) for lp in loops}
    finally:
        store.close()
    monitor = monitor or StopMonitor(budget=budget)
    label_loop: dict[Any, int] = {}
    if labels:
        idx = np.array([r["idx"] for r in labels], dtype=np.int64)
        for rid, r in zip(pool.ids_at(idx).tolist(), labels, strict=True):
            label_loop[rid] = int(r["loop"])
    rows: list[dict[str, Any]] = []
    for lp in loops:
        loop = int(lp["loop"])
        m = metrics.get(loop, {})
        n_labeled = m.get("n_labeled", float(sum(1 for v in label_loop.values() if v <= loop)))
        ids = probs = None
        path = snap_paths[loop]
        if path.exists():
            snap = Snapshot.from_parquet(path)
            unl = np.array([label_loop.get(i, loop + 1) > loop for i in snap.ids.tolist()], dtype=bool)
            ids, probs = snap.ids[unl], snap.probs[unl]
        fired = monitor.update(
            loop, ids=ids, probs=probs, metrics=m or None, n_labeled=n_labeled if lp["phase"] != "selected" else None
        )
        rows.append(
            {
                "loop": loop,
                "phase": lp["phase"],
                "n_labeled": _finite(float(n_labeled)),
                "strategy": lp["strategy"],
                "reason": lp["reason"],
                "hand_edited": bool(lp["hand_edited"]),
                "metrics": {k: _finite(v) for k, v in m.items()},
                "compute": {k: _finite(v) for k, v in compute.get(loop, {}).items()},
                "stop_fired": fired,
            }
        )
    by_loop = {r["loop"]: r for r in rows}
    stopping: dict[str, Any] = {}
    for name in CRITERIA:
        at = monitor.fired.get(name)
        row = by_loop.get(at) if at is not None else None
        stopping[name] = {
            "loop": at,
            "n_labeled": None if row is None else row["n_labeled"],
            "accuracy": None if row is None else row["metrics"].get("accuracy"),
        }
    last = rows[-1] if rows else None
    from alloop.compute import campaign_savings, savings_summary

    return {
        "directory": str(directory),
        "loops": rows,
        "compute": savings_summary(campaign_savings(compute, metrics)) if compute else None,
        "stopping": stopping,
        "final": None
        if last is None
        else {"loop": last["loop"], "n_labeled": last["n_labeled"], "accuracy": last["metrics"].get("accuracy")},
        "monitor": {
            k: getattr(monitor, k)
            for k in (
                "kappa",
                "kappa_window",
                "stop_set_size",
                "max_uncertainty",
                "overall_uncertainty",
                "metric",
                "plateau_window",
                "plateau_delta",
                "budget",
            )
        },
    }


def _num(value: Any, fmt: str = ".4f") -> str:
    return "—" if value is None else format(value, fmt)


def render_report(report: dict[str, Any]) -> list[Table]:
    """Three rich tables: per loop (numbers), what each loop chose and why, and per stopping criterion."""
    loops = Table(title=f"Campaign {escape(report['directory'])}", expand=True)
    for col in ("loop", "labeled", "accuracy", "macro-F1", "train s", "infer s", "inferred"):
        loops.add_column(col, justify="right", no_wrap=True)  # numbers only: they never wrap
    choices = Table(title="What each loop chose, and why", expand=True)  # reasons (up to 300 characters) wrap here
    choices.add_column("loop", justify="right", no_wrap=True)
    choices.add_column("strategy")
    choices.add_column("reason", ratio=3)
    choices.add_column("stopping criteria firing", ratio=1)
    for r in report["loops"]:
        m, c = r["metrics"], r["compute"]
        loops.add_row(
            str(r["loop"]),
            _num(r["n_labeled"], ".0f"),
            _num(m.get("accuracy")),
            _num(m.get("macro_f1")),
            _num(c.get("train_cpu_s"), ".3f"),
            _num(c.get("infer_cpu_s"), ".3f"),
            _num(c.get("records_inferred"), ".0f"),
        )
        choices.add_row(
            str(r["loop"]),
            escape(r["strategy"]) + (" (edited)" if r["hand_edited"] else ""),
            escape(r["reason"]),
            ", ".join(r["stop_fired"]),
        )
    if report.get("compute"):
        from alloop.compute import saved_text

        loops.caption = saved_text(report["compute"])
    mon = report["monitor"]
    stop = Table(
        title=(
            f"Stopping criteria (kappa ≥ {mon['kappa']} for {mon['kappa_window']} loops; max LC < "
            f"{mon['max_uncertainty']}; mean LC < {mon['overall_uncertainty']}; {mon['metric']} gain < "
            f"{mon['plateau_delta']} over {mon['plateau_window']} loops; budget {mon['budget']})"
        )
    )
    for col in ("criterion", "would fire at loop", "labeled then", "accuracy then"):
        stop.add_column(col, justify="left" if col == "criterion" else "right")
    for name, s in report["stopping"].items():
        stop.add_row(
            name, "never" if s["loop"] is None else str(s["loop"]), _num(s["n_labeled"], ".0f"), _num(s["accuracy"])
        )
    final = report["final"]
    if final is not None:
        n, acc = _num(final["n_labeled"], ".0f"), _num(final["accuracy"])
        stop.caption = f"final: loop {final['loop']}, {n} labels, accuracy {acc}"
    return [loops, choices, stop]


def report_command(
    directory: Annotated[Path, typer.Argument(help="Campaign directory (holds alloop.db and snapshots/).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON instead of tables.")] = False,
) -> None:
    """Show each loop of a campaign (labels, strategy, reason, metrics, compute) and when to stop."""
    try:
        report = build_report(directory)
    except AlloopError as exc:
        fail(str(exc))
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    console = Console()
    for table in render_report(report):
        console.print(table)
