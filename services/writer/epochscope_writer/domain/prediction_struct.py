"""The prediction event as the writer carries it: a msgspec Struct with the contract's rules (PredictionEvent).

Predictions are nearly every row the writer stores, and decoding them with pydantic was a third of its CPU. msgspec
decodes and checks the same fields several times faster, in C, into this Struct. It is a strict subset of the
contract: it accepts only payloads the contract accepts, with the same values (tests/test_writer_prediction_struct.py
checks both on generated and mutated payloads), and refuses anything the contract would coerce (a number in a string,
a naive timestamp, a missing event id or time: what a trainer never sends); what it refuses goes to pydantic, which
decides (decoding.py), so the writer accepts and refuses exactly what the contract says.
"""

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

from epochscope_schemas.events import SCHEMA_VERSION, PredictionEvent
from epochscope_schemas.graders import MAX_GRADERS

# RFC 3339 with a zone, to the microsecond: msgspec's own datetime rounds a longer fraction, which the contract cuts
_TIME = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})$"
PG_INT_MAX = 2**31 - 1
# An int past int4 is refused here, and dead-lettered by the contract's path as unstorable; a float past float8 (inf)
# is refused here too (msgspec reads no infinity), and stored by the contract's path as before.
NonNegativeInt = Annotated[int, Meta(ge=0, le=PG_INT_MAX)]
NonNegativeFloat = Annotated[float, Meta(ge=0)]
UnitFloat = Annotated[float, Meta(ge=0, le=1)]


class GradeStruct(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """epochscope_schemas.graders.Grade"""

    score: UnitFloat
    passed: bool
    error: Annotated[str, Meta(max_length=500)] | None = None


class ScoresStruct(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """epochscope_schemas.events.PredictionScores"""

    exact_match: UnitFloat
    f1: UnitFloat
    rouge_l: UnitFloat


class PredictionStruct(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, gc=False):
    """epochscope_schemas.events.PredictionEvent, with its envelope's id, time (with a zone) and type required.

    `occurred_at` stays the text it came as (Postgres reads it), once checked to be a real time. Not tracked by the
    cyclic garbage collector (`gc=False`): it holds no reference back to itself, and a batch makes thousands."""

    event_id: UUID
    schema_version: Literal[1] = SCHEMA_VERSION
    occurred_at: Annotated[str, Meta(pattern=_TIME)]
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

    def __post_init__(self) -> None:
        datetime.fromisoformat(self.occurred_at)  # a ValueError for a date or time that does not exist: refused


_decoder = msgspec.json.Decoder(PredictionStruct)


def decode_prediction(raw: bytes) -> PredictionStruct | None:
    """The payload as a PredictionStruct, or None where this strict subset refuses it (then pydantic decides)."""
    try:
        return _decoder.decode(raw)
    except msgspec.MsgspecError:
        return None


def from_event(event: PredictionEvent) -> PredictionStruct:
    """A prediction pydantic accepted (the rare payload the strict decoder refused), in the form the writer carries.

    Every value already passed the contract's checks, which the Struct's repeat; its time is aware (decoding.py makes
    a naive one UTC), with an offset in whole minutes (the contract's), written as RFC 3339 by `isoformat`."""
    fields = event.model_dump()
    return msgspec.convert({**fields, "occurred_at": event.occurred_at.isoformat()}, PredictionStruct)
