"""The schema exists only through Alembic, and the migrations match store/schema.py exactly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

import store.drills  # noqa: F401 (declares drill_history on the shared metadata)
from core.errors import PersistenceError
from sandbox.net import free_port
from store.migrate import ALEMBIC_INI, current_revision, head_revision, is_up_to_date, require_up_to_date, upgrade
from store.schema import metadata
from store.sql import make_engine

ALEMBIC = Path(sys.executable).with_name("alembic")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"empty_{request.param}_url")
    return url


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_brings_an_empty_database_to_head(empty_url: str) -> None:
    assert current_revision(empty_url) is None
    assert is_up_to_date(empty_url) is False
    with pytest.raises(PersistenceError, match="empty") as refused:
        require_up_to_date(empty_url)
    assert "breakglass db upgrade" in refused.value.user_text()

    upgrade(empty_url)

    assert current_revision(empty_url) == head_revision() == "0005"
    assert is_up_to_date(empty_url) is True
    require_up_to_date(empty_url)
    assert _tables(empty_url) == {
        "alembic_version",
        "change_requests",
        "approvals",
        "events",
        "chain_head",
        "drill_history",
        "outbox",
        "worker_locks",
    }

    upgrade(empty_url)  # running it again is harmless
    assert is_up_to_date(empty_url) is True


def test_migrated_database_matches_the_table_definitions(empty_url: str) -> None:
    upgrade(empty_url)
    engine = make_engine(empty_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    finally:
        engine.dispose()

    assert diff == []


def test_drift_between_tables_and_migrations_would_be_detected(empty_url: str) -> None:
    """Guards the test above: compare_metadata does see a column the migrations lack."""
    from sqlalchemy import Column, MetaData, String, Table

    upgrade(empty_url)
    drifted = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.tables.values():
        table.to_metadata(drifted)
    events = drifted.tables["events"]
    Table(events.name, drifted, Column("signature", String, nullable=True), extend_existing=True)
    engine = make_engine(empty_url)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), drifted)
    finally:
        engine.dispose()

    assert [(d[0], d[3].name) for d in diff] == [("add_column", "signature")]


def test_outdated_check_fails_cleanly_when_database_is_down() -> None:
    with pytest.raises(PersistenceError, match="could not be read"):
        current_revision(f"postgresql://root@127.0.0.1:{free_port()}/test")


def test_requests_made_before_0005_count_as_announced_so_an_upgrade_tells_no_thread_again(empty_url: str) -> None:
    def alembic(target: str) -> None:
        subprocess.run(
            [str(ALEMBIC), "-c", str(ALEMBIC_INI), "-x", f"url={empty_url}", "upgrade", target],
            check=True, capture_output=True,
        )  # fmt: skip

    alembic("0004")
    engine = make_engine(empty_url)
    try:
        with engine.begin() as conn:
            for request_id, state in (("r-done", "verified"), ("r-open", "pending_approval")):
                conn.execute(
                    text(
                        "INSERT INTO change_requests (id, kind, zone, state, request_json, plan_json, plan_digest,"
                        " requester, created_at, updated_at) VALUES (:id, 'change', 'example.test.', :state, '{}',"
                        " '{}', 'd', 'alice', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                    ),
                    {"id": request_id, "state": state},
                )
        alembic("head")
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT id, state, announced_state FROM change_requests ORDER BY id")).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [
        ("r-done", "verified", "verified"),
        ("r-open", "pending_approval", "pending_approval"),
    ]


def test_alembic_command_line_takes_the_url_from_x_or_environment(tmp_path: Path) -> None:
    by_x = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    by_env = f"sqlite:///{tmp_path / 'env.sqlite3'}"
    env = {k: v for k, v in os.environ.items() if k != "BREAKGLASS_DATABASE_URL"}

    subprocess.run(
        [str(ALEMBIC), "-c", str(ALEMBIC_INI), "-x", f"url={by_x}", "upgrade", "head"],
        check=True,
        cwd=tmp_path,
        env=env,
        capture_output=True,
    )
    subprocess.run(
        [str(ALEMBIC), "-c", str(ALEMBIC_INI), "upgrade", "head"],
        check=True,
        cwd=tmp_path,
        env={**env, "BREAKGLASS_DATABASE_URL": by_env},
        capture_output=True,
    )
    missing = subprocess.run(
        [str(ALEMBIC), "-c", str(ALEMBIC_INI), "upgrade", "head"], cwd=tmp_path, env=env, capture_output=True, text=True
    )

    assert is_up_to_date(by_x) and is_up_to_date(by_env)
    assert missing.returncode != 0
    assert "BREAKGLASS_DATABASE_URL" in missing.stderr
