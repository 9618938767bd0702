"""PyTorch models with a scikit-learn face: ``mlp`` and ``cnn`` (extra ``torch``).

Both are estimators (``fit``/``predict_proba``/``classes_``, parameters from ``__init__``, so ``clone``
works) with three extras a learner uses to fill a :class:`~alloop.metadata.Snapshot`:

* ``predict_samples(X, n_samples, seed)`` — MC-dropout passes, ``(S, n, C)``;
* ``embed(X)`` — the penultimate layer (after its ReLU), ``(n, D)``;
* ``history_`` / ``record_dynamics_`` — per-epoch loss and accuracy, and the probability of the true
  label per epoch for every training record (training dynamics).

torch is imported on first use only; without it, fitting raises
:class:`~alloop.errors.MissingDependencyError` ("pip install 'alloop[torch]'").

Every random choice (initial weights, shuffling, dropout masks) comes from a ``torch.Generator``
seeded with ``seed``, and torch runs on ``n_threads`` threads (restored afterwards), so two fits with
the same seed give the same weights.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from alloop.errors import ConfigError, DataError, StateError, require_extra

__all__ = ["CNNClassifier", "MLPClassifier", "TorchClassifier"]


def _torch() -> Any:
    return require_extra("torch", "torch")


@contextlib.contextmanager
def _threads(n: int) -> Iterator[Any]:
    """Run torch on ``n`` threads, then restore the caller's setting (2 cores: 1 thread is fastest here)."""
    torch = _torch()
    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield torch
    finally:
        if before != n:
            torch.set_num_threads(before)


def _build_network(kind: str, n_in: int, n_out: int, hidden: tuple[int, ...], dropout: float, shape: Any) -> Any:
    """The network as a ``torch.nn.Module`` whose forward takes ``(x, generator, mc)``.

    Dropout is applied by hand with the given generator (``nn.Dropout`` draws from the global RNG),
    whenever the module is training or ``mc`` is true.
    """
    torch = _torch()
    nn = torch.nn
    F = torch.nn.functional

    def drop(h: Any, training: bool, generator: Any) -> Any:
        if not training or dropout <= 0:
            return h
        keep = torch.rand(h.shape, generator=generator) >= dropout
        return h * keep / (1.0 - dropout)

    class MLP(nn.Module):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            sizes = (n_in, *hidden)
            self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:], strict=True))
            self.out = nn.Linear(sizes[-1], n_out)

        def features(self, x: Any, generator: Any = None, mc: bool = False) -> Any:
            for layer in self.hidden:
                x = drop(F.relu(layer(x)), self.training or mc, generator)
            return x

        def forward(self, x: Any, generator: Any = None, mc: bool = False) -> Any:
            return self.out(self.features(x, generator, mc))

    class CNN(nn.Module):  # type: ignore[misc,name-defined]
        """conv3×3(16) → ReLU → maxpool 2 → conv3×3(32) → ReLU → adaptive avg-pool 4×4 → fc(hidden) → fc(C)."""

        def __init__(self) -> None:
            super().__init__()
            channels = shape[0]
            self.conv1 = nn.Conv2d(channels, 16, 3, padding=1)
            self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
            self.fc = nn.Linear(32 * 16, hidden[-1])
            self.out = nn.Linear(hidden[-1], n_out)

        def features(self, x: Any, generator: Any = None, mc: bool = False) -> Any:
            x = x.reshape(-1, *shape)
            x = F.max_pool2d(F.relu(self.conv1(x)), 2)
            x = F.adaptive_avg_pool2d(F.relu(self.conv2(x)), 4).flatten(1)
            return drop(F.relu(self.fc(x)), self.training or mc, generator)

        def forward(self, x: Any, generator: Any = None, mc: bool = False) -> Any:
            return self.out(self.features(x, generator, mc))

    return MLP() if kind == "mlp" else CNN()


