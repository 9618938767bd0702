"""The one exception tree of alloop.

::

    AlloopError
    ├── ConfigError          a parameter or configuration value is wrong      (HTTP 422)
    ├── DataError            data handed to alloop is malformed               (HTTP 422)
    │   ├── UnknownRecordError   an id that the pool does not hold            (HTTP 404)
    │   ├── DuplicateRecordError an id given twice, or already in the pool    (HTTP 409)
    │   └── LabelError           a label outside the class set                (HTTP 422)
    ├── StateError           the operation does not fit the current state     (HTTP 409)
    │   └── PoolExhaustedError   nothing left to select                       (HTTP 409)
    ├── StoreError           the campaign store cannot be opened or is newer  (HTTP 500)
    ├── AuthError            missing or wrong credentials                     (HTTP 401)
    └── MissingDependencyError  an optional extra is not installed            (HTTP 501)

Every message names the field and says how to fix it. The server maps each class to the status
code shown above through :data:`HTTP_STATUS` (most specific class first).
"""

from __future__ import annotations

__all__ = [
    "AlloopError",
    "AuthError",
    "ConfigError",
    "DataError",
    "DuplicateRecordError",
    "HTTP_STATUS",
    "LabelError",
    "MissingDependencyError",
    "PoolExhaustedError",
    "StateError",
    "StoreError",
    "UnknownRecordError",
    "require_extra",
]


class AlloopError(Exception):
    """Root of every error alloop raises on purpose."""


class ConfigError(AlloopError, ValueError):
    """A parameter or configuration value is invalid."""


class DataError(AlloopError, ValueError):
    """Data handed to alloop (ids, probabilities, labels, files) is malformed."""


class UnknownRecordError(DataError, KeyError):
    """One or more record ids are not in the pool."""

    def __str__(self) -> str:  # KeyError would repr() the message otherwise
        return str(self.args[0]) if self.args else ""


class DuplicateRecordError(DataError):
    """A record id is given twice or is already present."""


class LabelError(DataError):
    """A label is not one of the campaign's classes."""


class StateError(AlloopError):
    """The operation is not valid in the current state of the campaign or pool."""


class PoolExhaustedError(StateError):
    """There is no unlabeled record left to select."""


class StoreError(AlloopError):
    """The campaign store cannot be opened, migrated or read."""


class AuthError(AlloopError):
    """Credentials are missing or wrong."""


class MissingDependencyError(AlloopError, ImportError):
    """An optional dependency (an alloop extra) is not installed."""


HTTP_STATUS: dict[type[AlloopError], int] = {
    UnknownRecordError: 404,
    DuplicateRecordError: 409,
    LabelError: 422,
    PoolExhaustedError: 409,
    ConfigError: 422,
    DataError: 422,
    StateError: 409,
    StoreError: 500,
    AuthError: 401,
    MissingDependencyError: 501,
    AlloopError: 500,
}


def require_extra(module: str, extra: str) -> object:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module!r} is needed for this feature but is not installed. "
            f"Install it with: pip install 'alloop[{extra}]'"
        ) from exc
