"""The model registry: every built-in model by name, what data it takes and what metadata it gives.

>>> est = build_model("random-forest", seed=3)
>>> est.get_params()["random_state"]
3
>>> build_model("logreg").__class__.__name__
'Pipeline'
>>> build_model("ensemble(gaussian-nb, k=3)").k
3
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alloop.errors import ConfigError
from alloop.models import _sklearn as sk

__all__ = ["MODELS", "ModelInfo", "build_model", "list_models", "model_info"]

DATA_KINDS = ("tabular", "image", "text")


def _mlp(seed: int) -> Any:
    from alloop.models._torch import MLPClassifier

    return MLPClassifier(seed=seed)


def _cnn(seed: int) -> Any:
    from alloop.models._torch import CNNClassifier

    return CNNClassifier(seed=seed)


def _minilm(seed: int) -> Any:
    from alloop.models._text import MiniLMClassifier

    return MiniLMClassifier(seed=seed)


def _ensemble(seed: int, base: str = "logreg", k: int = 5, bootstrap: bool = True) -> Any:
    from alloop.models._ensemble import EnsembleClassifier

    return EnsembleClassifier(base, k=k, bootstrap=bootstrap, seed=seed)


@dataclass(frozen=True)
class ModelInfo:
    """A built-in model.

    name         registry name (``build_model(name)``)
    description  one line
    factory      ``seed -> unfitted estimator``
    min_labels   the fewest labeled records it can be fit on (5 neighbours, 5 calibration folds)
    data         the data it takes: ``tabular`` (numeric columns), ``image`` (flattened pixels) or
                 ``text`` (one text per record)
    extra        the alloop extra it needs (``pip install 'alloop[extra]'``), or None
    metadata     what a learner can put in a Snapshot: ``probs``, ``embeddings``, ``samples``
                 (MC dropout or committee), and ``dynamics`` (per-epoch training dynamics)
    """

    name: str
    description: str
    factory: Callable[[int], Any]
    min_labels: int = 1
    data: str = "tabular"
    extra: str | None = None
    metadata: tuple[str, ...] = ("probs",)

    def as_dict(self) -> dict[str, Any]:
        """The JSON form listed by ``alloop models --json``."""
        return {
            "name": self.name,
            "description": self.description,
            "data": self.data,
            "extra": self.extra,
            "metadata": list(self.metadata),
            "min_labels": self.min_labels,
        }


_TORCH_META = ("probs", "embeddings", "samples", "dynamics")

MODELS: dict[str, ModelInfo] = {
    m.name: m
    for m in (
        ModelInfo("logreg", "Standardised logistic regression (max_iter=1000).", sk._logreg),
        ModelInfo("svm-rbf", "Standardised RBF SVM with sigmoid-calibrated probabilities (5-fold CV).", sk._svm_rbf, 2),
        ModelInfo("random-forest", "Random forest of 100 trees (random_state=seed).", sk._random_forest),
        ModelInfo("knn", "Standardised 5-nearest-neighbours.", sk._knn, 5),
        ModelInfo("gradient-boosting", "Histogram gradient boosting (random_state=seed).", sk._gradient_boosting),
        ModelInfo("naive-bayes", "Word counts + multinomial naive Bayes, on texts.", sk._naive_bayes, data="text"),
        ModelInfo("gaussian-nb", "Gaussian naive Bayes, on numeric features.", sk._gaussian_nb),
        ModelInfo(
            "mlp",
            "Reference MLP: 2x256 ReLU, dropout 0.2, Adam 1e-3, batch 64, 30 epochs, standardised; MC dropout.",
            _mlp,
            extra="torch",
            metadata=_TORCH_META,
        ),
        ModelInfo(
            "cnn",
            "Small CNN for square images (8x8, 28x28): 2 conv layers, fc 128, dropout 0.2; MC dropout.",
            _cnn,
            data="image",
            extra="torch",
            metadata=_TORCH_META,
        ),
        ModelInfo(
            "minilm",
            "all-MiniLM-L6-v2 sentence embeddings (bundled, cached on disk) + logistic regression.",
            _minilm,
            data="text",
            extra="text",
            metadata=("probs", "embeddings"),
        ),
        ModelInfo(
            "ensemble",
            "Committee of k bootstrap copies of a model: ensemble(BASE, k=5); default ensemble(logreg, k=5).",
            _ensemble,
            metadata=("probs", "samples"),
        ),
    )
}


def list_models() -> list[tuple[str, str]]:
    """``(name, description)`` of every built-in model, in registry order."""
    return [(m.name, m.description) for m in MODELS.values()]


def _parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"ensemble(mlp, k=3)"`` → ``("ensemble", {"base": "mlp", "k": 3})``; a plain name has no arguments."""
    text = spec.strip()
    if "(" not in text:
        return text, {}
    if not text.endswith(")"):
        raise ConfigError(f"Model spec {spec!r} is malformed; write it like 'ensemble(mlp, k=5)'.")
    name, inner = text[:-1].split("(", 1)
    name = name.strip()
    if name != "ensemble":
        raise ConfigError(f"Model {name!r} takes no arguments; only 'ensemble(BASE, k=K)' does. Got {spec!r}.")
    kwargs: dict[str, Any] = {}
    for part in (p.strip() for p in inner.split(",")):
        if not part:
            continue
        key, _, value = part.partition("=")
        if not _:
            key, value = "base", part
        key, value = key.strip(), value.strip().strip("'\"")
        if key == "base":
            kwargs["base"] = value
        elif key == "k" and value.isdigit():
            kwargs["k"] = int(value)
        elif key == "bootstrap" and value.lower() in ("true", "false"):
            kwargs["bootstrap"] = value.lower() == "true"
        else:
            raise ConfigError(
                f"Model spec {spec!r}: {part!r} is not understood; ensemble takes a base model name, "
                "k=INT (>= 2) and bootstrap=true|false."
            )
    return name, kwargs


