"""In-memory fakes of the writer's ports (service_layer/ports.py), for unit tests without a broker or Postgres.

FakeEventStore keeps the natural-key idempotency, RLS-by-owner and forward-only status rules of the real
adapter, so the apply rules can be checked against it; FakeDatabase rolls it back when a transaction fails.
"""

import asyncio
import copy
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from uuid import UUID

from epochscope_runtime.job_token import mint_job_token
from epochscope_schemas.events import (
    CheckpointDeletedEvent,
    CheckpointEvent,
    Envelope,
    JobStatus,
    JobStatusEvent,
    PredictionEvent,
    ProgressEvent,
    RolloutEvent,
    RoundSummaryEvent,
    WarningEvent,
    encode_event,
)
from epochscope_schemas.topics import TRAINING_PREDICTIONS, TRAINING_STATUS
from epochscope_writer.domain.dead_letters import DeadLetter
from epochscope_writer.domain.prediction_struct import PredictionStruct
from epochscope_writer.domain.records import KafkaRecord
from epochscope_writer.service_layer.ports import (
    DatabaseUnavailable,
    JobState,
    NewPrediction,
    Notification,
    RefusedInput,
)

SECRET = "writer-unit-tests-job-token-secret-0123"


@dataclass(frozen=True)
class FakeRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def record_of(event: Envelope, offset: int = 0) -> FakeRecord:
    topic = TRAINING_PREDICTIONS if isinstance(event, PredictionEvent | RolloutEvent) else TRAINING_STATUS
    return FakeRecord(topic, 0, offset, str(event.job_id).encode(), encode_event(event))


def job_token(job_id: UUID, user: str, ttl: timedelta = timedelta(hours=1)) -> str:
    """A token the API would mint; a negative `ttl` gives one whose `exp` has passed."""
    return mint_job_token(SECRET, job_id, user, ttl)[0]


@dataclass
class _Tables:
    jobs: dict[UUID, tuple[str, JobState]] = field(default_factory=dict)
    status_at: dict[UUID, datetime] = field(default_factory=dict)
    status_attempt_no: dict[UUID, int] = field(default_factory=dict)  # the attempt whose status was applied last
    attempt_nos: dict[UUID, int] = field(default_factory=dict)  # job_attempts: attempt id -> its number
    predictions: dict[tuple[UUID, int, str], int] = field(default_factory=dict)  # natural key -> seq
    prediction_sizes: dict[tuple[UUID, int, str], int] = field(default_factory=dict)  # natural key -> text bytes
    rounds: set[tuple[UUID, int]] = field(default_factory=set)
    progress: set[tuple[UUID, int]] = field(default_factory=set)
    warnings: set[UUID] = field(default_factory=set)
    checkpoints: set[UUID] = field(default_factory=set)
    rollouts: set[tuple[UUID, int, int]] = field(default_factory=set)
    checkpoints_deleted: set[UUID] = field(default_factory=set)
    notified: list[Notification] = field(default_factory=list)
    queue_moves: list[tuple[UUID, UUID, object]] = field(default_factory=list)  # the queue's (job, attempt, status)


