"""``alloop report``: a real (small) iris campaign, read back as tables and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

from alloop._cli_report import build_report, report_command
from alloop.engine.stopping import CRITERIA, StopMonitor, metric_plateau
from alloop.labeling import SimulatedOracle
from alloop.loop import Campaign, SklearnLearner
from alloop.store import CampaignStore

X, Y = load_iris(return_X_y=True)
TRAIN = np.arange(0, 150, 3).tolist() + np.arange(1, 150, 3).tolist()
TEST = np.arange(2, 150, 3)
IDS = np.array(sorted(TRAIN))


@pytest.fixture(scope="module")
def campaign_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("report") / "c"
    learner = SklearnLearner(
        LogisticRegression(max_iter=500), X[IDS], IDS, eval_X=X[TEST], eval_y=Y[TEST], classes=[0, 1, 2]
    )
    oracle = SimulatedOracle(truth=dict(zip(IDS.tolist(), Y[IDS].tolist(), strict=True)))
    camp = Campaign(
        directory, learner=learner, labeler=oracle, pool=IDS, classes=[0, 1, 2], initial=6, batch_size=5,
        budget=41, seed=1, strategy="margin",
    )  # fmt: skip
    assert camp.run().stop_reason == "budget"
    camp.store.close()
    return directory


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("report")(report_command)

    @app.command("other")  # a second command keeps "report" a named subcommand, as in alloop's CLI
    def other() -> None:  # pragma: no cover
        pass

    return app


def test_json_report_matches_the_store(campaign_dir):
    result = CliRunner().invoke(_app(), ["report", str(campaign_dir), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    store = CampaignStore(campaign_dir)
    metrics, compute, loops = store.values("metrics"), store.values("compute"), store.loops()
    store.close()
    assert [r["loop"] for r in report["loops"]] == [lp["loop"] for lp in loops] == list(range(8))
    assert [r["n_labeled"] for r in report["loops"]] == [6, 11, 16, 21, 26, 31, 36, 41]
    assert [r["strategy"] for r in report["loops"]] == [lp["strategy"] for lp in loops]
    assert report["loops"][1]["strategy"] == "margin" and "top 5" in report["loops"][1]["reason"]
    for r in report["loops"]:
        assert r["metrics"] == metrics[r["loop"]] and r["compute"] == compute[r["loop"]]
    assert set(report["stopping"]) == set(CRITERIA)
    budget = report["stopping"]["budget"]
    assert budget == {"loop": 7, "n_labeled": 41, "accuracy": metrics[7]["accuracy"]}
    acc = [metrics[lp]["accuracy"] for lp in range(8)]
    plateau = next((lp for lp in range(8) if metric_plateau(acc[: lp + 1], 3, 0.005)), None)
    assert report["stopping"]["metric-plateau"]["loop"] == plateau
    for s in report["stopping"].values():  # the accuracy reported is the one reached at that loop
        assert s["loop"] is None or s["accuracy"] == metrics[s["loop"]]["accuracy"]
    assert report["final"] == {"loop": 7, "n_labeled": 41, "accuracy": acc[-1]}
    assert report["monitor"]["budget"] == 41


def test_stabilizing_predictions_replay_compares_consecutive_models(campaign_dir):
    report = build_report(campaign_dir, monitor=StopMonitor(kappa=0.0, kappa_window=1, budget=41))
    assert report["stopping"]["stabilizing-predictions"]["loop"] == 1  # the first comparison: loops 0 → 1
    never = build_report(campaign_dir, monitor=StopMonitor(kappa=1.0, kappa_window=8))
    assert never["stopping"]["stabilizing-predictions"]["loop"] is None  # only 7 comparisons exist


def test_table_report_and_missing_directory(campaign_dir, tmp_path):
    result = CliRunner().invoke(_app(), ["report", str(campaign_dir)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for text in ("margin", "initial", "stabilizing-predictions", "would fire at loop", "final: loop 7"):
        assert text in result.output
    missing = CliRunner().invoke(_app(), ["report", str(tmp_path / "none")])
    assert missing.exit_code == 2 and "No campaign" in missing.output


def test_table_report_stays_readable_in_an_80_column_console(campaign_dir):
    """Numbers are never cut or wrapped; each loop's reason is shown whole (wrapped) in the choices table."""
    result = CliRunner().invoke(_app(), ["report", str(campaign_dir)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    report = build_report(campaign_dir)
    tokens = set(result.output.replace("│", " ").replace("┃", " ").split())
    for lp in report["loops"]:
        assert f"{lp['metrics']['accuracy']:.4f}" in tokens and f"{lp['n_labeled']:.0f}" in tokens
        assert set(lp["reason"].split()) <= tokens, lp["reason"]  # every word of the reason, none cut
    assert "What each loop chose, and why" in result.output
