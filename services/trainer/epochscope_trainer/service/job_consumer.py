"""The consumer loop: take one job-start event at a time and run it.

One job at a time per trainer (one per GPU). Every trainer reads every start outside any group and runs only those
the API's dispatcher addressed to it (its `trainer_id`), each attempt once; the queue's truth is Postgres, so no
offset is committed, and a trainer killed mid-job loses its lease (heartbeats) and the dispatcher sends the job again.
With the dispatcher's public keys, a start addressed here is checked against the dispatcher's Ed25519 signature
before anything in it is read (its inputs, its token): one unsigned or forged is dead-lettered with the reason, and
nothing of it is used. Its job token comes sealed for this trainer's key (`token_sealing`): one that does not open
here (sealed for another trainer, or moved from another start) is dead-lettered too; with the public keys set, a
start with its token in the clear is refused.

Cancels are read here too, once per group: one that does not verify against the job's start event is
dead-lettered with the reason (the cancel watcher has already ignored it). A start whose attempt the dispatcher has
already fenced (its cancel read first: a start held up past the dispatcher's timeout, say) is not run; a start of a
job its user cancelled is reported cancelled. A dead letter never carries a
job token: it is removed from the record first, and the reason says so.
"""

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from uuid import UUID

from aiokafka import TopicPartition
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pydantic import ValidationError

from epochscope_runtime.command_signing import start_refusal, without_job_token
from epochscope_runtime.token_sealing import Unsealable, binding, open_sealed
from epochscope_schemas.events import (
    JOB_CANCEL_SCHEMA_VERSION,
    JOB_START_SCHEMA_VERSION,
    JobCancelEvent,
    JobStartEvent,
    JobStatus,
    parse_event,
)
from epochscope_schemas.topics import JOB_COMMANDS, dead_letter_topic
from epochscope_trainer.service.cancel_watcher import CancelWatcher
from epochscope_trainer.service.job_supervisor import JobSupervisor
from epochscope_trainer.service.kafka_ports import EventProducer, JobConsumer
from epochscope_trainer.service.status_publisher import StatusPublisher

log = logging.getLogger("epochscope.trainer")

POLL_MS = 500
NOT_MINE = "cancel_unverifiable"  # the cancel watcher's reason for a cancel of a job this trainer never started
# The versions of the commands this trainer reads: job.start v1 named server paths, v2 names object keys and a model
# source; job.cancel v1 carried no signature, v2 is signed with the job's token.
COMMAND_VERSIONS = {"job.start": JOB_START_SCHEMA_VERSION, "job.cancel": JOB_CANCEL_SCHEMA_VERSION}


