"""Discovery: strategies are found by crawling subclasses, never from a hand-kept list."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from typing import Any

from alloop.errors import ConfigError
from alloop.strategies._base import Strategy

__all__ = ["all_strategies", "get_strategy_class", "make_strategy", "parse_spec"]


def _import_all() -> None:
    import alloop.strategies as pkg

    for mod in pkgutil.iter_modules(pkg.__path__):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{pkg.__name__}.{mod.name}")


def _subclasses(cls: type[Strategy]) -> list[type[Strategy]]:
    out: list[type[Strategy]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_subclasses(sub))
    return out


def all_strategies() -> dict[str, type[Strategy]]:
    """Every concrete strategy class, keyed by its ``name``, sorted by name."""
    _import_all()
    found: dict[str, type[Strategy]] = {}
    for sub in _subclasses(Strategy):
        if sub.name and not sub.__name__.startswith("_"):
            other = found.get(sub.name)
            if other is not None and other is not sub:
                raise RuntimeError(f"Two strategies are named {sub.name!r}: {other} and {sub}")
            found[sub.name] = sub
    return dict(sorted(found.items()))


def get_strategy_class(name: str) -> type[Strategy]:
    registry = all_strategies()
    try:
        return registry[name]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(name, registry, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ConfigError(
            f"Unknown strategy {name!r}.{hint} Run 'alloop strategies' to list them."
        ) from None


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"name"`` or ``"name(key=value, ...)"`` → (name, kwargs); values are Python literals."""
    text = spec.strip()
    if "(" not in text:
        if not text:
            raise ConfigError("A strategy spec is empty; give a name such as 'margin'.")
        return text, {}
    if not text.endswith(")"):
        raise ConfigError(f"Strategy spec {spec!r} must look like 'name' or 'name(key=value, ...)'.")
    name = text[: text.index("(")].strip()
    try:
        call = ast.parse(f"f{text[text.index('('):]}", mode="eval").body
    except SyntaxError as exc:
        raise ConfigError(f"Strategy spec {spec!r} is not valid: {exc.msg}.") from None
    if not isinstance(call, ast.Call) or call.args:
        raise ConfigError(f"Strategy spec {spec!r}: give parameters by name, e.g. 'random(seed=3)'.")
    kwargs: dict[str, Any] = {}
    for kw in call.keywords:
        try:
            kwargs[str(kw.arg)] = ast.literal_eval(kw.value)
        except ValueError:
            raise ConfigError(
                f"Strategy spec {spec!r}: the value of {kw.arg!r} must be a literal (number, string, list)."
            ) from None
    return name, kwargs


def make_strategy(spec: str | Strategy) -> Strategy:
    """Build a strategy from a spec string (or pass a Strategy instance through)."""
    if isinstance(spec, Strategy):
        return spec
    if not isinstance(spec, str):
        raise ConfigError(f"A strategy must be a name, a spec string or a Strategy; got {type(spec).__name__}.")
    name, kwargs = parse_spec(spec)
    cls = get_strategy_class(name)
    allowed = cls._param_names()
    unknown = [k for k in kwargs if k not in allowed]
    if unknown:
        raise ConfigError(
            f"Strategy {name!r} has no parameter {unknown[0]!r}; its parameters are: "
            + (", ".join(allowed) if allowed else "(none)")
            + "."
        )
    return cls(**kwargs)
