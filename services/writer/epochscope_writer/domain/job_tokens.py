"""Job-token checks, cached per token so a batch of a thousand events costs one signature check.

A token is a capability bound to its job row (see epochscope_runtime.job_token): its `exp` is not
enforced, so a cached verification never goes stale; the job's existence is checked per batch instead.
A token minted for one attempt speaks only for events of that attempt.
"""

from uuid import UUID

from epochscope_runtime.job_token import InvalidJobToken, JobTokenClaims, verify_job_token
from epochscope_writer.domain.dead_letters import DeadLetterReason, Rejection


class JobTokenVerifier:
    """Verifies the job tokens trainers put in their events (not the API's user JWTs)."""

    def __init__(self, secret: str, cache_size: int = 10_000) -> None:
        self._secret = secret
        self._cache_size = cache_size
        self._verified: dict[tuple[str, UUID], JobTokenClaims] = {}

    def verify(self, token: str | None, job_id: UUID, attempt_id: UUID | None) -> JobTokenClaims | Rejection:
        """Signature, audience, job id and, for a token of one attempt, the event's attempt; only tokens that
        verified are cached."""
        if not token:
            return Rejection(DeadLetterReason.INVALID_TOKEN, "missing job token")
        claims = self._verified.get((token, job_id))
        if claims is None:
            try:
                claims = verify_job_token(self._secret, token, job_id)
            except InvalidJobToken as exc:
                return Rejection(DeadLetterReason.INVALID_TOKEN, str(exc))
            if len(self._verified) >= self._cache_size:
                self._verified.clear()
            self._verified[(token, job_id)] = claims
        if claims.attempt_id is not None and claims.attempt_id != attempt_id:
            detail = f"job token is for attempt {claims.attempt_id}, not {attempt_id or '(none given)'}"
            return Rejection(DeadLetterReason.INVALID_TOKEN, detail)
        return claims
