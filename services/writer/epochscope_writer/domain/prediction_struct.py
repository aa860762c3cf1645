"""The prediction event as the writer carries it: a msgspec Struct with the contract's rules (PredictionEvent).

Predictions are nearly every row the writer stores, and decoding them with pydantic was a third of its CPU. msgspec
decodes and checks the same fields several times faster, in C, into this Struct. It is a strict subset of the
contract: it accepts only payloads the contract accepts, with the same values (tests/test_writer_prediction_struct.py
checks both on generated and mutated payloads), and refuses anything the contract would coerce (a number in a string,
a naive timestamp, a missing event id or time: what a trainer never sends); what it refuses goes to pydantic, which
decides (decoding.py), so the writer accepts and refuses exactly what the contract says.
"""

import re
from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

from epochscope_schemas.events import SCHEMA_VERSION, PredictionEvent
from epochscope_schemas.graders import MAX_GRADERS

NonNegativeInt = Annotated[int, Meta(ge=0)]
NonNegativeFloat = Annotated[float, Meta(ge=0)]
UnitFloat = Annotated[float, Meta(ge=0, le=1)]


class GradeStruct(msgspec.Struct, forbid_unknown_fields=True):
    """epochscope_schemas.graders.Grade"""

    score: UnitFloat
    passed: bool
    error: Annotated[str, Meta(max_length=500)] | None = None


class ScoresStruct(msgspec.Struct, forbid_unknown_fields=True):
    """epochscope_schemas.events.PredictionScores"""

    exact_match: UnitFloat
    f1: UnitFloat
    rouge_l: UnitFloat


class PredictionStruct(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """epochscope_schemas.events.PredictionEvent, with its envelope's id, time (with a zone) and type required."""

    event_id: UUID
    schema_version: Literal[1] = SCHEMA_VERSION
    occurred_at: Annotated[datetime, Meta(tz=True)]
    job_id: UUID
    job_token: str | None = None
    attempt_id: UUID | None = None
    type: Literal["prediction"]
    round_index: NonNegativeInt
    epoch: NonNegativeFloat
    step: NonNegativeInt
    sample_id: Annotated[str, Meta(min_length=1, max_length=200)]
    sample_index: NonNegativeInt
    prompt: str
    ground_truth: str | None = None
    prediction: str
    tokens_generated: NonNegativeInt = 0
    latency_ms: NonNegativeFloat = 0.0
    valid: bool | None = None
    validation_error: Annotated[str, Meta(max_length=2000)] | None = None
    scores: ScoresStruct | None = None
    grades: Annotated[dict[str, GradeStruct], Meta(max_length=MAX_GRADERS)] = {}
    truncated: Annotated[list[Literal["prompt", "ground_truth", "prediction"]], Meta(max_length=3)] = []


_decoder = msgspec.json.Decoder(PredictionStruct)
# msgspec rounds a time's fraction past microseconds, where the contract cuts it: a payload that may hold one (seven
# digits after the seconds, or a printable character but DEL spelled as an escape, which no encoder writes) goes to
# pydantic.
_MAY_ROUND = re.compile(rb"[0-9]:[0-9]{2}\.[0-9]{7}|\\u00[2-7][0-9a-eA-E]")


def decode_prediction(raw: bytes) -> PredictionStruct | None:
    """The payload as a PredictionStruct, or None where this strict subset refuses it (then pydantic decides)."""
    if _MAY_ROUND.search(raw):
        return None
    try:
        return _decoder.decode(raw)
    except msgspec.MsgspecError:
        return None


def from_event(event: PredictionEvent) -> PredictionStruct:
    """A prediction pydantic accepted (the rare payload the strict decoder refused), in the form the writer carries.

    Every value already passed the contract's checks, which the Struct's repeat."""
    return msgspec.convert(event.model_dump(), PredictionStruct)
