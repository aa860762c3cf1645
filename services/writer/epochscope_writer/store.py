"""Postgres adapter: every statement the writer runs, under the writer role and row-level security.

The writer role reads a job only after naming it (`app.job_id`), and reads or writes a user's rows
only with that user set as `app.user_id` for the transaction, so the policies' WITH CHECK binds it.
Every insert is idempotent on the row's natural key and returns the keys of the rows that were new.
"""

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
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
    name: str
    pg_type: str


def _unnest_insert(table: str, columns: Sequence[Column], conflict: str, returning: str) -> str:
    """One round trip per batch: column arrays unnested into rows; RETURNING names the rows that were new."""
    names = ", ".join(c.name for c in columns)
    arrays = ", ".join(f"${i}::{c.pg_type}[]" for i, c in enumerate(columns, 1))
    return (
        f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT ({conflict}) DO NOTHING RETURNING {returning}"
    )


def _columns_of(rows: Sequence[tuple[object, ...]], width: int) -> list[list[object]]:
    columns: list[list[object]] = [[] for _ in range(width)]
    for row in rows:
        for column, value in zip(columns, row, strict=True):
            column.append(value)
    return columns


PREDICTION_COLUMNS = tuple(
    Column(*c)
    for c in (
        ("job_id", "uuid"),
        ("step", "int4"),
        ("sample_id", "text"),
        ("owner_id", "text"),
        ("round_index", "int4"),
        ("epoch", "float8"),
        ("sample_index", "int4"),
        ("prompt", "text"),
        ("ground_truth", "text"),
        ("prediction", "text"),
        ("tokens_generated", "int4"),
        ("latency_ms", "float8"),
        ("valid", "bool"),
        ("validation_error", "text"),
        ("exact_match", "float8"),
        ("f1", "float8"),
        ("rouge_l", "float8"),
        ("event_id", "uuid"),
        ("occurred_at", "timestamptz"),
    )
)
_INSERT_PREDICTIONS = _unnest_insert(
    "training_predictions", PREDICTION_COLUMNS, "job_id, step, sample_id", "job_id, step, seq"
)

_ROUND_COLUMNS = tuple(
    Column(*c)
    for c in (
        ("job_id", "uuid"),
        ("round_index", "int4"),
        ("owner_id", "text"),
        ("epoch", "float8"),
        ("step", "int4"),
        ("trigger", "text"),
        ("predictions", "int4"),
        ("validated", "int4"),
        ("valid", "int4"),
        ("scored", "int4"),
        ("mean_exact_match", "float8"),
        ("mean_f1", "float8"),
        ("mean_rouge_l", "float8"),
        ("tokens_generated", "int4"),
        ("wall_ms", "float8"),
        ("stall_ms", "float8"),
        ("occurred_at", "timestamptz"),
    )
)
_INSERT_ROUNDS = _unnest_insert("job_rounds", _ROUND_COLUMNS, "job_id, round_index", "job_id, round_index")

_PROGRESS_COLUMNS = tuple(
    Column(*c)
    for c in (
        ("job_id", "uuid"),
        ("step", "int4"),
        ("owner_id", "text"),
        ("max_steps", "int4"),
        ("epoch", "float8"),
        ("loss", "float8"),
        ("learning_rate", "float8"),
        ("samples_per_second", "float8"),
        ("occurred_at", "timestamptz"),
    )
)
_INSERT_PROGRESS = _unnest_insert("job_progress", _PROGRESS_COLUMNS, "job_id, step", "job_id, step")
# jobs.progress only moves forward: a redelivered or late, older progress event never replaces a newer one.
_ADVANCE_PROGRESS = """
UPDATE jobs SET progress = $2::jsonb
WHERE job_id = $1 AND (progress IS NULL OR (progress->>'step')::int < $3)
RETURNING job_id
"""

_WARNING_COLUMNS = tuple(
    Column(*c)
    for c in (
        ("event_id", "uuid"),
        ("job_id", "uuid"),
        ("owner_id", "text"),
        ("code", "text"),
        ("message", "text"),
        ("occurred_at", "timestamptz"),
    )
)
_INSERT_WARNINGS = _unnest_insert("job_warnings", _WARNING_COLUMNS, "event_id", "job_id, event_id")

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


def prediction_row(event: PredictionEvent, owner: str) -> tuple[object, ...]:
    """The row of one prediction, in PREDICTION_COLUMNS order."""
    scores = event.scores
    return (
        event.job_id,
        event.step,
        event.sample_id,
        owner,
        event.round_index,
        event.epoch,
        event.sample_index,
        event.prompt,
        event.ground_truth,
        event.prediction,
        event.tokens_generated,
        event.latency_ms,
        event.valid,
        event.validation_error,
        scores.exact_match if scores else None,
        scores.f1 if scores else None,
        scores.rouge_l if scores else None,
        event.event_id,
        event.occurred_at,
    )


async def insert_predictions(
    conn: asyncpg.Connection, owner: str, events: list[PredictionEvent]
) -> list[NewPrediction]:
    rows = [prediction_row(event, owner) for event in events]
    found = await conn.fetch(_INSERT_PREDICTIONS, *_columns_of(rows, len(PREDICTION_COLUMNS)))
    return [NewPrediction(row["job_id"], row["step"], row["seq"]) for row in found]


async def insert_rounds(conn: asyncpg.Connection, owner: str, events: list[RoundSummaryEvent]) -> list[UUID]:
    """Job ids of the rounds that were new; a redelivered round summary is a no-op."""
    rows = [
        (
            e.job_id,
            e.round_index,
            owner,
            e.epoch,
            e.step,
            e.trigger,
            e.predictions,
            e.validated,
            e.valid,
            e.scored,
            e.mean_exact_match,
            e.mean_f1,
            e.mean_rouge_l,
            e.tokens_generated,
            e.wall_ms,
            e.stall_ms,
            e.occurred_at,
        )
        for e in events
    ]
    found = await conn.fetch(_INSERT_ROUNDS, *_columns_of(rows, len(_ROUND_COLUMNS)))
    return [row["job_id"] for row in found]


async def insert_progress(conn: asyncpg.Connection, owner: str, events: list[ProgressEvent]) -> list[UUID]:
    """Append to each job's progress history, then move jobs.progress forward to the batch's latest step."""
    rows = [
        (
            e.job_id,
            e.step,
            owner,
            e.max_steps,
            e.epoch,
            e.loss,
            e.learning_rate,
            e.samples_per_second,
            e.occurred_at,
        )
        for e in events
    ]
    found = await conn.fetch(_INSERT_PROGRESS, *_columns_of(rows, len(_PROGRESS_COLUMNS)))
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
    rows = [(e.event_id, e.job_id, owner, e.code, e.message, e.occurred_at) for e in events]
    found = await conn.fetch(_INSERT_WARNINGS, *_columns_of(rows, len(_WARNING_COLUMNS)))
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
