"""SqlDrillStore: core.ports.DrillStore on SQLite or PostgreSQL.

A drill's result for one change path and its audit event are written in one transaction,
so the drill history never claims a drill the hash-chained audit trail does not hold.

The ``drill_history`` table is declared here, on the shared metadata of store/schema.py;
only migration 0003 creates it.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    Row,
    String,
    Table,
    Text,
    insert,
    select,
)

from core.events import NewEvent
from core.ports import DrillOutcome, DrillRecord
from store.audit import append_chained
from store.schema import UtcDateTime, metadata
from store.sql import reading, writing

drill_history = Table(
    "drill_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("drill_id", String, nullable=False),
    Column("zone", String, nullable=False),
    Column("path", String, nullable=False),
    Column("actor", String, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("outcome", String, nullable=False),  # core.ports.DrillOutcome
    Column("simulated_outage", Boolean, nullable=False),
    Column("lease_seconds", Float, nullable=True),
    Column("apply_seconds", Float, nullable=True),
    Column("propagation_seconds", Float, nullable=True),
    Column("cleanup_seconds", Float, nullable=True),
    Column("routing_seconds", Float, nullable=True),
    Column("detail", Text, nullable=False),
    Index("ix_drill_history_drill_id", "drill_id"),
    Index("ix_drill_history_zone_path", "zone", "path", "started_at"),
)


class SqlDrillStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def record(self, record: DrillRecord, event: NewEvent) -> None:
        refused = "Check the database is reachable and writable; the drill's DNS changes were cleaned up regardless."
        with writing(self._engine, f"The audit database (drill {record.drill_id})", refused) as conn:
            conn.execute(
                insert(drill_history).values(
                    drill_id=record.drill_id,
                    zone=record.zone,
                    path=record.path,
                    actor=record.actor,
                    started_at=record.started_at,
                    outcome=record.outcome.value,
                    simulated_outage=record.simulated_outage,
                    lease_seconds=record.lease_seconds,
                    apply_seconds=record.apply_seconds,
                    propagation_seconds=record.propagation_seconds,
                    cleanup_seconds=record.cleanup_seconds,
                    routing_seconds=record.routing_seconds,
                    detail=record.detail,
                )
            )
            details = json.dumps(event.details, sort_keys=True, separators=(",", ":"))
            append_chained(conn, event, datetime.now(UTC), details)

    def history(self, *, zone: str | None = None, limit: int = 50) -> list[DrillRecord]:
        query = select(drill_history).order_by(drill_history.c.started_at.desc(), drill_history.c.id.desc())
        if zone is not None:
            query = query.where(drill_history.c.zone == zone)
        with self._reading() as conn:
            return [_record(r) for r in conn.execute(query.limit(limit)).all()]

    def last_passed(self, zone: str, path: str) -> DrillRecord | None:
        query = (
            select(drill_history)
            .where(
                drill_history.c.zone == zone,
                drill_history.c.path == path,
                drill_history.c.outcome == DrillOutcome.PASSED.value,
            )
            .order_by(drill_history.c.started_at.desc(), drill_history.c.id.desc())
            .limit(1)
        )
        with self._reading() as conn:
            row = conn.execute(query).first()
        return None if row is None else _record(row)

    def _reading(self) -> AbstractContextManager[Connection]:
        return reading(self._engine, "The drill history")


def _record(row: Row[Any]) -> DrillRecord:
    return DrillRecord(
        drill_id=row.drill_id,
        zone=row.zone,
        path=row.path,
        actor=row.actor,
        started_at=row.started_at,
        outcome=DrillOutcome(row.outcome),
        simulated_outage=bool(row.simulated_outage),
        lease_seconds=row.lease_seconds,
        apply_seconds=row.apply_seconds,
        propagation_seconds=row.propagation_seconds,
        cleanup_seconds=row.cleanup_seconds,
        routing_seconds=row.routing_seconds,
        detail=row.detail,
    )
