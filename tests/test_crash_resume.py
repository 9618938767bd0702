"""Kill a real campaign process at every commit boundary, resume it, and compare with an uninterrupted run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from alloop.loop import CRASH_POINTS
from alloop.store import CampaignStore

WORKER = Path(__file__).with_name("crash_worker.py")


def _run(directory: Path, crash_at: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "ALLOOP_CRASH_AT"}
    if crash_at:
        env["ALLOOP_CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, str(WORKER), str(directory)], env=env, capture_output=True, text=True, timeout=300
    )


def _state(directory: Path) -> dict:
    store = CampaignStore(directory)
    try:
        labels = [(r["idx"], r["label"], r["source"], r["loop"], r["model_version"]) for r in store.labels()]
        metrics = store.values("metrics")
        loops = [(r["loop"], r["phase"], r["strategy"], r["reason"], r["model_version"]) for r in store.loops()]
        return {"selections": store.selections(), "labels": labels, "metrics": metrics, "loops": loops}
    finally:
        store.close()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict:
    directory = tmp_path_factory.mktemp("reference")
    done = _run(directory)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["budget", "50"]
    return _state(directory)


@pytest.mark.parametrize("loop", [0, 2])
@pytest.mark.parametrize("point", CRASH_POINTS)
def test_killed_at_commit_boundary_resumes_exactly(tmp_path: Path, reference: dict, point: str, loop: int) -> None:
    crashed = _run(tmp_path, f"{point}@{loop}")
    assert crashed.returncode == -9, f"expected SIGKILL at {point}@{loop}; stderr: {crashed.stderr[-2000:]}"
    partial = _state(tmp_path)
    # the process really died part-way: fewer labels than the finished run
    assert len(partial["labels"]) < len(reference["labels"])
    resumed = _run(tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert resumed.stdout.split() == ["budget", "50"]
    assert _state(tmp_path) == reference


def test_label_crash_keeps_partial_batch(tmp_path: Path) -> None:
    """Labels arrive 4 at a time; a kill after the first commit keeps those 4 and only those."""
    crashed = _run(tmp_path, "label@1")
    assert crashed.returncode == -9
    state = _state(tmp_path)
    loop1 = [lab for lab in state["labels"] if lab[3] == 1]
    assert len(loop1) == 4
    assert len(state["selections"][1]) == 10
