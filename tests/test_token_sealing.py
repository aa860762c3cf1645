"""Job tokens sealed for one trainer (X25519 + HKDF-SHA256 + AES-256-GCM) with real keys, and the dispatcher's
Ed25519 keys as settings give them: only the addressed trainer opens a token, and only for the start it was sealed
for; a trainer's public key list accepts the keys of a rotation."""

import base64
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from start_keys import new_sealing_key

from epochscope_runtime.dispatch_keys import load_private_key, load_public_keys, new_key_pair, public_key_text
from epochscope_runtime.token_sealing import Unsealable, binding, load_public_key, open_sealed, seal
from epochscope_runtime.token_sealing import load_private_key as load_sealing_key

TOKEN = "header.claims-of-one-attempt.signature"


def test_only_the_addressed_trainer_opens_a_sealed_token() -> None:
    (mine, my_public), (theirs, _) = new_sealing_key(), new_sealing_key()
    job, attempt = uuid.uuid4(), uuid.uuid4()
    bound = binding(job, attempt, "trainer-1")
    sealed = seal(TOKEN, load_public_key(my_public), bound)
    assert TOKEN not in sealed and TOKEN.encode() not in base64.urlsafe_b64decode(sealed)
    assert open_sealed(sealed, load_sealing_key(mine), bound) == TOKEN
    with pytest.raises(Unsealable, match="not sealed for this trainer's key"):
        open_sealed(sealed, load_sealing_key(theirs), bound)  # another trainer, on the same topic
    for moved in (binding(job, uuid.uuid4(), "trainer-1"), binding(uuid.uuid4(), attempt, "trainer-1")):
        with pytest.raises(Unsealable):
            open_sealed(sealed, load_sealing_key(mine), moved)  # copied into another attempt's or job's start
    raw = bytearray(base64.urlsafe_b64decode(sealed))
    raw[-1] ^= 1
    with pytest.raises(Unsealable):
        open_sealed(base64.urlsafe_b64encode(bytes(raw)).decode(), load_sealing_key(mine), bound)
    assert seal(TOKEN, load_public_key(my_public), bound) != sealed  # a fresh ephemeral key and nonce each time


def test_dispatch_keys_are_read_as_base64_or_pem_and_a_list_serves_a_rotation() -> None:
    private, public = new_key_pair()
    key = Ed25519PrivateKey.generate()
    pem_private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    pem_public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    assert public_key_text(load_private_key(private).public_key()) == public
    assert public_key_text(load_private_key(pem_private).public_key()) == public_key_text(key.public_key())
    keys = load_public_keys(f"{pem_public}\n{public},")
    assert [public_key_text(k) for k in keys] == [public_key_text(key.public_key()), public]
    for bad in ("", "not-a-key", public[:-2]):
        with pytest.raises(ValueError) as refused:
            load_public_keys(bad)
        assert not bad or bad not in str(refused.value)  # a key's text is never repeated in an error
    with pytest.raises(ValueError) as refused:
        load_private_key("REPLACE_ME_with_a_real_secret")
    assert "REPLACE_ME" not in str(refused.value)
