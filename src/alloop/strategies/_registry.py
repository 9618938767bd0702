"""Discovery: strategies are found by crawling subclasses, never from a hand-kept list."""

from __future__ import annotations

import ast
import importlib
import pkgutil
from typing import Any

from alloop.errors import ConfigError
from alloop.strategies._base import Strategy

__all__ = ["all_strategies", "get_strategy_class", "make_strategy", "parse_spec", "unknown_strategy_message"]


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


def _origin(cls: type) -> tuple[str, str]:
    return cls.__module__, cls.__qualname__


def all_strategies() -> dict[str, type[Strategy]]:
    """Every concrete strategy class, keyed by its ``name``, sorted by name."""
    _import_all()
    found: dict[str, type[Strategy]] = {}
    for sub in _subclasses(Strategy):
        if sub.name and not sub.__name__.startswith("_"):
            other = found.get(sub.name)
            redefined = other is not None and _origin(other) == _origin(sub)
            if other is not None and other is not sub and not redefined:  # a redefinition (notebook cell) wins
                raise RuntimeError(f"Two strategies are named {sub.name!r}: {other} and {sub}")
            found[sub.name] = sub
    return dict(sorted(found.items()))


def unknown_strategy_message(name: str, registry: dict[str, type[Strategy]]) -> str:
    """The message for an unknown name: a "Did you mean" hint, and one for 'a - b' written without spaces."""
    import difflib

    close = difflib.get_close_matches(name, registry, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    pieces = name.split("-")
    for cut in range(1, len(pieces)):
        left, right = "-".join(pieces[:cut]), "-".join(pieces[cut:])
        if left in registry and right in registry:
            hint += f" To subtract, put spaces around '-': '{left} - {right}'."
            break
    return f"Unknown strategy {name!r}.{hint} Run 'alloop strategies' to list them."


def get_strategy_class(name: str) -> type[Strategy]:
    registry = all_strategies()
    try:
        return registry[name]
    except KeyError:
        raise ConfigError(unknown_strategy_message(name, registry)) from None


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
        call = ast.parse(f"f{text[text.index('(') :]}", mode="eval").body
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


def make_strategy(spec: str | Strategy | type[Strategy]) -> Strategy:
    """Build a strategy from a spec string (simple or composite), or pass a Strategy instance through.

    A Strategy class (e.g. one made with ``@as_strategy``) is built with its defaults. Specs follow the
    grammar of :mod:`alloop.strategies._spec`: ``"margin"``, ``"random(seed=3)"``, ``"0.7*margin + 0.3*entropy"``,
    ``"top(margin, 10k) >> coreset"``, ``"coreset@0-2, margin"``.
    """
    if isinstance(spec, Strategy):
        return spec
    if isinstance(spec, type) and issubclass(spec, Strategy):
        return spec()
    if not isinstance(spec, str):
        raise ConfigError(f"A strategy must be a name, a spec string or a Strategy; got {type(spec).__name__}.")
    from alloop.strategies._spec import parse_strategy

    return parse_strategy(spec)
