"""Fake Kafka adapters for the trainer service's unit tests (they satisfy epochscope_trainer.service.kafka_ports), and
the inputs of a job as the API would hand them over: dataset objects in a real (local folder) object store,
the model as a `dir:` source, and a v2 start event naming both."""

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import obstore
from aiokafka import TopicPartition

from epochscope_runtime.dataset_rows import FileType, RowFormat
from epochscope_runtime.object_store import ObjectStore, StoreSettings, open_store
from epochscope_schemas.config import JobConfig
from epochscope_schemas.events import DatasetObject, JobInputs, JobStartEvent, JobStatusEvent, ModelSource
from epochscope_schemas.topics import JOB_COMMANDS, TRAINING_STATUS


def local_store(folder: Path) -> tuple[StoreSettings, ObjectStore]:
    """A real object store in a folder (obstore's LocalStore), and the settings that open it."""
    settings = StoreSettings(local_dir=folder)
    return settings, open_store(settings)


def jsonl_bytes(rows: list[Any]) -> bytes:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows).encode()


def chat_rows(count: int) -> list[dict[str, Any]]:
    def messages(i: int) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"What is {i} plus {i}?"}, {"role": "assistant", "content": str(2 * i)}]

    return [{"messages": messages(i)} for i in range(count)]


def put_dataset(
    store: ObjectStore,
    data: bytes,
    file_type: FileType = FileType.JSONL,
    row_format: RowFormat = RowFormat.CHAT,
) -> DatasetObject:
    """Store `data` under a content-addressed key, as the API does with an upload; the object the event names."""
    sha256 = hashlib.sha256(data).hexdigest()
    key = f"datasets/{sha256}.{file_type}"
    obstore.put(store, key, data)
    return DatasetObject(
        dataset_id=uuid.uuid4(), key=key, file_type=file_type, row_format=row_format, sha256=sha256, bytes=len(data)
    )


def dir_model(folder: Path, model_id: str = "tiny") -> ModelSource:
    return ModelSource(id=model_id, source=f"dir:{folder}")


TRAINER_ID = "trainer-1"  # the trainer the fake starts are addressed to


def start_event(
    config: dict[str, Any], train: DatasetObject, model: ModelSource, job_id: uuid.UUID | None = None, **inputs: Any
) -> JobStartEvent:
    """A v2 job-start event, addressed to TRAINER_ID as a new attempt; `config` gets the dataset and model ids from
    the inputs."""
    job_config = JobConfig.model_validate({"model": model.id, "dataset_id": str(train.dataset_id)} | config)
    return JobStartEvent(
        job_id=job_id or uuid.uuid4(),
        job_token="token-1",
        user_id="user-1",
        trainer_id=TRAINER_ID,
        attempt_id=uuid.uuid4(),
        config=job_config,
        inputs=JobInputs(model=model, train=train, **inputs),
    )


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
    position: int = 0
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
        offset = self.position  # as a consumer's position: past each record handed out
        if offset == len(self.values):
            self.stopping.set()
            return {}
        self.position += 1
        return {self.tp: [FakeRecord(self.values[offset], offset)]}

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
