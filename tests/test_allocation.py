"""Allocation rules on plain views: eligibility, speed at the tail, shifts, quality, gold, baselines."""

from __future__ import annotations

import math

import numpy as np
import pytest

from alloop.errors import ConfigError
from alloop.labeling.allocation import (
    Allocator,
    AnnotatorView,
    GreedyAllocator,
    RandomAllocator,
    RoundRobinAllocator,
    TaskView,
    completion_horizon,
)


def test_completion_horizon_is_list_scheduling() -> None:
    free = np.array([0.0, 5.0])
    secs = np.array([10.0, 30.0])
    ends = np.array([math.inf, math.inf])
    # finishing instants: 10, 20, 30, 35, 40 ... -> the 4th is 35
    assert completion_horizon(free, secs, ends, 4) == 35.0
    assert completion_horizon(free, secs, np.array([25.0, 20.0]), 3) == math.inf  # shifts end too soon
    assert completion_horizon(free, secs, ends, 4, caps=np.array([1.0, 10.0])) == 95.0


def test_never_same_record_twice_skill_quota_capacity() -> None:
    t = TaskView(task_id=1, rid="r", seen=frozenset({"a"}), label_set="text")
    assert not AnnotatorView(id="a").can_take(t)
    assert not AnnotatorView(id="b", skills=frozenset({"images"})).can_take(t)
    assert AnnotatorView(id="b", skills=frozenset({"text"})).can_take(t)
    assert not AnnotatorView(id="b", quota_left=0).can_take(t)
    assert not AnnotatorView(id="b", leases=1, capacity=1).can_take(t)
    assert not AnnotatorView(id="b", available=False).can_take(t)
    assert not AnnotatorView(id="b").can_take(TaskView(task_id=2, rid="s", open_slots=0))


def test_slow_annotator_waits_at_the_tail_but_not_before() -> None:
    fast = AnnotatorView(id="fast", seconds=10.0)
    slow = AnnotatorView(id="slow", seconds=100.0)
    team = [fast, slow]
    one = [TaskView(task_id=1, rid=1)]
    many = [TaskView(task_id=i, rid=i) for i in range(30)]
    alloc = Allocator(gold_rate=0.0)
    assert alloc.choose(slow, one, team, now=0.0) is None
    assert alloc.choose(slow, many, team, now=0.0) is not None  # 30 tasks: the slow one helps
    assert Allocator(gold_rate=0.0, speed_aware=False).choose(slow, one, team, now=0.0) is not None
    assert GreedyAllocator().choose(slow, one, team, now=0.0) is not None


def test_no_task_started_past_the_end_of_the_shift() -> None:
    leaving = AnnotatorView(id="l", seconds=60.0, shift_end=30.0)
    assert Allocator(gold_rate=0.0).choose(leaving, [TaskView(task_id=1, rid=1)], [leaving], now=0.0) is None


def test_quality_prefers_accurate_annotators_on_the_predicted_class() -> None:
    classes = ("x", "y")
    good_on_x = AnnotatorView(id="gx", classes=classes, confusion=np.array([[50, 0], [25, 25]]), seconds=10.0)
    good_on_y = AnnotatorView(id="gy", classes=classes, confusion=np.array([[25, 25], [0, 50]]), seconds=10.0)
    tasks = [TaskView(task_id=1, rid="px", predicted="x"), TaskView(task_id=2, rid="py", predicted="y")]
    team = [good_on_x, good_on_y]
    alloc = Allocator(gold_rate=0.0, speed_aware=False)
    assert alloc.choose(good_on_x, tasks, team, 0.0).rid == "px"
    assert alloc.choose(good_on_y, tasks, team, 0.0).rid == "py"
    # below min_accuracy on both: leaves both to the other, who qualifies
    bad = AnnotatorView(id="bad", classes=classes, confusion=np.array([[10, 40], [40, 10]]))
    assert alloc.choose(bad, tasks, team + [bad], 0.0) is None
    assert alloc.choose(bad, tasks, [bad], 0.0) is not None  # nobody else: better than nothing


def test_gold_rate_mixes_gold_in() -> None:
    work = [TaskView(task_id=i, rid=i) for i in range(5)]
    gold = [TaskView(task_id=100, rid="g", gold=True)]
    alloc = Allocator(gold_rate=0.1, speed_aware=False)
    veteran = AnnotatorView(id="v", judgements=19, gold_judgements=1)
    assert alloc.choose(veteran, work + gold, [veteran], 0.0).gold
    fresh = AnnotatorView(id="f", judgements=3, gold_judgements=0)
    assert not alloc.choose(fresh, work + gold, [fresh], 0.0).gold
    assert alloc.choose(veteran, gold, [veteran], 0.0) is None  # gold only with real work around


def test_backup_judgement_for_a_probably_abandoned_lease() -> None:
    holder = AnnotatorView(id="h", seconds=10.0, leases=1)
    idle = AnnotatorView(id="i", seconds=10.0)
    stuck = TaskView(task_id=1, rid="r", open_slots=0, seen=frozenset({"h"}), holders=(("h", 0.0),))
    alloc = Allocator(gold_rate=0.0)
    assert alloc.choose(idle, [stuck], [holder, idle], now=20.0) is None  # 2x its median: not yet
    pick = alloc.choose(idle, [stuck], [holder, idle], now=31.0)
    assert pick is not None and pick.open_slots == 0
    assert Allocator(backup_after=None).choose(idle, [stuck], [holder, idle], now=1e6) is None


def test_round_robin_and_random_deal_slots() -> None:
    team = [AnnotatorView(id=n) for n in ("a", "b", "c")]
    tasks = [TaskView(task_id=i, rid=i) for i in range(6)]
    rr = RoundRobinAllocator()
    first = rr.choose(team[0], tasks, team, 0.0)
    assert first.task_id == 0
    assert rr.choose(team[1], tasks, team, 0.0).task_id == 1  # dealt in rotation
    rnd1, rnd2 = RandomAllocator(seed=3), RandomAllocator(seed=3)
    picks1 = [rnd1.choose(a, tasks, team, 0.0) for a in team]
    picks2 = [rnd2.choose(a, tasks, team, 0.0) for a in team]
    assert [p and p.task_id for p in picks1] == [p and p.task_id for p in picks2]  # seeded


def test_parameters_are_checked_at_first_use() -> None:
    alloc = Allocator(gold_rate=2.0)  # stored, not validated, by the constructor
    with pytest.raises(ConfigError, match="'gold_rate' parameter of Allocator"):
        alloc.choose(AnnotatorView(id="a"), [TaskView(task_id=1, rid=1)], [], 0.0)
