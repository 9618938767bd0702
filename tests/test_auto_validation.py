"""benchmarks/engine.py's validation summary: the objective auto is chosen by (issue 5, targets (c) and (a))."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("engine_bench", ROOT / "benchmarks" / "engine.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _cells(aubc: dict[tuple[str, str], list[float]]) -> dict:
    """(dataset, strategy) → AUBC per seed, as cells.jsonl rows of one model."""
    return {(ds, "logreg", s, seed): {"aubc": a} for (ds, s), values in aubc.items() for seed, a in enumerate(values)}


def test_each_candidate_is_ranked_as_auto_among_the_seven_on_validation_cells_only(bench):
    others = {"margin": [0.80, 0.80, 0.80], "entropy": [0.80, 0.80, 0.80], "random": [0.70, 0.71, 0.72]}
    others |= {"coreset": [0.60, 0.60, 0.60], "portfolio": [0.75, 0.75, 0.75], "learned": [0.81, 0.79, 0.82]}
    aubc = {("val-xor", s): v for s, v in others.items()}
    aubc[("val-xor", "auto(good=1)")] = [0.90, 0.90, 0.90]  # best on every seed
    aubc[("val-xor", "auto(tie=1)")] = [0.80, 0.80, 0.80]  # margin's twin: three-way tie with margin and entropy
    aubc |= {("xor", s): [0.1, 0.1, 0.1] for s in others} | {("xor", "auto(tie=1)"): [0.9, 0.9, 0.9]}  # benchmark
    val = bench.validation_summary(_cells(aubc), ["auto(tie=1)", "auto(good=1)", "auto(none=1)"])
    assert list(val) == ["auto(good=1)", "auto(tie=1)", "auto(none=1)"]  # best mean rank first
    good, tie = val["auto(good=1)"], val["auto(tie=1)"]
    assert (good["cells"], good["seeds"], good["mean_rank"]) == (1, 3, 1.0)  # the benchmark cell "xor" is not used
    # per seed: learned 1st/3rd/1st; margin, entropy and the twin share ranks 2-4 (3.0) or 1-3 (2.0) on seed 1
    assert tie["mean_rank"] == pytest.approx((3.0 + 2.0 + 3.0) / 3)
    assert tie["ranks"]["learned"] == pytest.approx((1 + 4 + 1) / 3) and tie["best_other"] == "learned"
    assert tie["worst"]["margin"] == 0.0 and tie["non_inferior"]
    assert good["worst"]["random"] == pytest.approx(0.9 - 0.72 - 0.0, abs=0.02) and good["non_inferior"]
    assert val["auto(none=1)"] == {"cells": 0}
    assert "no validation cell" in bench.render_validation(val) and "auto(good=1)" in bench.render_validation(val)


def test_a_cell_missing_a_strategy_does_not_count_and_inferiority_is_flagged(bench):
    base = {"margin": [0.80, 0.82, 0.81, 0.83], "entropy": [0.79] * 4, "random": [0.70] * 4}
    base |= {"coreset": [0.6] * 4, "portfolio": [0.75] * 4, "learned": [0.78] * 4}
    aubc = {("val2-moons", s): v for s, v in base.items()}
    aubc[("val2-moons", "auto(bad=1)")] = list(np.array(base["margin"]) - [0.02, 0.01, 0.03, 0.02])
    aubc |= {("val-moons", s): v for s, v in base.items() if s != "portfolio"}  # incomplete: left out
    aubc[("val-moons", "auto(bad=1)")] = [0.99] * 4
    v = bench.validation_summary(_cells(aubc), ["auto(bad=1)"])["auto(bad=1)"]
    assert v["cells"] == 1 and list(v["vs_margin"]) == ["val2-moons/logreg"]
    assert v["worst"]["margin"] < -0.005 and not v["non_inferior"]
    assert bench.validation_summary(_cells(aubc), ["auto(bad=1)"], limit=-0.05)["auto(bad=1)"]["non_inferior"]


def test_the_multiclass_validation_family_is_like_the_real_multiclass_cells_and_seeded(bench):
    a, b = bench.load("val-multiclass"), bench.load("val2-multiclass")
    again = bench.load("val-multiclass")
    assert np.array_equal(a.X, again.X) and np.array_equal(a.y, again.y)  # the task seed fixes the task
    assert a.X.shape[1] != b.X.shape[1] or not np.array_equal(a.y, b.y)  # the two task seeds give two tasks
    for d in (a, b):
        assert d.X.shape[0] == 1000 and 20 <= d.X.shape[1] <= 64 and 6 <= d.classes.size <= 10
        assert np.allclose(d.X.mean(axis=0), 0.0, atol=1e-9) and np.allclose(d.X.std(axis=0), 1.0)
    assert "val-multiclass" in bench.VALIDATION and "multiclass" not in bench.SYNTHETIC
    assert bench.selector_for("val-multiclass") is None  # not a training family: the shipped selector, no retraining


def test_the_validation_tables_show_each_candidates_difference_with_margin_and_its_rank(bench):
    base = {"margin": [0.80, 0.82, 0.81], "entropy": [0.79] * 3, "random": [0.70] * 3}
    base |= {"coreset": [0.6] * 3, "portfolio": [0.75] * 3, "learned": [0.78] * 3}
    aubc = {("val-moons", s): v for s, v in base.items()}
    aubc[("val-moons", "auto(up=1)")] = [0.83, 0.84, 0.83]  # +0.0233 over margin
    cells = _cells(aubc)
    val = bench.validation_summary(cells, ["auto(up=1)", "auto(none=1)"])
    text = bench.validation_markdown(val, cells)
    row = next(line for line in text.splitlines() if line.startswith("| val-moons · logreg"))
    assert row.startswith("| val-moons · logreg | 0.8100 | +0.0233 (")
    assert "auto(none=1)" not in text  # a candidate without cells has no column
    rank = next(line for line in text.splitlines() if line.startswith("| `auto(up=1)`"))
    assert rank.startswith("| `auto(up=1)` | 1.000 | margin 2.000 |")


def test_the_learned_selectors_target_is_counted_per_candidate_on_validation_cells(bench):
    # 6 seeds: margin beats random on every seed (Wilcoxon p = 0.031), so the learned target applies to the cell
    base = {"margin": [0.80, 0.81, 0.82, 0.83, 0.84, 0.85], "random": [0.70, 0.72, 0.71, 0.73, 0.70, 0.72]}
    base |= {"entropy": [0.79] * 6, "coreset": [0.60] * 6}
    aubc = {("val-xor", s): v for s, v in base.items()}
    aubc[("val-xor", "learned(good=1)")] = [0.75, 0.76, 0.74, 0.77, 0.75, 0.78]  # above random on every seed
    aubc[("val-xor", "learned(bad=1)")] = [0.72, 0.70, 0.72, 0.72, 0.71, 0.70]  # as good as random
    aubc |= {("xor", s): v for s, v in base.items()} | {("xor", "learned(bad=1)"): [0.9] * 6}  # a benchmark cell
    out = bench.learned_validation(_cells(aubc), ["learned(bad=1)", "learned(good=1)"])
    assert list(out) == ["learned(good=1)", "learned(bad=1)"]  # more cells met first
    assert out["learned(good=1)"] == {"cells": 1, "met": 1, "of": 1, "missed": [], "mean_rank": 3.0}
    assert out["learned(bad=1)"]["met"] == 0 and out["learned(bad=1)"]["missed"] == ["val-xor/logreg"]
    text = bench.render_learned_validation(out).splitlines()
    assert text[0] == "  learned target met on 1 of 1 validation cells, mean rank 3.000 · learned(good=1)"
    assert text[1].startswith("  learned target met on 0 of 1 validation cells (missed: val-xor/logreg)")


def test_at_version_only_reads_stored_cells_and_names_the_strategies_it_knows(bench, capsys):
    before = dict(bench.VERSION)
    with pytest.raises(SystemExit) as run:
        bench.main(["--at-version", "auto=11"])  # running cells under an old version label would mislabel them
    assert run.value.code == 2 and "add --summary" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--summary", "--at-version", "nope=1"])
    assert "STRATEGY one of ['auto', 'coreset', 'learned', 'portfolio']" in capsys.readouterr().err
    assert bench.VERSION == before
