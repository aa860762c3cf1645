"""The writer's registry of event types and its heartbeat recorder, without infrastructure.

The registry must cover every event the contract puts on a topic the writer consumes (a missing entry would stop
a batch), once each; the Postgres adapter must have a table for each entry stored as rows. The heartbeat recorder
runs against fakes of its two ports: it records the verified beats, dead-letters the rest, and outlives a broker
that is away.
"""

import asyncio
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from writer_fakes import FakeRecord

from epochscope_runtime.heartbeat_signing import AcceptedTrainerKeys, bound_trainer_id, signed_heartbeat
from epochscope_schemas.events import EVENTS_BY_TOPIC
from epochscope_schemas.scheduling import TrainerHeartbeat
from epochscope_schemas.topics import TRAINER_HEARTBEATS
from epochscope_writer.adapters.kafka import TOPICS
from epochscope_writer.adapters.postgres_tables import TABLES
from epochscope_writer.domain.dead_letters import DeadLetter, DeadLetterReason
from epochscope_writer.domain.records import KafkaRecord
from epochscope_writer.service_layer.event_types import EVENT_TYPE_OF, EVENT_TYPES, EventKind, EventType
from epochscope_writer.service_layer.heartbeats import HeartbeatRecorder
from epochscope_writer.service_layer.ports import BrokerUnavailable

KEY = Ed25519PrivateKey.generate()  # an accepted trainer's identity


def test_every_event_of_the_writers_topics_has_one_entry() -> None:
    consumed = {cls for topic in TOPICS for cls in EVENTS_BY_TOPIC[topic]}
    assert set(EVENT_TYPE_OF) == consumed
    assert len(EVENT_TYPES) == len(EVENT_TYPE_OF) == len(EventKind)
    assert {entry.kind for entry in EVENT_TYPES} == set(EventKind)


def test_every_entry_stored_as_rows_has_its_table() -> None:
    as_rows = {entry.event for entry in EVENT_TYPES if entry.store is EventType.store}
    assert as_rows and as_rows <= set(TABLES)


class FakeHeartbeats:
    """The heartbeats topic: refuses to start `failures` times, then hands out `records` once."""

    def __init__(self, records: list[KafkaRecord], failures: int, stopping: asyncio.Event) -> None:
        self.records = records
        self.failures = failures
        self.starts = 0
        self.dead_letters: list[DeadLetter] = []
        self._stopping = stopping

    async def start(self) -> None:
        self.starts += 1
        if self.starts <= self.failures:
            raise BrokerUnavailable("broker: fake outage")

    async def stop(self) -> None:
        pass

    async def fetch(self) -> list[KafkaRecord]:
        records, self.records = self.records, []
        if not records:
            self._stopping.set()
        return records

    async def publish_dead_letters(self, dead_letters: list[DeadLetter]) -> None:
        self.dead_letters += dead_letters


class FakeRoster:
    def __init__(self) -> None:
        self.recorded: list[TrainerHeartbeat] = []
        self.closed = False

    async def record(self, beats: list[TrainerHeartbeat]) -> None:
        self.recorded += beats

    async def close(self) -> None:
        self.closed = True


async def test_the_recorder_records_verified_beats_dead_letters_the_rest_and_retries_the_broker() -> None:
    t1, stranger = bound_trainer_id(KEY, "t1"), Ed25519PrivateKey.generate()
    good = signed_heartbeat(TrainerHeartbeat(trainer_id=t1, free_slots=1, occurred_at=datetime.now(UTC)), KEY)
    forged = signed_heartbeat(TrainerHeartbeat(trainer_id=bound_trainer_id(stranger, "t2")), stranger)
    records = [
        FakeRecord(TRAINER_HEARTBEATS, 0, i, b"t", b.model_dump_json().encode()) for i, b in enumerate((good, forged))
    ]
    stopping = asyncio.Event()
    broker, roster = FakeHeartbeats(records, failures=2, stopping=stopping), FakeRoster()
    recorder = HeartbeatRecorder(
        broker, roster, AcceptedTrainerKeys([KEY.public_key()]), timedelta(seconds=30), retry_s=0.01
    )
    await asyncio.wait_for(recorder.run(stopping), timeout=5)
    assert broker.starts == 3
    assert [beat.trainer_id for beat in roster.recorded] == [t1]
    assert [letter.reason for letter in broker.dead_letters] == [DeadLetterReason.UNACCEPTED_TRAINER_KEY]
    assert roster.closed
