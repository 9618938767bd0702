"""Test configuration."""

import itertools

import pytest

# a script run as a subprocess by test_crash_resume.py, not a test module
collect_ignore = ["crash_worker.py"]

_db_names = itertools.count()


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL cluster started by the test session itself (removed afterwards)."""
    pytest.importorskip("psycopg")
    from tests.pg_util import PostgresCluster

    cluster = PostgresCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def postgres_url(postgres):
    """A fresh, empty database on the session's cluster."""
    return postgres.create_database(f"alloop_test_{next(_db_names)}")
