"""The writer's decoding, without infrastructure: each bad payload gets its dead-letter reason."""

import json
import math
import uuid
from datetime import UTC, datetime

import pytest

from epochscope_schemas.events import JobStatus, JobStatusEvent, PredictionEvent, ProgressEvent, encode_event
from epochscope_schemas.topics import TRAINING_PREDICTIONS, TRAINING_STATUS
from epochscope_writer.domain.dead_letters import DeadLetterReason
from epochscope_writer.domain.decoding import Rejection, decode_record
from epochscope_writer.domain.prediction_struct import PredictionStruct

JOB = uuid.uuid4()


def prediction_document(**fields: object) -> dict:
    event = PredictionEvent(
        job_id=JOB,
        job_token="t",
        round_index=1,
        epoch=1.0,
        step=10,
        sample_id="s1",
        sample_index=1,
        prompt="p",
        prediction="a",
    )
    return {**json.loads(encode_event(event)), **fields}


def test_a_valid_prediction_decodes() -> None:
    event = decode_record(TRAINING_PREDICTIONS, json.dumps(prediction_document()).encode())
    assert isinstance(event, PredictionStruct) and event.step == 10


def test_a_naive_timestamp_is_read_as_utc() -> None:
    event = decode_record(
        TRAINING_PREDICTIONS, json.dumps(prediction_document(occurred_at="2026-01-01T00:00:00")).encode()
    )
    assert isinstance(event, PredictionStruct) and datetime.fromisoformat(event.occurred_at).tzinfo == UTC


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", DeadLetterReason.UNDECODABLE),
        (b"{not json", DeadLetterReason.UNDECODABLE),
        (b"", DeadLetterReason.UNDECODABLE),
        (b"[1, 2]", DeadLetterReason.UNDECODABLE),
        (json.dumps(prediction_document(schema_version=2)).encode(), DeadLetterReason.UNKNOWN_SCHEMA_VERSION),
        (json.dumps(prediction_document(step=-1)).encode(), DeadLetterReason.SCHEMA_INVALID),
        (json.dumps(prediction_document(type="nope")).encode(), DeadLetterReason.SCHEMA_INVALID),
        (json.dumps(prediction_document(step=2**31)).encode(), DeadLetterReason.UNSTORABLE_VALUE),
        (json.dumps(prediction_document(prompt="a\u0000b")).encode(), DeadLetterReason.UNSTORABLE_VALUE),
        (json.dumps(prediction_document(ground_truth="\u0000")).encode(), DeadLetterReason.UNSTORABLE_VALUE),
    ],
)
def test_bad_predictions_get_their_reason(payload: bytes, reason: DeadLetterReason) -> None:
    rejection = decode_record(TRAINING_PREDICTIONS, payload)
    assert isinstance(rejection, Rejection) and rejection.reason == reason, rejection
    assert rejection.detail


def test_missing_fields_are_named() -> None:
    document = prediction_document()
    del document["prediction"]
    rejection = decode_record(TRAINING_PREDICTIONS, json.dumps(document).encode())
    assert isinstance(rejection, Rejection) and rejection.reason == DeadLetterReason.SCHEMA_INVALID
    assert "prediction" in rejection.detail


def test_an_escaped_backslash_u_is_not_a_nul() -> None:
    event = decode_record(TRAINING_PREDICTIONS, json.dumps(prediction_document(prompt="\\u0000 as text")).encode())
    assert isinstance(event, PredictionStruct) and event.prompt == "\\u0000 as text"


def test_events_are_applied_only_from_their_topic() -> None:
    status = encode_event(JobStatusEvent(job_id=JOB, job_token="t", status=JobStatus.RUNNING))
    rejection = decode_record(TRAINING_PREDICTIONS, status)
    assert isinstance(rejection, Rejection) and rejection.reason == DeadLetterReason.UNEXPECTED_EVENT_TYPE
    assert isinstance(decode_record(TRAINING_STATUS, status), JobStatusEvent)


def test_status_metrics_must_fit_jsonb() -> None:
    document = json.loads(encode_event(JobStatusEvent(job_id=JOB, job_token="t", status=JobStatus.COMPLETED)))
    for metrics in ({"loss": float("nan")}, {"lo\u0000ss": 1.0}):
        rejection = decode_record(TRAINING_STATUS, json.dumps({**document, "metrics": metrics}).encode())
        assert isinstance(rejection, Rejection) and rejection.reason == DeadLetterReason.UNSTORABLE_VALUE


def test_a_diverged_loss_in_progress_is_storable() -> None:
    event = ProgressEvent(job_id=JOB, job_token="t", step=5, max_steps=10, epoch=0.5, num_epochs=1)
    payload = json.dumps({**json.loads(encode_event(event)), "loss": float("nan")}).encode()
    assert b"NaN" in payload
    decoded = decode_record(TRAINING_STATUS, payload)
    assert isinstance(decoded, ProgressEvent) and decoded.loss != decoded.loss


def test_an_infinite_epoch_or_latency_is_carried_as_the_contract_reads_it() -> None:
    """msgspec reads no infinity; the contract does, and the prediction keeps it, as before (float8 holds it)."""
    text = json.dumps(prediction_document(epoch=1.5, latency_ms=2.5))
    for raw in (text.replace("1.5", "1e400"), text.replace("2.5", "Infinity")):
        event = decode_record(TRAINING_PREDICTIONS, raw.encode())
        assert isinstance(event, PredictionStruct) and math.inf in (event.epoch, event.latency_ms), raw
