"""Alembic's entry point: runs the migrations on the connection `open_store` passes in."""

from alembic import context

from runtime.store.database import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
