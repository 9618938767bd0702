"""Selection at memory speed: alloop.select next to probs.sum() and a straightforward numpy version.

For N rows x 10 classes of float32 probabilities already in memory, and k = 100 and k = 1 % of N, times
(median wall time of several repeats, all columns measured side by side in the same rounds; the calling
thread's CPU-time medians are recorded too, and printed as ``select1/sum CPU``: the single-threaded pass against
``sum()`` by CPU time, the comparison that holds up on a shared machine; and the load average before and after):

* ``sum``    ``probs.sum()``, the read-once floor;
* ``select`` ``alloop.select(probs, k, strategy)`` (the fused, chunked, validating pass, on
  ``numba.get_num_threads()`` threads: all cores unless ``NUMBA_NUM_THREADS`` says otherwise);
* ``select1`` the same with ``threads=1`` (the calling thread only; identical result);
* ``numpy``  scores with ``np.partition`` / ``np.log`` on the whole matrix, then ``np.argpartition`` + sort;
* ``skactiveml`` ``uncertainty_scores`` + ``simple_batch`` when scikit-activeml is installed (`pip install
  'alloop[bench]'`; skipped otherwise), timed after the other columns on the same array (up to 3 rounds), and not
  run where ``simple_batch``'s (k, N) float64 matrix would pass ``SKAL_MAX_BYTES``.

Usage::

    .venv/bin/python benchmarks/selection_speed.py           # N = 1e4 .. 1e7 (~5 min)
    .venv/bin/python benchmarks/selection_speed.py --quick   # N = 1e7 only (the targets), 5 rounds (~2 min)
    .venv/bin/python benchmarks/selection_speed.py --sizes 10000 100000 --repeats 3   # any sizes
    .venv/bin/python benchmarks/selection_speed.py --quick --out /tmp/sel.json   # keep the recorded JSON

Writes ``benchmarks/results/selection_speed.json``. Exit status 0 always: targets are reported, not enforced.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from alloop._select import _kernels, _parts, select

STRATEGIES = ("least-confidence", "margin", "ratio", "entropy")
TARGET_VS_SUM = {"least-confidence": 3.0, "margin": 3.0, "ratio": 3.0, "entropy": 6.0}
TARGET_VS_NUMPY = 5.0


def numpy_select(probs: np.ndarray, k: int, strategy: str) -> np.ndarray:
    """The straightforward version: whole-matrix scores, then argpartition and a sort of the k best."""
    c = probs.shape[1]
    if strategy == "entropy":
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = -np.sum(np.where(probs > 0, probs * np.log(probs), 0.0), axis=1)
    elif strategy == "least-confidence":
        scores = 1.0 - np.partition(probs, c - 1, axis=1)[:, -1]
    else:
        part = np.partition(probs, c - 2, axis=1)
        scores = part[:, -2] - part[:, -1] if strategy == "margin" else part[:, -2] / part[:, -1]
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top], kind="stable")]


#: scikit-activeml's ``simple_batch`` allocates a (k, N) float64 matrix; above this it is not run (7.3 TiB at
#: N = 10^7, k = 10^5 — it fails with MemoryError — and 8 GB at k = 100, which this 23 GB machine holds)
SKAL_MAX_BYTES = 10 * 2**30


def skactiveml_skip(n: int, k: int) -> str | None:
    """Why scikit-activeml is not timed at (n, k), or None."""
    need = 8 * n * k
    if need > SKAL_MAX_BYTES:
        return f"simple_batch would allocate a {k} x {n} float64 matrix ({need / 2**30:,.0f} GiB)"
    return None


def skactiveml_select(probs: np.ndarray, k: int, strategy: str) -> np.ndarray | None:
    try:
        from skactiveml.pool._uncertainty_sampling import uncertainty_scores
        from skactiveml.utils import simple_batch
    except ImportError:
        return None
    method = {"least-confidence": "least_confident", "margin": "margin_sampling", "entropy": "entropy"}.get(strategy)
    if method is None:
        return None
    scores = uncertainty_scores(probs, method=method)
    return simple_batch(scores, batch_size=k, random_state=0)


def _time(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this thread); ratios use the wall time, the CPU time is recorded too
    (on a shared machine it is not inflated by waiting for a core)."""
    c0, t0 = time.thread_time(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, time.thread_time() - c0


def make_probs(n: int, n_classes: int = 10, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = np.empty((n, n_classes), dtype=np.float32)
    step = 1_000_000
    for s in range(0, n, step):  # in slices, so the float64 temporaries stay small
        block = rng.dirichlet(np.ones(n_classes), size=min(step, n - s))
        p[s : s + block.shape[0]] = block
    return p


def run(sizes: list[int], repeats: int) -> dict:
    try:
        import skactiveml  # noqa: F401

        have_skal = True
    except ImportError:
        have_skal = False
    rows = []
    for n in sizes:
        probs = make_probs(n)
        for k in sorted({100, max(1, n // 100)}):
            for strategy in STRATEGIES:
                cols: dict[str, list[tuple[float, float]]] = {
                    c: [] for c in ("sum", "select", "select1", "numpy", "skactiveml")
                }
                runs: dict[str, Callable[[], object]] = {
                    "sum": probs.sum,
                    "select": functools.partial(select, probs, k, strategy),
                    "select1": functools.partial(select, probs, k, strategy, threads=1),
                    "numpy": functools.partial(numpy_select, probs, k, strategy),
                }
                first = runs["select"]()  # warm-up (compiles the kernels once)
                assert np.array_equal(first, runs["select1"]()), "threads changed the result"
                for _ in range(repeats):  # side by side: every column in every round
                    for name, fn in runs.items():
                        cols[name].append(_time(fn))
                skip = skactiveml_skip(n, k) if have_skal and strategy != "ratio" else None
                if have_skal and strategy != "ratio" and skip is None:
                    # after the others' rounds, same array: its multi-GB (k, N) matrix would disturb their timings
                    for _ in range(min(3, repeats)):
                        cols["skactiveml"].append(_time(functools.partial(skactiveml_select, probs, k, strategy)))
                med = {name: statistics.median(w for w, _ in v) for name, v in cols.items() if v}
                cpu = {name: statistics.median(c for _, c in v) for name, v in cols.items() if v}
                row = {
                    "n": n,
                    "k": k,
                    "strategy": strategy,
                    "median_s": med,
                    "median_cpu_s": cpu,
                    "select_over_sum_cpu": cpu["select"] / cpu["sum"],
                    "select1_over_sum_cpu": cpu["select1"] / cpu["sum"],
                    "select_over_sum": med["select"] / med["sum"],
                    "select1_over_sum": med["select1"] / med["sum"],
                    "select1_over_select": med["select1"] / med["select"],
                    "numpy_over_select": med["numpy"] / med["select"],
                }
                if "skactiveml" in med:
                    row["skactiveml_over_select"] = med["skactiveml"] / med["select"]
                elif skip is not None:
                    row["skactiveml_skipped"] = skip
                rows.append(row)
                print(_format_row(row), flush=True)
    return {"rows": rows, "skactiveml": have_skal}


def _format_row(row: dict) -> str:
    skal = f"{row['skactiveml_over_select']:.1f}x" if "skactiveml_over_select" in row else "—"
    if "skactiveml_skipped" in row:
        skal = "not run: " + row["skactiveml_skipped"]
    return (
        f"| {row['n']:.0e} | {row['k']} | {row['strategy']} | {row['median_s']['sum'] * 1e3:.1f} | "
        f"{row['median_s']['select'] * 1e3:.1f} | {row['median_s']['select1'] * 1e3:.1f} | "
        f"{row['median_s']['numpy'] * 1e3:.1f} | {row['select_over_sum']:.1f}x | {row['select1_over_sum']:.1f}x | "
        f"{row['numpy_over_select']:.1f}x | {skal} | {row['select1_over_sum_cpu']:.2f}x |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 1e7 only (the target size), 5 rounds")
    parser.add_argument("--repeats", type=int, help="rounds (default 7; 5 with --quick)")
    parser.add_argument("--sizes", type=int, nargs="+", help="row counts to run (default 1e4 .. 1e7)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "selection_speed.json",
                        help="where to write the JSON (default benchmarks/results/selection_speed.json)")
    args = parser.parse_args(argv)
    sizes = args.sizes or ([10_000_000] if args.quick else [10_000, 100_000, 1_000_000, 10_000_000])
    repeats = args.repeats or (5 if args.quick else 7)
    threads = _parts(10**9, None)  # what select uses on a large pool (numba.get_num_threads())
    load_before = os.getloadavg()
    print(f"select threads: {threads} (select1: 1)")
    print("| N | k | strategy | sum ms | select ms | select1 ms | numpy ms | select/sum | select1/sum | numpy/select "
          "| skactiveml/select | select1/sum CPU |")
    print("| (wall-time medians; last column: CPU-time medians) | | | | | | | | | | | |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    result = run(sizes, repeats)
    result.update(
        command="python " + " ".join(["benchmarks/selection_speed.py", *(argv if argv is not None else sys.argv[1:])]),
        compiled=_kernels() is not None,
        repeats=repeats,
        threads=threads,
        python=sys.version.split()[0],
        numpy=np.__version__,
        machine=platform.machine(),
        cpus=os.cpu_count(),
        load_average_before=load_before,
        load_average_after=os.getloadavg(),
        date=time.strftime("%Y-%m-%d"),
    )
    big = [r for r in result["rows"] if r["n"] == max(sizes)]
    print(f"\nTargets at N = {max(sizes):.0e} (select/sum within 3x, entropy 6x; numpy/select >= 5x):")
    for r in big:
        ok_sum = r["select_over_sum"] <= TARGET_VS_SUM[r["strategy"]]
        ok_np = r["numpy_over_select"] >= TARGET_VS_NUMPY
        print(f"  k={r['k']:<7} {r['strategy']:<17} vs sum: {'met' if ok_sum else 'NOT met'}; "
              f"vs numpy: {'met' if ok_np else 'NOT met'}")
    out = args.out
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"load average (1, 5, 15 min) before {load_before}, after {os.getloadavg()}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
