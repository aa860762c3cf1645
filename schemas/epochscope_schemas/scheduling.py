"""The trainers' heartbeat: what a trainer tells the queue about its capacity, every few seconds.

Published to `trainers.heartbeats` (keyed by trainer id) and recorded by the writer in the `trainers` table;
the API's dispatcher sends a job only to a trainer whose last heartbeat is fresh and that has a free slot.
Signed with the trainer's own identity key, whose fingerprint begins its trainer id (`heartbeat_signing`): the writer
records no heartbeat it cannot verify against a key it accepts, and none in the name of another key's trainer.
Version 2: the identity key replaced version 1's HMAC under a key every trainer shared.
"""

from datetime import UTC, datetime
from typing import Annotated, Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

HEARTBEAT_SCHEMA_VERSION = 2


class TrainerHeartbeat(BaseModel):
    """One trainer's capacity now: its device, its slots, and the attempt it runs (if any)."""

    model_config = ConfigDict(extra="forbid")

    event_id: UUID = Field(default_factory=uuid4)
    type: Literal["trainer.heartbeat"] = "trainer.heartbeat"
    schema_version: Literal[2] = HEARTBEAT_SCHEMA_VERSION
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    trainer_id: Annotated[str, Field(min_length=1, max_length=200)] = Field(
        description="`<fingerprint of identity_key>.<instance>`: an identity key speaks only for its own trainer ids."
    )
    device: Annotated[str, Field(max_length=200)] = "cpu"
    memory_bytes: Annotated[int, Field(ge=0)] = 0
    slots: Annotated[int, Field(ge=1, le=64)] = 1
    free_slots: Annotated[int, Field(ge=0, le=64)] = 1
    attempt_id: UUID | None = None
    sealing_key: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{43}$")] | None = Field(
        default=None,
        description="The trainer's X25519 public key (url-safe base64 of 32 bytes): the dispatcher seals the job"
        " tokens of the starts it addresses here to it; a trainer without one gets no job.",
    )
    identity_key: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{43}$")] | None = Field(
        default=None,
        description="The trainer's Ed25519 identity public key (url-safe base64 of 32 bytes), which signs this"
        " heartbeat; the writers record it only when they accept this key. None: unsigned.",
    )
    signature: str = Field(
        default="",
        max_length=128,
        description="Ed25519 signature (hex) under the identity key of every other field (`heartbeat_signing`);"
        " empty: unsigned.",
    )
