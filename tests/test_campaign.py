"""The Campaign state machine: stopping rules, review, partial batches, pool changes, errors, export."""

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from alloop.errors import ConfigError, DataError, LabelError, StateError, StoreError, UnknownRecordError
from alloop.labeling import LabelEvent, SimulatedOracle
from alloop.loop import Campaign, FunctionLearner, SklearnLearner, export_labels
from alloop.metadata import Snapshot
from alloop.records import RecordState
from alloop.store import CampaignStore

X, Y = load_iris(return_X_y=True)
TRAIN = np.arange(0, 150, 3).tolist() + np.arange(1, 150, 3).tolist()
TEST = np.arange(2, 150, 3)
IDS = np.array(sorted(TRAIN))


def make(tmp_path: Path, **kw):
    learner = kw.pop("learner", None) or SklearnLearner(
        LogisticRegression(max_iter=500), X[IDS], IDS, eval_X=X[TEST], eval_y=Y[TEST], classes=[0, 1, 2]
    )
    oracle = kw.pop("labeler", None) or SimulatedOracle(truth=dict(zip(IDS.tolist(), Y[IDS].tolist(), strict=True)))
    args = {"pool": IDS, "classes": [0, 1, 2], "initial": 6, "batch_size": 5, "budget": 26, "seed": 1}
    args.update(kw)
    return Campaign(tmp_path / "c", learner=learner, labeler=oracle, **args), learner, oracle


def test_budget_is_exact_and_selections_are_unique(tmp_path):
    camp, _, _ = make(tmp_path)
    result = camp.run()
    assert result.stop_reason == "budget"
    assert result.n_labeled == 26
    sel = camp.store.selections()
    assert [len(sel[k]) for k in sorted(sel)] == [6, 5, 5, 5, 5]
    flat = [i for v in sel.values() for i in v]
    assert len(flat) == len(set(flat)) == 26
    metrics = camp.metrics()
    assert sorted(metrics) == [0, 1, 2, 3, 4]
    assert [metrics[k]["n_labeled"] for k in sorted(metrics)] == [6, 11, 16, 21, 26]
    assert all(0 <= m["accuracy"] <= 1 for m in metrics.values())
    comp = camp.compute()
    assert comp[1]["records_inferred"] == len(IDS) - 11  # unlabeled after loop 1's labels
    assert comp[1]["train_cpu_s"] >= 0


def test_same_seed_same_selection_and_different_seed_differs(tmp_path):
    a, _, _ = make(tmp_path / "a")
    b, _, _ = make(tmp_path / "b")
    c, _, _ = make(tmp_path / "c", seed=2)
    for camp in (a, b, c):
        camp.run()
    assert a.store.selections() == b.store.selections()
    assert a.store.selections() != c.store.selections()


def test_margin_selects_least_certain_records(tmp_path):
    camp, learner, _ = make(tmp_path, max_loops=1, budget=None)
    camp.run()
    snap = Snapshot.from_parquet(camp.store.snapshot_path(0))
    initial = set(camp.engine.pool.ids_at(np.array(camp.store.selections()[0])).tolist())
    assert initial <= set(snap.ids.tolist())  # loop 0 also infers the initial set, once
    snap = snap.subset(np.array([i not in initial for i in snap.ids.tolist()]))
    part = np.sort(snap.probs, axis=1)
    margin = part[:, -1] - part[:, -2]
    expected = snap.ids[np.argsort(margin, kind="stable")[:5]]
    chosen = camp.engine.pool.ids_at(np.array(camp.store.selections()[1]))
    assert chosen.tolist() == expected.tolist()


def test_max_loops_and_target_stop(tmp_path):
    camp, _, _ = make(tmp_path / "m", max_loops=2, budget=None)
    assert camp.run().stop_reason == "max_loops"
    assert max(camp.metrics()) == 2
    camp2, _, _ = make(tmp_path / "t", budget=None, target={"accuracy": 0.5})
    result = camp2.run()
    assert result.stop_reason == "target"
    last = max(camp2.metrics())
    assert camp2.metrics()[last]["accuracy"] >= 0.5
    assert all(camp2.metrics()[k]["accuracy"] < 0.5 for k in range(last))


