"""Alembic environment for breakglass.

Where the database comes from, in order:
1. a connection passed programmatically in ``config.attributes["connection"]`` (store/migrate.py);
2. ``-x url=...`` on the alembic command line;
3. the BREAKGLASS_DATABASE_URL environment variable.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from store.schema import metadata
from store.sql import make_engine

config = context.config
target_metadata = metadata

if config.config_file_name is not None and config.attributes.get("connection") is None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def _url() -> str:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("BREAKGLASS_DATABASE_URL")
    if not url:
        raise SystemExit("No database URL: pass `-x url=...` or set BREAKGLASS_DATABASE_URL.")
    return url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite cannot ALTER most things
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(_url())
    try:
        with engine.begin() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
