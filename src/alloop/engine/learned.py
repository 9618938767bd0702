"""The learned selector: a one-hidden-layer MLP over :mod:`alloop.engine.features`, evaluated with numpy.

It predicts, per unlabeled record, the value of labeling it: the z-scored (within a loop) gain in
held-out mean probability of the true class when the record alone is added to the labeled set and the
model refit — a one-step look-ahead expert, imitated (ImitAL-style) from simulated campaigns on synthetic
task families generated in code (:data:`FAMILIES`). Weights live in a versioned JSON file (no pickle);
:func:`load_selector` reads the shipped one from ``alloop/engine/selector/``; ``alloop meta-train``
rebuilds it (:func:`meta_train`). Online adaptation: :class:`OnlineErrorModel` is a logistic model over the
same features, refit as the project's labels arrive, predicting whether the current model gets a
record wrong; the learned strategy blends it in as evidence accumulates.

>>> sel = load_selector()
>>> sel.version, len(sel.features) > 5
(1, True)
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from alloop.errors import ConfigError, DataError

__all__ = [
    "FAMILIES",
    "FORMAT",
    "OnlineErrorModel",
    "Selector",
    "fit_selector",
    "load_selector",
    "meta_train",
    "simulate_episode",
    "synthetic_task",
]

FORMAT = "alloop-selector"
SHIPPED = Path(__file__).parent / "selector" / "selector-v1.json"
FAMILIES = ("classification", "xor", "checkerboard", "moons", "circles", "gaussian-mixture", "sparse-highdim")


# ---- the model ------------------------------------------------------------------------------------------
@dataclass
class Selector:
    """``score(X) = w2 · tanh((X − mean) / scale · W1 + b1) + b2`` — numpy only."""

    features: list[str]
    mean: np.ndarray
    scale: np.ndarray
    W1: np.ndarray
    b1: np.ndarray
    w2: np.ndarray
    b2: float
    version: int = 1
    meta: dict[str, Any] = field(default_factory=dict)

    def score(self, X: np.ndarray) -> np.ndarray:
        z = (np.asarray(X, dtype=np.float64) - self.mean) / self.scale
        return np.tanh(z @ self.W1 + self.b1) @ self.w2 + self.b2

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": self.version,
            "features": list(self.features),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "W1": self.W1.tolist(),
            "b1": self.b1.tolist(),
            "w2": self.w2.tolist(),
            "b2": float(self.b2),
            "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "selector") -> Selector:
        if d.get("format") != FORMAT or d.get("version") != 1:
            raise DataError(
                f"{where} is not an alloop selector of version 1 (format={d.get('format')!r}, "
                f"version={d.get('version')!r}); rebuild it with 'alloop meta-train'."
            )
        sel = cls(
            features=list(d["features"]),
            mean=np.asarray(d["mean"], dtype=np.float64),
            scale=np.asarray(d["scale"], dtype=np.float64),
            W1=np.asarray(d["W1"], dtype=np.float64),
            b1=np.asarray(d["b1"], dtype=np.float64),
            w2=np.asarray(d["w2"], dtype=np.float64),
            b2=float(d["b2"]),
            version=1,
            meta=dict(d.get("meta", {})),
        )
        f = len(sel.features)
        if sel.mean.shape != (f,) or sel.scale.shape != (f,) or sel.W1.shape[0] != f or sel.W1.shape[1] != sel.b1.size:
            raise DataError(f"{where} has inconsistent shapes; rebuild it with 'alloop meta-train'.")
        return sel

    def save(self, path: str | os.PathLike[str]) -> None:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(p.suffix + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        tmp.replace(p)


_CACHE: dict[str, Selector] = {}


def load_selector(path: str | os.PathLike[str] | None = None) -> Selector:
    """The selector at ``path`` (default: the one shipped in the package); cached per path."""
    p = Path(path) if path is not None else SHIPPED
    key = str(p.resolve())
    if key not in _CACHE:
        if not p.exists():
            raise ConfigError(
                f"No selector file at {str(p)!r}; give an existing JSON file or rebuild with 'alloop meta-train'."
            )
        _CACHE[key] = Selector.from_dict(json.loads(p.read_text()), where=str(p))
    return _CACHE[key]


# ---- online adaptation -----------------------------------------------------------------------------------
class OnlineErrorModel:
    """Logistic regression, fit by a few Newton-free gradient steps, on (features → model was wrong).

    Its state is a JSON-serialisable dict; ``n`` counts the outcomes seen so far.

    >>> m = OnlineErrorModel.from_state(None, 2)
    >>> m.update(np.array([[1.0, 0.0], [0.0, 1.0]] * 10), np.array([1, 0] * 10))
    >>> bool(m.predict(np.array([[1.0, 0.0]]))[0] > m.predict(np.array([[0.0, 1.0]]))[0])
    True
    """

    def __init__(self, w: np.ndarray, b: float, n: int) -> None:
        self.w, self.b, self.n = w, b, n

    @classmethod
    def from_state(cls, state: dict[str, Any] | None, n_features: int) -> OnlineErrorModel:
        if not state or len(state.get("w", [])) != n_features:
            return cls(np.zeros(n_features), 0.0, 0)
        return cls(np.asarray(state["w"], dtype=np.float64), float(state["b"]), int(state["n"]))

    def state(self) -> dict[str, Any]:
        return {"w": [float(v) for v in self.w], "b": float(self.b), "n": int(self.n)}

    def predict(self, Z: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.clip(Z @ self.w + self.b, -30, 30)))

    def update(self, Z: np.ndarray, wrong: np.ndarray, *, steps: int = 20, lr: float = 0.5, l2: float = 1e-2) -> None:
        y = np.asarray(wrong, dtype=np.float64)
        if y.size == 0:
            return
        for _ in range(steps):
            g = self.predict(Z) - y
            self.w -= lr * (Z.T @ g / y.size + l2 * self.w)
            self.b -= lr * float(g.mean())
        self.n += int(y.size)


# ---- synthetic task families -----------------------------------------------------------------------------
def synthetic_task(family: str, seed: int, n: int = 600) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of one task of ``family`` (parameters varied by ``seed``), standardised features.

    >>> X, y = synthetic_task("xor", 0, n=100)
    >>> X.shape, sorted(set(y.tolist()))
    ((100, 2), [0, 1])
    """
    from sklearn import datasets as skd

    rng = np.random.default_rng([seed, FAMILIES.index(family) if family in FAMILIES else 99])
    rs = int(rng.integers(0, 2**31 - 1))
    if family == "classification":
        n_classes = int(rng.integers(2, 6))
        weights = None
        if rng.random() < 0.4:  # imbalance
            w = rng.dirichlet(np.full(n_classes, 2.0))
            weights = list(np.maximum(w, 0.05) / np.maximum(w, 0.05).sum())
        n_features, n_inf = int(rng.integers(4, 21)), int(rng.integers(2, 5))
        clusters = int(rng.integers(1, 3)) if n_classes < 5 else 1
        n_inf = max(n_inf, math.ceil(math.log2(n_classes * clusters)))
        X, y = skd.make_classification(
            n_samples=n,
            n_features=max(n_features, n_inf + 1),
            n_informative=n_inf,
            n_redundant=1,
            n_classes=n_classes,
            n_clusters_per_class=clusters,
            class_sep=float(rng.uniform(0.5, 2.0)),
            flip_y=float(rng.uniform(0.0, 0.1)),
            weights=weights,
            random_state=rs,
        )
    elif family == "xor":
        X = rng.uniform(-1, 1, size=(n, 2))
        y = ((X[:, 0] > 0) ^ (X[:, 1] > 0)).astype(np.int64)
        X = X + rng.normal(scale=float(rng.uniform(0.0, 0.15)), size=X.shape)
    elif family == "checkerboard":
        cells = int(rng.integers(3, 5))
        X = rng.uniform(0, cells, size=(n, 2))
        y = ((np.floor(X[:, 0]) + np.floor(X[:, 1])) % 2).astype(np.int64)
    elif family == "moons":
        X, y = skd.make_moons(n_samples=n, noise=float(rng.uniform(0.05, 0.3)), random_state=rs)
    elif family == "circles":
        X, y = skd.make_circles(
            n_samples=n, noise=float(rng.uniform(0.02, 0.15)), factor=float(rng.uniform(0.3, 0.7)), random_state=rs
        )
    elif family == "gaussian-mixture":
        c = int(rng.integers(2, 6))
        X, y = skd.make_blobs(
            n_samples=n,
            centers=c,
            n_features=int(rng.integers(2, 8)),
            cluster_std=float(rng.uniform(1.0, 3.5)),
            random_state=rs,
        )
    elif family == "sparse-highdim":
        d = int(rng.integers(50, 200))
        X = rng.normal(size=(n, d)) * (rng.random((n, d)) < 0.1)
        w = rng.normal(size=d) * (rng.random(d) < 0.1)
        logits = X @ w
        y = (logits + rng.normal(scale=0.3 * (logits.std() or 1.0), size=n) > np.median(logits)).astype(np.int64)
    else:
        raise ConfigError(f"Unknown task family {family!r}; choose from {list(FAMILIES)}.")
    X = np.asarray(X, dtype=np.float64)
    X = (X - X.mean(axis=0)) / np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
    return X, np.asarray(y, dtype=np.int64)


