"""``alloop label-sim``: the exact crowd simulation, through a Typer app as the CLI registers it."""

import json

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from alloop._cli_label_sim import label_sim_command
from alloop.errors import ConfigError
from alloop.labeling.labelsim import draw_crowd, simulate_labels, tune_target_confidence

app = typer.Typer()
app.command("label-sim")(label_sim_command)
app.command("noop")(lambda: None)  # a second command keeps "label-sim" a named subcommand, as in cli.py
runner = CliRunner()


def test_draw_follows_the_protocol():
    acc = np.linspace(0.55, 0.95, 10)
    d = draw_crowd(0, n_items=4000, n_classes=5, accuracy=acc)
    assert sorted(d.order[0].tolist()) == list(range(10))  # distinct annotators per item
    right = d.answers == d.truth[:, None]
    for a in (0, 9):
        assert abs(right[d.order == a].mean() - acc[a]) < 0.03
    wrong = d.answers[~right] - d.truth[np.nonzero(~right)[0]]
    assert set(np.unique(wrong % 5).tolist()) == {1, 2, 3, 4}  # wrong answers spread over the other classes
    assert np.bincount(d.truth, minlength=5).min() > 700
    again = draw_crowd(0, n_items=4000, n_classes=5, accuracy=acc)
    assert (again.answers == d.answers).all()


def test_cli_writes_the_contract_json(tmp_path):
    out = tmp_path / "ls.json"
    args = ["label-sim", "--items", "300", "--classes", "5", "--annotators", "10", "--accuracy", "0.55:0.95"]
    args += ["--redundancy", "3", "--method", "majority", "--method", "one-coin", "--method", "dawid-skene"]
    args += ["--method", "dynamic", "--target-confidence", "0.95", "--seeds", "3", "--json", str(out)]
    res = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "judgements / item" in res.output and "aggregated with one-coin" in res.output
    data = json.loads(out.read_text())
    assert set(data) == {"protocol", "results"}
    assert data["protocol"]["annotator_accuracies"] == np.linspace(0.55, 0.95, 10).tolist()
    assert data["protocol"]["seeds"] == 3 and data["protocol"]["redundancy"] == 3
    r = data["results"]
    assert list(r) == ["majority", "one-coin", "dawid-skene", "dynamic"]
    for v in r.values():
        assert {"accuracy_mean", "accuracy_std", "judgements_mean"} <= set(v)
        assert np.isclose(v["accuracy_mean"], np.mean(v["accuracy_per_seed"]))
    assert r["majority"]["judgements_mean"] == 3.0
    assert 2.0 <= r["dynamic"]["judgements_mean"] < 3.0 and r["dynamic"]["aggregator"] == "one-coin"
    assert r["one-coin"]["accuracy_mean"] > r["majority"]["accuracy_mean"]
    # the same command gives the same numbers
    runner.invoke(app, args[:-1] + [str(tmp_path / "again.json")])
    assert json.loads((tmp_path / "again.json").read_text())["results"] == r


def test_static_methods_share_judgements_and_dynamic_uses_a_prefix():
    a = simulate_labels(items=200, annotators=6, redundancy=5, seeds=2, methods=["majority", "dynamic"])
    b = simulate_labels(items=200, annotators=6, redundancy=5, seeds=2, methods=["dynamic", "majority"])
    assert a["results"]["majority"] == b["results"]["majority"]  # method order does not change the draw
    assert a["results"]["dynamic"]["judgements_mean"] <= 5.0
    one = simulate_labels(items=200, annotators=6, redundancy=1, seeds=2, methods=["majority", "dawid-skene"])
    assert one["results"]["majority"]["accuracy_per_seed"] == one["results"]["dawid-skene"]["accuracy_per_seed"]


def test_bad_options_exit_2_with_a_message(tmp_path):
    base = ["label-sim", "--json", str(tmp_path / "x.json"), "--items", "20", "--seeds", "1"]
    res = runner.invoke(app, base + ["--method", "median"])
    assert res.exit_code == 2 and "method" in res.output
    res = runner.invoke(app, base + ["--method", "majority", "--accuracy", "0.9-0.5"])
    assert res.exit_code == 2 and "LO:HI" in res.output
    res = runner.invoke(app, base + ["--method", "majority", "--redundancy", "11"])
    assert res.exit_code == 2 and "redundancy" in res.output
    assert not (tmp_path / "x.json").exists()


def test_tuning_picks_the_lowest_target_that_never_loses_to_fixed_redundancy():
    out = tune_target_confidence(seeds=[100, 101], grid=[0.9, 0.4, 0.7], items=400, cap=5)
    rows = out["rows"]
    assert [r["target"] for r in rows] == [0.4, 0.7, 0.9]
    assert rows[0]["judgements_mean"] <= rows[1]["judgements_mean"] <= rows[2]["judgements_mean"] < 3.0
    first_ok = next(r["target"] for r in rows if r["diff_min"] >= 0)
    assert out["chosen"] == first_ok and first_ok > 0.4  # 0.4 stops at 2 judgements too often to keep up
    for r in rows:
        assert np.isclose(r["diff_mean"], r["accuracy_mean"] - out["static_accuracy_mean"])
    with pytest.raises(ConfigError, match="'grid'"):
        tune_target_confidence(seeds=[0], grid=[])
