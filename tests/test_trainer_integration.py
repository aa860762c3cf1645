"""The trainer service against a real broker (Tansu) and a real object store (a local folder): v2 start events
published as the API's outbox relay would, datasets read by key, events read back from Kafka. Cancel, a crash
mid-job, eval rounds, warnings, failures, broker outages. (The API and the writer are covered end to end by
tests/test_end_to_end.py.)"""

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from start_keys import (
    DISPATCH_PUBLIC_KEY,
    SIGNING_KEY,
    TRAINER_SEALING_KEY,
    TRAINER_SEALING_PUBLIC,
    dispatched,
    new_sealing_key,
)
from trainer_fakes import TRAINER_ID, chat_rows, dir_model, jsonl_bytes, local_store, put_dataset, start_event

from epochscope.broker import TansuBroker, ensure_topics
from epochscope.ports import free_port
from epochscope_runtime.command_signing import signed_cancel
from epochscope_runtime.dispatch_keys import load_private_key, new_key_pair
from epochscope_runtime.kafka import KafkaSettings
from epochscope_runtime.object_store import ObjectStore
from epochscope_schemas.events import (
    DatasetObject,
    Envelope,
    JobCancelEvent,
    JobStartEvent,
    JobStatusEvent,
    PredictionEvent,
    ProgressEvent,
    RoundSummaryEvent,
    WarningEvent,
    encode_event,
    parse_event,
)
from epochscope_schemas.topics import JOB_COMMANDS, TRAINING_PREDICTIONS, TRAINING_STATUS, dead_letter_topic
from epochscope_trainer.publishing.spool_store import Spool
from epochscope_trainer.publishing.spooling_publisher import EventPublisher

pytestmark = pytest.mark.stack

JOB_TIMEOUT_S = 300
TRAINER = Path(sys.executable).with_name("epochscope-trainer")


@dataclass
class TrainerStack:
    """A broker, a store folder, one trainer service process and every event it published, as it arrives."""

    root: Path
    broker: TansuBroker
    store: ObjectStore
    env: dict[str, str]
    events: list[Envelope] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.root / "trainer.log"

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([str(TRAINER)], env=self.env, stdout=log, stderr=log)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(150)

    def of(self, job_id: uuid.UUID, kind: type[Envelope] = Envelope) -> list[Any]:
        return [e for e in self.events if e.job_id == job_id and isinstance(e, kind)]

    async def until(self, check: Callable[[], bool], what: str, timeout: float = JOB_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting for {what}; see {self.log_path}"
            await asyncio.sleep(0.2)

    def final(self, job_id: uuid.UUID) -> JobStatusEvent | None:
        return next((e for e in self.of(job_id, JobStatusEvent) if e.status.is_final), None)

    async def finished(self, job_id: uuid.UUID) -> JobStatusEvent:
        await self.until(lambda: self.final(job_id) is not None, f"job {job_id} to finish")
        final = self.final(job_id)
        assert final is not None
        return final

    async def send(
        self, event: Envelope, signing_key: Ed25519PrivateKey | None = SIGNING_KEY, sealed_for: str | None = None
    ) -> None:
        """Publish the command; a start as the dispatcher sends it: its token sealed for this trainer (or the
        `sealed_for` public key), signed with `signing_key` (None: unsigned, its token in the clear)."""
        if isinstance(event, JobStartEvent) and signing_key is not None:
            event = dispatched(event, sealed_for or TRAINER_SEALING_PUBLIC, signing_key)
        producer = AIOKafkaProducer(bootstrap_servers=self.broker.bootstrap_servers)
        await producer.start()
        try:
            await producer.send_and_wait(JOB_COMMANDS, encode_event(event), key=str(event.job_id).encode())
        finally:
            await producer.stop()

    async def collect(self) -> None:
        consumer = AIOKafkaConsumer(
            TRAINING_STATUS,
            TRAINING_PREDICTIONS,
            bootstrap_servers=self.broker.bootstrap_servers,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=500)
                self.events += [parse_event(r.value or b"") for records in batch.values() for r in records]
        finally:
            await consumer.stop()


@pytest.fixture(scope="module")
async def stack() -> AsyncIterator[TrainerStack]:
    root = Path(tempfile.mkdtemp(prefix="epochscope-trainer-stack-"))
    broker = TansuBroker(root / "broker.log")
    broker.start()
    store_settings, store = local_store(root / "store")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("EPOCHSCOPE_")},
        "EPOCHSCOPE_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
        "EPOCHSCOPE_STORE_LOCAL_DIR": str(store_settings.local_dir),
        # Credentials a folder store ignores: the service holds them, the job's child never does
        # (test_trainer_store_access.py).
        "EPOCHSCOPE_STORE_SECRET_ACCESS_KEY": "store-secret-the-job-must-never-hold-0123456789",
        "EPOCHSCOPE_TRAINER_WORK_DIR": str(root / "work"),
        "EPOCHSCOPE_TRAINER_MODEL_CACHE_DIR": str(root / "models"),
        "EPOCHSCOPE_TRAINER_CANCEL_CHECK_S": "0.2",
        # No dispatcher here: the test publishes starts addressed to this trainer and signed, as the dispatcher would.
        "EPOCHSCOPE_TRAINER_INSTANCE": TRAINER_ID,  # no identity key: its trainer id is the bare instance
        "EPOCHSCOPE_DISPATCH_PUBLIC_KEYS": DISPATCH_PUBLIC_KEY,
        "EPOCHSCOPE_TRAINER_SEALING_KEY": TRAINER_SEALING_KEY,  # so the test can seal for it, as the dispatcher would
        "EPOCHSCOPE_TRAINER_HEARTBEAT_S": "0",
        "OMP_NUM_THREADS": "1",
    }
    stack = TrainerStack(root, broker, store, env)
    collector: asyncio.Task[None] | None = None
    try:
        await ensure_topics(broker.bootstrap_servers, partitions=1)
        collector = asyncio.create_task(stack.collect())
        stack.start()
        yield stack
    finally:
        stack.stop()
        if collector is not None:
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector
        broker.stop()


