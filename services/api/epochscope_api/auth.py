"""The current user, from a verified JWT bearer token (HS256; user id = `sub`)."""

from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

_bearer = HTTPBearer(auto_error=False, description="JWT signed with EPOCHSCOPE_JWT_SECRET; `sub` is the user id.")


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


def current_user(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> str:
    return user_from_token(request, credentials.credentials if credentials else None)


def stream_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    access_token: Annotated[
        str | None, Query(description="The bearer token, for browsers' EventSource, which cannot send headers.")
    ] = None,
) -> str:
    return user_from_token(request, credentials.credentials if credentials else access_token)


CurrentUser = Annotated[str, Depends(current_user)]
StreamUser = Annotated[str, Depends(stream_user)]
