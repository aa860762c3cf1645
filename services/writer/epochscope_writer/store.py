"""Postgres adapter: every statement the writer runs, under the writer role and row-level security.

The writer role reads a job only after naming it (`app.job_id`), and reads or writes a user's rows
only with that user set as `app.user_id` for the transaction, so the policies' WITH CHECK binds it.
Every insert is idempotent on the row's natural key and returns the keys of the rows that were new.
"""

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from operator import attrgetter
from typing import Any
from uuid import UUID

import asyncpg

from epochscope_schemas.events import (
    JobStatus,
    JobStatusEvent,
    PredictionEvent,
    ProgressEvent,
    RoundSummaryEvent,
    WarningEvent,
)
from epochscope_schemas.notify import job_channel


@dataclass(frozen=True)
class Column:
    """One column of an insert, with where its value comes from: the one list both the SQL and the rows use."""

    name: str
    pg_type: str
    value: Callable[[Any, str], object]  # (event, owner) -> the column's value


def _field(name: str, pg_type: str) -> Column:
    """A column filled from the event's attribute of the same name."""
    get = attrgetter(name)
    return Column(name, pg_type, lambda event, owner: get(event))


def _score(name: str) -> Column:
    return Column(name, "float8", lambda event, owner: getattr(event.scores, name) if event.scores else None)


_OWNER = Column("owner_id", "text", lambda event, owner: owner)


@dataclass(frozen=True)
class Table:
    """An idempotent insert into one table: column arrays unnested into rows, in one round trip per batch."""

    name: str
    columns: tuple[Column, ...]
    conflict: str  # the natural key: a redelivered row is a no-op
    returning: str  # names the rows that were new

    @cached_property
    def insert(self) -> str:
        names = ", ".join(c.name for c in self.columns)
        arrays = ", ".join(f"${i}::{c.pg_type}[]" for i, c in enumerate(self.columns, 1))
        return (
            f"INSERT INTO {self.name} ({names}) SELECT * FROM unnest({arrays}) "
            f"ON CONFLICT ({self.conflict}) DO NOTHING RETURNING {self.returning}"
        )

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def row(self, event: object, owner: str) -> tuple[object, ...]:
        return tuple(c.value(event, owner) for c in self.columns)

    def arrays(self, events: Sequence[object], owner: str) -> list[list[object]]:
        """One list per column, in column order: the insert's parameters."""
        return [[c.value(event, owner) for event in events] for c in self.columns]

    async def insert_new(self, conn: asyncpg.Connection, events: Sequence[object], owner: str) -> list[asyncpg.Record]:
        return await conn.fetch(self.insert, *self.arrays(events, owner))


PREDICTIONS_TABLE = Table(
    "training_predictions",
    (
        _field("job_id", "uuid"),
        _field("step", "int4"),
        _field("sample_id", "text"),
        _OWNER,
        _field("round_index", "int4"),
        _field("epoch", "float8"),
        _field("sample_index", "int4"),
        _field("prompt", "text"),
        _field("ground_truth", "text"),
        _field("prediction", "text"),
        _field("tokens_generated", "int4"),
        _field("latency_ms", "float8"),
        _field("valid", "bool"),
        _field("validation_error", "text"),
        _score("exact_match"),
        _score("f1"),
        _score("rouge_l"),
        _field("event_id", "uuid"),
        _field("occurred_at", "timestamptz"),
    ),
    conflict="job_id, step, sample_id",
    returning="job_id, step, seq",
)
_ROUNDS_TABLE = Table(
    "job_rounds",
    (
        _field("job_id", "uuid"),
        _field("round_index", "int4"),
        _OWNER,
        _field("epoch", "float8"),
        _field("step", "int4"),
        _field("trigger", "text"),
        *(_field(name, "int4") for name in ("predictions", "validated", "valid", "scored")),
        *(_field(name, "float8") for name in ("mean_exact_match", "mean_f1", "mean_rouge_l")),
        _field("tokens_generated", "int4"),
        _field("wall_ms", "float8"),
        _field("stall_ms", "float8"),
        _field("occurred_at", "timestamptz"),
    ),
    conflict="job_id, round_index",
    returning="job_id, round_index",
)
_PROGRESS_TABLE = Table(
    "job_progress",
    (
        _field("job_id", "uuid"),
        _field("step", "int4"),
        _OWNER,
        _field("max_steps", "int4"),
        *(_field(name, "float8") for name in ("epoch", "loss", "learning_rate", "samples_per_second")),
        _field("occurred_at", "timestamptz"),
    ),
    conflict="job_id, step",
    returning="job_id, step",
)
_WARNINGS_TABLE = Table(
    "job_warnings",
    (
        _field("event_id", "uuid"),
        _field("job_id", "uuid"),
        _OWNER,
        _field("code", "text"),
        _field("message", "text"),
        _field("occurred_at", "timestamptz"),
    ),
    conflict="event_id",
    returning="job_id, event_id",
)

# jobs.progress only moves forward: a redelivered or late, older progress event never replaces a newer one.
_ADVANCE_PROGRESS = """
UPDATE jobs SET progress = $2::jsonb
WHERE job_id = $1 AND (progress IS NULL OR (progress->>'step')::int < $3)
RETURNING job_id
"""

