"""The fast ingest path: vectorised id lookup, cheap Snapshot validation, chunks committed without a re-read."""

from __future__ import annotations

import numpy as np
import pytest

from alloop import Snapshot
from alloop.engine.service import EngineService, arrow_ipc_bytes
from alloop.errors import DataError, DuplicateRecordError, StateError, UnknownRecordError
from alloop.records import Pool, first_duplicate


def _probs(rng: np.random.Generator, n: int, c: int = 3) -> np.ndarray:
    p = rng.random((n, c)) + 0.01
    return p / p.sum(axis=1, keepdims=True)


# ---- Pool lookup against a dict model ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "draw",
    [
        lambda rng, k: rng.integers(0, 300, k),  # compact ints: the dense table
        lambda rng, k: rng.integers(-(2**62), 2**62, k),  # sparse ints: sorted ids + searchsorted
        lambda rng, k: rng.integers(0, 300, k) * np.where(rng.random(k) < 0.05, 10**9, 1),  # dense, then too sparse
        lambda rng, k: np.array([f"r{v}" for v in rng.integers(0, 300, k)], dtype=object),  # strings
    ],
    ids=["dense", "sparse", "dense-to-sparse", "str"],
)
def test_pool_lookup_matches_a_dict_through_adds_and_removes(draw):
    rng = np.random.default_rng(0)
    pool, model = Pool(), {}
    for step in range(60):
        if step % 4 == 3 and model:  # remove a few live records
            gone = rng.choice(np.array(list(model), dtype=object), size=min(3, len(model)), replace=False)
            gone = np.array(gone.tolist(), dtype=object if isinstance(gone[0], str) else np.int64)
            assert pool.remove(gone).tolist() == [model.pop(v) for v in gone.tolist()]
            continue
        new = [v for v in dict.fromkeys(draw(rng, 5).tolist()) if v not in model]  # removed ids may come back
        if not new:
            continue
        index = pool.add(new)
        model.update(zip(new, index.tolist(), strict=True))
        probe = draw(rng, 40)
        mask = pool.contains(probe)
        assert mask.tolist() == [v in model for v in probe.tolist()]
        assert [v in pool for v in probe.tolist()] == mask.tolist()
        known = probe[mask]
        assert pool.index_of(known).tolist() == [model[v] for v in known.tolist()]
        if (~mask).any():
            with pytest.raises(UnknownRecordError, match="not in the pool"):
                pool.index_of(probe)
    assert len(pool) == len(model)
    live = pool.all_ids()[pool._alive]
    assert sorted(live.tolist()) == sorted(model)


def test_pool_rejects_present_and_repeated_ids_without_changing():
    pool = Pool()
    pool.add(np.arange(1000))
    with pytest.raises(DuplicateRecordError, match="already in the pool"):
        pool.add([5000, 999])
    with pytest.raises(DuplicateRecordError, match="the id 7 more than once"):
        pool.add([7, 8, 7])
    assert pool.capacity == 1000 and 5000 not in pool and "a" not in pool and 1.5 not in pool
    assert pool.contains(["a"]).tolist() == [False]


def test_first_duplicate_matches_brute_force():
    rng = np.random.default_rng(1)
    for _ in range(200):
        a = rng.integers(0, 8, rng.integers(0, 8))
        seen, want = set(), None
        for j, v in enumerate(a.tolist()):
            if v in seen:
                want = j
                break
            seen.add(v)
        assert first_duplicate(a) == want
        assert first_duplicate(np.array([str(v) for v in a.tolist()], dtype=object)) == want


# ---- Snapshot ---------------------------------------------------------------------------------------------
def test_snapshot_checks_still_name_the_problem():
    p = np.array([[0.5, 0.5], [0.2, 0.8]], dtype=np.float32)
    with pytest.raises(DataError, match="the id 3 appears more than once"):
        Snapshot(ids=[3, 3], probs=p)
    bad = p.copy()
    bad[1, 0] = np.nan
    with pytest.raises(DataError, match=r"NaN or infinite value at position \(1, 0\)"):
        Snapshot(ids=[1, 2], probs=bad)
    with pytest.raises(DataError, match=r"row 1 \(id 2\) sums to 1\.1"):
        Snapshot(ids=[1, 2], probs=np.array([[0.5, 0.5], [0.3, 0.8]]))


def test_concat_equals_one_snapshot_and_rejects_mismatches():
    rng = np.random.default_rng(2)
    whole = Snapshot(ids=np.arange(10), probs=_probs(rng, 10), embeddings=rng.random((10, 4)), classes=[0, 1, 2])
    parts = [whole.subset(np.arange(0, 4)), whole.subset(np.arange(4, 10))]
    both = Snapshot.concat(parts)
    assert both.ids.tolist() == whole.ids.tolist()
    assert np.array_equal(both.probs, whole.probs) and np.array_equal(both.embeddings, whole.embeddings)
    assert both.classes == [0, 1, 2]
    with pytest.raises(DataError, match="the id 3 appears more than once"):
        Snapshot.concat([parts[0], whole.subset(np.arange(3, 6))])
    with pytest.raises(DataError, match="Part 1 of the snapshot does not match"):
        Snapshot.concat([parts[0], Snapshot(ids=[20], probs=[[0.2, 0.3, 0.5]])])  # no embeddings, no classes
    with pytest.raises(DataError, match="selects row 1 more than once"):
        whole.subset(np.array([0, 1, 1]))