def test_pool_exhausted(tmp_path):
    camp, _, _ = make(tmp_path, budget=None, batch_size=40, initial=20)
    assert camp.run().stop_reason == "pool_exhausted"
    assert camp.n_labeled == len(IDS)


def test_step_never_blocks_and_labels_arrive_later(tmp_path):
    oracle = SimulatedOracle(truth=dict(zip(IDS.tolist(), Y[IDS].tolist(), strict=True)), latency=0.3)
    camp, _, _ = make(tmp_path, labeler=oracle)
    assert camp.step().action == "select"
    waiting = camp.step()
    assert (waiting.action, waiting.blocked) == ("wait", True)
    assert camp.n_pending == 6 and camp.n_labeled == 0
    result = camp.run(poll_interval=0.02)
    assert result.n_labeled == 26


def test_partial_batch_after_timeout(tmp_path):
    class Slow(SimulatedOracle):
        def poll(self):  # one record of each batch never comes back
            return [e for e in super().poll() if e.id != self.never]

    oracle = Slow(truth=dict(zip(IDS.tolist(), Y[IDS].tolist(), strict=True)))
    oracle.never = None
    camp, _, _ = make(tmp_path, labeler=oracle, label_timeout=0.0, max_loops=2, budget=None)
    camp.step()  # initial selection
    oracle.never = camp.engine.pool.ids(RecordState.SELECTED)[0]
    result = camp.run()
    assert result.stop_reason == "max_loops"
    assert camp.engine.pool.state_of([oracle.never])[0] == RecordState.SELECTED  # still pending, not lost
    assert camp.metrics()[0]["n_labeled"] == 5  # trained on the partial batch


def test_new_campaigns_select_with_auto_by_default(tmp_path):
    """auto is the default strategy of a new campaign; without embeddings it is exactly margin, and says so."""
    camp, _, _ = make(tmp_path / "a", max_loops=3, budget=None)
    camp.run()
    ref, _, _ = make(tmp_path / "m", max_loops=3, budget=None, strategy="margin")
    ref.run()
    loops = camp.loops()
    assert [lp["strategy"] for lp in loops[1:]] == ["auto"] * (len(loops) - 1) and len(loops) == 4
    assert all("auto[surprise]: margin (undecided" in lp["reason"] for lp in loops[1:])
    assert camp.store.selections() == ref.store.selections()


def test_review_callback_edits_batch_and_is_recorded(tmp_path):
    seen = []

    def review(proposed):
        seen.append(proposed)
        return proposed.ids[::-1][:3]  # keep three, reordered

    camp, _, _ = make(tmp_path, review=review, max_loops=1, budget=None)
    camp.run()
    assert len(seen) == 1 and seen[0].strategy == "auto" and len(seen[0]) == 5  # auto: the default of new campaigns
    loops = camp.loops()
    assert [r["hand_edited"] for r in loops] == [False, True]
    assert camp.engine.pool.ids_at(np.array(camp.store.selections()[1])).tolist() == seen[0].ids[::-1][:3].tolist()


def test_review_rejects_bad_batch_without_applying(tmp_path):
    camp, _, _ = make(tmp_path, review=lambda p: [p.ids[0], p.ids[0], 99999], max_loops=1, budget=None)
    with pytest.raises(DataError) as err:
        camp.run()
    msg = str(err.value)
    assert "listed twice" in msg and "99999" in msg and "not in the pool" in msg
    assert camp.store.last_loop()["phase"] == "inferred"  # loop 1 never started
    assert camp.n_pending == 0