_FINAL = [s.value for s in JobStatus if s.is_final]
# Apply a status only if it is newer than the one applied last, and never leave a final state.
# On a tie in occurred_at a final status wins over a non-final one.
_APPLY_STATUS = """
UPDATE jobs SET
    status = $2, status_message = $3, status_at = $4, metrics = metrics || $5::jsonb, updated_at = now(),
    started_at = CASE WHEN $2 = 'running' THEN coalesce(started_at, $4) ELSE started_at END,
    finished_at = CASE WHEN $2 = ANY($6::text[]) THEN $4 ELSE finished_at END
WHERE job_id = $1
  AND status <> ALL($6::text[])
  AND (status_at IS NULL OR status_at < $4 OR (status_at = $4 AND $2 = ANY($6::text[])))
RETURNING job_id
"""


@dataclass(frozen=True)
class JobState:
    status: JobStatus
    finished_at: datetime | None


@dataclass(frozen=True)
class NewPrediction:
    job_id: UUID
    step: int
    seq: int


async def connect(dsn: str, connect_timeout: float, command_timeout: float) -> asyncpg.Connection:
    return await asyncpg.connect(dsn, timeout=connect_timeout, command_timeout=command_timeout)


async def job_owner(conn: asyncpg.Connection, job_id: UUID) -> str | None:
    """The job's owner, read by naming the job (the only way the writer role can see it). In a transaction."""
    await conn.execute("SELECT set_config('app.job_id', $1, true)", str(job_id))
    return await conn.fetchval("SELECT owner_id FROM jobs WHERE job_id = $1", job_id)


async def act_as(conn: asyncpg.Connection, owner: str) -> None:
    """Make `owner` the RLS user for the rest of the transaction."""
    await conn.execute("SELECT set_config('app.user_id', $1, true)", owner)


async def job_states(conn: asyncpg.Connection, job_ids: list[UUID]) -> dict[UUID, JobState]:
    """Status of the acting owner's jobs; locks them so status updates from two writers serialize."""
    rows = await conn.fetch(
        "SELECT job_id, status, finished_at FROM jobs WHERE job_id = ANY($1::uuid[]) FOR NO KEY UPDATE", job_ids
    )
    return {row["job_id"]: JobState(JobStatus(row["status"]), row["finished_at"]) for row in rows}


async def insert_predictions(
    conn: asyncpg.Connection, owner: str, events: list[PredictionEvent]
) -> list[NewPrediction]:
    found = await PREDICTIONS_TABLE.insert_new(conn, events, owner)
    return [NewPrediction(row["job_id"], row["step"], row["seq"]) for row in found]


async def insert_rounds(conn: asyncpg.Connection, owner: str, events: list[RoundSummaryEvent]) -> list[UUID]:
    """Job ids of the rounds that were new; a redelivered round summary is a no-op."""
    found = await _ROUNDS_TABLE.insert_new(conn, events, owner)
    return [row["job_id"] for row in found]


async def insert_progress(conn: asyncpg.Connection, owner: str, events: list[ProgressEvent]) -> list[UUID]:
    """Append to each job's progress history, then move jobs.progress forward to the batch's latest step."""
    found = await _PROGRESS_TABLE.insert_new(conn, events, owner)
    latest: dict[UUID, ProgressEvent] = {}
    for event in events:
        if event.job_id not in latest or latest[event.job_id].step < event.step:
            latest[event.job_id] = event
    for job_id, event in latest.items():
        await conn.execute(_ADVANCE_PROGRESS, job_id, _progress_document(event), event.step)
    return [row["job_id"] for row in found]


def _progress_document(event: ProgressEvent) -> str:
    """jobs.progress as JSON; a diverged loss (NaN, inf) becomes null, which jsonb can hold."""
    fields = event.model_dump(
        mode="json",
        include={"step", "max_steps", "epoch", "num_epochs", "loss", "learning_rate", "samples_per_second"},
    )
    for name in ("loss", "learning_rate", "samples_per_second"):
        value = getattr(event, name)
        fields[name] = value if value is not None and math.isfinite(value) else None
    fields["occurred_at"] = event.occurred_at.isoformat()
    return json.dumps(fields)


async def insert_warnings(conn: asyncpg.Connection, owner: str, events: list[WarningEvent]) -> list[UUID]:
    found = await _WARNINGS_TABLE.insert_new(conn, events, owner)
    return [row["job_id"] for row in found]


async def apply_statuses(conn: asyncpg.Connection, events: list[JobStatusEvent]) -> list[JobStatusEvent]:
    """In order; returns the events that changed their job (the rest met a newer or final status)."""
    applied = []
    for event in events:
        changed = await conn.fetchval(
            _APPLY_STATUS,
            event.job_id,
            event.status.value,
            event.message,
            event.occurred_at,
            json.dumps(event.metrics),
            _FINAL,
        )
        if changed is not None:
            applied.append(event)
    return applied


async def notify(conn: asyncpg.Connection, notifications: list[tuple[UUID, dict[str, object]]]) -> None:
    """Queue each (job, payload) on the job's channel, in one round trip; delivered only if the transaction commits."""
    if not notifications:
        return
    channels = [job_channel(job_id) for job_id, _ in notifications]
    bodies = [
        json.dumps({"job_id": str(job_id), **payload}, separators=(",", ":")) for job_id, payload in notifications
    ]
    await conn.execute(
        "SELECT pg_notify(channel, body) FROM unnest($1::text[], $2::text[]) AS n(channel, body)", channels, bodies
    )
