"""Commands the API sends trainers are signed, so a trainer can tell them from forgeries: a start with the
dispatcher's Ed25519 key (the API holds the private key, trainers the public ones; see the end of this module), a
cancel with its job's token.

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
from collections.abc import Sequence
from datetime import UTC
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from epochscope_schemas.events import JobCancelEvent, JobStartEvent

JOB_TOKEN_FIELD = "job_token"
TOKEN_FIELDS = (JOB_TOKEN_FIELD, "sealed_job_token")  # a start's token travels sealed for its addressee


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
    """A record value with its top-level `job_token` and `sealed_job_token` removed (for dead letters), and whether
    one was removed.

    A value that is not a JSON object, or holds no token (none, null or empty), is returned as it is.
    """
    raw = value or b""
    try:
        document = json.loads(raw)
    except ValueError:
        return raw, False
    present = [name for name in TOKEN_FIELDS if isinstance(document, dict) and document.get(name) not in (None, "")]
    if not present:
        return raw, False
    for name in present:
        del document[name]
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode(), True


# Starts: signed by the API's dispatcher with its Ed25519 private key, verified by the trainer they are addressed to
# with the dispatcher's public keys (`dispatch_keys`): a trainer can verify a start but not sign one.

START_SIGNATURE_FIELD = "signature"
SIGNATURE_BYTES = 64


def _canonical(document: dict) -> bytes:
    body = {name: value for name, value in document.items() if name != START_SIGNATURE_FIELD}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signed_start(event: JobStartEvent, private_key: Ed25519PrivateKey) -> JobStartEvent:
    """The start with its signature: Ed25519 under the dispatcher's key over every other field (the addressee, the
    attempt, the inputs and the sealed job token included), so none can be changed or the start replayed elsewhere."""
    signature = private_key.sign(_canonical(event.model_dump(mode="json")))
    return event.model_copy(update={"signature": signature.hex()})


def start_refusal(document: dict, public_keys: Sequence[Ed25519PublicKey]) -> str | None:
    """Why a start (its JSON, not yet validated) is not to be read, or None when one of the dispatcher's keys signed
    it (several during a rotation)."""
    signature = document.get(START_SIGNATURE_FIELD)
    if not isinstance(signature, str) or not signature:
        return "start_unsigned: no signature"
    forged = "start_forged: the signature does not verify against the dispatcher's public key(s)"
    try:
        raw = bytes.fromhex(signature)
    except ValueError:
        return forged
    if len(raw) != SIGNATURE_BYTES:
        return forged
    message = _canonical(document)
    for key in public_keys:
        try:
            key.verify(raw, message)
        except InvalidSignature:
            continue
        return None
    return forged