def test_review_file_roundtrip(tmp_path):
    camp, learner, oracle = make(tmp_path, review="file", max_loops=1, budget=None)
    result = camp.run()
    assert result.stop_reason == "review"
    path = tmp_path / "c" / "review" / "loop-0001.csv"
    lines = path.read_text().splitlines()
    assert lines[0] == "id,score,rank,reason" and len(lines) == 6
    labeled = camp.labeled()[0][0]
    # a bad edit: a labeled id and an unknown id -> both reported, nothing applied
    path.write_text(f"id\n{labeled}\n123456\n")
    again = Campaign.resume(tmp_path / "c", learner=learner, labeler=oracle)
    with pytest.raises(DataError) as err:
        again.run()
    assert "labeled, not unlabeled" in str(err.value) and "123456" in str(err.value)
    assert again.store.last_loop()["phase"] == "review"
    keep = [ln.split(",")[0] for ln in lines[1:3]]
    path.write_text("id\n" + "\n".join(keep) + "\n")
    done = Campaign.resume(tmp_path / "c", learner=learner, labeler=oracle).run()
    assert done.stop_reason == "max_loops"
    assert camp.store.loops()[1]["hand_edited"] is True
    assert IDS[camp.store.selections()[1]].tolist() == [int(k) for k in keep]


def test_add_and_remove_records(tmp_path):
    extra = np.arange(150, 160)
    Xe = X[IDS[:10]] + 0.01
    camp, learner, oracle = make(tmp_path, max_loops=1, budget=None)
    camp.run()
    learner.add_data(extra, Xe)
    oracle._lookup().update({int(i): int(Y[j]) for i, j in zip(extra, IDS[:10], strict=True)})
    camp.add_records(extra)
    with pytest.raises(DataError):
        camp.add_records([150])  # already there, nothing changes
    assert camp.engine.pool.capacity == len(IDS) + 10
    victim = camp.labeled()[0][0]
    snap_victim = Snapshot.from_parquet(camp.store.snapshot_path(0)).ids[0]
    camp.remove_records([victim, snap_victim])
    assert victim not in camp.engine.pool
    assert all(r["idx"] != int(np.flatnonzero(IDS == victim)[0]) for r in camp.store.labels())
    for loop in (0, 1):
        assert snap_victim not in Snapshot.from_parquet(camp.store.snapshot_path(loop)).ids.tolist()
    with pytest.raises(UnknownRecordError):
        camp.remove_records([victim])
    resumed = Campaign.resume(tmp_path / "c", learner=learner, labeler=oracle)
    assert victim not in resumed.engine.pool and 155 in resumed.engine.pool
    assert resumed.n_labeled == camp.n_labeled


def test_bad_label_from_provider_stores_nothing(tmp_path):
    class Liar(SimulatedOracle):
        def poll(self):
            events = super().poll()
            return events[:-1] + [LabelEvent(id=events[-1].id, label="seven")]

    camp, _, _ = make(tmp_path, labeler=Liar(truth=dict(zip(IDS.tolist(), Y[IDS].tolist(), strict=True))))
    camp.step()
    with pytest.raises(LabelError, match="seven"):
        camp.step()
    assert camp.store.labels() == []
    assert camp.n_labeled == 0 and camp.n_pending == 6


def test_config_errors_name_the_field(tmp_path):
    with pytest.raises(ConfigError, match="'batch_size' parameter of Campaign must be an int >= 1. Got 0"):
        make(tmp_path, batch_size=0)
    with pytest.raises(ConfigError, match="Did you mean 'margin'"):
        make(tmp_path, strategy="margn")
    with pytest.raises(ConfigError, match="classes"):
        make(tmp_path, classes=[0])
    with pytest.raises(UnknownRecordError, match="initial_ids"):
        make(tmp_path, initial_ids=[1000])
    assert not (tmp_path / "c").exists()  # nothing written for a rejected configuration
    make(tmp_path)
    with pytest.raises(ConfigError, match="already holds a campaign"):
        make(tmp_path)
    with pytest.raises(StoreError, match="No campaign"):
        Campaign.resume(tmp_path / "nowhere", learner=None, labeler=None)


def test_learner_returning_wrong_ids_is_rejected(tmp_path):
    def infer(ids):
        return {i: [0.3, 0.3, 0.4] for i in ids[1:]}

    learner = FunctionLearner(lambda ids, y, warm: None, infer)
    camp, _, _ = make(tmp_path, learner=learner)
    camp.step(), camp.step(), camp.step()  # select, label, train
    with pytest.raises(DataError, match="no output for id"):
        camp.step()
    assert camp.store.last_loop()["phase"] == "trained"


