"""The public API is exactly what ``__all__`` lists (as in httpx's test_exported_members)."""

from __future__ import annotations

import importlib
import types

import pytest

import alloop
import alloop.strategies

MODULES = [alloop, alloop.strategies]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_all_names_exist_and_are_importable(module):
    assert len(module.__all__) == len(set(module.__all__))
    for name in module.__all__:
        assert hasattr(module, name), f"{module.__name__}.{name} is in __all__ but missing"
    namespace: dict = {}
    exec(f"from {module.__name__} import *", namespace)
    assert set(module.__all__) <= set(namespace)


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_no_public_name_is_missing_from_all(module):
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not (isinstance(value, types.ModuleType) and name not in module.__all__ and _is_submodule(module, value))
        and name != "annotations"
    }
    missing = sorted(public - set(module.__all__))
    assert not missing, f"public names of {module.__name__} not in __all__: {missing}"


def _is_submodule(module: types.ModuleType, value: types.ModuleType) -> bool:
    # importing alloop.x.y binds the subpackage 'x' on alloop; those are modules, not API objects
    return value.__name__.startswith(module.__name__ + ".")


def test_exported_objects_come_from_alloop():
    for module in MODULES:
        for name in module.__all__:
            value = getattr(module, name)
            origin = getattr(value, "__module__", None) or getattr(value, "__name__", "alloop")
            if not isinstance(value, str):
                assert origin.startswith("alloop"), (module.__name__, name, origin)


def test_builtin_strategy_classes_are_exported_and_discovered():
    discovered = alloop.strategies.all_strategies()
    builtin = {cls for cls in discovered.values() if cls.__module__.startswith("alloop.strategies.")}
    exported = {getattr(alloop.strategies, n) for n in alloop.strategies.__all__}
    assert len(builtin) >= 4 and builtin <= exported


def test_testing_module_all_is_complete():
    testing = importlib.import_module("alloop.testing")
    for name in testing.__all__:
        assert hasattr(testing, name), name
    checks = {name for name in testing.__all__ if name.startswith("check_") and name != "check_strategy"}
    assert checks == {c.__name__ for c in testing.CHECKS}
    assert alloop.__version__ == "0.1.0"


def test_core_import_does_not_load_optional_extras():
    import subprocess
    import sys

    code = (
        "import sys, alloop, alloop.loop, alloop.labeling, alloop.models, alloop.strategies; "
        "print(sorted(m for m in ('torch', 'fastapi', 'numba', 'dask', 'typer') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_import_alloop_stays_light():
    """``import alloop`` must not pull scipy.stats/scipy.special or pandas (together ~0.8 s per process, measured):
    every CLI call, Dask worker and simulation child pays it."""
    import subprocess
    import sys

    heavy = "('scipy.stats', 'scipy.special', 'pandas')"
    code = f"import sys, alloop; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
