"""JOB_TOKEN: a signed capability scoped to one job, minted by the API, verified by the writer.

The token is bound to its job row, not to a wall-clock window. The writer accepts a correctly signed
token for a job that still exists, whatever the token's `exp` or the event's `occurred_at`: a job may
wait in the queue, train for days, or have its events delayed by a writer or broker outage, and none of
that may cost it an event. Deleting the job is the revocation: the row is gone, so the writer refuses
the token (reason `job_deleted`), and the cascade has removed the job's rows with it.

`exp` is still stamped (the API's `job_token_ttl_hours`, recorded in `jobs.token_expires_at`) and still
required, so a token is recognisably one the API minted, but nothing on the write path enforces it: it is
informational. Binding to the row rather than to a clock is what Kubernetes does for bound service
account tokens (valid while the object they name exists) and avoids trusting the producer's clock.
"""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import jwt

AUDIENCE = "epochscope-job"
ALGORITHM = "HS256"


class InvalidJobToken(Exception):
    """The token is missing, malformed, forged, or for another job."""


@dataclass(frozen=True)
class JobTokenClaims:
    job_id: UUID
    user_id: str
    expires_at: datetime  # informational: see the module docstring
    attempt_id: UUID | None = None  # a token minted for one attempt (claim `attempt`) speaks only for that attempt


def mint_job_token(secret: str, job_id: UUID, user_id: str, ttl: timedelta) -> tuple[str, JobTokenClaims]:
    expires_at = (datetime.now(UTC) + ttl).replace(microsecond=0)
    claims = JobTokenClaims(job_id=job_id, user_id=user_id, expires_at=expires_at)
    return job_token_for(secret, claims), claims


def job_token_for(secret: str, claims: JobTokenClaims) -> str:
    """The job's token, the same every time for the same claims (HS256 is deterministic): the API recomputes it
    from the job row (`jobs.token_expires_at`) to sign a command instead of keeping the token anywhere."""
    payload = {"aud": AUDIENCE, "job": str(claims.job_id), "sub": claims.user_id, "exp": claims.expires_at}
    if claims.attempt_id is not None:
        payload["attempt"] = str(claims.attempt_id)
    return jwt.encode(payload, secret, algorithm=ALGORITHM)


def verify_job_token(secret: str, token: str | None, job_id: UUID) -> JobTokenClaims:
    """Check signature, audience and that the token names this job; `exp` is not enforced (see above).

    Whether the job still exists, and who owns it, is for the caller to check against the jobs table.
    """
    if not token:
        raise InvalidJobToken("missing job token")
    try:
        payload = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            options={"require": ["exp", "job", "sub"], "verify_exp": False},
        )
    except jwt.PyJWTError as exc:
        raise InvalidJobToken(f"invalid job token: {exc}") from exc
    if payload["job"] != str(job_id):
        raise InvalidJobToken("job token is for another job")
    try:
        expires_at = datetime.fromtimestamp(payload["exp"], UTC)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidJobToken(f"invalid job token: bad exp {payload['exp']!r}") from exc
    try:
        attempt_id = UUID(payload["attempt"]) if "attempt" in payload else None
    except (TypeError, ValueError, AttributeError) as exc:
        raise InvalidJobToken(f"invalid job token: bad attempt {payload['attempt']!r}") from exc
    return JobTokenClaims(job_id=job_id, user_id=payload["sub"], expires_at=expires_at, attempt_id=attempt_id)
