"""How every ``alloop`` command reports bad input: one red line on stderr, exit code 2, no traceback.

The message is printed as plain text, never as rich markup: ``pip install 'alloop[dask]'`` would otherwise lose
its ``[dask]`` (rich reads it as a style tag), and so would any id or path in brackets.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from alloop.errors import AlloopError

__all__ = ["fail", "friendly"]

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str) -> NoReturn:
    """Print ``error: message`` in red on stderr (brackets kept) and exit with code 2."""
    # soft_wrap: one line, wrapped by the terminal, so a command in the message can be copied whole
    Console(stderr=True).print(Text("error: ", style="bold red") + Text(message, style="red"), soft_wrap=True)
    raise typer.Exit(2)


def friendly(fn: F) -> F:
    """A command that reports :class:`~alloop.errors.AlloopError` with :func:`fail` instead of a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AlloopError as exc:
            fail(str(exc))

    return wrapper  # type: ignore[return-value]
