"""The writer's registry of event types: for each event class, its kind, how it is stored, what its new rows tell
the job's live stream, and any rule of its own.

A new event type is one entry here (and a member of EventKind), plus its table in adapters/postgres_tables.py; the
topic it travels on is the contract's (`EVENTS_BY_TOPIC` in epochscope_schemas.events). Entries are written in
this order, one statement per kind per batch: statuses last, so a final status is told after the rows it ends.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from uuid import UUID

from epochscope_schemas.events import (
    CheckpointDeletedEvent,
    CheckpointEvent,
    Envelope,
    JobStatusEvent,
    PredictionEvent,
    ProgressEvent,
    RolloutEvent,
    RoundSummaryEvent,
    WarningEvent,
)
from epochscope_schemas.notify import ChangeKind
from epochscope_writer.domain.dead_letters import Rejection
from epochscope_writer.domain.decoding import Decoded
from epochscope_writer.domain.object_keys import foreign_checkpoint, foreign_checkpoint_id
from epochscope_writer.domain.prediction_struct import PredictionStruct
from epochscope_writer.service_layer.ports import EventStore, NewPrediction, Notification


class EventKind(StrEnum):
    """The one name of each kind of event the writer applies: how a batch is grouped, and its metric label."""

    PREDICTION = "prediction"
    ROUND = "round"
    PROGRESS = "progress"
    WARNING = "warning"
    CHECKPOINT = "checkpoint"
    CHECKPOINT_DELETED = "checkpoint_deleted"
    ROLLOUT = "rollout"
    STATUS = "status"


# (store, owner, events of one kind) -> the rows that were new (job ids, or rows with a `job_id`)
StoreWrite = Callable[[EventStore, str, list[Any]], Awaitable[list[Any]]]


def _count(rows: list[Any]) -> dict[str, object]:
    return {"count": len(rows)}


def _prediction_range(rows: list[NewPrediction]) -> dict[str, object]:
    """Which steps and sequence numbers are new, so a watcher reads only those."""
    steps = [row.step for row in rows]
    seqs = [row.seq for row in rows]
    return {
        "count": len(rows),
        "first_step": min(steps),
        "last_step": max(steps),
        "first_seq": min(seqs),
        "last_seq": max(seqs),
    }


def _last_status(rows: list[JobStatusEvent]) -> dict[str, object]:
    return {"status": rows[-1].status.value}


def _insert_rows(store: EventStore, owner: str, events: list[Envelope]) -> Awaitable[list[UUID]]:
    return store.insert_rows(owner, events)


@dataclass(frozen=True)
class EventType:
    event: type[Envelope]
    kind: EventKind
    change: ChangeKind  # the NOTIFY payload's "kind" for a job with new rows
    store: StoreWrite = _insert_rows
    summary: Callable[[list[Any]], dict[str, object]] = _count  # the rest of that payload, from one job's new rows
    refusal: Callable[[Any], Rejection | None] | None = None  # a rule of its own, checked before anything is written

    def notifications(self, rows: list[Any]) -> list[Notification]:
        """One NOTIFY payload per job with new rows, in the order the jobs first appear."""
        by_job: dict[UUID, list[Any]] = {}
        for row in rows:
            by_job.setdefault(row if isinstance(row, UUID) else row.job_id, []).append(row)
        return [(job_id, {"kind": self.change, **self.summary(job_rows)}) for job_id, job_rows in by_job.items()]


EVENT_TYPES: tuple[EventType, ...] = (
    EventType(
        PredictionEvent,
        EventKind.PREDICTION,
        ChangeKind.PREDICTIONS,
        store=lambda store, owner, events: store.insert_predictions(owner, events),
        summary=_prediction_range,
    ),
    EventType(RolloutEvent, EventKind.ROLLOUT, ChangeKind.ROLLOUTS),
    EventType(RoundSummaryEvent, EventKind.ROUND, ChangeKind.ROUND),
    EventType(
        ProgressEvent,
        EventKind.PROGRESS,
        ChangeKind.PROGRESS,
        store=lambda store, owner, events: store.insert_progress(owner, events),
    ),
    EventType(WarningEvent, EventKind.WARNING, ChangeKind.WARNING),
    EventType(CheckpointEvent, EventKind.CHECKPOINT, ChangeKind.CHECKPOINT, refusal=foreign_checkpoint),
    EventType(
        CheckpointDeletedEvent,
        EventKind.CHECKPOINT_DELETED,
        ChangeKind.CHECKPOINT,
        store=lambda store, owner, events: store.delete_checkpoints(owner, events),
        refusal=foreign_checkpoint_id,
    ),
    EventType(
        JobStatusEvent,
        EventKind.STATUS,
        ChangeKind.STATUS,
        store=lambda store, owner, events: store.apply_statuses(events),
        summary=_last_status,
    ),
)
EVENT_TYPE_OF: dict[type[Envelope], EventType] = {entry.event: entry for entry in EVENT_TYPES}


def entry_of(event: Decoded) -> EventType:
    """The entry of a decoded event: a prediction is carried as a PredictionStruct, every other event as itself."""
    return EVENT_TYPE_OF[PredictionEvent if isinstance(event, PredictionStruct) else type(event)]