# names that changed meaning or spelling: old name → what to write now (an error, never a silent switch)
RENAMED = {
    "naive-bayes-text": "Model 'naive-bayes-text' is now called 'naive-bayes' (word counts + multinomial naive "
    "Bayes, on texts); write 'naive-bayes'.",
}


def _unknown(name: str) -> ConfigError:
    if isinstance(name, str) and name in RENAMED:
        return ConfigError(RENAMED[name])
    close = difflib.get_close_matches(str(name), list(MODELS), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ConfigError(f"Unknown model {name!r}.{hint} The built-in models are: {', '.join(MODELS)}.")


def model_info(spec: str) -> ModelInfo:
    """The :class:`ModelInfo` of a name or spec; an ensemble inherits its base's data kind and extra."""
    if not isinstance(spec, str):
        raise _unknown(spec)
    name, kwargs = _parse_spec(spec)
    info = MODELS.get(name)
    if info is None:
        raise _unknown(name)
    if name == "ensemble" and kwargs:
        base = model_info(kwargs.get("base", "logreg"))
        if base.name == "ensemble":
            raise ConfigError("An ensemble cannot wrap another ensemble; give a plain base model.")
        return ModelInfo(
            spec,
            info.description,
            info.factory,
            min_labels=base.min_labels,
            data=base.data,
            extra=base.extra,
            metadata=tuple(m for m in base.metadata if m in ("probs", "embeddings")) + ("samples",),
        )
    return info


def build_model(name: str, seed: int = 0) -> Any:
    """A fresh, unfitted estimator for the built-in model ``name`` (or an ``ensemble(BASE, k=K)`` spec).

    The torch models (``mlp``, ``cnn``) and ``minilm`` import torch on first use: building them works
    without it, fitting raises ``MissingDependencyError`` naming the extra to install.
    """
    from alloop._validation import check_int

    seed = check_int(seed, "seed", "build_model", min=0)
    info = model_info(name)
    parsed, kwargs = _parse_spec(name)
    if parsed == "ensemble":
        if "k" in kwargs:
            check_int(kwargs["k"], "k", "ensemble", min=2)
        return _ensemble(seed, **kwargs)
    return info.factory(seed)
