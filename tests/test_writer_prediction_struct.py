"""The writer's fast prediction decoder against the contract: it accepts only what pydantic accepts, with the same
values, and it takes the trainer's own events (so the fast path is the one that runs).

Payloads are generated (valid events, then each field mutated to values of every JSON type and edge: out of range,
too long, coercible strings, other timestamp and UUID spellings, unknown and missing keys, duplicate keys).
"""

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from epochscope_schemas.events import PredictionEvent, encode_event, parse_event
from epochscope_schemas.graders import MAX_GRADERS
from epochscope_schemas.topics import TRAINING_PREDICTIONS
from epochscope_writer.domain.decoding import decode_record
from epochscope_writer.domain.prediction_struct import PredictionStruct, decode_prediction, from_event

EXAMPLES = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

unit = st.floats(min_value=0, max_value=1)
texts = st.text(max_size=40)
grades = st.dictionaries(
    st.text(max_size=10),
    st.fixed_dictionaries(
        {"score": unit, "passed": st.booleans()}, optional={"error": st.none() | st.text(max_size=501)}
    ),
    max_size=MAX_GRADERS + 1,
)
zones = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))])
times = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=zones)


@st.composite
def valid_documents(draw: st.DrawFn) -> dict[str, Any]:
    """A prediction event as the trainer encodes it (encode_event), from generated field values."""
    event = PredictionEvent(
        event_id=draw(st.uuids()),
        occurred_at=draw(times),
        job_id=draw(st.uuids()),
        job_token=draw(st.none() | texts),
        attempt_id=draw(st.none() | st.uuids()),
        round_index=draw(st.integers(0, 2**31 - 1)),
        epoch=draw(st.floats(min_value=0, max_value=1e6)),
        step=draw(st.integers(0, 2**31 - 1)),
        sample_id=draw(st.text(min_size=1, max_size=200)),
        sample_index=draw(st.integers(0, 10**6)),
        prompt=draw(texts),
        ground_truth=draw(st.none() | texts),
        prediction=draw(texts),
        tokens_generated=draw(st.integers(0, 10**6)),
        latency_ms=draw(st.floats(min_value=0, max_value=1e9)),
        valid=draw(st.none() | st.booleans()),
        validation_error=draw(st.none() | st.text(max_size=2000)),
        scores=draw(st.none() | st.fixed_dictionaries({"exact_match": unit, "f1": unit, "rouge_l": unit})),
        grades=draw(grades.filter(lambda g: len(g) <= MAX_GRADERS)),
        truncated=draw(st.lists(st.sampled_from(["prompt", "ground_truth", "prediction"]), max_size=3)),
    )
    return json.loads(encode_event(event))


