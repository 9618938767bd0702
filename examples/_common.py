"""Shared bits of the examples: argument parsing and printing a campaign's learning curve."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any


def parse_args(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--fast", action="store_true", help="A tiny run (seconds), as used by the tests.")
    parser.add_argument("--out", type=Path, default=None, help="Campaign directory (default: a temporary one).")
    return parser.parse_args()


def campaign_dir(args: argparse.Namespace, name: str) -> Path:
    if args.out is not None:
        return Path(args.out)
    return Path(tempfile.mkdtemp(prefix=f"alloop-{name}-"))


def print_curve(result: Any) -> float:
    """Print labels → accuracy per loop; return the last accuracy."""
    last = float("nan")
    for report in result.loops:
        last = report.metrics.get("accuracy", float("nan"))
        print(f"loop {report.loop:3d}  labels {report.n_labeled:5d}  accuracy {last:.3f}  ({report.strategy})")
    print(f"stopped: {result.stop_reason}; {result.n_labeled} labels")
    return last