def test_newer_schema_is_refused(tmp_path):
    camp, _, _ = make(tmp_path)
    with camp.store.transaction() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num='9999'")
    with pytest.raises(StoreError, match="newer alloop"):
        CampaignStore(tmp_path / "c")


def test_export_has_provenance(tmp_path):
    camp, _, _ = make(tmp_path, budget=16)
    camp.run()
    out = tmp_path / "labels.parquet"
    assert export_labels(tmp_path / "c", out) == 16
    table = pq.read_table(out)
    assert table.column_names == ["id", "label", "source", "annotator", "posterior", "loop", "model_version"]
    rows = table.to_pylist()
    truth = dict(zip(IDS.tolist(), Y[IDS].tolist(), strict=True))
    assert all(r["label"] == truth[r["id"]] and r["source"] == "oracle" for r in rows)
    assert {r["model_version"] for r in rows if r["loop"] == 0} == {None}
    assert {r["model_version"] for r in rows if r["loop"] == 2} == {"m0001"}
    csv_out = tmp_path / "labels.csv"
    export_labels(tmp_path / "c", csv_out)
    assert (
        csv_out.read_text().splitlines()[0].replace('"', "") == "id,label,source,annotator,posterior,loop,model_version"
    )
    with pytest.raises(ConfigError, match="parquet or .csv"):
        export_labels(tmp_path / "c", tmp_path / "labels.xlsx")


def test_state_error_when_selecting_needs_probs_before_inference(tmp_path):
    from alloop import SelectionEngine

    eng = SelectionEngine("margin", classes=[0, 1])
    eng.add_records([1, 2])
    with pytest.raises(StateError, match="ingest a Snapshot"):
        eng.recommend(1)


def test_stream_mode_dispatches_to_stream_campaign():
    from alloop.loop import StreamCampaign

    rng = np.random.default_rng(0)
    Xs = rng.normal(size=(1500, 2))
    ys = (Xs[:, 0] + 0.3 * rng.normal(size=1500) > 0).astype(int)
    learner = SklearnLearner(LogisticRegression(), Xs, classes=[0, 1])
    camp = Campaign(
        mode="stream",
        learner=learner,
        labeler=SimulatedOracle(truth=dict(enumerate(ys.tolist()))),
        classes=[0, 1],
        budget=0.1,
        block_size=50,
        retrain_every=100,
    )
    assert isinstance(camp, StreamCampaign)
    result = camp.run(range(1500))
    assert abs(result.labeled_fraction - 0.1) <= 0.01
    with pytest.raises(ConfigError, match="mode"):
        Campaign(mode="batch", learner=learner, labeler=None, classes=[0, 1])
    with pytest.raises(ConfigError, match="batch_size"):
        Campaign(mode="stream", learner=learner, labeler=None, classes=[0, 1], batch_size=5)


def test_stop_when_a_criterion_fires_and_resume_agrees(tmp_path):
    camp, learner, oracle = make(tmp_path, budget=None, max_loops=30, stop_when=["max-uncertainty"])
    result = camp.run()
    assert result.stop_reason == "stop:max-uncertainty"
    fired_at = camp._monitor.fired["max-uncertainty"]
    assert max(camp.metrics()) == fired_at < 30
    again = Campaign.resume(tmp_path / "c", learner=learner, labeler=oracle)
    assert again.stop_reason() == "stop:max-uncertainty" and again._monitor.fired == camp._monitor.fired
    with pytest.raises(ConfigError, match="stop_when"):
        make(tmp_path / "x", stop_when=["when-tired"])


