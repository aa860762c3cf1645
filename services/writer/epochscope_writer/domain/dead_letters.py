"""Dead-letter records: what the writer publishes to `<topic>.dlq` for an event it refuses.

A dead letter never carries a job token: a top-level `job_token` is removed from the payload, and the detail says
so; the rest of the record is kept as it was.
"""

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from epochscope_runtime.command_signing import without_job_token
from epochscope_writer.domain.records import KafkaRecord

TOKEN_REMOVED = " (job_token removed from the payload)"


class DeadLetterReason(StrEnum):
    UNDECODABLE = "undecodable"  # not UTF-8 JSON, or not a JSON object
    UNKNOWN_SCHEMA_VERSION = "unknown_schema_version"
    SCHEMA_INVALID = "schema_invalid"
    UNEXPECTED_EVENT_TYPE = "unexpected_event_type"  # a valid event on a topic the writer does not apply it from
    UNSTORABLE_VALUE = "unstorable_value"  # valid JSON Postgres cannot hold (NUL in text, integer overflow)
    INVALID_TOKEN = "invalid_token"  # missing, forged, malformed, or for another job or attempt (never for its age)
    JOB_DELETED = "job_deleted"  # a correctly signed token, but its job row is gone: deletion revokes the token
    OWNER_MISMATCH = "owner_mismatch"  # the token's user is not the job's owner
    REJECTED_BY_DATABASE = "rejected_by_database"  # a constraint refused this one event
    STALE_ATTEMPT = "stale_attempt"  # the event's attempt is not the job's current dispatch (fencing)
    FOREIGN_CHECKPOINT = "foreign_checkpoint"  # a checkpoint's key or id not the one built from its job's ids
    INVALID_SIGNATURE = "invalid_signature"  # a heartbeat unsigned, or whose signature its named key does not verify
    UNACCEPTED_TRAINER_KEY = "unaccepted_trainer_key"  # a heartbeat signed with a key the writer does not accept
    TRAINER_ID_NOT_BOUND = "trainer_id_not_bound"  # a heartbeat for a trainer id not bound to its key (impersonation)
    STALE_HEARTBEAT = "stale_heartbeat"  # a signed heartbeat too far from the writer's clock (a replay, a bad clock)
    PREDICTIONS_QUOTA = "predictions_quota"  # storing it would pass its owner's stored-predictions quota


@dataclass(frozen=True)
class Rejection:
    """Why a record is refused: its dead letter's reason and detail."""

    reason: DeadLetterReason
    detail: str


class DeadLetter(BaseModel):
    """One refused Kafka record, with enough to inspect and replay it."""

    reason: DeadLetterReason
    detail: str = Field(max_length=2000)
    topic: str
    partition: int
    offset: int
    key: str | None = None
    payload_base64: str = Field(
        description="The original record value, byte for byte, except that a job_token is removed (see detail)."
    )
    dead_lettered_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def for_record(cls, record: KafkaRecord, reason: DeadLetterReason, detail: str) -> "DeadLetter":
        payload, stripped = without_job_token(record.value)
        if stripped:
            detail = detail[: 2000 - len(TOKEN_REMOVED)] + TOKEN_REMOVED
        return cls(
            reason=reason,
            detail=detail[:2000],
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key.decode("utf-8", "replace") if record.key is not None else None,
            payload_base64=base64.b64encode(payload).decode(),
        )

    def payload(self) -> bytes:
        return base64.b64decode(self.payload_base64)
