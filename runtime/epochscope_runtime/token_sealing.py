"""A start's job token sealed for the one trainer it is addressed to, so no other reader of the topic can use it.

Each trainer holds an X25519 key pair (made when the service starts, never written to disk, never given to a job's
process) and publishes the public half in its signed heartbeat; the writer keeps it with the trainer's row, and the
dispatcher seals each attempt's token to the addressed trainer's key. The construction is ECIES-style, from the
`cryptography` package's primitives only: a fresh ephemeral X25519 key pair per seal, HKDF-SHA256 over the shared
secret (its info binds both public keys), and AES-256-GCM with a random nonce, whose associated data binds the job,
the attempt and the trainer, so a sealed token cannot be moved to another start. Sealed: url-safe base64 of
ephemeral public key (32) || nonce (12) || ciphertext and tag.
"""

import base64
import binascii
import os
import uuid

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from epochscope_runtime.dispatch_keys import decode_raw_key, encode_raw_key

INFO = b"epochscope job token v1"
NONCE_BYTES = 12
KEY_BYTES = 32
HEADER_BYTES = KEY_BYTES + NONCE_BYTES  # the ephemeral public key and the nonce
SEALED_MAX_CHARS = 2048  # a token of ~300 bytes seals to ~480 characters


class Unsealable(ValueError):
    """A sealed token this trainer cannot open (sealed for another key, changed, or moved to another start)."""


def _raw_public(key: X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def public_key_text(key: X25519PrivateKey) -> str:
    """The key pair's public half as it goes in a heartbeat (url-safe base64, 43 characters)."""
    return encode_raw_key(_raw_public(key.public_key()))


def load_public_key(text: str) -> X25519PublicKey:
    return X25519PublicKey.from_public_bytes(decode_raw_key(text))


def load_private_key(text: str) -> X25519PrivateKey:
    return X25519PrivateKey.from_private_bytes(decode_raw_key(text))


def binding(job_id: uuid.UUID, attempt_id: uuid.UUID | None, trainer_id: str | None) -> bytes:
    """What a sealed token is bound to: its start's job, attempt and addressee."""
    return f"{job_id}\n{attempt_id}\n{trainer_id}".encode()


def _key(shared: bytes, ephemeral: bytes, recipient: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=None, info=INFO + ephemeral + recipient).derive(
        shared
    )


def seal(token: str, recipient: X25519PublicKey, bound_to: bytes) -> str:
    """The token sealed for the holder of `recipient`'s private key, bound to `bound_to` (see `binding`)."""
    ephemeral = X25519PrivateKey.generate()
    ephemeral_raw, recipient_raw = _raw_public(ephemeral.public_key()), _raw_public(recipient)
    key = _key(ephemeral.exchange(recipient), ephemeral_raw, recipient_raw)
    nonce = os.urandom(NONCE_BYTES)
    sealed = ephemeral_raw + nonce + AESGCM(key).encrypt(nonce, token.encode(), bound_to)
    return base64.urlsafe_b64encode(sealed).decode()


def open_sealed(sealed: str, private_key: X25519PrivateKey, bound_to: bytes) -> str:
    """The token, when it was sealed for this key and bound to `bound_to`; Unsealable otherwise."""
    try:
        raw = base64.urlsafe_b64decode(sealed.encode())
    except (binascii.Error, ValueError):
        raise Unsealable("the sealed token is not base64") from None
    if len(raw) <= HEADER_BYTES:
        raise Unsealable("the sealed token is too short")
    ephemeral_raw, nonce, ciphertext = raw[:KEY_BYTES], raw[KEY_BYTES:HEADER_BYTES], raw[HEADER_BYTES:]
    recipient_raw = _raw_public(private_key.public_key())
    try:
        shared = private_key.exchange(X25519PublicKey.from_public_bytes(ephemeral_raw))
        plain = AESGCM(_key(shared, ephemeral_raw, recipient_raw)).decrypt(nonce, ciphertext, bound_to)
    except (InvalidTag, ValueError):
        raise Unsealable("the token was not sealed for this trainer's key (or not for this start)") from None
    return plain.decode()
