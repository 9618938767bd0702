"""Compute accounting: what a campaign spent per loop, and what the from-scratch baseline would have spent.

The input is ``Campaign.compute()`` (loop → ``train_cpu_s``, ``infer_cpu_s``, ``select_cpu_s``,
``records_inferred``, ``records_trained``). The baseline retrains from scratch on every labeled record and
infers every unlabeled record each loop. Its records are exact counts; its CPU seconds are *estimates*:
measured full-retrain loops give CPU per record·epoch, measured inference gives CPU per record, and the
baseline's counts are priced at those rates (said so in the report, ``"estimated": True``). When a
measured baseline exists (a run with compute saving off), pass it as ``baseline`` and nothing is estimated.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = ["FIELDS", "campaign_savings", "saved_text", "savings_report", "savings_summary"]

FIELDS = ("train_cpu_s", "infer_cpu_s", "select_cpu_s", "records_inferred", "records_trained")


def _is_full(raw: Mapping[str, float], row: Mapping[str, float], n_labeled: float | None) -> bool:
    """A from-scratch training: flagged ``train_full`` when the learner said so, else every label trained on."""
    if "train_full" in raw:
        return bool(raw["train_full"])
    return n_labeled is not None and row["records_trained"] >= n_labeled


def _rows(compute: Mapping[int, Mapping[str, float]]) -> dict[int, dict[str, float]]:
    return {int(loop): {f: float(v.get(f, 0.0)) for f in FIELDS} for loop, v in sorted(compute.items())}


def savings_report(
    compute: Mapping[int, Mapping[str, float]],
    *,
    baseline: Mapping[int, Mapping[str, float]] | None = None,
    pool_unlabeled: Mapping[int, float] | None = None,
    labeled: Mapping[int, float] | None = None,
    full_train_rate: float | None = None,
) -> dict[str, Any]:
    """Per-loop and total compute, the baseline's, and the ratio baseline / actual ("× less").

    baseline        a measured run without compute saving (same loops); else the baseline is estimated from
                    ``pool_unlabeled`` (loop → unlabeled records, the full-inference count) and ``labeled``
                    (loop → labeled records, the full-retrain count), priced at the measured per-record rates
    full_train_rate CPU seconds per record of a full retrain (default: measured on this run's full retrains —
                    rows flagged ``train_full``, else those that trained on every label — leaving out the first,
                    which carries one-time costs, when there are others)

    Loops that did the from-scratch work (a full retrain; inference of every unlabeled record) keep their
    measured figures; only the work that was saved is priced.

    >>> run = {0: {"train_cpu_s": 1.0, "infer_cpu_s": 1.0, "records_trained": 10, "records_inferred": 100},
    ...        1: {"train_cpu_s": 0.2, "infer_cpu_s": 0.5, "records_trained": 4, "records_inferred": 50}}
    >>> r = savings_report(run, labeled={0: 10, 1: 20}, pool_unlabeled={0: 100, 1: 90})
    >>> r["total"]["cpu_s"], r["baseline_total"]["cpu_s"], r["baseline_total"]["records_inferred"]
    (2.7, 4.9, 190.0)
    """
    rows = _rows(compute)
    out_loops: dict[int, dict[str, float]] = {}
    if baseline is not None:
        base = _rows(baseline)
        estimated = False
    else:
        estimated = True
        labeled = labeled or {}
        pool_unlabeled = pool_unlabeled or {}
        # priced at loops that inferred every unlabeled record (planning overhead of partial loops excluded)
        whole = {k: v for k, v in rows.items() if v["records_inferred"] >= pool_unlabeled.get(k, np.inf) > 0}
        infer_rate = _rate(whole or rows, "infer_cpu_s", "records_inferred")
        full = {k for k, v in rows.items() if _is_full(compute[k], v, labeled.get(k))}
        if full_train_rate is None:
            # the first full training carries one-time costs (imports, model set-up): priced only when alone
            later = sorted(full)[1:] or sorted(full)
            full_train_rate = _rate({k: rows[k] for k in later} or rows, "train_cpu_s", "records_trained")
        base = {}
        for loop, r in rows.items():
            n_lab = float(labeled.get(loop, r["records_trained"]))
            n_unl = float(pool_unlabeled.get(loop, r["records_inferred"]))
            measured_infer = r["records_inferred"] >= n_unl  # this loop inferred everything: its figure stands
            base[loop] = {
                "train_cpu_s": r["train_cpu_s"] if loop in full else n_lab * full_train_rate,
                "infer_cpu_s": r["infer_cpu_s"] if measured_infer else n_unl * infer_rate,
                "select_cpu_s": r["select_cpu_s"],  # selection over the whole pool is not re-priced
                "records_inferred": n_unl,
                "records_trained": n_lab,
            }
    for loop, r in rows.items():
        b = base.get(loop, r)
        out_loops[loop] = {
            **r,
            "cpu_s": r["train_cpu_s"] + r["infer_cpu_s"] + r["select_cpu_s"],
            "baseline_cpu_s": b["train_cpu_s"] + b["infer_cpu_s"] + b["select_cpu_s"],
            "baseline_records_inferred": b["records_inferred"],
            "baseline_records_trained": b["records_trained"],
        }
    total = {f: round(sum(r[f] for r in rows.values()), 12) for f in FIELDS}
    total["cpu_s"] = round(total["train_cpu_s"] + total["infer_cpu_s"] + total["select_cpu_s"], 12)
    btotal = {f: round(sum(base[k][f] for k in rows if k in base), 12) for f in FIELDS}
    btotal["cpu_s"] = round(btotal["train_cpu_s"] + btotal["infer_cpu_s"] + btotal["select_cpu_s"], 12)

    def ratio(a: float, b: float) -> float | None:
        return None if a <= 0 else round(b / a, 4)

    return {
        "loops": out_loops,
        "total": total,
        "baseline_total": btotal,
        "estimated": estimated,
        "saved": {
            "cpu_x": ratio(total["cpu_s"], btotal["cpu_s"]),
            "train_cpu_x": ratio(total["train_cpu_s"], btotal["train_cpu_s"]),
            "infer_cpu_x": ratio(total["infer_cpu_s"], btotal["infer_cpu_s"]),
            "records_inferred_x": ratio(total["records_inferred"], btotal["records_inferred"]),
            "records_trained_x": ratio(total["records_trained"], btotal["records_trained"]),
        },
    }


def _rate(rows: Mapping[int, Mapping[str, float]], cpu: str, records: str) -> float:
    c = float(np.sum([r[cpu] for r in rows.values()]))
    n = float(np.sum([r[records] for r in rows.values()]))
    return c / n if n > 0 else 0.0


def campaign_savings(
    compute: Mapping[int, Mapping[str, float]], metrics: Mapping[int, Mapping[str, float]] | None = None
) -> dict[str, Any]:
    """:func:`savings_report` of a campaign's stored rows against the estimated from-scratch baseline.

    ``compute`` is ``Campaign.compute()`` (or ``CampaignStore.values("compute")``): per loop the FIELDS plus
    ``records_unlabeled`` (the unlabeled records a from-scratch loop would infer) and, optionally,
    ``n_labeled``; else ``metrics`` (``Campaign.metrics()``) gives ``n_labeled`` per loop.

    >>> rows = {0: {"train_cpu_s": 1.0, "infer_cpu_s": 1.0, "records_trained": 10, "records_inferred": 100,
    ...             "records_unlabeled": 100, "n_labeled": 10},
    ...         1: {"train_cpu_s": 0.2, "infer_cpu_s": 0.5, "records_trained": 4, "records_inferred": 50,
    ...             "records_unlabeled": 90, "n_labeled": 20}}
    >>> campaign_savings(rows)["saved"]["cpu_x"]
    1.8148
    """
    metrics = metrics or {}
    labeled: dict[int, float] = {}
    unlabeled: dict[int, float] = {}
    for loop, row in compute.items():
        n_lab = row.get("n_labeled", metrics.get(loop, {}).get("n_labeled"))
        if n_lab is not None:
            labeled[int(loop)] = float(n_lab)
        if "records_unlabeled" in row:
            unlabeled[int(loop)] = float(row["records_unlabeled"])
    return savings_report(compute, labeled=labeled, pool_unlabeled=unlabeled)


def savings_summary(report: Mapping[str, Any]) -> dict[str, Any]:
    """The compact form of a :func:`savings_report` for ``summary.json``, ``alloop report --json`` and the
    dashboard: ``total``, ``from_scratch`` (the baseline totals), ``estimated``, ``saved`` and
    ``per_loop`` (loop → ``cpu_s`` used and ``from_scratch_cpu_s``)."""
    return {
        "total": dict(report["total"]),
        "from_scratch": dict(report["baseline_total"]),
        "estimated": bool(report["estimated"]),
        "saved": dict(report["saved"]),
        "per_loop": {
            str(k): {"cpu_s": round(v["cpu_s"], 6), "from_scratch_cpu_s": round(v["baseline_cpu_s"], 6)}
            for k, v in report["loops"].items()
        },
    }


def saved_text(summary: Mapping[str, Any]) -> str:
    """One line for displays, from :func:`savings_summary`: CPU used, the from-scratch figure, "× less".

    >>> saved_text({"total": {"cpu_s": 2.0}, "from_scratch": {"cpu_s": 5.0}, "estimated": True,
    ...             "saved": {"cpu_x": 2.5}})
    'compute: 2.00 CPU s; from scratch ≈ 5.00 CPU s (estimated) → compute saved 2.5× (60% less)'
    """
    used, base, x = summary["total"]["cpu_s"], summary["from_scratch"]["cpu_s"], summary["saved"]["cpu_x"]
    how = " (estimated)" if summary.get("estimated") else ""
    if x is None or base <= 0:
        return f"compute: {used:.2f} CPU s"
    return (
        f"compute: {used:.2f} CPU s; from scratch ≈ {base:.2f} CPU s{how} → compute saved {x:.1f}× "
        f"({max(0.0, 1 - used / base):.0%} less)"
    )