# ---- simulated campaigns with a look-ahead expert ----------------------------------------------------------
#: the model classes a simulated campaign can use (the benchmark and most users run one of these)
MODELS = ("logreg", "random-forest")
#: how the shipped selector is fit: its features and the arguments of :func:`fit_selector`
FIT: dict[str, Any] = {
    "features": None,  # None = alloop.engine.features.DEFAULT_FEATURES
    "objective": "mse",
    "hidden": 6,
    "epochs": 400,
    "lr": 0.01,
    "l2": 1.0,
}


def _fit_probs(
    X_fit: np.ndarray, y_fit: np.ndarray, X_out: np.ndarray, n_classes: int, model: str = "logreg", seed: int = 0
) -> np.ndarray:
    present = np.unique(y_fit)
    out = np.zeros((X_out.shape[0], n_classes))
    if present.size < 2:
        out[:, present[0]] = 1.0
        return out
    est: Any
    if model == "random-forest":
        from sklearn.ensemble import RandomForestClassifier

        # the same random_state for the base fit and every look-ahead refit: common random numbers, so a
        # gain measures the added record rather than another draw of bootstrap samples
        est = RandomForestClassifier(n_estimators=50, random_state=seed, n_jobs=1)
    else:
        from sklearn.linear_model import LogisticRegression

        est = LogisticRegression(max_iter=300)
    est.fit(X_fit, y_fit)
    out[:, est.classes_] = est.predict_proba(X_out)
    return out


