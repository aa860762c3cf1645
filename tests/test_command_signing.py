"""Signed commands and token-free dead letters (`epochscope_runtime.command_signing`), and the job token the API
recomputes from the job row to sign them."""

import hashlib
import hmac
import json
import uuid
from datetime import UTC, timedelta

from epochscope_runtime.command_signing import signed_cancel, verify_command, without_job_token
from epochscope_runtime.job_token import job_token_for, mint_job_token
from epochscope_schemas.events import JobCancelEvent, parse_event

SECRET = "a-job-token-secret-of-enough-length"


def test_a_signed_cancel_verifies_after_a_trip_through_json_and_not_once_changed() -> None:
    job_id = uuid.uuid4()
    cancel = signed_cancel(job_id, "alice", "token-of-the-job")
    received = parse_event(cancel.model_dump_json())
    assert isinstance(received, JobCancelEvent) and received.schema_version == 2
    assert verify_command(received, "token-of-the-job")
    assert "token-of-the-job" not in cancel.model_dump_json()  # a MAC, not the token
    assert not verify_command(received, "another-token") and not verify_command(received, None)
    for change in ({"job_id": uuid.uuid4()}, {"user_id": "mallory"}, {"event_id": uuid.uuid4()}, {"signature": ""}):
        assert not verify_command(received.model_copy(update=change), "token-of-the-job"), change


def test_a_cancel_of_one_attempt_signs_its_attempt_and_a_users_cancel_is_signed_as_before() -> None:
    job_id, attempt = uuid.uuid4(), uuid.uuid4()
    fence = parse_event(signed_cancel(job_id, "alice", "token-of-the-job", attempt_id=attempt).model_dump_json())
    assert isinstance(fence, JobCancelEvent) and fence.attempt_id == attempt
    assert verify_command(fence, "token-of-the-job")
    for change in ({"attempt_id": None}, {"attempt_id": uuid.uuid4()}):  # widened to the job, or moved
        assert not verify_command(fence.model_copy(update=change), "token-of-the-job"), change
    users = signed_cancel(job_id, "alice", "token-of-the-job")
    assert not verify_command(users.model_copy(update={"attempt_id": attempt}), "token-of-the-job")
    signed_before = hmac.new(  # the message of a cancel without an attempt is unchanged (trainers deployed verify it)
        b"token-of-the-job",
        "\n".join(
            ("job.cancel", str(job_id), "alice", str(users.event_id), users.occurred_at.astimezone(UTC).isoformat())
        ).encode(),
        hashlib.sha256,
    ).hexdigest()
    assert users.signature == signed_before


def test_the_api_recomputes_the_token_it_minted_from_the_job_row() -> None:
    token, claims = mint_job_token(SECRET, uuid.uuid4(), "alice", timedelta(hours=72))
    assert job_token_for(SECRET, claims) == token


def test_dead_letters_lose_the_job_token_and_keep_the_rest() -> None:
    raw = json.dumps({"type": "prediction", "job_token": "secret-token", "step": 3}).encode()
    stripped, removed = without_job_token(raw)
    assert removed and json.loads(stripped) == {"type": "prediction", "step": 3}
    for untouched in (b"\xff not json", b"[1, 2]", b'{"type": "prediction"}', b'{"job_token": null}'):
        assert without_job_token(untouched) == (untouched, False)
