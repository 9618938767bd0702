"""Learners for the model library and for users' own PyTorch models.

* :class:`ModelLearner` — any model of :mod:`alloop.models` (by name or as an estimator) with every kind of
  metadata it can give: probabilities, MC-dropout/committee samples, embeddings, training dynamics.
* :class:`TorchLearner` — the user's own ``torch.nn.Module``: their model factory, their training step or
  whole training function, checkpoints per loop in safetensors, MC dropout, an embedding hook.

torch is imported on first use only (``pip install 'alloop[torch]'``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from alloop.errors import ConfigError, DataError, StateError, require_extra
from alloop.loop._learner import SklearnLearner, TrainReport
from alloop.metadata import Snapshot
from alloop.records import as_id_array

__all__ = ["ModelLearner", "TorchLearner"]


def _derived_seed(seed: int, n: int) -> int:
    """A seed for one INFER pass from the learner's seed and the training-set size (stable across resumes)."""
    return int(np.random.SeedSequence([int(seed), int(n)]).generate_state(1)[0])


def _pad_columns(arr: np.ndarray, seen: list[Any], full: list[Any]) -> np.ndarray:
    """Reorder the last axis from ``seen`` classes to ``full`` classes (absent ones get 0)."""
    if seen == full:
        return arr
    pos = {c: j for j, c in enumerate(full)}
    out = np.zeros(arr.shape[:-1] + (len(full),), dtype=arr.dtype)
    out[..., [pos[c] for c in seen]] = arr
    return out


class ModelLearner(SklearnLearner):
    """A model of the library, with all the metadata it can produce.

    estimator   a built-in model name (``"mlp"``, ``"ensemble(mlp, k=5)"``, …) or an unfitted estimator
    X, ids      the user's features (or texts, or flattened images), one row per id
    mc_samples  MC-dropout passes per INFER for models with ``predict_samples`` (None: the model's
                default; 0: no samples). Ensembles give one sample per member
    embeddings  put the model's ``embed`` output (penultimate layer, sentence embedding) in the Snapshot
    warm_start  let TRAIN continue from the previous weights when the campaign asks for a warm start
    seed        seeds the model (for a name) and the MC-dropout masks (with the training-set size)

    TRAIN reports the model's per-epoch history in ``TrainReport.extra["epochs"]`` and the probability of
    the true label per epoch for every labeled record in ``extra["dynamics"]`` (``{"ids", "p_true"}``).

    >>> import numpy as np
    >>> X = np.array([[0.0], [0.2], [1.0], [1.2]])
    >>> learner = ModelLearner("ensemble(gaussian-nb, k=3)", X)
    >>> _ = learner.train(np.array([0, 1, 2, 3]), np.array([0, 0, 1, 1]), warm_start=False)
    >>> learner.infer(np.array([1, 2])).samples.shape
    (3, 2, 2)
    """

    def __init__(
        self,
        estimator: Any,
        X: Any,
        ids: Any = None,
        *,
        eval_X: Any = None,
        eval_y: Any = None,
        classes: Any = None,
        warm_start: bool = False,
        mc_samples: int | None = None,
        embeddings: bool = True,
        seed: int = 0,
    ) -> None:
        if isinstance(estimator, str):
            from alloop.models import build_model

            estimator = build_model(estimator, seed=seed)
        super().__init__(
            estimator, X, ids, eval_X=eval_X, eval_y=eval_y, classes=classes, warm_start=warm_start
        )
        self.mc_samples = mc_samples
        self.embeddings = embeddings
        self.seed = seed
        self._n_trained = 0

    def train(self, ids: np.ndarray, y: np.ndarray, *, warm_start: bool) -> TrainReport:
        report = super().train(ids, y, warm_start=warm_start)
        mode = report.mode
        if mode == "warm" and getattr(self.model, "warm_started_", True) is False:
            mode = "full"  # e.g. a new class appeared: the torch model had to start from scratch
        self._n_trained = int(len(ids))
        extra: dict[str, Any] = {}
        history = getattr(self.model, "history_", None)
        epochs = None
        if history:
            extra["epochs"] = [dict(h) for h in history]
            epochs = int(getattr(self.model, "epochs", len(history)))
        dyn = getattr(self.model, "record_dynamics_", None)
        if dyn:
            extra["dynamics"] = {"ids": np.asarray(ids), **{k: np.asarray(v) for k, v in dyn.items()}}
        return TrainReport(mode=mode, n_records=report.n_records, epochs=epochs, seconds=report.seconds, extra=extra)

    def infer(self, ids: np.ndarray) -> Snapshot:
        from alloop.models import predict_proba_full

        classes = self._full_classes()
        X = self.X[self.rows(ids)]
        probs = predict_proba_full(self.model, X, classes)
        samples = None
        if hasattr(self.model, "predict_samples") and self.mc_samples != 0:
            raw = self.model.predict_samples(X, self.mc_samples, seed=_derived_seed(self.seed, self._n_trained))
            samples = _pad_columns(np.asarray(raw), self._model_classes(), list(classes))
        emb = None
        if self.embeddings and hasattr(self.model, "embed") and getattr(self.model, "can_embed", True):
            emb = np.asarray(self.model.embed(X))
        return Snapshot(ids=ids, probs=probs, samples=samples, embeddings=emb, classes=classes)


