"""The trainer's heartbeat: every few seconds, its id, device, slots and the attempt it runs.

The writer records them in the `trainers` table; the API's dispatcher sends a start only to a trainer whose last
heartbeat is fresh and that has a free slot, and re-dispatches the jobs of one that falls silent (its lease).
A failed send is logged and retried on the next beat: a trainer that cannot heartbeat simply gets no new job.
Each beat is signed with this trainer's own identity key (`heartbeat_signing`), since the capacity and the sealing key
it claims draw jobs and their tokens: no other trainer can send one in its name.
"""

import asyncio
import logging
import os
from collections.abc import Callable
from uuid import UUID

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from epochscope_runtime.heartbeat_signing import signed_heartbeat
from epochscope_schemas.scheduling import TrainerHeartbeat
from epochscope_schemas.topics import TRAINER_HEARTBEATS
from epochscope_trainer.service.kafka_ports import EventProducer

log = logging.getLogger("epochscope.trainer.heartbeats")


def memory_bytes() -> int:
    """The machine's memory (a GPU trainer would announce its device memory instead)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


async def heartbeat_forever(
    producer: EventProducer,
    trainer_id: str,
    device: str,
    interval_s: float,
    identity: Ed25519PrivateKey | None,
    sealing_key: str,
    running: Callable[[], UUID | None],
) -> None:
    """Publish a heartbeat every `interval_s` (one slot: free unless `running()` names an attempt), with the public
    key the dispatcher seals this trainer's job tokens to, signed with `identity` (its id must be bound to it;
    unsigned without one: the writer then records none, so this trainer gets no job)."""
    memory = memory_bytes()
    while True:
        attempt = running()
        beat = TrainerHeartbeat(
            trainer_id=trainer_id,
            device=device,
            memory_bytes=memory,
            slots=1,
            free_slots=0 if attempt else 1,
            attempt_id=attempt,
            sealing_key=sealing_key,
        )
        if identity:
            beat = signed_heartbeat(beat, identity)
        try:
            await producer.send_and_wait(TRAINER_HEARTBEATS, beat.model_dump_json().encode(), key=trainer_id.encode())
        except Exception as exc:  # the broker away: the next beat tries again
            log.warning("heartbeat not sent: %s: %s", type(exc).__name__, exc)
        await asyncio.sleep(interval_s)
