"""The few Kafka operations the trainer service uses, as protocols.

`bootstrap` hands in aiokafka's consumer and producer; unit tests hand in fakes, with no broker.
"""

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Protocol

from aiokafka import TopicPartition


class Record(Protocol):
    """One consumed message: what the service reads of aiokafka's ConsumerRecord."""

    @property
    def value(self) -> bytes | None: ...

    @property
    def offset(self) -> int: ...


class JobConsumer(Protocol):
    """The consumer of job-start events, outside any group: nothing is committed (the queue lives in Postgres)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, Sequence[Record]]: ...

    def assignment(self) -> set[TopicPartition]: ...

    def paused(self) -> set[TopicPartition]: ...

    def pause(self, *partitions: TopicPartition) -> None: ...

    def resume(self, *partitions: TopicPartition) -> None: ...


class RecordStream(Protocol):
    """A consumer read as an endless stream of records (the cancel watcher's, outside any group)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def __aiter__(self) -> AsyncIterator[Record]: ...


class EventProducer(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send_and_wait(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> object: ...
