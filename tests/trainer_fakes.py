"""Fake Kafka adapters for the trainer service's unit tests: they satisfy epochscope_trainer.kafka_ports."""

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field

from aiokafka import TopicPartition

from epochscope_schemas.events import JobStatusEvent
from epochscope_schemas.topics import JOB_COMMANDS, TRAINING_STATUS


@dataclass
class FakeRecord:
    value: bytes | None
    offset: int


@dataclass
class FakeJobConsumer:
    """Hands out its records one poll at a time; once they are all out, it stops the service."""

    values: list[bytes]
    stopping: asyncio.Event
    wait_for: asyncio.Event | None = None  # hold the first record back until this is set
    tp: TopicPartition = TopicPartition(JOB_COMMANDS, 0)
    committed: list[int] = field(default_factory=list)
    polls_while_paused: int = 0
    running: bool = False
    _paused: set[TopicPartition] = field(default_factory=set)

    async def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, Sequence[FakeRecord]]:
        if self._paused:
            self.polls_while_paused += 1
            return {}
        if self.wait_for is not None:
            await self.wait_for.wait()
        offset = len(self.committed)
        if offset == len(self.values):
            self.stopping.set()
            return {}
        return {self.tp: [FakeRecord(self.values[offset], offset)]}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.committed.append(offsets[self.tp])

    def assignment(self) -> set[TopicPartition]:
        return {self.tp}

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    def pause(self, *partitions: TopicPartition) -> None:
        self._paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self._paused.difference_update(partitions)


class FakeCancelStream:
    """The cancel watcher's records: whatever the test puts on `queue`. `read_all` is set once the
    watcher asks for a record past the last one queued, so it has handled every one before."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[FakeRecord] = asyncio.Queue()
        self.read_all = asyncio.Event()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def __aiter__(self) -> AsyncIterator[FakeRecord]:
        return self._records()

    async def _records(self) -> AsyncIterator[FakeRecord]:
        while True:
            if self.queue.empty():
                self.read_all.set()
            yield await self.queue.get()


@dataclass
class FakeProducer:
    sent: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]] | None]] = field(default_factory=list)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> object:
        self.sent.append((topic, value, key, headers))
        return None

    def statuses(self) -> list[JobStatusEvent]:
        return [JobStatusEvent.model_validate_json(v or b"") for t, v, _, _ in self.sent if t == TRAINING_STATUS]
