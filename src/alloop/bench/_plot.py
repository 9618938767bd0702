"""Learning-curve plots (matplotlib, Agg backend, imported only when a plot is asked for)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["plot_learning_curves"]


def plot_learning_curves(result: dict[str, Any], path: str | os.PathLike[str], *, title: str | None = None) -> Path:
    """Write the mean ± std learning curve of every strategy in a :func:`simulate` result to a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    import numpy as np

    proto = result.get("protocol", {})
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    try:
        for spec, res in result["results"].items():
            x = np.asarray(res["labels"])
            mean = np.asarray(res["curve_mean"])
            std = np.asarray(res["curve_std"])
            (line,) = ax.plot(x, mean, label=f"{spec} (AUBC {res['aubc_mean']:.4f})", linewidth=1.6)
            ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.18, linewidth=0)
        ax.set_xlabel("labels")
        ax.set_ylabel("test accuracy")
        ax.set_title(
            title
            or f"{proto.get('data', '')} · {proto.get('model', '')} · mean ± std over {proto.get('seeds', '?')} seeds"
        )
        ax.grid(True, alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
        fig.tight_layout()
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, format="png")
    finally:
        plt.close(fig)
    return out
