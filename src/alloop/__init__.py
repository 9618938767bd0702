"""alloop: active learning that learns how to select.

>>> import alloop
>>> "margin" in alloop.strategies.all_strategies()
True
"""

from alloop import strategies
from alloop._select import select
from alloop.engine import Selection, SelectionEngine
from alloop.errors import (
    AlloopError,
    ConfigError,
    DataError,
    LabelError,
    PoolExhaustedError,
    StateError,
    UnknownRecordError,
)
from alloop.metadata import History, Snapshot
from alloop.records import Pool, RecordState

__version__ = "0.1.0"

__all__ = [
    "AlloopError",
    "ConfigError",
    "DataError",
    "History",
    "LabelError",
    "Pool",
    "PoolExhaustedError",
    "RecordState",
    "Selection",
    "SelectionEngine",
    "Snapshot",
    "StateError",
    "UnknownRecordError",
    "__version__",
    "select",
    "strategies",
]
