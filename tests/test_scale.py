"""Scale-out on Dask: distributed results must equal the single-process ones, on a real local cluster."""

from __future__ import annotations

import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alloop.errors import ConfigError, DataError, MissingDependencyError
from alloop.metadata import History, Snapshot
from alloop.scale import (
    list_pieces,
    map_partitions,
    parse_cluster,
    run_simulation_on_cluster,
    score_top_k,
    select_from_snapshot,
    update_history,
    write_snapshot_parts,
)
from alloop.scale._cluster import SCHEDULER_KWARGS
from alloop.strategies import SelectionContext, make_strategy

distributed = pytest.importorskip("distributed")


def _start_cluster(attempts: int = 3):
    """A 2-worker LocalCluster; starting one on a busy 2-core machine can time out, so retry a few times."""
    last: BaseException | None = None
    for _ in range(attempts):
        try:
            return distributed.LocalCluster(
                n_workers=2,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
                scheduler_kwargs=SCHEDULER_KWARGS,  # HTTP routes on a free port, not 8787 (maybe taken)
                timeout="120s",
            )
        except Exception as exc:  # noqa: BLE001 - retried, then re-raised
            last = exc
    assert last is not None
    raise last


@pytest.fixture(scope="module")
def client():
    cluster = _start_cluster()
    c = distributed.Client(cluster, set_as_default=False, timeout="120s")
    yield c
    c.close()
    cluster.close()


def _tied_probs(n: int, n_classes: int, seed: int, dtype: type) -> np.ndarray:
    """Rows drawn from only 7 distinct rows: every score is tied with hundreds of others, across files."""
    rng = np.random.default_rng(seed)
    base = rng.dirichlet(np.ones(n_classes), size=7)
    return base[rng.integers(0, 7, size=n)].astype(dtype)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
    out = tmp_path_factory.mktemp("snap")
    probs = _tied_probs(3000, 4, 0, np.float32)
    ids = np.arange(10_000, 13_000, dtype=np.int64)
    write_snapshot_parts(out, ids, probs, rows_per_file=1100, row_group_rows=250)  # 3 files, 12 row groups
    return out, ids, probs


def _single_process(ids, probs, spec, k, seed=0, loop=0):
    n = ids.size
    ctx = SelectionContext(ids=ids, index=np.arange(n), probs=probs, n_classes=probs.shape[1], seed=seed, loop=loop)
    strat = make_strategy(spec)
    return strat.select(ctx, k), strat.score(ctx)


SPECS = ["least-confidence", "margin", "entropy", "ratio", "gini", "random", "random(seed=5)"]


@pytest.mark.parametrize("spec", SPECS)
def test_distributed_top_k_equals_single_process(client, sharded, spec):
    path, ids, probs = sharded
    want_ids, all_scores = _single_process(ids, probs, spec, 500, seed=3)
    pos = {v: i for i, v in enumerate(ids.tolist())}
    for cluster in (client, None):
        got = score_top_k(path, spec, 500, cluster=cluster, seed=3, rows_per_piece=300)
        assert got.ids.tolist() == want_ids.tolist()
        assert np.array_equal(got.scores, all_scores[[pos[v] for v in want_ids.tolist()]])
        assert got.exact and got.n_records == 3000