class FakeEventStore:
    def __init__(self) -> None:
        self.tables = _Tables()
        self.refused: set[UUID] = set()  # event ids the "database" refuses, as a CHECK constraint would
        self._acting_as: str | None = None

    def add_job(self, owner: str, status: JobStatus = JobStatus.QUEUED, status_at: datetime | None = None) -> UUID:
        job_id = uuid.uuid4()
        self.tables.jobs[job_id] = (owner, JobState(status))
        if status_at is not None:
            self.tables.status_at[job_id] = status_at
        return job_id

    def delete_job(self, job_id: UUID) -> None:
        """As the API's DELETE does: the job row and, by the cascade, everything written for it."""
        del self.tables.jobs[job_id]
        self.tables.status_at.pop(job_id, None)
        self.tables.predictions = {k: v for k, v in self.tables.predictions.items() if k[0] != job_id}
        self.tables.prediction_sizes = {k: v for k, v in self.tables.prediction_sizes.items() if k[0] != job_id}

    @asynccontextmanager
    async def savepoint(self) -> AsyncIterator[None]:
        saved = copy.deepcopy(self.tables)
        try:
            yield
        except Exception:  # as a real savepoint: whatever ends it early undoes it
            self.tables = saved
            raise

    async def job_owner(self, job_id: UUID) -> str | None:
        job = self.tables.jobs.get(job_id)
        return job[0] if job else None

    async def act_as(self, owner: str) -> None:
        self._acting_as = owner

    async def job_states(self, job_ids: list[UUID]) -> dict[UUID, JobState]:
        jobs = self.tables.jobs
        return {j: jobs[j][1] for j in job_ids if j in jobs and jobs[j][0] == self._acting_as}

    def _check(self, owner: str, events: list[Envelope]) -> None:
        for event in events:
            if event.event_id in self.refused:
                raise RefusedInput(f"23514: event {event.event_id} violates a check constraint")
            if self.tables.jobs[event.job_id][0] != owner or owner != self._acting_as:
                raise RefusedInput("42501: new row violates row-level security policy")

    async def insert_predictions(self, owner: str, events: list[PredictionStruct]) -> list[NewPrediction]:
        self._check(owner, events)
        new = []
        for e in events:
            key = (e.job_id, e.step, e.sample_id)
            if key not in self.tables.predictions:
                self.tables.predictions[key] = len(self.tables.predictions) + 1
                texts = (e.prompt, e.ground_truth or "", e.prediction)
                self.tables.prediction_sizes[key] = sum(len(text.encode()) for text in texts)
                new.append(NewPrediction(e.job_id, e.step, self.tables.predictions[key]))
        return new

    async def prediction_bytes(self, owner: str) -> int:
        """As migration 0042 counts them: the UTF-8 bytes of prompt, ground truth and prediction."""
        jobs = self.tables.jobs
        return sum(size for key, size in self.tables.prediction_sizes.items() if jobs[key[0]][0] == owner)

    async def _insert(self, owner: str, events: list[Envelope], rows: set, key: Callable) -> list[UUID]:
        self._check(owner, events)
        new = [e for e in events if key(e) not in rows]
        rows.update(key(e) for e in new)
        return [e.job_id for e in new]

    # The tables insert_rows fills, by the event class each holds: (its attribute of _Tables, its natural key).
    _ROWS: dict[type, tuple[str, Callable]] = {
        RoundSummaryEvent: ("rounds", lambda e: (e.job_id, e.round_index)),
        WarningEvent: ("warnings", lambda e: e.event_id),
        CheckpointEvent: ("checkpoints", lambda e: e.checkpoint_id),
        RolloutEvent: ("rollouts", lambda e: (e.job_id, e.step, e.completion_index)),
    }

    async def insert_rows(self, owner: str, events: list[Envelope]) -> list[UUID]:
        table, key = self._ROWS[type(events[0])]
        return await self._insert(owner, events, getattr(self.tables, table), key)

    async def insert_progress(self, owner: str, events: list[ProgressEvent]) -> list[UUID]:
        return await self._insert(owner, events, self.tables.progress, lambda e: (e.job_id, e.step))

    async def delete_checkpoints(self, owner: str, events: list[CheckpointDeletedEvent]) -> list[UUID]:
        self._check(owner, events)
        new = [e for e in events if e.checkpoint_id in self.tables.checkpoints]
        new = [e for e in new if e.checkpoint_id not in self.tables.checkpoints_deleted]
        self.tables.checkpoints_deleted.update(e.checkpoint_id for e in new)
        return [e.job_id for e in new]

    async def apply_statuses(self, events: list[JobStatusEvent]) -> list[JobStatusEvent]:
        """As the adapter: by attempt number, never by occurred_at; a final status is never left."""
        applied = []
        for e in events:
            owner, state = self.tables.jobs[e.job_id]
            attempt_no = self.tables.attempt_nos.get(e.attempt_id, 0) if e.attempt_id else 0
            last_no = self.tables.status_attempt_no.get(e.job_id, 0)
            if e.attempt_id is not None:
                self.tables.queue_moves.append((e.job_id, e.attempt_id, e.status))
            if state.status.is_final or attempt_no < last_no or (attempt_no == last_no and state.status == e.status):
                continue
            self.tables.jobs[e.job_id] = (owner, JobState(e.status, state.attempt_id))
            self.tables.status_at[e.job_id] = e.occurred_at
            self.tables.status_attempt_no[e.job_id] = attempt_no
            applied.append(e)
        return applied

    async def notify(self, notifications: list[Notification]) -> None:
        self.tables.notified += notifications


class FakeDatabase:
    """Transactions over one FakeEventStore: all or nothing, or DatabaseUnavailable while `down`."""

    def __init__(self, store: FakeEventStore) -> None:
        self.store = store
        self.down = False

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[FakeEventStore]:
        if self.down:
            raise DatabaseUnavailable("database: fake outage")
        saved = copy.deepcopy(self.store.tables)
        try:
            yield self.store
        except BaseException:
            self.store.tables = saved
            raise

    async def probe(self) -> None:
        if self.down:
            raise DatabaseUnavailable("database: fake outage")

    async def close(self) -> None:
        pass


class FakeBroker:
    """Hands out the records given to `deliver`, and records what the writer commits and dead-letters."""

    def __init__(self) -> None:
        self.queued: list[KafkaRecord] = []
        self.committed: list[KafkaRecord] = []
        self.dead_letters: list[DeadLetter] = []
        self.paused_waits = 0
        self.fetches = 0
        self.on_revoked: Callable[[], Awaitable[None]] | None = None

    def deliver(self, records: list[KafkaRecord]) -> None:
        self.queued += records

    async def start(self, on_revoked: Callable[[], Awaitable[None]], on_assigned: Callable[[list[str]], None]) -> None:
        self.on_revoked = on_revoked
        on_assigned([f"{TRAINING_PREDICTIONS}:0", f"{TRAINING_STATUS}:0"])

    async def stop(self) -> None:
        pass

    async def fetch(self, size: int, linger_ms: int, is_stopping: Callable[[], bool]) -> list[KafkaRecord]:
        self.fetches += 1
        await asyncio.sleep(0.001)
        batch, self.queued = self.queued[:size], self.queued[size:]
        return batch

    async def publish_dead_letters(self, dead_letters: list[DeadLetter]) -> None:
        self.dead_letters += dead_letters

    async def commit(self, records: list[KafkaRecord]) -> None:
        self.committed += records

    def resume(self) -> None:
        pass

    async def wait_paused(self, seconds: float, is_stopping: Callable[[], bool]) -> None:
        self.paused_waits += 1
        await asyncio.sleep(0.001)

    async def rewind(self, records: list[KafkaRecord]) -> None:
        self.queued = list(records) + self.queued