@pytest.fixture(scope="module")
def train(stack: TrainerStack) -> DatasetObject:
    return put_dataset(stack.store, jsonl_bytes(chat_rows(40)))


def long_job(**extra: Any) -> dict[str, Any]:
    """Thousands of tiny steps: long enough to cancel or crash in the middle."""
    predictions = {"enabled": True, "sample_count": 2, "max_new_tokens": 4} | extra.pop("predictions", {})
    config = {"num_epochs": 60, "batch_size": 1, "learning_rate": 1e-3, "max_length": 32}
    return config | {"predictions": predictions} | extra


async def command_dead_letters(stack: TrainerStack, job_id: uuid.UUID, count: int) -> list[str]:
    """The reasons of the dead letters of jobs.commands about this job, in order (waits for `count`)."""
    consumer = AIOKafkaConsumer(
        dead_letter_topic(JOB_COMMANDS), bootstrap_servers=stack.broker.bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    reasons: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while len(reasons) < count and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                reasons += [
                    dict(r.headers)["reason"].decode() for r in records if json.loads(r.value)["job_id"] == str(job_id)
                ]
    finally:
        await consumer.stop()
    return reasons


async def run_until_step(stack: TrainerStack, event: JobStartEvent, step: int) -> None:
    await stack.send(event)
    await stack.until(
        lambda: any(p.step >= step for p in stack.of(event.job_id, ProgressEvent)), f"step {step} of {event.job_id}"
    )


async def test_a_forged_or_unsigned_start_is_dead_lettered_with_its_reason_and_nothing_of_it_is_read(
    stack: TrainerStack, tiny_model_dir: Path, train: DatasetObject
) -> None:
    starts = [start_event(long_job(num_epochs=1), train, dir_model(tiny_model_dir)) for _ in "abcd"]
    forged, unsigned, not_mine, genuine = starts
    await stack.send(forged, signing_key=load_private_key(new_key_pair()[0]))  # a key the dispatcher does not hold
    await stack.send(unsigned, signing_key=None)
    await stack.send(not_mine, sealed_for=new_sealing_key()[1])  # signed, its token sealed for another trainer
    await stack.send(genuine)
    assert await command_dead_letters(stack, forged.job_id, 1) == [
        "start_forged: the signature does not verify against the dispatcher's public key(s)"
        " (job_token removed from the payload)"
    ]
    assert await command_dead_letters(stack, unsigned.job_id, 1) == [
        "start_unsigned: no signature (job_token removed from the payload)"
    ]
    assert await command_dead_letters(stack, not_mine.job_id, 1) == [
        "token_unsealable: the token was not sealed for this trainer's key (or not for this start)"
        " (job_token removed from the payload)"
    ]
    final = await stack.finished(genuine.job_id)  # the trainer went on to the next start, and ran it
    assert final.status == "completed", final.message
    work_dir = Path(stack.env["EPOCHSCOPE_TRAINER_WORK_DIR"])
    for refused in (forged, unsigned, not_mine):
        assert stack.of(refused.job_id, JobStatusEvent) == []  # never run, never reported
        assert not (work_dir / str(refused.job_id)).exists()  # its inputs never written, its dataset never read
        assert f"starting job {refused.job_id}" not in stack.log_path.read_text()


async def test_a_forged_cancel_is_ignored_and_dead_lettered_and_a_signed_one_stops_the_job(
    stack: TrainerStack, tiny_model_dir: Path, train: DatasetObject
) -> None:
    event = start_event(long_job(), train, dir_model(tiny_model_dir))
    await run_until_step(stack, event, 5)
    await stack.send(JobCancelEvent(job_id=event.job_id, user_id="user-1"))  # anyone can publish this one
    await stack.send(signed_cancel(event.job_id, "user-1", "a-guessed-token"))
    steps = len(stack.of(event.job_id, ProgressEvent))
    await stack.until(lambda: len(stack.of(event.job_id, ProgressEvent)) > steps + 10, "the job to go on")
    assert stack.final(event.job_id) is None
    await stack.send(signed_cancel(event.job_id, "user-1", event.job_token or ""))
    final = await stack.finished(event.job_id)
    assert (final.status, final.message) == ("cancelled", "cancelled by the user")
    job_dir = stack.root / "work" / str(event.job_id)
    await stack.until(lambda: not job_dir.exists(), "the job's folder to be removed", timeout=30)
    letters = await command_dead_letters(stack, event.job_id, count=2)
    assert letters == [
        "cancel_unsigned: no signature",
        "cancel_forged: the signature does not verify against the job's start event",
    ]


async def test_eval_rounds_and_a_warning_for_an_empty_samples_dataset(
    stack: TrainerStack, tiny_model_dir: Path, train: DatasetObject
) -> None:
    model = dir_model(tiny_model_dir)
    evaluated = start_event(
        long_job(num_epochs=2, batch_size=8, eval_fraction=0.25, predictions={"sample_frequency": "eval"}), train, model
    )
    empty = put_dataset(stack.store, b"")
    warned = start_event(
        long_job(num_epochs=1, batch_size=8, predictions={"samples_dataset_id": str(empty.dataset_id)}),
        train,
        model,
        samples=empty,
    )
    await stack.send(evaluated)
    await stack.send(warned)
    assert (await stack.finished(evaluated.job_id)).status == "completed"
    assert (await stack.finished(warned.job_id)).status == "completed"
    assert sorted({p.epoch for p in stack.of(evaluated.job_id, PredictionEvent)}) == [0.0, 1.0, 2.0]
    assert sorted(r.trigger for r in stack.of(evaluated.job_id, RoundSummaryEvent)) == ["baseline", "eval", "eval"]
    assert stack.of(warned.job_id, PredictionEvent) == []
    assert [w.code for w in stack.of(warned.job_id, WarningEvent)] == ["samples_empty"]


async def test_a_child_without_broker_settings_completes_and_the_service_delivers_its_predictions(
    stack: TrainerStack, tiny_model_dir: Path, train: DatasetObject
) -> None:
    """The child gets no EPOCHSCOPE_KAFKA_* setting but the message limit (`child_env`) and writes its events to its
    spool only; the trainer service delivers them: the job completes, every round's predictions on the broker."""
    event = start_event(long_job(num_epochs=1, batch_size=8), train, dir_model(tiny_model_dir))
    await stack.send(event)
    assert (await stack.finished(event.job_id)).status == "completed"

    def delivered() -> bool:
        rounds = stack.of(event.job_id, RoundSummaryEvent)
        return bool(rounds) and len(stack.of(event.job_id, PredictionEvent)) == 2 * len(rounds)  # 2 samples each

    await stack.until(delivered, "every round's predictions")
    await stack.until(lambda: not (stack.root / "work" / str(event.job_id)).exists(), "the job folder to go")


async def test_a_failing_job_reports_the_error_class_without_a_traceback(
    stack: TrainerStack, train: DatasetObject, tmp_path: Path
) -> None:
    broken_model = tmp_path / "not-a-model"
    broken_model.mkdir()
    missing = train.model_copy(update={"key": "datasets/deleted.jsonl"})
    broken = start_event(long_job(num_epochs=1), train, dir_model(broken_model))
    unreadable = start_event(long_job(num_epochs=1), missing, dir_model(broken_model.parent))
    for event in (broken, unreadable):
        await stack.send(event)
    finals = [await stack.finished(broken.job_id), await stack.finished(unreadable.job_id)]
    assert [f.status for f in finals] == ["failed", "failed"]
    assert finals[0].message and finals[0].message.startswith(("OSError:", "ValueError:")), finals[0].message
    assert finals[1].message == (
        f"InputError: train dataset {train.dataset_id}: object datasets/deleted.jsonl is not in the store"
    )
    assert not any("Traceback" in (f.message or "") for f in finals)


async def test_events_published_while_the_broker_is_down_are_spooled_and_delivered_in_order(
    tmp_path: Path,
) -> None:
    port = free_port()
    spool = tmp_path / "spool.sqlite"
    publisher = EventPublisher(KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}"), spool, queue_size=10)
    publisher.start()
    job_id = uuid.uuid4()
    events = [JobStatusEvent(job_id=job_id, status="running", message=f"event {i}") for i in range(40)]
    for event in events:
        publisher.publish(TRAINING_STATUS, event)  # never blocks, broker or not
    await asyncio.sleep(2)
    on_disk = Spool(spool)
    assert publisher.pending() == 40 and len(on_disk) == 40
    on_disk.close()
    broker = TansuBroker(tmp_path / "broker.log", port=port)
    broker.start()
    try:
        await ensure_topics(broker.bootstrap_servers, partitions=1)
        assert await asyncio.to_thread(publisher.close, 60) == 0
        consumer = AIOKafkaConsumer(
            TRAINING_STATUS, bootstrap_servers=broker.bootstrap_servers, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            received: list[str] = []
            deadline = time.monotonic() + 20
            while len(received) < 40 and time.monotonic() < deadline:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    received += [json.loads(r.value)["message"] for r in records]
        finally:
            await consumer.stop()
    finally:
        broker.stop()
    assert received == [f"event {i}" for i in range(40)]
    assert not spool.exists()  # delivered: an empty spool leaves no file