def test_ties_cross_partition_boundaries(sharded):
    """The check above is meaningful: the k-th score is shared by rows in more than one file."""
    _, ids, probs = sharded
    want, scores = _single_process(ids, probs, "margin", 500)
    kth = scores[np.searchsorted(ids, want[-1])]
    tied_rows = np.flatnonzero(scores == kth)
    assert len({int(r) // 1100 for r in tied_rows}) > 1
    assert np.isin(ids[tied_rows], want).any() and not np.isin(ids[tied_rows], want).all()


@pytest.mark.parametrize("spec", ["least-confidence", "margin", "entropy", "ratio"])
def test_float16_class_columns_and_string_ids(client, tmp_path, spec):
    probs = _tied_probs(900, 3, 1, np.float16)
    ids = np.array([f"r{i:04d}" for i in range(900)])
    for part, lo in enumerate(range(0, 900, 300)):
        table = pa.table({"id": ids[lo : lo + 300], **{f"c{j}": probs[lo : lo + 300, j] for j in range(3)}})
        pq.write_table(table, tmp_path / f"part-{part}.parquet", row_group_size=100)
    want, scores = _single_process(ids, probs, spec, 50)
    got = score_top_k(str(tmp_path / "*.parquet"), spec, 50, cluster=client)
    assert got.ids.tolist() == want.tolist()
    assert np.array_equal(got.scores, scores[np.searchsorted(ids, want)])


def test_k_larger_than_pool_and_zero(sharded):
    path, ids, probs = sharded
    want, _ = _single_process(ids, probs, "entropy", 5000)
    assert score_top_k(path, "entropy", 5000, rows_per_piece=700).ids.tolist() == want.tolist()
    assert score_top_k(path, "entropy", 0).ids.size == 0


def test_bad_rows_name_the_file(tmp_path):
    probs = np.full((10, 2), 0.5)
    probs[7] = [0.9, 0.9]
    write_snapshot_parts(tmp_path, np.arange(10), probs, rows_per_file=5)
    with pytest.raises(DataError, match=r"part-00001\.parquet \(rows counted from global row 5\): Row 2"):
        score_top_k(tmp_path, "margin", 3)


def test_two_stage_diversity(client, tmp_path):
    rng = np.random.default_rng(0)
    n = 600
    emb = rng.normal(size=(n, 3)).astype(np.float32)
    probs = rng.dirichlet(np.ones(3), size=n)
    ids = np.arange(n)
    write_snapshot_parts(tmp_path, ids, probs, rows_per_file=200, embeddings=emb)
    ctx = SelectionContext(ids=ids, index=ids, probs=probs, embeddings=emb, n_classes=3)
    want = make_strategy("coreset").select(ctx, 10)
    one = score_top_k(tmp_path, "coreset", 10, rows_per_piece=10_000, prefilter=100)  # each file its own piece
    assert not one.exact and one.ids.size == 10 and np.unique(one.ids).size == 10
    whole = score_top_k(tmp_path / "part-00000.parquet", "coreset", 10)
    sub = SelectionContext(ids=ids[:200], index=ids[:200], probs=probs[:200], embeddings=emb[:200], n_classes=3)
    assert whole.exact and whole.ids.tolist() == make_strategy("coreset").select(sub, 10).tolist()
    dist = score_top_k(tmp_path, "coreset", 10, cluster=client, rows_per_piece=10_000, prefilter=100)
    assert dist.ids.tolist() == one.ids.tolist()
    assert np.isin(dist.ids, ids).all() and want.size == 10


def test_unsupported_strategy_and_cluster_specs(sharded):
    path, _, _ = sharded
    with pytest.raises(ConfigError, match="needs the whole pool"):
        score_top_k(path, "soft-margin", 3)
    for bad in ("local:0", "spark://x", "tcp://nohost"):
        with pytest.raises(ConfigError, match="cluster"):
            parse_cluster(bad)


def test_cluster_without_dask_says_how_to_install(sharded, monkeypatch):
    path, _, _ = sharded
    monkeypatch.setitem(sys.modules, "distributed", None)  # import fails, as when the extra is absent
    with pytest.raises(MissingDependencyError, match=r"pip install 'alloop\[dask\]'"):
        score_top_k(path, "margin", 3, cluster="local:1")
    monkeypatch.setenv("ALLOOP_DASK_SCHEDULER", "local:1")
    with pytest.raises(MissingDependencyError):
        score_top_k(path, "margin", 3)
    monkeypatch.delenv("ALLOOP_DASK_SCHEDULER")
    assert score_top_k(path, "margin", 3).ids.size == 3  # single-process still works


def _predict(model, frame):
    return model.predict_proba(frame.to_numpy())


def test_map_partitions_inference(client, tmp_path):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    model = LogisticRegression(max_iter=500).fit(X, y)
    for part, lo in enumerate(range(0, 150, 50)):
        pq.write_table(pa.table({"id": np.arange(lo, lo + 50), **{f"x{j}": X[lo : lo + 50, j] for j in range(4)}}),
                       tmp_path / f"f-{part}.parquet")
    written = map_partitions(str(tmp_path / "f-*.parquet"), _predict, model, tmp_path / "snap", cluster=client)
    assert len(written) == 3
    got = score_top_k(tmp_path / "snap", "margin", 7, cluster=client)
    want, _ = _single_process(np.arange(150), model.predict_proba(X), "margin", 7)
    assert got.ids.tolist() == want.tolist()


def test_history_per_partition_equals_history(client, tmp_path):
    rng = np.random.default_rng(2)
    ids = np.arange(90)
    h = History()
    state = None
    for loop in range(3):
        probs = rng.dirichlet(np.ones(3), size=90)
        write_snapshot_parts(tmp_path / f"s{loop}", ids, probs, rows_per_file=40)
        h.update(ids, Snapshot(ids=ids, probs=probs), loop=loop)
        paths = update_history(tmp_path / f"s{loop}", tmp_path / "h", loop=loop, state_dir=state, cluster=client)
        state = tmp_path / "h"
    table = pa.concat_tables([pq.read_table(p) for p in paths])
    assert np.array_equal(table.column("flips").to_numpy(), h.flips[:90])
    for s in ("confidence", "margin", "entropy"):
        assert np.array_equal(table.column(f"{s}_mean").to_numpy(), h.mean[s][:90])
        assert np.array_equal(table.column(f"{s}_m2").to_numpy(), h.m2[s][:90])


def test_simulation_on_cluster_equals_simulate(client):
    from alloop.bench import simulate

    kwargs = dict(model="gaussian-nb", strategies=["margin", "random"], initial=6, batch=3, budget=12, seeds=3,
                  test_size=0.3)
    want = simulate("iris", **kwargs)
    got = run_simulation_on_cluster("iris", cluster=client, **kwargs)
    for r in (*want["results"].values(), *got["results"].values()):
        r.pop("seconds")
        cpu = r.get("compute", {})  # measured CPU seconds differ run to run; the record counts do not
        for key in [k for k in cpu if k.endswith("cpu_s")] + ["from_scratch"]:
            cpu.pop(key, None)
    assert got == want


def test_score_cli(client, sharded, tmp_path):
    import typer
    from typer.testing import CliRunner

    from alloop._cli_score import score_command

    app = typer.Typer()
    app.command("score")(score_command)
    app.command("noop")(lambda: None)
    path, ids, probs = sharded
    out = tmp_path / "ids.parquet"
    addr = client.scheduler.address
    res = CliRunner().invoke(app, ["score", "--data", str(path), "--strategy", "margin", "--k", "20",
                                   "--cluster", addr, "--out", str(out)])
    assert res.exit_code == 0, res.output
    table = pq.read_table(out)
    assert table.column_names == ["id", "score", "rank"]
    want, _ = _single_process(ids, probs, "margin", 20)
    assert table.column("id").to_pylist() == want.tolist()
    assert table.column("rank").to_pylist() == list(range(1, 21))
    res = CliRunner().invoke(app, ["score", "--data", str(tmp_path / "none*.parquet"), "--strategy", "margin",
                                   "--k", "2", "--out", str(out)])
    assert res.exit_code == 2 and "matched no Parquet file" in res.output


def test_pieces_follow_row_groups(sharded):
    path, _, _ = sharded
    pieces = list_pieces(path, rows_per_piece=500)
    assert [p.offset for p in pieces][:3] == [0, 500, 1000]
    assert sum(p.n_rows for p in pieces) == 3000


def test_campaign_snapshot_file_matches_engine(client, tmp_path):
    """A snapshot the Campaign stores (Snapshot.to_parquet) scores like SelectionEngine.recommend."""
    from alloop.engine import SelectionEngine

    probs = _tied_probs(400, 3, 4, np.float64)
    ids = np.arange(400) * 3
    snap = Snapshot(ids=ids, probs=probs, embeddings=np.ones((400, 2)))
    snap.to_parquet(tmp_path / "loop-0002.parquet")
    for spec in ("margin", "random"):
        engine = SelectionEngine(strategy=spec, seed=9)
        engine.add_records(ids)
        engine.ingest(snap, loop=2)
        want = engine.recommend(25, loop=2).ids
        got = score_top_k(tmp_path / "loop-0002.parquet", spec, 25, seed=9, loop=2, rows_per_piece=64)
        assert got.ids.tolist() == want.tolist()
        hooked = select_from_snapshot(tmp_path / "loop-0002.parquet", ids, spec, 25, cluster=client, seed=9, loop=2)
        assert hooked is not None and hooked.ids.tolist() == want.tolist()
    path = tmp_path / "loop-0002.parquet"
    assert select_from_snapshot(path, ids, "margin", 5) is None  # no cluster configured: the engine ranks
    assert select_from_snapshot(path, ids[1:], "margin", 5, cluster=client) is None  # candidates changed
    assert select_from_snapshot(path, ids, "coreset", 5, cluster=client) is None  # not per-record


def test_campaign_on_a_cluster_selects_exactly_like_the_engine(client, tmp_path):
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from alloop.labeling import SimulatedOracle
    from alloop.loop import Campaign, SklearnLearner

    X, y = load_iris(return_X_y=True)
    ids = np.arange(0, 150, 2)

    def make(path, **kw):
        learner = SklearnLearner(LogisticRegression(max_iter=500), X[ids], ids, classes=[0, 1, 2])
        oracle = SimulatedOracle(truth=dict(zip(ids.tolist(), y[ids].tolist(), strict=True)))
        return Campaign(path, learner=learner, labeler=oracle, pool=ids, classes=[0, 1, 2],
                        initial=6, batch_size=4, max_loops=4, seed=2, strategy="margin", **kw)  # fmt: skip

    local = make(tmp_path / "local")
    local.run()
    dask = make(tmp_path / "dask", cluster=client)
    dask.run()
    assert dask.store.selections() == local.store.selections()
    assert any("on Dask" in row["reason"] for row in dask.loops())  # the cluster really ranked some loops


def test_engine_service_ranks_on_the_cluster_like_the_engine(client, tmp_path):
    from alloop import Snapshot
    from alloop.engine.service import EngineService, arrow_ipc_bytes

    rng = np.random.default_rng(5)
    ids = np.arange(500, 1100)
    probs = rng.dirichlet([0.5, 0.5, 0.5], size=ids.size)
    results = {}
    for name, cluster in (("plain", None), ("dask", client)):
        svc = EngineService(f"sqlite:///{tmp_path}/{name}.db", tmp_path / name, cluster=cluster)
        pid, _ = svc.create_project(name=name, classes=[0, 1, 2])
        svc.add_records(pid, ids)
        for c, part in enumerate(np.array_split(np.arange(ids.size), 3)):
            svc.put_chunk(pid, 0, c, arrow_ipc_bytes(Snapshot(ids=ids[part], probs=probs[part]).to_arrow()))
        svc.commit_snapshot(pid, 0, 3)
        results[name] = svc.recommend(pid, 25, strategy="margin", loop=1)
        svc.close()
    assert results["dask"].ids.tolist() == results["plain"].ids.tolist()
    assert "on Dask" in results["dask"].reason and "on Dask" not in results["plain"].reason


def test_meta_train_on_the_cluster_equals_the_process_pool(client, tmp_path):
    import typer
    from typer.testing import CliRunner

    from alloop._cli_meta_train import meta_train_command
    from alloop.engine.learned import FAMILIES, load_selector, meta_train

    kw = dict(families=FAMILIES[:2], seeds=2, seed=3, episode={"budget": 16, "lookahead": 2})
    pool = meta_train(workers=2, **kw)
    seen: list[str] = []
    dask = meta_train(cluster=client, progress=seen.append, **kw)
    assert sorted(seen) == sorted([FAMILIES[0]] * 4 + [FAMILIES[1]] * 4)  # a tick per campaign (2 seeds x 2 models)
    for name in ("W1", "b1", "w2", "mean", "scale"):
        assert np.array_equal(getattr(dask, name), getattr(pool, name)), name
    assert dask.meta == pool.meta

    app = typer.Typer()
    app.command()(meta_train_command)
    out = tmp_path / "sel.json"
    address = client.scheduler.address  # the CLI connects to the running cluster by tcp:// address
    args = ["--out", str(out), "--seeds", "2", "--seed", "3", "--budget", "16", "--lookahead", "2", "--no-progress",
            "--cluster", address] + [a for fam in FAMILIES[2:] for a in ("--exclude", fam)]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    sel = load_selector(out)
    assert np.array_equal(sel.W1, pool.W1) and f"--cluster {address}" in sel.meta["command"]


def _task_threads() -> tuple[bool, int]:
    import numba

    from alloop.scale._cluster import in_dask_task

    return in_dask_task(), numba.get_num_threads()


def test_tasks_run_on_one_thread_and_come_back_in_order(client):
    from alloop.scale._cluster import gather_in_order, in_dask_task, submit

    # the fixture's workers are plain LocalCluster workers (no NUMBA_NUM_THREADS): the task wrapper alone must
    # keep numba and Arrow on the task's thread, so one worker with threads_per_worker=1 is one core
    assert submit(client, _task_threads).result() == (True, 1)
    assert not in_dask_task()
    done: list[int] = []
    futures = [submit(client, pow, i, 2) for i in range(6)]
    assert gather_in_order(futures, done.append) == [0, 1, 4, 9, 16, 25]
    assert sorted(done) == [0, 1, 4, 9, 16, 25]
