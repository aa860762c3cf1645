"""The tables the writer inserts into, each with the event class it holds and each column listed once with the event
field that fills it.

Both the INSERT statement and the rows come from that one list, so two columns of the same type cannot be
swapped between the SQL and the values. Every insert is idempotent on the row's natural key. A new event type's
table is one more Table here, in `TABLES`.
"""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from operator import attrgetter
from typing import Any

import asyncpg
import msgspec

from epochscope_schemas.events import (
    CheckpointEvent,
    Envelope,
    JobStatus,
    PredictionEvent,
    ProgressEvent,
    RolloutEvent,
    RoundSummaryEvent,
    WarningEvent,
)


@dataclass(frozen=True)
class Column:
    """One column of an insert, with where its value comes from: the one list both the SQL and the rows use."""

    name: str
    pg_type: str
    value: Callable[[Any, str], object]  # (event, owner) -> the column's value
    attribute: Callable[[Any], object] | None = None  # the same as `value`, where it is one attribute of the event
    cast: str | None = None  # the column's type, where the values are sent as another (`pg_type`)

    def values(self, events: Sequence[object], owner: str) -> list[object]:
        """The column's value for each event: an attribute read in one C-level loop where the column is one."""
        if self.attribute is not None:
            return list(map(self.attribute, events))
        return [self.value(event, owner) for event in events]


def _field(name: str, pg_type: str) -> Column:
    """A column filled from the event's attribute of the same name."""
    get = attrgetter(name)
    return Column(name, pg_type, lambda event, owner: get(event), get)


def _score(name: str) -> Column:
    return Column(name, "float8", lambda event, owner: getattr(event.scores, name) if event.scores else None)


_OWNER = Column("owner_id", "text", lambda event, owner: owner)


def _json_map(name: str) -> Column:
    """A jsonb column from the event's dict of models of the same name (grades, graders)."""
    get = attrgetter(name)
    return Column(name, "jsonb", lambda event, owner: _json_or_null(get(event)))


def _json_or_null(models: dict[str, Any] | None) -> str | None:
    """A jsonb value from an optional dict of models, pydantic's or msgspec's (a prediction's grades); SQL null
    without one (a GRPO progress event's rewards)."""
    if models is None:
        return None
    return _JSON.encode(models).decode() if models else "{}"


_JSON = msgspec.json.Encoder(enc_hook=lambda model: model.model_dump(mode="json"))  # Structs natively, else pydantic


@dataclass(frozen=True)
class Table:
    """An idempotent insert into one table: column arrays unnested into rows, in one round trip per batch."""

    event: type[Envelope]  # each event of this class is one row
    name: str
    columns: tuple[Column, ...]
    conflict: str  # the natural key: a redelivered row is a no-op
    returning: str  # names the rows that were new

    @cached_property
    def insert(self) -> str:
        names = ", ".join(c.name for c in self.columns)
        arrays = ", ".join(f"${i}::{c.pg_type}[]" for i, c in enumerate(self.columns, 1))
        values = ", ".join(f"{c.name}::{c.cast}" if c.cast else c.name for c in self.columns)
        return (
            f"INSERT INTO {self.name} ({names}) SELECT {values} FROM unnest({arrays}) AS u({names}) "
            f"ON CONFLICT ({self.conflict}) DO NOTHING RETURNING {self.returning}"
        )

    def row(self, event: object, owner: str) -> tuple[object, ...]:
        return tuple(c.value(event, owner) for c in self.columns)

    def arrays(self, events: Sequence[object], owner: str) -> list[list[object]]:
        """One list per column, in column order: the insert's parameters."""
        return [column.values(events, owner) for column in self.columns]

    async def insert_new(self, conn: asyncpg.Connection, events: Sequence[object], owner: str) -> list[asyncpg.Record]:
        return await conn.fetch(self.insert, *self.arrays(events, owner))


