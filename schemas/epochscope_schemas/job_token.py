"""JOB_TOKEN: a signed credential scoped to one job, minted by the API, verified by the writer."""

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

import jwt

AUDIENCE = "epochscope-job"
ALGORITHM = "HS256"


class InvalidJobToken(Exception):
    """The token is malformed, forged, expired, or for another job."""


@dataclass(frozen=True)
class JobTokenClaims:
    job_id: UUID
    user_id: str
    expires_at: datetime


def mint_job_token(secret: str, job_id: UUID, user_id: str, ttl: timedelta) -> tuple[str, JobTokenClaims]:
    expires_at = (datetime.now(UTC) + ttl).replace(microsecond=0)
    claims = JobTokenClaims(job_id=job_id, user_id=user_id, expires_at=expires_at)
    payload = {"aud": AUDIENCE, "job": str(job_id), "sub": user_id, "exp": expires_at}
    return jwt.encode(payload, secret, algorithm=ALGORITHM), claims


def verify_job_token(secret: str, token: str | None, job_id: UUID) -> JobTokenClaims:
    """Check signature, expiry, audience and that the token names this job."""
    if not token:
        raise InvalidJobToken("missing job token")
    try:
        payload = jwt.decode(
            token, secret, algorithms=[ALGORITHM], audience=AUDIENCE, options={"require": ["exp", "job", "sub"]}
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidJobToken("job token expired") from exc
    except jwt.PyJWTError as exc:
        raise InvalidJobToken(f"invalid job token: {exc}") from exc
    if payload["job"] != str(job_id):
        raise InvalidJobToken("job token is for another job")
    return JobTokenClaims(job_id=job_id, user_id=payload["sub"], expires_at=datetime.fromtimestamp(payload["exp"], UTC))
