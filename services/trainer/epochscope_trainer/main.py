"""`epochscope-trainer`: consume job-start events and run each job in a child process.

One job at a time per trainer (one per GPU); scale out with more trainers in the "trainers" group.
The start event's offset is committed only after the child finished, so a trainer killed mid-job
leaves the job to be re-run when a trainer takes the partition again. Cancel events travel on the
same topic; a separate group-less reader sees all of them, so a cancel reaches the trainer that
runs the job while the group consumer is busy.
"""

import asyncio
import ctypes
import ctypes.util
import logging
import os
import signal
import sys
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from epochscope_schemas.events import JobCancelEvent, JobStartEvent, JobStatus, JobStatusEvent, parse_event
from epochscope_schemas.log_config import configure_logging
from epochscope_schemas.topics import JOBS_START, TRAINERS_GROUP, TRAINING_STATUS, dead_letter_topic
from epochscope_trainer.job_runner import CANCEL_FILE, EXIT_UNDELIVERED, SPOOL_FILE
from epochscope_trainer.settings import TrainerSettings
from epochscope_trainer.spooling_publisher import EventPublisher

log = logging.getLogger("epochscope.trainer")

POLL_MS = 500
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class CancelWatcher:
    """Reads every cancel event on the start topic, from the beginning, outside any group."""

    def __init__(self, settings: TrainerSettings) -> None:
        self._consumer = AIOKafkaConsumer(
            JOBS_START, **settings.kafka.client_kwargs(), group_id=None, auto_offset_reset="earliest"
        )
        self.cancelled: set[str] = set()
        self.changed = asyncio.Event()

    async def run(self) -> None:
        await self._consumer.start()
        try:
            async for record in self._consumer:
                try:
                    event = parse_event(record.value or b"")
                except ValidationError:
                    continue  # the group consumer dead-letters it
                if isinstance(event, JobCancelEvent):
                    self.cancelled.add(str(event.job_id))
                    self.changed.set()
        finally:
            await self._consumer.stop()


