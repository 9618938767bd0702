"""Simulated campaigns on labeled data: learning curves, AUBC, paired comparisons, plots.

>>> from alloop.bench import simulate
>>> out = simulate("iris", "gaussian-nb", ["random"], initial=6, batch=6, budget=12, seeds=2, test_size=0.3)
>>> sorted(out["results"]["random"])[:3]
['aubc_mean', 'aubc_per_seed', 'aubc_std']
"""

from alloop.bench._plot import plot_learning_curves
from alloop.bench.simulate import CampaignTrace, paired_split, run_campaign, simulate

__all__ = ["CampaignTrace", "paired_split", "plot_learning_curves", "run_campaign", "simulate"]
