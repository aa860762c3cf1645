"""Delivering the events a job's child left in its spool file when it exited."""

import asyncio
from pathlib import Path

from epochscope_runtime.kafka import KafkaSettings
from epochscope_trainer.child_protocol import SPOOL_FILE
from epochscope_trainer.publishing.spooling_publisher import EventPublisher

CLOSE_TIMEOUT_S = 5.0


class SpoolDelivery:
    """Keeps trying, in order, until the spool is out or the service shuts down (the spool stays on disk)."""

    def __init__(self, kafka: KafkaSettings, queue_size: int, stopping: asyncio.Event) -> None:
        self._kafka = kafka
        self._queue_size = queue_size
        self._stopping = stopping

    async def __call__(self, job_dir: Path) -> None:
        publisher = EventPublisher(self._kafka, job_dir / SPOOL_FILE, self._queue_size)
        publisher.start()
        while publisher.pending() and not self._stopping.is_set():
            await asyncio.sleep(1)
        await asyncio.to_thread(publisher.close, CLOSE_TIMEOUT_S)
