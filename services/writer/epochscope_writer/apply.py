"""Apply one batch of Kafka records to Postgres inside the caller's transaction.

Per record: decode, verify the job token, take the owner from the jobs table (never from the event),
check the token's user is that owner and the job is not long finished. What survives is written per
owner with that owner as the RLS user: predictions idempotently on (job_id, step, sample_id), rounds on
(job_id, round_index), progress on (job_id, step) with jobs.progress only moving forward, warnings on
event_id, status events only forward in time. Each commit NOTIFYs the channel of every job it changed.
Everything refused comes back as a dead letter; nothing here raises on input.
"""

from collections import Counter, OrderedDict, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar
from uuid import UUID

import asyncpg

from epochscope_schemas.events import JobStatusEvent, PredictionEvent, ProgressEvent, RoundSummaryEvent, WarningEvent
from epochscope_schemas.notify import ChangeKind
from epochscope_writer import store
from epochscope_writer.dead_letters import DeadLetter, DeadLetterReason
from epochscope_writer.decoding import KafkaRecord, Rejection, WriterEvent, decode_record
from epochscope_writer.job_tokens import JobTokenVerifier

# Data exceptions, integrity violations, RLS refusals: this input, not the database, is the problem.
_INPUT_ERROR_CLASSES = ("22", "23")
_INPUT_ERROR_STATES = ("42501",)


def is_input_error(exc: BaseException) -> bool:
    if not isinstance(exc, asyncpg.PostgresError):
        return False
    state = exc.sqlstate or ""
    return state[:2] in _INPUT_ERROR_CLASSES or state in _INPUT_ERROR_STATES


# The metric label of each kind of event the writer applies.
EVENT_KIND_LABELS: dict[type[WriterEvent], str] = {
    PredictionEvent: "prediction",
    RoundSummaryEvent: "round",
    ProgressEvent: "progress",
    WarningEvent: "warning",
    JobStatusEvent: "status",
}
T = TypeVar("T")
K = TypeVar("K")


@dataclass
class BatchResult:
    dead_letters: list[DeadLetter] = field(default_factory=list)
    applied: Counter[str] = field(default_factory=Counter)  # kind -> rows inserted or statuses changed
    duplicates: Counter[str] = field(default_factory=Counter)  # kind -> redelivered rows, stale statuses
    notifications: list[tuple[UUID, dict[str, object]]] = field(default_factory=list)  # sent in one statement


@dataclass(frozen=True)
class _Accepted:
    record: KafkaRecord
    event: WriterEvent
    token_user: str


@dataclass(frozen=True)
class CheckedBatch:
    """A fetched batch after decoding and token checks; applying it may be retried, so it is never changed."""

    records: list[KafkaRecord]
    accepted: tuple[_Accepted, ...]
    dead_letters: tuple[DeadLetter, ...]


