"""The compute-saving flag end to end: ComputePolicy, Campaign accounting, ``alloop simulate`` and ``report``."""

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
from alloop._cli_simulate import simulate_command
from alloop.bench import simulate
from alloop.compute import (
    FIELDS,
    LARGE_POOL,
    ComputePolicy,
    WarmStartLearner,
    campaign_savings,
    choose_inference,
    is_network,
    resolve_compute,
)
from alloop.compute._policy import lowest_k
from alloop.errors import ConfigError
from alloop.labeling import SimulatedOracle
from alloop.loop import Campaign, SklearnLearner
from alloop.metadata import History, Snapshot

X, Y = load_iris(return_X_y=True)
IDS = np.arange(0, 150, 2)
TEST = np.arange(1, 150, 2)


def test_resolve_compute_accepts_the_documented_flags():
    assert resolve_compute(False) is None and resolve_compute("off") is None and resolve_compute(None) is None
    assert isinstance(resolve_compute(True), ComputePolicy) and isinstance(resolve_compute("on"), ComputePolicy)
    policy = ComputePolicy(candidates=0.2, full_every=3)
    assert resolve_compute(policy) is policy
    assert resolve_compute(policy.to_config()).full_every == 3  # the stored form round-trips
    with pytest.raises(ConfigError, match="'compute_saving' parameter of Campaign"):
        resolve_compute("sometimes")
    with pytest.raises(ConfigError, match="'candidates' parameter of ComputePolicy"):
        resolve_compute(ComputePolicy(candidates=0))
    with pytest.raises(ConfigError, match="'refresh_every' parameter of InferencePolicy"):
        resolve_compute(ComputePolicy(refresh_every=0))


def _history(n: int, loops: int, seed: int = 0) -> History:
    rng = np.random.default_rng(seed)
    h = History()
    for loop in range(loops):
        p = rng.dirichlet(np.ones(3) * 0.3, size=n)
        h.update(np.arange(n), Snapshot(ids=np.arange(n), probs=p, classes=[0, 1, 2]), loop)
    return h


def test_choose_inference_caps_candidates_and_always_infers_new_records():
    h = _history(200, 3)
    idx = np.arange(250)  # 50 records History has never seen
    assert choose_inference(h, idx, 0, ComputePolicy()).tolist() == idx.tolist()  # loop 0: everything
    got = choose_inference(h, idx, 3, ComputePolicy(candidates=20, skip_inference=False, seed=1))
    assert set(range(200, 250)) <= set(got.tolist())  # never inferred: always
    assert (got < 200).sum() == 20  # the cap on previously inferred records
    again = choose_inference(h, idx, 3, ComputePolicy(candidates=20, skip_inference=False, seed=1))
    assert got.tolist() == again.tolist()  # seeded
    # the 18 most uncertain (lowest margin - 2 std) are kept, the other 2 are the random slice
    feats = h.features(np.arange(200))
    key = feats["margin_mean"] - 2 * np.sqrt(np.maximum(feats["margin_var"], 0))
    assert set(np.argsort(key, kind="stable")[:18].tolist()) <= set(got.tolist())


def _campaign(directory: Path, compute_saving: object) -> Campaign:
    learner = SklearnLearner(
        LogisticRegression(max_iter=300), X[IDS], IDS, eval_X=X[TEST], eval_y=Y[TEST], classes=[0, 1, 2]
    )
    oracle = SimulatedOracle(truth=dict(zip(IDS.tolist(), Y[IDS].tolist(), strict=True)))
    return Campaign(
        directory, learner=learner, labeler=oracle, pool=IDS, classes=[0, 1, 2], initial=6, batch_size=4,
        budget=30, seed=2, compute_saving=compute_saving,
    )  # fmt: skip


def test_campaign_accounting_sums_and_from_scratch_estimate(tmp_path):
    camp = _campaign(tmp_path / "on", ComputePolicy(full_every=3, drift_threshold=None, refresh_every=3))
    assert isinstance(camp.learner, WarmStartLearner) and camp.learner.policy.full_every == 3
    assert camp.run().stop_reason == "budget"
    per_loop = camp.compute()
    sav = camp.compute_savings()
    for f in FIELDS:  # totals are the sums of the stored per-loop figures
        assert sav["total"][f] == pytest.approx(sum(r.get(f, 0.0) for r in per_loop.values()))
    n_unl = {loop: r["records_unlabeled"] for loop, r in per_loop.items()}
    assert sav["baseline_total"]["records_inferred"] == pytest.approx(sum(n_unl.values()))
    assert sav["baseline_total"]["records_inferred"] >= sav["total"]["records_inferred"]
    assert sav["baseline_total"]["records_trained"] >= sav["total"]["records_trained"]
    assert any(r["records_inferred"] < r["records_unlabeled"] for r in per_loop.values())  # something skipped
    labeled = [camp.metrics()[loop]["n_labeled"] for loop in sorted(per_loop)]
    assert [per_loop[loop]["n_labeled"] for loop in sorted(per_loop)] == labeled
    camp.close()
    off = _campaign(tmp_path / "off", "off")
    assert not isinstance(off.learner, WarmStartLearner)
    off.run()
    base = off.compute_savings()
    assert base["total"]["records_inferred"] == base["baseline_total"]["records_inferred"]  # off = from scratch
    off.close()


