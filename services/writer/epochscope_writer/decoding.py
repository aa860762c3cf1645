"""Turn one raw Kafka record into an event the writer can apply, or the reason it cannot.

Pure functions, no I/O: every way a payload can be wrong ends here as a DeadLetterReason, so the
writer never crashes on input and a poison record never blocks the valid ones behind it.
"""

import json
import math
from dataclasses import dataclass
from datetime import UTC
from typing import Protocol

from pydantic import ValidationError

from epochscope_schemas.events import (
    SCHEMA_VERSION,
    Envelope,
    JobStatusEvent,
    PredictionEvent,
    ProgressEvent,
    RoundSummaryEvent,
    WarningEvent,
    parse_event,
)
from epochscope_schemas.topics import TRAINING_PREDICTIONS, TRAINING_STATUS
from epochscope_writer.dead_letters import DeadLetterReason

PG_INT_MAX = 2**31 - 1
EVENT_TYPES_BY_TOPIC: dict[str, tuple[type[Envelope], ...]] = {
    TRAINING_PREDICTIONS: (PredictionEvent,),
    TRAINING_STATUS: (JobStatusEvent, RoundSummaryEvent, ProgressEvent, WarningEvent),
}
WriterEvent = PredictionEvent | JobStatusEvent | RoundSummaryEvent | ProgressEvent | WarningEvent


class KafkaRecord(Protocol):
    """The fields of aiokafka's ConsumerRecord the writer uses."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class Rejection:
    reason: DeadLetterReason
    detail: str


def decode_record(topic: str, value: bytes | None) -> WriterEvent | Rejection:
    """Parse, validate and check that Postgres can store the event."""
    try:
        document = json.loads(value or b"")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return Rejection(DeadLetterReason.UNDECODABLE, f"not UTF-8 JSON: {exc}")
    if not isinstance(document, dict):
        return Rejection(DeadLetterReason.UNDECODABLE, f"expected a JSON object, got {type(document).__name__}")
    version = document.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        return Rejection(
            DeadLetterReason.UNKNOWN_SCHEMA_VERSION, f"schema_version {version!r}, this writer knows {SCHEMA_VERSION}"
        )
    try:
        event = parse_event(value or b"")
    except ValidationError as exc:
        return Rejection(DeadLetterReason.SCHEMA_INVALID, _summarize(exc))
    allowed = EVENT_TYPES_BY_TOPIC.get(topic, ())
    if not isinstance(event, allowed):
        return Rejection(
            DeadLetterReason.UNEXPECTED_EVENT_TYPE, f"{event.__class__.__name__} is not applied from {topic}"
        )
    problem = _unstorable(event)
    if problem:
        return Rejection(DeadLetterReason.UNSTORABLE_VALUE, problem)
    if event.occurred_at.tzinfo is None:
        event = event.model_copy(update={"occurred_at": event.occurred_at.replace(tzinfo=UTC)})
    return event


def _summarize(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in errors[:5]]
    return "; ".join(parts) + (f" (+{len(errors) - 5} more)" if len(errors) > 5 else "")


def _unstorable(event: WriterEvent) -> str | None:
    """Values that pass the schema but Postgres refuses: NUL in text, int4 overflow, NaN or inf in jsonb."""
    problem = _unstorable_value(event.model_dump(exclude={"event_id", "job_id", "occurred_at"}), "")
    if problem is None and isinstance(event, JobStatusEvent):
        for name, number in event.metrics.items():
            if not math.isfinite(number):
                return f"metrics.{name} is not a finite number"
    return problem


def _unstorable_value(value: object, path: str) -> str | None:
    if isinstance(value, str):
        return f"{path or 'a field'} contains a NUL character" if "\x00" in value else None
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{path} {value} exceeds {PG_INT_MAX}" if value > PG_INT_MAX else None
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _unstorable_value(key, f"{path} key") or _unstorable_value(item, f"{path}.{key}".lstrip("."))
            if problem:
                return problem
    return None
