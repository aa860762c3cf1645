"""The writer's apply rules: one batch of Kafka records into one database transaction.

Per record: decode, verify the job token, take the owner from the jobs table (never from the event),
check the token's user is that owner and the job still exists. Nothing is refused for being late: not
by the token's `exp`, not by the event's `occurred_at` (the producer's clock), not for arriving after
the job finished; a deleted job is the one revocation (`job_deleted`). What survives is written per
owner with that owner as the RLS user, each kind as its entry in the registry (event_types.py) says:
predictions idempotently on (job_id, step, sample_id), rounds on (job_id, round_index), progress on (job_id, step)
with jobs.progress only moving forward, warnings on event_id, statuses by attempt (never by the producer's clock).
An owner's predictions that would take them past their stored-predictions quota are dead-lettered
(`predictions_quota`, prediction_quota.py); owners are written in order of their ids, so two writers lock two
owners' counts in the same order.
A job in the job queue takes trainer events only of its current attempt (fencing): any other attempt, or none, is
dead-lettered as `stale_attempt`, as is an event naming an attempt for a job outside the queue. Each commit
NOTIFYs the channel of every job it changed.
Everything refused comes back as a dead letter; nothing here raises on input. The database is an
EventStore port, so these rules run against a fake in the unit tests.
"""

from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from epochscope_schemas.events import WarningEvent
from epochscope_writer.domain.dead_letters import DeadLetter, DeadLetterReason, Rejection
from epochscope_writer.domain.decoding import Decoded, decode_record
from epochscope_writer.domain.job_tokens import JobTokenVerifier
from epochscope_writer.domain.records import KafkaRecord
from epochscope_writer.service_layer.event_types import EVENT_TYPE_OF, EVENT_TYPES, EventKind, EventType, entry_of
from epochscope_writer.service_layer.ports import EventStore, JobState, Notification, RefusedInput
from epochscope_writer.service_layer.prediction_quota import PredictionQuota, QuotaCrossed


@dataclass
class BatchResult:
    dead_letters: list[DeadLetter] = field(default_factory=list)
    applied: Counter[EventKind] = field(default_factory=Counter)  # rows inserted or statuses changed
    duplicates: Counter[EventKind] = field(default_factory=Counter)  # redelivered rows, stale statuses
    notifications: list[Notification] = field(default_factory=list)  # sent in one statement


@dataclass(frozen=True)
class _Accepted:
    record: KafkaRecord
    event: Decoded
    token_user: str


@dataclass(frozen=True)
class CheckedBatch:
    """A fetched batch after decoding and token checks; applying it may be retried, so it is never changed."""

    records: list[KafkaRecord]
    accepted: tuple[_Accepted, ...]
    dead_letters: tuple[DeadLetter, ...]

    def lanes(self, count: int) -> dict[int, "CheckedBatch"]:
        """The batch split in `count` lanes by partition (its number modulo `count`: a partition's records are all in
        one lane, in their order), each lane with records; a lane's part is applied in a transaction of its own."""
        lanes = sorted({record.partition % count for record in self.records})
        return {
            lane: CheckedBatch(
                [record for record in self.records if record.partition % count == lane],
                tuple(item for item in self.accepted if item.record.partition % count == lane),
                tuple(letter for letter in self.dead_letters if letter.partition % count == lane),
            )
            for lane in lanes
        }