def test_from_scratch_estimate_prices_the_full_counts():
    rows = {
        0: {"train_cpu_s": 1.0, "infer_cpu_s": 1.0, "records_trained": 10, "records_inferred": 100,
            "records_unlabeled": 100, "n_labeled": 10},
        1: {"train_cpu_s": 0.1, "infer_cpu_s": 0.2, "records_trained": 5, "records_inferred": 20,
            "records_unlabeled": 90, "n_labeled": 20},
    }  # fmt: skip
    rep = campaign_savings(rows)
    # full-retrain rate 0.1 s/record (loop 0), inference 1.2 s / 120 records
    assert rep["baseline_total"]["train_cpu_s"] == pytest.approx(0.1 * 30)
    assert rep["baseline_total"]["infer_cpu_s"] == pytest.approx(0.01 * 190)
    assert rep["baseline_total"]["cpu_s"] >= rep["total"]["cpu_s"]


def test_simulate_json_has_a_consistent_compute_field():
    kw = {"initial": 6, "batch": 6, "budget": 30, "seeds": 2, "test_size": 0.4}
    assert "compute" not in simulate("iris", "logreg", ["margin"], **kw)["results"]["margin"]  # not asked for
    off_out = simulate("iris", "logreg", ["margin"], compute_saving="off", **kw)
    off = off_out["results"]["margin"]["compute"]
    assert off_out["protocol"]["compute_saving"] is None
    out = simulate("iris", "logreg", ["margin"], compute_saving=ComputePolicy(candidates=10, full_every=2), **kw)
    on = out["results"]["margin"]["compute"]
    assert out["protocol"]["compute_saving"]["candidates"] == 10
    assert set(FIELDS) <= set(on) and on["cpu_s"] == pytest.approx(
        on["train_cpu_s"] + on["infer_cpu_s"] + on["select_cpu_s"], abs=1e-5
    )
    assert off["from_scratch"]["records_inferred"] == off["records_inferred"]  # off is the baseline itself
    # the same seeds label the same number of records per loop, so the from-scratch counts agree
    assert on["from_scratch"]["records_inferred"] == off["records_inferred"]
    assert on["from_scratch"]["records_trained"] == off["records_trained"]
    assert on["records_inferred"] < off["records_inferred"]


def test_cli_simulate_and_report_show_compute(tmp_path):
    app = typer.Typer()
    app.command("simulate")(simulate_command)
    app.command("report")(report_command)
    out = tmp_path / "sim.json"
    args = ["simulate", "--data", "iris", "--strategy", "margin", "--json", str(out), "--initial", "6"]
    res = CliRunner().invoke(app, [*args, "--batch", "6", "--budget", "18", "--seeds", "1", "--compute-saving", "on"])
    assert res.exit_code == 0, res.output
    assert "compute" in json.loads(out.read_text())["results"]["margin"]
    assert "× less" in res.output or "×)" in res.output
    bad = CliRunner().invoke(app, [*args, "--compute-saving", "maybe"])
    assert bad.exit_code == 2
    camp = _campaign(tmp_path / "c", True)
    camp.run()
    camp.close()
    report = build_report(tmp_path / "c")
    assert report["compute"]["total"]["records_inferred"] <= report["compute"]["from_scratch"]["records_inferred"]
    shown = CliRunner().invoke(app, ["report", str(tmp_path / "c")])
    assert shown.exit_code == 0 and "compute saved" in shown.output, shown.output


def test_the_policy_is_stored_and_rebuilt_on_resume(tmp_path):
    camp = _campaign(tmp_path / "r", ComputePolicy(full_every=3, candidates=7))
    for _ in range(6):
        camp.step()
    camp.close()
    learner = SklearnLearner(LogisticRegression(max_iter=300), X[IDS], IDS, classes=[0, 1, 2])
    oracle = SimulatedOracle(truth=dict(zip(IDS.tolist(), Y[IDS].tolist(), strict=True)))
    again = Campaign.resume(tmp_path / "r", learner=learner, labeler=oracle)
    assert isinstance(again.learner, WarmStartLearner) and again.learner.policy.full_every == 3
    assert again._inference_policy.candidates == 7
    again.run()
    assert again.compute_savings()["total"]["records_inferred"] > 0
    again.close()