PREDICTIONS_TABLE = Table(
    PredictionEvent,
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
        Column("truncated", "jsonb", lambda event, owner: _JSON.encode(event.truncated).decode()),
        _score("exact_match"),
        _score("f1"),
        _score("rouge_l"),
        _json_map("grades"),
        _field("event_id", "uuid"),
        # a PredictionStruct's checked RFC 3339 text, which Postgres reads
        Column("occurred_at", "text", lambda event, owner: event.occurred_at, attrgetter("occurred_at"), "timestamptz"),
    ),
    conflict="job_id, step, sample_id",
    returning="job_id, step, seq",
)
ROUNDS_TABLE = Table(
    RoundSummaryEvent,
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
        _json_map("graders"),
        _field("tokens_generated", "int4"),
        _field("wall_ms", "float8"),
        _field("stall_ms", "float8"),
        _field("occurred_at", "timestamptz"),
    ),
    conflict="job_id, round_index",
    returning="job_id, round_index",
)
PROGRESS_TABLE = Table(
    ProgressEvent,
    "job_progress",
    (
        _field("job_id", "uuid"),
        _field("step", "int4"),
        _OWNER,
        _field("max_steps", "int4"),
        *(_field(name, "float8") for name in ("epoch", "loss", "learning_rate", "samples_per_second")),
        Column("rewards", "jsonb", lambda event, owner: _json_or_null(event.rewards)),
        *(
            _field(name, "float8")
            for name in ("reward", "chosen_reward", "rejected_reward", "reward_margin", "reward_accuracy")
        ),
        _field("occurred_at", "timestamptz"),
    ),
    conflict="job_id, step",
    returning="job_id, step",
)
WARNINGS_TABLE = Table(
    WarningEvent,
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

CHECKPOINTS_TABLE = Table(
    CheckpointEvent,
    "job_checkpoints",
    (
        _field("checkpoint_id", "uuid"),
        _field("job_id", "uuid"),
        _OWNER,
        _field("round_index", "int4"),
        _field("step", "int4"),
        _field("epoch", "float8"),
        _field("final", "bool"),
        _field("key", "text"),
        Column("files", "jsonb", lambda event, owner: json.dumps([f.model_dump() for f in event.files])),
        _field("bytes", "int8"),
        _field("sha256", "text"),
        Column("metrics", "jsonb", lambda event, owner: json.dumps(event.metrics)),
        *(_field(name, "float8") for name in ("save_ms", "stall_ms", "upload_ms")),
        _field("occurred_at", "timestamptz"),
    ),
    conflict="checkpoint_id",
    returning="job_id, checkpoint_id",
)
ROLLOUTS_TABLE = Table(
    RolloutEvent,
    "training_rollouts",
    (
        _field("job_id", "uuid"),
        _field("step", "int4"),
        _field("completion_index", "int4"),
        _OWNER,
        _field("prompt", "text"),
        _field("completion", "text"),
        Column("rewards", "jsonb", lambda event, owner: json.dumps(event.rewards)),
        _field("reward", "float8"),
        _field("advantage", "float8"),
        Column("truncated", "jsonb", lambda event, owner: json.dumps(event.truncated)),
        _field("event_id", "uuid"),
        _field("occurred_at", "timestamptz"),
    ),
    conflict="job_id, step, completion_index",
    returning="job_id",
)

TABLES: dict[type[Envelope], Table] = {
    table.event: table
    for table in (PREDICTIONS_TABLE, ROUNDS_TABLE, PROGRESS_TABLE, WARNINGS_TABLE, CHECKPOINTS_TABLE, ROLLOUTS_TABLE)
}

# A pruned checkpoint of the event's own job: marked once; a redelivered deletion changes nothing.
DELETE_CHECKPOINTS = """
UPDATE job_checkpoints AS c SET deleted_at = d.at
FROM unnest($1::uuid[], $2::uuid[], $3::timestamptz[]) AS d(checkpoint_id, job_id, at)
WHERE c.checkpoint_id = d.checkpoint_id AND c.job_id = d.job_id AND c.deleted_at IS NULL
RETURNING c.job_id
"""

# jobs.progress only moves forward: a redelivered or late, older progress event never replaces a newer one.
ADVANCE_PROGRESS = """
UPDATE jobs SET progress = $2::jsonb
WHERE job_id = $1 AND (progress IS NULL OR (progress->>'step')::int < $3)
RETURNING job_id
"""

FINAL_STATUSES = [s.value for s in JobStatus if s.is_final]
# A status by attempt, never by the producer's clock: a final status is never left; a later attempt's status (by
# attempt_no, its place in the dispatch order; 0 for an event naming none, outside the queue) replaces an earlier
# attempt's; within one attempt, a status in the order the broker delivers them (the job's partition) when it is
# not the one already applied, so a redelivery is a no-op. status_at keeps the producer's time, for display only.
APPLY_STATUS = """
UPDATE jobs AS j SET
    status = $2, status_message = $3, status_at = $4, metrics = j.metrics || $5::jsonb, updated_at = now(),
    status_attempt_no = a.attempt_no,
    started_at = CASE WHEN $2 = 'running' THEN coalesce(j.started_at, $4) ELSE j.started_at END,
    finished_at = CASE WHEN $2 = ANY($6::text[]) THEN $4 ELSE j.finished_at END
FROM (SELECT coalesce(max(attempt_no), 0) AS attempt_no FROM job_attempts WHERE job_id = $1 AND attempt_id = $7) AS a
WHERE j.job_id = $1
  AND j.status <> ALL($6::text[])
  AND (j.status_attempt_no < a.attempt_no OR (j.status_attempt_no = a.attempt_no AND j.status <> $2))
RETURNING j.job_id
"""
