"""The trainers' heartbeats into the trainer roster (the capacity the API's dispatcher reads), beside the batches.

Until told to stop: fetch the heartbeats, keep the newest verified one per trainer (domain/heartbeats.py), publish
a dead letter for each refused one, record the rest. Broker or database trouble is logged and retried after a
pause, from a fresh start; nothing here stops the writer. The broker and the roster are ports, built in bootstrap.
"""

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from epochscope_runtime.heartbeat_signing import AcceptedTrainerKeys
from epochscope_writer.domain.heartbeats import verified_newest
from epochscope_writer.service_layer.ports import HeartbeatBroker, TrainerRoster, Unavailable

log = logging.getLogger("epochscope.writer.heartbeats")


class HeartbeatRecorder:
    def __init__(
        self,
        broker: HeartbeatBroker,
        roster: TrainerRoster,
        accepted: AcceptedTrainerKeys,
        max_age: timedelta,
        retry_s: float,
    ) -> None:
        self._broker = broker
        self._roster = roster
        self._accepted = accepted
        self._max_age = max_age
        self._retry_s = retry_s

    async def run(self, stopping: asyncio.Event) -> None:
        try:
            while not stopping.is_set():
                try:
                    await self._broker.start()
                    while not stopping.is_set():
                        await self._record_once()
                except Unavailable as exc:
                    log.warning("heartbeats: %s; retrying", exc)
                    await self._broker.stop()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stopping.wait(), timeout=self._retry_s)
        finally:
            await self._broker.stop()
            await self._roster.close()

    async def _record_once(self) -> None:
        records = await self._broker.fetch()
        beats, refused = verified_newest(records, self._accepted, self._max_age, datetime.now(UTC))
        for letter in refused:
            log.warning("heartbeat dead-lettered: %s: %s", letter.reason, letter.detail)
        await self._broker.publish_dead_letters(refused)
        await self._roster.record(beats)