def test_on_picks_the_policy_of_the_model_class_and_the_pool_size():
    net_small = resolve_compute("on", model="mlp", n_pool=LARGE_POOL - 1)
    assert (net_small.full_every, net_small.full_growth, net_small.drift_threshold) == (None, 2.0, None)
    assert (net_small.warm_epochs, net_small.replay) == (5, 100.0)  # warm phases on every labeled record
    assert net_small.skip_inference is False and net_small.candidates is None  # small pool: no inference saving
    net_large = resolve_compute(True, model="cnn", n_pool=LARGE_POOL)
    assert net_large.full_growth == 2.0 and net_large.skip_inference and net_large.candidates == 0.1
    assert net_large.refresh_every == 8
    other_small = resolve_compute("on", model="logreg", n_pool=500)
    assert (other_small.full_every, other_small.full_growth, other_small.drift_threshold) == (5, None, 0.02)
    assert other_small.skip_inference is False and other_small.candidates is None
    other_large = resolve_compute("on", model=LogisticRegression(), n_pool=10**6)
    assert other_large.full_every == 5 and other_large.candidates == 0.1 and other_large.skip_inference
    assert resolve_compute("on").to_config() == other_small.to_config()  # nothing known: not a network, small
    assert resolve_compute("off", model="mlp", n_pool=10**6) is None


def test_is_network_sees_through_names_estimators_and_learners():
    from alloop.loop import ModelLearner, TorchLearner
    from alloop.models import build_model

    Xs = np.zeros((4, 2))
    for net in ("mlp", "cnn", build_model("mlp"), SklearnLearner(build_model("mlp"), Xs), ModelLearner("mlp", Xs)):
        assert is_network(net) and is_network(WarmStartLearner(net) if not isinstance(net, str) else net)
    assert is_network(TorchLearner(lambda: None, Xs, classes=[0, 1]))  # built lazily: torch not needed here
    for other in ("logreg", "no-such-model", None, LogisticRegression(), SklearnLearner(LogisticRegression(), Xs)):
        assert not is_network(other)
    assert not is_network(ModelLearner("ensemble(logreg, k=2)", Xs))


def test_campaign_on_stores_the_policy_of_its_learner(tmp_path):
    from alloop.models import build_model

    oracle = SimulatedOracle(truth=dict(zip(IDS.tolist(), Y[IDS].tolist(), strict=True)))
    kw = {"labeler": oracle, "pool": IDS, "classes": [0, 1, 2], "compute_saving": "on"}
    net = Campaign(tmp_path / "n", learner=SklearnLearner(build_model("mlp"), X[IDS], IDS), **kw)
    assert net.config["compute_saving"]["full_growth"] == 2.0 and net.config["compute_saving"]["replay"] == 100.0
    assert net._inference_policy.skip_inference is False  # 75 records: a small pool
    net.close()
    lin = _campaign(tmp_path / "l", "on")
    assert lin.config["compute_saving"]["full_every"] == 5 and lin.config["compute_saving"]["full_growth"] is None
    lin.close()


def test_simulate_on_picks_the_policy_and_runs_blas_on_one_thread():
    from threadpoolctl import threadpool_info

    from alloop.bench.simulate import paired_split, run_campaign
    from alloop.datasets import load_dataset

    out = simulate("iris", "gaussian-nb", ["margin"], initial=6, batch=6, budget=18, seeds=1, compute_saving="on")
    assert out["protocol"]["compute_saving"]["skip_inference"] is False  # iris is a small pool
    assert out["protocol"]["compute_saving"]["full_every"] == 5
    seen: list[int] = []

    def advance() -> None:
        seen.extend(i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas")

    data = load_dataset("iris")
    train, test, init = paired_split(data.y, 0, 0.3, 6)
    run_campaign(data, "logreg", "margin", train=train, test=test, initial_rows=init, batch=6, budget=12, seed=0,
                 advance=advance)  # fmt: skip
    assert seen and set(seen) == {1}


def test_lowest_k_is_the_first_k_of_a_stable_argsort():
    rng = np.random.default_rng(3)
    for trial in range(300):
        key = rng.integers(0, 4, size=int(rng.integers(1, 40))).astype(float)
        if trial % 3 == 0:
            key[rng.random(key.size) < 0.3] = np.nan
        k = int(rng.integers(0, key.size + 2))
        got = lowest_k(key, k)
        assert got.tolist() == sorted(np.argsort(key, kind="stable")[:k].tolist())
