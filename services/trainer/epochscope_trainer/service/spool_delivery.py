"""Delivering a job's spool to the broker: the child writes its events there (it holds no broker credentials)."""

import asyncio
from pathlib import Path

from epochscope_runtime.kafka import KafkaSettings
from epochscope_trainer.child_protocol import SPOOL_FILE, has_spool
from epochscope_trainer.publishing.spooling_publisher import EventPublisher

CLOSE_TIMEOUT_S = 5.0
POLL_S = 0.2


class SpoolDelivery:
    """Delivers a job folder's spool, in order, while its child runs and after: until the child has exited and the
    spool is out, or has exited at a shutdown (what is left stays on disk, for the job's next run)."""

    def __init__(self, kafka: KafkaSettings, queue_size: int, stopping: asyncio.Event) -> None:
        self._kafka = kafka
        self._queue_size = queue_size
        self._stopping = stopping

    async def __call__(self, job_dir: Path, exited: asyncio.Event) -> None:
        """`exited`: set once the child that writes the spool has exited (at once for a spool left behind)."""
        while True:
            done = exited.is_set()  # read before the file: a child that made it and exited is then seen to have
            if has_spool(job_dir):
                break
            if done:
                return
            await asyncio.sleep(POLL_S)
        publisher = EventPublisher(self._kafka, job_dir / SPOOL_FILE, self._queue_size)
        publisher.start()
        # While the child runs (a shutdown's SIGTERM lets it finish its events), then until the spool is out.
        while not exited.is_set() or (publisher.pending() and not self._stopping.is_set()):
            await asyncio.sleep(POLL_S)
        await asyncio.to_thread(publisher.close, CLOSE_TIMEOUT_S)
