"""SimulatedCrowd: virtual clock, redundancy + consensus, allocation, availability, stats, the Campaign."""

from __future__ import annotations

import time

import numpy as np
import pytest

from alloop.errors import ConfigError, UnknownRecordError
from alloop.labeling import LabelProvider
from alloop.labeling.allocation import GreedyAllocator
from alloop.labeling.crowd import CrowdAnnotator, SimulatedCrowd, majority_vote

TRUTH = {i: i % 3 for i in range(60)}


def test_is_a_label_provider_and_runs_on_a_virtual_clock() -> None:
    team = [CrowdAnnotator(id=f"s{i}", accuracy=0.9, seconds=3600.0) for i in range(3)]  # an hour per judgement
    crowd = SimulatedCrowd(TRUTH, annotators=team, redundancy=1, seed=1)
    assert isinstance(crowd, LabelProvider)
    t0 = time.perf_counter()
    crowd.request(list(TRUTH))
    events = crowd.poll()
    assert time.perf_counter() - t0 < 5.0  # ~20 virtual hours in (much) less than a wall second or few
    assert {e.id for e in events} == set(TRUTH)
    assert crowd.stats[0]["seconds"] > 3600 * 10
    assert crowd.poll() == []


def test_redundancy_consensus_posterior_and_annotators() -> None:
    crowd = SimulatedCrowd(TRUTH, annotators=5, redundancy=3, seed=0)
    crowd.request(list(TRUTH))
    events = crowd.poll()
    assert len(events) == 60
    for e in events:
        who = e.annotator.split(",")
        assert len(who) == len(set(who)) == 3  # three different annotators
        assert e.posterior in (1 / 3, 2 / 3, 1.0)
    stats = crowd.stats[0]
    assert stats["records"] == 60 and stats["judgements"] >= 180
    hits = np.mean([e.label == TRUTH[e.id] for e in events])
    assert stats["accuracy"] == pytest.approx(hits)
    assert hits > 0.8


def test_custom_aggregate_is_used() -> None:
    calls = []

    def always_zero(judgements, classes):
        calls.append(len(judgements))
        return {rid: (classes[0], 0.5) for rid, _, _ in judgements}

    crowd = SimulatedCrowd(TRUTH, annotators=4, redundancy=2, aggregate=always_zero, seed=0)
    crowd.request([1, 2, 3])
    events = crowd.poll()
    assert {e.label for e in events} == {0} and {e.posterior for e in events} == {0.5}
    assert calls and calls[-1] == 6


def test_majority_vote_ties_go_to_the_first_class() -> None:
    assert majority_vote([(1, "a", "y"), (1, "b", "x")], ["x", "y"]) == {1: ("x", 0.5)}


def test_same_seed_same_labels_and_times() -> None:
    def run(seed: int):
        c = SimulatedCrowd(TRUTH, annotators=6, redundancy=3, seed=seed)
        c.request(list(TRUTH))
        return [(e.id, e.label, e.annotator) for e in c.poll()], c.stats[0]["seconds"]

    assert run(4) == run(4)
    assert run(4) != run(5)


def test_availability_schedule_and_walk_aways_never_lose_a_record() -> None:
    team = [
        CrowdAnnotator(id="early", seconds=20.0, schedule=[(0.0, 100.0)], abandon=0.2),
        CrowdAnnotator(id="late", seconds=20.0, schedule=[(500.0, 1e7)], abandon=0.2),
        CrowdAnnotator(id="always", seconds=40.0, abandon=0.2),
    ]
    crowd = SimulatedCrowd(TRUTH, annotators=team, redundancy=1, lease_seconds=120.0, seed=2)
    crowd.request(list(TRUTH))
    events = crowd.poll()
    assert {e.id for e in events} == set(TRUTH)
    by = {j["annotator"] for j in crowd.judgements if j["at"] < 100.0}
    assert "late" not in by
    assert all(j["at"] >= 500.0 for j in crowd.judgements if j["annotator"] == "late")
    assert all(j["at"] <= 100.0 for j in crowd.judgements if j["annotator"] == "early")


