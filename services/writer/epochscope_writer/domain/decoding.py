"""Turn one raw Kafka record into an event the writer can apply, or the reason it cannot.

Pure functions, no I/O: every way a payload can be wrong ends here as a DeadLetterReason, so the
writer never crashes on input and a poison record never blocks the valid ones behind it.
"""

import json
import math
from datetime import UTC
from functools import cache

import msgspec
from pydantic import ValidationError

from epochscope_schemas.events import (
    EVENTS_BY_TOPIC,
    SCHEMA_VERSION,
    CheckpointEvent,
    Envelope,
    JobStatusEvent,
    PredictionEvent,
    parse_event,
)
from epochscope_schemas.topics import TRAINING_PREDICTIONS
from epochscope_writer.domain.dead_letters import DeadLetterReason, Rejection
from epochscope_writer.domain.prediction_struct import PG_INT_MAX, PredictionStruct, decode_prediction, from_event

# What decode_record hands on: a contract event, or a prediction in the form the writer carries (prediction_struct.py).
Decoded = Envelope | PredictionStruct


def decode_record(topic: str, value: bytes | None) -> Decoded | Rejection:
    """Parse, validate, check that the event travels on `topic` (`EVENTS_BY_TOPIC`) and that Postgres can store it.

    A prediction is decoded by the strict msgspec subset of its contract first (prediction_struct.py); what that
    refuses, and every other event, by pydantic. The valid path parses once; only a payload that fails is parsed
    again, to name the reason: not JSON, not an object, an unknown schema version, or the schema itself.
    """
    raw = value or b""
    if topic == TRAINING_PREDICTIONS and (prediction := decode_prediction(raw)) is not None:
        # Its ints fit int4 and its floats are finite (else it was refused): only a NUL is left to look for.
        problem = _nul_in(msgspec.to_builtins(prediction), "") if b"\\u0000" in raw else None
        return Rejection(DeadLetterReason.UNSTORABLE_VALUE, problem) if problem else prediction
    try:
        event = parse_event(raw)
    except ValidationError as exc:
        return _diagnose(raw, exc)
    if type(event) not in EVENTS_BY_TOPIC.get(topic, ()):
        return Rejection(
            DeadLetterReason.UNEXPECTED_EVENT_TYPE, f"{event.__class__.__name__} is not applied from {topic}"
        )
    problem = _unstorable(event, raw)
    if problem:
        return Rejection(DeadLetterReason.UNSTORABLE_VALUE, problem)
    if event.occurred_at.tzinfo is None:
        event = event.model_copy(update={"occurred_at": event.occurred_at.replace(tzinfo=UTC)})
    return from_event(event) if isinstance(event, PredictionEvent) else event


def _diagnose(raw: bytes, exc: ValidationError) -> Rejection:
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as decode_error:
        return Rejection(DeadLetterReason.UNDECODABLE, f"not UTF-8 JSON: {decode_error}")
    if not isinstance(document, dict):
        return Rejection(DeadLetterReason.UNDECODABLE, f"expected a JSON object, got {type(document).__name__}")
    version = document.get("schema_version", SCHEMA_VERSION)
    if version != SCHEMA_VERSION:
        return Rejection(
            DeadLetterReason.UNKNOWN_SCHEMA_VERSION, f"schema_version {version!r}, this writer knows {SCHEMA_VERSION}"
        )
    return Rejection(DeadLetterReason.SCHEMA_INVALID, _summarize(exc))


def _summarize(exc: ValidationError) -> str:
    errors = exc.errors(include_url=False, include_input=False)
    parts = [f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in errors[:5]]
    return "; ".join(parts) + (f" (+{len(errors) - 5} more)" if len(errors) > 5 else "")


# Every int field of an event is an int4 column, but a checkpoint's size (int8).
_INT8_FIELDS = {(CheckpointEvent, "bytes")}


@cache
def _int4_fields(cls: type[Envelope]) -> tuple[str, ...]:
    return tuple(
        name for name, field in cls.model_fields.items() if field.annotation is int and (cls, name) not in _INT8_FIELDS
    )


def _unstorable(event: Envelope, raw: bytes) -> str | None:
    """Values that pass the schema but Postgres refuses: NUL in text, int4 overflow, NaN or inf in jsonb."""
    for name in _int4_fields(type(event)):
        number = getattr(event, name)
        if number > PG_INT_MAX:
            return f"{name} {number} exceeds {PG_INT_MAX}"
    # JSON must escape a NUL as \u0000, so a payload without that escape has none (the fast, usual path).
    if b"\\u0000" in raw:
        problem = _nul_in(event.model_dump(exclude={"event_id", "job_id", "occurred_at"}), "")
        if problem:
            return problem
    if isinstance(event, JobStatusEvent | CheckpointEvent):
        for name, number in event.metrics.items():
            if number is not None and not math.isfinite(number):
                return f"metrics.{name} is not a finite number"
    return None


def _nul_in(value: object, path: str) -> str | None:
    if isinstance(value, str):
        return f"{path or 'a field'} contains a NUL character" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            problem = _nul_in(key, f"{path} key") or _nul_in(item, f"{path}.{key}".lstrip("."))
            if problem:
                return problem
    return None