@pytest.mark.parametrize("ids", [np.arange(5) * 7, np.array(["a", "b", "c", "d", "e"], dtype=object)])
def test_arrow_round_trip_keeps_the_id_type(ids):
    snap = Snapshot(ids=ids, probs=_probs(np.random.default_rng(3), 5))
    back = Snapshot.from_arrow(snap.to_arrow())
    assert back.ids.dtype == snap.ids.dtype and back.ids.tolist() == snap.ids.tolist()
    assert np.array_equal(back.probs, snap.probs)


def test_from_arrow_rejects_null_ids():
    import pyarrow as pa

    table = Snapshot(ids=[1, 2], probs=[[0.5, 0.5], [0.5, 0.5]]).to_arrow()
    table = table.set_column(0, "id", pa.array([1, None], type=pa.int64()))
    with pytest.raises(DataError, match="null id"):
        Snapshot.from_arrow(table)


# ---- service: commit from the validated upload, or from the files after a restart --------------------------
def _upload(root, first: Snapshot, second: Snapshot) -> tuple[EngineService, str, str]:
    url = f"sqlite:///{root}/svc.db"
    svc = EngineService(url, root)
    pid, _ = svc.create_project(name="t", classes=[0, 1, 2])
    svc.add_records(pid, np.arange(100))
    svc.put_chunk(pid, 0, 0, arrow_ipc_bytes(first.to_arrow()))
    wrong = Snapshot(ids=second.ids, probs=second.probs[::-1])
    svc.put_chunk(pid, 0, 1, arrow_ipc_bytes(wrong.to_arrow()))
    svc.put_chunk(pid, 0, 1, arrow_ipc_bytes(second.to_arrow()))  # a corrected retry replaces the chunk
    assert svc.put_chunk(pid, 0, 1, arrow_ipc_bytes(second.to_arrow()))["status"] == "duplicate"
    return svc, url, pid


@pytest.mark.parametrize("restart", [False, True], ids=["kept-in-memory", "read-from-parquet"])
def test_commit_uses_the_stored_version_of_each_chunk(tmp_path, restart):
    rng = np.random.default_rng(4)
    first = Snapshot(ids=np.arange(50), probs=_probs(rng, 50).astype(np.float32))
    second = Snapshot(ids=np.arange(50, 100), probs=_probs(rng, 50).astype(np.float32))
    svc, url, pid = _upload(tmp_path, first, second)
    if restart:
        svc.close()
        svc = EngineService(url, tmp_path)
    assert svc.commit_snapshot(pid, 0, 2) == {"status": "committed", "loop": 0, "n_rows": 100}
    want = np.concatenate([first.probs, second.probs])
    assert np.array_equal(svc.engine(pid).history.probs[:100], want)
    svc.close()
    rebuilt = EngineService(url, tmp_path)  # replays the committed files: the same History
    assert np.array_equal(rebuilt.engine(pid).history.probs[:100], want)
    rebuilt.close()


def test_commit_rejects_an_id_sent_in_two_chunks(tmp_path):
    svc = EngineService(f"sqlite:///{tmp_path}/svc.db", tmp_path)
    pid, _ = svc.create_project(name="t", classes=[0, 1])
    svc.add_records(pid, [1, 2, 3])
    for c, ids in enumerate(([1, 2], [2, 3])):
        svc.put_chunk(pid, 0, c, arrow_ipc_bytes(Snapshot(ids=ids, probs=[[0.5, 0.5], [0.1, 0.9]]).to_arrow()))
    with pytest.raises(DataError, match="The id 2 appears in two parts of one snapshot"):
        svc.commit_snapshot(pid, 0, 2)
    assert svc.status(pid)["snapshots"] == []
    svc.close()


def test_commit_after_removing_a_record_uses_the_rewritten_chunk(tmp_path):
    svc = EngineService(f"sqlite:///{tmp_path}/svc.db", tmp_path)
    pid, _ = svc.create_project(name="t", classes=[0, 1])
    svc.add_records(pid, [1, 2, 3])
    snap = Snapshot(ids=[1, 2, 3], probs=[[0.5, 0.5], [0.1, 0.9], [0.3, 0.7]])
    svc.put_chunk(pid, 0, 0, arrow_ipc_bytes(snap.to_arrow()))
    svc.remove_records(pid, [2])  # rewrites the stored chunk: the copy kept from the upload is stale
    assert svc.commit_snapshot(pid, 0, 1)["n_rows"] == 2
    assert svc.recommend(pid, 1, loop=1).ids.tolist() == [1]
    svc.close()


