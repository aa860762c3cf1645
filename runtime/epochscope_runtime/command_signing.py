"""Commands the API sends trainers are signed, so a trainer can tell them from forgeries: a start with the dispatch
key (EPOCHSCOPE_DISPATCH_KEY, the API's and the trainers'; see the end of this module), a cancel with its job's token.

Only the API (which mints the token) and the trainer running the job (which learns it from the start event) know
a job's token. A cancel carries an HMAC-SHA256 keyed by the token over the command's type, job id, user id,
event id, occurred_at and, for a cancel of one attempt, its attempt id, rather than the token itself: the token is
not put on the topic a second time, and a signature says nothing about the token. The API keeps no token after the
start event is published: it recomputes it from the job row (`job_token.job_token_for`), since HS256 signing is
deterministic.

A cancel with no attempt id is the user's, of the whole job; one with an attempt id is the dispatcher's, of that
attempt only (fenced: the job was dispatched again). The attempt id is signed, so a fence can be neither widened
into a cancel of the job (the id dropped) nor moved to another attempt.

A trainer verifies a cancel against the start event it holds for that job; one it cannot verify (no or a wrong
signature, or a job it has never seen) is dead-lettered and ignored.
"""

import hashlib
import hmac
import json
from datetime import UTC
from uuid import UUID

from epochscope_schemas.events import JobCancelEvent, JobStartEvent

JOB_TOKEN_FIELD = "job_token"


def _message(event: JobCancelEvent) -> bytes:
    occurred_at = event.occurred_at.astimezone(UTC).isoformat()
    fields = [event.type, str(event.job_id), event.user_id, str(event.event_id), occurred_at]
    if event.attempt_id is not None:  # absent from a user's cancel: its message is the one it always was
        fields.append(str(event.attempt_id))
    return "\n".join(fields).encode()


def command_signature(event: JobCancelEvent, job_token: str) -> str:
    """The event's signature under the job's token (hex)."""
    return hmac.new(job_token.encode(), _message(event), hashlib.sha256).hexdigest()


def signed_cancel(job_id: UUID, user_id: str, job_token: str, attempt_id: UUID | None = None) -> JobCancelEvent:
    """A cancel event for the job (or for one attempt of it only), signed with its token."""
    event = JobCancelEvent(job_id=job_id, user_id=user_id, attempt_id=attempt_id)
    return event.model_copy(update={"signature": command_signature(event, job_token)})


def verify_command(event: JobCancelEvent, job_token: str | None) -> bool:
    """True when the event was signed with this job token (constant-time comparison)."""
    if not job_token or not event.signature:
        return False
    return hmac.compare_digest(command_signature(event, job_token), event.signature)


def without_job_token(value: bytes | None) -> tuple[bytes, bool]:
    """A record value with its top-level `job_token` removed (for dead letters), and whether one was removed.

    A value that is not a JSON object, or holds no token (none, null or empty), is returned as it is.
    """
    raw = value or b""
    try:
        document = json.loads(raw)
    except ValueError:
        return raw, False
    if not isinstance(document, dict) or document.get(JOB_TOKEN_FIELD) in (None, ""):
        return raw, False
    del document[JOB_TOKEN_FIELD]
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode(), True


# Starts: signed by the API's dispatcher with EPOCHSCOPE_DISPATCH_KEY, verified by the trainer they are addressed to.

START_SIGNATURE_FIELD = "signature"


def _canonical(document: dict) -> bytes:
    body = {name: value for name, value in document.items() if name != START_SIGNATURE_FIELD}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signed_start(event: JobStartEvent, dispatch_key: str) -> JobStartEvent:
    """The start with its signature: an HMAC-SHA256 under the dispatch key over every other field (the addressee,
    the attempt, the inputs and the job token included), so none can be changed or the start replayed elsewhere."""
    signature = hmac.new(dispatch_key.encode(), _canonical(event.model_dump(mode="json")), hashlib.sha256)
    return event.model_copy(update={"signature": signature.hexdigest()})


def start_refusal(document: dict, dispatch_key: str) -> str | None:
    """Why a start (its JSON, not yet validated) is not to be read, or None when the dispatcher signed it."""
    signature = document.get(START_SIGNATURE_FIELD)
    if not isinstance(signature, str) or not signature:
        return "start_unsigned: no signature"
    expected = hmac.new(dispatch_key.encode(), _canonical(document), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return "start_forged: the signature does not verify against the dispatch key"
    return None
