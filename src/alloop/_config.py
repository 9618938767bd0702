"""``alloop run CONFIG.toml``: the run configuration, validated with pydantic.

Every error names the field (as a dotted path in the file) and the fix, e.g.
``config.toml: loop.batch_sise: unknown field; did you mean 'batch_size'?``

Example::

    directory = "runs/my-campaign"

    [data]
    source = "digits"          # a built-in name or a .npz/.csv/.parquet file
    # target = "label"         # the label column of a .csv/.parquet file
    test_size = 0.3            # held-out part used for evaluation only

    [model]
    name = "logreg"            # a built-in model
    share_features = false     # true: also share the standardised features as embeddings (core-set, k-means, …)
    # or your own learner:
    # learner = "mypkg.mymod:make_learner"
    #   called as make_learner(dataset=..., train_ids=..., test_ids=..., seed=...)

    [loop]
    strategy = "margin"
    initial = 20
    batch_size = 10
    budget = 200
    seed = 0
    compute_saving = "on"      # "off" (default), "on", or a table of ComputePolicy fields:
    # [loop.compute_saving]
    # full_every = 5
    # candidates = 0.2
"""

from __future__ import annotations

import difflib
import importlib
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from alloop.errors import ConfigError

__all__ = ["RunConfig", "build_campaign", "load_run_config"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    source: str = Field(description="built-in data set name or a .npz/.csv/.parquet path")
    target: str | None = None
    test_size: float = Field(0.3, gt=0, lt=1)


class ModelConfig(_Strict):
    name: str | None = "logreg"
    learner: str | None = Field(None, description="'module:function' returning a Learner")
    share_features: bool = Field(
        False, description="the built-in model's learner also shares the standardised features as embeddings"
    )

    @field_validator("learner")
    @classmethod
    def _module_function(cls, v: str | None) -> str | None:
        if v is not None and (v.count(":") != 1 or not all(v.split(":"))):
            raise ValueError("must look like 'package.module:function'")
        return v

    @model_validator(mode="after")
    def _features_of_the_built_in_model(self) -> ModelConfig:
        if self.share_features and self.learner:
            raise ValueError(
                "share_features applies to the built-in model only; your learner decides what its snapshots share"
            )
        return self


class LoopConfig(_Strict):
    strategy: str = "auto"
    initial: int = Field(20, ge=1)
    batch_size: int = Field(10, ge=1)
    budget: int | None = Field(None, ge=1)
    max_loops: int | None = Field(None, ge=0)
    target_accuracy: float | None = Field(None, gt=0, le=1)
    seed: int = Field(0, ge=0)
    label_noise: float = Field(0.0, ge=0, le=1)
    compute_saving: bool | str | dict[str, Any] = False

    @field_validator("compute_saving")
    @classmethod
    def _compute_saving(cls, v: bool | str | dict[str, Any]) -> bool | str | dict[str, Any]:
        from alloop.compute import resolve_compute

        try:
            resolve_compute(v, owner="the run configuration")
        except (ConfigError, TypeError) as exc:
            raise ValueError(f"must be 'on', 'off' or a table of ComputePolicy fields ({exc})") from None
        return v


class RunConfig(_Strict):
    directory: str = "runs/campaign"
    data: DataConfig
    model: ModelConfig = ModelConfig()
    loop: LoopConfig = LoopConfig()


def _field_names(model: type[BaseModel], path: tuple[Any, ...]) -> list[str]:
    cur: Any = model
    for part in path[:-1]:
        fld = cur.model_fields.get(part)
        if fld is None or not isinstance(fld.annotation, type) or not issubclass(fld.annotation, BaseModel):
            return []
        cur = fld.annotation
    return list(cur.model_fields)


def _explain(exc: ValidationError, where: str) -> ConfigError:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        dotted = ".".join(str(p) for p in loc)
        if err["type"] == "extra_forbidden":
            known = _field_names(RunConfig, loc)
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            fix = f"did you mean {close[0]!r}?" if close else f"known fields: {', '.join(known)}"
            lines.append(f"{where}: {dotted}: unknown field; {fix}")
        elif err["type"] == "missing":
            lines.append(f"{where}: {dotted}: required field is missing; add it")
        else:
            lines.append(f"{where}: {dotted}: {err['msg']} (got {err.get('input')!r})")
    return ConfigError("Invalid configuration:\n  " + "\n  ".join(lines))


def load_run_config(path: str | Path) -> RunConfig:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"Config file {str(path)!r} does not exist; pass the path of a .toml file.")
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return RunConfig.model_validate(raw)
    except ValidationError as exc:
        raise _explain(exc, str(path)) from None


def _load_callable(spec: str) -> Any:
    mod_name, func_name = spec.split(":")
    try:
        module = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ConfigError(
            f"model.learner: cannot import module {mod_name!r} ({exc}); check the name and PYTHONPATH."
        ) from None
    fn = getattr(module, func_name, None)
    if not callable(fn):
        raise ConfigError(f"model.learner: {mod_name!r} has no function {func_name!r}.")
    return fn


def build_campaign(cfg: RunConfig, *, resume: bool = False, review: bool = False) -> Any:
    """The Campaign described by ``cfg`` (new, or resumed from its directory)."""
    from sklearn.model_selection import train_test_split

    from alloop.datasets import load_dataset
    from alloop.labeling import SimulatedOracle
    from alloop.loop import Campaign, SklearnLearner
    from alloop.models import build_model

    ds = load_dataset(cfg.data.source, target=cfg.data.target)
    train, test = train_test_split(
        np.arange(ds.n_samples), test_size=cfg.data.test_size, stratify=ds.y, random_state=cfg.loop.seed
    )
    if cfg.model.learner:
        learner = _load_callable(cfg.model.learner)(
            dataset=ds, train_ids=ds.ids[train], test_ids=ds.ids[test], seed=cfg.loop.seed
        )
    else:
        learner = SklearnLearner(
            build_model(cfg.model.name or "logreg", seed=cfg.loop.seed),
            ds.X[train],
            ds.ids[train],
            eval_X=ds.X[test],
            eval_y=ds.y[test],
            classes=ds.classes,
            share_features=cfg.model.share_features,
        )
    oracle = SimulatedOracle(
        truth=(ds.ids[train], ds.y[train]),
        noise_rate=cfg.loop.label_noise,
        classes=list(ds.classes),
        seed=cfg.loop.seed,
    )
    directory = Path(cfg.directory)
    if resume:
        return Campaign.resume(directory, learner=learner, labeler=oracle)
    return Campaign(
        directory,
        learner=learner,
        labeler=oracle,
        pool=ds.ids[train],
        classes=list(ds.classes),
        strategy=cfg.loop.strategy,
        initial=cfg.loop.initial,
        batch_size=cfg.loop.batch_size,
        budget=cfg.loop.budget,
        max_loops=cfg.loop.max_loops,
        target=None if cfg.loop.target_accuracy is None else {"accuracy": cfg.loop.target_accuracy},
        seed=cfg.loop.seed,
        review="file" if review else None,
        overwrite=True,
        compute_saving=cfg.loop.compute_saving,
    )
