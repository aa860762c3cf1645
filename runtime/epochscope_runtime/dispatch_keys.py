"""The dispatcher's Ed25519 keys: the API signs each job start with its private key, trainers verify with public keys.

A trainer holds no secret that could sign a start, so no trainer can forge one for another (an HMAC key shared to
verify would also sign). Keys are given as text: a PEM block, or the raw 32-byte key in base64 (as `new_key_pair`
writes it). A trainer accepts a list of public keys (comma- or whitespace-separated, or several PEM blocks), so a
key is rotated by adding the new public key to the trainers, then switching the API to the new private key, then
dropping the old public key. Parse errors never repeat the key's text: the settings hold secrets.
"""

import base64
import binascii
import re
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

RAW_KEY_BYTES = 32
_PEM_BLOCK = re.compile(r"-----BEGIN [A-Z ]+-----.+?-----END [A-Z ]+-----", re.DOTALL)


def decode_raw_key(text: str) -> bytes:
    """A raw 32-byte key from its base64 (standard or url-safe, padded or not); ValueError otherwise."""
    cleaned = text.strip().replace("-", "+").replace("_", "/")
    try:
        raw = base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if len(raw) != RAW_KEY_BYTES:
        raise ValueError(f"not a {RAW_KEY_BYTES}-byte key")
    return raw


def encode_raw_key(raw: bytes) -> str:
    """url-safe base64 without padding (43 characters for a 32-byte key)."""
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def load_private_key(text: str, what: str = "the dispatch private key") -> Ed25519PrivateKey:
    """An Ed25519 private key (the dispatcher's, or `what`) from a PEM block (PKCS#8) or the base64 of its 32 raw
    bytes."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text.encode(), password=None)
        except (ValueError, TypeError):
            raise ValueError(f"{what} is not a readable PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"{what} is not an Ed25519 key")
        return key
    try:
        return Ed25519PrivateKey.from_private_bytes(decode_raw_key(text))
    except ValueError as exc:
        raise ValueError(f"{what} is {exc} (give a PEM block or 32 raw bytes in base64)") from None


def load_public_keys(text: str, what: str = "dispatch public key") -> list[Ed25519PublicKey]:
    """Ed25519 public keys (the dispatcher's, several during a rotation, or `what`): PEM blocks and/or base64 raw
    keys."""
    keys: list[Ed25519PublicKey] = []
    for block in _PEM_BLOCK.findall(text):
        try:
            key = serialization.load_pem_public_key(block.encode())
        except ValueError:
            raise ValueError(f"a {what} is not a readable PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"a {what} is not an Ed25519 key")
        keys.append(key)
    for item in re.split(r"[\s,]+", _PEM_BLOCK.sub(" ", text)):
        if item:
            try:
                keys.append(Ed25519PublicKey.from_public_bytes(decode_raw_key(item)))
            except ValueError as exc:
                raise ValueError(f"a {what} is {exc}") from None
    if not keys:
        raise ValueError(f"no {what} given")
    return keys


def key_text(value: str | None, file: Path | None, name: str) -> str | None:
    """A key's text from its setting or its file setting (not both); None when neither is set."""
    if value is not None and file is not None:
        raise ValueError(f"set {name} or {name}_FILE, not both")
    if file is not None:
        try:
            return file.read_text()
        except OSError as exc:
            raise ValueError(f"{name}_FILE cannot be read: {type(exc).__name__}") from None
    return value


def public_key_text(key: Ed25519PublicKey) -> str:
    return encode_raw_key(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def new_key_pair() -> tuple[str, str]:
    """A fresh (private, public) key pair as base64 raw keys (the local stack's and the tests')."""
    private = Ed25519PrivateKey.generate()
    raw = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return encode_raw_key(raw), public_key_text(private.public_key())
