"""Keys for tests of signed starts, sealed tokens and signed heartbeats: the dispatcher's Ed25519 pair, a trainer's
X25519 pair and its Ed25519 identity pair, and a start as the dispatcher sends it (its token sealed for the trainer,
then signed)."""

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from epochscope_runtime.command_signing import signed_start
from epochscope_runtime.dispatch_keys import encode_raw_key, load_private_key, new_key_pair
from epochscope_runtime.token_sealing import binding, load_public_key, open_sealed, public_key_text, seal
from epochscope_runtime.token_sealing import load_private_key as load_sealing_key
from epochscope_schemas.events import JobStartEvent

DISPATCH_PRIVATE_KEY, DISPATCH_PUBLIC_KEY = new_key_pair()
SIGNING_KEY = load_private_key(DISPATCH_PRIVATE_KEY)
TRAINER_IDENTITY_KEY, TRAINER_IDENTITY_PUBLIC = new_key_pair()  # a trainer's identity: signs its heartbeats


def new_sealing_key() -> tuple[str, str]:
    """A trainer's X25519 pair as its settings and its heartbeat carry them: (private, public)."""
    key = X25519PrivateKey.generate()
    raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    return encode_raw_key(raw), public_key_text(key)


TRAINER_SEALING_KEY, TRAINER_SEALING_PUBLIC = new_sealing_key()


def dispatched(
    event: JobStartEvent, sealing_public: str = TRAINER_SEALING_PUBLIC, signing_key: Ed25519PrivateKey | None = None
) -> JobStartEvent:
    """The start as the dispatcher sends it: its `job_token` sealed for `sealing_public`, then signed."""
    token = event.job_token or ""
    sealed = seal(token, load_public_key(sealing_public), binding(event.job_id, event.attempt_id, event.trainer_id))
    return signed_start(
        event.model_copy(update={"job_token": None, "sealed_job_token": sealed}), signing_key or SIGNING_KEY
    )


def opened_token(start: JobStartEvent, sealing_key: str = TRAINER_SEALING_KEY) -> str:
    """The start's job token, opened as the addressed trainer (holding `sealing_key`) opens it."""
    bound = binding(start.job_id, start.attempt_id, start.trainer_id)
    return open_sealed(start.sealed_job_token or "", load_sealing_key(sealing_key), bound)
