"""The command line: demo, run (config validation, review, resume), strategies, export."""

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from alloop.cli import app
from alloop.store import CampaignStore

runner = CliRunner()


def test_demo_writes_summary_plot_and_restarts_fresh(tmp_path):
    d = tmp_path / "demo"
    res = runner.invoke(app, ["demo", "--dir", str(d), "--budget", "60", "--batch", "20"])
    assert res.exit_code == 0, res.output
    summary = json.loads((d / "summary.json").read_text())
    assert set(summary["strategies"]) == {"auto", "random"}  # auto: the default strategy
    for s in summary["strategies"].values():
        assert s["labels"] == [20, 40, 60]
        assert len(s["accuracy"]) == 3 and abs(s["aubc"] - sum(s["accuracy"]) / 3) < 1e-12
    assert (d / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Chosen strategy vs random" in res.output
    # the default labeler is the simulated crowd (redundancy 3, Dawid-Skene): label quality per batch
    labeling = summary["strategies"]["auto"]["labeling"]
    assert len(labeling["label_accuracy"]) == 3 and all(0.5 <= a <= 1 for a in labeling["label_accuracy"])
    assert all(t > 0 for t in labeling["labeling_seconds"])
    # compute used per loop and in total, next to the from-scratch estimate (saving off: nothing saved)
    comp = summary["strategies"]["auto"]["compute"]
    assert set(comp["per_loop"]) == {"0", "1", "2"}
    assert abs(comp["total"]["cpu_s"] - sum(v["cpu_s"] for v in comp["per_loop"].values())) < 1e-4
    assert comp["from_scratch"]["cpu_s"] >= comp["total"]["cpu_s"] - 1e-6
    flat = " ".join(res.output.split())
    assert "compute saved" in flat and "CPU s" in flat
    # running again starts a fresh campaign (same seed: same selections, not appended)
    first = CampaignStore(d).selections()
    res = runner.invoke(app, ["demo", "--dir", str(d), "--budget", "60", "--batch", "20"])
    assert res.exit_code == 0, res.output
    assert CampaignStore(d).selections() == first
    # --resume with a larger budget continues the same campaign
    res = runner.invoke(app, ["demo", "--dir", str(d), "--budget", "60", "--batch", "20", "--resume"])
    assert res.exit_code == 0
    assert CampaignStore(d).selections() == first


def test_demo_progress_table_fits_an_80_column_console(tmp_path):
    """Every column of the live table is shown (rich drops one that does not fit) and no number is cut."""
    res = runner.invoke(
        app, ["demo", "--dir", str(tmp_path / "d"), "--budget", "40", "--batch", "20"], env={"COLUMNS": "80"}
    )
    assert res.exit_code == 0, res.output
    assert max(len(line) for line in res.output.splitlines()) <= 80
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    for name, s in summary["strategies"].items():
        labeling = s["labeling"]
        for loop, (n, acc) in enumerate(zip(s["labels"], s["accuracy"], strict=True)):
            rows = [line.split() for line in res.output.splitlines() if line.split()[:2] == [str(loop), str(n)]]
            assert rows, (name, loop)
            # loop, labeled, accuracy, macro-F1, strategy, wall s, CPU s, saved, label acc, label minutes
            assert any(len(r) == 10 and r[2] == f"{acc:.4f}" for r in rows), rows
            assert any(r[8] == f"{labeling['label_accuracy'][loop]:.3f}" for r in rows), rows


def test_strategies_and_models_tables_cut_nothing_in_an_80_column_console():
    """Every strategy name and parameter name appears whole (a params column was cut to 'max_selecti…')."""
    listed = json.loads(runner.invoke(app, ["strategies", "--json"]).output)
    res = runner.invoke(app, ["strategies"], env={"COLUMNS": "80"})
    assert res.exit_code == 0 and "…" not in res.output
    assert max(len(line) for line in res.output.splitlines()) <= 80
    words = set(res.output.replace(",", " ").split())
    for r in listed:
        assert r["name"] in words and set(r["params"]) <= words, r["name"]
    res = runner.invoke(app, ["models"], env={"COLUMNS": "80"})
    assert res.exit_code == 0 and "…" not in res.output and "logreg" in res.output.split()


def test_errors_and_help_keep_bracketed_text():
    """``pip install 'alloop[dask]'`` must reach the user whole: rich markup would read ``[dask]`` as a style."""
    import typer

    from alloop._cli_errors import friendly
    from alloop.errors import require_extra

    tiny = typer.Typer()

    @tiny.command()
    @friendly
    def go() -> None:
        require_extra("alloop_module_that_is_not_installed", "dask")  # the real missing-extra error

    res = runner.invoke(tiny, [])
    assert res.exit_code == 2
    assert res.output.startswith("error: ") and res.output.count("\n") == 1, res.output  # one line, never wrapped
    assert "pip install 'alloop[dask]'" in res.output
    assert "Traceback" not in res.output
    for command, extra in (("score", "dask"), ("meta-train", "dask"), ("serve", "server")):
        res = runner.invoke(app, [command, "--help"], env={"COLUMNS": "300"})
        assert f"pip install 'alloop[{extra}]'" in " ".join(res.output.split()), command


def test_strategies_json_lists_discovered_strategies():
    res = runner.invoke(app, ["strategies", "--json"])
    assert res.exit_code == 0
    rows = {r["name"]: r for r in json.loads(res.output)}
    assert {"margin", "entropy", "least-confidence", "random"} <= set(rows)
    assert rows["margin"]["needs"] == ["probs"] and rows["random"]["params"] == ["seed"]
    assert rows["margin"]["kind"] == "pool" and rows["margin"]["batch_aware"] is False
    assert rows["entropy"]["cost"] == "O(n)"
    kinds = [r["kind"] for r in rows.values()]
    assert kinds.count("pool") >= 40 and kinds.count("stream") >= 8
    assert rows["stream-variable-uncertainty"]["needs"] == ["probs"]
    assert rows["coreset"]["batch_aware"] is True


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(f'directory = "{tmp_path / "camp"}"\n' + body)
    return path


GOOD = """
[data]
source = "wine"
[loop]
strategy = "entropy"
initial = 10
batch_size = 5
budget = 25
seed = 4
"""


def test_run_config_typo_names_field_and_fix(tmp_path):
    path = _config(tmp_path, GOOD.replace("batch_size", "batch_sise"))
    res = runner.invoke(app, ["run", str(path)])
    assert res.exit_code == 2
    assert "loop.batch_sise: unknown field; did you mean 'batch_size'?" in res.output.replace("\n", "")
    assert not (tmp_path / "camp").exists()
    res = runner.invoke(app, ["run", str(_config(tmp_path, GOOD.replace("initial = 10", "initial = 0")))])
    assert res.exit_code == 2 and "loop.initial" in res.output
    bad = GOOD + "compute_saving = 'sometimes'\n"
    res = runner.invoke(app, ["run", str(_config(tmp_path, bad))])
    assert res.exit_code == 2 and "loop.compute_saving" in res.output.replace("\n", "")
    assert not (tmp_path / "camp").exists()


def test_run_config_turns_compute_saving_on(tmp_path):
    res = runner.invoke(app, ["run", str(_config(tmp_path, GOOD + "compute_saving = 'on'\n"))])
    assert res.exit_code == 0, res.output
    store = CampaignStore(tmp_path / "camp")
    assert store.get_meta("compute_saving") not in (None, False, "off")
    assert any(r.get("records_unlabeled") is not None for r in store.values("compute").values())


def test_run_config_shares_features_for_diversity_strategies(tmp_path):
    body = GOOD.replace('strategy = "entropy"', 'strategy = "coreset"')
    for sub in ("off", "on", "both"):
        (tmp_path / sub).mkdir()
    res = runner.invoke(app, ["run", str(_config(tmp_path / "off", body))])
    assert res.exit_code == 2 and "share_features=True" in res.output
    res = runner.invoke(app, ["run", str(_config(tmp_path / "on", "[model]\nshare_features = true\n" + body))])
    assert res.exit_code == 0, res.output
    assert len(CampaignStore(tmp_path / "on" / "camp").selections()) == 4  # the initial set and 3 batches
    both = "[model]\nshare_features = true\nlearner = 'mypkg.mod:make'\n" + body
    res = runner.invoke(app, ["run", str(_config(tmp_path / "both", both))])
    assert res.exit_code == 2 and "share_features applies to the built-in model only" in res.output
    sim = ["simulate", "--data", "iris", "--strategy", "coreset", "--json", str(tmp_path / "s.json"), "--budget", "30"]
    res = runner.invoke(app, [*sim, "--seeds", "1"])
    assert res.exit_code == 2 and "--embeddings features" in " ".join(res.output.split())
    res = runner.invoke(app, [*sim, "--seeds", "1", "--embeddings", "features"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "s.json").read_text())["protocol"]["embeddings"] == "features"


def test_run_review_resume_and_export(tmp_path):
    path = _config(tmp_path, GOOD)
    res = runner.invoke(app, ["run", str(path), "--review"])
    assert res.exit_code == 0, res.output
    review = tmp_path / "camp" / "review" / "loop-0001.csv"
    assert review.exists() and "--resume" in res.output
    ids = [ln.split(",")[0] for ln in review.read_text().splitlines()[1:]]
    review.write_text("id\n" + "\n".join(ids[:3]) + "\n")
    res = runner.invoke(app, ["run", str(path), "--resume"])
    assert res.exit_code == 0, res.output
    store = CampaignStore(tmp_path / "camp")
    assert store.loops()[1]["hand_edited"] is True and len(store.selections()[1]) == 3
    assert store.loops()[-1]["phase"] == "review"  # review mode persists: next batch waits again
    out = tmp_path / "labels.parquet"
    res = runner.invoke(app, ["export", str(tmp_path / "camp"), "--out", str(out)])
    assert res.exit_code == 0
    assert pq.read_table(out).num_rows == 13


def test_module_entry_point_runs_in_a_real_process():
    out = subprocess.run(
        [sys.executable, "-m", "alloop", "strategies", "--json"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert any(r["name"] == "margin" for r in json.loads(out.stdout))


def test_export_of_missing_campaign_is_a_clear_error(tmp_path):
    res = runner.invoke(app, ["export", str(tmp_path / "none"), "--out", str(tmp_path / "x.csv")])
    assert res.exit_code == 2 and "No campaign" in res.output


def test_run_with_user_learner_function(tmp_path, monkeypatch):
    (tmp_path / "my_learner.py").write_text(
        "from sklearn.naive_bayes import GaussianNB\n"
        "from alloop.loop import SklearnLearner\n"
        "CALLS = []\n"
        "def make(dataset, train_ids, test_ids, seed):\n"
        "    CALLS.append(seed)\n"
        "    rows = {int(i): j for j, i in enumerate(dataset.ids)}\n"
        "    tr = [rows[int(i)] for i in train_ids]; te = [rows[int(i)] for i in test_ids]\n"
        "    return SklearnLearner(GaussianNB(), dataset.X[tr], train_ids, eval_X=dataset.X[te],\n"
        "                          eval_y=dataset.y[te], classes=dataset.classes)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = _config(tmp_path, GOOD.replace("[loop]", '[model]\nlearner = "my_learner:make"\n[loop]'))
    res = runner.invoke(app, ["run", str(path)])
    assert res.exit_code == 0, res.output
    import my_learner

    assert my_learner.CALLS == [4]
    store = CampaignStore(tmp_path / "camp")
    assert len(store.labels()) == 25
    bad = _config(tmp_path, GOOD.replace("[loop]", '[model]\nlearner = "my_learner.make"\n[loop]'))
    res = runner.invoke(app, ["run", str(bad)])
    assert res.exit_code == 2 and "model.learner" in res.output and "package.module:function" in res.output
