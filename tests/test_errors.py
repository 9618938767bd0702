"""The exception tree: one root, every class mapped to an HTTP status, actionable import errors."""

from __future__ import annotations

import inspect

import pytest

import alloop.errors as errors
from alloop.errors import HTTP_STATUS, AlloopError, MissingDependencyError, require_extra

CLASSES = [obj for _, obj in inspect.getmembers(errors, inspect.isclass) if obj.__module__ == errors.__name__]


def test_every_class_is_an_alloop_error_and_public():
    assert len(CLASSES) >= 11
    for cls in CLASSES:
        assert issubclass(cls, AlloopError), cls
        assert cls.__name__ in errors.__all__, cls
        assert cls.__doc__, cls


def test_http_status_covers_every_class_with_sensible_codes():
    assert set(HTTP_STATUS) == set(CLASSES)
    assert all(400 <= code < 600 for code in HTTP_STATUS.values())
    assert HTTP_STATUS[errors.UnknownRecordError] == 404
    assert HTTP_STATUS[errors.AuthError] == 401
    assert HTTP_STATUS[errors.PoolExhaustedError] == 409


def test_http_status_is_ordered_most_specific_first():
    # a server maps an exception to the first entry it is an instance of
    order = list(HTTP_STATUS)
    for i, cls in enumerate(order):
        for later in order[i + 1 :]:
            assert not issubclass(later, cls) or later is cls, f"{later.__name__} must come before {cls.__name__}"

    def status(exc: Exception) -> int:
        return next(code for cls, code in HTTP_STATUS.items() if isinstance(exc, cls))

    assert status(errors.UnknownRecordError("x")) == 404
    assert status(errors.PoolExhaustedError("x")) == 409
    assert status(errors.LabelError("x")) == 422
    assert status(AlloopError("x")) == 500


def test_tree_matches_the_docstring():
    doc = errors.__doc__
    for cls in CLASSES:
        assert cls.__name__ in doc, cls
        assert f"(HTTP {HTTP_STATUS[cls]})" in doc.split(cls.__name__, 1)[1].splitlines()[0] or cls is AlloopError
    parents = {
        "ConfigError": "AlloopError",
        "DataError": "AlloopError",
        "UnknownRecordError": "DataError",
        "DuplicateRecordError": "DataError",
        "LabelError": "DataError",
        "StateError": "AlloopError",
        "PoolExhaustedError": "StateError",
        "StoreError": "AlloopError",
        "AuthError": "AlloopError",
        "MissingDependencyError": "AlloopError",
    }
    for child, parent in parents.items():
        assert issubclass(getattr(errors, child), getattr(errors, parent))


def test_builtin_bases_let_callers_catch_familiar_exceptions():
    assert issubclass(errors.ConfigError, ValueError) and issubclass(errors.DataError, ValueError)
    assert issubclass(errors.UnknownRecordError, KeyError)
    assert issubclass(MissingDependencyError, ImportError)
    # KeyError would show repr() of the message; UnknownRecordError shows it as written
    assert str(errors.UnknownRecordError("id 'a' is not in the pool")) == "id 'a' is not in the pool"
    assert str(errors.UnknownRecordError()) == ""


def test_require_extra_names_the_extra_to_install():
    with pytest.raises(MissingDependencyError) as info:
        require_extra("alloop_no_such_module_xyz", "server")
    msg = str(info.value)
    assert "pip install 'alloop[server]'" in msg and "'alloop_no_such_module_xyz'" in msg
    assert isinstance(info.value.__cause__, ImportError)
    assert require_extra("json", "server") is __import__("json")


def test_file_roots_setting_splits_on_the_path_separator():
    import os

    from alloop.settings import Settings

    s = Settings.from_env({"ALLOOP_FILE_ROOTS": f"/data/images{os.pathsep}{os.pathsep}/srv/campaigns"})
    assert s.file_roots == ("/data/images", "/srv/campaigns")
    assert Settings.from_env({}).file_roots == ()