class TorchClassifier(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Shared estimator machinery for :class:`MLPClassifier` and :class:`CNNClassifier`.

    hidden      hidden layer sizes (the CNN uses the last one for its fully connected layer)
    dropout     dropout probability after each hidden layer (also used for MC dropout)
    lr          Adam learning rate
    batch_size  mini-batch size (the training set is reshuffled every epoch)
    epochs      epochs per ``fit``
    standardize standardise inputs with the training mean/std (per feature for the MLP, one scalar for
                the CNN); a warm-started fit keeps the statistics of the first fit
    warm_start  when true and already fitted on the same classes, ``fit`` continues from the previous
                weights (and optimiser state) instead of starting from scratch
    mc_samples  default number of MC-dropout passes for ``predict_samples``
    seed        seeds weights, shuffling and dropout
    n_threads   torch threads while fitting and predicting
    """

    _kind = "mlp"

    def __init__(
        self,
        *,
        hidden: tuple[int, ...] = (256, 256),
        dropout: float = 0.2,
        lr: float = 1e-3,
        batch_size: int = 64,
        epochs: int = 30,
        standardize: bool = True,
        warm_start: bool = False,
        mc_samples: int = 20,
        seed: int = 0,
        n_threads: int = 1,
        image_shape: tuple[int, ...] | None = None,
    ) -> None:
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.batch_size = batch_size
        self.epochs = epochs
        self.standardize = standardize
        self.warm_start = warm_start
        self.mc_samples = mc_samples
        self.seed = seed
        self.n_threads = n_threads
        self.image_shape = image_shape

    # ---- checks ----------------------------------------------------------------------------------
    def _check_params(self) -> None:
        from alloop._validation import check_float, check_int

        owner = type(self).__name__
        check_int(self.batch_size, "batch_size", owner, min=1)
        check_int(self.epochs, "epochs", owner, min=0)
        check_int(self.mc_samples, "mc_samples", owner, min=1)
        check_int(self.seed, "seed", owner, min=0)
        check_int(self.n_threads, "n_threads", owner, min=1)
        check_float(self.lr, "lr", owner, low=0.0)
        if not (isinstance(self.dropout, int | float) and 0 <= self.dropout < 1):
            raise ConfigError(f"The 'dropout' parameter of {owner} must be a float in [0, 1). Got {self.dropout!r}.")
        hidden = tuple(self.hidden) if isinstance(self.hidden, list | tuple) else ()
        if not hidden or not all(isinstance(h, int) and h >= 1 for h in hidden):
            raise ConfigError(
                f"The 'hidden' parameter of {owner} must be a non-empty tuple of ints >= 1, e.g. (256, 256). "
                f"Got {self.hidden!r}."
            )

    def _input_shape(self, n_features: int) -> tuple[int, ...]:
        return (n_features,)

    def _as_float(self, X: Any) -> np.ndarray:
        arr = np.asarray(X)
        if arr.dtype.kind not in "fiub":
            raise DataError(
                f"{type(self).__name__} needs numeric features; got dtype {arr.dtype}. "
                "Text needs the 'minilm' model; encode other columns as numbers."
            )
        arr = arr.reshape(arr.shape[0], -1).astype(np.float32)
        n_fit = getattr(self, "n_features_in_", None)
        if n_fit is not None and arr.shape[1] != n_fit:
            raise DataError(
                f"{type(self).__name__} was fit on {n_fit} features; got {arr.shape[1]}. "
                "Pass the same columns as in fit."
            )
        return arr

    def _scaled(self, X: Any) -> Any:
        torch = _torch()
        arr = self._as_float(X)
        if self.standardize:
            arr = (arr - self._mean) / self._scale
        return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))

    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise StateError(f"{type(self).__name__} is not fitted yet; call fit(X, y) first.")

    # ---- fit -------------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any) -> TorchClassifier:
        """Train for ``epochs`` epochs (from scratch, or from the previous weights with ``warm_start``)."""
        self._check_params()
        torch = _torch()
        y = np.asarray(y)
        X_arr = np.asarray(X)
        if X_arr.ndim < 2 or X_arr.shape[0] != y.shape[0] or y.ndim != 1:
            raise DataError(
                f"{type(self).__name__}.fit needs X with one row per label; got X {X_arr.shape} and y {y.shape}."
            )
        classes = np.unique(y)
        warm = bool(self.warm_start and hasattr(self, "net_") and np.array_equal(classes, self.classes_))
        self.classes_: np.ndarray
        self.n_features_in_: int
        if not warm:
            if hasattr(self, "n_features_in_"):
                del self.n_features_in_
            flat = self._as_float(X_arr)
            self.classes_ = classes
            self.n_features_in_ = flat.shape[1]
            if self.standardize:
                if self._kind == "mlp":
                    self._mean = flat.mean(axis=0)
                    self._scale = flat.std(axis=0)
                    self._scale[self._scale == 0] = 1.0
                else:
                    self._mean = np.float32(flat.mean())
                    self._scale = np.float32(flat.std() or 1.0)
        t = torch.from_numpy(np.searchsorted(self.classes_, y).astype(np.int64))
        with _threads(self.n_threads):
            xt = self._scaled(X_arr)
            if not warm:
                self._gen = torch.Generator().manual_seed(int(self.seed))
                with torch.random.fork_rng(devices=[]):  # weight init draws from the global RNG
                    torch.manual_seed(int(self.seed))
                    self.net_ = _build_network(
                        self._kind,
                        xt.shape[1],
                        len(self.classes_),
                        tuple(self.hidden),
                        float(self.dropout),
                        self._input_shape(xt.shape[1]),
                    )
                self._opt = torch.optim.Adam(self.net_.parameters(), lr=float(self.lr))
                self.history_: list[dict[str, float]] = []
            self._train_epochs(torch, xt, t)
        self.warm_started_ = warm
        return self

    def _train_epochs(self, torch: Any, xt: Any, t: Any) -> None:
        n = xt.shape[0]
        F = torch.nn.functional
        p_true = np.zeros((n, int(self.epochs)), dtype=np.float32)
        start = len(self.history_)
        for epoch in range(int(self.epochs)):
            self.net_.train()
            order = torch.randperm(n, generator=self._gen)
            total = 0.0
            for i in range(0, n, int(self.batch_size)):
                idx = order[i : i + int(self.batch_size)]
                logits = self.net_(xt[idx], self._gen)
                loss = F.cross_entropy(logits, t[idx])
                self._opt.zero_grad()
                loss.backward()
                self._opt.step()
                total += float(loss.detach()) * idx.numel()
            self.net_.eval()
            with torch.no_grad():
                probs = torch.softmax(self.net_(xt), dim=1)
            p_true[:, epoch] = probs[torch.arange(n), t].numpy()
            acc = float((probs.argmax(dim=1) == t).float().mean())
            self.history_.append({"epoch": start + epoch + 1, "loss": total / max(n, 1), "train_accuracy": acc})
        self.record_dynamics_ = {"p_true": p_true}

    # ---- predict ---------------------------------------------------------------------------------
    def _logits(self, X: Any, *, mc: bool = False, generator: Any = None) -> Any:
        torch = _torch()
        self.net_.eval()
        with torch.no_grad():
            return self.net_(self._scaled(X), generator, mc)

    def predict_proba(self, X: Any) -> np.ndarray:
        """``(n, C)`` float64 probabilities, dropout off; columns follow ``classes_``."""
        self._check_fitted()
        with _threads(self.n_threads) as torch:
            return torch.softmax(self._logits(X).double(), dim=1).numpy()

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.classes_)[np.argmax(self.predict_proba(X), axis=1)]

    def predict_samples(self, X: Any, n_samples: int | None = None, seed: int = 0) -> np.ndarray:
        """``(S, n, C)`` probabilities from ``S`` MC-dropout passes; the masks come from ``seed`` alone."""
        from alloop._validation import check_int

        self._check_fitted()
        s = check_int(self.mc_samples if n_samples is None else n_samples, "n_samples", "predict_samples", min=1)
        seed = check_int(seed, "seed", "predict_samples", min=0)
        with _threads(self.n_threads) as torch:
            gen = torch.Generator().manual_seed(seed)
            out = [torch.softmax(self._logits(X, mc=True, generator=gen).double(), dim=1).numpy() for _ in range(s)]
        return np.stack(out)

    def embed(self, X: Any) -> np.ndarray:
        """``(n, D)`` float32 activations of the penultimate layer (dropout off)."""
        self._check_fitted()
        with _threads(self.n_threads) as torch:
            self.net_.eval()
            with torch.no_grad():
                return self.net_.features(self._scaled(X)).numpy()



class MLPClassifier(TorchClassifier):
    """The reference ``mlp``: a multi-layer perceptron with MC dropout, trained the same way everywhere.

    Recipe (the defaults, which other benchmarks rely on): inputs standardised per feature with the
    training mean and std; two hidden layers of 256 units, each ReLU then dropout 0.2; a linear output
    layer and softmax; cross-entropy loss; Adam with learning rate 1e-3; mini-batches of 64, reshuffled
    every epoch; 30 epochs from scratch at every fit (``warm_start=True`` continues from the previous
    weights instead). MC dropout keeps the 0.2 dropout on at prediction time; the embedding is the
    second hidden layer's output (256 values).

    >>> import numpy as np
    >>> X = np.array([[0.0, 1.0], [1.0, 0.0]] * 10); y = np.array([0, 1] * 10)
    >>> est = MLPClassifier(epochs=5, seed=0).fit(X, y)            # doctest: +SKIP
    >>> est.predict_proba(X).shape, est.predict_samples(X, 3).shape  # doctest: +SKIP
    ((20, 2), (3, 20, 2))
    """

    _kind = "mlp"


class CNNClassifier(TorchClassifier):
    """A small ``cnn`` for images such as digits (8×8) or MNIST-size (28×28), with MC dropout.

    Rows of ``X`` are flattened images; ``image_shape`` is ``(channels, height, width)`` — when not
    given, a square grey image (``d = s²``) or a square RGB one (``d = 3s²``) is assumed. Layers:
    conv 3×3 (16) → ReLU → max-pool 2 → conv 3×3 (32) → ReLU → adaptive average pool to 4×4 → fully
    connected (``hidden[-1]``, default 128) → ReLU → dropout → linear output. Inputs are standardised with
    one scalar mean/std. Training as for ``mlp``: Adam 1e-3, batch 64, ``epochs`` (default 30).
    """

    _kind = "cnn"

    def __init__(
        self,
        *,
        hidden: tuple[int, ...] = (128,),
        dropout: float = 0.2,
        lr: float = 1e-3,
        batch_size: int = 64,
        epochs: int = 30,
        standardize: bool = True,
        warm_start: bool = False,
        mc_samples: int = 20,
        seed: int = 0,
        n_threads: int = 1,
        image_shape: tuple[int, ...] | None = None,
    ) -> None:
        super().__init__(
            hidden=hidden,
            dropout=dropout,
            lr=lr,
            batch_size=batch_size,
            epochs=epochs,
            standardize=standardize,
            warm_start=warm_start,
            mc_samples=mc_samples,
            seed=seed,
            n_threads=n_threads,
            image_shape=image_shape,
        )

    def _input_shape(self, n_features: int) -> tuple[int, ...]:
        if self.image_shape is not None:
            shape = tuple(int(v) for v in self.image_shape)
            if len(shape) == 2:
                shape = (1, *shape)
            if len(shape) != 3 or math.prod(shape) != n_features:
                raise ConfigError(
                    f"The 'image_shape' parameter of CNNClassifier must be (channels, height, width) with "
                    f"channels × height × width = {n_features} (the number of features). Got {self.image_shape!r}."
                )
            return shape
        for channels in (1, 3):
            side = math.isqrt(n_features // channels)
            if channels * side * side == n_features and side >= 2:
                return (channels, side, side)
        raise ConfigError(
            f"CNNClassifier cannot guess the image shape of {n_features} features; pass "
            "image_shape=(channels, height, width)."
        )
