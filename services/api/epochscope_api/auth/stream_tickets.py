"""Live-stream tickets: a short-lived credential for one user's stream of one job, for browsers' EventSource,
which cannot send an Authorization header. The ticket goes in the URL (`?ticket=`), where a proxy may log it, so it
opens nothing but that one job's stream and only for EPOCHSCOPE_STREAM_TICKET_SECONDS; the bearer token never does.

Tickets are HS256 JWTs under a key derived from the job-token secret for this purpose alone, so every API replica
verifies what another minted, and neither kind of token passes for the other (different key, different `aud`).
"""

import hashlib
import hmac
import time
import uuid
from dataclasses import dataclass

import jwt

from epochscope_api.auth.user_tokens import unauthorized
from epochscope_api.auth.verified_tokens import VerifiedUser

AUDIENCE = "epochscope:stream"


@dataclass(frozen=True)
class StreamTicket:
    ticket: str
    expires_at: float  # seconds since the epoch


class StreamTickets:
    def __init__(self, job_token_secret: str, ttl_seconds: int) -> None:
        self._key = hmac.new(job_token_secret.encode(), b"epochscope stream tickets", hashlib.sha256).digest()
        self._ttl_s = ttl_seconds

    def mint(self, user_id: str, job_id: uuid.UUID) -> StreamTicket:
        expires_at = int(time.time()) + self._ttl_s
        claims = {"sub": user_id, "job": str(job_id), "aud": AUDIENCE, "exp": expires_at}
        return StreamTicket(jwt.encode(claims, self._key, algorithm="HS256"), expires_at)

    def verify(self, ticket: str, job_id: uuid.UUID) -> VerifiedUser:
        """The ticket's user and expiry; a 401 unless it is this API's, unexpired, and for this job."""
        try:
            claims = jwt.decode(
                ticket, self._key, algorithms=["HS256"], audience=AUDIENCE, options={"require": ["sub", "job", "exp"]}
            )
        except jwt.PyJWTError as exc:
            raise unauthorized(f"invalid stream ticket: {exc}") from exc
        if claims["job"] != str(job_id):
            raise unauthorized("the stream ticket is for another job")
        return VerifiedUser(claims["sub"], float(claims["exp"]))
