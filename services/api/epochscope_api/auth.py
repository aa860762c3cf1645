"""The current user, from a verified JWT bearer token (HS256; user id = `sub`)."""

from datetime import UTC, datetime, timedelta
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

_bearer = HTTPBearer(auto_error=False, description="JWT signed with EPOCHSCOPE_JWT_SECRET; `sub` is the user id.")


def mint_user_token(secret: str, user_id: str, ttl: timedelta) -> str:
    """A bearer token for `user_id` (what `epochscope token` prints for local development)."""
    return jwt.encode({"sub": user_id, "exp": datetime.now(UTC) + ttl}, secret, algorithm="HS256")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def user_from_token(request: Request, token: str | None) -> str:
    if not token:
        raise _unauthorized("missing bearer token")
    secret = request.app.state.settings.jwt_secret.get_secret_value()
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["sub"]})
    except jwt.PyJWTError as exc:
        raise _unauthorized(f"invalid token: {exc}") from exc
    user_id = claims["sub"]
    if not isinstance(user_id, str) or not user_id:
        raise _unauthorized("token has no user")
    return user_id


async def current_user(  # async, as every dependency here: FastAPI runs a plain `def` in a worker thread
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    return user_from_token(request, credentials.credentials if credentials else None)


async def stream_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    access_token: Annotated[
        str | None, Query(description="The bearer token, for browsers' EventSource, which cannot send headers.")
    ] = None,
) -> str:
    return user_from_token(request, credentials.credentials if credentials else access_token)


CurrentUser = Annotated[str, Depends(current_user)]
StreamUser = Annotated[str, Depends(stream_user)]
