"""Job tokens are minted per attempt (service_layer/queue.py): the token names its attempt, and the writer's
verifier refuses it on another attempt's events, so a trainer holding one attempt's token cannot speak for the
job's other attempts."""

import uuid
from datetime import UTC, datetime

import jwt
import pytest

from epochscope_runtime.job_token import AUDIENCE, InvalidJobToken, JobTokenClaims, job_token_for, verify_job_token
from epochscope_writer.domain.dead_letters import DeadLetterReason
from epochscope_writer.domain.decoding import Rejection
from epochscope_writer.domain.job_tokens import JobTokenVerifier

SECRET = "job-token-secret-for-the-attempt-tests-0123"
EXPIRES = datetime(2027, 1, 1, tzinfo=UTC)


def token(job_id: uuid.UUID, attempt_id: uuid.UUID | None) -> str:
    return job_token_for(SECRET, JobTokenClaims(job_id, "alice", EXPIRES, attempt_id))


def test_a_token_names_its_attempt() -> None:
    job_id, attempt = uuid.uuid4(), uuid.uuid4()
    assert verify_job_token(SECRET, token(job_id, attempt), job_id).attempt_id == attempt
    assert verify_job_token(SECRET, token(job_id, None), job_id).attempt_id is None
    bad = jwt.encode({"aud": AUDIENCE, "job": str(job_id), "sub": "a", "exp": EXPIRES, "attempt": "x"}, SECRET)
    with pytest.raises(InvalidJobToken, match="bad attempt"):
        verify_job_token(SECRET, bad, job_id)


def test_the_writer_refuses_a_token_on_another_attempts_event_even_once_cached() -> None:
    verifier = JobTokenVerifier(SECRET)
    job_id, mine, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    minted = token(job_id, mine)
    assert isinstance(verifier.verify(minted, job_id, mine), JobTokenClaims)  # now cached
    for attempt in (other, None):
        refused = verifier.verify(minted, job_id, attempt)
        assert refused == Rejection(DeadLetterReason.INVALID_TOKEN, "job token is for another attempt")


def test_a_token_from_before_attempts_is_still_taken_for_its_job() -> None:
    """Jobs dispatched before the upgrade hold a job-wide token: the writer's attempt fencing (stale_attempt)
    still keeps their dead attempts out."""
    job_id = uuid.uuid4()
    claims = JobTokenVerifier(SECRET).verify(token(job_id, None), job_id, uuid.uuid4())
    assert isinstance(claims, JobTokenClaims) and claims.expires_at == EXPIRES
