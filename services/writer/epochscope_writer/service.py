"""The consumer loop: fetch a batch, apply it in one DB transaction, publish its dead letters, commit.

Order per batch: dead letters acknowledged by Kafka -> DB commit -> Kafka offset commit. A crash at any
point redelivers the batch, and the idempotent writes make that harmless (at-least-once delivery, exactly
once in effect). With the database unreachable the writer pauses its partitions, keeps the batch, retries
with backoff and commits nothing. On a rebalance the batch in flight is either finished (the revoke
callback waits for it) or dropped uncommitted for the partitions' next owner, never half-applied.
While a batch is in the database, the next one is fetched and decoded (CPU work that would otherwise
wait its turn); it is applied only after this one commits, so the order of commits is unchanged.
"""

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from epochscope_schemas.topics import TRAINING_PREDICTIONS, TRAINING_STATUS, dead_letter_topic
from epochscope_writer import store
from epochscope_writer.apply import BatchApplier, BatchResult, CheckedBatch, JobOwners, is_input_error
from epochscope_writer.dead_letters import DeadLetter
from epochscope_writer.decoding import KafkaRecord
from epochscope_writer.job_tokens import JobTokenVerifier
from epochscope_writer.metrics import WriterMetrics
from epochscope_writer.settings import WriterSettings

log = logging.getLogger("epochscope.writer")

TOPICS = (TRAINING_PREDICTIONS, TRAINING_STATUS)
FETCH_WAIT_MS = 500  # longest a fetch blocks, so a stop request is seen promptly


class Unavailable(Exception):
    """The database or the broker could not complete the batch; retry it later, unchanged."""


@dataclass(frozen=True)
class _Batch:
    generation: int  # of the fetch: a batch fetched across a rebalance is discarded
    checked: CheckedBatch


