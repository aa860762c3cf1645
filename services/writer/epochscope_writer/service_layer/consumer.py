"""The consumer loop: fetch a batch, apply it in database transactions, publish its dead letters, commit.

Order per batch: dead letters acknowledged by Kafka -> DB commit -> Kafka offset commit. A crash at any
point redelivers the batch, and the idempotent writes make that harmless (at-least-once delivery, exactly
once in effect). With the database unreachable the writer pauses its partitions, keeps the batch, retries
with backoff and commits nothing. On a rebalance the batch in flight is either finished (the revoke
callback waits for it) or dropped with its offsets uncommitted for the partitions' next owner (a lane that committed
meanwhile is redelivered to it, a no-op).
While a batch is in the database, the next one is fetched and decoded (CPU work that would otherwise
wait its turn); it is applied only after this one commits, so the order of commits is unchanged.
A batch is applied in lanes, one per database connection (EPOCHSCOPE_WRITER_DB_CONNECTIONS): a partition's records
always go to the same lane (its number modulo the lanes), so each partition's order is kept, and the lanes'
transactions run at once, so the database works on one lane's rows while this process encodes another's. A lane that
committed is not applied again when another lane's part of the batch is retried.
The broker and the database are ports (service_layer/ports.py), handed in by bootstrap.py.
"""

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from epochscope_writer.domain.records import KafkaRecord
from epochscope_writer.metrics import WriterMetrics
from epochscope_writer.service_layer.apply import BatchApplier, BatchResult, CheckedBatch
from epochscope_writer.service_layer.ports import (
    Broker,
    Database,
    DatabaseUnavailable,
    RefusedInput,
    Unavailable,
)
from epochscope_writer.settings import WriterSettings

log = logging.getLogger("epochscope.writer")


@dataclass
class _Batch:
    generation: int  # of the fetch: a batch fetched across a rebalance is discarded
    checked: CheckedBatch
    lanes: dict[int, CheckedBatch]  # lane -> its part of the batch, until that part commits


class Writer:
    def __init__(
        self,
        settings: WriterSettings,
        metrics: WriterMetrics,
        applier: BatchApplier,
        broker: Broker,
        databases: Sequence[Database],
    ) -> None:
        """`databases`: one per lane, each its own connection."""
        self._settings = settings
        self.metrics = metrics
        self._applier = applier
        self._broker = broker
        self._databases = tuple(databases)
        self._pending: _Batch | None = None
        self._batch_lock = asyncio.Lock()
        self._generation = 0  # bumped on every revoke: a fetch that spans one is discarded
        self.database_ok = False
        self.kafka_ok = False

    async def start(self) -> None:
        await self._broker.start(self.on_revoked, self.on_assigned)
        self.kafka_ok = True

    async def close(self) -> None:
        self.kafka_ok = False
        await self._broker.stop()
        for database in self._databases:
            await database.close()

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
                        await self._broker.rewind(batch.checked.records)
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
                    await self._broker.wait_paused(backoff, stopping.is_set)
                    backoff = min(backoff * 2, self._settings.writer_retry_max_s)
        finally:
            if ahead is not None:
                ahead.cancel()

    async def _probe_database(self) -> None:
        """Idle and not known good: connect, so readiness tells the truth about the database without traffic."""
        try:
            for database in self._databases:
                await database.probe()
            self.database_ok = True
        except DatabaseUnavailable as exc:
            log.info("database not reachable yet: %s", exc)

    async def _next_batch(self, stopping: asyncio.Event) -> _Batch:
        generation = self._generation
        s = self._settings
        records = await self._broker.fetch(s.writer_batch_size, s.writer_linger_ms, stopping.is_set)
        checked = self._applier.check(records)
        return _Batch(generation, checked, checked.lanes(len(self._databases)))

    async def _apply_pending(self) -> None:
        """The pending batch's lanes that have not committed yet, at once; the offsets of those that commit."""
        async with self._batch_lock:
            batch = self._pending
            if batch is None:  # revoked while we waited: the partitions' next owner applies them
                return
            started = time.perf_counter()
            lanes = list(batch.lanes.items())
            outcomes = await asyncio.gather(
                *(self._apply_and_commit_db(self._databases[lane], part) for lane, part in lanes),
                return_exceptions=True,
            )
            committed: list[KafkaRecord] = []
            for (lane, part), outcome in zip(lanes, outcomes, strict=True):
                if isinstance(outcome, BatchResult):
                    del batch.lanes[lane]
                    committed += part.records
                    self._record(outcome, len(part.records), time.perf_counter() - started)
            if committed:
                await self._broker.commit(committed)
            failures = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
            if failures:  # a bug before an outage: the one is raised, the other retried
                raise next((f for f in failures if not isinstance(f, Unavailable)), failures[0])
            self._pending = None
            self._broker.resume()

    async def _apply_and_commit_db(self, database: Database, batch: CheckedBatch) -> BatchResult:
        try:
            try:
                return await self._transaction(database, batch, isolate=False)
            except RefusedInput as exc:
                log.warning("a record in the batch was refused by the database; retrying one by one: %s", exc)
            try:
                return await self._transaction(database, batch, isolate=True)
            except RefusedInput as exc:  # outside any one record's savepoint: not the input's fault
                raise DatabaseUnavailable(f"database: {exc}") from exc
        except DatabaseUnavailable:
            self.database_ok = False
            raise

    async def _transaction(self, database: Database, batch: CheckedBatch, isolate: bool) -> BatchResult:
        async with database.transaction() as store:
            result = await self._applier.apply(store, batch, isolate=isolate)
            await self._broker.publish_dead_letters(result.dead_letters)
        self.database_ok = True
        return result

    async def on_revoked(self) -> None:
        """Wait for the batch being applied to commit, or drop the one waiting for the database."""
        async with self._batch_lock:
            self._generation += 1
            if self._pending is not None:
                records = sum(len(part.records) for part in self._pending.lanes.values())  # its lanes not committed
                log.info("rebalance: leaving an uncommitted batch of %d records to the next owner", records)
                self._pending = None
        self.metrics.consumer_lag.clear()
        self.metrics.assigned_partitions.set(0)

    def on_assigned(self, partitions: list[str]) -> None:
        """`partitions`: "topic:partition" names."""
        self.metrics.assigned_partitions.set(len(partitions))
        log.info("assigned %d partitions", len(partitions), extra={"partitions": partitions})

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
