"""The one place that builds the trainer service's Kafka clients and wires its units together.

Tests pass their own (fake) adapters, child launcher and spool delivery; nothing else changes.
"""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from epochscope_runtime.object_store import open_store
from epochscope_runtime.token_sealing import public_key_text
from epochscope_schemas.topics import JOB_COMMANDS
from epochscope_trainer.child_protocol import job_command
from epochscope_trainer.service.cancel_watcher import CancelWatcher
from epochscope_trainer.service.child_launcher import ChildLauncher, SubprocessLauncher
from epochscope_trainer.service.heartbeats import heartbeat_forever
from epochscope_trainer.service.job_consumer import JobConsumerLoop
from epochscope_trainer.service.job_supervisor import JobSupervisor
from epochscope_trainer.service.kafka_ports import EventProducer, JobConsumer, RecordStream
from epochscope_trainer.service.spool_delivery import SpoolDelivery
from epochscope_trainer.service.status_publisher import StatusPublisher
from epochscope_trainer.service.warm_launcher import WarmLauncher
from epochscope_trainer.settings import TrainerSettings


@dataclass(frozen=True)
class KafkaAdapters:
    jobs: JobConsumer  # every start, outside any group, one at a time: the trainer runs those addressed to it
    cancels: RecordStream  # every cancel event, from the beginning, outside any group
    producer: EventProducer


def kafka_adapters(settings: TrainerSettings) -> KafkaAdapters:
    """aiokafka clients for the configured broker (built inside the event loop that uses them)."""
    kafka = settings.kafka.client_kwargs()
    return KafkaAdapters(
        jobs=AIOKafkaConsumer(
            JOB_COMMANDS,
            **kafka,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=1,
        ),
        cancels=AIOKafkaConsumer(JOB_COMMANDS, **kafka, group_id=None, auto_offset_reset="earliest"),
        producer=AIOKafkaProducer(**kafka, acks="all"),
    )


def child_launcher(settings: TrainerSettings) -> ChildLauncher:
    """A one-process job's child forked from a warm process; torchrun's ranks started afresh, as torchrun does."""
    if settings.processes_per_job == 1:
        return WarmLauncher()
    return SubprocessLauncher(partial(job_command, processes=settings.processes_per_job))


def bootstrap(
    settings: TrainerSettings,
    stopping: asyncio.Event,
    launcher: ChildLauncher,
    adapters: KafkaAdapters | None = None,
    deliver_spool: Callable[[Path, asyncio.Event], Awaitable[None]] | None = None,
) -> JobConsumerLoop:
    """The service, ready to run: real Kafka clients and spool delivery unless others are given. The launcher
    outlives a run (the caller closes it): a broker outage restarts the service, not the warm process."""
    if settings.store is None:
        raise ValueError("the trainer service needs its object store (EPOCHSCOPE_STORE_*): it stages the inputs")
    adapters = adapters or kafka_adapters(settings)
    status = StatusPublisher(adapters.producer)
    cancels = CancelWatcher(adapters.cancels)
    supervisor = JobSupervisor(
        work_dir=settings.work_dir,
        check_s=settings.cancel_check_s,
        cancel_grace_s=settings.cancel_grace_s,
        launcher=launcher,
        stop_reason=cancels.stop_reason,
        stopping=stopping,
        status=status,
        deliver_spool=deliver_spool or SpoolDelivery(settings.kafka, settings.publish_queue_size, stopping),
        store=open_store(settings.store),
        keep_job_dirs=settings.keep_job_dirs,
    )
    sealing_key = settings.sealing_key_pair() or X25519PrivateKey.generate()  # in memory only, by default
    trainer_id = settings.trainer_id()
    heartbeat = None
    if settings.heartbeat_s > 0:  # 0: never heartbeats, so the dispatcher never sends it a job
        heartbeat = partial(
            heartbeat_forever,
            adapters.producer,
            trainer_id,
            settings.device,
            settings.heartbeat_s,
            settings.identity(),
            public_key_text(sealing_key),
        )
    return JobConsumerLoop(
        adapters.jobs,
        adapters.producer,
        cancels,
        supervisor,
        status,
        stopping,
        keep_alive_s=settings.cancel_check_s,
        trainer_id=trainer_id,
        sealing_key=sealing_key,
        heartbeat=heartbeat,
        dispatch_keys=settings.start_verifying_keys(),
    )