class JobOwners:
    """job id -> owner, read from the jobs table and cached (a job's owner never changes)."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._owners: OrderedDict[UUID, str] = OrderedDict()

    async def owner(self, store: EventStore, job_id: UUID) -> str | None:
        owner = self._owners.get(job_id)
        if owner is not None:
            self._owners.move_to_end(job_id)
            return owner
        owner = await store.job_owner(job_id)
        if owner is not None:
            self._owners[job_id] = owner
            if len(self._owners) > self._capacity:
                self._owners.popitem(last=False)
        return owner


class BatchApplier:
    def __init__(self, verifier: JobTokenVerifier, owners: JobOwners, prediction_quota: PredictionQuota) -> None:
        self._verifier = verifier
        self._owners = owners
        self._prediction_quota = prediction_quota

    def check(self, records: list[KafkaRecord]) -> CheckedBatch:
        """Decode and verify tokens: CPU only, so it can run while the previous batch waits on the database."""
        accepted: list[_Accepted] = []
        dead_letters: list[DeadLetter] = []
        for record in records:
            decoded = decode_record(record.topic, record.value)
            if isinstance(decoded, Rejection):
                dead_letters.append(DeadLetter.for_record(record, decoded.reason, decoded.detail))
                continue
            claims = self._verifier.verify(decoded.job_token, decoded.job_id, decoded.attempt_id)
            if isinstance(claims, Rejection):
                dead_letters.append(DeadLetter.for_record(record, claims.reason, claims.detail))
                continue
            refusal = entry_of(decoded).refusal
            if refusal is not None and (rejection := refusal(decoded)) is not None:
                dead_letters.append(DeadLetter.for_record(record, rejection.reason, rejection.detail))
                continue
            accepted.append(_Accepted(record, decoded, claims.user_id))
        return CheckedBatch(records, tuple(accepted), tuple(dead_letters))

    async def apply(self, store: EventStore, batch: CheckedBatch, isolate: bool = False) -> BatchResult:
        """Run inside a transaction. `isolate` puts each write in a savepoint, to single out a poison event."""
        result = BatchResult(dead_letters=list(batch.dead_letters))
        by_owner: dict[str, list[_Accepted]] = defaultdict(list)
        for item in batch.accepted:
            owner = await self._owners.owner(store, item.event.job_id)
            if owner is None:
                _reject(result, item.record, DeadLetterReason.JOB_DELETED, _deleted(item.event.job_id))
            elif owner != item.token_user:
                detail = "the job token's user does not own the job"
                _reject(result, item.record, DeadLetterReason.OWNER_MISMATCH, detail)
            else:
                by_owner[owner].append(item)
        for owner in sorted(by_owner):
            await store.act_as(owner)
            by_kind = await self._live_by_kind(store, by_owner[owner], result)
            await self._write_for_owner(store, owner, by_kind, isolate, result)
        await store.notify(result.notifications)
        return result

    async def _live_by_kind(
        self, store: EventStore, items: list[_Accepted], result: BatchResult
    ) -> dict[EventKind, list[_Accepted]]:
        """The events of jobs that still exist, of their current attempt, by kind; finished or not, however late."""
        states = await store.job_states(sorted({item.event.job_id for item in items}))
        by_kind: dict[EventKind, list[_Accepted]] = defaultdict(list)
        for item in items:
            state = states.get(item.event.job_id)
            if state is None:  # deleted since its owner was cached
                _reject(result, item.record, DeadLetterReason.JOB_DELETED, _deleted(item.event.job_id))
            elif item.event.attempt_id != state.attempt_id:
                _reject(result, item.record, DeadLetterReason.STALE_ATTEMPT, _stale(item.event.attempt_id, state))
            else:
                by_kind[entry_of(item.event).kind].append(item)
        return by_kind

    async def _write_for_owner(
        self,
        store: EventStore,
        owner: str,
        by_kind: dict[EventKind, list[_Accepted]],
        isolate: bool,
        result: BatchResult,
    ) -> None:
        for entry in EVENT_TYPES:
            rows = await self._write(store, owner, entry, by_kind[entry.kind], isolate, result)
            result.notifications += entry.notifications(rows)

    async def _write(
        self,
        store: EventStore,
        owner: str,
        entry: EventType,
        items: list[_Accepted],
        isolate: bool,
        result: BatchResult,
    ) -> list[Any]:
        """All of one kind in one statement; with `isolate`, a savepoint each, dead-lettering what Postgres refuses."""
        if not items:
            return []
        rejected = 0
        if isolate:
            new: list[Any] = []
            for item in items:
                try:
                    async with store.savepoint():
                        new += await self._store(store, owner, entry, [item.event])
                except RefusedInput as exc:
                    rejected += 1
                    _reject(result, item.record, DeadLetterReason.REJECTED_BY_DATABASE, str(exc))
                except QuotaCrossed as exc:
                    rejected += 1
                    await self._over_quota(store, owner, [item], exc, result)
        else:
            try:
                new = await self._store(store, owner, entry, [item.event for item in items])
            except QuotaCrossed as exc:
                new, rejected = [], len(items)
                await self._over_quota(store, owner, items, exc, result)
        result.applied[entry.kind] += len(new)
        result.duplicates[entry.kind] += len(items) - rejected - len(new)
        return new

    async def _store(self, store: EventStore, owner: str, entry: EventType, events: list[Decoded]) -> list[Any]:
        """The entry's write; predictions within their owner's quota (QuotaCrossed, none stored, if not)."""
        if entry.kind is not EventKind.PREDICTION:
            return await entry.store(store, owner, events)
        return await self._prediction_quota.store(store, owner, lambda: entry.store(store, owner, events))

    async def _over_quota(
        self, store: EventStore, owner: str, items: list[_Accepted], crossed: QuotaCrossed, result: BatchResult
    ) -> None:
        """Predictions refused for their owner's quota: each dead-lettered, and each job told once, by a warning."""
        for item in items:
            _reject(result, item.record, DeadLetterReason.PREDICTIONS_QUOTA, self._prediction_quota.detail(crossed))
        job_ids = list(dict.fromkeys(item.event.job_id for item in items))
        warned = await store.insert_rows(owner, self._prediction_quota.warnings(job_ids))
        result.applied[EventKind.WARNING] += len(warned)
        result.notifications += EVENT_TYPE_OF[WarningEvent].notifications(warned)


def _stale(attempt_id: UUID | None, state: JobState) -> str:
    current = state.attempt_id or "none (outside the queue, queued again, or ended)"
    return f"attempt {attempt_id or '(none given)'} is not the job's current attempt, {current}"


def _deleted(job_id: UUID) -> str:
    return f"job {job_id} no longer exists: deleted, which revokes its token"


def _reject(result: BatchResult, record: KafkaRecord, reason: DeadLetterReason, detail: str) -> None:
    result.dead_letters.append(DeadLetter.for_record(record, reason, detail))
