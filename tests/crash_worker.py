"""Run (or resume) a small campaign in a real process; used by test_crash_resume.py.

usage: python crash_worker.py DIR   (ALLOOP_CRASH_AT=<point>[@<loop>] makes it kill itself there)
"""

import sys
from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from alloop.labeling import SimulatedOracle
from alloop.loop import Campaign, SklearnLearner


def main() -> None:
    directory = Path(sys.argv[1])
    X, y = load_digits(return_X_y=True)
    X, y = X[:500], y[:500]
    ids = np.array([f"rec-{i:04d}" for i in range(400)], dtype=object)
    learner = SklearnLearner(
        make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)),
        X[:400],
        ids,
        eval_X=X[400:],
        eval_y=y[400:],
        classes=list(range(10)),
    )
    oracle = SimulatedOracle(truth=dict(zip(ids.tolist(), y[:400].tolist(), strict=True)), per_poll=4, seed=0)
    if (directory / "alloop.db").exists():
        camp = Campaign.resume(directory, learner=learner, labeler=oracle)
    else:
        camp = Campaign(
            directory,
            learner=learner,
            labeler=oracle,
            pool=ids,
            classes=list(range(10)),
            strategy="margin",
            initial=10,
            batch_size=10,
            budget=50,
            seed=3,
        )
    result = camp.run()
    print(result.stop_reason, result.n_labeled)


if __name__ == "__main__":  # pytest's doctest collection imports this file: do nothing then
    main()