def _torch() -> Any:
    return require_extra("torch", "torch")


def _default_train_step(model: Any, xb: Any, yb: Any, optimizer: Any) -> float:
    torch = _torch()
    optimizer.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(xb), yb)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


class TorchLearner:
    """The user's own PyTorch model as a learner.

    model_fn        ``() -> torch.nn.Module`` returning a fresh model whose output is one logit per class
    X, ids          the inputs (numpy array or tensor, any shape with one row per id) and their ids
    classes         the class list; column ``j`` of the logits is ``classes[j]`` (required)
    train_step      ``(model, xb, yb, optimizer) -> loss`` for one mini-batch (default: cross-entropy);
                    the learner runs the epochs, shuffling with a seeded generator
    fit_fn          instead of ``train_step``: ``(model, X, y) -> dict | None`` trains on all labeled
                    records at once, the user's own loop (y holds class indices)
    predict_fn      ``(model, X) -> logits`` (default ``model(X)``)
    optimizer_fn    ``(parameters) -> optimizer`` (default Adam, lr 1e-3)
    epochs, batch_size  for the built-in loop
    device          ``"cpu"``, ``"cuda"``, ``"mps"`` or ``"auto"`` (the first available of cuda, mps, cpu)
    mc_samples      MC-dropout passes per INFER (0: off): dropout layers are switched on, the rest stays
                    in eval mode, and the masks are seeded
    embedding_layer name of a sub-module (as in ``model.named_modules()``) whose output, flattened, is
                    put in ``Snapshot.embeddings`` (a forward hook)
    checkpoint_dir  when given, the weights after each TRAIN are saved as ``model-NNNN.safetensors``
                    (tensors only, never pickled objects); a warm start with no model in memory (after a
                    restart) continues from the latest one
    eval_X, eval_y  the user's held-out data for ``evaluate``
    seed            seeds weights (through ``model_fn``), shuffling and dropout masks
    n_threads       torch threads while training and predicting (restored afterwards)

    >>> import numpy as np, torch                                                    # doctest: +SKIP
    >>> learner = TorchLearner(lambda: torch.nn.Linear(2, 2), np.eye(2, dtype="float32"),
    ...                        classes=[0, 1], epochs=2)                              # doctest: +SKIP
    >>> learner.train(np.array([0, 1]), np.array([0, 1]), warm_start=False).mode     # doctest: +SKIP
    'full'
    """

    def __init__(
        self,
        model_fn: Callable[[], Any],
        X: Any,
        ids: Any = None,
        *,
        classes: Any,
        train_step: Callable[..., Any] | None = None,
        fit_fn: Callable[..., Any] | None = None,
        predict_fn: Callable[..., Any] | None = None,
        optimizer_fn: Callable[[Any], Any] | None = None,
        epochs: int = 10,
        batch_size: int = 64,
        device: str = "cpu",
        mc_samples: int = 0,
        embedding_layer: str | None = None,
        checkpoint_dir: str | Path | None = None,
        eval_X: Any = None,
        eval_y: Any = None,
        seed: int = 0,
        n_threads: int = 1,
    ) -> None:
        self.model_fn = model_fn
        self.X = X
        self.ids = ids
        self.classes = classes
        self.train_step = train_step
        self.fit_fn = fit_fn
        self.predict_fn = predict_fn
        self.optimizer_fn = optimizer_fn
        self.epochs = epochs
        self.batch_size = batch_size
        self.device = device
        self.mc_samples = mc_samples
        self.embedding_layer = embedding_layer
        self.checkpoint_dir = checkpoint_dir
        self.eval_X = eval_X
        self.eval_y = eval_y
        self.seed = seed
        self.n_threads = n_threads
        self.model: Any = None
        self.optimizer: Any = None
        self.version = 0
        self._rows: dict[Any, int] | None = None
        self._n_trained = 0

    # ---- checks and helpers --------------------------------------------------------------------
    def _setup(self) -> None:
        if self._rows is not None:
            return
        from alloop._validation import check_int

        owner = "TorchLearner"
        if not callable(self.model_fn):
            raise ConfigError(f"The 'model_fn' parameter of {owner} must be a function returning a torch.nn.Module.")
        if self.train_step is not None and self.fit_fn is not None:
            raise ConfigError(f"Give {owner} either 'train_step' or 'fit_fn', not both.")
        check_int(self.epochs, "epochs", owner, min=0)
        check_int(self.batch_size, "batch_size", owner, min=1)
        check_int(self.mc_samples, "mc_samples", owner, min=0)
        check_int(self.seed, "seed", owner, min=0)
        check_int(self.n_threads, "n_threads", owner, min=1)
        if self.device not in ("cpu", "cuda", "mps", "auto") and not str(self.device).startswith("cuda:"):
            raise ConfigError(
                f"The 'device' parameter of {owner} must be 'cpu', 'cuda', 'cuda:N', 'mps' or 'auto'. "
                f"Got {self.device!r}."
            )
        if self.classes is None or len(list(self.classes)) < 2:
            raise ConfigError(f"The 'classes' parameter of {owner} must list the classes (one per logit), at least 2.")
        n = len(self.X)
        ids = np.arange(n) if self.ids is None else as_id_array(self.ids, "ids")
        if ids.size != n:
            raise DataError(f"'ids' has {ids.size} entries but 'X' has {n} rows; give one id per row.")
        self._ids = ids
        self._rows = {rid: j for j, rid in enumerate(ids.tolist())}

    def _device(self) -> Any:
        torch = _torch()
        if self.device == "auto":
            if torch.cuda.is_available():
                return torch.device("cuda")
            if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
                return torch.device("mps")
            return torch.device("cpu")
        return torch.device(self.device)

    def _inputs(self, ids: Any) -> Any:
        torch = _torch()
        self._setup()
        assert self._rows is not None
        arr = as_id_array(ids, "ids")
        try:
            rows = np.fromiter((self._rows[r] for r in arr.tolist()), dtype=np.int64, count=arr.size)
        except KeyError as exc:
            raise DataError(f"TorchLearner has no input for id {exc.args[0]!r}; check the ids given with X.") from None
        if isinstance(self.X, torch.Tensor):
            x = self.X[torch.from_numpy(rows)]
        else:
            x = torch.as_tensor(np.asarray(self.X)[rows])
        if x.is_floating_point():
            x = x.float()
        return x.to(self._device())

    def _targets(self, y: Any) -> Any:
        torch = _torch()
        pos = {c: j for j, c in enumerate(list(self.classes))}
        try:
            idx = [pos[v] for v in np.asarray(y).tolist()]
        except KeyError as exc:
            raise DataError(f"Label {exc.args[0]!r} is not in TorchLearner 'classes' {list(self.classes)!r}.") from None
        return torch.as_tensor(idx, dtype=torch.int64, device=self._device())

    def _new_model(self) -> Any:
        torch = _torch()
        with torch.random.fork_rng(devices=[]):  # model_fn's weight init draws from the global RNG
            torch.manual_seed(int(self.seed))
            model = self.model_fn()
        if not isinstance(model, torch.nn.Module):
            raise ConfigError(f"'model_fn' of TorchLearner must return a torch.nn.Module; got {type(model).__name__}.")
        return model.to(self._device())

    def _latest_checkpoint(self) -> Path | None:
        if self.checkpoint_dir is None:
            return None
        found = sorted(Path(self.checkpoint_dir).glob("model-*.safetensors"))
        return found[-1] if found else None

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write the model's weights (a state dict of tensors) to ``path`` in safetensors format."""
        from safetensors.torch import save_file

        if self.model is None:
            raise StateError("TorchLearner has no model to save yet; call train() first.")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        save_file({k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}, str(tmp))
        tmp.replace(path)
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        """Build a fresh model with ``model_fn`` and load the weights saved at ``path``."""
        from safetensors.torch import load_file

        self._setup()
        if not Path(path).is_file():
            raise DataError(f"Checkpoint {str(path)!r} does not exist; check 'checkpoint_dir'.")
        model = self._new_model()
        model.load_state_dict(load_file(str(path), device=str(self._device())))
        self.model = model
        self.optimizer = None

    # ---- the Learner protocol ------------------------------------------------------------------
    def train(self, ids: np.ndarray, y: np.ndarray, *, warm_start: bool) -> TrainReport:
        from alloop.models._torch import _threads

        t0 = time.perf_counter()
        self._setup()
        if warm_start and self.model is None and (latest := self._latest_checkpoint()) is not None:
            self.load_checkpoint(latest)
            self.version = int(latest.stem.split("-")[-1])  # go on numbering after the restart
        warm = bool(warm_start and self.model is not None)
        if not warm:
            self.model = self._new_model()
            self.optimizer = None
        x = self._inputs(ids)
        t = self._targets(y)
        history: list[dict[str, float]] = []
        with _threads(self.n_threads) as torch:
            self.model.train()
            if self.fit_fn is not None:
                out = self.fit_fn(self.model, x, t)
                if isinstance(out, Mapping):
                    history.append({str(k): float(v) for k, v in out.items()})
            else:
                if self.optimizer is None:
                    params = self.model.parameters()
                    opt_fn = self.optimizer_fn or (lambda p: torch.optim.Adam(p, lr=1e-3))
                    self.optimizer = opt_fn(params)
                step = self.train_step or _default_train_step
                gen = torch.Generator().manual_seed(_derived_seed(self.seed, len(ids)))
                n = int(t.shape[0])
                for epoch in range(int(self.epochs)):
                    order = torch.randperm(n, generator=gen).to(x.device)
                    total = 0.0
                    for i in range(0, n, int(self.batch_size)):
                        idx = order[i : i + int(self.batch_size)]
                        total += float(step(self.model, x[idx], t[idx], self.optimizer)) * int(idx.numel())
                    history.append({"epoch": float(epoch + 1), "loss": total / max(n, 1)})
            self.model.eval()
        self.version += 1
        self._n_trained = int(len(ids))
        extra: dict[str, Any] = {"epochs": history}
        if self.checkpoint_dir is not None:
            path = Path(self.checkpoint_dir) / f"model-{self.version:04d}.safetensors"
            extra["checkpoint"] = str(self.save_checkpoint(path))
        return TrainReport(
            mode="warm" if warm else "full",
            n_records=int(len(ids)),
            epochs=None if self.fit_fn is not None else int(self.epochs),
            seconds=time.perf_counter() - t0,
            extra=extra,
        )

    def _forward(self, x: Any) -> Any:
        return self.predict_fn(self.model, x) if self.predict_fn is not None else self.model(x)

    def _probs(self, x: Any, *, embed: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        torch = _torch()
        captured: list[Any] = []
        handle = None
        if embed and self.embedding_layer is not None:
            modules = dict(self.model.named_modules())
            if self.embedding_layer not in modules:
                names = [n for n in modules if n]
                raise ConfigError(
                    f"The 'embedding_layer' parameter of TorchLearner names no sub-module: {self.embedding_layer!r}. "
                    f"The model has: {', '.join(names)}."
                )
            handle = modules[self.embedding_layer].register_forward_hook(
                lambda _m, _i, out: captured.append(out.detach().flatten(1).cpu())
            )
        try:
            outs = []
            with torch.no_grad():
                for i in range(0, int(x.shape[0]), 1024):
                    outs.append(torch.softmax(self._forward(x[i : i + 1024]).double(), dim=1).cpu())
        finally:
            if handle is not None:
                handle.remove()
        probs = torch.cat(outs).numpy() if outs else np.zeros((0, len(list(self.classes))))
        emb = torch.cat(captured).float().numpy() if captured else None
        return probs, emb

    def infer(self, ids: np.ndarray) -> Snapshot:
        from alloop.models._torch import _threads

        if self.model is None:
            raise StateError("TorchLearner has not been trained yet; call train() first.")
        x = self._inputs(ids)
        with _threads(self.n_threads) as torch:
            self.model.eval()
            probs, emb = self._probs(x, embed=True)
            samples = None
            if self.mc_samples:
                dropouts = [m for m in self.model.modules() if isinstance(m, torch.nn.modules.dropout._DropoutNd)]
                if not dropouts:
                    raise ConfigError(
                        "TorchLearner has mc_samples > 0 but the model has no dropout layer; add torch.nn.Dropout "
                        "or set mc_samples=0."
                    )
                with torch.random.fork_rng(devices=[]):
                    torch.manual_seed(_derived_seed(self.seed, self._n_trained))
                    for m in dropouts:
                        m.train()
                    try:
                        samples = np.stack([self._probs(x)[0] for _ in range(int(self.mc_samples))])
                    finally:
                        self.model.eval()
        return Snapshot(ids=ids, probs=probs, samples=samples, embeddings=emb, classes=list(self.classes))

    def evaluate(self) -> dict[str, float]:
        if self.eval_X is None or self.eval_y is None or self.model is None:
            return {}
        from alloop.models import classification_metrics
        from alloop.models._torch import _threads

        torch = _torch()
        x = torch.as_tensor(np.asarray(self.eval_X)) if not isinstance(self.eval_X, torch.Tensor) else self.eval_X
        x = (x.float() if x.is_floating_point() else x).to(self._device())
        with _threads(self.n_threads):
            self.model.eval()
            probs, _ = self._probs(x)
        return classification_metrics(np.asarray(self.eval_y), probs, list(self.classes))
