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

__all__ = ["FIELDS", "savings_report"]

FIELDS = ("train_cpu_s", "infer_cpu_s", "select_cpu_s", "records_inferred", "records_trained")


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
    full_train_rate CPU seconds per record of a full retrain (default: measured on this run's loops where
                    records_trained equals the labeled count, i.e. the full retrains)

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
        infer_rate = _rate(rows, "infer_cpu_s", "records_inferred")
        if full_train_rate is None:
            full = {k: v for k, v in rows.items() if labeled.get(k) is not None and v["records_trained"] >= labeled[k]}
            full_train_rate = _rate(full or rows, "train_cpu_s", "records_trained")
        base = {}
        for loop, r in rows.items():
            n_lab = float(labeled.get(loop, r["records_trained"]))
            n_unl = float(pool_unlabeled.get(loop, r["records_inferred"]))
            base[loop] = {
                "train_cpu_s": n_lab * full_train_rate,
                "infer_cpu_s": n_unl * infer_rate,
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