class JobConsumerLoop:
    """Owns the Kafka clients' lifetime; hands each start event to the supervisor.

    Args:
        consumer: a consumer of the start topic outside any group, from the beginning.
        trainer_id: this trainer's id; only the starts the dispatcher addressed to it run.
        producer: for dead letters (and, through `status`, the service's status events).
        cancels: the cancel watcher, run beside the loop.
        supervisor: runs one job to its end.
        status: publishes the service's own status events.
        stopping: set when the service shuts down.
        keep_alive_s: how often the paused consumer polls while a job runs.
        sealing_key: this trainer's X25519 private key: opens the job tokens sealed for it.
        dispatch_keys: the dispatcher's public keys; set, only starts one of them signed are read.
    """

    def __init__(
        self,
        consumer: JobConsumer,
        producer: EventProducer,
        cancels: CancelWatcher,
        supervisor: JobSupervisor,
        status: StatusPublisher,
        stopping: asyncio.Event,
        keep_alive_s: float,
        trainer_id: str,
        sealing_key: X25519PrivateKey,
        heartbeat: Callable[[Callable[[], UUID | None]], Awaitable[None]] | None = None,
        dispatch_keys: list[Ed25519PublicKey] | None = None,
    ) -> None:
        self.consumer = consumer
        self.producer = producer
        self.cancels = cancels
        self.supervisor = supervisor
        self.status = status
        self.stopping = stopping
        self.keep_alive_s = keep_alive_s
        self.trainer_id = trainer_id  # every start is read, outside any group; only those addressed here run
        self.attempts_run: set[UUID | None] = set()  # a start delivered twice runs once
        self.running_attempt: UUID | None = None
        self.heartbeat = heartbeat  # run beside the loop, told which attempt runs
        self.sealing_key = sealing_key
        self.dispatch_keys = dispatch_keys  # set: only starts the dispatcher signed are read

    async def run(self) -> None:
        await self.producer.start()
        await self.consumer.start()
        watcher = asyncio.create_task(self.cancels.run())
        beats = asyncio.create_task(self.heartbeat(lambda: self.running_attempt)) if self.heartbeat else None
        log.info("trainer started", extra={"work_dir": str(self.supervisor.work_dir)})
        try:
            while not self.stopping.is_set():
                batch = await self.consumer.getmany(timeout_ms=POLL_MS, max_records=1)
                for tp, records in batch.items():
                    for record in records:
                        finished = await self.handle(record.value or b"", tp, record.offset)
                        if not finished:
                            return  # shutting down mid-job: the dispatcher sends the job again
        finally:
            watcher.cancel()
            if beats is not None:
                beats.cancel()
            await self.consumer.stop()
            await self.producer.stop()

    async def handle(self, value: bytes, tp: TopicPartition, offset: int) -> bool:
        """Process one record; False when the job was interrupted by a shutdown."""
        reason = unsupported_version(value)
        start = _start_document(value) if reason is None else None
        if start is not None:
            addressee = start.get("trainer_id")
            if isinstance(addressee, str) and addressee != self.trainer_id:
                return True  # another trainer's start: not read
            if self.dispatch_keys is not None:
                reason = start_refusal(start, self.dispatch_keys)
        if reason is None:
            try:
                event = parse_event(value)
            except ValidationError as exc:
                reason = f"schema_invalid: {exc.error_count()} error(s)"
        if reason is None and isinstance(event, JobStartEvent) and event.trainer_id == self.trainer_id:
            event, reason = self._with_token(event)
        if reason is None and isinstance(event, JobCancelEvent):
            reason = self.cancels.refusal(event)  # a verified cancel is the watcher's to pass on
            if reason and reason.startswith(NOT_MINE):
                return True  # every trainer reads every cancel: the one that ran the job's start judges it
        if reason is not None:
            await self._dead_letter(value, reason, tp, offset)
            return True
        if not isinstance(event, JobStartEvent):
            return True
        if event.trainer_id != self.trainer_id or event.attempt_id in self.attempts_run:
            return True  # another trainer's start, or this attempt again: the job runs once
        self.attempts_run.add(event.attempt_id)
        self.cancels.track(event)
        if str(event.job_id) in self.cancels.cancelled:
            await self.status.publish(event, JobStatus.CANCELLED, "cancelled before it started")
            return True
        if event.attempt_id in self.cancels.fenced:  # its job is queued or runs elsewhere: no status of this attempt
            log.info("not running job %s: its attempt %s was fenced", event.job_id, event.attempt_id)
            return True
        return await self._run_paused(event)

    def _with_token(self, event: JobStartEvent) -> tuple[JobStartEvent, str | None]:
        """The start with its job token opened (sealed for this trainer), or why it cannot be run."""
        if event.sealed_job_token is None:
            if self.dispatch_keys is not None and event.job_token:
                return event, "start_token_in_clear: a signed start carries its job token sealed for its trainer"
            return event, None  # development without the dispatcher's keys: a token in the clear is taken
        try:
            token = open_sealed(
                event.sealed_job_token, self.sealing_key, binding(event.job_id, event.attempt_id, event.trainer_id)
            )
        except Unsealable as exc:
            return event, f"token_unsealable: {exc}"
        return event.model_copy(update={"job_token": token, "sealed_job_token": None}), None

    async def _dead_letter(self, value: bytes, reason: str, tp: TopicPartition, offset: int) -> None:
        log.warning("dead-lettering a record at %s:%d@%d: %s", tp.topic, tp.partition, offset, reason)
        value, stripped = without_job_token(value)
        if stripped:
            reason += " (job_token removed from the payload)"
        headers = [("reason", reason.encode())]
        await self.producer.send_and_wait(dead_letter_topic(JOB_COMMANDS), value, headers=headers)

    async def _run_paused(self, event: JobStartEvent) -> bool:
        """Run the job with the partitions paused: polling keeps this member in the group without
        fetching the next job, which waits for this one (one job per trainer)."""
        self.consumer.pause(*self.consumer.assignment())
        keep_alive = asyncio.create_task(self._keep_alive())
        self.running_attempt = event.attempt_id
        try:
            return await self.supervisor.run(event)
        finally:
            self.running_attempt = None
            keep_alive.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keep_alive
            self.consumer.resume(*self.consumer.paused())

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self.keep_alive_s)
            await self.consumer.getmany(timeout_ms=0)


def _start_document(value: bytes) -> dict | None:
    """The record as a JSON object when it is a job start, else None."""
    try:
        document = json.loads(value)
    except ValueError:
        return None
    return document if isinstance(document, dict) and document.get("type") == "job.start" else None


def unsupported_version(value: bytes) -> str | None:
    """The reason to refuse a command of a schema version this trainer does not read (COMMAND_VERSIONS), or None
    for anything else."""
    try:
        data = json.loads(value)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("type") not in COMMAND_VERSIONS:
        return None
    kind, version = data["type"], data.get("schema_version")
    known = COMMAND_VERSIONS[kind]
    if isinstance(version, int) and version != known:
        return f"unsupported_schema_version: {kind} v{version}; this trainer reads v{known}"
    return None
