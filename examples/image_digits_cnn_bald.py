"""Image active learning: digits (8x8 images), the library's small CNN with MC dropout, BALD.

    pip install 'alloop[torch]'
    python examples/image_digits_cnn_bald.py [--fast]

The CNN's MC-dropout passes fill Snapshot.samples, which BALD needs; its penultimate layer fills
Snapshot.embeddings.
"""

from __future__ import annotations

import numpy as np
from _common import campaign_dir, parse_args, print_curve

from alloop.datasets import load_dataset
from alloop.labeling import SimulatedOracle
from alloop.loop import Campaign
from alloop.loop._torch import ModelLearner
from alloop.models import CNNClassifier


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    ds = load_dataset("digits")
    order = np.random.default_rng(0).permutation(ds.n_samples)
    pool, held_out = order[:1200], order[1200:]
    budget, mc = (60, 5) if args.fast else (300, 20)
    learner = ModelLearner(
        CNNClassifier(image_shape=ds.image_shape, seed=0),
        ds.X[pool],
        ds.ids[pool],
        eval_X=ds.X[held_out],
        eval_y=ds.y[held_out],
        classes=ds.classes,
        mc_samples=mc,
    )
    campaign = Campaign(
        campaign_dir(args, "digits-cnn"),
        learner=learner,
        labeler=SimulatedOracle(truth=(ds.ids[pool], ds.y[pool])),
        classes=ds.classes.tolist(),
        pool=ds.ids[pool],
        strategy="bald",
        initial=20,
        batch_size=20,
        budget=budget,
        overwrite=True,
    )
    print_curve(campaign.run())


if __name__ == "__main__":
    main()
