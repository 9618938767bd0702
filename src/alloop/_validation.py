"""Declarative parameter checks with one message shape.

"The 'batch_size' parameter of Campaign must be an int >= 1. Got 0."
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

from alloop.errors import ConfigError


def _fail(name: str, owner: str, what: str, value: Any) -> ConfigError:
    return ConfigError(f"The {name!r} parameter of {owner} must be {what}. Got {value!r}.")


def check_bool(value: Any, name: str, owner: str, *, allow_none: bool = False) -> Any:
    """Return ``value`` if it is True or False (or None when allowed); raise ConfigError otherwise."""
    if (value is None and allow_none) or isinstance(value, bool):
        return value
    raise _fail(name, owner, "True or False" + (" or None" if allow_none else ""), value)


def check_int(value: Any, name: str, owner: str, *, min: int | None = None, allow_none: bool = False) -> Any:
    """Return ``value`` if it is an int (not bool) at least ``min``; raise ConfigError otherwise."""
    if value is None and allow_none:
        return value
    what = "an int" + (f" >= {min}" if min is not None else "") + (" or None" if allow_none else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise _fail(name, owner, what, value)
    if min is not None and value < min:
        raise _fail(name, owner, what, value)
    return int(value)


def check_float(
    value: Any,
    name: str,
    owner: str,
    *,
    low: float | None = None,
    high: float | None = None,
    allow_none: bool = False,
) -> Any:
    """Return ``value`` as float if within [low, high]; raise ConfigError otherwise."""
    if value is None and allow_none:
        return value
    rng = ""
    if low is not None and high is not None:
        rng = f" in [{low}, {high}]"
    elif low is not None:
        rng = f" >= {low}"
    elif high is not None:
        rng = f" <= {high}"
    what = "a number" + rng + (" or None" if allow_none else "")
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != value:
        raise _fail(name, owner, what, value)
    number = float(value)
    if (low is not None and number < low) or (high is not None and number > high):
        raise _fail(name, owner, what, value)
    return number


def check_choice(value: Any, name: str, owner: str, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``; raise ConfigError otherwise."""
    options = list(choices)
    if value not in options:
        raise _fail(name, owner, "one of " + ", ".join(repr(c) for c in options), value)
    return value
