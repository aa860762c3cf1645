"""What a checkpoint event names in the object store must be what its job's ids build, never the event's say.

The API streams a checkpoint's files from the key the writer stored, with read-write store credentials: a key
taken from an event as given would let whoever reaches the broker point a job's checkpoint at another user's
objects, and an id taken as given would let it claim another job's checkpoint row first.
"""

from epochscope_schemas.checkpoints import checkpoint_id, checkpoint_key
from epochscope_schemas.events import CheckpointDeletedEvent, CheckpointEvent
from epochscope_writer.domain.dead_letters import DeadLetterReason, Rejection


def foreign_checkpoint(event: CheckpointEvent) -> Rejection | None:
    """A Rejection unless the event's key and id are the ones built from its job id and round."""
    expected = checkpoint_key(event.job_id, event.round_index)
    if event.key != expected:
        return Rejection(DeadLetterReason.FOREIGN_CHECKPOINT, f"key {event.key[:300]!r} is not {expected!r}")
    return foreign_checkpoint_id(event)


def foreign_checkpoint_id(event: CheckpointEvent | CheckpointDeletedEvent) -> Rejection | None:
    """A Rejection unless the event's checkpoint id is the one built from its job id and round."""
    expected = checkpoint_id(event.job_id, event.round_index)
    if event.checkpoint_id != expected:
        detail = f"checkpoint_id {event.checkpoint_id} is not {expected}, its job's for that round"
        return Rejection(DeadLetterReason.FOREIGN_CHECKPOINT, detail)
    return None
