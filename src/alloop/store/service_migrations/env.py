"""Alembic environment of the engine service database; alloop passes the connection in attributes."""

from alembic import context

from alloop.store._service_schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
