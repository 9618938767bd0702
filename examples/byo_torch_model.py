"""Bring your own PyTorch model: your nn.Module, your training step, checkpoints in safetensors.

    pip install 'alloop[torch]'
    python examples/byo_torch_model.py [--fast]

TorchLearner runs the epochs (seeded shuffling), saves the weights after each TRAIN as
model-NNNN.safetensors, turns dropout on for MC samples and reads embeddings from the layer you name.
"""

from __future__ import annotations

import numpy as np
import torch
from _common import campaign_dir, parse_args, print_curve

from alloop.datasets import load_dataset
from alloop.labeling import SimulatedOracle
from alloop.loop import Campaign
from alloop.loop._torch import TorchLearner


class SmallNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Dropout(0.25))
        self.head = torch.nn.Linear(128, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x / 16.0))  # digits pixels are 0..16


def train_step(model: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor, optimizer: torch.optim.Optimizer) -> float:
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(xb), yb, label_smoothing=0.05)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def main() -> None:
    args = parse_args(__doc__.splitlines()[0])
    ds = load_dataset("digits")
    order = np.random.default_rng(0).permutation(ds.n_samples)
    pool, held_out = order[:1200], order[1200:]
    X = ds.X.astype(np.float32)
    directory = campaign_dir(args, "byo-torch")
    learner = TorchLearner(
        SmallNet,
        X[pool],
        ds.ids[pool],
        classes=ds.classes.tolist(),
        train_step=train_step,
        optimizer_fn=lambda params: torch.optim.Adam(params, lr=3e-3),
        epochs=10 if args.fast else 40,
        mc_samples=4 if args.fast else 10,
        embedding_layer="encoder",
        checkpoint_dir=directory / "checkpoints",
        eval_X=X[held_out],
        eval_y=ds.y[held_out],
    )
    campaign = Campaign(
        directory,
        learner=learner,
        labeler=SimulatedOracle(truth=(ds.ids[pool], ds.y[pool])),
        classes=ds.classes.tolist(),
        pool=ds.ids[pool],
        strategy="bald",
        initial=20,
        batch_size=20,
        budget=60 if args.fast else 300,
        overwrite=True,
    )
    print_curve(campaign.run())
    print("checkpoints:", ", ".join(p.name for p in sorted((directory / "checkpoints").iterdir())))


if __name__ == "__main__":
    main()
