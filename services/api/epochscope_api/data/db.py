"""Postgres access for the API: one bounded pool, and transactions scoped to the current user for RLS.

Every wait is bounded: a pooled connection within `acquire_timeout` seconds (else DatabaseBusy, a 503), a statement
within the server's statement_timeout, and a transaction left idle is ended by idle_in_transaction_session_timeout,
so no request, however slow its client, keeps a connection from the others for long.
"""

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg

from epochscope_api.errors import DatabaseBusy


@dataclass(frozen=True)
class PoolTimeouts:
    acquire_s: float  # longest wait for a pooled connection
    statement_ms: int  # the server's statement_timeout
    idle_in_transaction_ms: int  # the server's idle_in_transaction_session_timeout

    def server_settings(self) -> dict[str, str]:
        return {
            "statement_timeout": str(self.statement_ms),
            "idle_in_transaction_session_timeout": str(self.idle_in_transaction_ms),
        }


class BoundedPool(asyncpg.Pool):
    """An asyncpg pool whose acquire waits at most `acquire_timeout_s` (None: unbounded) unless told otherwise."""

    def __init__(self, *args: Any, acquire_timeout_s: float | None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.acquire_timeout_s = acquire_timeout_s

    def acquire(self, *, timeout: float | None = None) -> Any:
        return super().acquire(timeout=self.acquire_timeout_s if timeout is None else timeout)


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's reset on release: none. The API's work is all transaction-scoped (the user by
    set_config(..., true), advisory locks by pg_advisory_xact_lock, no LISTEN on a pooled connection), and asyncpg
    itself rolls back a transaction left open before it calls this: there is no session state to reset, and no
    reset query's round trip on every request."""


async def _init_connection(conn: asyncpg.Connection) -> None:
    await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, min_size: int, max_size: int, timeouts: PoolTimeouts | None = None) -> BoundedPool:
    """The API's pool (bounded by `timeouts`, which the API always passes; a bench may leave them out)."""
    pool = BoundedPool(
        dsn,
        acquire_timeout_s=timeouts.acquire_s if timeouts else None,
        min_size=min_size,
        max_size=max_size,
        max_queries=50_000,
        max_inactive_connection_lifetime=300.0,
        init=_init_connection,
        reset=_keep_session,
        loop=None,
        connection_class=asyncpg.Connection,
        record_class=asyncpg.Record,
        server_settings=timeouts.server_settings() if timeouts else None,
    )
    return await pool


@asynccontextmanager
async def user_transaction(pool: asyncpg.Pool, user_id: str) -> AsyncIterator[asyncpg.Connection]:
    """A transaction in which row-level security sees only `user_id`'s rows; DatabaseBusy when no pooled
    connection frees up within the pool's acquire timeout."""
    async with AsyncExitStack() as stack:
        try:
            conn = await stack.enter_async_context(pool.acquire())
        except TimeoutError:
            raise DatabaseBusy from None
        # BEGIN and the user in one round trip (a simple query takes no parameters: the id goes in as a literal).
        await conn.execute(f"BEGIN; SELECT set_config('app.user_id', {sql_literal(user_id)}, true)")
        try:
            yield conn
        except BaseException:
            if not conn.is_closed() and conn.is_in_transaction():
                await conn.execute("ROLLBACK")
            raise
        await conn.execute("COMMIT")


def sql_literal(value: str) -> str:
    """`value` as an SQL string literal: quotes doubled, backslashes kept as themselves whatever
    standard_conforming_strings says (an E'' literal with each one doubled). A NUL, which no text holds, is a
    ValueError."""
    if "\x00" in value:
        raise ValueError("a NUL character cannot be in an SQL text")
    return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"
