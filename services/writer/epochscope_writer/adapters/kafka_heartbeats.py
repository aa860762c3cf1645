"""Kafka adapter of the heartbeat recorder: the trainers' heartbeats topic, in a consumer group of its own, and a
producer for the refused ones. Clients are built afresh on each start (an aiokafka client does not restart)."""

import contextlib

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError

from epochscope_schemas.topics import HEARTBEATS_GROUP, TRAINER_HEARTBEATS
from epochscope_writer.adapters.kafka import send_dead_letters
from epochscope_writer.domain.dead_letters import DeadLetter
from epochscope_writer.domain.records import KafkaRecord
from epochscope_writer.service_layer.ports import BrokerUnavailable
from epochscope_writer.settings import WriterSettings

FETCH_WAIT_MS = 500  # longest a fetch blocks, so a stop request is seen promptly
FETCH_RECORDS = 500


class KafkaHeartbeats:
    def __init__(self, settings: WriterSettings) -> None:
        self._kafka = settings.kafka.client_kwargs()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            TRAINER_HEARTBEATS, **self._kafka, group_id=HEARTBEATS_GROUP, auto_offset_reset="latest"
        )
        self._producer = AIOKafkaProducer(**self._kafka, acks="all")
        try:
            await self._consumer.start()
            await self._producer.start()
        except (KafkaError, OSError) as exc:
            raise BrokerUnavailable(f"broker: {type(exc).__name__}: {exc}") from exc

    async def stop(self) -> None:
        for client in (self._consumer, self._producer):
            if client is not None:
                with contextlib.suppress(Exception):  # stopping a client that never started, or a dead broker
                    await client.stop()
        self._consumer = self._producer = None

    async def fetch(self) -> list[KafkaRecord]:
        assert self._consumer is not None, "start() first"
        try:
            batch = await self._consumer.getmany(timeout_ms=FETCH_WAIT_MS, max_records=FETCH_RECORDS)
        except KafkaError as exc:
            raise BrokerUnavailable(f"broker: {type(exc).__name__}: {exc}") from exc
        return [record for records in batch.values() for record in records]

    async def publish_dead_letters(self, dead_letters: list[DeadLetter]) -> None:
        assert self._producer is not None, "start() first"
        try:
            await send_dead_letters(self._producer, dead_letters)
        except KafkaError as exc:
            raise BrokerUnavailable(f"broker: {type(exc).__name__}: {exc}") from exc