def test_recommend_with_the_projects_own_spec_keeps_the_strategys_state(tmp_path):
    """A remote `auto` must not restart its bandit on every request that names the project's strategy."""
    svc = EngineService(f"sqlite:///{tmp_path}/svc.db", tmp_path)
    pid, _ = svc.create_project(name="t", classes=[0, 1, 2], strategy="auto")
    svc.add_records(pid, np.arange(60))
    rng = np.random.default_rng(0)
    svc.put_chunk(pid, 0, 0, arrow_ipc_bytes(Snapshot(ids=np.arange(60), probs=_probs(rng, 60)).to_arrow()))
    svc.commit_snapshot(pid, 0, 1)
    own = svc.engine(pid).strategy
    assert own.state_dict()["loop"] is None
    svc.recommend(pid, 5, strategy="auto", loop=0)
    assert svc.engine(pid).strategy is own and own.state_dict()["loop"] == 0
    svc.close()


# ---- concurrent chunk uploads ------------------------------------------------------------------------------
def _history_arrays(eng) -> dict[str, np.ndarray]:
    h = eng.history
    out = {k: v for k, v in vars(h).items() if isinstance(v, np.ndarray)}
    for name in ("mean", "m2", "ewm", "ring"):
        out.update({f"{name}.{s}": a for s, a in getattr(h, name).items()})
    return out


def test_concurrent_uploads_and_retries_commit_the_same_history_as_the_embedded_engine(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from alloop import SelectionEngine

    rng = np.random.default_rng(5)
    n, rows = 2000, 250
    snaps = [Snapshot(ids=np.arange(n), probs=_probs(rng, n).astype(np.float32)) for _ in range(2)]
    svc = EngineService(f"sqlite:///{tmp_path}/svc.db", tmp_path)
    pid, _ = svc.create_project(name="t", classes=[0, 1, 2])
    svc.add_records(pid, np.arange(n))
    emb = SelectionEngine("margin", classes=[0, 1, 2])
    emb.add_records(np.arange(n))
    for loop, snap in enumerate(snaps):
        bodies = [arrow_ipc_bytes(snap.subset(np.arange(s, s + rows)).to_arrow()) for s in range(0, n, rows)]
        jobs = [(c, b) for c, b in enumerate(bodies)] * 2  # every chunk twice: a retry racing its original
        rng.shuffle(jobs)
        with ThreadPoolExecutor(4) as pool:
            got = list(pool.map(lambda job, loop=loop: svc.put_chunk(pid, loop, *job)["status"], jobs))
        assert sorted(got) == ["duplicate"] * len(bodies) + ["stored"] * len(bodies)
        assert svc.commit_snapshot(pid, loop, len(bodies))["n_rows"] == n
        emb.ingest(snap, loop=loop)
        want, have = _history_arrays(emb), _history_arrays(svc.engine(pid))
        assert want.keys() == have.keys()
        for key, arr in want.items():
            assert np.array_equal(arr, have[key], equal_nan=arr.dtype.kind == "f"), key
    assert not list(tmp_path.rglob("*.tmp"))  # no temporary file is left behind
    with pytest.raises(StateError, match="already committed"):  # a late, different chunk never replaces one
        svc.put_chunk(pid, 1, 0, arrow_ipc_bytes(snaps[0].subset(np.arange(rows)).to_arrow()))
    assert svc.put_chunk(pid, 1, 0, bodies[0])["status"] == "duplicate"
    svc.close()


def test_remote_engine_uploads_chunks_concurrently_and_selects_like_the_embedded_engine(tmp_path):
    from alloop import SelectionEngine
    from alloop.loop import RemoteEngine
    from tests.server_util import ADMIN, Server

    rng = np.random.default_rng(6)
    n = 3000
    snap = Snapshot(ids=np.arange(n), probs=_probs(rng, n).astype(np.float32))
    emb = SelectionEngine("margin", classes=[0, 1, 2])
    emb.add_records(np.arange(n))
    emb.ingest(snap, loop=0)
    srv = Server(tmp_path / "data").start()
    try:
        eng = RemoteEngine(srv.url, ADMIN, classes=[0, 1, 2], chunk_rows=400, upload_workers=2)  # 8 chunks, 2 at a time
        try:
            eng.add_records(np.arange(n))
            eng.ingest(snap, loop=0)
            assert eng.recommend(20, loop=0).ids.tolist() == emb.recommend(20, loop=0).ids.tolist()
            status = eng._request("GET", eng.base)
            assert [(s["loop"], s["n_chunks"], s["n_rows"]) for s in status["snapshots"]] == [(0, 8, n)]
            eng.pool.add([n + 5])  # known to the client only: the last of 3 chunks fails on the server
            bad = Snapshot(ids=np.r_[np.arange(800), n + 5], probs=_probs(rng, 801))
            with pytest.raises(UnknownRecordError, match="not in the pool"):  # a worker's error reaches the caller
                eng.ingest(bad, loop=1)
            assert len(eng._request("GET", eng.base)["snapshots"]) == 1  # nothing was committed
        finally:
            eng.close()
    finally:
        srv.stop()
