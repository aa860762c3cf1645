"""Users' bearer tokens for local development (`epochscope token`, the local stack, tests): HS256 with the stack's
EPOCHSCOPE_JWT_SECRET, as the API's verifier (epochscope_api.auth.user_tokens) accepts them. Production users'
tokens come from an identity provider; the API itself mints none."""

from datetime import UTC, datetime, timedelta

import jwt

HS256 = "HS256"


def mint_user_token(secret: str, user_id: str, ttl: timedelta) -> str:
    """A bearer token for `user_id`, valid for `ttl`."""
    now = datetime.now(UTC)
    return jwt.encode({"sub": user_id, "iat": now, "exp": now + ttl}, secret, algorithm=HS256)
