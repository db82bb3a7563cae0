"""Schema migrations, run programmatically: the only way breakglass creates or changes tables.

``serve`` calls ``require_up_to_date`` so it refuses to start on an old schema
instead of failing on the first write.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.exc import DBAPIError

import migrations
from core.errors import PersistenceError
from store.sql import make_engine

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent
ALEMBIC_INI = MIGRATIONS_DIR / "alembic.ini"


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    """The newest schema revision this version of breakglass ships."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None, "migrations/versions holds no revision"
    return head


def upgrade(url: str) -> None:
    """Bring the database at ``url`` to the newest schema (no-op if it is already there)."""
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            config = _config()
            config.attributes["connection"] = connection  # read by migrations/env.py
            command.upgrade(config, "head")
    except DBAPIError as exc:
        raise PersistenceError(
            f"The database schema could not be upgraded ({type(exc.orig).__name__}); nothing was changed.",
            hint="Check the database is reachable and the account may create tables, then run the upgrade again.",
        ) from exc
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    """The schema revision the database at ``url`` is at; None for an empty database."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except DBAPIError as exc:
        raise PersistenceError(
            f"The database could not be read to check its schema ({type(exc.orig).__name__}).",
            hint="Check the database URL and that the database is reachable.",
        ) from exc
    finally:
        engine.dispose()


def is_up_to_date(url: str) -> bool:
    return current_revision(url) == head_revision()


def require_up_to_date(url: str) -> None:
    """Raise PersistenceError with what to do if the schema is not the newest one."""
    current = current_revision(url)
    head = head_revision()
    if current != head:
        found = "empty (no schema)" if current is None else f"at revision {current}"
        raise PersistenceError(
            f"The breakglass database is {found}, but this version needs revision {head}; nothing was started.",
            hint=("Upgrade the schema first with `breakglass db upgrade --config FILE`, then start again."),
        )
