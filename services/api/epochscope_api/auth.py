"""The current user, from a verified JWT bearer token (HS256; user id = `sub`)."""

from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

_bearer = HTTPBearer(auto_error=False, description="JWT signed with EPOCHSCOPE_JWT_SECRET; `sub` is the user id.")


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> str:
    if credentials is None:
        raise _unauthorized("missing bearer token")
    secret = request.app.state.settings.jwt_secret.get_secret_value()
    try:
        claims = jwt.decode(credentials.credentials, secret, algorithms=["HS256"], options={"require": ["sub"]})
    except jwt.PyJWTError as exc:
        raise _unauthorized(f"invalid token: {exc}") from exc
    user_id = claims["sub"]
    if not isinstance(user_id, str) or not user_id:
        raise _unauthorized("token has no user")
    return user_id


CurrentUser = Annotated[str, Depends(current_user)]