def test_compute_saving_skips_inference_and_warm_starts(tmp_path):
    full, _, _ = make(tmp_path / "full", budget=None, max_loops=12, batch_size=2)
    full.run()
    from alloop.compute import ComputePolicy  # skipping on: "on" switches it off on a pool this small

    saving, _, _ = make(tmp_path / "save", budget=None, max_loops=12, batch_size=2, compute_saving=ComputePolicy())
    saving.run()
    inferred_full = sum(c["records_inferred"] for c in full.compute().values())
    inferred_save = sum(c["records_inferred"] for c in saving.compute().values())
    assert inferred_save < inferred_full  # stable, confident records were not re-inferred every loop
    modes = [row["train_mode"] for row in saving.loops()]
    assert modes[0] == "full" and {"warm", "incremental"} & set(modes)
    # the saving campaign still learns: within a few points of full retraining at the end
    last = max(full.metrics())
    assert saving.metrics()[last]["accuracy"] >= full.metrics()[last]["accuracy"] - 0.1


def test_auto_strategy_state_survives_resume(tmp_path):
    full, _, _ = make(tmp_path / "full", strategy="portfolio", budget=None, max_loops=6)
    full.run()
    part, learner, oracle = make(tmp_path / "part", strategy="portfolio", budget=None, max_loops=6)
    while part.store.last_loop() is None or part.store.last_loop()["loop"] < 3:
        part.step()
    part.close()
    state = CampaignStore(tmp_path / "part" / "c").get_meta("strategy_state")
    assert state is not None  # persisted with each selection
    resumed = Campaign.resume(tmp_path / "part" / "c", learner=learner, labeler=oracle)
    resumed.run()
    assert resumed.store.selections() == full.store.selections()
    assert "portfolio" in full.loops()[-1]["reason"] or full.loops()[-1]["strategy"].startswith("portfolio")


def test_sklearn_learner_shares_standardised_features_so_coreset_runs(tmp_path):
    """share_features: the snapshot's embeddings are the features standardised with fixed statistics."""
    learner = SklearnLearner(LogisticRegression(max_iter=500), X[IDS], IDS, classes=[0, 1, 2], share_features=True)
    learner.train(IDS[::9], Y[IDS[::9]], warm_start=False)
    snap = learner.infer(IDS[:4])
    mean, std = X[IDS].mean(axis=0), X[IDS].std(axis=0)
    assert snap.embeddings.dtype == np.float32
    assert np.allclose(snap.embeddings, (X[IDS[:4]] - mean) / std, atol=1e-6)
    learner.add_data(np.array([1000]), X[[2]] + 100.0)  # new rows do not move the statistics
    assert np.allclose(learner.infer(IDS[:4]).embeddings, snap.embeddings)
    plain = SklearnLearner(LogisticRegression(max_iter=500), X[IDS], IDS, classes=[0, 1, 2])
    plain.train(IDS[::9], Y[IDS[::9]], warm_start=False)
    assert plain.infer(IDS[:4]).embeddings is None  # off by default
    # a diversity strategy runs in a campaign when features are shared, and says how to share them when not
    camp, _, _ = make(
        tmp_path / "on",
        strategy="coreset",
        max_loops=2,
        budget=None,
        learner=SklearnLearner(LogisticRegression(max_iter=500), X[IDS], IDS, classes=[0, 1, 2], share_features=True),
    )
    camp.run()
    assert len(camp.store.selections()) == 3  # the initial set and two core-set batches
    off, _, _ = make(tmp_path / "off", strategy="coreset", max_loops=2, budget=None)
    with pytest.raises(ConfigError, match=r"share_features=True"):
        off.run()


def test_sklearn_learner_feature_sharing_errors_name_the_fix():
    learner = SklearnLearner(LogisticRegression(max_iter=500), X[IDS], IDS, classes=[0, 1, 2], share_features="yes")
    learner.train(IDS[::9], Y[IDS[::9]], warm_start=False)
    with pytest.raises(ConfigError, match=r"'share_features' parameter of SklearnLearner must be True or False"):
        learner.infer(IDS[:4])
    text = np.array([["a b"], ["c d"], ["e f"]], dtype=object)
    with pytest.raises(ConfigError, match=r"dense numeric 2-D feature matrix"):
        from alloop.loop._learner import feature_scaling

        feature_scaling(text, "SklearnLearner(share_features=True)")
