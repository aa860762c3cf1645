"""The dependencies routes share, as in the full-stack FastAPI template's deps.py: the settings, the adapters
bootstrap.py built (pool, LISTEN hub, outbox relay, object store, token counters), the current user, and a
transaction scoped to that user.

All are async: FastAPI runs a plain `def` dependency in a worker thread, a thread hop per request.
"""

from collections.abc import AsyncIterator
from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from epochscope_api.auth.stream_tickets import StreamTickets
from epochscope_api.auth.user_tokens import UserTokenVerifier, unauthorized
from epochscope_api.bootstrap import Adapters
from epochscope_api.bus.outbox import OutboxRelay
from epochscope_api.data.db import user_transaction
from epochscope_api.data.quotas import admit_write
from epochscope_api.datasets.token_counts import TokenCounter
from epochscope_api.http.user_slots import UserSlots
from epochscope_api.live.hub import NotificationHub
from epochscope_api.settings import ApiSettings
from epochscope_runtime.object_store import ObjectStore

BEARER_DESCRIPTION = (
    "A JWT, HS256 with EPOCHSCOPE_JWT_SECRET or signed by a key at EPOCHSCOPE_JWKS_URL; `sub` is the user."
)
bearer = HTTPBearer(auto_error=False, description=BEARER_DESCRIPTION)


class UserBearer(HTTPBearer):
    """The bearer scheme (as OpenAPI shows `bearer`) and the current user in one dependency: each dependency costs
    FastAPI tens of microseconds per request, more than the lookup of a token verified before."""

    async def __call__(self, request: Request) -> str:
        """The user id (`sub`) of the request's verified bearer token; a 401 without one."""
        credentials = await super().__call__(request)
        if credentials is None:
            raise unauthorized("missing bearer token")
        return await _adapters(request).verifier.user_id(credentials.credentials)


current_user = UserBearer(auto_error=False, description=BEARER_DESCRIPTION, scheme_name=type(bearer).__name__)


def _adapters(request: Request) -> Adapters:
    return request.app.state.adapters


async def get_app_settings(request: Request) -> ApiSettings:
    return request.app.state.settings


async def get_pool(request: Request) -> asyncpg.Pool:
    return _adapters(request).pool


async def get_hub(request: Request) -> NotificationHub:
    return _adapters(request).hub


async def get_relay(request: Request) -> OutboxRelay:
    return _adapters(request).relay


async def get_store(request: Request) -> ObjectStore:
    return _adapters(request).store


async def get_token_counters(request: Request) -> dict[str, TokenCounter]:
    return _adapters(request).token_counters


async def get_verifier(request: Request) -> UserTokenVerifier:
    return _adapters(request).verifier


async def get_stream_tickets(request: Request) -> StreamTickets:
    return _adapters(request).stream_tickets


async def get_stream_slots(request: Request) -> UserSlots:
    return _adapters(request).stream_slots


async def get_export_slots(request: Request) -> UserSlots:
    return _adapters(request).export_slots


SettingsDep = Annotated[ApiSettings, Depends(get_app_settings)]
PoolDep = Annotated[asyncpg.Pool, Depends(get_pool)]
HubDep = Annotated[NotificationHub, Depends(get_hub)]
RelayDep = Annotated[OutboxRelay, Depends(get_relay)]
StoreDep = Annotated[ObjectStore, Depends(get_store)]
TokenCountersDep = Annotated[dict[str, TokenCounter], Depends(get_token_counters)]
VerifierDep = Annotated[UserTokenVerifier, Depends(get_verifier)]
StreamTicketsDep = Annotated[StreamTickets, Depends(get_stream_tickets)]
StreamSlotsDep = Annotated[UserSlots, Depends(get_stream_slots)]
ExportSlotsDep = Annotated[UserSlots, Depends(get_export_slots)]
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
CurrentUser = Annotated[str, Depends(current_user)]


async def user_connection(request: Request, user_id: CurrentUser) -> AsyncIterator[asyncpg.Connection]:
    """A connection in a transaction in which row-level security sees only the current user's rows. It commits
    when the route returns, before the response is sent (scope="function"), and rolls back if the route raises."""
    async with user_transaction(_adapters(request).pool, user_id) as conn:
        yield conn


UserConn = Annotated[asyncpg.Connection, Depends(user_connection, scope="function")]


async def limit_writes(pool: PoolDep, user_id: CurrentUser, settings: SettingsDep) -> None:
    """Counts a write request against EPOCHSCOPE_QUOTA_WRITES_PER_MINUTE, in its own committed transaction (a
    request that fails later still counts); a 429 past it. Postgres holds the count, so every replica shares it."""
    async with user_transaction(pool, user_id) as conn:
        await admit_write(conn, user_id, settings.quota_writes_per_minute)


WRITE_LIMITED = [Depends(limit_writes)]  # the `dependencies` of every POST and DELETE route