def simulate_episode(
    family: str,
    seed: int,
    *,
    n: int = 500,
    initial: int = 10,
    batch: int = 10,
    budget: int = 100,
    lookahead: int = 16,
    embeddings: bool = True,
    model: str = "logreg",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One simulated campaign: ``(features (m, F), targets (m,), loop (m,))`` from each loop's look-ahead.

    Features are :data:`~alloop.engine.features.EPISODE_FEATURES`; ``model`` is one of :data:`MODELS` (the
    model refit each loop and by the expert). The behaviour policy mixes margin and random picks (so the
    states cover both); at each loop
    ``lookahead`` candidates (half uniform, half among the most uncertain) are each added alone, the model
    refit, and the gain in mean probability of the true class on a validation split measured;
    targets are z-scored within the loop (the selector only needs to rank).
    """
    from alloop.engine.features import EPISODE_FEATURES, record_features
    from alloop.metadata import History, Snapshot
    from alloop.strategies import SelectionContext

    if model not in MODELS:
        raise ConfigError(f"The 'model' of a simulated campaign must be one of {list(MODELS)}. Got {model!r}.")

    X, y = synthetic_task(family, seed, n=n)
    c = int(y.max()) + 1
    rng = np.random.default_rng([seed, 7, len(family)])
    perm = rng.permutation(n)
    pool, val = perm[: int(n * 0.65)], perm[int(n * 0.65) :]
    labeled = list(rng.choice(pool, size=initial, replace=False))
    hist = History()
    feats: list[np.ndarray] = []
    targs: list[np.ndarray] = []
    loops: list[np.ndarray] = []
    loop = 0
    while len(labeled) < budget:
        lab = np.array(sorted(labeled))
        unl = np.setdiff1d(pool, lab)
        outs = _fit_probs(X[lab], y[lab], np.vstack([X[unl], X[val]]), c, model, seed)
        p_unl, p_val = outs[: unl.size], outs[unl.size :]
        base = float(p_val[np.arange(val.size), y[val]].mean())
        hist.update(unl, Snapshot(ids=unl, probs=p_unl), loop)
        ctx = SelectionContext(
            ids=unl,
            index=unl,
            probs=p_unl,
            embeddings=X[unl] if embeddings else None,
            history=hist.features(unl),
            labeled_ids=lab,
            labels=y[lab],
            labeled_embeddings=X[lab] if embeddings else None,
            n_classes=c,
            seed=seed,
            loop=loop,
        )
        F = record_features(ctx, EPISODE_FEATURES)
        part = np.sort(p_unl, axis=1)
        margin = part[:, -1] - part[:, -2]
        uncertain = np.argsort(margin, kind="stable")[: max(lookahead * 3, 1)]
        picks = np.unique(
            np.concatenate(
                [
                    rng.choice(unl.size, size=min(lookahead // 2, unl.size), replace=False),
                    rng.choice(uncertain, size=min(lookahead - lookahead // 2, uncertain.size), replace=False),
                ]
            )
        )
        gains = np.empty(picks.size)
        for j, pos in enumerate(picks):
            rows = np.append(lab, unl[pos])
            pv = _fit_probs(X[rows], y[rows], X[val], c, model, seed)
            gains[j] = float(pv[np.arange(val.size), y[val]].mean()) - base
        sd = gains.std()
        feats.append(F[picks])
        targs.append((gains - gains.mean()) / sd if sd > 0 else np.zeros_like(gains))
        loops.append(np.full(picks.size, loop))
        k = min(batch, budget - len(labeled), unl.size)
        n_margin = int(rng.integers(0, k + 1))
        chosen = list(np.argsort(margin, kind="stable")[:n_margin])
        rest = np.setdiff1d(np.arange(unl.size), chosen)
        chosen += list(rng.choice(rest, size=k - n_margin, replace=False))
        labeled += [int(v) for v in unl[np.array(chosen, dtype=np.int64)]]
        loop += 1
    return np.vstack(feats), np.concatenate(targs), np.concatenate(loops)


Episode = tuple[str, np.ndarray, np.ndarray, np.ndarray]


def _episode_job(args: tuple[str, int, bool, str, dict[str, Any], str | None]) -> Episode:
    family, seed, emb, model, kw, cache = args
    path = None
    if cache is not None:
        tag = "-".join(f"{k}{v}" for k, v in sorted(kw.items()))
        # "e2": episodes of format 2 (EPISODE_FEATURES, loop numbers); older cache files are never read
        path = Path(cache) / f"e2-{family}-{seed}-{int(emb)}-{model}{'-' + tag if tag else ''}.npz"
        if path.exists():
            with np.load(path, allow_pickle=False) as z:
                return family, z["F"], z["t"], z["g"]
    F, t, g = simulate_episode(family, seed, embeddings=emb, model=model, **kw)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, F=F, t=t, g=g)
    return family, F, t, g


# ---- fitting ------------------------------------------------------------------------------------------------
def _group_softmax(x: np.ndarray, starts: np.ndarray, inv: np.ndarray) -> np.ndarray:
    """Softmax of ``x`` within each group (rows sorted by group; ``starts`` = first row of each group)."""
    e = np.exp(x - np.maximum.reduceat(x, starts)[inv])
    return e / np.add.reduceat(e, starts)[inv]


def listwise_gradient(s: np.ndarray, t: np.ndarray, groups: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Gradient of the ListNet loss −Σ softmax(t/τ) · log softmax(s) within groups, averaged over groups.

    Rows must be sorted by group. Only the order of scores within a group matters to this loss.

    >>> g = listwise_gradient(np.zeros(4), np.array([1.0, 0.0, 1.0, 0.0]), np.array([0, 0, 1, 1]))
    >>> (g < 0).tolist()  # raise the better record of each group
    [True, False, True, False]
    """
    starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
    inv = np.cumsum(np.r_[False, groups[1:] != groups[:-1]])
    return (_group_softmax(s, starts, inv) - _group_softmax(t / temperature, starts, inv)) / starts.size


def fit_selector(
    F: np.ndarray,
    t: np.ndarray,
    features: Sequence[str],
    *,
    groups: np.ndarray | None = None,
    objective: str = "mse",
    hidden: int = 12,
    epochs: int = 400,
    lr: float = 0.01,
    l2: float = 1e-3,
    temperature: float = 1.0,
    seed: int = 0,
) -> Selector:
    """Fit the MLP by full-batch Adam (deterministic for ``seed``).

    ``objective="mse"``: mean squared error on ``t``. ``objective="listwise"``: the ListNet loss within
    ``groups`` (one group = one loop of one simulated campaign), which only asks the selector to rank the
    records of a loop as the expert did.
    """
    if objective not in ("mse", "listwise"):
        raise ConfigError(f"The 'objective' parameter of fit_selector must be 'mse' or 'listwise'. Got {objective!r}.")
    F = np.asarray(F, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    if objective == "listwise":
        if groups is None or len(groups) != t.size:
            raise ConfigError("The 'groups' parameter of fit_selector must give one group per row for 'listwise'.")
        order = np.argsort(np.asarray(groups), kind="stable")
        F, t, g_sorted = F[order], t[order], np.asarray(groups)[order]
    mean = F.mean(axis=0)
    scale = np.where(F.std(axis=0) > 1e-9, F.std(axis=0), 1.0)
    Z = (F - mean) / scale
    rng = np.random.default_rng(seed)
    params = [
        rng.normal(scale=1 / math.sqrt(Z.shape[1]), size=(Z.shape[1], hidden)),
        np.zeros(hidden),
        rng.normal(scale=1 / math.sqrt(hidden), size=hidden),
        np.zeros(1),
    ]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for step in range(1, epochs + 1):
        W1, b1, w2, b2 = params
        H = np.tanh(Z @ W1 + b1)
        out = H @ w2 + b2[0]
        if objective == "listwise":
            g_out = listwise_gradient(out, t, g_sorted, temperature)
        else:
            g_out = 2 * (out - t) / t.size
        g_w2 = H.T @ g_out + l2 * w2
        g_b2 = np.array([g_out.sum()])
        g_H = np.outer(g_out, w2) * (1 - H * H)
        g_W1 = Z.T @ g_H + l2 * W1
        g_b1 = g_H.sum(axis=0)
        for i, g in enumerate((g_W1, g_b1, g_w2, g_b2)):
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            params[i] = params[i] - lr * (m[i] / (1 - 0.9**step)) / (np.sqrt(v[i] / (1 - 0.999**step)) + 1e-8)
    W1, b1, w2, b2 = params
    return Selector(list(features), mean, scale, W1, b1, w2, float(b2[0]))


def _loop_rank_corr(s: np.ndarray, t: np.ndarray, loops: np.ndarray) -> float:
    """Mean over loops of the Spearman correlation between scores and look-ahead gains (NaN if none)."""
    cs = [_rank_corr(s[loops == v], t[loops == v]) for v in np.unique(loops)]
    cs = [c for c in cs if not math.isnan(c)]
    return float(np.mean(cs)) if cs else float("nan")


def _rank_corr(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def meta_train(
    *,
    families: Sequence[str] = FAMILIES,
    exclude: Sequence[str] = (),
    seeds: int = 6,
    models: Sequence[str] = MODELS,
    workers: int = 2,
    seed: int = 0,
    episode: dict[str, Any] | None = None,
    fit: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
    cache: str | os.PathLike[str] | None = None,
    cluster: Any = None,
) -> Selector:
    """Simulate ``seeds`` campaigns per family and model class (embeddings shared on even seeds), fit the selector.

    Families in ``exclude`` are left out (leave-one-family-out evaluation). Episodes run in parallel
    over ``workers`` processes; ``progress`` is called with the family of each finished episode. With
    ``cache`` (a directory), each episode's examples are kept as ``.npz`` and reused by later runs.
    With ``cluster`` (``local[:N]``, ``tcp://host:port`` or a ``distributed.Client``; ``workers`` is then
    unused) the episodes run as Dask tasks (:func:`alloop.scale.map_jobs`); the result is the same.
    ``fit`` overrides :data:`FIT` (the features and the arguments of :func:`fit_selector`).
    """
    from concurrent.futures import ProcessPoolExecutor

    from alloop.engine.features import DEFAULT_FEATURES, EPISODE_FEATURES

    fams = [f for f in families if f not in set(exclude)]
    unknown = sorted(set(fams) - set(FAMILIES))
    if unknown or not fams:
        raise ConfigError(f"The 'families' of meta-train must be a non-empty subset of {list(FAMILIES)}. Got {fams}.")
    if not models or set(models) - set(MODELS):
        raise ConfigError(
            f"The 'models' of meta-train must be a non-empty subset of {list(MODELS)}. Got {list(models)}."
        )
    kw = dict(episode or {})
    if int(kw.get("budget", 100)) <= int(kw.get("initial", 10)):
        raise ConfigError(
            f"The 'budget' of a meta-train campaign must be an int > its initial labels ({kw.get('initial', 10)}). "
            f"Got {kw.get('budget')}."
        )
    spec = {**FIT, **(fit or {})}
    names = list(spec.pop("features") or DEFAULT_FEATURES)
    missing = [f for f in names if f not in EPISODE_FEATURES]
    if missing:
        raise ConfigError(
            f"The features {missing} of meta-train are not recorded by simulated campaigns; "
            f"choose from {list(EPISODE_FEATURES)}."
        )
    where = None if cache is None else os.fspath(cache)
    jobs = [(f, 1000 * seed + s, s % 2 == 0, m, kw, where) for f in fams for m in models for s in range(seeds)]
    results: list[Episode] = []
    if cluster is not None:
        from alloop.scale import map_jobs

        done = None if progress is None else (lambda res: progress(res[0]))
        results = map_jobs(_episode_job, jobs, cluster=cluster, on_done=done)
    elif workers <= 1:
        for job in jobs:
            results.append(_episode_job(job))
            if progress:
                progress(job[0])
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for res in pool.map(_episode_job, jobs):
                results.append(res)
                if progress:
                    progress(res[0])
    cols = [EPISODE_FEATURES.index(f) for f in names]
    F = np.vstack([r[1][:, cols] for r in results])
    t = np.concatenate([r[2] for r in results])
    groups = np.concatenate([i * 1000 + r[3] for i, r in enumerate(results)])  # one group per loop per episode
    sel = fit_selector(F, t, names, groups=groups, seed=seed, **spec)
    per_family: dict[str, float | None] = {}
    for fam in fams:
        rows = [i for i, r in enumerate(results) if r[0] == fam]
        corr = [_loop_rank_corr(sel.score(results[i][1][:, cols]), results[i][2], results[i][3]) for i in rows]
        corr = [c for c in corr if not math.isnan(c)]
        per_family[fam] = round(float(np.mean(corr)), 4) if corr else None  # None: too few candidates per loop
    sel.meta = {
        "families": list(fams),
        "excluded": list(exclude),
        "models": list(models),
        "seeds_per_family_and_model": seeds,
        "seed": seed,
        "episode": {"n": 500, "initial": 10, "batch": 10, "budget": 100, "lookahead": 16, **kw},
        "model": "LogisticRegression(max_iter=300) or RandomForestClassifier(50 trees) on standardised features",
        "target": "one-step look-ahead gain in validation mean p(true class), z-scored per loop",
        "fit": dict(spec),
        "n_examples": int(t.size),
        "train_spearman_within_loop_per_family": per_family,
    }
    return sel
