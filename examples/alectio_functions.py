"""Bring your own functions: an Alectio-style project ported to FunctionLearner in a few lines.

    python examples/alectio_functions.py [--fast]

The four functions below keep the Alectio SDK's signatures (train, test, infer, getdatasetstate) and
their checkpoint-file convention; only the adapter at the bottom is new. Checkpoints are .npz files of
arrays (no pickles).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from _common import campaign_dir, parse_args, print_curve
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from alloop.datasets import load_dataset
from alloop.labeling import SimulatedOracle
from alloop.loop import Campaign, FunctionLearner

# ---- the user's existing project (Alectio-style) -------------------------------------------------
DATA = load_dataset("digits")
TRAIN_ROWS, TEST_ROWS = train_test_split(np.arange(DATA.n_samples), test_size=0.3, stratify=DATA.y, random_state=0)


def _save(model: LogisticRegression, path: Path) -> None:
    np.savez(path, coef=model.coef_, intercept=model.intercept_, classes=model.classes_)


def _load(path: Path) -> LogisticRegression:
    with np.load(path) as z:
        model = LogisticRegression()
        model.coef_, model.intercept_, model.classes_ = z["coef"], z["intercept"], z["classes"]
    return model


def getdatasetstate(args: dict[str, Any]) -> dict[int, str]:
    """Every record of the training pool: index → a description."""
    return {int(i): f"digit image {int(i)}" for i in TRAIN_ROWS}


def train(args: dict[str, Any], labeled: list[int], resume_from: str | None, ckpt_file: str) -> dict[str, Any]:
    """Fit on the labeled indices and save a checkpoint (labels come from the project's own store)."""
    labels = args["labels"]
    model = LogisticRegression(max_iter=1000)
    model.fit(DATA.X[labeled] / 16.0, [labels[i] for i in labeled])
    _save(model, Path(args["exp_dir"]) / ckpt_file)
    return {"labeled": len(labeled)}


def test(args: dict[str, Any], ckpt_file: str) -> dict[str, Any]:
    model = _load(Path(args["exp_dir"]) / ckpt_file)
    return {"predictions": model.predict(DATA.X[TEST_ROWS] / 16.0), "labels": DATA.y[TEST_ROWS]}


def infer(args: dict[str, Any], unlabeled: list[int], ckpt_file: str) -> dict[str, Any]:
    model = _load(Path(args["exp_dir"]) / ckpt_file)
    probs = np.zeros((len(unlabeled), 10))  # one column per digit, also for digits not labeled yet
    probs[:, model.classes_] = model.predict_proba(DATA.X[unlabeled] / 16.0)
    outputs = {i: {"prediction": int(np.argmax(p)), "probs": p} for i, p in zip(unlabeled, probs, strict=True)}
    return {"outputs": outputs}


# ---- the port: four small adapters ---------------------------------------------------------------
def main() -> None:
    opts = parse_args(__doc__.splitlines()[0])
    directory = campaign_dir(opts, "alectio")
    args: dict[str, Any] = {"exp_dir": str(directory), "labels": {}}
    directory.mkdir(parents=True, exist_ok=True)
    ckpt = "ckpt.npz"

    def train_fn(ids: np.ndarray, y: np.ndarray, warm_start: bool) -> dict[str, Any]:
        args["labels"].update(zip(ids.tolist(), y.tolist(), strict=True))
        return train(args, ids.tolist(), ckpt if warm_start else None, ckpt)

    def evaluate_fn() -> dict[str, float]:
        out = test(args, ckpt)
        return {"accuracy": float(np.mean(out["predictions"] == out["labels"]))}

    learner = FunctionLearner(
        train_fn,
        lambda ids: {i: o["probs"] for i, o in infer(args, ids.tolist(), ckpt)["outputs"].items()},
        evaluate_fn,
        lambda: getdatasetstate(args),
        classes=DATA.classes.tolist(),
    )
    truth = dict(zip(TRAIN_ROWS.tolist(), DATA.y[TRAIN_ROWS].tolist(), strict=True))
    campaign = Campaign(
        directory,
        learner=learner,
        labeler=SimulatedOracle(truth=truth),
        classes=DATA.classes.tolist(),
        pool=learner.dataset_state(),
        strategy="margin",
        initial=20,
        batch_size=20,
        budget=60 if opts.fast else 300,
        overwrite=True,
    )
    print_curve(campaign.run())


if __name__ == "__main__":
    main()