class JobOwners:
    """job id -> owner, read from the jobs table and cached (a job's owner never changes)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._owners: OrderedDict[UUID, str] = OrderedDict()

    async def owner(self, conn: asyncpg.Connection, job_id: UUID) -> str | None:
        owner = self._owners.get(job_id)
        if owner is not None:
            self._owners.move_to_end(job_id)
            return owner
        owner = await store.job_owner(conn, job_id)
        if owner is not None:
            self._owners[job_id] = owner
            if len(self._owners) > self._capacity:
                self._owners.popitem(last=False)
        return owner


class BatchApplier:
    def __init__(self, verifier: JobTokenVerifier, owners: JobOwners, finished_grace: timedelta) -> None:
        self._verifier = verifier
        self._owners = owners
        self._finished_grace = finished_grace

    def check(self, records: list[KafkaRecord]) -> CheckedBatch:
        """Decode and verify tokens: CPU only, so it can run while the previous batch waits on the database."""
        accepted: list[_Accepted] = []
        dead_letters: list[DeadLetter] = []
        for record in records:
            decoded = decode_record(record.topic, record.value)
            if isinstance(decoded, Rejection):
                dead_letters.append(_dead_letter(record, decoded.reason, decoded.detail))
                continue
            claims = self._verifier.verify(decoded.job_token, decoded.job_id)
            if isinstance(claims, Rejection):
                dead_letters.append(_dead_letter(record, claims.reason, claims.detail))
                continue
            accepted.append(_Accepted(record, decoded, claims.user_id))
        return CheckedBatch(records, tuple(accepted), tuple(dead_letters))

    async def apply(self, conn: asyncpg.Connection, batch: CheckedBatch, isolate: bool = False) -> BatchResult:
        """Run inside a transaction. `isolate` puts each write in a savepoint, to single out a poison event."""
        result = BatchResult(dead_letters=list(batch.dead_letters))
        by_owner: dict[str, list[_Accepted]] = defaultdict(list)
        for item in batch.accepted:
            owner = await self._owners.owner(conn, item.event.job_id)
            if owner is None:
                self._reject(result, item.record, DeadLetterReason.UNKNOWN_JOB, f"no job {item.event.job_id}")
            elif owner != item.token_user:
                self._reject(
                    result, item.record, DeadLetterReason.OWNER_MISMATCH, "the job token's user does not own the job"
                )
            else:
                by_owner[owner].append(item)
        for owner, items in by_owner.items():
            await store.act_as(conn, owner)
            await self._apply_for_owner(conn, owner, items, isolate, result)
        await store.notify(conn, result.notifications)
        return result

    async def _apply_for_owner(
        self, conn: asyncpg.Connection, owner: str, items: list[_Accepted], isolate: bool, result: BatchResult
    ) -> None:
        states = await store.job_states(conn, sorted({item.event.job_id for item in items}))
        cutoff = datetime.now(UTC) - self._finished_grace
        by_kind: dict[str, list[_Accepted]] = defaultdict(list)
        for item in items:
            state = states.get(item.event.job_id)
            if state is None:  # deleted since its owner was cached
                self._reject(result, item.record, DeadLetterReason.UNKNOWN_JOB, f"no job {item.event.job_id}")
            elif state.finished_at is not None and state.finished_at < cutoff:
                detail = f"job {state.status} at {state.finished_at.isoformat()}, past the grace period"
                self._reject(result, item.record, DeadLetterReason.JOB_FINISHED, detail)
            else:
                by_kind[EVENT_KIND_LABELS[type(item.event)]].append(item)
        new_predictions = await self._write(
            conn, "prediction", by_kind["prediction"], partial(store.insert_predictions, conn, owner), isolate, result
        )
        for job_id, rows in _group(new_predictions, lambda row: row.job_id).items():
            steps = [row.step for row in rows]
            seqs = [row.seq for row in rows]
            result.notifications.append(
                (
                    job_id,
                    {
                        "kind": ChangeKind.PREDICTIONS,
                        "count": len(rows),
                        "first_step": min(steps),
                        "last_step": max(steps),
                        "first_seq": min(seqs),
                        "last_seq": max(seqs),
                    },
                )
            )
        for kind, insert in (
            (ChangeKind.ROUND, store.insert_rounds),
            (ChangeKind.PROGRESS, store.insert_progress),
            (ChangeKind.WARNING, store.insert_warnings),
        ):
            new_rows = await self._write(conn, kind, by_kind[kind], partial(insert, conn, owner), isolate, result)
            for job_id, job_rows in _group(new_rows, lambda job_id: job_id).items():
                result.notifications.append((job_id, {"kind": kind, "count": len(job_rows)}))
        applied = await self._write(
            conn, "status", by_kind["status"], partial(store.apply_statuses, conn), isolate, result
        )
        for job_id, statuses in _group(applied, lambda event: event.job_id).items():
            result.notifications.append((job_id, {"kind": ChangeKind.STATUS, "status": statuses[-1].status.value}))

    async def _write(
        self,
        conn: asyncpg.Connection,
        kind: str,
        items: list[_Accepted],
        write: Callable[[list[Any]], Awaitable[list[T]]],
        isolate: bool,
        result: BatchResult,
    ) -> list[T]:
        """All of one kind in one statement; with `isolate`, a savepoint each, dead-lettering what Postgres refuses."""
        if not items:
            return []
        rejected = 0
        if isolate:
            new: list[T] = []
            for item in items:
                try:
                    async with conn.transaction():
                        new += await write([item.event])
                except asyncpg.PostgresError as exc:
                    if not is_input_error(exc):
                        raise
                    rejected += 1
                    self._reject(result, item.record, DeadLetterReason.REJECTED_BY_DATABASE, f"{exc.sqlstate}: {exc}")
        else:
            new = await write([item.event for item in items])
        result.applied[kind] += len(new)
        result.duplicates[kind] += len(items) - rejected - len(new)
        return new

    @staticmethod
    def _reject(result: BatchResult, record: KafkaRecord, reason: DeadLetterReason, detail: str) -> None:
        result.dead_letters.append(_dead_letter(record, reason, detail))


def _dead_letter(record: KafkaRecord, reason: DeadLetterReason, detail: str) -> DeadLetter:
    return DeadLetter.for_record(
        reason, detail, record.topic, record.partition, record.offset, record.key, record.value
    )


def _group(rows: list[T], key: Callable[[T], K]) -> dict[K, list[T]]:
    groups: dict[K, list[T]] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    return groups
