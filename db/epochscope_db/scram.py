"""SCRAM-SHA-256 password verifiers (RFC 5802, RFC 7677), computed here so a password never reaches the server.

`CREATE/ALTER ROLE ... PASSWORD '<verifier>'` stores the verifier as is; a server that logs DDL logs only the
verifier, with which one cannot log in. The format is PostgreSQL's (src/common/scram-common.c).
"""

import base64
import hashlib
import hmac
import os

ITERATIONS = 4096  # PostgreSQL's default scram_iterations
SALT_BYTES = 16


def scram_sha_256_verifier(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, base64 each, with a random salt by default.

    PostgreSQL normalizes the password with SASLprep first; the passwords here are ASCII, for which it is the
    identity, so a non-ASCII one is refused rather than hashed differently from the server."""
    if not password.isascii():
        raise ValueError("database role passwords must be ASCII")
    salt = salt if salt is not None else os.urandom(SALT_BYTES)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