def test_step_polls_advance_the_clock_gradually() -> None:
    crowd = SimulatedCrowd(TRUTH, annotators=3, redundancy=1, step=60.0, seed=0)
    crowd.request(list(range(30)))
    first = crowd.poll()
    assert 0 < len(first) < 30 and crowd.now == 60.0
    rest = []
    for _ in range(200):
        rest += crowd.poll()
        if len(first) + len(rest) == 30:
            break
    assert len(first) + len(rest) == 30


def test_wall_clock_pacing_on_request() -> None:
    crowd = SimulatedCrowd(TRUTH, annotators=3, speedup=100.0, seed=0)  # 100 virtual s per real s
    crowd.request([0, 1, 2])
    assert crowd.poll() == []  # nothing is done 0 s in
    time.sleep(1.0)
    assert len(crowd.poll()) >= 1


def test_allocator_beats_greedy_with_a_slow_annotator_at_the_tail() -> None:
    team = [CrowdAnnotator(id=f"f{i}", seconds=10.0, spread=0.0) for i in range(3)]
    team.append(CrowdAnnotator(id="slow", seconds=300.0, spread=0.0))

    def finish(alloc):
        c = SimulatedCrowd(TRUTH, annotators=team, allocator=alloc, seed=0)
        c.request(list(range(20)))
        c.poll()
        return c.stats[0]["seconds"]

    assert finish(None) < finish(GreedyAllocator())


def test_cancel_and_bad_input() -> None:
    crowd = SimulatedCrowd(TRUTH, annotators=2, step=1.0, seed=0)
    crowd.request([1, 2])
    crowd.cancel([2])
    crowd.step = None
    assert [e.id for e in crowd.poll()] == [1]
    with pytest.raises(UnknownRecordError):
        crowd.request([999])
    with pytest.raises(ConfigError, match="'redundancy' parameter of SimulatedCrowd"):
        SimulatedCrowd(TRUTH, annotators=2, redundancy=3).request([1])
    with pytest.raises(ConfigError, match="confusion"):
        SimulatedCrowd(TRUTH, annotators=[CrowdAnnotator(id="c", confusion=[[1.0, 0.0]])], classes=[0, 1, 2]).poll()


def test_confusion_matrix_annotators() -> None:
    always_zero = [[1.0, 0.0, 0.0]] * 3
    crowd = SimulatedCrowd(TRUTH, annotators=[CrowdAnnotator(id="z", confusion=always_zero)], classes=[0, 1, 2])
    crowd.request(list(range(9)))
    assert {e.label for e in crowd.poll()} == {0}
    assert crowd.stats[0]["accuracy"] == pytest.approx(1 / 3)


def test_drives_a_campaign(tmp_path) -> None:
    from sklearn.linear_model import LogisticRegression

    from alloop.loop import Campaign, SklearnLearner

    X = np.r_[np.zeros((20, 1)), np.ones((20, 1))] + np.linspace(0, 0.5, 40)[:, None]
    y = np.r_[np.zeros(20, int), np.ones(20, int)]
    crowd = SimulatedCrowd(dict(enumerate(y.tolist())), annotators=5, redundancy=3, classes=[0, 1], seed=0)
    camp = Campaign(tmp_path / "c", learner=SklearnLearner(LogisticRegression(), X, eval_X=X, eval_y=y),
                    labeler=crowd, pool=np.arange(40), classes=[0, 1], initial=4, batch_size=2, budget=10)
    result = camp.run()
    assert result.n_labeled == 10
    labels = camp.store.labels()
    assert all(r["source"] == "human" and len(r["annotator"].split(",")) == 3 for r in labels)
    assert all(r["posterior"] is not None for r in labels)
    assert len(crowd.stats) >= 2
