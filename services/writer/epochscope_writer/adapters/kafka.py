"""Kafka adapter: the writer's consumer (manual offset commits) and its dead-letter producer.

aiokafka's types and errors stop here: the service layer sees records, partition names and
BrokerUnavailable.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from epochscope_schemas.topics import TRAINING_PREDICTIONS, TRAINING_STATUS, dead_letter_topic
from epochscope_writer.domain.dead_letters import DeadLetter
from epochscope_writer.domain.records import KafkaRecord
from epochscope_writer.metrics import WriterMetrics
from epochscope_writer.service_layer.ports import BrokerUnavailable
from epochscope_writer.settings import WriterSettings

log = logging.getLogger("epochscope.writer")

TOPICS = (TRAINING_PREDICTIONS, TRAINING_STATUS)
FETCH_WAIT_MS = 500  # longest a fetch blocks, so a stop request is seen promptly


class KafkaBroker:
    def __init__(self, settings: WriterSettings, metrics: WriterMetrics) -> None:
        self._metrics = metrics
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

    async def start(self, on_revoked: Callable[[], Awaitable[None]], on_assigned: Callable[[list[str]], None]) -> None:
        await self._producer.start()
        self._consumer.subscribe(list(TOPICS), listener=_RebalanceListener(on_revoked, on_assigned))
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()  # leaves the group; uncommitted records go to the next owner
        await self._producer.stop()

    async def fetch(self, size: int, linger_ms: int, is_stopping: Callable[[], bool]) -> list[KafkaRecord]:
        records = self._flatten(await self._consumer.getmany(timeout_ms=FETCH_WAIT_MS, max_records=size))
        deadline = time.monotonic() + linger_ms / 1000
        while records and len(records) < size and not is_stopping():
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
            self._metrics.events_consumed.labels(tp.topic).inc(len(messages))
            records += messages
        return records

    async def publish_dead_letters(self, dead_letters: list[DeadLetter]) -> None:
        """Before the DB commit: if the broker refuses them, the batch is retried, nothing is lost."""
        try:
            await send_dead_letters(self._producer, dead_letters)
        except KafkaError as exc:
            raise BrokerUnavailable(f"broker: {type(exc).__name__}: {exc}") from exc
        for letter in dead_letters:
            log.info(
                "dead-lettered %s:%d@%d: %s",
                letter.topic,
                letter.partition,
                letter.offset,
                letter.reason,
                extra={"reason": letter.reason.value, "detail": letter.detail},
            )

    async def commit(self, records: list[KafkaRecord]) -> None:
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
                self._metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(highwater - offset, 0))

    def resume(self) -> None:
        for tp in self._consumer.paused():
            self._consumer.resume(tp)

    async def wait_paused(self, seconds: float, is_stopping: Callable[[], bool]) -> None:
        self._consumer.pause(*self._consumer.assignment())
        deadline = time.monotonic() + seconds
        while not is_stopping() and time.monotonic() < deadline:
            await self._consumer.getmany(timeout_ms=max(int((deadline - time.monotonic()) * 1000), 1))

    async def rewind(self, records: list[KafkaRecord]) -> None:
        """Seek the partitions of a discarded batch back to their committed offsets.

        Asking for an offset awaits the broker, and a rebalance can take the partition away meanwhile, so
        ownership is checked again before the seek: a partition no longer ours is left alone, and its next
        owner starts from the committed offset anyway.
        """
        for tp in {TopicPartition(r.topic, r.partition) for r in records}:
            if tp not in self._consumer.assignment():
                continue
            committed = await self._consumer.committed(tp)
            if tp not in self._consumer.assignment():
                continue
            if committed is None:
                await self._consumer.seek_to_beginning(tp)
            else:
                self._consumer.seek(tp, committed)


async def send_dead_letters(producer: AIOKafkaProducer, dead_letters: list[DeadLetter]) -> None:
    """Each to its topic's dead-letter topic, keyed as the record was; returns once the broker has them all."""
    sends = [
        await producer.send(
            dead_letter_topic(letter.topic),
            value=letter.model_dump_json().encode(),
            key=letter.key.encode() if letter.key is not None else None,
        )
        for letter in dead_letters
    ]
    await asyncio.gather(*sends)


class _RebalanceListener(ConsumerRebalanceListener):
    def __init__(self, on_revoked: Callable[[], Awaitable[None]], on_assigned: Callable[[list[str]], None]) -> None:
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._on_revoked()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        self._on_assigned(sorted(f"{tp.topic}:{tp.partition}" for tp in assigned))