# Values of every JSON type and the edges the two libraries could read differently.
ODD_VALUES = [
    None,
    True,
    False,
    0,
    1,
    -1,
    2**31,
    2**63,
    2**64,
    -(2**63) - 1,
    10**30,
    0.0,
    -0.0,
    0.5,
    1.0,
    1.5,
    -1.5,
    1e-300,
    1e308,
    2.0**53 + 1,
    "",
    "1",
    "1.0",
    "true",
    "yes",
    "0",
    "x" * 199,
    "x" * 200,
    "x" * 201,
    "x" * 500,
    "x" * 501,
    "x" * 2000,
    "x" * 2001,
    "prompt",
    "prediction",
    "ground_truth",
    "PROMPT",
    [],
    [1],
    ["prompt"],
    ["prompt"] * 4,
    ["prompt", "prompt"],
    {},
    {"a": 1},
    {"exact_match": 1, "f1": 0, "rouge_l": 0.5},
    {"exact_match": 1.5, "f1": 0, "rouge_l": 0},
    {"exact_match": 1, "f1": 0},
    {"score": 1, "passed": True},
    {"a": {"score": 0.5, "passed": False}},
    {"a": {"score": 0.5, "passed": "true"}},
    {"a": {"score": 2, "passed": True}},
    {"a": {"score": 1, "passed": True, "error": "e", "x": 1}},
    {"a": {"score": 1, "passed": 1}},
    "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
    "6BA7B810-9DAD-11D1-80B4-00C04FD430C8",
    "6ba7b8109dad11d180b400c04fd430c8",
    "{6ba7b810-9dad-11d1-80b4-00c04fd430c8}",
    "urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8",
    "6ba7b810-9dad-11d1-80b4",
    "2026-01-01T00:00:00Z",
    "2026-01-01T00:00:00",
    "2026-01-01T00:00:00+00:00",
    "2026-01-01T00:00:00.1234567Z",
    "2026-01-01T00:00:00.123Z",
    "2026-01-01 00:00:00Z",
    "2026-01-01t00:00:00z",
    "2026-01-01T00:00Z",
    "2026-01-01",
    "2026-01-01T24:00:00Z",
    "2026-01-01T23:59:60Z",
    "2026-02-30T00:00:00Z",
    "2026-01-01T00:00:00+24:00",
    "2026-01-01T00:00:00-00:00",
    "2026-01-01T00:00:00+0530",
    "0001-01-01T00:00:00Z",
    1700000000,
    1700000000.5,
    "1700000000",
]
# Edges of the nested models' own constraints, as a field's whole value.
NESTED_VALUES = [
    {"exact_match": 1.0000000000000002, "f1": 0, "rouge_l": 0},
    {"exact_match": 0, "f1": -0.0, "rouge_l": -1e-300},
    {"exact_match": 0, "f1": 0, "rouge_l": 0, "extra": None},
    {"exact_match": "1", "f1": 0, "rouge_l": 0},
    {"a": {"score": 1.0000000000000002, "passed": True}},
    {"a": {"score": -1e-300, "passed": True}},
    {"a": {"score": 1, "passed": True, "error": "x" * 500}},
    {"a": {"score": 1, "passed": True, "error": "x" * 501}},
    {"a": {"score": 1, "passed": None}},
    {"a": {"passed": True}},
    {str(i): {"score": 1, "passed": True} for i in range(MAX_GRADERS)},
    {str(i): {"score": 1, "passed": True} for i in range(MAX_GRADERS + 1)},
    {"": {"score": 0, "passed": False, "error": None}},
]
FIELDS = list(PredictionEvent.model_fields)


@st.composite
def mutated_documents(draw: st.DrawFn) -> str:
    """A valid document with fields set to odd values, removed, or added; as JSON text, sometimes with a key twice."""
    document = draw(valid_documents())
    for _ in range(draw(st.integers(1, 3))):
        action = draw(st.sampled_from(["set", "set", "set", "remove", "add"]))
        name = draw(st.sampled_from(FIELDS))
        if action == "set":
            document[name] = draw(st.sampled_from(ODD_VALUES))
        elif action == "remove":
            document.pop(name, None)
        else:
            document[draw(st.sampled_from(["extra", "Step", "scores_", "type "]))] = draw(st.sampled_from(ODD_VALUES))
    text = json.dumps(document)
    if draw(st.booleans()) and document:
        repeated = draw(st.sampled_from(sorted(document)))
        text = text[:-1] + f", {json.dumps(repeated)}: {json.dumps(draw(st.sampled_from(ODD_VALUES)))}}}"
    return text


