"""The bearer token /metrics requires (EPOCHSCOPE_METRICS_TOKEN): the metrics share the public port, and name
routes, rates and latencies no anonymous caller should read. Without the setting, /metrics is not served."""

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from epochscope_api.auth.user_tokens import unauthorized

_metrics_bearer = HTTPBearer(auto_error=False)


def metrics_token_check(expected: str) -> Callable[..., Awaitable[None]]:
    """A dependency: a 401 unless the request's bearer token is `expected` (compared in constant time)."""

    async def check(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_metrics_bearer)]) -> None:
        given = credentials.credentials if credentials else ""
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise unauthorized("/metrics needs the metrics bearer token")

    return check
