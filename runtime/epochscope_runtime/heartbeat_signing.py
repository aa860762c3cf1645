"""Trainer heartbeats are signed with each trainer's own identity key, so one trainer can never speak for another.

A heartbeat decides where jobs go, and its sealing key which trainer can open their tokens: a heartbeat in another
trainer's name, carrying the sender's own sealing key, would draw that trainer's jobs and tokens. So each trainer
holds an Ed25519 identity private key of its own (EPOCHSCOPE_TRAINER_IDENTITY_KEY); a heartbeat names the public
half (`identity_key`) and is signed with it, over the canonical payload (every field but the signature, as compact
JSON with sorted keys: `occurred_at`, `event_id`, the sealing key and the identity key included). The writers hold
the list of identity public keys they accept (EPOCHSCOPE_ACCEPTED_TRAINER_KEYS, like an authorized_keys file: add a
line to admit a trainer, remove it to revoke one).

A trainer id is bound to its key: it begins with the key's fingerprint (`<fingerprint>.<instance>`, see
`bound_trainer_id`), so no map of ids to keys is kept anywhere, the accepted list stays a plain list of keys, and
each process still has an id of its own (the dispatcher counts one slot per id; a restarted trainer is a new one).
The writer refuses a heartbeat that is unsigned, whose key it does not accept, whose signature does not verify
under that key, or whose trainer id does not begin with that key's fingerprint. Replicas that share one key are one
principal: each could speak for the others, never for a trainer with another key. It also refuses one whose
`occurred_at` is further than its max age from the writer's clock (a replay, or a clock too far off to lease by).
"""

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from epochscope_runtime.dispatch_keys import decode_raw_key, public_key_text
from epochscope_schemas.scheduling import TrainerHeartbeat

FINGERPRINT_CHARS = 32  # hex of the first 16 bytes of SHA-256 over the raw public key: 128 bits
SIGNATURE_BYTES = 64


def key_fingerprint(identity_key: str) -> str:
    """The fingerprint of an identity public key given as text (base64 of its 32 raw bytes); ValueError otherwise."""
    return hashlib.sha256(decode_raw_key(identity_key)).hexdigest()[:FINGERPRINT_CHARS]


def bound_trainer_id(identity: Ed25519PrivateKey, instance: str) -> str:
    """The trainer id of the process `instance` holding `identity`: the key's fingerprint, a dot, the instance."""
    return f"{key_fingerprint(public_key_text(identity.public_key()))}.{instance}"


def _canonical(beat: TrainerHeartbeat) -> bytes:
    fields = beat.model_dump(mode="json", exclude={"signature"})
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def signed_heartbeat(beat: TrainerHeartbeat, identity: Ed25519PrivateKey) -> TrainerHeartbeat:
    """The heartbeat naming `identity`'s public key and signed with it (Ed25519, hex)."""
    named = beat.model_copy(update={"identity_key": public_key_text(identity.public_key())})
    return named.model_copy(update={"signature": identity.sign(_canonical(named)).hex()})


class RefusalKind(StrEnum):
    """Why a heartbeat is not believed; the values are the writer's dead-letter reasons."""

    INVALID_SIGNATURE = "invalid_signature"  # unsigned, or a signature its key does not verify
    UNACCEPTED_TRAINER_KEY = "unaccepted_trainer_key"  # signed with a key the writers do not accept
    TRAINER_ID_NOT_BOUND = "trainer_id_not_bound"  # an accepted key speaking for a trainer id not its own


@dataclass(frozen=True)
class Refusal:
    kind: RefusalKind
    detail: str


class AcceptedTrainerKeys:
    """The identity public keys a writer accepts, by their text as heartbeats name them."""

    def __init__(self, keys: Iterable[Ed25519PublicKey]) -> None:
        self._by_text = {public_key_text(key): key for key in keys}

    def __len__(self) -> int:
        return len(self._by_text)

    def refusal(self, beat: TrainerHeartbeat) -> Refusal | None:
        """Why the heartbeat is not its named key's, or not an accepted key's, or None when it verifies."""
        who = f"heartbeat from trainer {beat.trainer_id!r}"
        if not beat.identity_key or not beat.signature:
            return Refusal(RefusalKind.INVALID_SIGNATURE, f"unsigned {who}")
        fingerprint = key_fingerprint(beat.identity_key)
        key = self._by_text.get(beat.identity_key)
        if key is None:
            accepted = f"{len(self)} accepted" if self._by_text else "none accepted: EPOCHSCOPE_ACCEPTED_TRAINER_KEYS"
            return Refusal(RefusalKind.UNACCEPTED_TRAINER_KEY, f"{who} signed with key {fingerprint} ({accepted})")
        try:
            raw = bytes.fromhex(beat.signature)
            if len(raw) != SIGNATURE_BYTES:
                raise ValueError
            key.verify(raw, _canonical(beat))
        except (ValueError, InvalidSignature):
            return Refusal(RefusalKind.INVALID_SIGNATURE, f"{who} with a wrong signature for key {fingerprint}")
        if not beat.trainer_id.startswith(f"{fingerprint}."):
            detail = f"{who}: key {fingerprint} speaks only for trainer ids beginning {fingerprint}."
            return Refusal(RefusalKind.TRAINER_ID_NOT_BOUND, detail)
        return None


def age_refusal(beat: TrainerHeartbeat, now: datetime, max_age: timedelta) -> str | None:
    """Why the heartbeat is too far from `now`, either way (a replay, or a clock too far off to lease by), or None."""
    skew = abs((now - beat.occurred_at).total_seconds())
    if skew > max_age.total_seconds():
        return f"heartbeat from trainer {beat.trainer_id!r} is {skew:.0f}s off the writer's clock (max {max_age})"
    return None