def plain(value: object) -> object:
    """A value with its type spelled out, for comparing a Struct with a pydantic model exactly (floats by repr, so
    -0.0 and 0.0 differ; datetimes with their offset, which equality ignores)."""
    if isinstance(value, PredictionStruct):  # its time is the text it came as
        fields = {name: plain(getattr(value, name)) for name in value.__struct_fields__}
        return {**fields, "occurred_at": plain(datetime.fromisoformat(value.occurred_at))}
    if isinstance(value, msgspec.Struct):
        return {name: plain(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, BaseModel):
        return {name: plain(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, datetime):
        return ("datetime", value.isoformat(), value.utcoffset())
    return (type(value).__name__, repr(value))


def contract(raw: bytes) -> PredictionEvent | None:
    try:
        event = parse_event(raw)
    except ValidationError:
        return None
    return event if isinstance(event, PredictionEvent) else None


def assert_no_more_than_the_contract(raw: bytes) -> bool:
    """What the fast decoder accepts, pydantic accepts, with the same values; True if the fast decoder accepted."""
    fast = decode_prediction(raw)
    if fast is None:
        return False
    event = contract(raw)
    assert event is not None, f"the fast decoder accepted what the contract refuses: {raw!r}"
    assert plain(fast) == plain(event), raw
    return True


def test_every_field_set_to_every_odd_value_is_accepted_only_as_the_contract_accepts_it() -> None:
    """Exhaustive over the fields and the odd values: one field changed at a time (the generated tests combine)."""
    document = json.loads(encode_event(PredictionEvent(job_id=uuid.uuid4(), **_FIELDS)))
    accepted = 0
    for name in [*FIELDS, "extra"]:
        for value in [*ODD_VALUES, *NESTED_VALUES]:
            accepted += assert_no_more_than_the_contract(json.dumps({**document, name: value}).encode())
    assert accepted > len(FIELDS)  # the fast path took many of them: the comparison ran


@EXAMPLES
@given(valid_documents())
def test_the_trainers_events_take_the_fast_path_with_the_contracts_values(document: dict[str, Any]) -> None:
    raw = json.dumps(document).encode()
    assert decode_prediction(raw) is not None, raw
    assert assert_no_more_than_the_contract(raw)


@EXAMPLES
@given(mutated_documents())
def test_a_mutated_payload_is_accepted_only_as_the_contract_accepts_it(text: str) -> None:
    assert_no_more_than_the_contract(text.encode())


@EXAMPLES
@given(st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_any_bytes_are_accepted_only_as_the_contract_accepts_them(raw: bytes) -> None:
    assert_no_more_than_the_contract(raw)


def test_the_fast_decoder_refuses_what_the_contract_coerces() -> None:
    """Each of these the contract accepts (coerced, or a default of its own): the fast decoder leaves them to it."""
    document = json.loads(encode_event(PredictionEvent(job_id=uuid.uuid4(), **_FIELDS)))
    for name, value in [
        ("step", "3"),
        ("step", 3.0),
        ("valid", "true"),
        ("occurred_at", "2026-01-01T00:00:00"),
        ("occurred_at", 1700000000),
        ("job_id", "urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8"),
    ]:
        raw = json.dumps({**document, name: value}).encode()
        assert contract(raw) is not None and decode_prediction(raw) is None, (name, value)
    for name in ("event_id", "occurred_at", "type"):
        raw = json.dumps({key: value for key, value in document.items() if key != name}).encode()
        assert decode_prediction(raw) is None, name


def test_an_event_pydantic_accepted_is_carried_with_its_values() -> None:
    document = json.loads(encode_event(PredictionEvent(job_id=uuid.uuid4(), **_FIELDS)))
    event = contract(json.dumps({**document, "step": "7"}).encode())
    assert event is not None
    carried = from_event(event)
    assert isinstance(carried, PredictionStruct) and plain(carried) == plain(event) and carried.step == 7
    for time in (
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59.500000-01:00",
        "2026-01-01T00:00:00",
    ):  # no UTC shift
        coerced = json.dumps({**document, "step": "7", "occurred_at": time}).encode()
        decoded = decode_record(TRAINING_PREDICTIONS, coerced)
        assert isinstance(decoded, PredictionStruct) and decoded.occurred_at.startswith(time), decoded


_FIELDS: dict[str, Any] = {
    "round_index": 1,
    "epoch": 0.5,
    "step": 7,
    "sample_id": "s",
    "sample_index": 0,
    "prompt": "p",
    "prediction": "a",
    "scores": {"exact_match": 1, "f1": 1, "rouge_l": 1},
    "grades": {"json_parse": {"score": 1, "passed": True}},
}


def test_a_time_past_microseconds_is_cut_as_the_contract_cuts_it() -> None:
    """msgspec's datetime would round these up; the writer carries the contract's time, however it is spelled."""
    document = json.loads(encode_event(PredictionEvent(job_id=uuid.uuid4(), **_FIELDS)))
    text = json.dumps({**document, "occurred_at": "TIME"})
    for spelled in (
        "2026-01-01T00:00:00.9999999Z",
        "2026-01-01T00:00:00.999999\\u0039Z",
        "2026-01-01T00:00:00\\u002e9999999Z",
    ):
        raw = text.replace("TIME", spelled).encode()
        decoded = decode_record(TRAINING_PREDICTIONS, raw)
        assert isinstance(decoded, PredictionStruct)
        assert datetime.fromisoformat(decoded.occurred_at) == datetime(2026, 1, 1, 0, 0, 0, 999999, UTC)
        assert_no_more_than_the_contract(raw)