class Writer:
    def __init__(self, settings: WriterSettings, metrics: WriterMetrics) -> None:
        self._settings = settings
        self.metrics = metrics
        self._applier = BatchApplier(
            JobTokenVerifier(settings.job_token_secret.get_secret_value(), settings.writer_owner_cache_size),
            JobOwners(settings.writer_owner_cache_size),
            timedelta(seconds=settings.writer_finished_job_grace_s),
        )
        kafka = settings.kafka.client_kwargs()
        self._consumer = AIOKafkaConsumer(
            **kafka,
            group_id=settings.writer_group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=settings.writer_batch_size,
            max_partition_fetch_bytes=settings.writer_partition_fetch_bytes,
            session_timeout_ms=settings.writer_session_timeout_ms,
            heartbeat_interval_ms=settings.writer_heartbeat_interval_ms,
        )
        self._producer = AIOKafkaProducer(**kafka, acks="all", enable_idempotence=False)
        self._conn: asyncpg.Connection | None = None
        self._pending: _Batch | None = None
        self._batch_lock = asyncio.Lock()
        self._generation = 0  # bumped on every revoke: a fetch that spans one is discarded
        self.database_ok = False
        self.kafka_ok = False

    async def start(self) -> None:
        await self._producer.start()
        self._consumer.subscribe(list(TOPICS), listener=_RebalanceListener(self))
        await self._consumer.start()
        self.kafka_ok = True

    async def close(self) -> None:
        self.kafka_ok = False
        await self._consumer.stop()  # leaves the group; uncommitted records go to the next owner
        await self._producer.stop()
        if self._conn is not None:
            await self._conn.close(timeout=2)

    async def run(self, stopping: asyncio.Event) -> None:
        """Apply batches until `stopping`; the next batch is fetched and checked while this one is in the database."""
        backoff = self._settings.writer_retry_initial_s
        ahead: asyncio.Task[_Batch] | None = None
        try:
            while not stopping.is_set():
                if self._pending is None:
                    batch = await (ahead or self._next_batch(stopping))
                    ahead = None
                    if not batch.checked.records:
                        if not self.database_ok:
                            await self._probe_database()
                        continue
                    if batch.generation != self._generation:
                        await self._rewind(batch.checked.records)
                        continue
                    self._pending = batch
                if ahead is None:
                    ahead = asyncio.create_task(self._next_batch(stopping))
                try:
                    await self._apply_pending()
                    backoff = self._settings.writer_retry_initial_s
                except Unavailable as exc:
                    self.metrics.database_retries.inc()
                    log.warning("batch not applied, retrying in %.1fs: %s", backoff, exc, extra={"retry_in_s": backoff})
                    await asyncio.wait({ahead})  # no fetch may run beside the paused polling below
                    await self._wait_paused(backoff, stopping)
                    backoff = min(backoff * 2, self._settings.writer_retry_max_s)
        finally:
            if ahead is not None:
                ahead.cancel()

    async def _probe_database(self) -> None:
        """Idle and not known good: connect, so readiness tells the truth about the database without traffic."""
        try:
            await self._connection()
            self.database_ok = True
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            self._drop_connection()
            log.info("database not reachable yet: %s: %s", type(exc).__name__, exc)

    async def _next_batch(self, stopping: asyncio.Event) -> _Batch:
        generation = self._generation
        records = await self._fetch(stopping)
        return _Batch(generation, self._applier.check(records))

    async def _fetch(self, stopping: asyncio.Event) -> list[KafkaRecord]:
        """Up to batch_size records, waiting at most linger_ms for more once the first have arrived."""
        size = self._settings.writer_batch_size
        records = self._flatten(await self._consumer.getmany(timeout_ms=FETCH_WAIT_MS, max_records=size))
        deadline = time.monotonic() + self._settings.writer_linger_ms / 1000
        while records and len(records) < size and not stopping.is_set():
            remaining_ms = int((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0:
                break
            records += self._flatten(
                await self._consumer.getmany(timeout_ms=remaining_ms, max_records=size - len(records))
            )
        return records

    def _flatten(self, batch: dict[TopicPartition, list]) -> list[KafkaRecord]:
        records: list[KafkaRecord] = []
        for tp, messages in batch.items():
            self.metrics.events_consumed.labels(tp.topic).inc(len(messages))
            records += messages
        return records

    async def _apply_pending(self) -> None:
        async with self._batch_lock:
            batch = self._pending
            if batch is None:  # revoked while we waited: the partitions' next owner applies them
                return
            started = time.perf_counter()
            result = await self._apply_and_commit_db(batch.checked)
            self._pending = None
            await self._commit_offsets(batch.checked.records)
            self._record(result, len(batch.checked.records), time.perf_counter() - started)
            for tp in self._consumer.paused():
                self._consumer.resume(tp)

    async def _apply_and_commit_db(self, batch: CheckedBatch) -> BatchResult:
        try:
            conn = await self._connection()
            try:
                return await self._transaction(conn, batch, isolate=False)
            except asyncpg.PostgresError as exc:
                if not is_input_error(exc):
                    raise
                log.warning("a record in the batch was refused by the database; retrying one by one: %s", exc)
                return await self._transaction(conn, batch, isolate=True)
        except KafkaError as exc:  # dead letters not acknowledged: the transaction rolled back
            raise Unavailable(f"broker: {type(exc).__name__}: {exc}") from exc
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            self.database_ok = False
            self._drop_connection()
            raise Unavailable(f"database: {type(exc).__name__}: {exc}") from exc

    async def _transaction(self, conn: asyncpg.Connection, batch: CheckedBatch, isolate: bool) -> BatchResult:
        async with conn.transaction():
            result = await self._applier.apply(conn, batch, isolate=isolate)
            await self._publish_dead_letters(result.dead_letters)
        self.database_ok = True
        return result

    async def _publish_dead_letters(self, dead_letters: list[DeadLetter]) -> None:
        """Before the DB commit: if the broker refuses them, the batch is retried, nothing is lost."""
        sends = [
            await self._producer.send(
                dead_letter_topic(letter.topic),
                value=letter.model_dump_json().encode(),
                key=letter.key.encode() if letter.key is not None else None,
            )
            for letter in dead_letters
        ]
        await asyncio.gather(*sends)
        for letter in dead_letters:
            log.info(
                "dead-lettered %s:%d@%d: %s",
                letter.topic,
                letter.partition,
                letter.offset,
                letter.reason,
                extra={"reason": letter.reason.value, "detail": letter.detail},
            )

    async def _commit_offsets(self, records: list[KafkaRecord]) -> None:
        """After the DB commit. A failure here only means redelivery, which the idempotent writes absorb."""
        offsets: dict[TopicPartition, int] = {}
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
        assigned = self._consumer.assignment()
        offsets = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:
            log.warning("offset commit failed after the DB commit; the batch will be redelivered: %s", exc)
            return
        for tp, offset in offsets.items():
            highwater = self._consumer.highwater(tp)
            if highwater is not None:
                self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(highwater - offset, 0))

    async def _connection(self) -> asyncpg.Connection:
        if self._conn is None or self._conn.is_closed():
            s = self._settings
            self._conn = await store.connect(
                s.database_url, s.writer_db_connect_timeout_s, s.writer_db_command_timeout_s
            )
            log.info("connected to the database")
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            self._conn.terminate()
            self._conn = None

    async def _wait_paused(self, seconds: float, stopping: asyncio.Event) -> None:
        """Stop consuming but keep polling, so the group does not evict this writer while it waits."""
        self._consumer.pause(*self._consumer.assignment())
        deadline = time.monotonic() + seconds
        while not stopping.is_set() and time.monotonic() < deadline:
            await self._consumer.getmany(timeout_ms=max(int((deadline - time.monotonic()) * 1000), 1))

    async def _rewind(self, records: Iterable[KafkaRecord]) -> None:
        """A fetch that overlapped a rebalance: go back to the committed offsets of the partitions still ours."""
        assigned = self._consumer.assignment()
        for tp in {TopicPartition(r.topic, r.partition) for r in records} & assigned:
            committed = await self._consumer.committed(tp)
            if committed is None:
                await self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, committed)

    async def on_revoked(self) -> None:
        """Wait for the batch being applied to commit, or drop the one waiting for the database."""
        async with self._batch_lock:
            self._generation += 1
            if self._pending is not None:
                records = len(self._pending.checked.records)
                log.info("rebalance: leaving an uncommitted batch of %d records to the next owner", records)
                self._pending = None
        self.metrics.consumer_lag.clear()
        self.metrics.assigned_partitions.set(0)

    def on_assigned(self, assigned: list[TopicPartition]) -> None:
        self.metrics.assigned_partitions.set(len(assigned))
        log.info(
            "assigned %d partitions",
            len(assigned),
            extra={"partitions": sorted(f"{tp.topic}:{tp.partition}" for tp in assigned)},
        )

    def _record(self, result: BatchResult, records: int, seconds: float) -> None:
        m = self.metrics
        m.batch_seconds.observe(seconds)
        m.batch_size.observe(records)
        for kind, rows in result.applied.items():
            m.rows_applied.labels(kind).inc(rows)
        for kind, rows in result.duplicates.items():
            m.duplicates_skipped.labels(kind).inc(rows)
        for letter in result.dead_letters:
            m.dead_letters.labels(letter.reason.value).inc()
        log.debug(
            "batch applied",
            extra={
                "records": records,
                "applied": dict(result.applied),
                "duplicates": dict(result.duplicates),
                "dead_letters": len(result.dead_letters),
                "seconds": round(seconds, 4),
            },
        )


class _RebalanceListener(ConsumerRebalanceListener):
    def __init__(self, writer: Writer) -> None:
        self._writer = writer

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._writer.on_revoked()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._writer.on_assigned(assigned)