class Trainer:
    def __init__(self, settings: TrainerSettings) -> None:
        self.settings = settings
        kafka = settings.kafka.client_kwargs()
        self.consumer = AIOKafkaConsumer(
            JOBS_START,
            **kafka,
            group_id=TRAINERS_GROUP,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=1,
        )
        self.producer = AIOKafkaProducer(**kafka, acks="all")
        self.cancels = CancelWatcher(settings)
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        await self.producer.start()
        await self.consumer.start()
        watcher = asyncio.create_task(self.cancels.run())
        log.info("trainer started", extra={"work_dir": str(self.settings.work_dir)})
        try:
            while not self.stopping.is_set():
                batch = await self.consumer.getmany(timeout_ms=POLL_MS, max_records=1)
                for tp, records in batch.items():
                    for record in records:
                        finished = await self.handle(record.value or b"", tp, record.offset)
                        if not finished:
                            return  # shutting down mid-job: leave the offset for the next trainer
                        await self.consumer.commit({tp: record.offset + 1})
        finally:
            watcher.cancel()
            await self.consumer.stop()
            await self.producer.stop()

    async def handle(self, value: bytes, tp: TopicPartition, offset: int) -> bool:
        """Process one record; False when the job was interrupted by a shutdown."""
        try:
            event = parse_event(value)
        except ValidationError as exc:
            log.warning("dead-lettering an invalid record at %s:%d@%d", tp.topic, tp.partition, offset)
            headers = [("reason", f"schema_invalid: {exc.error_count()} error(s)".encode())]
            await self.producer.send_and_wait(dead_letter_topic(JOBS_START), value, headers=headers)
            return True
        if not isinstance(event, JobStartEvent):
            return True  # cancels are the watcher's
        if str(event.job_id) in self.cancels.cancelled:
            await self.publish_status(event, JobStatus.CANCELLED, "cancelled before it started")
            return True
        return await self.run_job(event)

    async def run_job(self, event: JobStartEvent) -> bool:
        job_id = str(event.job_id)
        job_dir = self.settings.work_dir / job_id
        job_dir.mkdir(parents=True, exist_ok=True)
        (job_dir / "config.json").write_text(event.config.model_dump_json(indent=2))
        env = {**os.environ, "JOB_ID": job_id, "JOB_USER_ID": event.user_id, "JOB_TOKEN": event.job_token or ""}
        log.info("starting job %s", job_id, extra={"job_id": job_id})
        with open(job_dir / "job.log", "ab") as job_log:
            try:
                child = await asyncio.create_subprocess_exec(
                    *self.job_command(job_dir),
                    env=env,
                    stdout=job_log,
                    stderr=job_log,
                    preexec_fn=_stop_with_parent,
                )
            except OSError as exc:
                await self.publish_status(event, JobStatus.FAILED, f"cannot start the training process: {exc}")
                return True
            code = await self.supervise(child, job_dir, job_id)
        log.info("job %s exited with %s", job_id, code, extra={"job_id": job_id, "exit_code": code})
        if code == EXIT_UNDELIVERED or (job_dir / SPOOL_FILE).exists():
            await self.deliver_spool(job_dir)
        if self.stopping.is_set() and code != 0:
            return False
        if code not in (0, EXIT_UNDELIVERED):
            await self.publish_status(event, JobStatus.FAILED, f"the training process exited with code {code}")
        return True

    def job_command(self, job_dir: Path) -> list[str]:
        """The child: one process, or torchrun with `processes_per_job` ranks (gloo on CPU, nccl on GPU)."""
        job = ["-m", "epochscope_trainer.job_runner", "--job-dir", str(job_dir)]
        processes = self.settings.processes_per_job
        if processes == 1:
            return [sys.executable, *job]
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", *job]

    async def supervise(self, child: asyncio.subprocess.Process, job_dir: Path, job_id: str) -> int:
        """Wait for the child, passing on a cancel (a file in the job dir) or a shutdown (SIGTERM).

        The partitions are paused meanwhile: polling keeps this member in the group without
        fetching the next job, which waits for this one (one job per trainer).
        """
        self.consumer.pause(*self.consumer.assignment())
        try:
            return await self._supervise(child, job_dir, job_id)
        finally:
            self.consumer.resume(*self.consumer.paused())

    async def _supervise(self, child: asyncio.subprocess.Process, job_dir: Path, job_id: str) -> int:
        cancel_sent = stop_sent = False
        while True:
            try:
                return await asyncio.wait_for(child.wait(), timeout=self.settings.cancel_check_s)
            except TimeoutError:
                pass
            await self.consumer.getmany(timeout_ms=0)
            if self.stopping.is_set() and not stop_sent:
                child.send_signal(signal.SIGTERM)
                stop_sent = True
            elif job_id in self.cancels.cancelled and not cancel_sent:
                log.info("cancelling job %s", job_id)
                (job_dir / CANCEL_FILE).touch()
                cancel_sent = True

    async def deliver_spool(self, job_dir: Path) -> None:
        """Events the job could not deliver before it exited: keep trying, in order, until they are out."""
        publisher = EventPublisher(self.settings.kafka, job_dir / SPOOL_FILE, self.settings.publish_queue_size)
        publisher.start()
        while publisher.pending() and not self.stopping.is_set():
            await asyncio.sleep(1)
        await asyncio.to_thread(publisher.close, 5)

    async def publish_status(self, event: JobStartEvent, status: JobStatus, message: str) -> None:
        status_event = JobStatusEvent(job_id=event.job_id, job_token=event.job_token, status=status, message=message)
        await self.producer.send_and_wait(
            TRAINING_STATUS, status_event.model_dump_json().encode(), key=str(event.job_id).encode()
        )


def _stop_with_parent() -> None:
    """In the child: get SIGTERM (a shutdown, so the job is re-run) if this trainer dies, even by SIGKILL."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


async def serve(settings: TrainerSettings) -> None:
    trainer = Trainer(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, trainer.stopping.set)
    delay = 0.5
    while not trainer.stopping.is_set():
        try:
            await trainer.run()
            return
        except KafkaError as exc:
            log.warning("broker unreachable (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)


def run() -> None:
    settings = TrainerSettings()
    configure_logging("trainer", settings.log_level)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(settings))
